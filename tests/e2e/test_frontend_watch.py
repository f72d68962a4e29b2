"""Watches served by front-end processes (`etcd --frontend-processes 2`), end to end.

A front-end serves its watch streams from the history in its read-only backend handle
(petcd.runtime.frontend_watch), woken by the core's "revision advanced" notices. Each test picks
channels by the front-end process that serves them (found from /proc: which process holds the new
connection), so "a watch on one front-end sees a write made through the other" is checked, not hoped
for. Checked: order, no duplicates, no gaps, a revision never split, history replay with prev_kv and
filters, client-chosen watch IDs and creation errors, cancel, compaction (a watcher behind it is
cancelled with compact_revision, also the live watchers of a front-end that was stopped while the
history under them was compacted away), progress (after everything before it, at a revision that
never goes back and that the backend shows), fragments, a slow consumer that does not hold up
another stream of its process, and the same responses as a single-process member for the same
requests (etcdctl's "required revision has been compacted" included).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from test_frontends import Member, _alive, _children, member_with_frontends

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc
from petcd.pb.mvccpb import kv_pb2

# One TCP connection per channel (no subchannel sharing), and a fixed flow-control window so that a
# client that stops reading stops the server soon.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0)]
MAX_REQUEST_BYTES = 20000
WAIT_S = 15.0
PUT = kv_pb2.Event.PUT
DELETE = kv_pb2.Event.DELETE


# ------------------------------------------------------------------------------- helpers


def _established(port: int) -> set[int]:
    """Socket inodes of the established TCP connections whose local port is `port`."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "01":
                    inodes.add(int(parts[9]))
    return inodes


def _sockets_of(pid: int, inodes: set[int]) -> set[int]:
    held: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inode = int(target[8:-1])
                    if inode in inodes:
                        held.add(inode)
    return held


class Frontends:
    """A member with front-ends, and channels sorted by the process that serves them."""

    def __init__(self, member: Member) -> None:
        self.member = member
        self.pids = [p for p in _children(member.proc.pid) if _alive(p)]
        self.port = int(member.address.rsplit(":", 1)[1])
        self.channels: dict[int, list[grpc.Channel]] = {p: [] for p in self.pids}

    def _held(self) -> dict[int, set[int]]:
        inodes = _established(self.port)
        return {p: _sockets_of(p, inodes) for p in self.pids}

    def channel(self, pid: int, nth: int = 0) -> grpc.Channel:
        """The nth channel served by front-end `pid` (opened until the kernel hands one to it)."""
        for _ in range(60):
            if len(self.channels[pid]) > nth:
                return self.channels[pid][nth]
            before = self._held()
            ch = grpc.insecure_channel(self.member.address, options=CHANNEL_OPTIONS)
            rpc_pb2_grpc.KVStub(ch).Range(pb.RangeRequest(key=b"probe"), timeout=10)
            after = self._held()
            grown = [p for p in self.pids if after[p] - before[p]]
            if len(grown) == 1:
                self.channels[grown[0]].append(ch)
            else:
                ch.close()
        raise AssertionError(f"no connection landed on front-end {pid}")

    def kv(self, pid: int) -> rpc_pb2_grpc.KVStub:
        return rpc_pb2_grpc.KVStub(self.channel(pid))

    def close(self) -> None:
        for chans in self.channels.values():
            for ch in chans:
                ch.close()


class Stream:
    """A client watch stream; responses are read by a thread (held back while `gate` is clear)."""

    def __init__(self, channel: grpc.Channel, *, gated: bool = False) -> None:
        self._requests: queue.Queue[pb.WatchRequest | None] = queue.Queue()
        self._call = rpc_pb2_grpc.WatchStub(channel).Watch(iter(self._requests.get, None), timeout=120)
        self.responses: queue.Queue[Any] = queue.Queue()
        self._stashed: list[pb.WatchResponse] = []  # read while waiting for a created response
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for r in self._call:
                self.responses.put(r)
                if not r.created:
                    self.gate.wait(WAIT_S * 4)
        except grpc.RpcError as e:
            self.responses.put(e)
        self.responses.put(None)

    def send(self, req: pb.WatchRequest) -> None:
        self._requests.put(req)

    def create(self, **fields: Any) -> pb.WatchResponse:
        self.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(**fields)))
        stashed = []
        while not (r := self.next()).created:
            stashed.append(r)
        self._stashed += stashed
        return r

    def cancel(self, watch_id: int) -> None:
        self.send(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=watch_id)))

    def progress(self) -> None:
        self.send(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))

    def next(self, timeout_s: float = WAIT_S) -> pb.WatchResponse:
        if self._stashed:
            return self._stashed.pop(0)
        r = self.responses.get(timeout=timeout_s)
        if r is None or isinstance(r, Exception):
            raise AssertionError(f"stream ended: {r}")
        return r  # type: ignore[no-any-return]

    def until_events(self, n: int, watch_id: int | None = None) -> list[pb.WatchResponse]:
        """Responses (of `watch_id`, when given) until they hold n events in all."""
        got: list[pb.WatchResponse] = []
        deadline = time.monotonic() + WAIT_S
        while sum(len(r.events) for r in got) < n:
            r = self.next(max(0.1, deadline - time.monotonic()))
            if watch_id is None or r.watch_id == watch_id:
                got.append(r)
        return got

    def close(self) -> None:
        self.gate.set()
        self._requests.put(None)
        self._call.cancel()
        self._thread.join(10)


