"""The watchable store: delivers the MVCC store's changes to watchers (etcd's mvcc/watchable_store.go).

Theory of operation
-------------------
Every watcher is in exactly one of four places:

* **synced**: it has seen everything up to the current revision. Each committed write calls
  `notify(rev, changes)`, which hands the revision's events, all in one response, to the synced
  watchers whose range holds a changed key. A watcher created at the current revision (or for a
  future one, `start_rev > current`) starts here; events below its `min_rev` are skipped.
* **unsynced**: it is behind (created at a past revision, or coming back from the victim list).
  `sync_watchers()` catches up to `max_watchers_per_sync` of them per call from the store's
  history, reading at most `watch_batch_max_revs` revisions at a time, and moves each that reaches
  the current revision to synced. A watcher behind the compaction point is cancelled with a
  response carrying `compact_revision` instead.
* **victim**: a send failed because its stream's queue was full. The watcher leaves the groups at
  once with its undelivered batch; `sync_victims()` retries the batch, then puts the watcher in
  unsynced (to read what it missed from history) or synced. So a slow consumer never blocks a
  write, and is never handed a gap: `min_rev` only moves past events that are queued or parked.
* **gone**: cancelled, compacted, or its stream closed.

The guarantees follow: events reach a watcher in revision order, each once (`min_rev` moves
forward past every revision handed over), without gaps inside the kept history (a synced
watcher gets every revision; the others read history from `min_rev`), never splitting a
revision (synced responses hold one revision; history batches stop at revision boundaries), and
a progress response at revision R is only sent to a synced watcher, i.e. after everything up to
R was queued before it on the same stream.

A response's `revision` is what the watcher has seen everything up to: the revision of its
events when synced, the end of the history batch when catching up. Per watcher, events are
filtered (NOPUT/NODELETE), given prev_kv (from the store's event, else read at revision - 1) and,
when asked, split into fragments of at most the stream's max_request_bytes.

Threads: this object and its watchers belong to one owner thread (the server's node loop),
which also calls `sync_watchers`/`sync_victims` (every SYNC_WATCHERS_INTERVAL_S and
SYNC_VICTIMS_INTERVAL_S while `has_unsynced`/`has_victims`, as etcd) and `progress_tick` (every
PROGRESS_NOTIFY_INTERVAL_S, for watchers created with progress_notify). Only the streams'
response queues are shared with consumers.

The store it wraps is reached through the small `HistoryStore` protocol below; a write must be
reported after it commits and before any later write: `event_sink` is the KVStore's event sink
(`store.set_event_sink(ws.event_sink)`), `notify` takes plain (is_delete, KeyValue) changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from petcd.errors import Compacted
from petcd.mvcc.watcher import (
    DEFAULT_MAX_REQUEST_BYTES,
    DELETE,
    INVALID_WATCH_ID,
    PUT,
    Event,
    KeyValue,
    Watcher,
    WatcherGroup,
    WatchResponse,
    WatchStream,
    fragment_response,
)
from petcd.pb.mvccpb.kv_pb2 import Event as pb_Event

CHAN_BUF_LEN = 128
MAX_WATCHERS_PER_SYNC = 512
WATCH_BATCH_MAX_REVS = 1000
SYNC_WATCHERS_INTERVAL_S = 0.1
SYNC_VICTIMS_INTERVAL_S = 0.01
PROGRESS_NOTIFY_INTERVAL_S = 600.0  # etcd's --watch-progress-notify-interval (plus up to 10% jitter)


class HistoryStore(Protocol):
    """What the watchable store needs from the MVCC store."""

    def current_revision(self) -> int: ...

    def compact_revision(self) -> int:
        """The last compaction's revision (0 or -1 if never); revisions below it are gone."""
        ...

    def history(self, min_rev: int, max_rev: int) -> Iterable[tuple[int, bool, KeyValue]]:
        """Every change with min_rev <= main revision <= max_rev, in (main, sub) order, as
        (main revision, is_delete, key-value); a delete's key-value holds at least the key."""
        ...

    def kv_at(self, key: bytes, rev: int) -> KeyValue | None:
        """The key's live value as of revision `rev`, or None (for prev_kv)."""
        ...


def changes_to_events(rev: int, changes: Iterable[tuple[bool, KeyValue]]) -> list[Event]:
    """A committed write's changes as events; deletes get the write's revision as mod_revision."""
    events = []
    for is_delete, kv in changes:
        if is_delete:
            events.append(Event(DELETE, KeyValue(key=kv.key, mod_revision=rev)))
        else:
            events.append(Event(PUT, kv))
    return events


