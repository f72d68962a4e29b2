"""Fixtures for the client tests: the reference etcd servers of tests/cli's harness."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cli"))

from etcdctl_harness import etcd_server  # type: ignore[import-not-found]

__all__ = ["etcd_server"]