def _flat(responses: list[pb.WatchResponse]) -> list[tuple[int, bytes, bytes, int]]:
    return [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision) for r in responses for e in r.events]


def _one_revision_each(responses: list[pb.WatchResponse]) -> None:
    for r in responses:
        revs = {e.kv.mod_revision for e in r.events}
        assert len(revs) == 1 and r.header.revision == revs.pop(), r


@contextlib.contextmanager
def _frontends(base: Path, n: int = 2) -> Iterator[Frontends]:
    base.mkdir(parents=True, exist_ok=True)
    with member_with_frontends(base, n, ["--max-request-bytes", str(MAX_REQUEST_BYTES)]) as m:
        fe = Frontends(m)
        try:
            yield fe
        finally:
            fe.close()


@pytest.fixture(scope="module")
def fe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Frontends]:
    with _frontends(tmp_path_factory.mktemp("fe-watch")) as f:
        assert len(f.pids) == 2
        yield f


@contextlib.contextmanager
def _streams(*streams: Stream) -> Iterator[None]:
    try:
        yield
    finally:
        for s in streams:
            s.close()


# ------------------------------------------------------------------------------- tests


def test_a_watch_sees_writes_made_through_the_other_front_end(fe: Frontends) -> None:
    a, b = fe.pids
    on_a, on_b = Stream(fe.channel(a)), Stream(fe.channel(b))
    with _streams(on_a, on_b):
        for s in (on_a, on_b):
            s.create(key=b"x/", range_end=b"x0")
        expected = []
        for i in range(10):
            put = fe.kv((a, b)[i % 2]).Put(pb.PutRequest(key=b"x/%d" % i, value=b"v%d" % i), timeout=10)
            expected.append((PUT, b"x/%d" % i, b"v%d" % i, put.header.revision))
        txn = fe.kv(b).Txn(
            pb.TxnRequest(
                success=[
                    pb.RequestOp(request_put=pb.PutRequest(key=b"x/t%d" % i, value=b"t")) for i in range(3)
                ]
            ),
            timeout=10,
        )
        expected += [(PUT, b"x/t%d" % i, b"t", txn.header.revision) for i in range(3)]
        dr = fe.kv(a).DeleteRange(pb.DeleteRangeRequest(key=b"x/", range_end=b"x0"), timeout=10)
        expected += sorted((DELETE, k, b"", dr.header.revision) for _, k, _, _ in expected)
        for s in (on_a, on_b):
            got = s.until_events(len(expected))
            _one_revision_each(got)  # the txn's and the delete's events arrive whole
            assert _flat(got) == expected


