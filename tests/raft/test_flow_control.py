"""The leader's flow control of appends (etcd's raft_flow_control_test.go, etcd-io/raft flavour).

A follower in REPLICATE gets pipelined appends until its inflight window is full (by count, or
by bytes when max_inflight_bytes is set); then it gets only empty appends on heartbeat
responses, until acknowledgements free the window.
"""

from __future__ import annotations

from raft_net import new_test_raft, prop, read_messages

from petcd.raft.raft import Raft
from petcd.raft.tracker import ProgressState
from petcd.raft.types import Entry, Message, MessageType

MT = MessageType


def _leader(**kw: object) -> Raft:
    r = new_test_raft(1, [1, 2], 5, 1, **kw)  # type: ignore[arg-type]
    r.become_candidate()
    r.become_leader()
    r.trk.progress[2].become_replicate()
    read_messages(r)
    return r


def test_msg_app_flow_control_full() -> None:
    r = _leader()
    pr2 = r.trk.progress[2]
    for _ in range(r.trk.max_inflight):
        r.step(prop(1))
        ms = read_messages(r)
        assert [m.type for m in ms] == [MT.MSG_APP]
    assert pr2.is_paused()
    assert pr2.inflights.full()
    # Further proposals send nothing to 2.
    for _ in range(10):
        r.step(prop(1))
        assert read_messages(r) == []


def test_msg_app_flow_control_move_forward() -> None:
    r = _leader()
    pr2 = r.trk.progress[2]
    for _ in range(r.trk.max_inflight):
        r.step(prop(1))
        read_messages(r)
    # 1 is the empty entry, 2..max_inflight+1 the proposals.
    for tt in range(2, r.trk.max_inflight):
        # Acking up to tt frees one slot (tt-1 slots were freed before).
        r.step(Message(MT.MSG_APP_RESP, from_=2, to=1, index=tt))
        read_messages(r)
        r.step(prop(1))
        ms = read_messages(r)
        assert [m.type for m in ms] == [MT.MSG_APP]
        assert pr2.is_paused()
        # Stale acks do not free anything.
        for i in range(tt):
            r.step(Message(MT.MSG_APP_RESP, from_=2, to=1, index=i))
            assert pr2.is_paused()


def test_msg_app_flow_control_recv_heartbeat() -> None:
    r = _leader()
    pr2 = r.trk.progress[2]
    for _ in range(r.trk.max_inflight):
        r.step(prop(1))
        read_messages(r)
    for tt in range(1, 5):
        for _ in range(tt):
            assert pr2.is_paused()
            # A heartbeat response with a full window sends one empty append (in case every
            # inflight append was lost), and the window stays full.
            r.step(Message(MT.MSG_HEARTBEAT_RESP, from_=2, to=1))
            ms = read_messages(r)
            assert [m.type for m in ms] == [MT.MSG_APP]
            assert ms[0].entries == ()
        for _ in range(10):
            assert pr2.is_paused()
            r.step(prop(1))
            assert read_messages(r) == []
        r.step(Message(MT.MSG_HEARTBEAT_RESP, from_=2, to=1))
        read_messages(r)


def test_msg_app_flow_control_by_bytes() -> None:
    # Each proposal carries 100 payload bytes; a 250-byte window holds two appends.
    r = _leader(max_inflight_bytes=250, max_size_per_msg=100)
    pr2 = r.trk.progress[2]
    # Get the leader's empty entry acknowledged first.
    r.send_append(2)
    r.step(Message(MT.MSG_APP_RESP, from_=2, to=1, index=1))
    read_messages(r)
    assert pr2.inflights.count() == 0
    blob = b"x" * 100
    sent: list[Message] = []
    for _ in range(5):
        r.step(prop(1, blob))
        sent.extend(m for m in read_messages(r) if m.type == MT.MSG_APP and m.entries)
    # Two appends fill 200 bytes, the third goes over the soft limit and fills the window.
    assert len(sent) == 3
    assert pr2.inflights.full()
    assert pr2.is_paused()
    # Acknowledging the first frees room for exactly one more.
    r.step(Message(MT.MSG_APP_RESP, from_=2, to=1, index=sent[0].entries[-1].index))
    ms = [m for m in read_messages(r) if m.type == MT.MSG_APP and m.entries]
    assert len(ms) == 1
    assert pr2.is_paused()


def test_max_size_per_msg_splits_appends() -> None:
    r = new_test_raft(1, [1, 2], 5, 1, max_size_per_msg=300)
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    for _ in range(6):
        r.raft_log.append([Entry(term=r.term, index=r.raft_log.last_index() + 1, data=b"y" * 100)])
    pr2 = r.trk.progress[2]
    pr2.become_replicate()
    pr2.next = 1
    while r.maybe_send_append(2, False):
        pass
    ms = read_messages(r)
    # Each message stays within the limit (at least one entry per message).
    assert len(ms) > 1
    for m in ms:
        assert m.entries
        assert sum(e.size() for e in m.entries) <= 300 or len(m.entries) == 1
    indexes = [e.index for m in ms for e in m.entries]
    assert indexes == list(range(1, r.raft_log.last_index() + 1))


def test_probe_sends_one_append_until_answered() -> None:
    r = _leader()
    pr2 = r.trk.progress[2]
    pr2.become_probe()
    r.step(prop(1))
    assert [m.type for m in read_messages(r)] == [MT.MSG_APP]
    for _ in range(5):
        r.step(prop(1))
        assert read_messages(r) == []
    # The answer moves it to REPLICATE and the rest follows at once.
    r.step(Message(MT.MSG_APP_RESP, from_=2, to=1, index=2))
    assert pr2.state == ProgressState.REPLICATE
    ms = read_messages(r)
    assert ms and ms[-1].entries[-1].index == r.raft_log.last_index()
