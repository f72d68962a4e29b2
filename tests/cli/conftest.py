"""Fixtures for the etcdctl tests (helpers live in etcdctl_harness, importable from the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from etcdctl_harness import etcd_pair, etcd_server

__all__ = ["etcd_pair", "etcd_server"]
