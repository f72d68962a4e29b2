"""``mvcc put``: puts straight into petcd's MVCC store on LMDB, in-process (no raft, no network).

etcd's ``benchmark mvcc put`` writes ``--total`` write transactions of ``--txn-ops`` puts each into
its MVCC store over a batched bolt backend (committed every ``--batch-interval`` ms or
``--batch-limit`` transactions) and reports each transaction's latency. The same here: one
``KVStore.write()`` (one LMDB write transaction) stays open until ``--batch-limit`` transactions or
``--batch-interval`` ms have gone into it, then commits; the commit's time is counted in the
transaction that closed the batch, so the total is honest. Keys and values are random bytes of
``--key-size`` and ``--val-size``, made before the clock starts. One difference: petcd's store gives
every put its own revision, where etcd's write transaction puts all its keys at one revision.

The store lives in ``--data-dir`` (``<dir>/member/snap/db``) or a temporary directory removed after
the run. This is the one module of the benchmark that reaches below the client API
(tests/test_layers.py allows it mvcc and backend).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from array import array
from pathlib import Path

from petcd.backend.lmdb import LmdbBackend, db_path
from petcd.benchmark.runner import RunResult, Series, cpu_s
from petcd.mvcc.kvstore import KVStore
from petcd.mvcc.types import PutRequest


def run_mvcc_put(args: argparse.Namespace) -> RunResult:
    if args.total < 0 or args.txn_ops < 1:
        raise ValueError("--total must be >= 0 and --txn-ops >= 1")
    tmp = "" if args.data_dir else tempfile.mkdtemp(prefix="mvcc-bench-")
    data_dir = Path(args.data_dir or tmp)
    try:
        backend = LmdbBackend(db_path(data_dir))
        try:
            before = cpu_s()
            series = _measure(KVStore(backend), args)
            return RunResult({"mvcc put": series}, cpu_s() - before)
        finally:
            backend.close()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _measure(store: KVStore, args: argparse.Namespace) -> Series:
    n = args.total * args.txn_ops
    keys = [os.urandom(args.key_size) for _ in range(n)]
    value = [os.urandom(args.val_size) for _ in range(n)]
    reqs = [PutRequest(key=k, value=v) for k, v in zip(keys, value, strict=True)]
    interval_s = args.batch_interval / 1000.0
    series = Series(starts=array("d") if args.sample else None)
    monotonic = time.monotonic
    series.begin()
    i = 0
    while i < args.total:
        batch_start = monotonic()
        in_batch = 0
        with store.write() as w:
            while i < args.total:
                st = monotonic()
                for j in range(i * args.txn_ops, (i + 1) * args.txn_ops):
                    store.put(reqs[j], w=w)
                i += 1
                in_batch += 1
                if in_batch >= args.batch_limit or monotonic() - batch_start >= interval_s or i == args.total:
                    break
                series.ok(st, monotonic() - st)
        # the transaction that closed the batch pays for the commit
        series.ok(st, monotonic() - st)
    series.finish()
    return series
