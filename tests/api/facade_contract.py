"""The EtcdFacade contract as executable checks, for any implementation.

Each `check_*` coroutine takes a facade of a fresh single-member store (revision 1, no keys, no
leases, a leader) and asserts what petcd.api relies on (see the facade module's docstring). The fake
facade of these tests runs them in test_facade_contract.py; the runtime's facade can run the same:

    from facade_contract import CHECKS          # with tests/api on sys.path
    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_runtime_facade(check): asyncio.run(with_my_facade(check))
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from petcd.errors import EtcdError
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.mvccpb import kv_pb2 as mvccpb
from petcd.server.facade import EtcdFacade, WatchStreamHandle

WAIT_S = 5.0

Check = Callable[[EtcdFacade], Coroutine[Any, Any, None]]


async def next_response(stream: WatchStreamHandle, it: AsyncIterator[pb.WatchResponse] | None = None) -> Any:
    return await asyncio.wait_for(anext(it or aiter(stream.responses())), WAIT_S)


async def expect_error(coro: Awaitable[Any], message: str) -> None:
    try:
        await coro
    except EtcdError as err:
        assert str(err) == message, (str(err), message)
        return
    raise AssertionError(f"expected EtcdError({message!r})")


async def check_header_and_state(f: EtcdFacade) -> None:
    h = f.header()
    assert h.cluster_id != 0 and h.member_id != 0 and h.revision >= 1 and h.raft_term >= 1
    assert f.leader_id() != 0 and not f.is_learner()
    server, cluster = f.version_info()
    assert server.count(".") == 2 and (cluster == "not_decided" or cluster.count(".") == 2)
    members = await f.member_list(pb.MemberListRequest())
    assert h.member_id in [m.ID for m in members.members]
    status = await f.status(pb.StatusRequest())
    assert status.leader == f.leader_id() and status.header.member_id == h.member_id


async def check_kv(f: EtcdFacade) -> None:
    start = f.header().revision
    put = await f.put(pb.PutRequest(key=b"k", value=b"v1"))
    assert put.header.revision == start + 1
    again = await f.put(pb.PutRequest(key=b"k", value=b"v2", prev_kv=True))
    assert again.prev_kv.value == b"v1" and again.header.revision == start + 2
    got = await f.range(pb.RangeRequest(key=b"k"))
    assert got.count == 1 and got.kvs[0].version == 2 and got.header.revision == start + 2
    old = await f.range(pb.RangeRequest(key=b"k", revision=start + 1))
    assert old.kvs[0].value == b"v1"
    await expect_error(
        f.range(pb.RangeRequest(key=b"k", revision=start + 99)),
        "etcdserver: mvcc: required revision is a future revision",
    )
    txn = await f.txn(
        pb.TxnRequest(
            compare=[pb.Compare(key=b"k", target=pb.Compare.VALUE, result=pb.Compare.EQUAL, value=b"v2")],
            success=[
                pb.RequestOp(request_put=pb.PutRequest(key=b"a", value=b"1")),
                pb.RequestOp(request_put=pb.PutRequest(key=b"b", value=b"1")),
            ],
        )
    )
    assert txn.succeeded and txn.header.revision == start + 3  # one revision for the whole txn
    deleted = await f.delete_range(pb.DeleteRangeRequest(key=b"a", range_end=b"c", prev_kv=True))
    assert deleted.deleted == 2 and len(deleted.prev_kvs) == 2 and deleted.header.revision == start + 4
    await f.compact(pb.CompactionRequest(revision=start + 2))
    await expect_error(
        f.range(pb.RangeRequest(key=b"k", revision=start + 1)),
        "etcdserver: mvcc: required revision has been compacted",
    )


async def check_leases(f: EtcdFacade) -> None:
    grant = await f.lease_grant(pb.LeaseGrantRequest(TTL=30))
    assert grant.ID != 0 and grant.TTL >= 30
    await f.put(pb.PutRequest(key=b"leased", value=b"v", lease=grant.ID))
    ttl = await f.lease_time_to_live(pb.LeaseTimeToLiveRequest(ID=grant.ID, keys=True))
    assert ttl.grantedTTL == grant.TTL and list(ttl.keys) == [b"leased"]
    assert grant.ID in [s.ID for s in (await f.lease_leases(pb.LeaseLeasesRequest())).leases]
    renewed = await f.lease_keep_alive(pb.LeaseKeepAliveRequest(ID=grant.ID))
    assert renewed.ID == grant.ID and renewed.TTL == grant.TTL
    before = f.header().revision
    await f.lease_revoke(pb.LeaseRevokeRequest(ID=grant.ID))
    assert (await f.range(pb.RangeRequest(key=b"leased"))).count == 0
    assert f.header().revision == before + 1  # the attached keys go in one revision
    await expect_error(
        f.lease_revoke(pb.LeaseRevokeRequest(ID=grant.ID)), "etcdserver: requested lease not found"
    )
    try:
        unknown = await f.lease_keep_alive(pb.LeaseKeepAliveRequest(ID=grant.ID))
    except EtcdError as err:
        assert str(err) == "etcdserver: requested lease not found"
    else:
        assert unknown.TTL == 0


async def check_watch_live_events(f: EtcdFacade) -> None:
    stream = f.open_watch_stream()
    it = aiter(stream.responses())
    try:
        first = await stream.create(pb.WatchCreateRequest(key=b"w", range_end=b"x"))
        second = await stream.create(pb.WatchCreateRequest(key=b"\x00", range_end=b"\x00"))
        assert (first, second) == (0, 1)
        txn = await f.txn(
            pb.TxnRequest(
                success=[
                    pb.RequestOp(request_put=pb.PutRequest(key=b"w1", value=b"a")),
                    pb.RequestOp(request_put=pb.PutRequest(key=b"w2", value=b"b")),
                ]
            )
        )
        got: dict[int, pb.WatchResponse] = {}
        while len(got) < 2:
            r = await next_response(stream, it)
            got[r.watch_id] = r
        for r in got.values():
            assert [e.kv.key for e in r.events] == [b"w1", b"w2"]  # a revision is never split
            assert r.header.revision == txn.header.revision and not r.fragment
        assert await stream.cancel(first) and not await stream.cancel(first)
    finally:
        await stream.close()


async def check_watch_history_filters_and_errors(f: EtcdFacade) -> None:
    p1 = await f.put(pb.PutRequest(key=b"h", value=b"1"))
    await f.put(pb.PutRequest(key=b"h", value=b"2"))
    await f.delete_range(pb.DeleteRangeRequest(key=b"h"))
    stream = f.open_watch_stream()
    it = aiter(stream.responses())
    try:
        await stream.create(pb.WatchCreateRequest(key=b"h", start_revision=p1.header.revision, prev_kv=True))
        events: list[mvccpb.Event] = []
        while len(events) < 3:
            events.extend((await next_response(stream, it)).events)
        assert [e.type for e in events] == [mvccpb.Event.PUT, mvccpb.Event.PUT, mvccpb.Event.DELETE]
        assert events[1].prev_kv.value == b"1" and events[2].prev_kv.value == b"2"
        await stream.create(
            pb.WatchCreateRequest(
                key=b"h", start_revision=p1.header.revision, watch_id=9, filters=[pb.WatchCreateRequest.NOPUT]
            )
        )
        r = await next_response(stream, it)
        assert r.watch_id == 9 and [e.type for e in r.events] == [mvccpb.Event.DELETE]
        await expect_error(
            stream.create(pb.WatchCreateRequest(key=b"x", watch_id=9)),
            "mvcc: duplicate watch ID provided on the WatchStream",
        )
        await expect_error(
            stream.create(pb.WatchCreateRequest(key=b"b", range_end=b"a")), "mvcc: watcher range is empty"
        )
        await stream.request_progress()
        progress = await next_response(stream, it)
        assert (
            progress.watch_id == -1
            and not progress.events
            and progress.header.revision == f.header().revision
        )
    finally:
        await stream.close()


async def check_watch_compacted_start(f: EtcdFacade) -> None:
    p1 = await f.put(pb.PutRequest(key=b"c", value=b"1"))
    p2 = await f.put(pb.PutRequest(key=b"c", value=b"2"))
    await f.compact(pb.CompactionRequest(revision=p2.header.revision))
    stream = f.open_watch_stream()
    try:
        wid = await stream.create(pb.WatchCreateRequest(key=b"c", start_revision=p1.header.revision))
        r = await next_response(stream)
        assert r.watch_id == wid and r.canceled and r.compact_revision == p2.header.revision
    finally:
        await stream.close()


async def check_watch_close_ends_responses(f: EtcdFacade) -> None:
    stream = f.open_watch_stream()
    await stream.create(pb.WatchCreateRequest(key=b"z"))
    it = aiter(stream.responses())
    waiter = asyncio.ensure_future(anext(it, None))
    await stream.close()
    assert await asyncio.wait_for(waiter, WAIT_S) is None
    await stream.close()  # idempotent


async def check_snapshot(f: EtcdFacade) -> None:
    source = await f.snapshot()
    data = b"".join([chunk async for chunk in source.chunks()])
    assert data and (source.size == 0 or source.size == len(data))


async def check_maintenance(f: EtcdFacade) -> None:
    alarms = await f.alarm(pb.AlarmRequest(action=pb.AlarmRequest.GET))
    assert list(alarms.alarms) == []
    h1 = await f.hash_kv(pb.HashKVRequest())
    h2 = await f.hash_kv(pb.HashKVRequest())
    assert h1.hash == h2.hash
    await f.defragment(pb.DefragmentRequest())
    await f.hash(pb.HashRequest())


CHECKS: list[Check] = [
    check_header_and_state,
    check_kv,
    check_leases,
    check_watch_live_events,
    check_watch_history_filters_and_errors,
    check_watch_compacted_start,
    check_watch_close_ends_responses,
    check_snapshot,
    check_maintenance,
]
