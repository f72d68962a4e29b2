"""Every RPC over real gRPC against the fake facade: round trips, checks, error codes and strings."""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from api_served import Served
from fake_facade import MEMBER_ID

import petcd
from petcd.api import errors as api_errors
from petcd.errors import EtcdError
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc as rpc
from petcd.pb.v3electionpb import v3election_pb2 as epb
from petcd.pb.v3electionpb import v3election_pb2_grpc as erpc
from petcd.pb.v3lockpb import v3lock_pb2 as lpb
from petcd.pb.v3lockpb import v3lock_pb2_grpc as lrpc


@pytest.fixture
def channel(served: Served) -> Iterator[grpc.Channel]:
    ch = grpc.insecure_channel(served.target)
    try:
        yield ch
    finally:
        ch.close()


def rpc_error(fn: Any, *args: Any, **kwargs: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    err: Any = info.value
    return err.code(), err.details()


def put_op(key: bytes, value: bytes = b"v") -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=value))


# -- KV -----------------------------------------------------------------------------------------------


def test_kv_round_trip(channel: grpc.Channel) -> None:
    kv = rpc.KVStub(channel)
    put = kv.Put(pb.PutRequest(key=b"foo", value=b"bar"))
    assert put.header.revision == 2 and put.header.member_id == MEMBER_ID and put.header.raft_term == 2
    again = kv.Put(pb.PutRequest(key=b"foo", value=b"baz", prev_kv=True))
    assert again.prev_kv.value == b"bar" and again.header.revision == 3
    got = kv.Range(pb.RangeRequest(key=b"foo"))
    assert got.count == 1 and got.kvs[0].value == b"baz" and got.kvs[0].version == 2
    assert got.kvs[0].create_revision == 2 and got.kvs[0].mod_revision == 3
    old = kv.Range(pb.RangeRequest(key=b"foo", revision=2))
    assert old.kvs[0].value == b"bar"
    txn = kv.Txn(
        pb.TxnRequest(
            compare=[pb.Compare(key=b"foo", target=pb.Compare.VALUE, result=pb.Compare.EQUAL, value=b"baz")],
            success=[put_op(b"t1"), pb.RequestOp(request_range=pb.RangeRequest(key=b"foo"))],
            failure=[put_op(b"t2")],
        )
    )
    assert txn.succeeded and txn.header.revision == 4
    assert txn.responses[1].response_range.kvs[0].value == b"baz"
    deleted = kv.DeleteRange(pb.DeleteRangeRequest(key=b"t", range_end=b"u", prev_kv=True))
    assert deleted.deleted == 1 and deleted.prev_kvs[0].key == b"t1"
    assert kv.Compact(pb.CompactionRequest(revision=3)).header.revision == 5
    assert rpc_error(kv.Range, pb.RangeRequest(key=b"foo", revision=2)) == (
        grpc.StatusCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision has been compacted",
    )
    assert rpc_error(kv.Range, pb.RangeRequest(key=b"foo", revision=99)) == (
        grpc.StatusCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision is a future revision",
    )


@pytest.mark.parametrize(
    ("method", "request_", "message"),
    [
        ("Range", pb.RangeRequest(), "etcdserver: key is not provided"),
        ("Put", pb.PutRequest(value=b"x"), "etcdserver: key is not provided"),
        ("DeleteRange", pb.DeleteRangeRequest(), "etcdserver: key is not provided"),
        ("Put", pb.PutRequest(key=b"k", value=b"x", ignore_value=True), "etcdserver: value is provided"),
        ("Put", pb.PutRequest(key=b"k", lease=5, ignore_lease=True), "etcdserver: lease is provided"),
        ("Put", pb.PutRequest(key=b"missing", ignore_value=True), "etcdserver: key not found"),
        (
            "Txn",
            pb.TxnRequest(success=[put_op(b"k")] * 129),
            "etcdserver: too many operations in txn request",
        ),
        ("Txn", pb.TxnRequest(compare=[pb.Compare()]), "etcdserver: key is not provided"),
        ("Txn", pb.TxnRequest(success=[pb.RequestOp()]), "etcdserver: key not found"),
        (
            "Txn",
            pb.TxnRequest(success=[put_op(b"k"), put_op(b"k")]),
            "etcdserver: duplicate key given in txn request",
        ),
        (
            "Txn",
            pb.TxnRequest(
                success=[
                    put_op(b"b"),
                    pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=b"a", range_end=b"c")),
                ]
            ),
            "etcdserver: duplicate key given in txn request",
        ),
        (
            "Txn",
            pb.TxnRequest(
                success=[put_op(b"k"), pb.RequestOp(request_txn=pb.TxnRequest(success=[put_op(b"k")]))]
            ),
            "etcdserver: duplicate key given in txn request",
        ),
    ],
)
def test_kv_checks_as_etcd(channel: grpc.Channel, method: str, request_: Any, message: str) -> None:
    assert rpc_error(getattr(rpc.KVStub(channel), method), request_) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        message,
    )


