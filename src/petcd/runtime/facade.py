"""The EtcdFacade implementation: the event loop's side of a member (ring C).

Each facade method turns a client request into work for the node thread (petcd.runtime.node_loop)
and awaits an asyncio future that the node thread completes. Calls made during one event-loop
iteration are collected and cross to the node thread as one batch (`NodeLoop.post_batch`); their
answers come back in batches too (one `call_soon_threadsafe` per round of Readies):
* writes (put, delete, txn, compact, lease grant/revoke, alarm changes, member changes, move
  leader) and linearizable reads become `loop.request(...)`: a request ID whose result the Node
  resolves after apply (or after the read index is applied: a single-key read is then done on the
  node thread, a wider one in a worker thread, so that it never holds up raft);
* local answers (member list, lease listing, lease renew on the leader, status, alarm list)
  are `loop.submit(...)`;
* serializable range, hash, hash_kv and defragment use only backend transactions, which the Node
  allows from any thread: they run in a worker thread, off both the node thread and the loop (a
  single-key serializable range runs on the loop: cheaper than the hand-off).

Leader-only lease calls (keep-alive, time-to-live) on a follower are forwarded to the leader's
client URL over gRPC, as etcd forwards them over its peer HTTP API.

Watches: a `RuntimeWatchStream` owns one mvcc WatchStream, created and controlled on the node
thread; its bounded response queue is the one thing shared with the loop. The stream's `on_ready`
(called on the node thread when responses are queued) sets an asyncio.Event through
call_soon_threadsafe; `responses()` drains the queue, converts to etcdserverpb.WatchResponse and,
after draining, nudges the node thread to retry parked (victim) watchers.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO, Any, TypeVar

import grpc

from petcd.errors import EtcdError
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc as pb_grpc
from petcd.pb.mvccpb import kv_pb2
from petcd.runtime.node_loop import BatchedCall, CallKind, NodeLoop
from petcd.server.errors import NotLeader, Timeout
from petcd.server.node import Node
from petcd.version import STORAGE_VERSION

T = TypeVar("T")


# petcd.lease's LeaseNotFound (the runtime does not import the lease layer).
LEASE_NOT_FOUND = "etcdserver: requested lease not found"


class NoLeader(EtcdError):
    message = "etcdserver: no leader"


class SpooledSnapshot:
    """A consistent copy of the backend in a temporary file (size known before streaming)."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self._f = f
        self.size = size

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while True:
                chunk = await asyncio.to_thread(self._f.read, 1 << 20)
                if not chunk:
                    return
                yield chunk
        finally:
            self._f.close()


def spool(stream: Iterator[bytes]) -> SpooledSnapshot:
    f = tempfile.TemporaryFile()  # noqa: SIM115 - closed by SpooledSnapshot.chunks
    size = 0
    for chunk in stream:
        f.write(chunk)
        size += len(chunk)
    f.seek(0)
    return SpooledSnapshot(f, size)


def _pb_event(ev: Any) -> kv_pb2.Event:
    out = kv_pb2.Event(type=ev.type, kv=ev.kv)
    if ev.prev_kv is not None:
        out.prev_kv.CopyFrom(ev.prev_kv)
    return out


_EVENT_CACHE_ENTRIES = 256
_EVENT_CACHE_MAX_VALUE = 64 * 1024


class _PbEventCache:
    """Protobuf Events of the (frozen) mvcc Events being fanned out, by identity.

    Every watcher of a key gets the very same mvcc Event objects for a revision, so a thousand
    watchers cost one conversion, not a thousand (the conversion was a third of the event loop's
    time in the watch benchmark). Holding the mvcc Event keeps its id from being reused while
    cached; the cache is small and skips large values, so it never keeps much alive besides what
    the streams' queues hold anyway. Used on the event loop's thread only.
    """

    def __init__(self) -> None:
        self._items: dict[int, tuple[Any, kv_pb2.Event]] = {}

    def get(self, ev: Any) -> kv_pb2.Event:
        hit = self._items.get(id(ev))
        if hit is not None and hit[0] is ev:
            return hit[1]
        out = _pb_event(ev)
        size = len(ev.kv.value) + (0 if ev.prev_kv is None else len(ev.prev_kv.value))
        if size <= _EVENT_CACHE_MAX_VALUE:
            if len(self._items) >= _EVENT_CACHE_ENTRIES:
                self._items.clear()
            self._items[id(ev)] = (ev, out)
        return out


