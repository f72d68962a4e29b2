"""End to end: member add (learner), promote and remove while a client keeps writing. Every write
acknowledged during the changes is on every remaining member afterwards, and HashKV agrees."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import grpc
from cluster_ops import add_member, member_id
from test_tutorial import (
    Member,
    endpoint_status,
    etcdctl,
    free_ports,
    make_cluster,
    members,  # noqa: F401 - the fixture
    wait_for,
    wait_ready,
)

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc

WRITES_MAX = 5000


class Writer:
    """Puts unique keys to one member until stopped; remembers what was acknowledged."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.acked: dict[bytes, int] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with grpc.insecure_channel(self.address) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            for i in range(WRITES_MAX):
                if self._stop.is_set():
                    return
                key = b"w%05d" % i
                try:
                    resp = kv.Put(pb.PutRequest(key=key, value=b"%d" % i), timeout=5)
                    self.acked[key] = resp.header.revision
                except grpc.RpcError:
                    self.errors += 1
                    time.sleep(0.05)


def test_add_promote_remove_while_writes_run(tmp_path: Path, members: list[Member]) -> None:  # noqa: F811
    ms, initial = make_cluster(tmp_path, members, 3)
    for m in ms:
        m.start(initial)
    wait_ready(ms)
    stay, other, leaving = ms
    client, peer = free_ports(2)
    new = Member("etcd4", tmp_path, client, peer)
    members.append(new)

    with Writer(stay.client_url.split("://", 1)[1]) as writer:
        wait_for(lambda: len(writer.acked) >= 20, 15.0, "writes to start")
        env = add_member(stay.client_url, new, learner=True)
        new.start("", etcd_env=env)
        wait_ready([new])
        new_id = member_id(stay.client_url, new)

        def promoted() -> bool:
            out = etcdctl(stay.client_url, "member", "promote", new_id, check=False, stderr=True)
            return "promoted in cluster" in out or "can only promote a learner member\n" in out

        wait_for(promoted, 20.0, "the learner to be promoted")
        leaving_id = hex(int(endpoint_status(leaving)["header"]["member_id"]))[2:]  # type: ignore[index]
        assert "removed from cluster" in etcdctl(stay.client_url, "member", "remove", leaving_id)
        wait_for(
            lambda: leaving.proc is not None and leaving.proc.poll() is not None,
            15.0,
            "the removed member to exit",
        )
        before = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= before + 20, 15.0, "writes to go on after the changes")

    assert len(writer.acked) >= 60
    rows = etcdctl(stay.client_url, "member", "list").splitlines()
    assert sorted(r.split(", ")[2] for r in rows) == sorted([stay.name, other.name, new.name])
    assert all(r.endswith(", false") for r in rows)
    rest = [stay, other, new]
    last_key = max(writer.acked)
    for m in rest:
        wait_for(
            lambda m=m: etcdctl(m.client_url, "get", last_key.decode(), "--consistency=s", check=False) != "",  # type: ignore[misc]
            15.0,
            f"{m.name} to catch up",
        )
        out = etcdctl(m.client_url, "get", "w", "--prefix", "--keys-only", "--consistency=s").split()
        missing = sorted(set(writer.acked) - {k.encode() for k in out})
        assert not missing, f"{m.name} lacks acknowledged writes {missing[:5]}"
    rev = int(endpoint_status(stay)["header"]["revision"])  # type: ignore[index]
    endpoints = ",".join(m.client_url for m in rest)
    hashes = json.loads(etcdctl(endpoints, "endpoint", "hashkv", "--rev", str(rev), "-w", "json"))
    assert len({int(r["HashKV"]["hash"]) for r in hashes}) == 1
