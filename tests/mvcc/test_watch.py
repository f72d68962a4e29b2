"""The watchable store: one test per watch guarantee of etcd's API (ordered, unique, reliable,
atomic, resumable, bookmarkable, prev_kv, slow watchers never block writes, compaction cancels),
plus filters, fragmenting, progress, ranges, restore, and a Hypothesis property: a watch from any
kept revision replays exactly the model's history.

The store under the watchable store is `HistoryModel`, a small MVCC history kept in lists that
satisfies the HistoryStore protocol (M1's store replaces it through the `kv` fixture as soon as
it exists; see `_stores`).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from petcd.backend.lmdb import LmdbBackend, db_path
from petcd.backend.memory import MemoryBackend
from petcd.errors import Compacted
from petcd.mvcc.kvstore import KVStore
from petcd.mvcc.types import DeleteRangeRequest, PutRequest, RequestOp, TxnRequest
from petcd.mvcc.watchable_store import WatchableStore
from petcd.mvcc.watcher import (
    DELETE,
    FILTER_NODELETE,
    FILTER_NOPUT,
    INVALID_WATCH_ID,
    PUT,
    Event,
    KeyValue,
    WatcherDuplicateId,
    WatcherNotExist,
    WatcherRangeEmpty,
    WatchResponse,
    WatchStream,
    prefix_end,
)
from petcd.pb.mvccpb.kv_pb2 import Event as pb_Event

# -- a tiny MVCC history standing in for the store --------------------------------------------


@dataclass
class HistoryModel:
    """Revisions as lists of changes; notifies the watchable store after each write."""

    rev: int = 1
    compacted: int = 0
    changes: dict[int, list[tuple[bool, KeyValue]]] = field(default_factory=dict)
    live: dict[bytes, KeyValue] = field(default_factory=dict)
    hook: Callable[[int, list[tuple[bool, KeyValue]]], None] | None = None

    # HistoryStore
    def current_revision(self) -> int:
        return self.rev

    def compact_revision(self) -> int:
        return self.compacted

    def history(self, min_rev: int, max_rev: int) -> Iterator[tuple[int, bool, KeyValue]]:
        if min_rev < self.compacted:
            raise Compacted()
        for rev in range(min_rev, max_rev + 1):
            for is_delete, kv in self.changes.get(rev, []):
                yield rev, is_delete, kv

    def kv_at(self, key: bytes, rev: int) -> KeyValue | None:
        if rev < self.compacted:
            raise Compacted()
        found: KeyValue | None = None
        for r in range(1, rev + 1):
            for is_delete, kv in self.changes.get(r, []):
                if kv.key == key:
                    found = None if is_delete else kv
        return found

    # writes
    def txn(self, ops: list[tuple[str, bytes, bytes]]) -> int:
        """Apply puts ("put", key, value) and deletes ("del", key, b"") as one revision."""
        rev = self.rev + 1
        out: list[tuple[bool, KeyValue]] = []
        for op, key, value in ops:
            old = self.live.get(key)
            if op == "put":
                kv = KeyValue(
                    key=key,
                    value=value,
                    create_revision=old.create_revision if old else rev,
                    mod_revision=rev,
                    version=(old.version + 1) if old else 1,
                )
                self.live[key] = kv
                out.append((False, kv))
            elif old is not None:
                del self.live[key]
                out.append((True, KeyValue(key=key, mod_revision=rev)))
        if not out:
            return self.rev
        self.rev = rev
        self.changes[rev] = out
        if self.hook is not None:
            self.hook(rev, out)
        return rev

    def put(self, key: bytes, value: bytes = b"v") -> int:
        return self.txn([("put", key, value)])

    def delete(self, key: bytes) -> int:
        return self.txn([("del", key, b"")])

    def compact(self, rev: int) -> None:
        self.compacted = rev


class StoreHistory(HistoryModel):
    """M1's KVStore under the watchable store, with the model beside it as the oracle.

    Writes go to both (the model silently); the store's event sink feeds the watchable store,
    and the HistoryStore methods are the store's, so everything watchers get comes from it.
    """

    # KVStore's physical compaction at C removes a tombstone at exactly C (as etcd 3.4 does), so a
    # watch from C misses that delete; the model keeps it. Asked of M1 (requests.md, 11:05): the
    # checks ignore such deletes on both sides while this is True; set it False once fixed.
    drops_tombstone_at_compact = True

    def __init__(self, store: KVStore) -> None:
        super().__init__(rev=store.current_revision())
        self.store = store
        self.event_sink: Callable[[int, list[pb_Event]], None] | None = None
        store.set_event_sink(self._sink)

    def current_revision(self) -> int:
        return self.store.current_revision()

    def compact_revision(self) -> int:
        return self.store.compact_revision()

    def history(self, min_rev: int, max_rev: int) -> Iterator[tuple[int, bool, KeyValue]]:
        return iter(self.store.history(min_rev, max_rev))

    def kv_at(self, key: bytes, rev: int) -> KeyValue | None:
        return self.store.kv_at(key, rev)

    def txn(self, ops: list[tuple[str, bytes, bytes]]) -> int:
        hook, self.hook = self.hook, None
        try:
            rev = super().txn(ops)
        finally:
            self.hook = hook
        success = [
            RequestOp.of(PutRequest(key, value)) if op == "put" else RequestOp.of(DeleteRangeRequest(key))
            for op, key, value in ops
        ]
        self.store.txn(TxnRequest(success=success))
        assert self.store.current_revision() == rev
        return rev

    def _sink(self, rev: int, events: list[pb_Event]) -> None:
        # `hook` gates delivery (None: a write the watchers must not hear of, as with the model)
        if self.hook is not None and self.event_sink is not None:
            self.event_sink(rev, events)

    def compact(self, rev: int) -> None:
        super().compact(rev)
        if rev > self.store.compact_revision():
            self.store.compact(rev, physical=True)


STORES = ["model", "memory", "lmdb"]


def make_history(kind: str, directory: Path) -> HistoryModel:
    if kind == "model":
        return HistoryModel()
    if kind == "memory":
        return StoreHistory(KVStore(MemoryBackend()))
    return StoreHistory(KVStore(LmdbBackend(db_path(directory))))


@pytest.fixture(params=STORES)
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryModel]:
    history = make_history(request.param, tmp_path)
    yield history
    if isinstance(history, StoreHistory):
        history.store.backend.close()


def watchable(kv: HistoryModel, **kwargs: int) -> WatchableStore:
    ws = WatchableStore(kv, **kwargs)
    kv.hook = ws.notify
    if isinstance(kv, StoreHistory):
        kv.event_sink = ws.event_sink  # the store's own events, with their prev_kv
    return ws


def pump(ws: WatchableStore, *streams: WatchStream, rounds: int = 10_000) -> list[list[WatchResponse]]:
    """Run the background duties and drain the streams until nothing moves; per-stream output."""
    out: list[list[WatchResponse]] = [[] for _ in streams]
    for _ in range(rounds):
        for i, s in enumerate(streams):
            out[i].extend(s.drain())
        if not (ws.has_unsynced or ws.has_victims):
            break
        ws.sync_victims()
        ws.sync_watchers()
    for i, s in enumerate(streams):
        out[i].extend(s.drain())
    return out


def events_of(responses: list[WatchResponse], watch_id: int | None = None) -> list[tuple[int, int, bytes]]:
    return [
        (ev.type, ev.revision, ev.kv.key)
        for r in responses
        if watch_id is None or r.watch_id == watch_id
        for ev in r.events
    ]


def model_events(
    kv: HistoryModel, start: int, match: Callable[[bytes], bool]
) -> list[tuple[int, int, bytes]]:
    return [
        (DELETE if is_delete else PUT, rev, item.key)
        for rev, is_delete, item in kv.history(max(start, 1), kv.rev)
        if match(item.key)
    ]


def busy_history(kv: HistoryModel, n: int = 60) -> None:
    for i in range(n):
        key = b"k%02d" % (i % 7)
        if i % 5 == 4:
            kv.delete(key)
        elif i % 3 == 0:
            kv.txn(
                [
                    ("put", key, b"x%d" % i),
                    ("put", b"k-txn", b"%d" % i),
                    ("del", b"k%02d" % ((i + 1) % 7), b""),
                ]
            )
        else:
            kv.put(key, b"v%d" % i)


# -- the guarantees ---------------------------------------------------------------------------------


def test_ordered_unique_reliable_from_past_revision(kv: HistoryModel) -> None:
    ws = watchable(kv, watch_batch_max_revs=7, chan_buf_len=4)
    busy_history(kv)
    s = ws.new_watch_stream()
    s.watch(b"k", b"l", start_rev=3)
    kv.put(b"k00", b"late")  # a write while the watcher is still catching up
    got = events_of(pump(ws, s)[0])
    assert got == model_events(kv, 3, lambda k: k.startswith(b"k"))
    revs = [rev for _, rev, _ in got]
    assert revs == sorted(revs)  # ordered
    assert len(set(got)) == len(got)  # unique (a key changes once per revision here)
    # and from now on it is synced: a new write arrives in one response
    kv.put(b"k03", b"now")
    (fresh,) = pump(ws, s)
    assert events_of(fresh) == [(PUT, kv.rev, b"k03")]


def test_many_unsynced_watchers_at_different_revisions(kv: HistoryModel) -> None:
    ws = watchable(kv, watch_batch_max_revs=3, max_watchers_per_sync=2, chan_buf_len=3)
    busy_history(kv, 40)
    s = ws.new_watch_stream()
    other = ws.new_watch_stream()
    starts = {s.watch(b"k", b"l", start_rev=rev): rev for rev in (2, 30, 9, 41, 17)}
    far = other.watch(b"", b"\x00", start_rev=25)
    mine, theirs = pump(ws, s, other)
    for wid, start in starts.items():
        assert events_of(mine, wid) == model_events(kv, start, lambda k: k.startswith(b"k")), start
    assert events_of(theirs, far) == model_events(kv, 25, lambda k: True)


def test_txn_order_within_a_revision(kv: HistoryModel) -> None:
    ws = watchable(kv)
    s = ws.new_watch_stream()
    s.watch(b"", b"\x00")
    kv.put(b"b")
    rev = kv.txn([("put", b"c", b"1"), ("del", b"b", b""), ("put", b"a", b"2")])
    (responses,) = pump(ws, s)
    assert events_of(responses[-1:]) == [(PUT, rev, b"c"), (DELETE, rev, b"b"), (PUT, rev, b"a")]


@pytest.mark.parametrize("synced", [True, False])
def test_atomic_a_revision_is_never_split(kv: HistoryModel, synced: bool) -> None:
    ws = watchable(kv, watch_batch_max_revs=2, chan_buf_len=2)
    s = ws.new_watch_stream()
    base = kv.rev
    if synced:
        s.watch(b"", b"\x00")
    for i in range(20):
        kv.txn([("put", b"a%02d" % j, b"%d" % i) for j in range(1 + i % 5)])
    if not synced:
        s.watch(b"", b"\x00", start_rev=base + 1)
    (responses,) = pump(ws, s)
    seen: set[int] = set()
    for r in responses:
        revs = {ev.revision for ev in r.events}
        assert not (revs & seen), "a revision appeared in two responses"
        seen |= revs
        for rev in revs:
            assert len([ev for ev in r.events if ev.revision == rev]) == len(kv.changes[rev])
    assert seen == set(range(base + 1, kv.rev + 1))


def test_resumable_from_last_revision_plus_one(kv: HistoryModel) -> None:
    ws = watchable(kv)
    s = ws.new_watch_stream()
    wid = s.watch(b"a", b"b")
    for i in range(10):
        kv.put(b"a%d" % i)
    (first,) = pump(ws, s)
    last = first[-1].events[-1].revision
    s.cancel(wid)
    for i in range(10):
        kv.put(b"a%d" % i, b"again")
    s.watch(b"a", b"b", start_rev=last + 1)
    (second,) = pump(ws, s)
    assert events_of(first) + events_of(second) == model_events(kv, 1, lambda k: k.startswith(b"a"))


def test_bookmarkable_progress_waits_for_catch_up(kv: HistoryModel) -> None:
    ws = watchable(kv, watch_batch_max_revs=3)
    for i in range(20):
        kv.put(b"p%d" % (i % 3))
    s = ws.new_watch_stream()
    s.watch(b"p", b"q", start_rev=2)
    s.watch(b"p1")  # synced already
    assert s.request_progress_all() is False  # the first watcher is behind: deferred
    kv.put(b"p0", b"more")
    (responses,) = pump(ws, s)
    progress = [i for i, r in enumerate(responses) if r.is_progress_notify]
    assert len(progress) == 1
    at = progress[0]
    bookmark = responses[at]
    assert bookmark.watch_id == INVALID_WATCH_ID
    # everything at or below the bookmark was delivered before it
    before = {(ev.revision, ev.kv.key) for r in responses[:at] for ev in r.events if r.watch_id == 0}
    assert before == {
        (rev, k)
        for _, rev, k in model_events(kv, 2, lambda k: k.startswith(b"p"))
        if rev <= bookmark.revision
    }
    assert all(ev.revision > bookmark.revision for r in responses[at + 1 :] for ev in r.events)
    # once synced, a request is answered at once with the current revision
    assert s.request_progress_all() is True
    assert s.drain()[-1] == WatchResponse(INVALID_WATCH_ID, [], kv.rev)


def test_progress_for_one_watcher_only_when_synced(kv: HistoryModel) -> None:
    ws = watchable(kv)
    kv.put(b"x")
    s = ws.new_watch_stream()
    behind = s.watch(b"x", start_rev=1)
    s.request_progress(behind)
    assert s.drain() == []
    pump(ws, s)
    s.request_progress(behind)
    assert s.drain() == [WatchResponse(behind, [], kv.rev)]
    s.request_progress(99)  # unknown: ignored
    assert s.drain() == []


def test_prev_kv(kv: HistoryModel) -> None:
    ws = watchable(kv)
    kv.put(b"a", b"1")
    s = ws.new_watch_stream()
    s.watch(b"a", start_rev=1, prev_kv=True)
    plain = s.watch(b"a", start_rev=1)
    kv.put(b"a", b"2")
    kv.delete(b"a")
    kv.put(b"a", b"3")
    (responses,) = pump(ws, s)
    with_prev = [ev for r in responses if r.watch_id == 0 for ev in r.events]
    assert [(ev.kv.value, ev.prev_kv.value if ev.prev_kv else None) for ev in with_prev] == [
        (b"1", None),
        (b"2", b"1"),
        (b"", b"2"),
        (b"3", None),
    ]
    assert all(ev.prev_kv is None for r in responses if r.watch_id == plain for ev in r.events)
    # synced path too
    kv.put(b"a", b"4")
    last = s.drain()
    assert [ev.prev_kv.value for r in last if r.watch_id == 0 for ev in r.events if ev.prev_kv] == [b"3"]


def test_slow_watcher_never_blocks_writes_and_catches_up(kv: HistoryModel) -> None:
    ws = watchable(kv, chan_buf_len=2, watch_batch_max_revs=50)
    slow = ws.new_watch_stream()
    fast = ws.new_watch_stream()
    base = kv.rev
    slow.watch(b"", b"\x00")
    fast.watch(b"", b"\x00")
    fast_seen: list[WatchResponse] = []
    for i in range(500):
        kv.put(b"key%d" % (i % 10), b"%d" % i)  # returns at once although nobody reads `slow`
        fast_seen.extend(fast.drain())
    assert len(slow) == 2  # its queue is full, so it was parked ...
    assert ws.has_victims
    gauges = ws.gauges()
    assert gauges["watch_stream_total"] == 2 and gauges["watcher_total"] == 2
    assert gauges["slow_watcher_total"] == 1 and gauges["pending_events_total"] == 1
    assert events_of(fast_seen) == model_events(kv, base + 1, lambda k: True)  # ... without hurting the other
    (caught_up,) = pump(ws, slow)
    assert events_of(caught_up) == model_events(kv, base + 1, lambda k: True)
    kv.put(b"key0", b"synced again")
    assert events_of(slow.drain()) == [(PUT, kv.rev, b"key0")]


def test_compaction_cancels_watchers_behind_it(kv: HistoryModel) -> None:
    ws = watchable(kv)
    base = kv.rev
    for i in range(10):
        kv.put(b"c%d" % i)
    kv.compact(base + 5)
    s = ws.new_watch_stream()
    behind = s.watch(b"c", b"d", start_rev=base + 2)
    at_point = s.watch(b"c", b"d", start_rev=base + 5)
    (responses,) = pump(ws, s)
    cancel = [r for r in responses if r.watch_id == behind]
    assert len(cancel) == 1
    assert cancel[0].canceled and cancel[0].compact_revision == base + 5 and not cancel[0].events
    assert cancel[0].cancel_reason == ""  # etcd signals compaction by compact_revision alone
    assert behind not in s.watchers
    with pytest.raises(WatcherNotExist):
        s.cancel(behind)
    got = [ev.revision for r in responses if r.watch_id == at_point for ev in r.events]
    assert got == list(range(base + 5, base + 11))


def test_compaction_while_parked_cancels_on_catch_up(kv: HistoryModel) -> None:
    ws = watchable(kv, chan_buf_len=1)
    s = ws.new_watch_stream()
    wid = s.watch(b"", b"\x00")
    base = kv.rev
    for i in range(10):
        kv.put(b"z%d" % i)
    kv.compact(kv.rev)
    first = s.drain()
    assert events_of(first) == [(PUT, base + 1, b"z0")]
    (rest,) = pump(ws, s)
    # the parked revision is delivered, then the gap is behind compaction: cancelled, not skipped
    assert events_of(rest) == [(PUT, base + 2, b"z1")]
    assert rest[-1].watch_id == wid and rest[-1].compact_revision == kv.rev


def test_future_revision_gets_no_old_events(kv: HistoryModel) -> None:
    ws = watchable(kv)
    for _ in range(5):
        kv.put(b"f")
    s = ws.new_watch_stream()
    s.watch(b"f", start_rev=kv.rev + 3)
    kv.put(b"f")
    kv.put(b"f")
    assert pump(ws, s) == [[]]
    rev = kv.put(b"f")
    kv.put(b"f")
    (responses,) = pump(ws, s)
    assert [ev.revision for r in responses for ev in r.events] == [rev, rev + 1]


def test_start_revision_zero_means_from_now(kv: HistoryModel) -> None:
    ws = watchable(kv)
    kv.put(b"n")
    s = ws.new_watch_stream()
    s.watch(b"n", start_rev=0)
    assert pump(ws, s) == [[]]
    rev = kv.put(b"n")
    assert events_of(s.drain()) == [(PUT, rev, b"n")]


def test_filters(kv: HistoryModel) -> None:
    ws = watchable(kv)
    s = ws.new_watch_stream()
    no_put = s.watch(b"f", filters=[FILTER_NOPUT])
    no_del = s.watch(b"f", filters=[FILTER_NODELETE])
    kv.put(b"f")
    kv.delete(b"f")
    responses = s.drain()
    assert [(r.watch_id, [ev.type for ev in r.events]) for r in responses] == [
        (no_del, [PUT]),
        (no_put, [DELETE]),
    ]


def test_fragmenting_large_responses(kv: HistoryModel) -> None:
    ws = watchable(kv, max_request_bytes=1000)
    s = ws.new_watch_stream()
    frag = s.watch(b"", b"\x00", fragment=True)
    whole = s.watch(b"", b"\x00")
    rev = kv.txn([("put", b"big%d" % i, b"x" * 300) for i in range(10)])
    responses = s.drain()
    parts = [r for r in responses if r.watch_id == frag]
    assert len(parts) > 1
    assert [r.fragment for r in parts] == [True] * (len(parts) - 1) + [False]
    assert all(sum(ev.byte_size() for ev in r.events) <= 1000 for r in parts)
    assert events_of(parts) == events_of([r for r in responses if r.watch_id == whole])
    assert {r.revision for r in parts} == {rev}


def test_fragments_beyond_queue_capacity_still_go_out(kv: HistoryModel) -> None:
    ws = watchable(kv, max_request_bytes=100, chan_buf_len=2)
    s = ws.new_watch_stream()
    wid = s.watch(b"", b"\x00", fragment=True)
    kv.put(b"first")
    rev = kv.txn([("put", b"big%d" % i, b"x" * 90) for i in range(5)])  # 5 parts > 2 slots
    assert len(ws.victims) == 1  # the queue holds the first response
    (responses,) = pump(ws, s)
    parts = [r for r in responses if r.watch_id == wid and r.revision == rev]
    assert [r.fragment for r in parts] == [True] * 4 + [False]


def test_periodic_progress_only_for_idle_progress_watchers(kv: HistoryModel) -> None:
    ws = watchable(kv)
    s = ws.new_watch_stream()
    idle = s.watch(b"idle", progress_notify=True)
    busy = s.watch(b"busy", progress_notify=True)
    s.watch(b"quiet")  # did not ask for progress
    kv.put(b"busy")
    s.drain()
    ws.progress_tick()
    assert s.drain() == [WatchResponse(idle, [], kv.rev)]
    ws.progress_tick()
    assert {r.watch_id for r in s.drain()} == {idle, busy}


def test_watch_ids_and_ranges(kv: HistoryModel) -> None:
    ws = watchable(kv)
    s = ws.new_watch_stream()
    assert s.watch(b"a") == 0
    assert s.watch(b"a") == 1
    assert s.watch(b"a", watch_id=7) == 7
    with pytest.raises(WatcherDuplicateId):
        s.watch(b"b", watch_id=7)
    with pytest.raises(WatcherRangeEmpty):
        s.watch(b"b", b"a")
    with pytest.raises(WatcherRangeEmpty):
        s.watch(b"b", b"b")
    with pytest.raises(WatcherNotExist):
        s.cancel(42)
    pre = s.watch(b"p", b"q")
    from_key = s.watch(b"m", b"\x00")
    single = s.watch(b"pz", b"")  # an empty range end means one key
    for key in (b"a", b"l", b"p", b"pz", b"q", b"zz"):
        kv.put(key)
    by_watch: dict[int, list[bytes]] = {}
    for r in s.drain():
        by_watch.setdefault(r.watch_id, []).extend(ev.kv.key for ev in r.events)
    assert by_watch[pre] == [b"p", b"pz"]
    assert by_watch[from_key] == [b"p", b"pz", b"q", b"zz"]
    assert by_watch[single] == [b"pz"]
    assert by_watch[0] == by_watch[1] == by_watch[7] == [b"a"]


def test_cancel_and_close_stop_delivery(kv: HistoryModel) -> None:
    ws = watchable(kv, chan_buf_len=1)
    s = ws.new_watch_stream()
    a = s.watch(b"a")
    b = s.watch(b"b")
    kv.put(b"a")
    kv.put(b"a")  # queue full: watcher a is parked
    assert len(ws.victims) == 1
    s.cancel(a)
    assert len(ws.victims) == 0
    s.drain()
    kv.put(b"a")
    assert s.drain() == []
    s.close()
    kv.put(b"b")
    assert s.drain() == [] and len(ws.synced) == 0
    with pytest.raises(WatcherNotExist):
        s.cancel(b)
    with pytest.raises(WatcherRangeEmpty):
        s.watch(b"c")


def silently(kv: HistoryModel, write: Callable[[], int]) -> None:
    hook, kv.hook = kv.hook, None
    try:
        write()
    finally:
        kv.hook = hook


def test_restore_resyncs_from_history(kv: HistoryModel) -> None:
    ws = watchable(kv)
    s = ws.new_watch_stream()
    s.watch(b"r")
    s.watch(b"r", start_rev=100)  # future: stays synced after restore
    base = kv.put(b"r", b"0")  # delivered while synced: must not come again after the restore
    silently(kv, lambda: kv.put(b"r", b"1"))  # the store changes underneath (a snapshot install)
    silently(kv, lambda: kv.put(b"r", b"2"))
    ws.restore()
    (responses,) = pump(ws, s)
    assert events_of(responses) == [(PUT, base, b"r"), (PUT, base + 1, b"r"), (PUT, base + 2, b"r")]
    assert len(ws.synced) == 2


def test_on_ready_called_after_queueing(kv: HistoryModel) -> None:
    ws = watchable(kv)
    calls: list[int] = []
    s = ws.new_watch_stream(on_ready=lambda: calls.append(len(s)))
    s.watch(b"o")
    kv.put(b"o")
    assert calls == [1]


# -- Hypothesis: watch-from-revision replays the model -------------------------------------------

KEYS = [b"a", b"b", b"c", b"d"]

op_strategy = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.binary(max_size=3)),
    st.tuples(st.just("del"), st.sampled_from(KEYS), st.just(b"")),
)
# etcd refuses a txn that changes one key twice, so the ops of a write name distinct keys
write_strategy = st.lists(op_strategy, min_size=1, max_size=3, unique_by=lambda op: op[1])
Write = list[tuple[str, bytes, bytes]]
Spec = dict[bytes, list[tuple[int, bytes | None]]]


def apply_write(kv: HistoryModel, spec: Spec, ops: Write) -> None:
    """Write to the store and to the spec (dict[key, list[(rev, value | None)]], None = tombstone)."""
    before = kv.rev
    rev = kv.txn(ops)
    if rev == before:
        return
    for op, key, value in ops:
        live = bool(spec.get(key)) and spec[key][-1][1] is not None
        if op == "put":
            spec.setdefault(key, []).append((rev, value))
        elif live:
            spec[key].append((rev, None))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    writes=st.lists(write_strategy, min_size=1, max_size=30),
    compact_frac=st.floats(0, 1),
    start_frac=st.floats(0, 1.2),
    later=st.lists(write_strategy, max_size=10),
    buf=st.integers(1, 4),
    batch=st.integers(1, 5),
    watch_range=st.sampled_from([(b"a", None), (b"b", b"d"), (b"", b"\x00")]),
    prev=st.booleans(),
    kind=st.sampled_from(STORES),
)
def test_watch_from_revision_replays_history(  # noqa: PLR0917
    writes: list[Write],
    compact_frac: float,
    start_frac: float,
    later: list[Write],
    buf: int,
    batch: int,
    watch_range: tuple[bytes, bytes | None],
    prev: bool,
    kind: str,
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        kv = make_history(kind, Path(directory))
        try:
            replay_check(kv, writes, compact_frac, start_frac, later, buf, batch, watch_range, prev)
        finally:
            if isinstance(kv, StoreHistory):
                kv.store.backend.close()


def replay_check(  # noqa: PLR0917
    kv: HistoryModel,
    writes: list[Write],
    compact_frac: float,
    start_frac: float,
    later: list[Write],
    buf: int,
    batch: int,
    watch_range: tuple[bytes, bytes | None],
    prev: bool,
) -> None:
    spec: Spec = {}
    base = kv.rev
    ws = watchable(kv, chan_buf_len=buf, watch_batch_max_revs=batch)
    for ops in writes:
        apply_write(kv, spec, ops)
    compact = int(compact_frac * kv.rev)
    kv.compact(compact)
    start = int(start_frac * (kv.rev + 1))
    if start and start <= base:
        start = base + 1  # a store starting above revision 1 has nothing below its start
    key, end = watch_range
    s = ws.new_watch_stream()
    wid = s.watch(key, end, start_rev=start, prev_kv=prev)
    first = start if start > 0 else kv.rev + 1  # 0: from the next revision on
    received: list[WatchResponse] = []
    for ops in later:
        apply_write(kv, spec, ops)
        received.extend(s.drain(1))  # a consumer slower than the writer
        ws.sync_victims()
        ws.sync_watchers()
    received.extend(pump(ws, s)[0])
    assert all(r.watch_id == wid for r in received)

    if 0 < start < compact:
        assert len(received) == 1
        assert received[0].canceled and received[0].compact_revision == compact
        return

    def watched(k: bytes) -> bool:
        if end is None:
            return k == key
        return key <= k and (end == b"\x00" or k < end)

    expected: list[tuple[int, int, bytes, bytes, bytes | None]] = []
    for k, versions in spec.items():
        if not watched(k):
            continue
        for i, (rev, value) in enumerate(versions):
            if rev < first:
                continue
            # prev_kv is the value at rev - 1, unknown (unset) once that revision is compacted
            prev_value = versions[i - 1][1] if i > 0 and rev - 1 >= compact and prev else None
            kind = PUT if value is not None else DELETE
            if kind == DELETE and rev == compact and getattr(kv, "drops_tombstone_at_compact", False):
                continue
            expected.append((rev, kind, k, value or b"", prev_value))
    expected.sort(key=lambda e: (e[0], _op_index(kv, e[0], e[2])))
    got = [
        (ev.revision, ev.type, ev.kv.key, ev.kv.value, ev.prev_kv.value if ev.prev_kv else None)
        for r in received
        for ev in r.events
        if not (
            ev.type == DELETE and ev.revision == compact and getattr(kv, "drops_tombstone_at_compact", False)
        )
    ]
    assert got == expected


def _op_index(kv: HistoryModel, rev: int, key: bytes) -> int:
    return next(i for i, (_, item) in enumerate(kv.changes[rev]) if item.key == key)


# -- Hypothesis: everything interleaved ----------------------------------------------------------


class WatchMachine(RuleBasedStateMachine):
    """Writes, compactions, watches from any revision, cancels, slow and fast consumers, sync
    rounds and progress requests in any order; checks every guarantee on what the streams got."""

    kind = "model"

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="petcd-watch-")
        self.kv = make_history(self.kind, Path(self.directory))
        self.ws = watchable(self.kv, chan_buf_len=3, watch_batch_max_revs=2, max_watchers_per_sync=2)
        self.streams = [self.ws.new_watch_stream() for _ in range(2)]
        # (stream index, watch id) -> (key, end, first revision wanted)
        self.watches: dict[tuple[int, int], tuple[bytes, bytes | None, int]] = {}
        self.received: dict[tuple[int, int], list[Event]] = {}
        self.cancelled: set[tuple[int, int]] = set()
        self.compacted: dict[tuple[int, int], int] = {}
        self.lossy: set[int] = set()
        # Responses queued and taken per stream, so a bookmark is held only against the watchers
        # that existed when it was queued.
        self.queued = [0, 0]
        self.taken = [0, 0]
        self.created_at: dict[tuple[int, int], int] = {}
        for i, stream in enumerate(self.streams):
            stream.send = self._counting(i, stream.send)  # type: ignore[method-assign,assignment]
            stream.send_one = self._counting_one(i, stream.send_one)  # type: ignore[method-assign,assignment]

    def _counting(
        self, i: int, send: Callable[[list[WatchResponse]], bool]
    ) -> Callable[[list[WatchResponse]], bool]:
        def counted(responses: list[WatchResponse]) -> bool:
            ok = send(responses)
            if ok:
                self.queued[i] += len(responses)
            return ok

        return counted

    def _counting_one(self, i: int, send: Callable[[WatchResponse], bool]) -> Callable[[WatchResponse], bool]:
        def counted(response: WatchResponse) -> bool:
            ok = send(response)
            if ok:
                self.queued[i] += 1
            return ok

        return counted

    @rule(ops=write_strategy)
    def write(self, ops: Write) -> None:
        self.kv.txn(ops)

    @rule(frac=st.floats(0, 1))
    def compact(self, frac: float) -> None:
        rev = max(self.kv.compacted, int(frac * self.kv.rev))
        self.kv.compact(rev)
        if getattr(self.kv, "drops_tombstone_at_compact", False):
            self.lossy.add(rev)

    @rule(
        stream=st.integers(0, 1),
        rng=st.sampled_from([(b"a", None), (b"b", b"d"), (b"", b"\x00")]),
        back=st.integers(-2, 12),
        prev=st.booleans(),
    )
    def watch(self, stream: int, rng: tuple[bytes, bytes | None], back: int, prev: bool) -> None:
        start = 0 if back == -2 else max(1, self.kv.rev - back)
        key, end = rng
        wid = self.streams[stream].watch(key, end, start_rev=start, prev_kv=prev)
        first = start if start > 0 else self.kv.rev + 1
        self.watches[(stream, wid)] = (key, end, first)
        self.created_at[(stream, wid)] = self.queued[stream]
        self.received[(stream, wid)] = []

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        live = [w for w in self.watches if w not in self.cancelled and w not in self.compacted]
        if not live:
            return
        stream, wid = data.draw(st.sampled_from(live))
        if wid in self.streams[stream].watchers:
            self.streams[stream].cancel(wid)
        else:
            # cancelled by compaction, the notice still queued: the stream has forgotten it
            with pytest.raises(WatcherNotExist):
                self.streams[stream].cancel(wid)
        self.cancelled.add((stream, wid))

    @rule(stream=st.integers(0, 1), n=st.integers(1, 3))
    def consume(self, stream: int, n: int) -> None:
        self._take(stream, self.streams[stream].drain(n))

    @rule()
    def sync(self) -> None:
        self.ws.sync_victims()
        self.ws.sync_watchers()

    @rule(stream=st.integers(0, 1))
    def progress(self, stream: int) -> None:
        self.streams[stream].request_progress_all()

    def _take(self, stream: int, responses: list[WatchResponse]) -> None:
        for r in responses:
            position = self.taken[stream]
            self.taken[stream] += 1
            if r.watch_id == INVALID_WATCH_ID:
                # bookmark: every watcher of the stream has everything up to r.revision
                for (s, wid), (key, end, first) in self.watches.items():
                    if s != stream or (s, wid) in self.cancelled or (s, wid) in self.compacted:
                        continue
                    if self.created_at[(s, wid)] > position:
                        continue  # created after the bookmark was queued
                    want = self._expected(key, end, first, upto=r.revision)
                    assert self._shape(self.received[(s, wid)]) == want
                continue
            w = (stream, r.watch_id)
            if w in self.cancelled:
                continue  # responses queued before the cancel may still arrive
            if r.compact_revision:
                assert r.canceled and not r.events
                self.compacted[w] = r.compact_revision
                continue
            self.received[w].extend(r.events)

    def _expected(self, key: bytes, end: bytes | None, first: int, upto: int) -> list[tuple[int, int, bytes]]:
        out = []
        for rev in range(first, upto + 1):
            for is_delete, item in self.kv.changes.get(rev, []):
                inside = (
                    item.key == key if end is None else key <= item.key and (end == b"\x00" or item.key < end)
                )
                if inside:
                    out.append((DELETE if is_delete else PUT, rev, item.key))
        return self._lossless(out)

    def _lossless(self, shaped: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
        """Without the deletes a store may lose at a compaction revision (StoreHistory's note)."""
        return [e for e in shaped if not (e[0] == DELETE and e[1] in self.lossy)]

    def _shape(self, events: list[Event]) -> list[tuple[int, int, bytes]]:
        return self._lossless([(ev.type, ev.revision, ev.kv.key) for ev in events])

    @invariant()
    def received_is_a_prefix_of_history(self) -> None:
        for w, events in self.received.items():
            if w in self.cancelled:
                continue
            key, end, first = self.watches[w]
            got = self._shape(events)
            assert got == self._expected(key, end, first, upto=self.kv.rev)[: len(got)]

    def teardown(self) -> None:
        outs = pump(self.ws, *self.streams)
        for i, responses in enumerate(outs):
            self._take(i, responses)
        for w, (key, end, first) in self.watches.items():
            if w in self.cancelled:
                continue
            if w in self.compacted:
                assert first < self.compacted[w]
                continue
            assert self._shape(self.received[w]) == self._expected(key, end, first, upto=self.kv.rev)
        if isinstance(self.kv, StoreHistory):
            self.kv.store.backend.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class MemoryStoreWatchMachine(WatchMachine):
    kind = "memory"


class LmdbStoreWatchMachine(WatchMachine):
    kind = "lmdb"


TestWatchMachine = WatchMachine.TestCase
TestWatchMachine.settings = settings(
    max_examples=120, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestMemoryStoreWatchMachine = MemoryStoreWatchMachine.TestCase
TestMemoryStoreWatchMachine.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestLmdbStoreWatchMachine = LmdbStoreWatchMachine.TestCase
TestLmdbStoreWatchMachine.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# -- the watcher index ---------------------------------------------------------------------------


def test_prefix_end() -> None:
    assert prefix_end(b"abc") == b"abd"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"a\xff\xff") == b"b"
    assert prefix_end(b"\xff") == b""
    assert prefix_end(b"") == b""


RANGE_KEYS = [b"", b"a", b"a\x00", b"ab", b"abc", b"a\xff", b"a\xff\x00", b"b", b"\xff", b"\xff\xff"]


@settings(max_examples=200, deadline=None)
@given(
    ranges=st.lists(
        st.tuples(
            st.sampled_from(RANGE_KEYS),
            st.one_of(st.none(), st.just(b"\x00"), st.sampled_from(RANGE_KEYS), st.just(b"prefix")),
        ),
        max_size=25,
    ),
    removals=st.lists(st.integers(0, 24), max_size=10),
)
def test_watcher_group_matches_brute_force(
    ranges: list[tuple[bytes, bytes | None]], removals: list[int]
) -> None:
    kv = HistoryModel()
    ws = watchable(kv)
    s = ws.new_watch_stream()
    for key, end in ranges:
        if end == b"prefix":
            end = prefix_end(key) or b"\x00"
        if end is not None and end not in (b"", b"\x00") and key >= end:
            continue
        s.watch(key, end)
    group = ws.synced
    for i in removals:
        ids = sorted(s.watchers)
        if ids:
            s.cancel(ids[i % len(ids)])
    for probe in [*RANGE_KEYS, b"a\x01", b"ab\x00", b"zz", b"\xff\x00"]:
        expected = {w for w in group.watchers if w.contains(probe)}
        assert set(group.watchers_for(probe)) == expected, probe
        assert group.contains(probe) == bool(expected)


def test_consumer_on_another_thread(kv: HistoryModel) -> None:
    """The owner writes and syncs while a consumer thread drains: nothing lost, nothing twice."""
    ws = watchable(kv, chan_buf_len=8)
    s = ws.new_watch_stream()
    s.watch(b"t", b"u")
    base = kv.rev
    got: list[WatchResponse] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set() or len(s):
            got.extend(s.drain())

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        for i in range(300):
            kv.put(b"t%d" % (i % 13), b"%d" % i)
            if i % 10 == 0:
                ws.sync_victims()
                ws.sync_watchers()
        while ws.has_victims or ws.has_unsynced:
            ws.sync_victims()
            ws.sync_watchers()
    finally:
        done.set()
        consumer.join(timeout=30)
    assert not consumer.is_alive()
    assert events_of(got) == model_events(kv, base + 1, lambda k: k.startswith(b"t"))


def test_a_deferred_progress_never_overtakes_the_rest_of_its_commit() -> None:
    """Several revisions committed in one write transaction (one apply batch) reach the watchers
    one revision at a time; a stream-wide progress response that goes out between two of them
    (it was deferred because the stream's queue was full) must report the revision handed out so
    far, not the batch's last: every event at or below a progress revision comes before it."""
    store = KVStore(MemoryBackend())
    ws = WatchableStore(store, chan_buf_len=2)
    store.set_event_sink(ws.event_sink)
    s = ws.new_watch_stream()
    s.watch(b"p", b"q")
    s.watch(b"x")
    store.put(PutRequest(b"p0", b"1"))
    store.put(PutRequest(b"p0", b"2"))
    assert s.request_progress_all() is False  # the queue is full: deferred
    responses = s.drain()
    with store.write() as w:
        w.put(PutRequest(b"x", b"1"))  # the progress goes out after this revision ...
        w.put(PutRequest(b"p1", b"1"))  # ... and the queue is full again for this one
        w.put(PutRequest(b"p2", b"1"))
    (rest,) = pump(ws, s)
    responses += rest
    progress = [r.revision for r in responses if r.is_progress_notify]
    assert progress, responses
    for i, r in enumerate(responses):
        if r.is_progress_notify:
            later = [ev.revision for after in responses[i + 1 :] for ev in after.events]
            assert all(rev > r.revision for rev in later), (r, responses)
    assert [ev.kv.key for r in responses for ev in r.events] == [b"p0", b"p0", b"x", b"p1", b"p2"]
