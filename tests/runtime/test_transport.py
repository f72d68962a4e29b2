"""The peer transport: two (or three) transports on 127.0.0.1 exchanging raft messages."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petcd.raft.types import Entry, Message, MessageType, Snapshot, SnapshotMetadata
from petcd.runtime import transport as tr
from petcd.runtime.transport import Transport, TransportCallbacks, fetch_members

CLUSTER = 0xC1


class Recorder:
    def __init__(self, batched: bool = False) -> None:
        self.batched = batched
        self.bursts: list[int] = []  # sizes of the bursts handed over by on_messages
        self.messages: list[Message] = []
        self.snapshots: list[tuple[Message, list[bytes]]] = []
        self.unreachable: list[int] = []
        self.snap_status: list[tuple[int, bool]] = []
        self.rtts: list[tuple[int, float]] = []
        self.cond = threading.Condition()

    def _add(self, fn: Callable[[], None]) -> None:
        with self.cond:
            fn()
            self.cond.notify_all()

    def callbacks(self, removed: frozenset[int] = frozenset()) -> TransportCallbacks:
        return TransportCallbacks(
            on_message=lambda m: self._add(lambda: self.messages.append(m)),
            on_snapshot=lambda m, c: self._add(lambda: self.snapshots.append((m, list(c)))),
            on_unreachable=lambda i: self._add(lambda: self.unreachable.append(i)),
            on_snapshot_status=lambda i, ok: self._add(lambda: self.snap_status.append((i, ok))),
            is_removed=lambda i: i in removed,
            members_info=lambda: {"cluster_id": CLUSTER, "members": [{"id": 1}]},
            on_round_trip=lambda i, s: self._add(lambda: self.rtts.append((i, s))),
            on_messages=self._burst if self.batched else None,
        )

    def _burst(self, ms: Sequence[Message]) -> None:
        def add() -> None:
            self.bursts.append(len(ms))
            self.messages.extend(ms)

        self._add(add)

    def wait(self, pred: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout)


def make(member: int, rec: Recorder, cluster: int = CLUSTER, **kw: frozenset[int]) -> Transport:
    t = Transport(member, cluster, ["http://127.0.0.1:0"], rec.callbacks(**kw))
    ((host, port),) = t.listen()
    t.listen_urls = [f"http://{host}:{port}"]
    t.start()
    return t


@pytest.fixture
def started() -> Iterator[list[Transport]]:
    ts: list[Transport] = []
    yield ts
    for t in ts:
        t.stop()


def msg(to: int, frm: int, index: int, data: bytes = b"x", log_term: int = 0, commit: int = 0) -> Message:  # noqa: PLR0917
    """An append of one entry; with log_term 3 it continues the one at index - 1 (as a leader's
    pipeline sends them), with the default 0 it does not (and is never merged with it)."""
    return Message(
        MessageType.MSG_APP,
        to=to,
        from_=frm,
        term=3,
        index=index,
        log_term=log_term,
        entries=(Entry(term=3, index=index + 1, data=data),),
        commit=commit,
    )


def test_messages_flow_both_ways_in_order(started: list[Transport]) -> None:
    r1, r2 = Recorder(), Recorder()
    t1, t2 = make(1, r1), make(2, r2)
    started += [t1, t2]
    t1.set_peers({2: t2.listen_urls})
    t2.set_peers({1: t1.listen_urls})
    t1.send([msg(2, 1, i) for i in range(500)])
    t2.send([msg(1, 2, 7)])
    assert r2.wait(lambda: len(r2.messages) == 500)
    assert [m.index for m in r2.messages] == list(range(500))
    assert r2.messages[0] == msg(2, 1, 0)
    assert r1.wait(lambda: len(r1.messages) == 1)


def test_cluster_id_mismatch_is_refused(started: list[Transport]) -> None:
    r1, r2 = Recorder(), Recorder()
    t1, t2 = make(1, r1), make(2, r2, cluster=0xBAD)
    started += [t1, t2]
    t1.set_peers({2: t2.listen_urls})
    t1.send([msg(2, 1, 1)])
    assert r1.wait(lambda: 2 in t1.rejections)
    assert "cluster ID mismatch" in t1.rejections[2]
    time.sleep(0.2)
    assert r2.messages == []


def test_removed_member_is_refused(started: list[Transport]) -> None:
    r1, r2 = Recorder(), Recorder()
    t1, t2 = make(1, r1), make(2, r2, removed=frozenset({1}))
    started += [t1, t2]
    t1.set_peers({2: t2.listen_urls})
    t1.send([msg(2, 1, 1)])
    assert r1.wait(lambda: 2 in t1.rejections)
    assert "removed" in t1.rejections[2]


def test_unreachable_peer_drops_and_reports_without_blocking(started: list[Transport]) -> None:
    r1 = Recorder()
    t1 = make(1, r1)
    started.append(t1)
    t1.set_peers({9: ["http://127.0.0.1:1"]})  # nothing listens on port 1
    t1.send([msg(9, 1, i) for i in range(tr.QUEUE_MESSAGES_MAX + 100)])
    assert r1.wait(lambda: 9 in r1.unreachable)


def test_send_to_a_stuck_peer_never_blocks_the_caller(
    started: list[Transport], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that accepts and never answers holds its sender in the handshake for a minute: a send
    that waited for room in the full queue would wait that long; ours drops and reports at once."""
    monkeypatch.setattr(tr, "DIAL_TIMEOUT_S", 60.0)
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        r1 = Recorder()
        t1 = make(1, r1)
        started.append(t1)
        t1.set_peers({9: [f"http://127.0.0.1:{silent.getsockname()[1]}"]})
        caller = threading.Thread(
            target=t1.send, args=([msg(9, 1, i) for i in range(tr.QUEUE_MESSAGES_MAX + 100)],)
        )
        caller.start()
        caller.join(timeout=30)
        assert not caller.is_alive()
        assert r1.wait(lambda: 9 in r1.unreachable)
    finally:
        silent.close()


