"""Fixtures: every MVCC test runs over both backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from petcd.backend import Backend
from petcd.backend.lmdb import LmdbBackend, db_path
from petcd.backend.memory import MemoryBackend
from petcd.mvcc.kvstore import KVStore

MakeBackend = Callable[..., Backend]


@pytest.fixture(params=["lmdb", "memory"])
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeBackend]:
    opened: list[Backend] = []
    counter = iter(range(1000))

    def factory(quota_bytes: int = 2 << 30) -> Backend:
        b: Backend
        if request.param == "lmdb":
            b = LmdbBackend(db_path(tmp_path / f"m{next(counter)}"), quota_bytes=quota_bytes)
        else:
            b = MemoryBackend(quota_bytes=quota_bytes)
        opened.append(b)
        return b

    yield factory
    for b in opened:
        b.close()


@pytest.fixture
def store(make_backend: MakeBackend) -> KVStore:
    return KVStore(make_backend())
