"""Watchers, watcher groups and watch streams (etcd's mvcc/watcher.go and watcher_group.go).

A *watcher* follows a key or a key range from a revision on. Each belongs to a *watch stream*
(one per client Watch RPC), and every response for every watcher of a stream goes through that
stream's one bounded queue, in the order the store produced them. The queue is the only thing
here shared between threads: the owner of the watchable store (the server's node loop) appends
to it, and the stream's consumer (the gRPC layer, possibly on another thread) takes from it.
Everything else (groups, watcher fields, stream registration) belongs to the owner thread.

A send never waits: when the queue lacks room the send fails and the watchable store parks the
watcher as a *victim* with its undelivered events, so that a slow consumer costs the write path
nothing (see petcd.mvcc.watchable_store).

Ranges follow etcd's watch API: `end=None` (or empty) watches the key alone, `end=b"\\0"`
watches every key >= key, otherwise [key, end). Inside, a watcher's `end` is None for one key,
`UNBOUNDED` (b"") for "to the last key", or the exclusive end.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from petcd.errors import EtcdError
from petcd.pb.mvccpb import kv_pb2

if TYPE_CHECKING:
    from petcd.mvcc.watchable_store import WatchableStore

KeyValue = kv_pb2.KeyValue

PUT = 0  # mvccpb.Event.PUT
DELETE = 1  # mvccpb.Event.DELETE

FILTER_NOPUT = 0  # etcdserverpb.WatchCreateRequest.NOPUT
FILTER_NODELETE = 1  # etcdserverpb.WatchCreateRequest.NODELETE

AUTO_WATCH_ID = 0  # "pick one for me" (clientv3.AutoWatchID); the first picked ID is 0 as in etcd
INVALID_WATCH_ID = -1  # a progress response for the whole stream (clientv3.InvalidWatchID)

UNBOUNDED = b""
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024


class WatchError(EtcdError):
    """Root of the watch-stream errors (etcd's mvcc watcher errors, reported as cancel reasons)."""


class WatcherRangeEmpty(WatchError):
    message = "mvcc: watcher range is empty"


class WatcherDuplicateId(WatchError):
    message = "mvcc: duplicate watch ID provided on the WatchStream"


class WatcherNotExist(WatchError):
    message = "mvcc: watcher does not exist"


@dataclass(frozen=True, slots=True)
class Event:
    """One change: a put (kv is the new value) or a delete (kv has the key and mod_revision)."""

    type: int
    kv: KeyValue
    prev_kv: KeyValue | None = None

    @property
    def revision(self) -> int:
        return int(self.kv.mod_revision)

    def byte_size(self) -> int:
        """About the encoded size in a WatchResponse (for fragmenting)."""
        size = self.kv.ByteSize() + 8
        if self.prev_kv is not None:
            size += self.prev_kv.ByteSize() + 4
        return size


@dataclass(slots=True)
class WatchResponse:
    """What a stream's consumer receives (mvcc.WatchResponse plus the wire flags).

    `revision` is the store revision the watcher has seen everything up to: the events' revision
    when it was synced, the end of the history batch when catching up. A response without events
    and without compact_revision is a progress notification (bookmark) at `revision`.

    Read-only for consumers: the events list and the KeyValue messages in it are shared by every
    watcher the same revision went to.
    """

    watch_id: int
    events: list[Event]
    revision: int
    compact_revision: int = 0
    canceled: bool = False
    cancel_reason: str = ""
    fragment: bool = False

    @property
    def is_progress_notify(self) -> bool:
        return not self.events and not self.canceled and self.compact_revision == 0


def fragment_response(resp: WatchResponse, max_bytes: int) -> list[WatchResponse]:
    """Split a response whose events exceed `max_bytes` (etcd's fragment option).

    Every part but the last carries fragment=True; each part holds at least one event, so a
    single oversized event still goes out, alone. A client reassembles parts in order.
    """
    parts: list[WatchResponse] = []
    current: list[Event] = []
    size = 0
    for ev in resp.events:
        ev_size = ev.byte_size()
        if current and size + ev_size > max_bytes:
            parts.append(WatchResponse(resp.watch_id, current, resp.revision, fragment=True))
            current, size = [], 0
        current.append(ev)
        size += ev_size
    parts.append(WatchResponse(resp.watch_id, current, resp.revision))
    return parts


class Watcher:
    """One watch: a key range, the next revision it wants, and where its responses go."""

    __slots__ = (
        "compacted",
        "end",
        "fragment",
        "id",
        "key",
        "min_rev",
        "no_delete",
        "no_put",
        "plain",
        "prev_kv",
        "progress_notify",
        "restore",
        "sent_since_progress",
        "stream",
        "victim",
    )

    def __init__(
        self,
        key: bytes,
        end: bytes | None,
        min_rev: int,
        watch_id: int,
        stream: WatchStream,
        *,
        filters: Iterable[int] = (),
        prev_kv: bool = False,
        fragment: bool = False,
        progress_notify: bool = False,
    ) -> None:
        self.key = key
        self.end = end
        # Invariant: every event below min_rev has been delivered or is queued in a victim batch.
        self.min_rev = min_rev
        self.id = watch_id
        self.stream = stream
        filter_set = set(filters)
        self.no_put = FILTER_NOPUT in filter_set
        self.no_delete = FILTER_NODELETE in filter_set
        self.prev_kv = prev_kv
        self.fragment = fragment
        self.progress_notify = progress_notify
        # No filter, prev_kv or fragmenting: the store's events go out as they are.
        self.plain = not (self.no_put or self.no_delete or prev_kv or fragment)
        self.victim = False  # parked with undelivered events (in the store's victim list)
        self.compacted = False  # cancelled because min_rev fell below the compaction point
        self.restore = False  # moved back to unsynced by a snapshot restore; may be ahead of the store
        self.sent_since_progress = False

    def contains(self, key: bytes) -> bool:
        if self.end is None:
            return key == self.key
        return self.key <= key and (self.end == UNBOUNDED or key < self.end)

    def filtered(self, events: list[Event]) -> list[Event]:
        if not (self.no_put or self.no_delete):
            return events
        return [
            ev
            for ev in events
            if not ((ev.type == PUT and self.no_put) or (ev.type == DELETE and self.no_delete))
        ]

    def __repr__(self) -> str:
        return f"Watcher(id={self.id}, key={self.key!r}, end={self.end!r}, min_rev={self.min_rev})"


def prefix_end(prefix: bytes) -> bytes:
    """The end of the range holding exactly the keys that start with `prefix` (etcd's
    GetPrefixRangeEnd); UNBOUNDED when no such end exists (empty or all-0xff prefix)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return UNBOUNDED
    return stripped[:-1] + bytes([stripped[-1] + 1])


class WatcherGroup:
    """Watchers indexed for "who watches this key?" (etcd's watcherGroup).

    Watchers of the same key or the same interval share one member dict. Intervals are indexed
    by shape, so a lookup costs little however many watchers there are:

    * single keys: a dict by key;
    * prefixes ([p, prefix_end(p)), what `--prefix` and Kubernetes watch): a dict by prefix,
      probed with the key's own prefixes of the lengths in use;
    * from-key intervals ([k, +inf)): starts kept sorted, every start <= key matches;
    * any other interval: kept sorted by start, those starting at or before the key are checked.

    Insertion order is kept everywhere, so iteration is deterministic.
    """

    def __init__(self) -> None:
        self.watchers: dict[Watcher, None] = {}
        self._key_watchers: dict[bytes, dict[Watcher, None]] = {}
        self._ranges: dict[tuple[bytes, bytes], dict[Watcher, None]] = {}
        # Invariant: each key of _ranges is in exactly one of the three indexes below.
        self._prefixes: dict[bytes, dict[Watcher, None]] = {}
        self._prefix_lengths: dict[int, int] = {}  # length -> number of prefixes of that length
        self._lengths: list[int] = []  # sorted keys of _prefix_lengths
        self._from_starts: list[bytes] = []  # sorted starts of the [start, +inf) intervals
        self._intervals: list[tuple[bytes, bytes]] = []  # the other intervals, sorted
        self._starts: list[bytes] = []  # mirrors _intervals' starts

    def __len__(self) -> int:
        return len(self.watchers)

    def __contains__(self, w: object) -> bool:
        return w in self.watchers

    def __iter__(self) -> Iterator[Watcher]:
        return iter(list(self.watchers))

    def add(self, w: Watcher) -> None:
        if w in self.watchers:
            raise AssertionError(f"{w} added twice")
        self.watchers[w] = None
        if w.end is None:
            self._key_watchers.setdefault(w.key, {})[w] = None
            return
        interval = (w.key, w.end)
        members = self._ranges.get(interval)
        if members is None:
            members = self._ranges[interval] = {}
            self._index(interval, members)
        members[w] = None

    def _index(self, interval: tuple[bytes, bytes], members: dict[Watcher, None]) -> None:
        start, end = interval
        if end == UNBOUNDED:
            bisect.insort(self._from_starts, start)
        elif end == prefix_end(start):
            self._prefixes[start] = members
            n = len(start)
            if n not in self._prefix_lengths:
                bisect.insort(self._lengths, n)
            self._prefix_lengths[n] = self._prefix_lengths.get(n, 0) + 1
        else:
            at = bisect.bisect_left(self._intervals, interval)
            self._intervals.insert(at, interval)
            self._starts.insert(at, start)

    def _unindex(self, interval: tuple[bytes, bytes]) -> None:
        start, end = interval
        if end == UNBOUNDED:
            del self._from_starts[bisect.bisect_left(self._from_starts, start)]
        elif end == prefix_end(start):
            del self._prefixes[start]
            n = len(start)
            self._prefix_lengths[n] -= 1
            if not self._prefix_lengths[n]:
                del self._prefix_lengths[n]
                del self._lengths[bisect.bisect_left(self._lengths, n)]
        else:
            at = bisect.bisect_left(self._intervals, interval)
            del self._intervals[at]
            del self._starts[at]

    def delete(self, w: Watcher) -> bool:
        if w not in self.watchers:
            return False
        del self.watchers[w]
        if w.end is None:
            members = self._key_watchers[w.key]
            del members[w]
            if not members:
                del self._key_watchers[w.key]
            return True
        interval = (w.key, w.end)
        members = self._ranges[interval]
        del members[w]
        if not members:
            del self._ranges[interval]
            self._unindex(interval)
        return True

    def _stabbing(self, key: bytes) -> Iterator[dict[Watcher, None]]:
        if self._prefixes:
            for n in self._lengths:
                if n > len(key):
                    break
                members = self._prefixes.get(key[:n])
                if members is not None:
                    yield members
        for at in range(bisect.bisect_right(self._from_starts, key)):
            yield self._ranges[(self._from_starts[at], UNBOUNDED)]
        for at in range(bisect.bisect_right(self._starts, key)):
            start, end = self._intervals[at]
            if key < end:
                yield self._ranges[(start, end)]

    def contains(self, key: bytes) -> bool:
        if key in self._key_watchers:
            return True
        return any(True for _ in self._stabbing(key))

    def watchers_for(self, key: bytes) -> Iterable[Watcher]:
        single = self._key_watchers.get(key)
        ranges = list(self._stabbing(key))
        if not ranges:
            return single if single is not None else ()
        if single is None and len(ranges) == 1:
            return ranges[0]
        merged: dict[Watcher, None] = dict(single) if single is not None else {}
        for members in ranges:
            merged.update(members)
        return merged


@dataclass(slots=True)
class _Queue:
    items: deque[WatchResponse] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)


class WatchStream:
    """The watchers of one client stream and their shared, bounded response queue.

    Control methods (`watch`, `cancel`, `request_progress*`, `close`) are for the owner thread.
    The consumer takes responses with `get`/`drain` from any thread; `on_ready`, if given, is
    called (on the owner thread) after responses are queued, so a consumer on an event loop can
    be woken (e.g. with call_soon_threadsafe).
    """

    def __init__(
        self,
        store: WatchableStore,
        capacity: int,
        on_ready: Callable[[], None] | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self._store = store
        self.capacity = capacity
        self.max_request_bytes = max_request_bytes
        self._on_ready = on_ready
        self._queue = _Queue()
        self.watchers: dict[int, Watcher] = {}
        self._next_id = 0
        self.closed = False

    # -- owner side -------------------------------------------------------------------------------

    def watch(
        self,
        key: bytes,
        end: bytes | None = None,
        start_rev: int = 0,
        watch_id: int = AUTO_WATCH_ID,
        *,
        filters: Iterable[int] = (),
        prev_kv: bool = False,
        fragment: bool = False,
        progress_notify: bool = False,
    ) -> int:
        """Start watching; returns the watch ID. start_rev <= 0 means "after the current revision"."""
        if end == b"\x00":
            end = UNBOUNDED
        elif end == b"":
            end = None
        elif end is not None and key >= end:
            raise WatcherRangeEmpty()
        if self.closed:
            raise WatcherRangeEmpty()  # etcd answers a closed stream the same way
        if watch_id == AUTO_WATCH_ID:
            while self._next_id in self.watchers:
                self._next_id += 1
            watch_id = self._next_id
            self._next_id += 1
        elif watch_id in self.watchers:
            raise WatcherDuplicateId()
        w = Watcher(
            key,
            end,
            start_rev,
            watch_id,
            self,
            filters=filters,
            prev_kv=prev_kv,
            fragment=fragment,
            progress_notify=progress_notify,
        )
        self._store.add_watcher(w, start_rev)
        self.watchers[watch_id] = w
        return watch_id

    def cancel(self, watch_id: int) -> None:
        w = self.watchers.get(watch_id)
        if w is None or self.closed:
            raise WatcherNotExist()
        self._store.cancel_watcher(w)
        del self.watchers[watch_id]

    def request_progress(self, watch_id: int) -> None:
        """Queue a progress response for one watcher, if it is synced (else it is busy anyway)."""
        w = self.watchers.get(watch_id)
        if w is not None:
            self._store.progress(w)

    def request_progress_all(self) -> bool:
        """Queue one stream-wide progress response (watch ID -1) once every watcher is synced.

        Returns whether it was queued now; if not, it is queued as soon as the last watcher
        catches up (etcd 3.5's deferred progress), so it never claims revisions not yet delivered.
        """
        return self._store.progress_all(self)

    def close(self) -> None:
        for w in list(self.watchers.values()):
            self._store.cancel_watcher(w)
        self.watchers.clear()
        self.closed = True
        self._store.forget_stream(self)

    def rev(self) -> int:
        return self._store.rev()

    def send(self, responses: list[WatchResponse]) -> bool:
        """Queue responses all together, or none when there is not room for all of them.

        An empty queue takes any number (a revision fragmented into more parts than the queue
        holds must still go out some time)."""
        if self.closed:
            return True  # nobody will read them; the watchers are being cancelled
        q = self._queue
        with q.lock:
            if q.items and len(q.items) + len(responses) > self.capacity:
                return False
            q.items.extend(responses)
        if self._on_ready is not None:
            self._on_ready()
        return True

    def send_one(self, resp: WatchResponse) -> bool:
        """`send([resp])`, for the fan-out hot path."""
        if self.closed:
            return True
        q = self._queue
        with q.lock:
            if len(q.items) >= self.capacity:
                return False
            q.items.append(resp)
        if self._on_ready is not None:
            self._on_ready()
        return True

    def room(self) -> int:
        with self._queue.lock:
            return self.capacity - len(self._queue.items)

    def forget(self, w: Watcher) -> None:
        """Drop a watcher the store cancelled by itself (compaction)."""
        if self.watchers.get(w.id) is w:
            del self.watchers[w.id]

    # -- consumer side -----------------------------------------------------------------------------

    def get(self) -> WatchResponse | None:
        q = self._queue
        with q.lock:
            return q.items.popleft() if q.items else None

    def drain(self, max_items: int | None = None) -> list[WatchResponse]:
        q = self._queue
        with q.lock:
            n = len(q.items) if max_items is None else min(max_items, len(q.items))
            return [q.items.popleft() for _ in range(n)]

    def __len__(self) -> int:
        with self._queue.lock:
            return len(self._queue.items)
