"""Fixtures of tests/api: a fake-facade member served over real gRPC (see api_served.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_served import Served


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    s.start()
    try:
        yield s
    finally:
        s.stop()