def test_history_replay_with_prev_kv_filters_and_client_ids(fe: Frontends) -> None:
    a, b = fe.pids
    kv = fe.kv(a)
    r1 = kv.Put(pb.PutRequest(key=b"h/a", value=b"1"), timeout=10).header.revision
    kv.Put(pb.PutRequest(key=b"h/a", value=b"2"), timeout=10)
    kv.Put(pb.PutRequest(key=b"h/b", value=b"1"), timeout=10)
    rd = kv.DeleteRange(pb.DeleteRangeRequest(key=b"h/a"), timeout=10).header.revision
    s = Stream(fe.channel(b))
    with _streams(s):
        s.create(key=b"h/", range_end=b"h0", start_revision=r1, prev_kv=True, watch_id=7)
        got = s.until_events(4, 7)
        assert [(e.type, e.kv.key, e.kv.value, e.prev_kv.value) for r in got for e in r.events] == [
            (PUT, b"h/a", b"1", b""),
            (PUT, b"h/a", b"2", b"1"),
            (PUT, b"h/b", b"1", b""),
            (DELETE, b"h/a", b"", b"2"),
        ]
        assert got[-1].events[-1].kv.mod_revision == rd
        s.create(
            key=b"h/", range_end=b"h0", start_revision=r1, watch_id=8, filters=[pb.WatchCreateRequest.NOPUT]
        )
        (deletes,) = s.until_events(1, 8)
        assert [(e.type, e.kv.key) for e in deletes.events] == [(DELETE, b"h/a")]
        s.create(
            key=b"h/",
            range_end=b"h0",
            start_revision=r1,
            watch_id=9,
            filters=[pb.WatchCreateRequest.NODELETE],
        )
        assert [e.type for r in s.until_events(3, 9) for e in r.events] == [PUT, PUT, PUT]
        dup = s.create(key=b"h/x", watch_id=9)
        assert dup.canceled and dup.watch_id == -1
        assert dup.cancel_reason == "mvcc: duplicate watch ID provided on the WatchStream"
        empty = s.create(key=b"h/b", range_end=b"h/a")
        assert empty.canceled and empty.cancel_reason == "mvcc: watcher range is empty"
        # live events keep the filters: a put reaches 7 and 9, not 8
        put = fe.kv(a).Put(pb.PutRequest(key=b"h/c", value=b"3"), timeout=10)
        got = s.until_events(2)
        assert sorted(r.watch_id for r in got) == [7, 9]
        assert all(r.events[0].kv.mod_revision == put.header.revision for r in got)


def test_created_cancel_and_auto_ids(fe: Frontends) -> None:
    a, b = fe.pids
    s = Stream(fe.channel(a))
    with _streams(s):
        now = fe.kv(b).Range(pb.RangeRequest(key=b"c/"), timeout=10).header.revision
        first = s.create(key=b"c/1")
        assert first.watch_id == 0 and first.header.revision == now
        second = s.create(key=b"c/2")
        assert second.watch_id == 1
        s.cancel(first.watch_id)
        canceled = s.next()
        assert canceled.canceled and canceled.watch_id == first.watch_id and not canceled.compact_revision
        s.cancel(42)  # unknown: ignored, as etcd does
        fe.kv(b).Put(pb.PutRequest(key=b"c/1", value=b"gone"), timeout=10)
        put = fe.kv(b).Put(pb.PutRequest(key=b"c/2", value=b"here"), timeout=10)
        r = s.next()
        assert r.watch_id == second.watch_id and r.events[0].kv.mod_revision == put.header.revision


def test_compaction_cancels_a_watcher_behind_it(fe: Frontends) -> None:
    a, b = fe.pids
    kv = fe.kv(a)
    r1 = kv.Put(pb.PutRequest(key=b"k/c", value=b"1"), timeout=10).header.revision
    r2 = kv.Put(pb.PutRequest(key=b"k/c", value=b"2"), timeout=10).header.revision
    r3 = kv.Put(pb.PutRequest(key=b"k/c", value=b"3"), timeout=10).header.revision
    kv.Compact(pb.CompactionRequest(revision=r2, physical=True), timeout=10)
    s = Stream(fe.channel(b))
    with _streams(s):
        created = s.create(key=b"k/c", start_revision=r1)
        r = s.next()
        assert r.watch_id == created.watch_id and r.canceled and r.compact_revision == r2 and not r.events
        at = s.create(key=b"k/c", start_revision=r2)
        got = s.until_events(2, at.watch_id)
        assert [(e.kv.value, e.kv.mod_revision) for r in got for e in r.events] == [(b"2", r2), (b"3", r3)]


def test_a_front_end_that_slept_through_a_compaction_cancels_the_watchers_behind_it(fe: Frontends) -> None:
    a, b = fe.pids
    kv = fe.kv(a)  # opened before b stops: finding a channel's process needs both answering
    s = Stream(fe.channel(b))
    with _streams(s):
        behind = s.create(key=b"z/", range_end=b"z0")
        start = s.create(key=b"z/", range_end=b"z0").header.revision + 20
        ahead = s.create(key=b"z/", range_end=b"z0", start_revision=start)
        os.kill(b, signal.SIGSTOP)  # its tail stays behind while the history is compacted away
        try:
            revs = [
                kv.Put(pb.PutRequest(key=b"z/%d" % i, value=b"v"), timeout=10).header.revision
                for i in range(5)
            ]
            kv.Compact(pb.CompactionRequest(revision=revs[-1], physical=True), timeout=10)
        finally:
            os.kill(b, signal.SIGCONT)
        r = s.next()
        assert (
            r.watch_id == behind.watch_id and r.canceled and r.compact_revision == revs[-1] and not r.events
        )
        while revs[-1] < start:
            revs.append(kv.Put(pb.PutRequest(key=b"z/x", value=b"v"), timeout=10).header.revision)
        got = s.until_events(1, ahead.watch_id)  # a watcher not behind the compaction goes on
        assert got[0].events[0].kv.mod_revision == start


