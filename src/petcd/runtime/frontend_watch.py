"""Watches served inside a front-end process, from the revision history in the backend.

DESIGN.md, "Scaling past one core": a front-end process serves its clients' watch streams itself,
reading the MVCC history from its own read-only handle on the backend, instead of having the core
run them and ship every response across the channel.

Theory of operation
-------------------
One `FrontendWatchHub` per front-end process holds a `WatchableStore` (petcd.mvcc.watchable_store:
the same synced / unsynced / victim machinery, catch-up from history, compaction cancels, progress
and filters as on the core) over `BackendHistory`, the store's `HistoryStore` reading this process's
backend handle. What differs is who reports commits: on the core the KVStore's event sink feeds the
synced watchers as each write commits; here the hub's *tail* does it:

* `tail` (`BackendHistory.tail`) is the revision up to which every revision has been handed to the
  synced watchers. `BackendHistory.current_revision()` answers the tail, not the backend's newest
  revision, so everything the watchable store does relative to "the current revision" (where a new
  watcher starts, where a catch-up ends, the revision of a progress response) refers to what this
  process has delivered and never to more. Invariant: tail <= the backend's current revision, and the
  tail never moves back.
* The core sends ("rev", R) on the channel once per applied batch that advanced the revision
  (petcd.runtime.channel); `on_revision` schedules `advance()` (one per event-loop iteration however
  many notices came). `advance()` does not trust R: it reads the backend's current revision C and
  feeds the revisions tail+1..C from the history to the synced watchers through the store's event
  sink (whole revisions, at most `watch_batch_max_revs` per read transaction), then tail = C. With no
  synced watcher it just moves the tail.
* The history is read with `KVStore.tail_events`, which allows revisions below a scheduled compaction
  as long as its physical removal has not reached them, so a compaction right after a burst of writes
  does not cancel synced watchers that the core would not cancel. If the tail did fall behind the
  removal (or behind a snapshot the core installed), the synced watchers go back to unsynced
  (`WatchableStore.restore`), where the catch-up cancels those behind the compaction with
  compact_revision, as etcd does for any watcher behind it, and replays history for the others.
* A ticker (every SYNC_WATCHERS_INTERVAL_S while streams are open) runs what the core's node tick
  runs: advance (so a lost or late notice costs at most one interval), retry parked (victim)
  watchers, catch up unsynced ones, and the periodic progress notification. A watcher created at a
  past revision, and a consumer that drains its queue while victims wait, get a round at once.
* Creating a watcher, a stream-wide progress request and the periodic progress notification first
  advance the tail to the backend's current revision. So start_revision 0 means "after the
  backend's current revision" (at least the revision the created response's header reports: it was
  read from the backend just before), and a progress response reports at least every header the
  stream got before it and at most what the backend shows. (A progress request deferred until the
  stream's watchers catch up goes out at the tail of that moment, as on the core.)

Everything here runs on the front-end's event loop; the watch streams' queues are only touched there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

from petcd.errors import Compacted, EtcdError
from petcd.mvcc.kvstore import KVStore
from petcd.mvcc.watchable_store import (
    PROGRESS_NOTIFY_INTERVAL_S,
    SYNC_WATCHERS_INTERVAL_S,
    WATCH_BATCH_MAX_REVS,
    WatchableStore,
)
from petcd.mvcc.watcher import DEFAULT_MAX_REQUEST_BYTES, Event, KeyValue, WatchResponse, WatchStream
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.mvccpb import kv_pb2


def _pb_event(ev: Event) -> kv_pb2.Event:
    if ev.prev_kv is None:
        return kv_pb2.Event(type=ev.type, kv=ev.kv)  # type: ignore[arg-type]
    return kv_pb2.Event(type=ev.type, kv=ev.kv, prev_kv=ev.prev_kv)  # type: ignore[arg-type]


class BackendHistory:
    """The watchable store's HistoryStore over a read-only KVStore, current as of the hub's tail."""

    def __init__(self, kv: KVStore) -> None:
        self.kv = kv
        # Invariant: tail <= the backend's current revision; it never decreases.
        self.tail = kv.current_rev

    def current_revision(self) -> int:
        return self.tail

    def compact_revision(self) -> int:
        return self.kv.compact_rev

    def history(self, min_rev: int, max_rev: int) -> Iterator[tuple[int, bool, KeyValue]]:
        return self.kv.history(min_rev, max_rev)

    def kv_at(self, key: bytes, rev: int) -> KeyValue | None:
        return self.kv.kv_at(key, rev)


class FrontendWatchHub:
    """The front-end process's watchable store and its tail (see the module docstring)."""

    def __init__(
        self,
        kv: KVStore,
        *,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        sync_interval_s: float = SYNC_WATCHERS_INTERVAL_S,
        progress_notify_interval_s: float = PROGRESS_NOTIFY_INTERVAL_S,
    ) -> None:
        self.kv = kv
        self.history = BackendHistory(kv)
        self.store = WatchableStore(self.history, max_request_bytes=max_request_bytes)
        self.sync_interval_s = sync_interval_s
        self.progress_notify_interval_s = progress_notify_interval_s
        self._streams = 0
        self._work_queued = False
        self._ticker: asyncio.Task[None] | None = None

    # -- waking -----------------------------------------------------------------------------------

    def on_revision(self, revision: int) -> None:
        """The core committed up to `revision` (a channel notice): advance soon. With no watch
        stream open there is nothing to hand out, and no read of the backend is made (a stream's
        first create advances the tail itself)."""
        if revision > self.history.tail and self._streams:
            self._kick()

    def _kick(self) -> None:
        if not self._work_queued:
            self._work_queued = True
            asyncio.get_running_loop().call_soon(self._work)

    def _work(self) -> None:
        self._work_queued = False
        self.advance()
        store = self.store
        if store.has_victims:
            store.sync_victims()
        if store.has_unsynced:
            # A compaction between reading the compaction point and the history: the next round
            # sees it and cancels the watchers behind it.
            with contextlib.suppress(Compacted):
                store.sync_watchers()

    async def _tick(self) -> None:
        aloop = asyncio.get_running_loop()
        last_progress = aloop.time()
        while True:
            await asyncio.sleep(self.sync_interval_s)
            if not self._streams:
                return  # (the process may be closing its backend: read nothing more)
            self._work()
            if aloop.time() - last_progress >= self.progress_notify_interval_s:
                last_progress = aloop.time()
                self.store.progress_tick()

    # -- the tail ---------------------------------------------------------------------------------

    def advance(self) -> None:
        """Hand every revision the backend has and the synced watchers have not seen to them."""
        history = self.history
        current = self.kv.current_rev
        if current <= history.tail:
            return
        lo = history.tail + 1
        while lo <= current:
            if not self.store.synced.watchers:
                # Nobody to hand them to (the others read history themselves): no reading.
                history.tail = current
                return
            hi = min(current, lo + WATCH_BATCH_MAX_REVS - 1)
            try:
                revisions = self.kv.tail_events(lo, hi + 1, prev_kv=True)
            except Compacted:
                self._history_lost(current)
                return
            for rev, events in revisions:
                history.tail = rev
                self.store.event_sink(rev, events)
            history.tail = hi
            lo = hi + 1

    def _history_lost(self, current: int) -> None:
        # The synced watchers re-read from their own revisions, or are cancelled as compacted.
        self.store.restore()
        self.history.tail = current
        self._kick()

    # -- streams ----------------------------------------------------------------------------------

    def open(self, on_ready: Callable[[], None]) -> WatchStream:
        stream = self.store.new_watch_stream(on_ready)
        self._streams += 1
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick())
        return stream

    def close(self, stream: WatchStream) -> None:
        stream.close()
        self._streams -= 1

    def create(self, stream: WatchStream, req: pb.WatchCreateRequest) -> int:
        # Up to the backend first: the created response's header (read from the backend before
        # this) is then at most the tail, which every later progress response reports at least.
        self.advance()
        start_rev = int(req.start_revision)
        if start_rev <= 0:
            start_rev = self.history.tail + 1
        watch_id = stream.watch(
            bytes(req.key),
            bytes(req.range_end),
            start_rev,
            int(req.watch_id),
            filters=list(req.filters),
            prev_kv=bool(req.prev_kv),
            fragment=False,  # the API layer fragments (petcd.api.watch)
            progress_notify=bool(req.progress_notify),
        )
        if self.store.has_unsynced:
            self._kick()
        return watch_id

    def request_progress(self, stream: WatchStream) -> None:
        self.advance()
        stream.request_progress_all()

    def drained(self) -> None:
        """A consumer made room in its queue: parked watchers may go on."""
        if self.store.has_victims:
            self._kick()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker


class FrontendWatchStream:
    """One client watch stream (the facade's WatchStreamHandle) served by the hub."""

    def __init__(self, hub: FrontendWatchHub, header: Callable[[int], pb.ResponseHeader]) -> None:
        self._hub = hub
        self._header = header
        self._ready = asyncio.Event()
        self._stream = hub.open(self._ready.set)
        self._closed = False

    async def create(self, req: pb.WatchCreateRequest) -> int:
        return self._hub.create(self._stream, req)

    async def cancel(self, watch_id: int) -> bool:
        try:
            self._stream.cancel(watch_id)
        except EtcdError:
            return False
        return True

    async def request_progress(self) -> None:
        self._hub.request_progress(self._stream)

    def _convert(self, r: WatchResponse, converted: dict[int, kv_pb2.Event]) -> pb.WatchResponse:
        # `converted`: the events of one drained batch by id (the batch keeps them alive): the
        # watchers a revision reaches share its Event objects, live or caught up from history.
        out = pb.WatchResponse(
            header=self._header(r.revision),
            watch_id=r.watch_id,
            compact_revision=r.compact_revision,
            canceled=r.canceled,
            cancel_reason=r.cancel_reason,
            fragment=r.fragment,
        )
        for ev in r.events:
            got = converted.get(id(ev))
            if got is None:
                got = converted[id(ev)] = _pb_event(ev)
            out.events.append(got)
        return out

    async def responses(self) -> AsyncIterator[pb.WatchResponse]:
        stream = self._stream
        while True:
            batch = stream.drain()
            if batch:
                converted: dict[int, kv_pb2.Event] = {}
                for r in batch:
                    yield self._convert(r, converted)
                self._hub.drained()
                continue
            if self._closed:
                return
            self._ready.clear()
            await self._ready.wait()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hub.close(self._stream)
        self._ready.set()


__all__ = ["BackendHistory", "FrontendWatchHub", "FrontendWatchStream"]