def test_txn_allows_what_etcd_allows(channel: grpc.Channel) -> None:
    kv = rpc.KVStub(channel)
    # the same key put in both branches of a nested txn, and a put next to a from-key delete ("\0" end)
    nested = pb.TxnRequest(success=[put_op(b"k")], failure=[put_op(b"k")])
    resp = kv.Txn(pb.TxnRequest(success=[pb.RequestOp(request_txn=nested)]))
    assert resp.succeeded
    from_key = pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=b"a", range_end=b"\x00"))
    assert kv.Txn(pb.TxnRequest(success=[put_op(b"b"), from_key])).succeeded
    assert kv.Txn(pb.TxnRequest(success=[put_op(b"k%d" % i) for i in range(128)])).succeeded  # the limit


# -- the error table ----------------------------------------------------------------------------------


def _all_error_classes() -> list[type[EtcdError]]:
    for mod in ("petcd.errors", "petcd.server.errors", "petcd.lease.errors"):
        importlib.import_module(mod)
    for m in pkgutil.walk_packages(petcd.__path__, "petcd."):
        if m.name.startswith(("petcd.server.", "petcd.lease.", "petcd.mvcc.")):
            importlib.import_module(m.name)
    out: list[type[EtcdError]] = []
    stack = [EtcdError]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith(("petcd.server", "petcd.lease", "petcd.errors")):
                out.append(sub)
    return out


# root classes and errors that never reach a client as such (the server handles them itself)
NOT_CLIENT_FACING = {"ServerError", "LeaseError", "NotPrimary", "UnknownMethod"}


def test_every_server_error_has_a_grpc_code() -> None:
    classes = _all_error_classes()
    assert len(classes) > 20
    for cls in classes:
        if cls.__name__ in NOT_CLIENT_FACING:
            continue
        code, message = api_errors.status_of(cls())
        assert code != grpc.StatusCode.UNKNOWN, (cls, cls.message)
        assert message.startswith("etcdserver: "), (cls, message)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("etcdserver: requested lease not found", grpc.StatusCode.NOT_FOUND),
        ("etcdserver: no leader", grpc.StatusCode.UNAVAILABLE),
        ("etcdserver: not leader", grpc.StatusCode.FAILED_PRECONDITION),
        ("etcdserver: mvcc: database space exceeded", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("etcdserver: permission denied", grpc.StatusCode.PERMISSION_DENIED),
        ("etcdserver: invalid auth token", grpc.StatusCode.UNAUTHENTICATED),
        ("etcdserver: corrupt cluster", grpc.StatusCode.DATA_LOSS),
        ("etcdserver: too large lease TTL", grpc.StatusCode.OUT_OF_RANGE),
        ("something else", grpc.StatusCode.UNKNOWN),
    ],
)
def test_status_of(message: str, code: grpc.StatusCode) -> None:
    assert api_errors.status_of(EtcdError(message)) == (code, message)


def test_removed_member_reads_as_not_found() -> None:
    assert api_errors.status_of(EtcdError("membership: ID removed")) == (
        grpc.StatusCode.NOT_FOUND,
        "etcdserver: member not found",
    )