class RuntimeWatchStream:
    """One client watch stream over an mvcc WatchStream owned by the node thread."""

    def __init__(self, facade: RuntimeFacade) -> None:
        self._facade = facade
        self._aloop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        # The mvcc WatchStream (owned by the node thread; its queue is thread-safe).
        self._stream: Any = None
        self._closed = False

    def _on_ready(self) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is closing
            self._aloop.call_soon_threadsafe(self._ready.set)

    async def _ensure(self) -> Any:
        # One creation shared by every caller: `create` and `responses` race to be first.
        if self._stream is None:
            self._stream = asyncio.ensure_future(
                self._facade.call(lambda n: n.watchable.new_watch_stream(self._on_ready))
            )
        return await asyncio.shield(self._stream)

    async def create(self, req: pb.WatchCreateRequest) -> int:
        stream = await self._ensure()

        def watch(_n: Node) -> int:
            watch_id: int = stream.watch(
                bytes(req.key),
                bytes(req.range_end),
                int(req.start_revision),
                int(req.watch_id),
                filters=list(req.filters),
                prev_kv=bool(req.prev_kv),
                fragment=False,
                progress_notify=bool(req.progress_notify),
            )
            return watch_id

        return await self._facade.call(watch)

    async def cancel(self, watch_id: int) -> bool:
        stream = await self._ensure()

        def cancel(_n: Node) -> bool:
            try:
                stream.cancel(watch_id)
            except EtcdError:
                return False
            return True

        return await self._facade.call(cancel)

    async def request_progress(self) -> None:
        stream = await self._ensure()
        await self._facade.call(lambda _n: stream.request_progress_all())

    def _convert(self, r: Any) -> pb.WatchResponse:
        out = pb.WatchResponse(
            watch_id=r.watch_id,
            compact_revision=r.compact_revision,
            canceled=r.canceled,
            cancel_reason=r.cancel_reason,
            fragment=r.fragment,
        )
        out.header.CopyFrom(self._facade.watch_header(r.revision))
        if r.events:
            cache = self._facade.pb_events
            out.events.extend([cache.get(ev) for ev in r.events])
        return out

    async def responses(self) -> AsyncIterator[pb.WatchResponse]:
        stream = await self._ensure()
        while True:
            batch = stream.drain()
            if batch:
                for r in batch:
                    yield self._convert(r)
                self._facade.loop.post(_sync_victims)
                continue
            if self._closed:
                return
            self._ready.clear()
            if len(stream) == 0 and not self._closed:
                await self._ready.wait()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            with contextlib.suppress(EtcdError):
                stream = await self._ensure()
                await self._facade.call(lambda _n: stream.close())
        self._ready.set()


def _sync_victims(node: Node) -> None:
    if node.watchable.has_victims:
        node.watchable.sync_victims()


