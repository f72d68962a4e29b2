"""petcd's front-end processes (`etcd --frontend-processes N`), end to end with real processes.

The member's process is the core; N front-end processes share the client port (SO_REUSEPORT),
read from LMDB read-only and forward the rest over the local channel. Checked here: every client
connection is served whichever process the kernel hands it to (writes seen by linearizable and
serializable reads and by watches on other connections), the HTTP gateway on the same port, leases,
reads across a defragmentation (the read-only handles follow the file switch), and the lifecycle:
SIGTERM stops the front-ends too, a front-end that dies is replaced, and front-ends that keep dying
stop the member (status 1).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from petcd.etcdmain.frontend import MAX_RESTARTS
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support.servers import free_ports

READY_TIMEOUT_S = 40.0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Member:
    def __init__(self, proc: subprocess.Popen[bytes], address: str) -> None:
        self.proc = proc
        self.address = address

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)


@contextlib.contextmanager
def member_with_frontends(base: Path, n: int, extra: Sequence[str] = ()) -> Iterator[Member]:
    """A one-member petcd with `n` front-end processes (0: a single process), `extra` flags added."""
    client, peer = free_ports(2)
    cu, pu = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    log = (base / "petcd.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "petcd",
            "--name",
            "default",
            "--data-dir",
            str(base / "data"),
            "--listen-client-urls",
            cu,
            "--advertise-client-urls",
            cu,
            "--listen-peer-urls",
            pu,
            "--initial-advertise-peer-urls",
            pu,
            "--initial-cluster",
            f"default={pu}",
            "--frontend-processes",
            str(n),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    children: list[int] = []
    try:
        address = f"127.0.0.1:{client}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        with grpc.insecure_channel(address) as ch:
            stub = rpc_pb2_grpc.KVStub(ch)
            while True:
                try:
                    stub.Range(pb.RangeRequest(key=b"x"), timeout=1)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
        children = _children(proc.pid)
        yield Member(proc, address)
    finally:
        children += _children(proc.pid)
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        for pid in children:  # never leave a front-end behind, whatever happened
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()


def test_front_ends_serve_every_connection(tmp_path: Path) -> None:
    with member_with_frontends(tmp_path, 2) as m:
        assert len([p for p in _children(m.proc.pid) if _alive(p)]) == 2
        channels = [m.channel() for _ in range(8)]  # the kernel spreads them over the processes
        try:
            stubs = [rpc_pb2_grpc.KVStub(c) for c in channels]
            watch = rpc_pb2_grpc.WatchStub(channels[0])
            requests = iter([pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"k", range_end=b"l"))])
            stream = watch.Watch(requests, timeout=20)
            assert next(stream).created
            for i, stub in enumerate(stubs):
                put = stub.Put(pb.PutRequest(key=b"k%d" % i, value=b"v%d" % i), timeout=10)
                for other in stubs:
                    got = other.Range(pb.RangeRequest(key=b"k%d" % i), timeout=10)
                    assert got.kvs[0].value == b"v%d" % i and got.header.revision >= put.header.revision
            ser = stubs[3].Range(pb.RangeRequest(key=b"k", range_end=b"l", serializable=True), timeout=10)
            assert ser.count >= 1  # serializable: as applied locally (at least what this process saw)
            seen: list[bytes] = []
            for resp in stream:
                seen += [e.kv.key for e in resp.events]
                if len(seen) >= len(stubs):
                    break
            assert seen == [b"k%d" % i for i in range(len(stubs))]
            stream.cancel()
            lease = rpc_pb2_grpc.LeaseStub(channels[1])
            grant = lease.LeaseGrant(pb.LeaseGrantRequest(TTL=60), timeout=10)
            (ka,) = list(lease.LeaseKeepAlive(iter([pb.LeaseKeepAliveRequest(ID=grant.ID)]), timeout=10))
            assert ka.TTL == 60
            body = json.dumps({"key": "azA="}).encode()
            with urllib.request.urlopen(f"http://{m.address}/v3/kv/range", body, timeout=10) as r:
                assert json.loads(r.read())["kvs"][0]["value"] == "djA="
            with urllib.request.urlopen(f"http://{m.address}/health", timeout=10) as r:
                assert json.loads(r.read())["health"] == "true"
            # a snapshot read by a front-end from its own read-only handle, with etcd's sha256 trailer
            maint = rpc_pb2_grpc.MaintenanceStub(channels[2])
            blobs = [r.blob for r in maint.Snapshot(pb.SnapshotRequest(), timeout=30)]
            assert len(blobs) >= 2 and hashlib.sha256(b"".join(blobs[:-1])).digest() == blobs[-1]
        finally:
            for c in channels:
                c.close()


def test_reads_go_on_across_a_defragmentation(tmp_path: Path) -> None:
    with member_with_frontends(tmp_path, 2) as m:
        channels = [m.channel() for _ in range(4)]
        try:
            stubs = [rpc_pb2_grpc.KVStub(c) for c in channels]
            for i in range(200):
                stubs[0].Put(pb.PutRequest(key=b"d%03d" % i, value=b"x" * 100), timeout=10)
            stubs[0].DeleteRange(pb.DeleteRangeRequest(key=b"d0", range_end=b"d1"), timeout=10)
            errors: list[BaseException] = []
            stop = threading.Event()

            def reader(stub: rpc_pb2_grpc.KVStub) -> None:
                try:
                    while not stop.is_set():
                        r = stub.Range(
                            pb.RangeRequest(key=b"d1", range_end=b"d2", serializable=True), timeout=10
                        )
                        assert r.count == 100
                except BaseException as e:  # reported by the test
                    errors.append(e)

            threads = [threading.Thread(target=reader, args=(s,)) for s in stubs]
            for t in threads:
                t.start()
            maint = rpc_pb2_grpc.MaintenanceStub(channels[1])
            for _ in range(3):
                maint.Defragment(pb.DefragmentRequest(), timeout=30)
            put = stubs[2].Put(pb.PutRequest(key=b"after", value=b"1"), timeout=10)
            stop.set()
            for t in threads:
                t.join(30)
            assert not errors, errors[0]
            for s in stubs:  # every process reads the new file after the switch
                got = s.Range(pb.RangeRequest(key=b"after"), timeout=10)
                assert got.kvs[0].value == b"1" and got.header.revision >= put.header.revision
        finally:
            for c in channels:
                c.close()


def test_sigterm_stops_the_front_ends(tmp_path: Path) -> None:
    with member_with_frontends(tmp_path, 2) as m:
        children = _children(m.proc.pid)
        assert len(children) == 2
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(timeout=20) == 0
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in children)


def _replacement(m: Member, gone: int) -> int:
    """The front-end started in place of `gone` (waits for it, bounded)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        fresh = [p for p in _children(m.proc.pid) if p != gone and _alive(p)]
        if fresh:
            return fresh[0]
        assert m.proc.poll() is None, "the member stopped"
        time.sleep(0.05)
    raise AssertionError("no front-end replaced the dead one")


