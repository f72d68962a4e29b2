"""The lessor's records in a real Backend's `lease` bucket: persistence, recovery, and writes
joining an enclosing apply transaction (so a revoke's record delete commits with its keys)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from petcd.backend import Backend, WriteTxn
from petcd.backend.memory import MemoryBackend
from petcd.lease import LEASE_BUCKET_NAME, BackendLeaseBucket, Lessor, LessorConfig
from petcd.lease.lessor import lease_key
from petcd.pb.leasepb import lease_pb2


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


def _lmdb_backend(tmp_path: Path) -> Backend | None:
    try:
        module = importlib.import_module("petcd.backend.lmdb")
    except ImportError:
        return None
    backend: Backend = module.LmdbBackend(str(tmp_path / "db"))
    return backend


@pytest.fixture(params=["memory", "lmdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        b: Backend | None = MemoryBackend()
    else:
        b = _lmdb_backend(tmp_path)
        if b is None:
            pytest.skip("petcd.backend.lmdb not available yet")
    assert b is not None
    yield b
    b.close()


def test_records_survive_a_new_lessor(backend: Backend) -> None:
    clock = Clock()
    lessor = Lessor(BackendLeaseBucket(backend), clock, LessorConfig(min_lease_ttl_s=2))
    lessor.grant(1, 10)
    lessor.grant(2, 20)
    lessor.grant(3, 30)
    lessor.checkpoint(2, 11)
    lessor.revoke(3)
    with backend.read_txn() as txn:
        raw = txn.get(LEASE_BUCKET_NAME, lease_key(2))
        assert raw is not None
        assert lease_pb2.Lease.FromString(raw) == lease_pb2.Lease(ID=2, TTL=20, RemainingTTL=11)
        assert txn.get(LEASE_BUCKET_NAME, lease_key(3)) is None
    again = Lessor(BackendLeaseBucket(backend), clock)
    assert {lease.id: (lease.ttl, lease.remaining_ttl) for lease in again.leases()} == {
        1: (10, 0),
        2: (20, 11),
    }


def test_writes_join_the_current_apply_transaction(backend: Backend) -> None:
    clock = Clock()
    current: list[WriteTxn] = []
    bucket = BackendLeaseBucket(backend, lambda: current[-1] if current else None)
    lessor = Lessor(bucket, clock)
    lessor.grant(1, 10)
    # an apply transaction that fails after the revoke: the lease record must come back with it
    with pytest.raises(RuntimeError), backend.write_txn() as txn:
        current.append(txn)
        lessor.revoke(1)
        assert txn.get(LEASE_BUCKET_NAME, lease_key(1)) is None
        raise RuntimeError("apply failed")
    current.clear()
    with backend.read_txn() as rtxn:
        assert rtxn.get(LEASE_BUCKET_NAME, lease_key(1)) is not None