class RuntimeFacade:
    """EtcdFacade over a Node driven by a NodeLoop (see the module docstring)."""

    def __init__(
        self,
        loop: NodeLoop,
        node: Node,
        *,
        server_version: str,
        request_timeout_s: float,
        leader_client_urls: Callable[[int], list[str]] | None = None,
    ) -> None:
        self.loop = loop
        self.node = node
        self.server_version = server_version
        self.request_timeout_s = request_timeout_s
        self._leader_client_urls = leader_client_urls or (lambda _id: [])
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.pb_events = _PbEventCache()  # shared by the watch streams (event loop thread)
        self._watch_header: tuple[int, int, pb.ResponseHeader] | None = None  # see watch_header
        # Calls of this loop iteration, not yet handed to the node thread.
        self._outgoing: list[BatchedCall] = []
        # (deadline, future): the safety net behind the Node's own request deadlines.
        self._deadlines: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None

    # --- plumbing ---------------------------------------------------------------------------

    def _dispatch(self, fn: Callable[[Node], Any], kind: CallKind, timeout_s: float) -> asyncio.Future[Any]:
        aloop = asyncio.get_running_loop()
        if aloop is not self._aloop:
            self._aloop = aloop
            self.loop.attach_loop(aloop)
        fut: asyncio.Future[Any] = aloop.create_future()
        if not self._outgoing:
            aloop.call_soon(self._flush)
        self._outgoing.append((fn, fut, kind))
        self._deadlines.append((time.monotonic() + timeout_s, fut))
        if self._sweeper is None:
            self._sweeper = aloop.call_later(1.0, self._sweep)
        return fut

    def _flush(self) -> None:
        calls, self._outgoing = self._outgoing, []
        if calls:
            self.loop.post_batch(calls)

    def _sweep(self) -> None:
        # The Node answers every request by its deadline; this only catches a node thread stuck
        # (or gone) so that no caller waits forever. Deadlines are appended in order.
        self._sweeper = None
        now = time.monotonic()
        dl = self._deadlines
        while dl and (dl[0][0] <= now or dl[0][1].done()):
            _, fut = dl.popleft()
            if not fut.done():
                fut.set_exception(Timeout())
        if dl and self._aloop is not None and not self._aloop.is_closed():
            self._sweeper = self._aloop.call_later(1.0, self._sweep)

    def request_future(self, fn: Callable[[Node], int]) -> asyncio.Future[Any]:
        """`req` without the coroutine: the future the Node's answer completes (for the channel to
        front-ends, which attaches a callback instead of running a task per request)."""
        return self._dispatch(fn, "request", self.request_timeout_s + 1.0)

    async def call(self, fn: Callable[[Node], T]) -> T:
        result: T = await self._dispatch(fn, "submit", self.request_timeout_s)
        return result

    async def req(self, fn: Callable[[Node], int]) -> Any:
        return await self._dispatch(fn, "request", self.request_timeout_s + 1.0)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()

    # --- header and state -------------------------------------------------------------------

    def header(self) -> pb.ResponseHeader:
        return self.node.header()

    def watch_header(self, revision: int) -> pb.ResponseHeader:
        """The header of a watch response at `revision` (the member's current term), shared by the
        responses of one revision: a fan-out to many watchers builds it once (event loop only)."""
        term = self.node.term
        cached = self._watch_header
        if cached is None or cached[0] != revision or cached[1] != term:
            header = self.node.header()
            header.revision = revision
            cached = self._watch_header = (revision, term, header)
        return cached[2]

    def leader_id(self) -> int:
        return self.node.leader_id

    def is_learner(self) -> bool:
        return self.node.is_learner

    def version_info(self) -> tuple[str, str]:
        cv = self.node.members.cluster_version
        return self.server_version, (cv if cv else "not_decided")

    # --- KV ---------------------------------------------------------------------------------

    async def range(self, req: pb.RangeRequest) -> pb.RangeResponse:
        if req.serializable:
            if not req.range_end:
                # One key: a read transaction of a few tens of microseconds, cheaper on the loop
                # than the hand-off to a worker thread (wider ranges must not stall the loop).
                return self.node.range(req)
            return await asyncio.to_thread(self.node.range, req)
        if not req.range_end:
            resp: pb.RangeResponse = await self.req(lambda n: n.linearizable_range(req))
            return resp
        # A wide range would hold the node thread (raft, apply, heartbeats) for as long as it reads:
        # the node thread only waits for the read index to be applied; the read itself is a backend
        # read transaction begun after that, in a worker thread, so it sees at least that state.
        await self.req(lambda n: n.read_index())
        return await asyncio.to_thread(self.node.range, req)

    async def put(self, req: pb.PutRequest) -> pb.PutResponse:
        resp: pb.PutResponse = await self.req(lambda n: n.put(req))
        return resp

    async def delete_range(self, req: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
        resp: pb.DeleteRangeResponse = await self.req(lambda n: n.delete_range(req))
        return resp

    async def txn(self, req: pb.TxnRequest) -> pb.TxnResponse:
        resp: pb.TxnResponse = await self.req(lambda n: n.txn(req))
        return resp

    async def compact(self, req: pb.CompactionRequest) -> pb.CompactionResponse:
        resp: pb.CompactionResponse = await self.req(lambda n: n.compact(req))
        return resp

    # --- watch ------------------------------------------------------------------------------

    def open_watch_stream(self) -> RuntimeWatchStream:
        return RuntimeWatchStream(self)

    # --- lease ------------------------------------------------------------------------------

    async def lease_grant(self, req: pb.LeaseGrantRequest) -> pb.LeaseGrantResponse:
        resp: pb.LeaseGrantResponse = await self.req(lambda n: n.lease_grant(req))
        return resp

    async def lease_revoke(self, req: pb.LeaseRevokeRequest) -> pb.LeaseRevokeResponse:
        resp: pb.LeaseRevokeResponse = await self.req(lambda n: n.lease_revoke(req))
        return resp

    async def lease_keep_alive(self, req: pb.LeaseKeepAliveRequest) -> pb.LeaseKeepAliveResponse:
        try:
            return await self.call(lambda n: n.lease_renew(req.ID))
        except NotLeader as e:
            return await self._forward_keep_alive(e.leader, req)
        except EtcdError as e:
            if str(e) != LEASE_NOT_FOUND:
                raise
            # etcd's keep-alive stream answers an unknown lease with TTL 0 ("expired or revoked")
            return pb.LeaseKeepAliveResponse(header=self.header(), ID=req.ID, TTL=0)

    async def _forward_keep_alive(
        self, leader: int, req: pb.LeaseKeepAliveRequest
    ) -> pb.LeaseKeepAliveResponse:
        stub = self._leader_stub(leader)
        call = stub.LeaseKeepAlive(iter([req]), timeout=self.request_timeout_s)
        async for resp in call:
            call.cancel()
            return resp  # type: ignore[no-any-return]
        raise NoLeader()

    async def lease_time_to_live(self, req: pb.LeaseTimeToLiveRequest) -> pb.LeaseTimeToLiveResponse:
        try:
            return await self.call(lambda n: n.lease_time_to_live(req))
        except NotLeader as e:
            stub = self._leader_stub(e.leader)
            resp: pb.LeaseTimeToLiveResponse = await stub.LeaseTimeToLive(req, timeout=self.request_timeout_s)
            return resp
        except EtcdError as e:
            if str(e) != LEASE_NOT_FOUND:
                raise
            # etcd's v3rpc answers an unknown lease with TTL -1 ("already expired"), not an error
            return pb.LeaseTimeToLiveResponse(header=self.header(), ID=req.ID, TTL=-1)

    async def lease_leases(self, req: pb.LeaseLeasesRequest) -> pb.LeaseLeasesResponse:
        return await self.call(lambda n: n.lease_leases())

    def _leader_stub(self, leader: int) -> pb_grpc.LeaseStub:
        return pb_grpc.LeaseStub(self._leader_channel(leader))

    def _leader_channel(self, leader: int) -> grpc.aio.Channel:
        urls = self._leader_client_urls(leader) if leader else []
        if not urls:
            raise NoLeader()
        target = urls[0].split("://", 1)[-1]
        ch = self._channels.get(target)
        if ch is None:
            ch = grpc.aio.insecure_channel(target)
            self._channels[target] = ch
        return ch

    # --- cluster ----------------------------------------------------------------------------

    async def member_add(self, req: pb.MemberAddRequest) -> pb.MemberAddResponse:
        resp: pb.MemberAddResponse = await self.req(lambda n: n.member_add(list(req.peerURLs), req.isLearner))
        return resp

    async def member_remove(self, req: pb.MemberRemoveRequest) -> pb.MemberRemoveResponse:
        resp: pb.MemberRemoveResponse = await self.req(lambda n: n.member_remove(req.ID))
        return resp

    async def member_update(self, req: pb.MemberUpdateRequest) -> pb.MemberUpdateResponse:
        resp: pb.MemberUpdateResponse = await self.req(lambda n: n.member_update(req.ID, list(req.peerURLs)))
        return resp

    async def member_list(self, req: pb.MemberListRequest) -> pb.MemberListResponse:
        return await self.call(lambda n: n.member_list())

    async def member_promote(self, req: pb.MemberPromoteRequest) -> pb.MemberPromoteResponse:
        try:
            resp: pb.MemberPromoteResponse = await self.req(lambda n: n.member_promote(req.ID))
        except NotLeader as e:
            # only the leader knows whether the learner is in sync (etcd: promoteMemberHTTP)
            stub = pb_grpc.ClusterStub(self._leader_channel(e.leader))
            try:
                resp = await stub.MemberPromote(req, timeout=self.request_timeout_s)
            except grpc.aio.AioRpcError as err:
                raise EtcdError(err.details() or "") from None  # the leader's etcd error, as is
        return resp

    # --- maintenance ------------------------------------------------------------------------

    async def alarm(self, req: pb.AlarmRequest) -> pb.AlarmResponse:
        if req.action == pb.AlarmRequest.GET:
            alarms = await self.call(lambda n: n.alarm_list())
            return pb.AlarmResponse(header=self.header(), alarms=alarms)
        resp: pb.AlarmResponse = await self.req(lambda n: n.alarm(req))
        return resp

    async def status(self, req: pb.StatusRequest) -> pb.StatusResponse:
        resp = await self.call(lambda n: n.status())
        resp.version = self.server_version
        resp.storageVersion = STORAGE_VERSION  # etcd 3.6 reports its storage schema version
        return resp

    async def defragment(self, req: pb.DefragmentRequest) -> pb.DefragmentResponse:
        return await asyncio.to_thread(self.node.defragment)

    async def hash(self, req: pb.HashRequest) -> pb.HashResponse:
        return await asyncio.to_thread(self.node.hash)

    async def hash_kv(self, req: pb.HashKVRequest) -> pb.HashKVResponse:
        return await asyncio.to_thread(self.node.hash_kv, req.revision)

    async def snapshot(self) -> SpooledSnapshot:
        stream = await asyncio.to_thread(self.node.snapshot_stream)
        return await asyncio.to_thread(spool, stream)

    async def move_leader(self, req: pb.MoveLeaderRequest) -> pb.MoveLeaderResponse:
        resp: pb.MoveLeaderResponse = await self.req(lambda n: n.move_leader(req.targetID))
        return resp