def test_progress_comes_after_what_it_covers_and_never_goes_back(fe: Frontends) -> None:
    a, b = fe.pids
    s = Stream(fe.channel(a))
    with _streams(s):
        s.create(key=b"p")
        seen = 0
        previous = 0
        for i in range(15):
            put = fe.kv(b).Put(pb.PutRequest(key=b"p", value=b"%d" % i), timeout=10)
            s.progress()
            while True:
                r = s.next()
                if r.watch_id == -1:
                    break
                seen = max([seen, *[e.kv.mod_revision for e in r.events]])
            # everything up to the put was delivered before the progress response that covers it
            assert seen == put.header.revision <= r.header.revision
            assert r.header.revision >= previous
            previous = r.header.revision
            shown = fe.kv(a).Range(pb.RangeRequest(key=b"p", serializable=True), timeout=10)
            assert r.header.revision <= shown.header.revision


def test_fragments_of_a_large_revision(fe: Frontends) -> None:
    a, b = fe.pids
    for i in range(5):
        fe.kv(a).Put(pb.PutRequest(key=b"f/%d" % i, value=b"x" * 6000), timeout=10)
    s = Stream(fe.channel(b))
    with _streams(s):
        w = s.create(key=b"f/", range_end=b"f0", prev_kv=True, fragment=True)
        dr = fe.kv(a).DeleteRange(pb.DeleteRangeRequest(key=b"f/", range_end=b"f0"), timeout=10)
        parts = s.until_events(5, w.watch_id)
        assert len(parts) > 1 and [p.fragment for p in parts] == [True] * (len(parts) - 1) + [False]
        assert all(p.ByteSize() < MAX_REQUEST_BYTES + 1000 for p in parts)
        events = [e for p in parts for e in p.events]
        assert [(e.kv.key, e.prev_kv.value) for e in events] == [(b"f/%d" % i, b"x" * 6000) for i in range(5)]
        assert {e.kv.mod_revision for e in events} == {dr.header.revision}


def test_a_slow_consumer_does_not_hold_up_another_stream(fe: Frontends) -> None:
    a, b = fe.pids
    slow = Stream(fe.channel(a, 0), gated=True)
    fast = Stream(fe.channel(a, 1))
    n = 300
    with _streams(slow, fast):
        for s in (slow, fast):
            s.create(key=b"s/", range_end=b"s0")
        value = b"y" * 15000  # 4.5 MB in all: far more than the stalled connection's window
        revs = [
            fe.kv(b).Put(pb.PutRequest(key=b"s/%03d" % i, value=value), timeout=10).header.revision
            for i in range(n)
        ]
        got = fast.until_events(n)
        assert [e.kv.mod_revision for r in got for e in r.events] == revs
        slow.gate.set()
        got = slow.until_events(n)
        assert [e.kv.mod_revision for r in got for e in r.events] == revs  # no gap, no duplicate


def test_concurrent_writers_through_both_front_ends(fe: Frontends) -> None:
    a, b = fe.pids
    start = fe.kv(a).Put(pb.PutRequest(key=b"cw/start", value=b""), timeout=10).header.revision
    live = [Stream(fe.channel(p)) for p in (a, b)]
    with _streams(*live):
        for s in live:
            s.create(key=b"cw/", range_end=b"cw0", start_revision=start)
        written: list[tuple[int, bytes]] = [(start, b"cw/start")]
        lock = threading.Lock()

        def writer(pid: int, tag: bytes) -> None:
            kv = fe.kv(pid)
            for i in range(40):
                key = b"cw/%s%02d" % (tag, i)
                if i % 10 == 9:
                    ops = [
                        pb.RequestOp(request_put=pb.PutRequest(key=key + b"-%d" % j, value=b"t"))
                        for j in range(3)
                    ]
                    rev = kv.Txn(pb.TxnRequest(success=ops), timeout=10).header.revision
                    with lock:
                        written.extend((rev, key + b"-%d" % j) for j in range(3))
                else:
                    rev = kv.Put(pb.PutRequest(key=key, value=b"v"), timeout=10).header.revision
                    with lock:
                        written.append((rev, key))

        threads = [threading.Thread(target=writer, args=(p, t)) for p, t in ((a, b"a"), (b, b"b"))]
        for t in threads:
            t.start()
        middle = Stream(fe.channel(b))
        with _streams(middle):
            time.sleep(0.05)
            mid_rev = fe.kv(a).Range(pb.RangeRequest(key=b"cw/"), timeout=10).header.revision
            middle.create(key=b"cw/", range_end=b"cw0", start_revision=mid_rev)
            for t in threads:
                t.join(30)
            expected = sorted(written)
            for s in live:
                got = s.until_events(len(expected))
                assert [(e.kv.mod_revision, e.kv.key) for r in got for e in r.events] == expected
            tail = [w for w in expected if w[0] >= mid_rev]
            got = middle.until_events(len(tail))
            assert [(e.kv.mod_revision, e.kv.key) for r in got for e in r.events] == tail


