"""The API's own answers (checks, watch control responses, missing methods) next to the reference etcd's.

The same invalid requests go to a reference etcd 3.4.23 and to the API over the fake facade; the
gRPC code and the message must match byte for byte, as clients compare them. Only what the API
layer decides is compared here (the store's behaviour is diffed in tests/mvcc).
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from api_served import Served
from servers import free_ports

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc as rpc
from petcd.pb.v3electionpb import v3election_pb2 as epb
from petcd.pb.v3electionpb import v3election_pb2_grpc as erpc

ETCD = "/usr/bin/etcd"  # the reference etcd (Debian etcd-server), never petcd on PATH
pytestmark = pytest.mark.skipif(not os.path.exists(ETCD), reason="reference etcd not installed")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    data: Path = tmp_path_factory.mktemp("etcd")
    client, peer = free_ports(2)
    proc = subprocess.Popen(
        [
            ETCD,
            "--data-dir",
            str(data / "etcd"),
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
        stub = rpc.KVStub(channel)
        deadline = time.monotonic() + 20
        while True:
            try:
                stub.Range(pb.RangeRequest(key=b"x"), timeout=1)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield channel
    finally:
        channel.close()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ours() -> Iterator[grpc.Channel]:
    s = Served()
    s.start()
    channel = grpc.insecure_channel(s.target)
    try:
        yield channel
    finally:
        channel.close()
        s.stop()


def outcome(channel: grpc.Channel, stub_cls: Any, method: str, req: Any) -> tuple[Any, str]:
    try:
        getattr(stub_cls(channel), method)(req, timeout=5)
    except grpc.RpcError as err:
        e: Any = err
        return e.code(), e.details()
    return "ok", ""


def put(key: bytes) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=b"v"))


def delete(key: bytes, end: bytes = b"") -> pb.RequestOp:
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, range_end=end))


def txn(*ops: pb.RequestOp, failure: tuple[pb.RequestOp, ...] = ()) -> pb.TxnRequest:
    return pb.TxnRequest(success=list(ops), failure=list(failure))


CASES: list[tuple[str, Any, str, Any]] = [
    ("range-empty-key", rpc.KVStub, "Range", pb.RangeRequest()),
    ("put-empty-key", rpc.KVStub, "Put", pb.PutRequest(value=b"x")),
    ("delete-empty-key", rpc.KVStub, "DeleteRange", pb.DeleteRangeRequest()),
    ("ignore-value-with-value", rpc.KVStub, "Put", pb.PutRequest(key=b"k", value=b"x", ignore_value=True)),
    ("ignore-lease-with-lease", rpc.KVStub, "Put", pb.PutRequest(key=b"k", lease=1, ignore_lease=True)),
    ("txn-129-ops", rpc.KVStub, "Txn", txn(*[put(b"k%d" % i) for i in range(129)])),
    ("txn-128-ops", rpc.KVStub, "Txn", txn(*[put(b"k%d" % i) for i in range(128)])),
    ("txn-compare-no-key", rpc.KVStub, "Txn", pb.TxnRequest(compare=[pb.Compare()])),
    ("txn-empty-op", rpc.KVStub, "Txn", txn(pb.RequestOp())),
    ("txn-put-twice", rpc.KVStub, "Txn", txn(put(b"a"), put(b"a"))),
    ("txn-put-in-deleted-range", rpc.KVStub, "Txn", txn(put(b"b"), delete(b"a", b"c"))),
    ("txn-put-and-delete-key", rpc.KVStub, "Txn", txn(put(b"a"), delete(b"a"))),
    ("txn-put-and-from-key-delete", rpc.KVStub, "Txn", txn(put(b"b"), delete(b"a", b"\x00"))),
    ("txn-put-next-to-other-delete", rpc.KVStub, "Txn", txn(put(b"z"), delete(b"a", b"c"))),
    (
        "txn-nested-duplicate",
        rpc.KVStub,
        "Txn",
        txn(put(b"a"), pb.RequestOp(request_txn=txn(put(b"a")))),
    ),
    (
        "txn-nested-then-else-same-key",
        rpc.KVStub,
        "Txn",
        txn(pb.RequestOp(request_txn=txn(put(b"a"), failure=(put(b"a"),)))),
    ),
    (
        "txn-nested-delete-vs-outer-put",
        rpc.KVStub,
        "Txn",
        txn(put(b"b"), pb.RequestOp(request_txn=txn(delete(b"a", b"c")))),
    ),
    (
        "txn-nested-empty-key",
        rpc.KVStub,
        "Txn",
        txn(pb.RequestOp(request_txn=txn(pb.RequestOp(request_range=pb.RangeRequest())))),
    ),
    ("member-add-no-urls", rpc.ClusterStub, "MemberAdd", pb.MemberAddRequest()),
    ("member-add-no-scheme", rpc.ClusterStub, "MemberAdd", pb.MemberAddRequest(peerURLs=["127.0.0.1:2380"])),
    ("member-add-no-port", rpc.ClusterStub, "MemberAdd", pb.MemberAddRequest(peerURLs=["http://127.0.0.1"])),
    ("member-add-path", rpc.ClusterStub, "MemberAdd", pb.MemberAddRequest(peerURLs=["http://127.0.0.1:1/x"])),
    ("member-add-ftp", rpc.ClusterStub, "MemberAdd", pb.MemberAddRequest(peerURLs=["ftp://127.0.0.1:1"])),
    ("downgrade", rpc.MaintenanceStub, "Downgrade", pb.DowngradeRequest()),
    ("election-no-leader", erpc.ElectionStub, "Leader", epb.LeaderRequest(name=b"nobody")),
    ("resign-without-leader", erpc.ElectionStub, "Resign", epb.ResignRequest()),
    ("proclaim-without-leader", erpc.ElectionStub, "Proclaim", epb.ProclaimRequest()),
    (
        "proclaim-not-leader",
        erpc.ElectionStub,
        "Proclaim",
        epb.ProclaimRequest(leader=epb.LeaderKey(name=b"e", key=b"e/1", rev=5, lease=1), value=b"v"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_same_error_as_reference(
    reference: grpc.Channel, ours: grpc.Channel, case: tuple[str, Any, str, Any]
) -> None:
    _, stub, method, req = case
    assert outcome(ours, stub, method, req) == outcome(reference, stub, method, req)


def _control(channel: grpc.Channel, reqs: list[pb.WatchRequest], n: int) -> list[tuple[Any, ...]]:
    call = rpc.WatchStub(channel).Watch(_hold(reqs))
    out = []
    for _ in range(n):
        r = next(call)
        out.append((r.watch_id, r.created, r.canceled, r.cancel_reason, r.compact_revision, len(r.events)))
    call.cancel()
    return out


def _hold(reqs: list[pb.WatchRequest]) -> Iterator[pb.WatchRequest]:
    yield from reqs
    time.sleep(2)  # keep the send side open while the responses are read


WATCH_CASES: list[tuple[str, list[pb.WatchRequest], int]] = [
    (
        "ids-and-duplicate",
        [
            pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"a")),
            pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"b", watch_id=7)),
            pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"c", watch_id=7)),
            pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"d")),
        ],
        4,
    ),
    (
        "empty-range-then-cancel",
        [
            pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"b", range_end=b"a")),
            pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"a")),
            pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=99)),
            pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=0)),
        ],
        3,
    ),
    (
        "empty-key-watches-everything",
        [pb.WatchRequest(create_request=pb.WatchCreateRequest(range_end=b"\x00"))],
        1,
    ),
]


@pytest.mark.parametrize(("name", "reqs", "n"), WATCH_CASES, ids=[c[0] for c in WATCH_CASES])
def test_same_watch_control_responses_as_reference(
    reference: grpc.Channel, ours: grpc.Channel, name: str, reqs: list[pb.WatchRequest], n: int
) -> None:
    assert _control(ours, reqs, n) == _control(reference, reqs, n)


KEYS = [b"a", b"b", b"c", b"d"]
ENDS = [b"", b"", b"c", b"\x00", b"e"]


def random_ops(rng: random.Random, depth: int) -> list[pb.RequestOp]:
    ops = []
    for _ in range(rng.randint(0, 3)):
        roll = rng.random()
        if roll < 0.45:
            ops.append(put(rng.choice(KEYS)))
        elif roll < 0.8:
            key = rng.choice(KEYS)
            end = rng.choice(ENDS)
            ops.append(delete(key, end if not end or end == b"\x00" or end > key else b""))
        elif depth < 2:
            ops.append(
                pb.RequestOp(
                    request_txn=txn(*random_ops(rng, depth + 1), failure=tuple(random_ops(rng, depth + 1)))
                )
            )
    return ops


def test_duplicate_key_detection_matches_reference(reference: grpc.Channel, ours: grpc.Channel) -> None:
    rng = random.Random(5)
    seen = set()
    for _ in range(150):
        req = txn(*random_ops(rng, 0), failure=tuple(random_ops(rng, 0)))
        want = outcome(reference, rpc.KVStub, "Txn", req)
        assert outcome(ours, rpc.KVStub, "Txn", req) == want, req
        seen.add(want)
    assert len(seen) == 2  # both accepted and refused txns were generated


def _election_story(channel: grpc.Channel, lease_id: int) -> list[Any]:
    el = erpc.ElectionStub(channel)
    rpc.LeaseStub(channel).LeaseGrant(pb.LeaseGrantRequest(ID=lease_id, TTL=60))
    story: list[Any] = []
    camp = el.Campaign(epb.CampaignRequest(name=b"story", lease=lease_id, value=b"first"))
    story.append((camp.leader.name, camp.leader.key, camp.leader.lease))
    leader = el.Leader(epb.LeaderRequest(name=b"story")).kv
    story.append((leader.key, leader.value, leader.version, leader.lease))
    el.Proclaim(epb.ProclaimRequest(leader=camp.leader, value=b"second"))
    leader = el.Leader(epb.LeaderRequest(name=b"story")).kv
    story.append((leader.value, leader.version))
    # campaigning again with the same lease resumes the same key and proclaims the new value
    again = el.Campaign(epb.CampaignRequest(name=b"story", lease=lease_id, value=b"third"))
    story.append((again.leader.key, again.leader.rev == camp.leader.rev))
    story.append(el.Leader(epb.LeaderRequest(name=b"story")).kv.value)
    el.Resign(epb.ResignRequest(leader=camp.leader))
    story.append(outcome(channel, erpc.ElectionStub, "Leader", epb.LeaderRequest(name=b"story")))
    story.append(
        outcome(channel, erpc.ElectionStub, "Proclaim", epb.ProclaimRequest(leader=camp.leader, value=b"x"))
    )
    return story


def test_election_story_matches_reference(reference: grpc.Channel, ours: grpc.Channel) -> None:
    assert _election_story(ours, 0x7E57) == _election_story(reference, 0x7E57)