# -- interceptor checks -------------------------------------------------------------------------------


def test_require_leader_metadata(served: Served, channel: grpc.Channel) -> None:
    kv = rpc.KVStub(channel)
    served.call(lambda: setattr(served.facade, "leader", 0))
    md = (("hasleader", "true"),)
    assert rpc_error(kv.Range, pb.RangeRequest(key=b"a"), metadata=md) == (
        grpc.StatusCode.UNAVAILABLE,
        "etcdserver: no leader",
    )
    assert kv.Range(pb.RangeRequest(key=b"a")).count == 0  # without the metadata it is served


def test_learner_answers_status_and_serializable_range_only(served: Served, channel: grpc.Channel) -> None:
    served.call(lambda: setattr(served.facade, "learner", True))
    kv = rpc.KVStub(channel)
    assert kv.Range(pb.RangeRequest(key=b"a", serializable=True)).count == 0
    assert rpc.MaintenanceStub(channel).Status(pb.StatusRequest()).version == "3.6.0"
    expected = (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: rpc not supported for learner")
    assert rpc_error(kv.Range, pb.RangeRequest(key=b"a")) == expected
    assert rpc_error(kv.Put, pb.PutRequest(key=b"a")) == expected
    stream = rpc.WatchStub(channel).Watch(
        iter([pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"a"))])
    )
    assert rpc_error(lambda: next(stream)) == expected


# -- lease --------------------------------------------------------------------------------------------


def test_lease_round_trip(channel: grpc.Channel) -> None:
    lease = rpc.LeaseStub(channel)
    kv = rpc.KVStub(channel)
    g = lease.LeaseGrant(pb.LeaseGrantRequest(TTL=30))
    assert g.TTL == 30 and g.ID != 0
    kv.Put(pb.PutRequest(key=b"lk", value=b"v", lease=g.ID))
    ttl = lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=g.ID, keys=True))
    assert ttl.grantedTTL == 30 and list(ttl.keys) == [b"lk"]
    assert [s.ID for s in lease.LeaseLeases(pb.LeaseLeasesRequest()).leases] == [g.ID]
    replies = list(
        lease.LeaseKeepAlive(iter([pb.LeaseKeepAliveRequest(ID=g.ID), pb.LeaseKeepAliveRequest(ID=7)]))
    )
    assert [(r.ID, r.TTL) for r in replies] == [(g.ID, 30), (7, 0)]  # an unknown lease renews to TTL 0
    lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=g.ID))
    assert kv.Range(pb.RangeRequest(key=b"lk")).count == 0
    assert rpc_error(lease.LeaseRevoke, pb.LeaseRevokeRequest(ID=g.ID)) == (
        grpc.StatusCode.NOT_FOUND,
        "etcdserver: requested lease not found",
    )
    lease.LeaseGrant(pb.LeaseGrantRequest(ID=77, TTL=5))
    assert rpc_error(lease.LeaseGrant, pb.LeaseGrantRequest(ID=77, TTL=5)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "etcdserver: lease already exists",
    )


# -- cluster ------------------------------------------------------------------------------------------


def test_cluster_round_trip(channel: grpc.Channel) -> None:
    cl = rpc.ClusterStub(channel)
    assert [m.ID for m in cl.MemberList(pb.MemberListRequest()).members] == [MEMBER_ID]
    added = cl.MemberAdd(pb.MemberAddRequest(peerURLs=["http://127.0.0.1:12380"], isLearner=True))
    assert added.member.isLearner and len(added.members) == 2
    assert len(cl.MemberPromote(pb.MemberPromoteRequest(ID=added.member.ID)).members) == 2
    assert rpc_error(cl.MemberPromote, pb.MemberPromoteRequest(ID=added.member.ID)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "etcdserver: can only promote a learner member",
    )
    cl.MemberUpdate(pb.MemberUpdateRequest(ID=added.member.ID, peerURLs=["http://127.0.0.1:22380"]))
    assert len(cl.MemberRemove(pb.MemberRemoveRequest(ID=added.member.ID)).members) == 1
    assert rpc_error(cl.MemberRemove, pb.MemberRemoveRequest(ID=12345)) == (
        grpc.StatusCode.NOT_FOUND,
        "etcdserver: member not found",
    )