# ------------------------------------------------------------------------------- differential


def _normalized(r: pb.WatchResponse) -> tuple[Any, ...]:
    return (
        r.watch_id,
        r.created,
        r.canceled,
        r.cancel_reason,
        r.compact_revision,
        r.fragment,
        r.header.revision,
        tuple(e.SerializeToString() for e in r.events),
    )


def _script(member: Member, channel: grpc.Channel) -> dict[str, Any]:
    """The same requests for any member; every response each stream got, and etcdctl's output."""
    kv = rpc_pb2_grpc.KVStub(channel)
    live = Stream(channel)
    out: dict[str, Any] = {}
    with _streams(live):
        live.create(key=b"d/", range_end=b"d0")
        live.create(key=b"d/a", prev_kv=True)
        live.create(key=b"d/", range_end=b"d0", filters=[pb.WatchCreateRequest.NOPUT])
        live.create(key=b"d/", range_end=b"d0", watch_id=7, filters=[pb.WatchCreateRequest.NODELETE])
        live.create(key=b"d/", range_end=b"d0", prev_kv=True, fragment=True)
        first = kv.Put(pb.PutRequest(key=b"d/a", value=b"1"), timeout=10).header.revision
        kv.Put(pb.PutRequest(key=b"d/b", value=b"2" * 7000), timeout=10)
        kv.Txn(
            pb.TxnRequest(
                success=[
                    pb.RequestOp(request_put=pb.PutRequest(key=b"d/c", value=b"3" * 7000)),
                    pb.RequestOp(request_put=pb.PutRequest(key=b"d/d", value=b"4" * 7000)),
                ]
            ),
            timeout=10,
        )
        cut = kv.DeleteRange(pb.DeleteRangeRequest(key=b"d/a"), timeout=10).header.revision
        kv.DeleteRange(pb.DeleteRangeRequest(key=b"d/", range_end=b"d0"), timeout=10)
        kv.Put(pb.PutRequest(key=b"d/a", value=b"5"), timeout=10)
        live.progress()
        responses: list[pb.WatchResponse] = []
        while not responses or responses[-1].watch_id != -1:
            responses.append(live.next())
        live.cancel(1)
        responses.append(live.next())
        out["live"] = [_normalized(r) for r in responses]
        replay = Stream(channel)
        with _streams(replay):
            replay.create(key=b"d/", range_end=b"d0", start_revision=first)
            replay.create(key=b"d/a", start_revision=first, prev_kv=True)
            replay.create(
                key=b"d/", range_end=b"d0", start_revision=first, filters=[pb.WatchCreateRequest.NOPUT]
            )
            out["replay"] = [_normalized(r) for r in replay.until_events(9 + 3 + 4)]
            kv.Compact(pb.CompactionRequest(revision=cut, physical=True), timeout=10)
            behind = replay.create(key=b"d/", range_end=b"d0", start_revision=first)
            out["compacted"] = _normalized(replay.next())
            assert out["compacted"][0] == behind.watch_id
    watch = subprocess.run(
        ["/usr/bin/etcdctl", "--endpoints", member.address, "watch", "--rev", str(first), "d/a"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    out["etcdctl"] = (watch.returncode, watch.stdout, watch.stderr)
    return out


@pytest.mark.skipif(not os.path.exists("/usr/bin/etcdctl"), reason="needs Debian's etcd-client")
def test_same_responses_as_a_single_process(tmp_path: Path) -> None:
    results = []
    for n in (0, 2):
        with _frontends(tmp_path / f"fe{n}", n) as f:
            channel = f.channel(f.pids[0]) if f.pids else grpc.insecure_channel(f.member.address)
            try:
                results.append(_script(f.member, channel))
            finally:
                if not f.pids:
                    channel.close()
    single, split = results
    assert split == single
    assert single["compacted"][2] and single["compacted"][4]  # canceled, with compact_revision
    assert b"required revision has been compacted" in single["etcdctl"][2]
