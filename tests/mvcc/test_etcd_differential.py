"""Differential: the same random KV requests to the reference etcd (3.4, over gRPC) and to petcd's store.

A seeded generator makes puts (prev_kv, ignore_value, ignore_lease), delete ranges (prev_kv), ranges
(single key, ranges, from-key, limit, sort order and target, keys/count only, min/max mod/create
revision, past, compacted and future revisions), txns (compares on every target, with range_end,
nested txns, duplicate keys) and compactions. Each request goes, as the same etcdserverpb message,
to both; the responses (kvs, counts, more, revisions, prev_kvs, txn branches) or the error strings
must be equal. Revisions of nested responses are compared too.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from kv_requests import Gen, kvs, response_form, strip_nested_revisions
from servers import free_ports

from petcd.backend.memory import MemoryBackend
from petcd.errors import EtcdError
from petcd.mvcc.kvstore import KVStore
from petcd.mvcc.types import DeleteRangeResult, PutResult, RangeResult, TxnResult
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc

ETCD = "/usr/bin/etcd"  # the reference etcd (Debian etcd-server), never petcd on PATH
pytestmark = pytest.mark.skipif(not os.path.exists(ETCD), reason="reference etcd not installed")


@pytest.fixture
def etcd_kv(tmp_path: Path) -> Iterator[rpc_pb2_grpc.KVStub]:
    client, peer = free_ports(2)
    proc = subprocess.Popen(
        [
            ETCD,
            "--data-dir",
            str(tmp_path / "etcd"),
            "--listen-client-urls",
            f"http://127.0.0.1:{client}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{client}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"default=http://127.0.0.1:{peer}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{client}")
    try:
        stub = rpc_pb2_grpc.KVStub(channel)
        deadline = time.monotonic() + 20
        while True:
            try:
                stub.Range(pb.RangeRequest(key=b"x"), timeout=1)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield stub
    finally:
        channel.close()
        proc.terminate()
        proc.wait(timeout=10)


def ours(result: Any) -> Any:
    if isinstance(result, RangeResult):
        return ("range", result.revision, kvs(result.kvs), result.count, result.more)
    if isinstance(result, PutResult):
        return ("put", result.revision, kvs([result.prev_kv] if result.prev_kv else []))
    if isinstance(result, DeleteRangeResult):
        return ("delete", result.revision, result.deleted, kvs(result.prev_kvs))
    if isinstance(result, TxnResult):
        return ("txn", result.revision, result.succeeded, [ours(r) for r in result.responses])
    raise AssertionError(result)


def call(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except EtcdError as e:
        return ("error", str(e))
    except grpc.RpcError as e:
        return ("error", e.details())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_answers_as_reference_etcd(etcd_kv: rpc_pb2_grpc.KVStub, seed: int) -> None:
    store = KVStore(MemoryBackend())
    gen = Gen(seed)
    compacted = 0
    for step in range(250):
        roll = gen.r.random()
        if roll < 0.3:
            req: Any = gen.put_req()
            a, b = call(store.put, req), call(etcd_kv.Put, req)
        elif roll < 0.45:
            req = gen.delete_req()
            a, b = call(store.delete_range, req), call(etcd_kv.DeleteRange, req)
        elif roll < 0.7:
            req = gen.range_req()
            a, b = call(store.range, req), call(etcd_kv.Range, req)
        elif roll < 0.97:
            req = gen.txn_req()
            a, b = call(store.txn, req), call(etcd_kv.Txn, req)
        else:
            rev = gen.r.randint(max(compacted, 1), gen.rev + 1)
            a = call(lambda r: store.compact(r, physical=True), rev)
            b = call(etcd_kv.Compact, pb.CompactionRequest(revision=rev, physical=True))
            if b[0] == "ok":
                compacted = rev
            a = (a[0], a[1] if a[0] == "error" else None)
            b = (b[0], b[1] if b[0] == "error" else None)
            assert a == b, (step, rev)
            continue
        if a[0] == "ok":
            a = ("ok", strip_nested_revisions(ours(a[1])))
        if b[0] == "ok":
            b = ("ok", strip_nested_revisions(response_form(b[1])))
        assert a == b, (step, req)
        gen.rev = store.current_rev