def test_reconnects_after_peer_restarts(started: list[Transport]) -> None:
    r1, r2 = Recorder(), Recorder()
    t1, t2 = make(1, r1), make(2, r2)
    started.append(t1)
    t1.set_peers({2: t2.listen_urls})
    t1.send([msg(2, 1, 1)])
    assert r2.wait(lambda: len(r2.messages) == 1)
    url = t2.listen_urls[0]
    t2.stop()
    assert r1.wait(lambda: 2 in r1.unreachable)
    r3 = Recorder()
    t3 = Transport(2, CLUSTER, [url], r3.callbacks())
    t3.listen()
    t3.start()
    started.append(t3)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not r3.messages:
        t1.send([msg(2, 1, 2)])
        r3.wait(lambda: bool(r3.messages), 0.2)
    assert r3.messages and r3.messages[0].index == 2


def test_snapshot_transfer_in_chunks(started: list[Transport]) -> None:
    r1, r2 = Recorder(), Recorder()
    t1, t2 = make(1, r1), make(2, r2)
    started += [t1, t2]
    t1.set_peers({2: t2.listen_urls})
    snap = Snapshot(data=b"members", metadata=SnapshotMetadata(index=10, term=2))
    m = Message(MessageType.MSG_SNAP, to=2, from_=1, term=2, snapshot=snap)
    db = [b"a" * (tr.SNAPSHOT_CHUNK_BYTES + 10), b"tail"]
    t1.send_snapshot(m, iter(db))
    assert r2.wait(lambda: bool(r2.snapshots))
    got_msg, chunks = r2.snapshots[0]
    assert got_msg == m
    assert b"".join(chunks) == b"".join(db)
    assert len(chunks) == 2  # read back in chunks of SNAPSHOT_CHUNK_BYTES
    assert r1.wait(lambda: r1.snap_status == [(2, True)])


def test_snapshot_to_unreachable_peer_reports_failure(started: list[Transport]) -> None:
    r1 = Recorder()
    t1 = make(1, r1)
    started.append(t1)
    t1.set_peers({9: ["http://127.0.0.1:1"]})
    t1.send_snapshot(Message(MessageType.MSG_SNAP, to=9, from_=1, snapshot=Snapshot()), iter([b"x"]))
    assert r1.wait(lambda: r1.snap_status == [(9, False)])


def test_fetch_members(started: list[Transport]) -> None:
    r1 = Recorder()
    t1 = make(1, r1)
    started.append(t1)
    info = fetch_members(["http://127.0.0.1:1", *t1.listen_urls], timeout_s=3)
    assert info == {"cluster_id": CLUSTER, "members": [{"id": 1}]}


