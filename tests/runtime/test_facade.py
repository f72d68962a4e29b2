"""The runtime facade over a real single-member Node on its node thread (no sockets).

Checks what the facade adds to the Node: futures across threads, watch streams shared by racing
create/responses calls, and etcd's lease answers for unknown leases.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from single_member import SingleMember

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.runtime.facade import RuntimeFacade


@pytest.fixture
def facade(member: SingleMember) -> RuntimeFacade:
    return member.facade()


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_put_and_reads(facade: RuntimeFacade) -> None:
    async def go() -> None:
        puts = await asyncio.gather(
            *(facade.put(pb.PutRequest(key=b"k%d" % i, value=b"v")) for i in range(50))
        )
        assert sorted(p.header.revision for p in puts) == list(range(2, 52))
        lin = await facade.range(pb.RangeRequest(key=b"k", range_end=b"l"))
        ser = await facade.range(pb.RangeRequest(key=b"k", range_end=b"l", serializable=True))
        assert lin.count == ser.count == 50
        assert lin.header.member_id == facade.header().member_id != 0
        status = await facade.status(pb.StatusRequest())
        assert status.version == "3.6.0" and status.leader == facade.leader_id()
        assert status.storageVersion == "3.6.0"

    run(go())


def test_watch_create_racing_responses(facade: RuntimeFacade) -> None:
    async def go() -> None:
        handle = facade.open_watch_stream()
        received: list[pb.WatchResponse] = []

        async def pump() -> None:
            async for resp in handle.responses():
                received.append(resp)
                if resp.events:
                    return

        task = asyncio.create_task(pump())  # responses() and create() start together
        wid = await handle.create(pb.WatchCreateRequest(key=b"w"))
        await facade.put(pb.PutRequest(key=b"w", value=b"1"))
        await asyncio.wait_for(task, 5)
        (ev,) = received[-1].events
        assert received[-1].watch_id == wid and ev.kv.key == b"w" and ev.kv.value == b"1"
        assert received[-1].header.revision == ev.kv.mod_revision
        assert await handle.cancel(wid) and not await handle.cancel(wid)
        await handle.close()

    run(go())


def test_unknown_lease_answers_like_etcd(facade: RuntimeFacade) -> None:
    async def go() -> None:
        ka = await facade.lease_keep_alive(pb.LeaseKeepAliveRequest(ID=4660))
        assert (ka.ID, ka.TTL) == (4660, 0)
        ttl = await facade.lease_time_to_live(pb.LeaseTimeToLiveRequest(ID=4660))
        assert (ttl.ID, ttl.TTL) == (4660, -1)
        grant = await facade.lease_grant(pb.LeaseGrantRequest(TTL=60))
        ka = await facade.lease_keep_alive(pb.LeaseKeepAliveRequest(ID=grant.ID))
        assert ka.TTL == 60

    run(go())


def test_snapshot_is_sized_and_complete(facade: RuntimeFacade) -> None:
    async def go() -> None:
        await facade.put(pb.PutRequest(key=b"s", value=b"x" * 1000))
        src = await facade.snapshot()
        data = b"".join([c async for c in src.chunks()])
        assert len(data) == src.size > 1000

    run(go())


def test_wide_linearizable_range_reads_off_the_node_thread(
    facade: RuntimeFacade, member: SingleMember, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wide linearizable range that is still reading must not hold up raft and apply: a put sent
    # meanwhile is answered before the range is let go.
    node = member.node
    reading = threading.Event()
    release = threading.Event()
    real_range = type(node).range

    def slow_range(self: object, req: pb.RangeRequest) -> pb.RangeResponse:
        if req.range_end:
            reading.set()
            assert release.wait(10)
        return real_range(self, req)  # type: ignore[arg-type]

    monkeypatch.setattr(type(node), "range", slow_range)

    async def go() -> None:
        await facade.put(pb.PutRequest(key=b"a", value=b"1"))
        wide = asyncio.create_task(facade.range(pb.RangeRequest(key=b"a", range_end=b"b")))
        assert await asyncio.to_thread(reading.wait, 10)
        put = await asyncio.wait_for(facade.put(pb.PutRequest(key=b"a2", value=b"2")), 10)
        release.set()
        got = await asyncio.wait_for(wide, 10)
        # the read began after its read index was applied: it sees the first put, and (reading
        # later) the second as well; its header names the revision it read at
        assert [kv.key for kv in got.kvs] == [b"a", b"a2"]
        assert got.header.revision == put.header.revision

    try:
        run(go())
    finally:
        release.set()
