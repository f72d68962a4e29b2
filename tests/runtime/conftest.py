"""tests/runtime: a real single-member Node for the facade tests (single_member.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from single_member import SingleMember


@pytest.fixture
def member(tmp_path: Path) -> Iterator[SingleMember]:
    m = SingleMember(tmp_path)
    try:
        yield m
    finally:
        m.stop()