class _PrevKvCache:
    """prev_kv for one delivery round: taken from the store's own event when it came with one,
    else read from the store once per (key, revision)."""

    def __init__(self, store: HistoryStore, known: dict[int, KeyValue | None] | None = None) -> None:
        self._store = store
        self._known = known or {}
        self._kvs: dict[tuple[bytes, int], KeyValue | None] = {}
        self._events: dict[int, Event] = {}

    def with_prev(self, ev: Event) -> Event:
        got = self._events.get(id(ev))
        if got is None:
            if id(ev) in self._known:
                prev = self._known[id(ev)]
            else:
                lookup = (ev.kv.key, ev.revision - 1)
                if lookup not in self._kvs:
                    try:
                        self._kvs[lookup] = self._store.kv_at(*lookup)
                    except Compacted:
                        self._kvs[lookup] = None  # compacted away meanwhile: unset, as etcd
                prev = self._kvs[lookup]
            got = Event(ev.type, ev.kv, prev)
            self._events[id(ev)] = got
        return got


class WatchableStore:
    """Watchers over a HistoryStore; see the module docstring."""

    def __init__(
        self,
        store: HistoryStore,
        *,
        chan_buf_len: int = CHAN_BUF_LEN,
        max_watchers_per_sync: int = MAX_WATCHERS_PER_SYNC,
        watch_batch_max_revs: int = WATCH_BATCH_MAX_REVS,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self.store = store
        self.chan_buf_len = chan_buf_len
        self.max_watchers_per_sync = max_watchers_per_sync
        self.watch_batch_max_revs = watch_batch_max_revs
        self.max_request_bytes = max_request_bytes
        self.synced = WatcherGroup()
        self.unsynced = WatcherGroup()
        # Victim watcher -> its undelivered events and the revision it will have seen once they are.
        self.victims: dict[Watcher, tuple[list[Event], int]] = {}
        self._streams: dict[WatchStream, None] = {}
        # Streams whose stream-wide progress request waits for all their watchers to be synced.
        self._progress_pending: dict[WatchStream, None] = {}

    # -- streams and watchers ------------------------------------------------------------------

    def new_watch_stream(self, on_ready: Callable[[], None] | None = None) -> WatchStream:
        stream = WatchStream(self, self.chan_buf_len, on_ready, self.max_request_bytes)
        self._streams[stream] = None
        return stream

    def forget_stream(self, stream: WatchStream) -> None:
        self._streams.pop(stream, None)
        self._progress_pending.pop(stream, None)

    def rev(self) -> int:
        return self.store.current_revision()

    def add_watcher(self, w: Watcher, start_rev: int) -> None:
        current = self.store.current_revision()
        if start_rev <= 0 or start_rev > current:
            w.min_rev = max(current + 1, start_rev)
            self.synced.add(w)
        else:
            w.min_rev = start_rev
            self.unsynced.add(w)

    def cancel_watcher(self, w: Watcher) -> None:
        if not (self.unsynced.delete(w) or self.synced.delete(w)):
            self.victims.pop(w, None)

    def gauges(self) -> dict[str, int]:
        """etcd's watch gauges: streams, watchers, slow watchers (unsynced or parked), and the
        events parked with victims."""
        return {
            "watch_stream_total": len(self._streams),
            "watcher_total": len(self.synced) + len(self.unsynced) + len(self.victims),
            "slow_watcher_total": len(self.unsynced) + len(self.victims),
            "pending_events_total": sum(len(evs) for evs, _ in self.victims.values()),
        }

    @property
    def has_unsynced(self) -> bool:
        return len(self.unsynced) > 0

    @property
    def has_victims(self) -> bool:
        return bool(self.victims)

    def restore(self) -> None:
        """After the store was replaced (snapshot install): every synced watcher re-reads history."""
        for w in self.synced:
            w.restore = True
            self.unsynced.add(w)
        self.synced = WatcherGroup()

    # -- the write path --------------------------------------------------------------------------

    def notify(self, rev: int, changes: Iterable[tuple[bool, KeyValue]]) -> None:
        """Deliver one committed revision to the synced watchers (the store's commit hook)."""
        self.notify_events(rev, changes_to_events(rev, changes))

    def event_sink(self, rev: int, events: Sequence[pb_Event]) -> None:
        """The KVStore's event sink (`store.set_event_sink(ws.event_sink)`): its events come with
        prev_kv, which prev_kv watchers then get without another read."""
        if not self.synced.watchers:
            return
        evs: list[Event] = []
        known: dict[int, KeyValue | None] = {}
        for e in events:
            if e.type == pb_Event.DELETE:
                ev = Event(
                    DELETE, e.kv if e.kv.mod_revision == rev else KeyValue(key=e.kv.key, mod_revision=rev)
                )
            else:
                ev = Event(PUT, e.kv)
            known[id(ev)] = e.prev_kv if e.HasField("prev_kv") else None
            evs.append(ev)
        self.notify_events(rev, evs, known)

    def notify_events(
        self, rev: int, events: list[Event], known_prev: dict[int, KeyValue | None] | None = None
    ) -> None:
        if not self.synced.watchers:
            return
        batches: dict[Watcher, list[Event]]
        if len(events) == 1:
            # The common case (a put or a one-key delete): no per-watcher lists to merge.
            only = events
            batches = {w: only for w in self.synced.watchers_for(events[0].kv.key) if rev >= w.min_rev}
        else:
            batches = {}
            for ev in events:
                for w in self.synced.watchers_for(ev.kv.key):
                    if rev >= w.min_rev:
                        batch = batches.get(w)
                        if batch is None:
                            batches[w] = [ev]
                        else:
                            batch.append(ev)
        prev = _PrevKvCache(self.store, known_prev)
        for w, evs in batches.items():
            if w.plain:
                # the common case inlined: 10k watchers of one key make this the whole cost
                sent = w.stream.send_one(WatchResponse(w.id, evs, rev))
                if sent:
                    w.sent_since_progress = True
            else:
                sent = self._send(w, evs, rev, prev)
            if sent:
                w.min_rev = rev + 1
            else:
                # Parked with this revision; it reads the rest from history once unparked.
                self.synced.delete(w)
                w.min_rev = rev + 1
                w.victim = True
                self.victims[w] = (evs, rev)
        self._retry_pending_progress()

    # -- catching up -------------------------------------------------------------------------------

    def sync_watchers(self) -> int:
        """Catch up one round of unsynced watchers; returns how many are still unsynced."""
        if not self.unsynced.watchers:
            return 0
        current = self.store.current_revision()
        compact = self.store.compact_revision()
        chosen = self._choose(current, compact)
        if chosen:
            min_rev = min(w.min_rev for w in chosen)
            max_rev = min(current, min_rev + self.watch_batch_max_revs - 1)
            batches = self._history_batches(chosen, min_rev, max_rev)
            prev = _PrevKvCache(self.store)
            for w in chosen:
                if w.min_rev > max_rev:
                    continue  # its turn comes when the lower watchers have moved up
                evs = batches.get(w, [])
                w.min_rev = max_rev + 1
                if evs and not self._send(w, evs, max_rev, prev):
                    self.unsynced.delete(w)
                    w.victim = True
                    self.victims[w] = (evs, max_rev)
                    continue
                if w.min_rev > current:
                    self.unsynced.delete(w)
                    self.synced.add(w)
        self._retry_pending_progress()
        return len(self.unsynced)

    def _choose(self, current: int, compact: int) -> list[Watcher]:
        """Up to max_watchers_per_sync unsynced watchers; those behind compaction are cancelled."""
        chosen: list[Watcher] = []
        for w in self.unsynced:
            if len(chosen) >= self.max_watchers_per_sync:
                break
            if w.min_rev > current:
                if not w.restore:
                    raise AssertionError(f"{w}: min_rev above the current revision {current}")
                # A watcher restored from synced may wait for a future revision: synced again.
                w.restore = False
                self.unsynced.delete(w)
                self.synced.add(w)
                continue
            w.restore = False
            if w.min_rev < compact:
                self._cancel_compacted(w, compact, current)
                continue
            chosen.append(w)
        return chosen

    def _cancel_compacted(self, w: Watcher, compact: int, current: int) -> None:
        resp = WatchResponse(w.id, [], current, compact_revision=compact, canceled=True)
        if w.stream.send([resp]):
            w.compacted = True
            self.unsynced.delete(w)
            w.stream.forget(w)
        # else: the queue is full; tell it on a later round

    def _history_batches(
        self, chosen: list[Watcher], min_rev: int, max_rev: int
    ) -> dict[Watcher, list[Event]]:
        group = WatcherGroup()
        for w in chosen:
            group.add(w)
        batches: dict[Watcher, list[Event]] = {}
        for rev, is_delete, kv in self.store.history(min_rev, max_rev):
            if not group.contains(kv.key):
                continue
            if is_delete:
                ev = Event(DELETE, KeyValue(key=kv.key, mod_revision=rev))
            else:
                ev = Event(PUT, kv)
            for w in group.watchers_for(kv.key):
                if rev >= w.min_rev:
                    batches.setdefault(w, []).append(ev)
        return batches

    def sync_victims(self) -> int:
        """Retry the parked batches; returns how many were delivered."""
        moved = 0
        current = self.store.current_revision()
        prev = _PrevKvCache(self.store)
        full: set[int] = set()  # streams found without room in this round: skip their watchers
        for w, (evs, rev) in list(self.victims.items()):
            if id(w.stream) in full:
                continue
            if not w.stream.room() or not self._send(w, evs, rev, prev):
                full.add(id(w.stream))
                continue
            moved += 1
            del self.victims[w]
            w.victim = False
            if w.min_rev <= current:
                self.unsynced.add(w)
            else:
                self.synced.add(w)
        if moved:
            self._retry_pending_progress()
        return moved

    # -- progress notifications ----------------------------------------------------------------------

    def progress(self, w: Watcher) -> None:
        """A progress response for a synced watcher (etcd: not sent when it is behind)."""
        if w in self.synced:
            w.stream.send([WatchResponse(w.id, [], self.store.current_revision())])

    def progress_all(self, stream: WatchStream) -> bool:
        """A stream-wide progress response (watch ID -1) now, or as soon as all its watchers are
        synced (etcd 3.5's deferred progress); returns whether it went out now. A stream without
        watchers gets nothing, as in etcd."""
        if self._try_progress_all(stream):
            self._progress_pending.pop(stream, None)
            return True
        self._progress_pending[stream] = None
        return False

    def _try_progress_all(self, stream: WatchStream) -> bool:
        if any(w not in self.synced for w in stream.watchers.values()):
            return False
        if not stream.watchers:
            return True
        return stream.send([WatchResponse(INVALID_WATCH_ID, [], self.store.current_revision())])

    def _retry_pending_progress(self) -> None:
        if not self._progress_pending:
            return
        for stream in list(self._progress_pending):
            if self._try_progress_all(stream):
                del self._progress_pending[stream]

    def has_pending_progress(self, stream: WatchStream) -> bool:
        return stream in self._progress_pending

    def progress_tick(self) -> None:
        """The periodic progress notification: every synced progress_notify watcher that got no
        events since the previous tick gets a progress response (etcd v3rpc's progress loop)."""
        current = self.store.current_revision()
        for stream in list(self._streams):
            for w in list(stream.watchers.values()):
                if not w.progress_notify:
                    continue
                if not w.sent_since_progress and w in self.synced:
                    stream.send([WatchResponse(w.id, [], current)])
                w.sent_since_progress = False

    # -- delivery ---------------------------------------------------------------------------------------

    def _send(self, w: Watcher, events: list[Event], rev: int, prev: _PrevKvCache) -> bool:
        """Queue one response for `w`; False when its stream has no room (nothing was queued)."""
        if w.plain:
            if not w.stream.send_one(WatchResponse(w.id, events, rev)):
                return False
            w.sent_since_progress = True
            return True
        evs = w.filtered(events)
        if not evs:
            return True  # all filtered out: nothing to say (not a progress notification)
        if w.prev_kv:
            evs = [prev.with_prev(ev) for ev in evs]
        resp = WatchResponse(w.id, evs, rev)
        if w.fragment:
            responses = fragment_response(resp, w.stream.max_request_bytes)
        else:
            responses = [resp]
        if not w.stream.send(responses):
            return False
        w.sent_since_progress = True
        return True


__all__ = [
    "CHAN_BUF_LEN",
    "MAX_WATCHERS_PER_SYNC",
    "PROGRESS_NOTIFY_INTERVAL_S",
    "SYNC_VICTIMS_INTERVAL_S",
    "SYNC_WATCHERS_INTERVAL_S",
    "WATCH_BATCH_MAX_REVS",
    "HistoryStore",
    "WatchableStore",
    "changes_to_events",
]
