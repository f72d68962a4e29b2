"""Differential: HashKV of the same history on the reference etcd (3.4, /usr/bin/etcd) and on petcd's store.

The history mixes puts, overwrites, deletes (single and ranges), a txn writing several keys at one
revision and a compaction; then both answer HashKV at several revisions. The numbers must be equal:
they are CRC-32C over etcd's revision keys and marshalled KeyValues, so equal numbers mean the stored
bytes are etcd's too.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_ports

from petcd.backend.memory import MemoryBackend
from petcd.mvcc.kvstore import KVStore
from petcd.mvcc.types import DeleteRangeRequest, PutRequest, RequestOp, TxnRequest

ETCD = "/usr/bin/etcd"  # the reference etcd (Debian etcd-server), never petcd on PATH
ETCDCTL = "/usr/bin/etcdctl"  # the reference etcdctl (Debian etcd-client), never petcd on PATH

pytestmark = pytest.mark.skipif(
    not (os.path.exists(ETCD) and os.path.exists(ETCDCTL)), reason="reference etcd not installed"
)


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[str]:
    client, peer = free_ports(2)
    endpoint = f"http://127.0.0.1:{client}"
    proc = subprocess.Popen(
        [
            ETCD,
            "--data-dir",
            str(tmp_path / "etcd"),
            "--listen-client-urls",
            endpoint,
            "--advertise-client-urls",
            endpoint,
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
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if ctl(endpoint, "endpoint", "health", check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail("reference etcd did not start")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def ctl(
    endpoint: str, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ETCDCTL, "--endpoints", endpoint, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, "ETCDCTL_API": "3"},
        timeout=20,
    )


def etcd_hashkv(endpoint: str, rev: int) -> tuple[int, int]:
    out = json.loads(ctl(endpoint, "endpoint", "hashkv", "--rev", str(rev), "-w", "json").stdout)
    hkv = out[0]["HashKV"]
    return int(hkv["hash"]), int(hkv.get("compact_revision", 0))


def test_hashkv_matches_reference_etcd(etcd: str) -> None:
    store = KVStore(MemoryBackend())

    def put(k: str, v: str) -> None:
        ctl(etcd, "put", k, v)
        store.put(PutRequest(k.encode(), v.encode()))

    def delete(k: str, *end: str) -> None:
        ctl(etcd, "del", k, *end)
        store.delete_range(DeleteRangeRequest(k.encode(), end[0].encode() if end else b""))

    put("foo", "bar")  # revision 2: an empty store is at revision 1, in both
    put("foo", "baz")
    put("a", "1")
    put("b", "2")
    put("c", "\x01bin")
    delete("a")
    delete("b", "d")
    ctl(etcd, "txn", stdin="\nput x 1\nput y 2\ndel foo\n\n\n")
    store.txn(
        TxnRequest(
            success=[
                RequestOp.of(PutRequest(b"x", b"1")),
                RequestOp.of(PutRequest(b"y", b"2")),
                RequestOp.of(DeleteRangeRequest(b"foo")),
            ]
        )
    )
    put("foo", "again")
    put("x", "11")
    assert store.current_rev == 11
    for rev in range(1, store.current_rev + 1):
        got, compact = etcd_hashkv(etcd, rev)
        assert (got, compact) == (store.hash_kv(rev).hash, -1), rev
    ctl(etcd, "compaction", "7")
    store.compact(7, physical=True)
    for rev in range(8, store.current_rev + 1):
        got, compact = etcd_hashkv(etcd, rev)
        assert (got, compact) == (store.hash_kv(rev).hash, 7), rev
