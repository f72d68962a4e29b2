"""The harness's cluster and proxy: who a peer connection comes from, and a partition that works.

A partition is only a fault if it cuts: an isolated leader must lose its leadership to the
others, and a write sent to it must not succeed, while the others keep serving; once healed,
every member agrees again.
"""

from __future__ import annotations

import os
import signal
import struct
import time
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc
from petcd.robustness import cluster as cluster_mod
from petcd.robustness.cluster import Cluster, default_binary, free_ports
from petcd.robustness.proxy import LinkRules, sender_of
from petcd.robustness.runner import _member_log_problems

UNKNOWN = -1


def test_listening_ports_are_distinct_and_outside_the_ephemeral_range() -> None:
    ports = free_ports(40)
    assert len(set(ports)) == 40
    floor = cluster_mod._ephemeral_floor()
    if floor - cluster_mod.LISTEN_PORTS_FLOOR > 1000:
        # an outgoing connection's source port can never take one of them
        assert all(cluster_mod.LISTEN_PORTS_FLOOR <= p < floor for p in ports)


def test_sender_of_petcd_hello() -> None:
    payload = struct.pack(">6sQQQB", b"PETCD1", 7, 0xABC, 0xDEF, 1)
    frame = struct.pack(">IB", len(payload) + 1, 1) + payload
    assert sender_of(frame[:3]) is None  # not enough yet
    assert sender_of(frame[:20]) is None
    assert sender_of(frame) == 0xABC
    assert sender_of(frame + b"more") == 0xABC


def test_sender_of_etcd_rafthttp() -> None:
    head = b"GET /raft/stream/msgappv2/1 HTTP/1.1\r\nHost: x\r\nX-Server-From: 8e9e05c52164694d\r\n"
    assert sender_of(head) == 0x8E9E05C52164694D
    assert sender_of(b"GET /raft/probing HTTP/1.1\r\nHost: x") is None
    assert sender_of(b"GET /raft/probing HTTP/1.1\r\nHost: x\r\n\r\n") == UNKNOWN


def test_link_rules() -> None:
    r = LinkRules(cut={frozenset((1, 2))})
    assert r.is_cut(1, 2) and r.is_cut(2, 1)
    assert not r.is_cut(1, 3)
    assert r.is_cut(1, UNKNOWN) and not r.is_cut(3, UNKNOWN)


def _put(c: Cluster, m: object, key: bytes, timeout: float = 3.0) -> bool:
    try:
        rpc_pb2_grpc.KVStub(c.channel(m)).Put(pb.PutRequest(key=key, value=b"v"), timeout=timeout)  # type: ignore[arg-type]
        return True
    except grpc.RpcError:
        return False


@pytest.mark.timeout(180)
def test_isolated_leader_loses_leadership_and_heals(tmp_path: Path) -> None:
    c = Cluster(default_binary(), 3, tmp_path, seed=1)
    assert c.petcd
    try:
        c.start_all()
        leader = c.leader()
        assert leader is not None
        c.isolate(leader)
        deadline = time.monotonic() + 30
        new = None
        while time.monotonic() < deadline:
            others = [m for m in c.members if m is not leader]
            st = c.status(others[0])
            if st is not None and st.leader and st.leader != leader.member_id:
                new = st.leader
                break
            time.sleep(0.2)
        assert new is not None, "the others did not elect a new leader"
        assert not _put(c, leader, b"on-isolated", timeout=2.0)
        assert _put(c, next(m for m in c.members if m.member_id == new), b"on-majority", timeout=5.0)
        c.heal()
        deadline = time.monotonic() + 30
        revs: set[int] = set()
        while time.monotonic() < deadline:
            revs = {st.header.revision for m in c.members if (st := c.status(m)) is not None}
            if len(revs) == 1 and _put(c, leader, b"after-heal"):
                break
            time.sleep(0.3)
        assert _put(c, leader, b"after-heal-2"), "the healed member does not serve writes"
    finally:
        c.close()


@pytest.mark.timeout(120)
def test_an_exit_the_harness_did_not_ask_for_is_reported(tmp_path: Path) -> None:
    c = Cluster(default_binary(), 1, tmp_path, seed=2)
    try:
        c.start_all()
        m = c.members[0]
        assert c.unexpected_exits() == []
        assert m.proc is not None
        os.kill(m.proc.pid, signal.SIGKILL)  # behind the harness's back, as a crash would be
        m.proc.wait(timeout=10)
        found = c.unexpected_exits()
        assert len(found) == 1 and found[0].startswith("m0 exited with -9")
        assert c.unexpected_exits() == []  # once
        c.start(m)
        assert c.wait_ready(m)
        c.kill(m)  # asked for: no finding
        assert c.unexpected_exits() == []
    finally:
        c.close()


def test_a_traceback_in_a_member_log_is_reported(tmp_path: Path) -> None:
    log = tmp_path / "m0.log"
    log.write_text(
        '{"level":"info","msg":"ready"}\n'
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "KeyError: 'lease'\n"
    )
    fake = SimpleNamespace(members=[SimpleNamespace(name="m0", log_path=log)])
    found = _member_log_problems(fake, 0)  # type: ignore[arg-type]
    assert [v.kind for v in found] == ["member-log"]
    assert "KeyError: 'lease'" in found[0].detail
    log.write_text('{"level":"info","msg":"ready"}\nfailpoint raftAfterSave panic: crashing the process\n')
    assert _member_log_problems(fake, 0) == []  # type: ignore[arg-type]
    log.write_text(
        "ERROR:asyncio:Future exception was never retrieved\n"
        "future: <Future finished exception=Timeout('etcdserver: request timed out')>\n"
        "Traceback (most recent call last):\n"
        '  File "channel.py", line 424, in call\n'
        "petcd.server.errors.Timeout: etcdserver: request timed out\n"
    )
    assert _member_log_problems(fake, 0) == []  # type: ignore[arg-type]
