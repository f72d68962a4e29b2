"""A front-end's watches (petcd.runtime.frontend_watch) and what they rest on, in one process.

The store's revision listener (once per commit that advanced the revision), `tail_events` (history
below a scheduled compaction stays readable until the physical removal reaches it), the hub's tail
(events in order, each revision whole; a tail overtaken by the physical compaction cancels the
watchers behind it with compact_revision), progress after advancing to the backend's revision, the
ticker that advances without notices, victims that catch up from history without gaps, and the
channel's coalesced "rev" notices (never more than the core's applied batches). Real front-end
processes are in tests/e2e/test_frontend_watch.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from single_member import SingleMember
from test_frontend import ReadOnlyView, frontend

from petcd.backend.memory import MemoryBackend
from petcd.errors import Compacted
from petcd.mvcc.kvstore import KVStore
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.runtime.frontend_watch import FrontendWatchHub, FrontendWatchStream

WAIT_S = 5.0


def _put(kv: KVStore, key: bytes, value: bytes = b"v") -> int:
    return kv.put(pb.PutRequest(key=key, value=value)).revision


def test_revision_listener_is_called_once_per_commit_that_advanced() -> None:
    backend = MemoryBackend()
    kv = KVStore(backend)
    calls: list[int] = []
    kv.add_revision_listener(calls.append)
    with kv.write() as w:
        kv.put(pb.PutRequest(key=b"a", value=b"1"), w=w)
        kv.put(pb.PutRequest(key=b"b", value=b"1"), w=w)
    assert calls == [3]  # two revisions, one commit: one call
    kv.delete_range(pb.DeleteRangeRequest(key=b"nothing"))
    kv.range(pb.RangeRequest(key=b"a"))
    assert calls == [3]
    _put(kv, b"a")
    assert calls == [3, 4]
    other = KVStore(backend)  # e.g. the same store after a snapshot install: reload finds a new revision
    seen: list[int] = []
    other.add_revision_listener(seen.append)
    _put(kv, b"c")
    other.reload()
    other.reload()
    assert seen == [5]
    kv.remove_revision_listener(calls.append)
    _put(kv, b"d")
    assert calls == [3, 4, 5]


def test_tail_events_read_below_a_compaction_until_its_removal() -> None:
    kv = KVStore(MemoryBackend())
    revs = [_put(kv, b"k", b"%d" % i) for i in range(5)]  # 2..6
    kv.compact(revs[3])  # scheduled, nothing removed yet
    with pytest.raises(Compacted):
        kv.events(revs[1])
    assert [r for r, _ in kv.tail_events(revs[1], revs[-1] + 1)] == revs[1:]
    kv.compact_batch(limit=2)  # the removal has examined revisions 2 and 3
    with pytest.raises(Compacted):
        kv.tail_events(revs[1], revs[-1] + 1)
    assert [r for r, _ in kv.tail_events(revs[2], revs[-1] + 1)] == revs[2:]
    kv.finish_compaction()
    with pytest.raises(Compacted):
        kv.tail_events(revs[2], revs[-1] + 1)
    assert [r for r, _ in kv.tail_events(revs[3], revs[-1] + 1)] == revs[3:]


class Harness:
    """A writer KVStore and a front-end hub reading the same backend read-only."""

    def __init__(self, progress_notify_interval_s: float = 600.0) -> None:
        backend = MemoryBackend()
        self.writer = KVStore(backend)
        self.hub = FrontendWatchHub(
            KVStore(ReadOnlyView(backend)),
            sync_interval_s=0.01,
            progress_notify_interval_s=progress_notify_interval_s,
        )

    def stream(self) -> FrontendWatchStream:
        return FrontendWatchStream(self.hub, lambda rev: pb.ResponseHeader(revision=rev))

    def notify(self) -> None:
        self.hub.on_revision(self.writer.current_rev)


async def _take(it: AsyncIterator[pb.WatchResponse], n: int) -> list[pb.WatchResponse]:
    return [await asyncio.wait_for(anext(it), WAIT_S) for _ in range(n)]


async def _events(it: AsyncIterator[pb.WatchResponse], n: int) -> list[int]:
    revs: list[int] = []
    while len(revs) < n:
        r = await asyncio.wait_for(anext(it), WAIT_S)
        assert all(e.kv.mod_revision <= r.header.revision for e in r.events)
        revs += [e.kv.mod_revision for e in r.events]
    return revs


def _run(go: Callable[[Harness], Awaitable[None]], progress_notify_interval_s: float = 600.0) -> None:
    async def main() -> None:
        h = Harness(progress_notify_interval_s)
        try:
            await go(h)
        finally:
            await h.hub.stop()

    asyncio.run(main())


def test_the_tail_hands_each_revision_whole_and_in_order() -> None:
    async def go(h: Harness) -> None:
        s = h.stream()
        it = aiter(s.responses())
        wid = await s.create(pb.WatchCreateRequest(key=b"a", range_end=b"b", prev_kv=True))
        first = _put(h.writer, b"a1", b"x")
        with h.writer.write() as w:
            h.writer.put(pb.PutRequest(key=b"a1", value=b"y"), w=w)
            h.writer.delete_range(pb.DeleteRangeRequest(key=b"a1"), w=w)  # a revision of its own
        h.notify()
        got = await _take(it, 3)
        assert [r.header.revision for r in got] == [first, first + 1, first + 2]
        assert all(r.watch_id == wid and len(r.events) == 1 for r in got)
        assert [(e.kv.value, e.prev_kv.value) for r in got for e in r.events] == [
            (b"x", b""),
            (b"y", b"x"),
            (b"", b"y"),
        ]
        await s.close()

    _run(go)


def test_a_tail_overtaken_by_the_removal_cancels_the_watchers_behind_it() -> None:
    async def go(h: Harness) -> None:
        s = h.stream()
        it = aiter(s.responses())
        behind = await s.create(pb.WatchCreateRequest(key=b"k"))
        future = await s.create(pb.WatchCreateRequest(key=b"k", start_revision=100))
        revs = [_put(h.writer, b"k") for _ in range(4)]
        h.writer.compact(revs[2])  # scheduled only: the tail still reads what it needs
        h.notify()
        assert [r.header.revision for r in await _take(it, 4)] == revs
        more = [_put(h.writer, b"k") for _ in range(3)]
        h.writer.compact(more[1], physical=True)  # removed before this front-end woke up
        h.notify()
        (r,) = await _take(it, 1)
        assert r.watch_id == behind and r.canceled and r.compact_revision == more[1]
        while h.writer.current_rev < 100:
            _put(h.writer, b"other")
        last = _put(h.writer, b"k")
        h.notify()
        (r,) = await _take(it, 1)  # the watcher of a future revision was not cancelled
        assert r.watch_id == future and r.events[0].kv.mod_revision == last
        await s.close()

    _run(go)


def test_progress_first_advances_to_the_backend() -> None:
    async def go(h: Harness) -> None:
        s = h.stream()
        it = aiter(s.responses())
        await s.create(pb.WatchCreateRequest(key=b"p"))
        rev = _put(h.writer, b"p")  # no notice: request_progress reads the backend itself
        await s.request_progress()
        event, progress = await _take(it, 2)
        assert event.events[0].kv.mod_revision == rev
        assert progress.watch_id == -1 and progress.header.revision == rev == h.writer.current_rev
        await s.close()

    _run(go)


def test_periodic_progress_for_progress_notify_watchers_only() -> None:
    async def go(h: Harness) -> None:
        s = h.stream()
        it = aiter(s.responses())
        quiet = await s.create(pb.WatchCreateRequest(key=b"q"))
        asked = await s.create(pb.WatchCreateRequest(key=b"q", progress_notify=True))
        rev = _put(h.writer, b"other")  # no notice: the tick advances before notifying
        first, second = await _take(it, 2)
        assert [r.watch_id for r in (first, second)] == [asked, asked]  # none for `quiet`
        assert quiet != asked
        assert not first.events and first.header.revision == rev <= second.header.revision

    _run(go, progress_notify_interval_s=0.05)


def test_the_ticker_advances_without_notices() -> None:
    async def go(h: Harness) -> None:
        s = h.stream()
        it = aiter(s.responses())
        await s.create(pb.WatchCreateRequest(key=b"t"))
        rev = _put(h.writer, b"t")
        (r,) = await _take(it, 1)
        assert r.header.revision == rev
        await s.close()

    _run(go)


def test_a_slow_stream_parks_and_catches_up_without_gaps() -> None:
    async def go(h: Harness) -> None:
        slow, fast = h.stream(), h.stream()
        slow_it, fast_it = aiter(slow.responses()), aiter(fast.responses())
        for s in (slow, fast):
            await s.create(pb.WatchCreateRequest(key=b"s"))
        revs = []
        for _ in range(300):  # more than a stream's queue holds (CHAN_BUF_LEN)
            revs.append(_put(h.writer, b"s"))
            h.notify()
            await asyncio.sleep(0)
        assert len(h.hub.store.victims) == 2  # both queues are full: both watchers are parked
        assert await _events(fast_it, 300) == revs  # a catch-up response may hold many revisions
        assert h.hub.store.has_victims  # the slow stream's watcher is still parked
        assert await _events(slow_it, 300) == revs
        for s in (slow, fast):
            await s.close()

    _run(go)


def test_rev_notices_are_coalesced_per_applied_batch(member: SingleMember) -> None:
    batches: list[int] = []
    member.node.kv.add_revision_listener(batches.append)  # on the node thread, as the channel's

    async def go() -> None:
        async with frontend(member) as (fe, _):
            notices: list[int] = []
            on_revision = fe.client.on_revision
            assert on_revision is not None

            def counting(rev: int) -> None:
                notices.append(rev)
                on_revision(rev)

            fe.client.on_revision = counting
            puts = await asyncio.gather(
                *(fe.put(pb.PutRequest(key=b"n%03d" % i, value=b"v")) for i in range(200))
            )
            last = max(p.header.revision for p in puts)
            deadline = asyncio.get_running_loop().time() + WAIT_S
            while (not notices or notices[-1] < last) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            assert notices and notices[-1] == last
            assert notices == sorted(notices)
            first = min(p.header.revision for p in puts)
            # never more notices than applied batches (a notice covers one or more of them)
            assert len([n for n in notices if n >= first]) <= len([b for b in batches if b >= first])
            assert fe.watch_hub.history.tail <= fe.kv.current_rev

    asyncio.run(go())


def test_notices_read_nothing_while_no_stream_is_open(monkeypatch: pytest.MonkeyPatch) -> None:
    # A front-end serving only puts and reads gets a "rev" notice per applied batch: with no watch
    # stream open it must not read the backend for them; a stream opened later still starts at
    # the backend's revision.
    async def go(h: Harness) -> None:
        advances: list[int] = []
        real_advance = h.hub.advance

        def counting_advance() -> None:
            advances.append(1)
            real_advance()

        monkeypatch.setattr(h.hub, "advance", counting_advance)
        for i in range(5):
            _put(h.writer, b"k%d" % i)
            h.notify()
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        assert advances == []
        s = h.stream()
        it = aiter(s.responses())
        await s.create(pb.WatchCreateRequest(key=b"k", range_end=b"l"))
        assert h.hub.history.tail == h.writer.current_rev  # (the created response's revision)
        rev = _put(h.writer, b"k9")
        h.notify()
        assert await _events(it, 1) == [rev]
        await s.close()

    _run(go)
