"""The Watch service's bidirectional stream (etcd's v3rpc serverWatchStream).

Theory of operation
-------------------
One client stream gets one facade `WatchStreamHandle` and two tasks beside the handler:

* the receive task reads client requests: a create calls `handle.create` and queues the "created"
  response (header revision = the store revision before the watcher existed, watch ID -1 with
  canceled=True and the reason when creation fails); a cancel of a live watcher queues a "canceled"
  response (a cancel of an unknown ID is ignored, as etcd does); a progress request asks the handle for
  a stream-wide progress response. A client's half-close does not end the stream (as in etcd).
* the pump task copies the handle's responses (events, progress, compaction cancels) into the same
  queue, at most OUT_QUEUE_LEN of them at a time, so a slow client stops the pump and the member's
  watch queue fills, which turns the watchers into victims there instead of growing memory here.

The handler's generator is etcd's send loop: it sends control responses as they come, holds back
event responses for a watch ID whose "created" response has not gone out yet (then flushes them right
after it), ends the stream with "etcdserver: no leader" when the client asked for a leader (`hasleader`
metadata) and none was seen for MAX_NO_LEADER_COUNT election timeouts (etcd's monitorLeader), and splits
responses of watchers created with `fragment=True` into parts below
max_request_bytes (each part but the last has fragment=True; a part holds at least one event).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from petcd.api import errors as api_errors
from petcd.api.core import MAX_NO_LEADER_COUNT, ApiCore
from petcd.errors import EtcdError
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.server.facade import WatchStreamHandle

INVALID_WATCH_ID = -1
OUT_QUEUE_LEN = 128  # responses between the member's queue and the gRPC stream

# (is_control, response); None ends the stream; an EtcdError ends it with that error
_Item = tuple[bool, pb.WatchResponse] | EtcdError | None


def fragments(resp: pb.WatchResponse, max_bytes: int) -> Iterator[pb.WatchResponse]:
    """etcd's sendFragments: whole when small enough or a single event, else parts below max_bytes."""
    if len(resp.events) < 2 or resp.ByteSize() < max_bytes:
        yield resp
        return
    events = list(resp.events)
    idx = 0
    while idx < len(events):
        part = pb.WatchResponse()
        part.CopyFrom(resp)
        del part.events[:]
        part.fragment = True
        while idx < len(events):
            part.events.append(events[idx])
            if len(part.events) > 1 and part.ByteSize() >= max_bytes:
                del part.events[-1]
                break
            idx += 1
        if idx == len(events):
            part.fragment = False
        yield part


class WatchSession:
    """The state of one client watch stream."""

    def __init__(
        self, core: ApiCore, requests: AsyncIterator[pb.WatchRequest], require_leader: bool = False
    ) -> None:
        self.core = core
        self.require_leader = require_leader
        self.facade = core.facade
        self.requests = requests
        self.handle: WatchStreamHandle = self.facade.open_watch_stream()
        # unbounded, so ending the stream never waits; the pump is bounded by `room` instead
        self.out: asyncio.Queue[_Item] = asyncio.Queue()
        self.room = asyncio.Semaphore(OUT_QUEUE_LEN)
        self.fragmented: set[int] = set()

    def _header(self) -> pb.ResponseHeader:
        return self.facade.header()

    async def _recv_loop(self) -> None:
        # A client that half-closes keeps its watches (etcd's recvLoop ends quietly on EOF); the
        # stream ends when the client cancels it or the receive side fails.
        try:
            async for req in self.requests:
                kind = req.WhichOneof("request_union")
                if kind == "create_request":
                    await self._create(req.create_request)
                elif kind == "cancel_request":
                    await self._cancel(req.cancel_request.watch_id)
                elif kind == "progress_request":
                    await self.handle.request_progress()
        except Exception:
            self.out.put_nowait(None)

    async def _create(self, creq: pb.WatchCreateRequest) -> None:
        if not creq.key:
            creq.key = b"\x00"  # the smallest key: an empty key watches from the start
        header = self._header()
        try:
            watch_id = await self.handle.create(creq)
        except EtcdError as err:
            resp = pb.WatchResponse(
                header=header,
                watch_id=INVALID_WATCH_ID,
                created=True,
                canceled=True,
                cancel_reason=str(err),
            )
        else:
            if creq.fragment:
                self.fragmented.add(watch_id)
            resp = pb.WatchResponse(header=header, watch_id=watch_id, created=True)
        self.out.put_nowait((True, resp))

    async def _cancel(self, watch_id: int) -> None:
        if await self.handle.cancel(watch_id):
            self.fragmented.discard(watch_id)
            self.out.put_nowait(
                (True, pb.WatchResponse(header=self._header(), watch_id=watch_id, canceled=True))
            )

    async def _pump(self) -> None:
        try:
            async for resp in self.handle.responses():
                await self.room.acquire()
                self.out.put_nowait((False, resp))
        finally:
            self.out.put_nowait(None)

    async def _monitor_leader(self) -> None:
        leaderless = 0
        while True:
            await asyncio.sleep(self.core.options.election_timeout_s)
            leaderless = leaderless + 1 if self.facade.leader_id() == 0 else 0
            if leaderless >= MAX_NO_LEADER_COUNT:
                self.out.put_nowait(EtcdError(api_errors.NO_LEADER))
                return

    async def run(self) -> AsyncIterator[pb.WatchResponse]:
        max_bytes = self.core.options.max_request_bytes
        recv = asyncio.create_task(self._recv_loop())
        pump = asyncio.create_task(self._pump())
        tasks = [recv, pump]
        if self.require_leader:
            tasks.append(asyncio.create_task(self._monitor_leader()))
        announced: set[int] = set()
        pending: dict[int, list[pb.WatchResponse]] = {}
        try:
            while True:
                item = await self.out.get()
                if item is None:
                    break
                if isinstance(item, EtcdError):
                    raise item
                is_control, resp = item
                wid = resp.watch_id
                if is_control:
                    yield resp
                    if resp.canceled and wid != INVALID_WATCH_ID:
                        announced.discard(wid)
                    elif resp.created:
                        announced.add(wid)
                        for held in pending.pop(wid, []):
                            for part in self._parts(held, max_bytes):
                                yield part
                    continue
                self.room.release()
                if wid != INVALID_WATCH_ID and wid not in announced:
                    pending.setdefault(wid, []).append(resp)
                    continue
                for part in self._parts(resp, max_bytes):
                    yield part
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.handle.close()

    def _parts(self, resp: pb.WatchResponse, max_bytes: int) -> Iterator[pb.WatchResponse]:
        if resp.watch_id in self.fragmented:
            return fragments(resp, max_bytes)
        return iter((resp,))


def watch_stream(
    core: ApiCore, requests: AsyncIterator[Any], require_leader: bool = False
) -> AsyncIterator[pb.WatchResponse]:
    return WatchSession(core, requests, require_leader).run()