@pytest.mark.parametrize(
    "urls", [[], ["127.0.0.1:2380"], ["ftp://h:1"], ["http://h"], ["http://h:1/path"], ["http://h:x"]]
)
def test_member_add_bad_urls(channel: grpc.Channel, urls: list[str]) -> None:
    assert rpc_error(rpc.ClusterStub(channel).MemberAdd, pb.MemberAddRequest(peerURLs=urls)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "etcdserver: given member URLs are invalid",
    )


# -- maintenance --------------------------------------------------------------------------------------


def test_maintenance_round_trip(served: Served, channel: grpc.Channel) -> None:
    m = rpc.MaintenanceStub(channel)
    st = m.Status(pb.StatusRequest())
    assert st.leader == MEMBER_ID and st.dbSize == len(served.facade.db)
    act = m.Alarm(pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=MEMBER_ID, alarm=pb.NOSPACE))
    assert [a.alarm for a in act.alarms] == [pb.NOSPACE]
    assert [a.alarm for a in m.Alarm(pb.AlarmRequest(action=pb.AlarmRequest.GET)).alarms] == [pb.NOSPACE]
    m.Defragment(pb.DefragmentRequest())
    assert m.Hash(pb.HashRequest()).hash == m.HashKV(pb.HashKVRequest()).hash
    m.MoveLeader(pb.MoveLeaderRequest(targetID=MEMBER_ID))
    assert rpc_error(m.Downgrade, pb.DowngradeRequest()) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "unknown method Downgrade for service etcdserverpb.Maintenance",
    )


def test_snapshot_stream(served: Served, channel: grpc.Channel) -> None:
    parts = list(rpc.MaintenanceStub(channel).Snapshot(pb.SnapshotRequest()))
    db = served.facade.db
    blobs = [p.blob for p in parts]
    assert all(len(b) == 32 * 1024 for b in blobs[:-2])
    assert b"".join(blobs[:-1]) == db
    assert blobs[-1] == hashlib.sha256(db).digest() and parts[-1].remaining_bytes == 0
    sent = 0
    for p in parts[:-1]:
        sent += len(p.blob)
        assert p.remaining_bytes == len(db) - sent


def test_auth_is_unimplemented(channel: grpc.Channel) -> None:
    auth = rpc.AuthStub(channel)
    assert rpc_error(auth.AuthStatus, pb.AuthStatusRequest()) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "unknown method AuthStatus for service etcdserverpb.Auth",
    )
    assert rpc_error(auth.UserAdd, pb.AuthUserAddRequest(name="u"))[0] == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_health(served: Served, channel: grpc.Channel) -> None:
    from petcd.api.health import HealthCheckRequest, HealthCheckResponse

    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=HealthCheckRequest.SerializeToString,
        response_deserializer=HealthCheckResponse.FromString,
    )
    assert check(HealthCheckRequest()).status == 1
    assert rpc_error(check, HealthCheckRequest(service="nope"))[0] == grpc.StatusCode.NOT_FOUND
    served.call(lambda: served.health.set_serving(False))
    assert check(HealthCheckRequest()).status == 2


# -- election and lock --------------------------------------------------------------------------------


