"""Failpoints (petcd.runtime.failpoints): parsing, the wrapped ports, arming over HTTP, and a
real member crashing at raftBeforeSave / raftAfterSave: what it had saved survives, what it had
not is gone."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from petcd.backend.memory import MemoryBackend
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc
from petcd.raft.types import EMPTY_HARD_STATE, Entry, HardState, Snapshot
from petcd.robustness.cluster import free_ports
from petcd.runtime.failpoints import (
    FailpointBackend,
    FailpointError,
    FailpointLogStore,
    Failpoints,
    parse,
    parse_term,
)
from petcd.server.ports import PersistedLog


def test_terms_parse_like_gofail() -> None:
    t = parse_term("panic")
    assert (t.action, t.percent, t.count) == ("panic", 100.0, None)
    t = parse_term("25%3*sleep(100)")
    assert (t.action, t.sleep_ms, t.percent, t.count) == ("sleep", 100, 25.0, 3)
    assert set(parse("raftBeforeSave=panic;beforeCommit=sleep(5)")) == {"raftBeforeSave", "beforeCommit"}
    with pytest.raises(FailpointError):
        parse("noSuchPoint=panic")
    with pytest.raises(FailpointError):
        parse_term("explode")


class Recorder(Failpoints):
    def __init__(self, spec: str = "") -> None:
        super().__init__(parse(spec))
        self.hits: list[str] = []

    def hit(self, name: str) -> None:
        self.hits.append(name)
        super().hit(name)


class FakeLogStore:
    def __init__(self, hits: list[str]) -> None:
        self.hits = hits

    def load(self) -> PersistedLog:
        return PersistedLog()

    def save(self, hard_state: HardState, entries: Sequence[Entry], must_sync: bool) -> None:
        self.hits.append("save")

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self.hits.append("save_snapshot")

    def release_to(self, index: int) -> None:
        self.hits.append("release")


def test_unarmed_failpoints_wrap_nothing() -> None:
    fps = Failpoints.from_env({})
    store = FakeLogStore([])
    backend = MemoryBackend()
    assert fps.wrap_log_store(store) is store
    assert fps.wrap_backend(backend) is backend


def test_log_store_points_surround_saves_with_entries() -> None:
    fps = Recorder("raftAfterSave=off")
    fps.set("raftBeforeSave", "sleep(0)")
    store = FailpointLogStore(FakeLogStore(fps.hits), fps)
    store.save(EMPTY_HARD_STATE, [], False)  # nothing appended: no point
    store.save(EMPTY_HARD_STATE, [Entry(term=1, index=1)], True)
    assert fps.hits == ["save", "raftBeforeSave", "save", "raftAfterSave"]


def test_backend_points_surround_the_commit() -> None:
    fps = Recorder("beforeCommit=sleep(0)")
    backend = FailpointBackend(MemoryBackend(), fps)
    with backend.write_txn() as txn:
        txn.put("b", b"k", b"v")
        assert fps.hits == []  # not yet committed
    assert fps.hits == ["beforeCommit", "afterCommit"]
    with backend.read_txn() as r:
        assert r.get("b", b"k") == b"v"
    fps.hits.clear()
    with contextlib.suppress(RuntimeError), backend.write_txn() as txn:
        txn.put("b", b"k2", b"v")
        raise RuntimeError("abort")
    assert fps.hits == []  # an aborted transaction commits nothing
    with backend.read_txn() as r:
        assert r.get("b", b"k2") is None


def test_count_limits_firing() -> None:
    fps = Failpoints(parse("raftBeforeSave=2*sleep(0)"))
    for _ in range(5):
        fps.hit("raftBeforeSave")
    assert fps.terms["raftBeforeSave"].count == 0


def test_arming_over_http() -> None:
    fps = Failpoints({})
    port = fps.serve_http("127.0.0.1", 0)
    assert fps.armed
    base = f"http://127.0.0.1:{port}"
    put = urllib.request.Request(f"{base}/raftAfterSave", data=b"sleep(1)", method="PUT")
    with urllib.request.urlopen(put, timeout=5) as r:
        assert r.status == 204
    with urllib.request.urlopen(base + "/", timeout=5) as r:
        assert r.read() == b"raftAfterSave=sleep(1)\n"
    bad = urllib.request.Request(f"{base}/nope", data=b"panic", method="PUT")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(bad, timeout=5)
    with urllib.request.urlopen(urllib.request.Request(f"{base}/raftAfterSave", method="DELETE"), timeout=5):
        pass
    assert "raftAfterSave" not in fps.terms


def test_panic_exits_the_process_at_once() -> None:
    code = (
        "from petcd.runtime.failpoints import Failpoints, parse\n"
        "fps = Failpoints(parse('beforeCommit=panic'))\n"
        "try:\n"
        "    fps.hit('beforeCommit')\n"
        "finally:\n"
        "    print('cleanup ran')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    assert b"cleanup ran" not in done.stdout


# ------------------------------------------------------------------------------ a real member


@contextlib.contextmanager
def member(data_dir: Path, ports: list[int]) -> Iterator[tuple[subprocess.Popen[bytes], str, int]]:
    client, peer, fail = ports
    env = {**os.environ, "GOFAIL_HTTP": f"127.0.0.1:{fail}"}
    url, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    log = (data_dir.parent / "member.log").open("ab")
    args = ["--name", "m", "--data-dir", str(data_dir), "--listen-client-urls", url]
    args += ["--advertise-client-urls", url, "--listen-peer-urls", purl]
    args += ["--initial-advertise-peer-urls", purl, "--initial-cluster", f"m={purl}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "petcd", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{client}") as ch:
            stub = rpc_pb2_grpc.KVStub(ch)
            deadline = time.monotonic() + 30
            while True:
                try:
                    stub.Range(pb.RangeRequest(key=b"x"), timeout=1)
                    break
                except grpc.RpcError:
                    assert time.monotonic() < deadline and proc.poll() is None, "member did not start"
                    time.sleep(0.1)
        yield proc, f"127.0.0.1:{client}", fail
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        log.close()


def _arm(port: int, name: str, term: str) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/{name}", data=term.encode(), method="PUT")
    with urllib.request.urlopen(req, timeout=5):
        pass


@pytest.mark.parametrize(("point", "survives"), [("raftBeforeSave", False), ("raftAfterSave", True)])
def test_member_crashes_at_the_point_and_keeps_what_it_saved(
    tmp_path: Path, point: str, survives: bool
) -> None:
    data = tmp_path / "m.etcd"
    ports = free_ports(3)  # the same on restart: the member's ID derives from its peer URL
    with member(data, ports) as (proc, address, fail_port), grpc.insecure_channel(address) as ch:
        stub = rpc_pb2_grpc.KVStub(ch)
        stub.Put(pb.PutRequest(key=b"before", value=b"1"), timeout=10)
        _arm(fail_port, point, "panic")
        with pytest.raises(grpc.RpcError):
            stub.Put(pb.PutRequest(key=b"crash", value=b"2"), timeout=10)
        assert proc.wait(timeout=10) == 2
    with member(data, ports) as (_, address, _), grpc.insecure_channel(address) as ch:
        stub = rpc_pb2_grpc.KVStub(ch)
        assert [kv.value for kv in stub.Range(pb.RangeRequest(key=b"before"), timeout=10).kvs] == [b"1"]
        got = stub.Range(pb.RangeRequest(key=b"crash"), timeout=10).kvs
        # one member: an entry in its WAL is committed, and applied on restart
        assert bool(got) is survives