def test_a_dead_front_end_is_replaced(tmp_path: Path) -> None:
    with member_with_frontends(tmp_path, 1) as m:
        sockets = tmp_path / "data" / "member" / "frontend-sockets"
        assert (sockets / "core.sock").exists()  # in the member's directory, not in $TMPDIR
        (child,) = _children(m.proc.pid)
        os.kill(child, signal.SIGKILL)
        _replacement(m, child)
        with m.channel() as ch:
            stub = rpc_pb2_grpc.KVStub(ch)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                try:
                    put = stub.Put(pb.PutRequest(key=b"after", value=b"1"), timeout=2)
                    break
                except grpc.RpcError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            got = stub.Range(pb.RangeRequest(key=b"after"), timeout=10)
            assert got.kvs[0].value == b"1" and got.header.revision == put.header.revision
        assert m.proc.poll() is None
    assert not sockets.exists()


def test_a_data_dir_too_deep_for_unix_sockets(tmp_path: Path) -> None:
    """The channel's sockets cannot live under a data dir whose path is too long for a unix socket
    address (108 bytes): they go to a private directory in $TMPDIR instead, and the member serves."""
    base = tmp_path / ("d" * 60) / ("e" * 60)
    base.mkdir(parents=True)
    with member_with_frontends(base, 1) as m, m.channel() as ch:
        stub = rpc_pb2_grpc.KVStub(ch)
        put = stub.Put(pb.PutRequest(key=b"deep", value=b"1"), timeout=10)
        got = stub.Range(pb.RangeRequest(key=b"deep"), timeout=10)
        assert got.kvs[0].value == b"1" and got.header.revision == put.header.revision
        assert not (base / "data" / "member" / "frontend-sockets").exists()


def test_front_ends_crashing_in_a_loop_stop_the_member(tmp_path: Path) -> None:
    with member_with_frontends(tmp_path, 1) as m:
        (child,) = _children(m.proc.pid)
        for _ in range(MAX_RESTARTS):
            os.kill(child, signal.SIGKILL)
            child = _replacement(m, child)
        os.kill(child, signal.SIGKILL)
        assert m.proc.wait(timeout=20) == 1


@pytest.mark.parametrize("flag", ["-1", "x"])
def test_a_bad_count_is_refused(tmp_path: Path, flag: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "petcd", "--data-dir", str(tmp_path / "d"), "--frontend-processes", flag],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert r.returncode != 0