def test_election(channel: grpc.Channel) -> None:
    el = erpc.ElectionStub(channel)
    lease = rpc.LeaseStub(channel)
    l1 = lease.LeaseGrant(pb.LeaseGrantRequest(TTL=60)).ID
    l2 = lease.LeaseGrant(pb.LeaseGrantRequest(TTL=60)).ID
    assert rpc_error(el.Leader, epb.LeaderRequest(name=b"e")) == (
        grpc.StatusCode.UNKNOWN,
        "election: no leader",
    )
    first = el.Campaign(epb.CampaignRequest(name=b"e", lease=l1, value=b"one"))
    assert first.leader.key == b"e/" + format(l1, "x").encode()
    assert el.Leader(epb.LeaderRequest(name=b"e")).kv.value == b"one"
    observed = el.Observe(epb.LeaderRequest(name=b"e"))
    assert next(observed).kv.value == b"one"
    el.Proclaim(epb.ProclaimRequest(leader=first.leader, value=b"uno"))
    assert next(observed).kv.value == b"uno"
    second: list[Any] = []
    t = threading.Thread(
        target=lambda: second.append(el.Campaign(epb.CampaignRequest(name=b"e", lease=l2, value=b"two")))
    )
    t.start()
    time.sleep(0.3)
    assert not second  # waits for the first leader
    el.Resign(epb.ResignRequest(leader=first.leader))
    t.join(5)
    assert second and second[0].leader.lease == l2
    assert next(observed).kv.value == b"two"
    observed.cancel()
    assert rpc_error(el.Proclaim, epb.ProclaimRequest(leader=first.leader, value=b"x")) == (
        grpc.StatusCode.UNKNOWN,
        "election: not leader",
    )
    assert rpc_error(el.Resign, epb.ResignRequest()) == (
        grpc.StatusCode.UNKNOWN,
        '"leader" field must be provided',
    )


def test_lock(channel: grpc.Channel) -> None:
    lk = lrpc.LockStub(channel)
    first = lk.Lock(lpb.LockRequest(name=b"m"))
    assert first.key.startswith(b"m/")
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(lk.Lock(lpb.LockRequest(name=b"m"))))
    t.start()
    time.sleep(0.3)
    assert not got
    lk.Unlock(lpb.UnlockRequest(key=first.key))
    t.join(5)
    assert got and got[0].key != first.key
    assert got[0].header.revision > first.header.revision


def test_snapshot_names_the_storage_version_and_learners_may_take_it(
    served: Served, channel: grpc.Channel
) -> None:
    served.call(lambda: setattr(served.facade, "learner", True))
    parts = list(rpc.MaintenanceStub(channel).Snapshot(pb.SnapshotRequest()))
    assert {p.version for p in parts} == {"3.6.0"}
    assert not parts[0].HasField("header")


def test_keep_alive_requiring_a_leader_ends_without_one(served: Served, channel: grpc.Channel) -> None:
    fast = type(served.core.options)(election_timeout_s=0.05)
    served.call(lambda: setattr(served.core, "options", fast))
    lease = rpc.LeaseStub(channel)
    lid = lease.LeaseGrant(pb.LeaseGrantRequest(TTL=30)).ID
    sent = threading.Event()

    def requests() -> Iterator[pb.LeaseKeepAliveRequest]:
        yield pb.LeaseKeepAliveRequest(ID=lid)
        sent.wait(5)

    call = lease.LeaseKeepAlive(requests(), metadata=(("hasleader", "true"),))
    assert next(call).TTL == 30
    served.call(lambda: setattr(served.facade, "leader", 0))
    assert rpc_error(lambda: next(call)) == (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
    sent.set()


def test_campaign_without_a_lease_gets_a_session_lease(served: Served, channel: grpc.Channel) -> None:
    resp = erpc.ElectionStub(channel).Campaign(epb.CampaignRequest(name=b"nolease", value=b"v"))
    assert resp.leader.lease != 0
    ttl = rpc.LeaseStub(channel).LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=resp.leader.lease, keys=True))
    assert ttl.grantedTTL == 60 and list(ttl.keys) == [resp.leader.key]


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_taken_port_is_refused_unless_shared_on_purpose(reuse_port: bool) -> None:
    import asyncio

    from fake_facade import FakeFacade

    from petcd.api.server import build_grpc_server

    async def bind_twice() -> bool:
        first, _, _ = build_grpc_server(FakeFacade(), reuse_port=reuse_port)
        second, _, _ = build_grpc_server(FakeFacade(), reuse_port=reuse_port)
        try:
            port = first.add_insecure_port("127.0.0.1:0")
            await first.start()
            try:
                second.add_insecure_port(f"127.0.0.1:{port}")
            except RuntimeError:
                return False
            return True
        finally:
            await first.stop(0)
            await second.stop(0)

    assert asyncio.run(bind_twice()) == reuse_port
