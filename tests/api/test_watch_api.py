"""The Watch stream over real gRPC: created/canceled control responses, ordering, history, progress,
compaction, fragmenting, and errors as etcd's serverWatchStream sends them."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from api_served import Served
from watch_stream import Stream

from petcd.api.watch import fragments
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc as rpc
from petcd.pb.mvccpb import kv_pb2 as mvccpb


@pytest.fixture
def kv_and_stream(served: Served) -> Iterator[tuple[Any, Stream]]:
    ch = grpc.insecure_channel(served.target)
    s = Stream(ch)
    try:
        yield rpc.KVStub(ch), s
    finally:
        s.close()
        ch.close()


def test_create_then_events(kv_and_stream: tuple[Any, Stream]) -> None:
    kv, s = kv_and_stream
    s.create(key=b"a", range_end=b"c")
    created = s.recv()
    assert created.created and created.watch_id == 0 and created.header.revision == 1
    kv.Put(pb.PutRequest(key=b"b", value=b"1"))
    kv.Put(pb.PutRequest(key=b"z", value=b"out of range"))
    kv.DeleteRange(pb.DeleteRangeRequest(key=b"b"))
    put = s.recv()
    assert put.watch_id == 0 and put.header.revision == 2
    assert [(e.type, e.kv.key, e.kv.value) for e in put.events] == [(mvccpb.Event.PUT, b"b", b"1")]
    delete = s.recv()
    assert delete.header.revision == 4 and delete.events[0].type == mvccpb.Event.DELETE


def test_history_comes_after_created(kv_and_stream: tuple[Any, Stream]) -> None:
    kv, s = kv_and_stream
    for i in range(3):
        kv.Put(pb.PutRequest(key=b"k", value=b"%d" % i))
    s.create(key=b"k", start_revision=2, prev_kv=True)
    created = s.recv()
    assert created.created and not created.events
    revs = [s.recv().header.revision for _ in range(3)]
    assert revs == [2, 3, 4]


def test_watch_ids_cancel_and_unknown_cancel(kv_and_stream: tuple[Any, Stream]) -> None:
    kv, s = kv_and_stream
    s.create(key=b"a")
    s.create(key=b"b")
    s.create(key=b"c", watch_id=100)
    assert [s.recv().watch_id for _ in range(3)] == [0, 1, 100]
    s.create(key=b"d", watch_id=100)
    dup = s.recv()
    assert (dup.created, dup.canceled, dup.watch_id) == (True, True, -1)
    assert dup.cancel_reason == "mvcc: duplicate watch ID provided on the WatchStream"
    s.send(cancel_request=pb.WatchCancelRequest(watch_id=1))
    canceled = s.recv()
    assert canceled.canceled and canceled.watch_id == 1 and not canceled.created
    s.send(cancel_request=pb.WatchCancelRequest(watch_id=55))  # unknown: no answer
    assert s.nothing()
    kv.Put(pb.PutRequest(key=b"b", value=b"x"))  # the canceled watcher stays silent
    kv.Put(pb.PutRequest(key=b"a", value=b"x"))
    assert s.recv().watch_id == 0


def test_empty_range_is_refused(kv_and_stream: tuple[Any, Stream]) -> None:
    _, s = kv_and_stream
    s.create(key=b"b", range_end=b"a")
    r = s.recv()
    assert (r.created, r.canceled, r.watch_id, r.cancel_reason) == (
        True,
        True,
        -1,
        "mvcc: watcher range is empty",
    )


def test_progress_request(kv_and_stream: tuple[Any, Stream]) -> None:
    kv, s = kv_and_stream
    kv.Put(pb.PutRequest(key=b"x", value=b"1"))
    s.create(key=b"a")
    s.recv()
    s.send(progress_request=pb.WatchProgressRequest())
    p = s.recv()
    assert p.watch_id == -1 and not p.events and p.header.revision == 2


def test_compacted_start_is_canceled_with_compact_revision(kv_and_stream: tuple[Any, Stream]) -> None:
    kv, s = kv_and_stream
    for i in range(4):
        kv.Put(pb.PutRequest(key=b"k", value=b"%d" % i))
    kv.Compact(pb.CompactionRequest(revision=4))
    s.create(key=b"k", start_revision=2)
    assert s.recv().created
    r = s.recv()
    assert r.canceled and r.compact_revision == 4
    assert r.cancel_reason == ""  # as etcd: compact_revision alone says why


def test_filters_and_prev_kv(kv_and_stream: tuple[Any, Stream]) -> None:
    kv, s = kv_and_stream
    kv.Put(pb.PutRequest(key=b"f", value=b"old"))
    s.create(key=b"f", filters=[pb.WatchCreateRequest.NOPUT], prev_kv=True)
    s.recv()
    kv.Put(pb.PutRequest(key=b"f", value=b"new"))
    kv.DeleteRange(pb.DeleteRangeRequest(key=b"f"))
    r = s.recv()
    assert r.events[0].type == mvccpb.Event.DELETE and r.events[0].prev_kv.value == b"new"


def test_half_close_keeps_the_stream(served: Served) -> None:
    ch = grpc.insecure_channel(served.target)
    try:
        call = rpc.WatchStub(ch).Watch(
            iter([pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"h"))])
        )
        assert next(call).created
        rpc.KVStub(ch).Put(pb.PutRequest(key=b"h", value=b"1"))
        assert next(call).events[0].kv.value == b"1"
        call.cancel()
    finally:
        ch.close()


def test_stream_ends_and_watchers_go_when_client_cancels(
    served: Served, kv_and_stream: tuple[Any, Stream]
) -> None:
    _, s = kv_and_stream
    s.create(key=b"a")
    s.recv()
    assert served.call(lambda: len(served.facade.streams)) == 1
    s.close()
    for _ in range(50):
        if served.call(lambda: len(served.facade.streams)) == 0:
            break
        threading.Event().wait(0.05)
    assert served.call(lambda: len(served.facade.streams)) == 0


def _events(n: int, size: int) -> pb.WatchResponse:
    resp = pb.WatchResponse(header=pb.ResponseHeader(revision=9), watch_id=3)
    for i in range(n):
        resp.events.add(kv=mvccpb.KeyValue(key=b"k%d" % i, value=b"v" * size, mod_revision=9))
    return resp


def test_fragments_split_below_the_limit() -> None:
    resp = _events(10, 100)
    parts = list(fragments(resp, 350))
    assert len(parts) > 1
    assert [p.fragment for p in parts] == [True] * (len(parts) - 1) + [False]
    assert [e.kv.key for p in parts for e in p.events] == [e.kv.key for e in resp.events]
    assert all(p.ByteSize() < 350 or len(p.events) == 1 for p in parts)
    assert all(p.watch_id == 3 and p.header.revision == 9 for p in parts)
    assert list(fragments(resp, 10**6)) == [resp]
    single = _events(1, 1000)
    assert list(fragments(single, 10)) == [single]  # one event is never split


def test_fragment_flag_on_the_wire(served: Served) -> None:
    ch = grpc.insecure_channel(served.target)
    try:
        served.call(lambda: setattr(served.core, "options", type(served.core.options)(max_request_bytes=300)))
        kv = rpc.KVStub(ch)
        s = Stream(ch)
        s.create(key=b"a", range_end=b"z", fragment=True)
        s.create(key=b"a", range_end=b"z")
        s.recv(), s.recv()
        kv.Txn(
            pb.TxnRequest(
                success=[
                    pb.RequestOp(request_put=pb.PutRequest(key=b"k%d" % i, value=b"v" * 100))
                    for i in range(5)
                ]
            )
        )
        got: dict[int, list[pb.WatchResponse]] = {0: [], 1: []}
        while len(got[1]) < 1 or not got[0] or got[0][-1].fragment:
            r = s.recv()
            got[r.watch_id].append(r)
        assert len(got[0]) > 1 and sum(len(r.events) for r in got[0]) == 5
        assert len(got[1]) == 1 and len(got[1][0].events) == 5 and not got[1][0].fragment
        s.close()
    finally:
        ch.close()


def test_watch_requiring_a_leader_ends_after_leaderless_election_timeouts(served: Served) -> None:
    fast = type(served.core.options)(election_timeout_s=0.05)
    served.call(lambda: setattr(served.core, "options", fast))
    ch = grpc.insecure_channel(served.target)
    try:
        stub = rpc.WatchStub(ch)
        md = (("hasleader", "true"),)
        reqs: queue.Queue[pb.WatchRequest | None] = queue.Queue()
        reqs.put(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"a")))
        call = stub.Watch(iter(reqs.get, None), metadata=md)
        assert next(call).created
        served.call(lambda: setattr(served.facade, "leader", 0))
        with pytest.raises(grpc.RpcError) as info:
            next(call)
        err: Any = info.value
        assert (err.code(), err.details()) == (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
        # and a new one is refused at once
        with pytest.raises(grpc.RpcError) as info:
            next(stub.Watch(iter([pb.WatchRequest()]), metadata=md))
        err = info.value
        assert err.details() == "etcdserver: no leader"
        reqs.put(None)
    finally:
        ch.close()