def test_removing_a_peer_never_blocks(started: list[Transport], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tr, "DIAL_TIMEOUT_S", 60.0)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers the handshake
    try:
        r1 = Recorder()
        t1 = make(1, r1)
        started.append(t1)
        t1.set_peers({9: [f"http://127.0.0.1:{silent.getsockname()[1]}"]})
        t1.send([msg(9, 1, 0)])
        time.sleep(0.1)  # let the sender start its (minute-long) handshake
        waits: list[bool] = []
        real_stop = tr._Peer.stop

        def recording_stop(self: tr._Peer, wait: bool = True) -> None:
            waits.append(wait)
            real_stop(self, wait)

        monkeypatch.setattr(tr._Peer, "stop", recording_stop)
        caller = threading.Thread(target=t1.set_peers, args=({},))
        caller.start()
        caller.join(timeout=30)
        assert not caller.is_alive()
        assert waits == [False]  # the sender is told to stop, never joined: it is stuck in a dial
        t1.send([msg(9, 1, 1)])  # to a removed peer: dropped quietly
    finally:
        silent.close()


def test_round_trips_are_probed(started: list[Transport]) -> None:
    r1, r2 = Recorder(), Recorder()
    t1, t2 = make(1, r1), make(2, r2)
    started += [t1, t2]
    t1.set_peers({2: t2.listen_urls})
    assert r1.wait(lambda: bool(r1.rtts))
    peer, rtt = r1.rtts[0]
    assert peer == 2 and 0 < rtt < 1.0
    t1.send([msg(2, 1, 5)])  # probes and messages share the stream
    assert r2.wait(lambda: [m.index for m in r2.messages] == [5])


def test_a_backlog_goes_out_coalesced_and_comes_in_as_bursts(
    started: list[Transport], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends queued while the sender is still connecting merge into few messages; the receiver
    gets the same entries in order, handed over a burst at a time."""
    r1, r2 = Recorder(), Recorder(batched=True)
    t1, t2 = make(1, r1), make(2, r2)
    started += [t1, t2]
    go = threading.Event()
    real_dial = tr.dial

    def held_dial(*args: object, **kw: object) -> socket.socket:
        go.wait(10)
        return real_dial(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(tr, "dial", held_dial)
    t1.set_peers({2: t2.listen_urls})
    ack = Message(MessageType.MSG_APP_RESP, to=2, from_=1, term=3, index=7)
    t1.send([*(msg(2, 1, i, b"v%d" % i, log_term=3, commit=i // 2) for i in range(1000)), ack, ack])
    go.set()
    assert r2.wait(lambda: sum(len(m.entries) for m in r2.messages) == 1000)
    assert r2.wait(lambda: r2.messages[-1].type == MessageType.MSG_APP_RESP)
    *apps, last = r2.messages
    assert [e.index for m in apps for e in m.entries] == list(range(1, 1001))
    assert len(apps) == 1  # one append (1000 entries of a few bytes) and one acknowledgement
    assert (apps[0].index, apps[0].log_term, apps[0].commit) == (0, 3, 499)
    assert last == ack
    assert sum(r2.bursts) == len(r2.messages) == 2


def test_bursts_are_handed_over_in_one_call_each(started: list[Transport]) -> None:
    r1, r2 = Recorder(), Recorder(batched=True)
    t1, t2 = make(1, r1), make(2, r2)
    started += [t1, t2]
    t1.set_peers({2: t2.listen_urls})
    t1.send([msg(2, 1, i) for i in range(300)])  # not continuing (log_term 0): kept apart
    assert r2.wait(lambda: len(r2.messages) == 300)
    assert [m.index for m in r2.messages] == list(range(300))
    assert len(r2.bursts) < 300


@given(st.lists(st.binary(max_size=300), max_size=20), st.lists(st.integers(1, 64), min_size=1))
def test_frame_reader_reassembles_any_split(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(tr.frame(tr.MSG, p) for p in payloads)
    reader = tr.FrameReader()
    got: list[tuple[int, bytes]] = []
    pos, i = 0, 0
    while pos < len(stream):
        n = cuts[i % len(cuts)]
        reader.feed(stream[pos : pos + n])
        got += reader.frames()
        pos, i = pos + n, i + 1
    assert got == [(tr.MSG, p) for p in payloads]
    assert reader.frames() == []


def test_frame_reader_refuses_oversized_and_empty_frames() -> None:
    for length in (0, tr.FRAME_BYTES_MAX + 2):
        reader = tr.FrameReader()
        reader.feed(tr._HEADER.pack(length, tr.MSG))
        with pytest.raises(tr.FrameError):
            reader.frames()
