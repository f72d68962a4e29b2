"""Behaviour of the raft state machine, ported from etcd's raft_test.go (and etcd-io/raft)."""

# Table-driven tests take their cases as positional parameters.
# ruff: noqa: PLR0917

from __future__ import annotations

import math

import pytest
from raft_net import (
    NOP_STEPPER,
    Network,
    ents_with_config,
    hup,
    must_append_entry,
    new_test_raft,
    next_ents,
    pre_vote_config,
    prop,
    read_messages,
    set_randomized_election_timeout,
    storage_with_peers,
    voted_with_config,
)

from petcd.raft.config import NO_LIMIT
from petcd.raft.errors import ProposalDropped, RaftPanic, SnapshotTemporarilyUnavailable
from petcd.raft.log import RaftLog
from petcd.raft.raft import Raft
from petcd.raft.storage import MemoryStorage
from petcd.raft.tracker import ProgressState
from petcd.raft.types import (
    NONE,
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadOnlyOption,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    StateType,
    vote_resp_type,
)

MT = MessageType

FOLLOWER, CANDIDATE, LEADER, PRE_CANDIDATE = (
    StateType.FOLLOWER,
    StateType.CANDIDATE,
    StateType.LEADER,
    StateType.PRE_CANDIDATE,
)


def add_node(nid: int) -> ConfChange:
    return ConfChange(changes=(ConfChangeSingle(ConfChangeType.ADD_NODE, nid),))


def remove_node(nid: int) -> ConfChange:
    return ConfChange(changes=(ConfChangeSingle(ConfChangeType.REMOVE_NODE, nid),))


def add_learner(nid: int) -> ConfChange:
    return ConfChange(changes=(ConfChangeSingle(ConfChangeType.ADD_LEARNER_NODE, nid),))


def log_of(r: Raft) -> list[tuple[int, int, bytes]]:
    """(index, term, data) of every entry in r's log."""
    return [(e.index, e.term, e.data) for e in r.raft_log.all_entries()]


# ---------------------------------------------------------------------- progress and flow control


def test_progress_leader() -> None:
    r = new_test_raft(1, [1, 2], 5, 1)
    r.become_candidate()
    r.become_leader()
    r.trk.progress[2].become_replicate()
    for i in range(5):
        pr = r.trk.progress[r.id]
        assert pr.state == ProgressState.REPLICATE
        assert pr.match == i + 1
        assert pr.next == pr.match + 1
        r.step(prop(1, b"foo"))


def test_progress_resume_by_heartbeat_resp() -> None:
    r = new_test_raft(1, [1, 2], 5, 1)
    r.become_candidate()
    r.become_leader()

    def paused() -> bool:
        return r.trk.progress[2].msg_app_flow_paused

    r.trk.progress[2].msg_app_flow_paused = True
    r.step(Message(MT.MSG_BEAT, from_=1, to=1))
    assert paused()
    r.trk.progress[2].become_replicate()
    assert not paused()
    r.trk.progress[2].msg_app_flow_paused = True
    r.step(Message(MT.MSG_HEARTBEAT_RESP, from_=2, to=1))
    assert not paused()


def test_progress_paused() -> None:
    r = new_test_raft(1, [1, 2], 5, 1)
    r.become_candidate()
    r.become_leader()
    for _ in range(3):
        r.step(prop(1))
    ms = read_messages(r)
    assert len(ms) == 1


def test_progress_flow_control() -> None:
    r = new_test_raft(1, [1, 2], 5, 1, max_inflight_msgs=3, max_size_per_msg=2048)
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    r.trk.progress[2].become_probe()
    blob = b"a" * 1000
    for _ in range(10):
        r.step(prop(1, blob))
    ms = read_messages(r)
    # Probing: one append, with the empty entry of the election and the first proposal.
    assert len(ms) == 1 and ms[0].type == MT.MSG_APP
    assert [len(e.data) for e in ms[0].entries] == [0, 1000]
    # Acked: replicate, and the window of 3 fills at once.
    r.step(Message(MT.MSG_APP_RESP, from_=2, to=1, index=ms[0].entries[1].index))
    ms = read_messages(r)
    assert len(ms) == 3
    assert all(m.type == MT.MSG_APP and len(m.entries) == 2 for m in ms)
    # Ack all three: the last two messages (three entries) go out.
    r.step(Message(MT.MSG_APP_RESP, from_=2, to=1, index=ms[2].entries[1].index))
    ms = read_messages(r)
    assert [len(m.entries) for m in ms] == [2, 1]
    assert all(m.type == MT.MSG_APP for m in ms)


def test_uncommitted_entry_limit() -> None:
    max_entries = 1024
    test_entry = Entry(data=b"testdata")
    max_entry_size = max_entries * len(test_entry.data)
    r = new_test_raft(
        1, [1, 2, 3], 5, 1, max_uncommitted_entries_size=max_entry_size, max_inflight_msgs=2 * 1024
    )
    r.become_candidate()
    r.become_leader()
    assert r.uncommitted_size == 0
    r.trk.progress[2].become_replicate()
    r.trk.progress[3].become_replicate()
    r.uncommitted_size = 0
    prop_msg = Message(MT.MSG_PROP, from_=1, to=1, entries=(test_entry,))
    for _ in range(max_entries):
        r.step(prop_msg)
    with pytest.raises(ProposalDropped):
        r.step(prop_msg)
    ms = read_messages(r)
    assert len(ms) == max_entries * 2
    r.reduce_uncommitted_size(max_entry_size)
    assert r.uncommitted_size == 0

    # A big proposal is accepted when nothing is uncommitted, even above the limit.
    large = Message(MT.MSG_PROP, from_=1, to=1, entries=(test_entry,) * (2 * max_entries))
    r.step(large)
    with pytest.raises(ProposalDropped):
        r.step(prop_msg)
    ms = read_messages(r)
    assert len(ms) == 2
    r.reduce_uncommitted_size(2 * max_entry_size)
    assert r.uncommitted_size == 0


def test_uncommitted_size_empty_entries_never_refused() -> None:
    r = new_test_raft(1, [1, 2], 5, 1, max_uncommitted_entries_size=4)
    r.become_candidate()
    r.become_leader()
    r.step(prop(1, b"12345"))  # over the limit, but the tail was empty
    with pytest.raises(ProposalDropped):
        r.step(prop(1, b"1"))
    r.step(Message(MT.MSG_PROP, from_=1, to=1, entries=(Entry(),)))  # empty payload


# ---------------------------------------------------------------------- elections


@pytest.mark.parametrize("pre_vote", [False, True])
def test_leader_election(pre_vote: bool) -> None:
    cfg = pre_vote_config if pre_vote else None
    cand_state, cand_term = (PRE_CANDIDATE, 0) if pre_vote else (CANDIDATE, 1)
    cases = [
        (Network(None, None, None, config_func=cfg), LEADER, 1),
        (Network(None, None, NOP_STEPPER, config_func=cfg), LEADER, 1),
        (Network(None, NOP_STEPPER, NOP_STEPPER, config_func=cfg), cand_state, cand_term),
        (Network(None, NOP_STEPPER, NOP_STEPPER, None, config_func=cfg), cand_state, cand_term),
        (Network(None, NOP_STEPPER, NOP_STEPPER, None, None, config_func=cfg), LEADER, 1),
        # Logs further along than 1's, in the same term: rejections, not silence.
        (
            Network(
                None,
                ents_with_config(cfg, 1),
                ents_with_config(cfg, 1),
                ents_with_config(cfg, 1, 1),
                None,
                config_func=cfg,
            ),
            FOLLOWER,
            1,
        ),
    ]
    for i, (nt, state, term) in enumerate(cases):
        nt.send(hup(1))
        sm = nt.raft(1)
        assert sm.state == state, i
        assert sm.term == term, i


def test_learner_election_timeout() -> None:
    n1 = new_test_raft(1, [1], learners=[2])
    n2 = new_test_raft(2, [1], learners=[2])
    n1.become_follower(1, NONE)
    n2.become_follower(1, NONE)
    set_randomized_election_timeout(n2, n2.election_timeout)
    for _ in range(n2.election_timeout):
        n2.tick()
    assert n2.state == FOLLOWER
    assert not n2.msgs


def test_learner_promotion() -> None:
    n1 = new_test_raft(1, [1], learners=[2])
    n2 = new_test_raft(2, [1], learners=[2])
    n1.become_follower(1, NONE)
    n2.become_follower(1, NONE)
    nt = Network(n1, n2)
    assert n1.state != LEADER
    set_randomized_election_timeout(n1, n1.election_timeout)
    for _ in range(n1.election_timeout):
        n1.tick()
    assert n1.state == LEADER
    assert n2.state == FOLLOWER
    nt.send(Message(MT.MSG_BEAT, from_=1, to=1))
    n1.apply_conf_change(add_node(2))
    n2.apply_conf_change(add_node(2))
    assert not n2.is_learner
    set_randomized_election_timeout(n2, n2.election_timeout)
    for _ in range(n2.election_timeout):
        n2.tick()
    nt.send(*read_messages(n2))
    nt.send(Message(MT.MSG_BEAT, from_=2, to=2))
    assert n1.state == FOLLOWER
    assert n2.state == LEADER


def test_learner_can_vote() -> None:
    n2 = new_test_raft(2, [1], learners=[2])
    n2.become_follower(1, NONE)
    n2.step(Message(MT.MSG_VOTE, from_=1, to=2, term=2, log_term=11, index=11))
    assert len(n2.msgs) == 1
    assert n2.msgs[0].type == MT.MSG_VOTE_RESP and not n2.msgs[0].reject


@pytest.mark.parametrize("pre_vote", [False, True])
def test_leader_cycle(pre_vote: bool) -> None:
    n = Network(None, None, None, config_func=pre_vote_config if pre_vote else None)
    for campaigner in (1, 2, 3):
        n.send(hup(campaigner))
        for nid in (1, 2, 3):
            sm = n.raft(nid)
            assert sm.state == (LEADER if nid == campaigner else FOLLOWER)


@pytest.mark.parametrize("pre_vote", [False, True])
def test_leader_election_overwrite_newer_logs(pre_vote: bool) -> None:
    cfg = pre_vote_config if pre_vote else None
    # 1 won term 1 and replicated to 2; 3 won term 2 and wrote an entry alone; 4 and 5 voted
    # for 3 in term 2 but got nothing.
    n = Network(
        ents_with_config(cfg, 1),
        ents_with_config(cfg, 1),
        ents_with_config(cfg, 2),
        voted_with_config(cfg, 3, 2),
        voted_with_config(cfg, 3, 2),
    )
    n.send(hup(1))
    sm1 = n.raft(1)
    assert sm1.state == FOLLOWER
    assert sm1.term == 2
    n.send(hup(1))
    assert sm1.state == LEADER
    assert sm1.term == 3
    for nid in n.peers:
        ents = n.raft(nid).raft_log.all_entries()
        assert [e.term for e in ents] == [1, 3], nid


@pytest.mark.parametrize("vt", [MT.MSG_VOTE, MT.MSG_PRE_VOTE])
def test_vote_from_any_state(vt: MT) -> None:
    for st in StateType:
        r = new_test_raft(1, [1, 2, 3])
        r.term = 1
        if st == FOLLOWER:
            r.become_follower(r.term, 3)
        elif st == PRE_CANDIDATE:
            r.become_pre_candidate()
        elif st == CANDIDATE:
            r.become_candidate()
        else:
            r.become_candidate()
            r.become_leader()
        orig_term = r.term
        new_term = r.term + 1
        r.step(Message(vt, from_=2, to=1, term=new_term, log_term=new_term, index=42))
        assert len(r.msgs) == 1, (vt, st)
        resp = r.msgs[0]
        assert resp.type == vote_resp_type(vt)
        assert not resp.reject
        if vt == MT.MSG_VOTE:
            assert r.state == FOLLOWER
            assert r.term == new_term
            assert r.vote == 2
        else:
            assert r.state == st
            assert r.term == orig_term
            assert r.vote in (NONE, 1)


# ---------------------------------------------------------------------- replication and commit


def test_log_replication() -> None:
    cases = [
        ([prop(1)], 2),
        (
            [
                prop(1),
                Message(MT.MSG_HUP, from_=1, to=2),
                Message(MT.MSG_PROP, from_=1, to=2, entries=(Entry(data=b"somedata"),)),
            ],
            4,
        ),
    ]
    for msgs, wcommitted in cases:
        nt = Network(None, None, None)
        nt.send(hup(1))
        for m in msgs:
            nt.send(m)
        for nid in nt.peers:
            sm = nt.raft(nid)
            assert sm.raft_log.committed == wcommitted
            ents = [e for e in next_ents(sm, nt.storage[nid]) if e.data]
            props = [m for m in msgs if m.type == MT.MSG_PROP]
            assert [e.data for e in ents] == [m.entries[0].data for m in props]


def test_learner_log_replication() -> None:
    n1 = new_test_raft(1, [1], learners=[2])
    n2 = new_test_raft(2, [1], learners=[2])
    nt = Network(n1, n2)
    n1.become_follower(1, NONE)
    n2.become_follower(1, NONE)
    set_randomized_election_timeout(n1, n1.election_timeout)
    for _ in range(n1.election_timeout):
        n1.tick()
    nt.send(Message(MT.MSG_BEAT, from_=1, to=1))
    assert n1.state == LEADER
    assert n2.is_learner
    next_committed = n1.raft_log.committed + 1
    nt.send(prop(1))
    assert n1.raft_log.committed == next_committed
    assert n2.raft_log.committed == n1.raft_log.committed
    assert n1.trk.progress[2].match == n2.raft_log.committed


def test_single_node_commit() -> None:
    tt = Network(None)
    tt.send(hup(1))
    tt.send(prop(1, b"some data"))
    tt.send(prop(1, b"some data"))
    assert tt.raft(1).raft_log.committed == 3


def test_cannot_commit_without_new_term_entry() -> None:
    tt = Network(None, None, None, None, None)
    tt.send(hup(1))
    for other in (3, 4, 5):
        tt.cut(1, other)
    tt.send(prop(1, b"some data"))
    tt.send(prop(1, b"some data"))
    assert tt.raft(1).raft_log.committed == 1
    tt.recover()
    # Keep 2 from replicating its own new-term entry.
    tt.ignore(MT.MSG_APP)
    tt.send(hup(2))
    sm = tt.raft(2)
    # Entries of the older term must not be committed by counting replicas.
    assert sm.raft_log.committed == 1
    tt.recover()
    tt.send(Message(MT.MSG_BEAT, from_=2, to=2))
    tt.send(prop(2, b"some data"))
    assert sm.raft_log.committed == 5


def test_commit_without_new_term_entry() -> None:
    tt = Network(None, None, None, None, None)
    tt.send(hup(1))
    for other in (3, 4, 5):
        tt.cut(1, other)
    tt.send(prop(1, b"some data"))
    tt.send(prop(1, b"some data"))
    sm = tt.raft(1)
    assert sm.raft_log.committed == 1
    tt.recover()
    # 2's empty entry of term 2 commits everything before it.
    tt.send(hup(2))
    assert sm.raft_log.committed == 4


def test_dueling_candidates() -> None:
    a = new_test_raft(1, [1, 2, 3])
    b = new_test_raft(2, [1, 2, 3])
    c = new_test_raft(3, [1, 2, 3])
    nt = Network(a, b, c)
    nt.cut(1, 3)
    nt.send(hup(1))
    nt.send(hup(3))
    assert a.state == LEADER
    # 3 got its own vote and 2's rejection.
    assert c.state == CANDIDATE
    nt.recover()
    # 3 campaigns again at a higher term: it disrupts the leader but cannot win (short log).
    nt.send(hup(3))
    want = [(1, 1, b"")]
    for sm, state, term, log in ((a, FOLLOWER, 2, want), (b, FOLLOWER, 2, want), (c, FOLLOWER, 2, [])):
        assert sm.state == state
        assert sm.term == term
        assert log_of(sm) == log
    assert a.raft_log.committed == 1


def test_dueling_pre_candidates() -> None:
    a = new_test_raft(1, [1, 2, 3], pre_vote=True)
    b = new_test_raft(2, [1, 2, 3], pre_vote=True)
    c = new_test_raft(3, [1, 2, 3], pre_vote=True)
    nt = Network(a, b, c)
    nt.cut(1, 3)
    nt.send(hup(1))
    nt.send(hup(3))
    assert a.state == LEADER
    # 3's pre-vote is rejected by 2, which knows a leader at term 1 with a longer log.
    assert c.state == FOLLOWER
    nt.recover()
    nt.send(hup(3))
    want = [(1, 1, b"")]
    for sm, state, term, log in ((a, LEADER, 1, want), (b, FOLLOWER, 1, want), (c, FOLLOWER, 1, [])):
        assert sm.state == state
        assert sm.term == term
        assert log_of(sm) == log


def test_candidate_concede() -> None:
    tt = Network(None, None, None)
    tt.isolate(1)
    tt.send(hup(1))
    tt.send(hup(3))
    tt.recover()
    tt.send(Message(MT.MSG_BEAT, from_=3, to=3))
    data = b"force follower"
    tt.send(prop(3, data))
    tt.send(Message(MT.MSG_BEAT, from_=3, to=3))
    a = tt.raft(1)
    assert a.state == FOLLOWER
    assert a.term == 1
    for nid in tt.peers:
        sm = tt.raft(nid)
        assert log_of(sm) == [(1, 1, b""), (2, 1, data)]
        assert sm.raft_log.committed == 2


def test_single_node_candidate() -> None:
    tt = Network(None)
    tt.send(hup(1))
    assert tt.raft(1).state == LEADER


def test_single_node_pre_candidate() -> None:
    tt = Network(None, config_func=pre_vote_config)
    tt.send(hup(1))
    assert tt.raft(1).state == LEADER


def test_old_messages() -> None:
    tt = Network(None, None, None)
    tt.send(hup(1))
    tt.send(hup(2))
    tt.send(hup(1))
    # An old leader (term 2) trying to make progress: ignored.
    tt.send(Message(MT.MSG_APP, from_=2, to=1, term=2, entries=(Entry(index=3, term=2),)))
    tt.send(prop(1))
    want = [(1, 1, b""), (2, 2, b""), (3, 3, b""), (4, 3, b"somedata")]
    for nid in tt.peers:
        sm = tt.raft(nid)
        assert log_of(sm) == want
        assert sm.raft_log.committed == 4


def test_proposal() -> None:
    cases = [
        (Network(None, None, None), True),
        (Network(None, None, NOP_STEPPER), True),
        (Network(None, NOP_STEPPER, NOP_STEPPER), False),
        (Network(None, NOP_STEPPER, NOP_STEPPER, None), False),
        (Network(None, NOP_STEPPER, NOP_STEPPER, None, None), True),
    ]
    data = b"somedata"
    for nt, success in cases:
        nt.send(hup(1))
        nt.send(prop(1, data))  # dropped (no leader) when the election failed
        for nid, p in nt.peers.items():
            if not isinstance(p, Raft):
                continue
            if success:
                assert log_of(p) == [(1, 1, b""), (2, 1, data)], nid
                assert p.raft_log.committed == 2
            else:
                assert log_of(p) == [], nid
        assert nt.raft(1).term == 1


def test_proposal_by_proxy() -> None:
    data = b"somedata"
    for nt in (Network(None, None, None), Network(None, None, NOP_STEPPER)):
        nt.send(hup(1))
        nt.send(prop(2, data))
        for _nid, p in nt.peers.items():
            if isinstance(p, Raft):
                assert log_of(p) == [(1, 1, b""), (2, 1, data)]
                assert p.raft_log.committed == 2
        assert nt.raft(1).term == 1


@pytest.mark.parametrize(
    ("matches", "terms", "sm_term", "w"),
    [
        ([1], [1], 1, 1),
        ([1], [1], 2, 0),
        ([2], [1, 2], 2, 2),
        ([1], [2], 2, 1),
        ([2, 1, 1], [1, 2], 1, 1),
        ([2, 1, 1], [1, 1], 2, 0),
        ([2, 1, 2], [1, 2], 2, 2),
        ([2, 1, 2], [1, 1], 2, 0),
        ([2, 1, 1, 1], [1, 2], 1, 1),
        ([2, 1, 1, 1], [1, 1], 2, 0),
        ([2, 1, 1, 2], [1, 2], 1, 1),
        ([2, 1, 1, 2], [1, 1], 2, 0),
        ([2, 1, 2, 2], [1, 2], 2, 2),
        ([2, 1, 2, 2], [1, 1], 2, 0),
    ],
)
def test_commit(matches: list[int], terms: list[int], sm_term: int, w: int) -> None:
    storage = MemoryStorage()
    storage.append([Entry(index=i + 1, term=t) for i, t in enumerate(terms)])
    storage.set_hard_state(HardState(term=sm_term))
    sm = new_test_raft(1, [1], 10, 2, storage)
    for j, match in enumerate(matches):
        nid = j + 1
        if nid > 1:
            sm.apply_conf_change(add_node(nid))
        pr = sm.trk.progress[nid]
        pr.match, pr.next = match, match + 1
    sm.maybe_commit()
    assert sm.raft_log.committed == w


@pytest.mark.parametrize(
    ("elapse", "wprobability", "rounded"),
    [(5, 0.0, False), (10, 0.1, True), (13, 0.4, True), (15, 0.6, True), (18, 0.9, True), (20, 1.0, False)],
)
def test_past_election_timeout(elapse: int, wprobability: float, rounded: bool) -> None:
    sm = new_test_raft(1, [1])
    sm.election_elapsed = elapse
    c = 0
    for _ in range(10000):
        sm.reset_randomized_election_timeout()
        if sm.past_election_timeout():
            c += 1
    got = c / 10000.0
    if rounded:
        got = math.floor(got * 10 + 0.5) / 10.0
    assert got == wprobability


def test_step_ignore_old_term_msg() -> None:
    called: list[Message] = []
    sm = new_test_raft(1, [1])
    sm._step = called.append
    sm.term = 2
    sm.step(Message(MT.MSG_APP, term=1))
    assert called == []


def test_must_append_entry_helper() -> None:
    r = new_test_raft(1, [1])
    r.become_candidate()
    r.become_leader()
    must_append_entry(r, Entry(data=b"x"))
    assert r.raft_log.last_index() == 2


# ---------------------------------------------------------------------- message handlers


def _storage_with(*terms: int, peers: tuple[int, ...] = (1,)) -> MemoryStorage:
    s = storage_with_peers(*peers)
    s.append([Entry(index=i + 1, term=t) for i, t in enumerate(terms)])
    return s


@pytest.mark.parametrize(
    ("m", "w_index", "w_commit", "w_reject"),
    [
        # Reply false if the log has no matching entry at prevLogIndex.
        (Message(MT.MSG_APP, term=2, log_term=3, index=2, commit=3), 2, 0, True),
        (Message(MT.MSG_APP, term=2, log_term=3, index=3, commit=3), 2, 0, True),
        # Conflicting entries are replaced; new ones appended.
        (Message(MT.MSG_APP, term=2, log_term=1, index=1, commit=1), 2, 1, False),
        (
            Message(MT.MSG_APP, term=2, log_term=0, index=0, commit=1, entries=(Entry(index=1, term=2),)),
            1,
            1,
            False,
        ),
        (
            Message(
                MT.MSG_APP,
                term=2,
                log_term=2,
                index=2,
                commit=3,
                entries=(Entry(index=3, term=2), Entry(index=4, term=2)),
            ),
            4,
            3,
            False,
        ),
        (
            Message(MT.MSG_APP, term=2, log_term=2, index=2, commit=4, entries=(Entry(index=3, term=2),)),
            3,
            3,
            False,
        ),
        (
            Message(MT.MSG_APP, term=2, log_term=1, index=1, commit=4, entries=(Entry(index=2, term=2),)),
            2,
            2,
            False,
        ),
        # Commit goes to min(leaderCommit, index of last new entry).
        (Message(MT.MSG_APP, term=1, log_term=1, index=1, commit=3), 2, 1, False),
        (
            Message(MT.MSG_APP, term=1, log_term=1, index=1, commit=3, entries=(Entry(index=2, term=2),)),
            2,
            2,
            False,
        ),
        (Message(MT.MSG_APP, term=2, log_term=2, index=2, commit=3), 2, 2, False),
        (Message(MT.MSG_APP, term=2, log_term=2, index=2, commit=4), 2, 2, False),
    ],
)
def test_handle_msg_app(m: Message, w_index: int, w_commit: int, w_reject: bool) -> None:
    sm = new_test_raft(1, [], 10, 1, _storage_with(1, 2))
    sm.become_follower(2, NONE)
    sm.handle_append_entries(m)
    assert sm.raft_log.last_index() == w_index
    assert sm.raft_log.committed == w_commit
    ms = read_messages(sm)
    assert len(ms) == 1
    assert ms[0].reject == w_reject


@pytest.mark.parametrize(("commit", "w_commit"), [(3, 3), (1, 2)])
def test_handle_heartbeat(commit: int, w_commit: int) -> None:
    sm = new_test_raft(1, [], 5, 1, _storage_with(1, 2, 3, peers=(1, 2)))
    sm.become_follower(2, 2)
    sm.raft_log.commit_to(2)
    sm.handle_heartbeat(Message(MT.MSG_HEARTBEAT, from_=2, to=1, term=2, commit=commit))
    assert sm.raft_log.committed == w_commit  # never decreases
    ms = read_messages(sm)
    assert [m.type for m in ms] == [MT.MSG_HEARTBEAT_RESP]


def test_handle_heartbeat_resp() -> None:
    sm = new_test_raft(1, [], 5, 1, _storage_with(1, 2, 3, peers=(1, 2)))
    sm.become_candidate()
    sm.become_leader()
    sm.raft_log.commit_to(sm.raft_log.last_index())
    # A heartbeat response from a node that is behind: re-send MsgApp.
    sm.step(Message(MT.MSG_HEARTBEAT_RESP, from_=2))
    msgs = read_messages(sm)
    assert [m.type for m in msgs] == [MT.MSG_APP]
    # Again (probe state: each heartbeat response may send one append).
    sm.step(Message(MT.MSG_HEARTBEAT_RESP, from_=2))
    msgs = read_messages(sm)
    assert [m.type for m in msgs] == [MT.MSG_APP]
    # Once acked, heartbeat responses no longer trigger appends.
    sm.step(Message(MT.MSG_APP_RESP, from_=2, index=msgs[0].index + len(msgs[0].entries)))
    read_messages(sm)
    sm.step(Message(MT.MSG_HEARTBEAT_RESP, from_=2))
    assert read_messages(sm) == []


def test_raft_frees_read_only_mem() -> None:
    sm = new_test_raft(1, [1, 2], 5, 1)
    sm.become_candidate()
    sm.become_leader()
    sm.raft_log.commit_to(sm.raft_log.last_index())
    ctx = b"ctx"
    sm.step(Message(MT.MSG_READ_INDEX, from_=2, entries=(Entry(data=ctx),)))
    msgs = read_messages(sm)
    assert len(msgs) == 1 and msgs[0].type == MT.MSG_HEARTBEAT and msgs[0].context == ctx
    assert len(sm.read_only.read_index_queue) == 1
    assert ctx in sm.read_only.pending_read_index
    sm.step(Message(MT.MSG_HEARTBEAT_RESP, from_=2, context=ctx))
    assert sm.read_only.read_index_queue == []
    assert sm.read_only.pending_read_index == {}
    # The remote requester gets its answer.
    msgs = read_messages(sm)
    resps = [(m.type, m.to, m.index) for m in msgs if m.type != MT.MSG_APP]
    assert resps == [(MT.MSG_READ_INDEX_RESP, 2, 1)]


def test_msg_app_resp_wait_reset() -> None:
    sm = new_test_raft(1, [1, 2, 3], 5, 1)
    sm.become_candidate()
    sm.become_leader()
    sm.bcast_append()
    read_messages(sm)
    # 2 acks the first entry: committed.
    sm.step(Message(MT.MSG_APP_RESP, from_=2, index=1))
    assert sm.raft_log.committed == 1
    read_messages(sm)
    sm.step(Message(MT.MSG_PROP, from_=1, entries=(Entry(),)))
    # 2 left the probe wait with its response; 3 still waits.
    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MSG_APP and msgs[0].to == 2
    assert [e.index for e in msgs[0].entries] == [2]
    sm.step(Message(MT.MSG_APP_RESP, from_=3, index=1))
    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MSG_APP and msgs[0].to == 3
    assert [e.index for e in msgs[0].entries] == [2]


_RECV_VOTE_CASES = [
    (FOLLOWER, 0, 0, NONE, True),
    (FOLLOWER, 0, 1, NONE, True),
    (FOLLOWER, 0, 2, NONE, True),
    (FOLLOWER, 0, 3, NONE, False),
    (FOLLOWER, 1, 0, NONE, True),
    (FOLLOWER, 1, 1, NONE, True),
    (FOLLOWER, 1, 2, NONE, True),
    (FOLLOWER, 1, 3, NONE, False),
    (FOLLOWER, 2, 0, NONE, True),
    (FOLLOWER, 2, 1, NONE, True),
    (FOLLOWER, 2, 2, NONE, False),
    (FOLLOWER, 2, 3, NONE, False),
    (FOLLOWER, 3, 0, NONE, True),
    (FOLLOWER, 3, 1, NONE, True),
    (FOLLOWER, 3, 2, NONE, False),
    (FOLLOWER, 3, 3, NONE, False),
    (FOLLOWER, 3, 2, 2, False),
    (FOLLOWER, 3, 2, 1, True),
    (LEADER, 3, 3, 1, True),
    (PRE_CANDIDATE, 3, 3, 1, True),
    (CANDIDATE, 3, 3, 1, True),
]


@pytest.mark.parametrize("msg_type", [MT.MSG_VOTE, MT.MSG_PRE_VOTE])
@pytest.mark.parametrize(("state", "index", "log_term", "vote_for", "w_reject"), _RECV_VOTE_CASES)
def test_recv_msg_vote(
    msg_type: MessageType, state: StateType, index: int, log_term: int, vote_for: int, w_reject: bool
) -> None:
    sm = new_test_raft(1, [], 10, 1, _storage_with(2, 2))
    sm.state = state
    sm._step = {
        FOLLOWER: sm._step_follower,
        CANDIDATE: sm._step_candidate,
        PRE_CANDIDATE: sm._step_candidate,
        LEADER: sm._step_leader,
    }[state]
    sm.vote = vote_for
    # Same term on both sides: only the logs and the existing vote decide.
    term = max(sm.raft_log.last_term(), log_term)
    sm.term = term
    sm.step(Message(msg_type, term=term, from_=2, index=index, log_term=log_term))
    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].type == vote_resp_type(msg_type)
    assert msgs[0].reject == w_reject


@pytest.mark.parametrize(
    ("from_", "to", "wallow", "wterm", "wlead"),
    [
        (FOLLOWER, FOLLOWER, True, 1, NONE),
        (FOLLOWER, PRE_CANDIDATE, True, 0, NONE),
        (FOLLOWER, CANDIDATE, True, 1, NONE),
        (FOLLOWER, LEADER, False, 0, NONE),
        (PRE_CANDIDATE, FOLLOWER, True, 0, NONE),
        (PRE_CANDIDATE, PRE_CANDIDATE, True, 0, NONE),
        (PRE_CANDIDATE, CANDIDATE, True, 1, NONE),
        (PRE_CANDIDATE, LEADER, True, 0, 1),
        (CANDIDATE, FOLLOWER, True, 0, NONE),
        (CANDIDATE, PRE_CANDIDATE, True, 0, NONE),
        (CANDIDATE, CANDIDATE, True, 1, NONE),
        (CANDIDATE, LEADER, True, 0, 1),
        (LEADER, FOLLOWER, True, 1, NONE),
        (LEADER, PRE_CANDIDATE, False, 0, NONE),
        (LEADER, CANDIDATE, False, 1, NONE),
        (LEADER, LEADER, True, 0, 1),
    ],
)
def test_state_transition(from_: StateType, to: StateType, wallow: bool, wterm: int, wlead: int) -> None:
    sm = new_test_raft(1, [1])
    sm.state = from_
    try:
        if to == FOLLOWER:
            sm.become_follower(wterm, wlead)
        elif to == PRE_CANDIDATE:
            sm.become_pre_candidate()
        elif to == CANDIDATE:
            sm.become_candidate()
        else:
            sm.become_leader()
    except RaftPanic:
        assert not wallow
        return
    assert wallow
    assert sm.term == wterm
    assert sm.lead == wlead


@pytest.mark.parametrize(
    ("state", "wstate", "wterm", "windex"),
    [
        (FOLLOWER, FOLLOWER, 3, 0),
        (PRE_CANDIDATE, FOLLOWER, 3, 0),
        (CANDIDATE, FOLLOWER, 3, 0),
        (LEADER, FOLLOWER, 3, 1),
    ],
)
def test_all_server_stepdown(state: StateType, wstate: StateType, wterm: int, windex: int) -> None:
    for msg_type in (MT.MSG_VOTE, MT.MSG_APP):
        sm = new_test_raft(1, [1, 2, 3])
        if state == FOLLOWER:
            sm.become_follower(1, NONE)
        elif state == PRE_CANDIDATE:
            sm.become_pre_candidate()
        elif state == CANDIDATE:
            sm.become_candidate()
        else:
            sm.become_candidate()
            sm.become_leader()
        sm.step(Message(msg_type, from_=2, term=3, log_term=3))
        assert sm.state == wstate
        assert sm.term == wterm
        assert sm.raft_log.last_index() == windex
        assert len(sm.raft_log.all_entries()) == windex
        assert sm.lead == (NONE if msg_type == MT.MSG_VOTE else 2)


@pytest.mark.parametrize("mt", [MT.MSG_HEARTBEAT, MT.MSG_APP])
def test_candidate_reset_term(mt: MessageType) -> None:
    a = new_test_raft(1, [1, 2, 3])
    b = new_test_raft(2, [1, 2, 3])
    c = new_test_raft(3, [1, 2, 3])
    nt = Network(a, b, c)
    nt.send(hup(1))
    assert (a.state, b.state, c.state) == (LEADER, FOLLOWER, FOLLOWER)
    nt.isolate(3)
    nt.send(hup(2))
    nt.send(hup(1))
    assert (a.state, b.state) == (LEADER, FOLLOWER)
    # 3 times out and becomes a candidate at a higher term, alone.
    c.reset_randomized_election_timeout()
    for _ in range(c.randomized_election_timeout):
        c.tick()
    assert c.state == CANDIDATE
    nt.recover()
    # A heartbeat or append from the leader at the leader's term (lower than 3's) is answered
    # with 3's term, which makes the leader step down; 3 then follows at that term.
    nt.send(Message(mt, from_=1, to=3, term=a.term))
    assert c.state == FOLLOWER
    assert a.term == c.term


# ---------------------------------------------------------------------- check quorum and stickiness


def test_leader_stepdown_when_quorum_active() -> None:
    sm = new_test_raft(1, [1, 2, 3], 5, 1, check_quorum=True)
    sm.become_candidate()
    sm.become_leader()
    for _ in range(sm.election_timeout + 1):
        sm.step(Message(MT.MSG_HEARTBEAT_RESP, from_=2, term=sm.term))
        sm.tick()
    assert sm.state == LEADER


def test_leader_stepdown_when_quorum_lost() -> None:
    sm = new_test_raft(1, [1, 2, 3], 5, 1, check_quorum=True)
    sm.become_candidate()
    sm.become_leader()
    for _ in range(sm.election_timeout + 1):
        sm.tick()
    assert sm.state == FOLLOWER


def _three(**kw: object) -> tuple[Raft, Raft, Raft, Network]:
    a = new_test_raft(1, [1, 2, 3], **kw)  # type: ignore[arg-type]
    b = new_test_raft(2, [1, 2, 3], **kw)  # type: ignore[arg-type]
    c = new_test_raft(3, [1, 2, 3], **kw)  # type: ignore[arg-type]
    return a, b, c, Network(a, b, c)


def test_leader_superseding_with_check_quorum() -> None:
    a, b, c, nt = _three(check_quorum=True)
    set_randomized_election_timeout(b, b.election_timeout + 1)
    for _ in range(b.election_timeout):
        b.tick()
    nt.send(hup(1))
    assert a.state == LEADER
    assert c.state == FOLLOWER
    nt.send(hup(3))
    # 2 heard from the leader recently and ignores 3's vote request: stickiness.
    assert c.state == CANDIDATE
    for _ in range(b.election_timeout):
        b.tick()
    nt.send(hup(3))
    assert c.state == LEADER


def test_leader_election_with_check_quorum() -> None:
    a, b, c, nt = _three(check_quorum=True)
    set_randomized_election_timeout(a, a.election_timeout + 1)
    set_randomized_election_timeout(b, b.election_timeout + 2)
    # Immediately after creation, votes are cast regardless of the election timeout.
    nt.send(hup(1))
    assert a.state == LEADER
    assert c.state == FOLLOWER
    # Once the election timeout passed without hearing from 1, 3 can win.
    set_randomized_election_timeout(a, a.election_timeout + 1)
    set_randomized_election_timeout(b, b.election_timeout + 2)
    for _ in range(a.election_timeout):
        a.tick()
    for _ in range(b.election_timeout):
        b.tick()
    nt.send(hup(3))
    assert a.state == FOLLOWER
    assert c.state == LEADER


def test_free_stuck_candidate_with_check_quorum() -> None:
    a, b, c, nt = _three(check_quorum=True)
    set_randomized_election_timeout(b, b.election_timeout + 1)
    for _ in range(b.election_timeout):
        b.tick()
    nt.send(hup(1))
    nt.isolate(1)
    nt.send(hup(3))
    assert b.state == FOLLOWER
    assert c.state == CANDIDATE
    assert c.term == b.term + 1
    # Vote again: term goes up again, still stuck.
    nt.send(hup(3))
    assert b.state == FOLLOWER
    assert c.state == CANDIDATE
    assert c.term == b.term + 2
    nt.recover()
    nt.send(Message(MT.MSG_HEARTBEAT, from_=1, to=3, term=a.term))
    # The stale leader's heartbeat is answered with 3's term: the leader steps down.
    assert a.state == FOLLOWER
    assert c.term == a.term
    # Vote again, should become leader this time.
    nt.send(hup(3))
    assert c.state == LEADER


def test_non_promotable_voter_with_check_quorum() -> None:
    a = new_test_raft(1, [1, 2], check_quorum=True)
    b = new_test_raft(2, [1], check_quorum=True)
    nt = Network(a, b)
    set_randomized_election_timeout(b, b.election_timeout + 1)
    # Remove 2 from b's configuration: b cannot campaign.
    b.apply_conf_change(remove_node(2))
    assert not b.promotable()
    for _ in range(b.election_timeout):
        b.tick()
    nt.send(hup(1))
    assert a.state == LEADER
    assert b.state == FOLLOWER
    assert b.lead == 1


def test_disruptive_follower() -> None:
    n1, n2, n3, nt = _three(check_quorum=True)
    for n in (n1, n2, n3):
        n.become_follower(1, NONE)
    nt.send(hup(1))
    assert (n1.state, n2.state, n3.state) == (LEADER, FOLLOWER, FOLLOWER)
    # 3 times out (its heartbeats were lost) and campaigns; its messages are not delivered.
    set_randomized_election_timeout(n3, n3.election_timeout + 2)
    for _ in range(n3.randomized_election_timeout):
        n3.tick()
    assert (n1.state, n2.state, n3.state) == (LEADER, FOLLOWER, CANDIDATE)
    assert (n1.term, n2.term, n3.term) == (2, 2, 3)
    # The leader's heartbeat reaches 3, whose answer at term 3 makes the leader step down.
    nt.send(Message(MT.MSG_HEARTBEAT, from_=1, to=3, term=n1.term))
    assert (n1.state, n2.state, n3.state) == (FOLLOWER, FOLLOWER, CANDIDATE)
    assert (n1.term, n2.term, n3.term) == (3, 2, 3)


def test_disruptive_follower_pre_vote() -> None:
    n1, n2, n3, nt = _three(check_quorum=True)
    for n in (n1, n2, n3):
        n.become_follower(1, NONE)
    nt.send(hup(1))
    assert (n1.state, n2.state, n3.state) == (LEADER, FOLLOWER, FOLLOWER)
    nt.isolate(3)
    for _ in range(3):
        nt.send(prop(1))
    for n in (n1, n2, n3):
        n.pre_vote = True
    nt.recover()
    nt.send(hup(3))
    assert (n1.state, n2.state, n3.state) == (LEADER, FOLLOWER, PRE_CANDIDATE)
    assert (n1.term, n2.term, n3.term) == (2, 2, 2)
    # With pre-vote 3 never raised its term: the leader's heartbeat does not disrupt anything.
    nt.send(Message(MT.MSG_HEARTBEAT, from_=1, to=3, term=n1.term))
    assert n1.state == LEADER


# ---------------------------------------------------------------------- ReadIndex


def _read_index_cases(nt: Network, cases: list[tuple[Raft, int, int, bytes]], proposer: int = 1) -> None:
    for sm, proposals, wri, wctx in cases:
        for _ in range(proposals):
            nt.send(Message(MT.MSG_PROP, from_=proposer, to=proposer, entries=(Entry(),)))
        nt.send(Message(MT.MSG_READ_INDEX, from_=sm.id, to=sm.id, entries=(Entry(data=wctx),)))
        assert sm.read_states, wctx
        rs = sm.read_states[0]
        assert rs.index == wri
        assert rs.request_ctx == wctx
        sm.read_states = []


def test_read_only_option_safe() -> None:
    a, b, c, nt = _three()
    set_randomized_election_timeout(b, b.election_timeout + 1)
    for _ in range(b.election_timeout):
        b.tick()
    nt.send(hup(1))
    assert a.state == LEADER
    _read_index_cases(
        nt,
        [
            (a, 10, 11, b"ctx1"),
            (b, 10, 21, b"ctx2"),
            (c, 10, 31, b"ctx3"),
            (a, 10, 41, b"ctx4"),
            (b, 10, 51, b"ctx5"),
            (c, 10, 61, b"ctx6"),
        ],
    )


def test_read_only_with_learner() -> None:
    a = new_test_raft(1, [1], learners=[2])
    b = new_test_raft(2, [1], learners=[2])
    nt = Network(a, b)
    set_randomized_election_timeout(b, b.election_timeout + 1)
    for _ in range(b.election_timeout):
        b.tick()
    nt.send(hup(1))
    assert a.state == LEADER
    _read_index_cases(
        nt, [(a, 10, 11, b"ctx1"), (b, 10, 21, b"ctx2"), (a, 10, 31, b"ctx3"), (b, 10, 41, b"ctx4")]
    )


def test_read_only_option_lease() -> None:
    a, b, c, nt = _three(check_quorum=True, read_only_option=ReadOnlyOption.LEASE_BASED)
    set_randomized_election_timeout(b, b.election_timeout + 1)
    for _ in range(b.election_timeout):
        b.tick()
    nt.send(hup(1))
    assert a.state == LEADER
    # No heartbeat round: nothing but the read request itself is exchanged.
    sent: list[Message] = []

    def record(m: Message) -> bool:
        sent.append(m)
        return True

    nt.msg_hook = record
    _read_index_cases(
        nt,
        [
            (a, 10, 11, b"ctx1"),
            (b, 10, 21, b"ctx2"),
            (c, 10, 31, b"ctx3"),
            (a, 10, 41, b"ctx4"),
            (b, 10, 51, b"ctx5"),
            (c, 10, 61, b"ctx6"),
        ],
    )
    assert not [m for m in sent if m.type == MT.MSG_HEARTBEAT]


def test_read_only_for_new_leader() -> None:
    # 1 has committed only 1; 2 and 3 committed and compacted up to 2.
    peers = []
    for nid, committed, applied, compact in ((1, 1, 1, 0), (2, 2, 2, 2), (3, 2, 2, 2)):
        storage = storage_with_peers(1, 2, 3)
        storage.append([Entry(index=1, term=1), Entry(index=2, term=1)])
        storage.set_hard_state(HardState(term=1, commit=committed))
        if compact:
            storage.compact(compact)
        peers.append(new_test_raft(nid, [], 10, 1, storage, applied=applied))
    nt = Network(*peers)
    # Keep 1 from committing an entry of its term.
    nt.ignore(MT.MSG_APP)
    nt.send(hup(1))
    sm = nt.raft(1)
    assert sm.state == LEADER
    windex = 4
    wctx = b"ctx"
    nt.send(Message(MT.MSG_READ_INDEX, from_=1, to=1, entries=(Entry(data=wctx),)))
    # Held back until an entry of the leader's term commits.
    assert sm.read_states == []
    assert len(sm.pending_read_index_messages) == 1
    nt.recover()
    for _ in range(sm.heartbeat_timeout):
        sm.tick()
    nt.send(prop(1, b""))
    assert sm.raft_log.committed == 4
    assert sm.raft_log.zero_term_on_err_compacted(sm.raft_log.committed) == sm.term
    assert len(sm.read_states) == 1
    assert sm.read_states[0] == ReadState(index=windex, request_ctx=wctx)
    nt.send(Message(MT.MSG_READ_INDEX, from_=1, to=1, entries=(Entry(data=wctx),)))
    assert len(sm.read_states) == 2
    assert sm.read_states[1] == ReadState(index=windex, request_ctx=wctx)


def test_read_index_requests_queued_in_order() -> None:
    # Several pending requests are all released by the ack of the newest one.
    sm = new_test_raft(1, [1, 2, 3])
    sm.become_candidate()
    sm.become_leader()
    sm.step(Message(MT.MSG_APP_RESP, from_=2, index=1))  # commit the empty entry of term 1
    read_messages(sm)
    for ctx in (b"a", b"b", b"c"):
        sm.step(Message(MT.MSG_READ_INDEX, from_=1, entries=(Entry(data=ctx),)))
    msgs = read_messages(sm)
    assert [m.context for m in msgs if m.to == 2] == [b"a", b"b", b"c"]
    sm.step(Message(MT.MSG_HEARTBEAT_RESP, from_=3, context=b"b"))
    assert [rs.request_ctx for rs in sm.read_states] == [b"a", b"b"]
    # A duplicate context while pending is ignored.
    sm.step(Message(MT.MSG_READ_INDEX, from_=1, entries=(Entry(data=b"c"),)))
    assert sm.read_only.read_index_queue == [b"c"]


def test_read_index_dropped_by_follower_without_leader() -> None:
    sm = new_test_raft(1, [1, 2, 3])
    sm.step(Message(MT.MSG_READ_INDEX, from_=1, entries=(Entry(data=b"x"),)))
    assert read_messages(sm) == []
    assert sm.read_states == []


# ---------------------------------------------------------------------- leader bookkeeping


@pytest.mark.parametrize(
    ("index", "reject", "wmatch", "wnext", "wmsg_num", "windex", "wcommitted"),
    [
        (3, True, 0, 3, 0, 0, 0),  # stale rejection: ignored
        (2, True, 0, 2, 1, 1, 0),  # rejection: next decreases, probe sent
        (2, False, 2, 4, 2, 2, 2),  # accepted: commit, broadcast
        (0, False, 0, 4, 1, 0, 0),  # probing follower acks its match: replicate everything
    ],
)
def test_leader_app_resp(
    index: int, reject: bool, wmatch: int, wnext: int, wmsg_num: int, windex: int, wcommitted: int
) -> None:
    sm = new_test_raft(1, [1, 2, 3])
    st = MemoryStorage()
    st.append([Entry(index=1, term=1), Entry(index=2, term=1)])
    sm.raft_log = RaftLog(st)
    sm.become_candidate()
    sm.become_leader()
    read_messages(sm)
    sm.step(Message(MT.MSG_APP_RESP, from_=2, index=index, term=sm.term, reject=reject, reject_hint=index))
    p = sm.trk.progress[2]
    assert p.match == wmatch
    assert p.next == wnext
    msgs = read_messages(sm)
    assert len(msgs) == wmsg_num
    for m in msgs:
        assert m.index == windex
        assert m.commit == wcommitted


def test_bcast_beat() -> None:
    offset = 1000
    storage = MemoryStorage()
    storage.apply_snapshot(
        Snapshot(metadata=SnapshotMetadata(index=offset, term=1, conf_state=ConfState(voters=(1, 2, 3))))
    )
    sm = new_test_raft(1, [], 10, 1, storage)
    sm.term = 1
    sm.become_candidate()
    sm.become_leader()
    for i in range(10):
        must_append_entry(sm, Entry(index=i + 1))
    sm.trk.progress[2].match, sm.trk.progress[2].next = 5, 6
    last = sm.raft_log.last_index()
    sm.trk.progress[3].match, sm.trk.progress[3].next = last, last + 1
    sm.step(Message(MT.MSG_BEAT))
    msgs = read_messages(sm)
    assert len(msgs) == 2
    want_commit = {
        2: min(sm.raft_log.committed, sm.trk.progress[2].match),
        3: min(sm.raft_log.committed, sm.trk.progress[3].match),
    }
    for m in msgs:
        assert m.type == MT.MSG_HEARTBEAT
        assert m.index == 0 and m.log_term == 0 and not m.entries
        assert m.commit == want_commit.pop(m.to)
    assert want_commit == {}


@pytest.mark.parametrize(("state", "w_msg"), [(LEADER, 2), (CANDIDATE, 0), (FOLLOWER, 0)])
def test_recv_msg_beat(state: StateType, w_msg: int) -> None:
    sm = new_test_raft(1, [], 10, 1, _storage_with(0, 1, peers=(1, 2, 3)))
    sm.term = 1
    sm.state = state
    sm._step = {FOLLOWER: sm._step_follower, CANDIDATE: sm._step_candidate, LEADER: sm._step_leader}[state]
    sm.step(Message(MT.MSG_BEAT, from_=1, to=1))
    msgs = read_messages(sm)
    assert len(msgs) == w_msg
    assert all(m.type == MT.MSG_HEARTBEAT for m in msgs)


@pytest.mark.parametrize(
    ("state", "next_", "wnext"), [(ProgressState.REPLICATE, 2, 6), (ProgressState.PROBE, 2, 2)]
)
def test_leader_increase_next(state: ProgressState, next_: int, wnext: int) -> None:
    sm = new_test_raft(1, [1, 2])
    sm.raft_log.append([Entry(term=1, index=i) for i in (1, 2, 3)])
    sm.become_candidate()
    sm.become_leader()
    sm.trk.progress[2].state = state
    sm.trk.progress[2].next = next_
    sm.step(prop(1))
    # Replicate: next moves optimistically past what was sent; probe: it waits.
    assert sm.trk.progress[2].next == wnext


def test_send_append_for_progress_probe() -> None:
    r = new_test_raft(1, [1, 2])
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    r.trk.progress[2].become_probe()
    # Each heartbeat round lets at most one append through while probing.
    for i in range(3):
        if i == 0:
            must_append_entry(r, Entry(data=b"somedata"))
            r.send_append(2)
            msgs = read_messages(r)
            assert len(msgs) == 1
            assert msgs[0].index == 0
        assert r.trk.progress[2].msg_app_flow_paused
        for _ in range(10):
            must_append_entry(r, Entry(data=b"somedata"))
            r.send_append(2)
            assert read_messages(r) == []
        for _ in range(r.heartbeat_timeout):
            r.step(Message(MT.MSG_BEAT, from_=1, to=1))
        assert r.trk.progress[2].msg_app_flow_paused
        msgs = read_messages(r)
        assert [m.type for m in msgs] == [MT.MSG_HEARTBEAT]
    # A heartbeat response unpauses and sends one append.
    r.step(Message(MT.MSG_HEARTBEAT_RESP, from_=2, to=1))
    msgs = read_messages(r)
    assert len(msgs) == 1
    assert msgs[0].index == 0
    assert r.trk.progress[2].msg_app_flow_paused


def test_send_append_for_progress_replicate() -> None:
    r = new_test_raft(1, [1, 2])
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    r.trk.progress[2].become_replicate()
    for _ in range(10):
        must_append_entry(r, Entry(data=b"somedata"))
        r.send_append(2)
        assert len(read_messages(r)) == 1


def test_send_append_for_progress_snapshot() -> None:
    r = new_test_raft(1, [1, 2])
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    r.trk.progress[2].become_snapshot(10)
    for _ in range(10):
        must_append_entry(r, Entry(data=b"somedata"))
        r.send_append(2)
        assert read_messages(r) == []


def test_recv_msg_unreachable() -> None:
    s = MemoryStorage()
    s.append([Entry(term=1, index=i) for i in (1, 2, 3)])
    r = new_test_raft(1, [1, 2], 10, 1, s)
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    pr = r.trk.progress[2]
    pr.match = 3
    pr.become_replicate()
    pr.sent_entries(2, 0)  # optimistic next = 6
    r.step(Message(MT.MSG_UNREACHABLE, from_=2, to=1))
    assert pr.state == ProgressState.PROBE
    assert pr.next == pr.match + 1


# ---------------------------------------------------------------------- fast log backtracking


def _terms(*terms: int) -> list[Entry]:
    return [Entry(index=i + 1, term=t) for i, t in enumerate(terms)]


@pytest.mark.parametrize(
    ("leader_log", "follower_log", "follower_compact", "hint_term", "hint_index", "next_term", "next_index"),
    [
        ((1, 2, 2, 4, 4, 4, 4), (1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3), 0, 3, 7, 2, 3),
        ((1, 2, 2, 3, 4, 4, 4, 5), (1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3), 0, 3, 8, 3, 4),
        ((1, 1, 1, 1), (1, 2, 2, 4), 0, 1, 1, 1, 1),
        ((1, 1, 1, 1, 1, 1), (1, 2, 2, 4), 0, 1, 1, 1, 1),
        ((1, 1, 1, 1), (1, 2, 2, 4, 4, 4), 0, 1, 1, 1, 1),
        ((1, 1, 1, 4, 5), (1, 1, 1, 4), 0, 4, 4, 4, 4),
        ((2, 5, 5, 5, 5, 5, 5, 5, 5), (2, 4, 4, 4, 4, 4), 0, 4, 6, 2, 1),
        ((2, 2, 2, 2, 2), (2, 4, 4, 4, 4, 4, 4, 4), 0, 2, 1, 2, 1),
        ((1, 1, 3), (1, 1, 3, 3, 3), 5, 0, 3, 1, 2),
    ],
)
def test_fast_log_rejection(
    leader_log: tuple[int, ...],
    follower_log: tuple[int, ...],
    follower_compact: int,
    hint_term: int,
    hint_index: int,
    next_term: int,
    next_index: int,
) -> None:
    s1 = storage_with_peers(1, 2, 3)
    s1.append(_terms(*leader_log))
    s1.set_hard_state(HardState(term=leader_log[-1] - 1, commit=len(leader_log)))
    n1 = new_test_raft(1, [], 10, 1, s1)
    n1.become_candidate()  # term becomes the last log term
    n1.become_leader()

    s2 = storage_with_peers(1, 2, 3)
    s2.append(_terms(*follower_log))
    s2.set_hard_state(HardState(term=leader_log[-1], vote=1, commit=0))
    n2 = new_test_raft(2, [], 10, 1, s2)
    if follower_compact:
        s2.compact(follower_compact)

    n2.step(Message(MT.MSG_HEARTBEAT, from_=1, to=2))
    msgs = read_messages(n2)
    assert [m.type for m in msgs] == [MT.MSG_HEARTBEAT_RESP]
    n1.step(msgs[0])
    msgs = read_messages(n1)
    assert [m.type for m in msgs] == [MT.MSG_APP]
    n2.step(msgs[0])
    msgs = read_messages(n2)
    assert [m.type for m in msgs] == [MT.MSG_APP_RESP]
    assert msgs[0].reject
    assert msgs[0].log_term == hint_term
    assert msgs[0].reject_hint == hint_index
    n1.step(msgs[0])
    msgs = read_messages(n1)
    assert msgs[0].log_term == next_term
    assert msgs[0].index == next_index


def test_log_replication_with_reordered_message() -> None:
    r1 = new_test_raft(1, [1, 2])
    r1.become_candidate()
    r1.become_leader()
    read_messages(r1)
    r1.trk.progress[2].become_replicate()
    r2 = new_test_raft(2, [1, 2])

    def one(r: Raft) -> Message:
        ms = read_messages(r)
        assert len(ms) == 1
        return ms[0]

    must_append_entry(r1, Entry(data=b"somedata"))
    r1.send_append(2)
    req1 = one(r1)
    must_append_entry(r1, Entry(data=b"somedata"))
    r1.send_append(2)
    req2 = one(r1)
    # req2 arrives first: rejected with a hint of 0.
    r2.step(req2)
    resp2 = one(r2)
    assert resp2.reject and resp2.reject_hint == 0 and resp2.index == 2
    r2.step(req1)
    m = one(r2)
    assert not m.reject and m.index == 2
    r1.step(m)
    one(r1)
    assert r1.trk.progress[2].match == 2
    # 2 becomes unreachable: probe. The late rejection must not move next below match.
    r1.step(Message(MT.MSG_UNREACHABLE, from_=2, to=1))
    assert r1.trk.progress[2].state == ProgressState.PROBE
    r1.step(resp2)
    m = one(r1)
    assert m.index == r1.trk.progress[2].match


# ---------------------------------------------------------------------- snapshots


def _snap(index: int, term: int, voters: tuple[int, ...], learners: tuple[int, ...] = ()) -> Snapshot:
    return Snapshot(
        metadata=SnapshotMetadata(
            index=index, term=term, conf_state=ConfState(voters=voters, learners=learners)
        )
    )


def test_restore() -> None:
    s = _snap(11, 11, (1, 2, 3))
    sm = new_test_raft(1, [1, 2])
    assert sm.restore(s)
    assert sm.raft_log.last_index() == 11
    assert sm.raft_log.term(11) == 11
    assert sm.trk.voter_nodes() == [1, 2, 3]
    assert not sm.restore(s)
    # A restored node cannot campaign until the snapshot is persisted.
    assert not sm.promotable()
    sm.raft_log.stable_snap_to(11)
    assert sm.promotable()


def test_restore_with_learner() -> None:
    s = _snap(11, 11, (1, 2), (3,))
    sm = new_test_raft(3, [1, 2], 8, 2, learners=[3])
    assert sm.restore(s)
    assert sm.raft_log.last_index() == 11
    assert sm.trk.voter_nodes() == [1, 2]
    assert sm.trk.learner_nodes() == [3]
    assert not sm.trk.progress[1].is_learner and not sm.trk.progress[2].is_learner
    assert sm.trk.progress[3].is_learner
    assert not sm.restore(s)


def test_restore_voter_to_learner() -> None:
    sm = new_test_raft(3, [1, 2, 3])
    assert not sm.is_learner
    assert sm.restore(_snap(11, 11, (1, 2), (3,)))
    assert sm.is_learner


def test_restore_learner_promotion() -> None:
    sm = new_test_raft(3, [1, 2], learners=[3])
    assert sm.is_learner
    assert sm.restore(_snap(11, 11, (1, 2, 3)))
    assert not sm.is_learner


def test_restore_ignores_snapshot_without_self() -> None:
    sm = new_test_raft(3, [1, 2, 3])
    assert not sm.restore(_snap(11, 11, (1, 2)))
    assert sm.raft_log.last_index() == 0


def test_learner_receive_snapshot() -> None:
    s = _snap(11, 11, (1,), (2,))
    store1 = MemoryStorage()
    n1 = new_test_raft(1, [1], 10, 1, store1, learners=[2])
    n2 = new_test_raft(2, [1], learners=[2])
    n1.restore(s)
    store1.apply_snapshot(s)
    n1.raft_log.stable_snap_to(11)
    n1.raft_log.applied_to(n1.raft_log.committed)
    nt = Network(n1, n2)
    set_randomized_election_timeout(n1, n1.election_timeout)
    for _ in range(n1.election_timeout):
        n1.tick()
    nt.send(Message(MT.MSG_BEAT, from_=1, to=1))
    assert n2.raft_log.committed == n1.raft_log.committed


def test_restore_ignore_snapshot() -> None:
    sm = new_test_raft(1, [1, 2])
    sm.raft_log.append([Entry(term=1, index=i) for i in (1, 2, 3)])
    sm.raft_log.commit_to(1)
    # Stale snapshot: ignored.
    assert not sm.restore(_snap(1, 1, (1, 2)))
    assert sm.raft_log.committed == 1
    # Matching our log: commit fast-forwards, but the log stays.
    assert not sm.restore(_snap(2, 1, (1, 2)))
    assert sm.raft_log.committed == 2
    assert sm.raft_log.last_index() == 3


def test_provide_snap() -> None:
    storage = MemoryStorage()
    sm = new_test_raft(1, [1], 10, 1, storage)
    s = _snap(11, 11, (1, 2))
    sm.restore(s)
    storage.apply_snapshot(s)
    sm.raft_log.stable_snap_to(11)
    sm.become_candidate()
    sm.become_leader()
    # Force 2 to need the snapshot.
    sm.trk.progress[2].next = sm.raft_log.first_index()
    sm.trk.progress[2].recent_active = True
    sm.step(Message(MT.MSG_APP_RESP, from_=2, to=1, index=sm.trk.progress[2].next - 1, reject=True))
    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MSG_SNAP
    assert msgs[0].snapshot is not None and msgs[0].snapshot.metadata.index == 11
    assert sm.trk.progress[2].state == ProgressState.SNAPSHOT


def test_ignore_providing_snap() -> None:
    storage = MemoryStorage()
    sm = new_test_raft(1, [1], 10, 1, storage)
    s = _snap(11, 11, (1, 2))
    sm.restore(s)
    storage.apply_snapshot(s)
    sm.raft_log.stable_snap_to(11)
    sm.become_candidate()
    sm.become_leader()
    # 2 needs a snapshot but is not recently active: nothing is sent.
    sm.trk.progress[2].next = sm.raft_log.first_index() - 1
    sm.trk.progress[2].recent_active = False
    sm.step(prop(1))
    assert read_messages(sm) == []


def test_restore_from_snap_msg() -> None:
    sm = new_test_raft(2, [1, 2])
    sm.step(Message(MT.MSG_SNAP, from_=1, term=2, snapshot=_snap(11, 11, (1, 2))))
    assert sm.lead == 1
    assert sm.raft_log.last_index() == 11
    msgs = read_messages(sm)
    assert [(m.type, m.index) for m in msgs] == [(MT.MSG_APP_RESP, 11)]


def test_slow_node_restore() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    nt.isolate(3)
    for _ in range(101):
        nt.send(prop(1, b""))
    lead = nt.raft(1)
    next_ents(lead, nt.storage[1])
    nt.storage[1].create_snapshot(lead.raft_log.applied, ConfState(voters=tuple(lead.trk.voter_nodes())), b"")
    nt.storage[1].compact(lead.raft_log.applied)
    nt.recover()
    # Heartbeats until the leader knows 3 is active again (only then does it send snapshots).
    for _ in range(100):
        nt.send(Message(MT.MSG_BEAT, from_=1, to=1))
        if lead.trk.progress[3].recent_active:
            break
    assert lead.trk.progress[3].recent_active
    # Trigger the snapshot, then let the follower persist it and report.
    nt.send(prop(1, b""))
    follower = nt.raft(3)
    snap = follower.raft_log.unstable.snapshot
    assert snap is not None
    nt.storage[3].apply_snapshot(snap)
    follower.raft_log.stable_snap_to(snap.metadata.index)
    lead.step(Message(MT.MSG_SNAP_STATUS, from_=3))
    nt.send(prop(1, b""))
    assert follower.raft_log.committed == lead.raft_log.committed


# ---------------------------------------------------------------------- membership changes


def _cc_entry(cc: ConfChange) -> Entry:
    return Entry(type=EntryType.CONF_CHANGE_V2, data=cc.encode())


def test_step_config() -> None:
    r = new_test_raft(1, [1, 2])
    r.become_candidate()
    r.become_leader()
    index = r.raft_log.last_index()
    r.step(Message(MT.MSG_PROP, from_=1, to=1, entries=(_cc_entry(add_node(3)),)))
    assert r.raft_log.last_index() == index + 1
    assert r.pending_conf_index == index + 1


def test_step_ignore_config() -> None:
    # A second conf change while one is pending becomes an empty normal entry.
    r = new_test_raft(1, [1, 2])
    r.become_candidate()
    r.become_leader()
    r.step(Message(MT.MSG_PROP, from_=1, to=1, entries=(_cc_entry(add_node(3)),)))
    index = r.raft_log.last_index()
    pending = r.pending_conf_index
    r.step(Message(MT.MSG_PROP, from_=1, to=1, entries=(_cc_entry(add_node(4)),)))
    assert r.raft_log.entries(index + 1, NO_LIMIT) == [Entry(term=1, index=3)]
    assert r.pending_conf_index == pending


def test_refuse_leave_joint_when_not_joint_and_enter_when_joint() -> None:
    r = new_test_raft(1, [1, 2])
    r.become_candidate()
    r.become_leader()
    r.raft_log.applied_to(r.raft_log.committed)
    r.pending_conf_index = 0
    before = r.raft_log.last_index()
    r.step(Message(MT.MSG_PROP, from_=1, to=1, entries=(_cc_entry(ConfChange()),)))
    ents = r.raft_log.entries(before + 1, NO_LIMIT)
    assert [e.type for e in ents] == [EntryType.NORMAL]


@pytest.mark.parametrize(("add_entry", "wpending"), [(False, 0), (True, 1)])
def test_new_leader_pending_config(add_entry: bool, wpending: int) -> None:
    r = new_test_raft(1, [1, 2])
    if add_entry:
        must_append_entry(r, Entry(type=EntryType.NORMAL))
    r.become_candidate()
    r.become_leader()
    assert r.pending_conf_index == wpending


def test_add_node() -> None:
    r = new_test_raft(1, [1])
    r.apply_conf_change(add_node(2))
    assert r.trk.voter_nodes() == [1, 2]


def test_add_learner() -> None:
    r = new_test_raft(1, [1])

    def learner(nid: int) -> bool:
        return r.trk.progress[nid].is_learner

    def self_learner() -> bool:
        return r.is_learner

    r.apply_conf_change(add_learner(2))
    assert not self_learner()
    assert r.trk.learner_nodes() == [2]
    assert learner(2)
    # Promote.
    r.apply_conf_change(add_node(2))
    assert not learner(2)
    # Demote ourselves.
    r.apply_conf_change(add_learner(1))
    assert learner(1)
    assert self_learner()
    r.apply_conf_change(add_node(1))
    assert not learner(1)
    assert not self_learner()


def test_add_node_check_quorum() -> None:
    r = new_test_raft(1, [1], check_quorum=True)
    r.become_candidate()
    r.become_leader()
    for _ in range(r.election_timeout - 1):
        r.tick()
    r.apply_conf_change(add_node(2))
    # This tick reaches the election timeout: check quorum runs, the new node counts as active.
    r.tick()
    assert r.state == LEADER
    # After another timeout without hearing from 2, the leader steps down.
    for _ in range(r.election_timeout):
        r.tick()
    assert r.state == FOLLOWER


def test_remove_node() -> None:
    r = new_test_raft(1, [1, 2])
    r.apply_conf_change(remove_node(2))
    assert r.trk.voter_nodes() == [1]
    # Removing the last voter is refused (broken invariant).
    with pytest.raises(RaftPanic):
        r.apply_conf_change(remove_node(1))


def test_remove_learner() -> None:
    r = new_test_raft(1, [1], learners=[2])
    r.apply_conf_change(remove_node(2))
    assert r.trk.voter_nodes() == [1]
    assert r.trk.learner_nodes() == []
    with pytest.raises(RaftPanic):
        r.apply_conf_change(remove_node(1))


@pytest.mark.parametrize(("peers", "wp"), [([1], True), ([1, 2, 3], True), ([], False), ([2, 3], False)])
def test_promotable(peers: list[int], wp: bool) -> None:
    assert new_test_raft(1, peers, 5, 1).promotable() == wp


@pytest.mark.parametrize("ids", [[1, 2, 3], [3, 2, 1]])
def test_raft_nodes(ids: list[int]) -> None:
    assert new_test_raft(1, ids).trk.voter_nodes() == [1, 2, 3]


@pytest.mark.parametrize("pre_vote", [False, True])
def test_campaign_while_leader(pre_vote: bool) -> None:
    r = new_test_raft(1, [1], 5, 1, pre_vote=pre_vote)
    assert r.state == FOLLOWER
    r.step(Message(MT.MSG_HUP, from_=1, to=1))
    assert r.state == LEADER
    term = r.term
    r.step(Message(MT.MSG_HUP, from_=1, to=1))
    assert r.state == LEADER
    assert r.term == term


def test_commit_after_remove_node() -> None:
    s = storage_with_peers(1, 2)
    r = new_test_raft(1, [], 5, 1, s)
    r.become_candidate()
    r.become_leader()
    cc = remove_node(2)
    r.step(Message(MT.MSG_PROP, entries=(_cc_entry(cc),)))
    # Uncommitted: 2 has not acked.
    assert next_ents(r, s) == []
    cc_index = r.raft_log.last_index()
    r.step(Message(MT.MSG_PROP, entries=(Entry(data=b"hello"),)))
    # 2 acks the conf change: the empty entry and the conf change commit.
    r.step(Message(MT.MSG_APP_RESP, from_=2, index=cc_index))
    ents = next_ents(r, s)
    assert [(e.type, e.data) for e in ents] == [
        (EntryType.NORMAL, b""),
        (EntryType.CONF_CHANGE_V2, cc.encode()),
    ]
    # Applying the removal shrinks the quorum to 1: "hello" commits.
    r.apply_conf_change(cc)
    ents = next_ents(r, s)
    assert [(e.type, e.data) for e in ents] == [(EntryType.NORMAL, b"hello")]


def test_removed_leader_steps_down() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    lead = nt.raft(1)
    lead.apply_conf_change(remove_node(1))
    assert lead.state == FOLLOWER
    assert not lead.promotable()
    with pytest.raises(ProposalDropped):
        lead.step(prop(1))
    # And it never campaigns again.
    for _ in range(100):
        lead.tick()
    assert lead.state == FOLLOWER
    assert not [m for m in read_messages(lead) if m.type in (MT.MSG_VOTE, MT.MSG_PRE_VOTE)]


def test_demoted_leader_steps_down() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    lead = nt.raft(1)
    lead.apply_conf_change(add_learner(1))
    assert lead.state == FOLLOWER
    assert lead.is_learner


def test_conf_change_probes_new_node() -> None:
    r = new_test_raft(1, [1])
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    r.apply_conf_change(add_node(2))
    msgs = read_messages(r)
    assert [(m.type, m.to) for m in msgs] == [(MT.MSG_APP, 2)]


def test_campaign_refused_with_unapplied_conf_change() -> None:
    s = storage_with_peers(1, 2)
    s.append([Entry(term=1, index=1, type=EntryType.CONF_CHANGE_V2, data=add_node(3).encode())])
    s.set_hard_state(HardState(term=1, commit=1))
    r = new_test_raft(1, [], 10, 1, s)
    r.step(Message(MT.MSG_HUP, from_=1, to=1))
    assert r.state == FOLLOWER
    assert read_messages(r) == []
    r.raft_log.applied_to(1)
    r.step(Message(MT.MSG_HUP, from_=1, to=1))
    assert r.state == CANDIDATE


def test_auto_leave_joint_config() -> None:
    # A leader that applied an auto-leave joint config proposes leaving it on its own.
    s = storage_with_peers(1)
    r = new_test_raft(1, [], 10, 1, s)
    r.become_candidate()
    r.become_leader()
    cc = ConfChange(
        changes=(ConfChangeSingle(ConfChangeType.ADD_LEARNER_NODE, 2),),
        transition=ConfChangeTransition.JOINT_IMPLICIT,
    )
    r.step(Message(MT.MSG_PROP, entries=(_cc_entry(cc),)))
    ents = next_ents(r, s)
    cs = r.apply_conf_change(ConfChange.decode(ents[-1].data))
    assert cs.auto_leave and cs.voters_outgoing == (1,)
    before = r.raft_log.last_index()
    r.applied_to(ents[-1].index)
    ents = r.raft_log.entries(before + 1, NO_LIMIT)
    assert [(e.type, e.data) for e in ents] == [(EntryType.CONF_CHANGE_V2, b"")]
    # It commits (1 alone is a quorum of both halves) and leaving works.
    ents = next_ents(r, s)
    cs = r.apply_conf_change(ConfChange.decode(ents[-1].data))
    assert cs == ConfState(voters=(1,), learners=(2,))


# ---------------------------------------------------------------------- leadership transfer


def _check_transfer_state(r: Raft, state: StateType, lead: int) -> None:
    assert r.state == state
    assert r.lead == lead
    assert r.lead_transferee == NONE


def test_leader_transfer_to_up_to_date_node() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    lead = nt.raft(1)
    assert lead.lead == 1
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=2, to=1))
    _check_transfer_state(lead, FOLLOWER, 2)
    # And back.
    nt.send(prop(1, b""))
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=1, to=2))
    _check_transfer_state(lead, LEADER, 1)


def test_leader_transfer_to_up_to_date_node_from_follower() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    lead = nt.raft(1)
    # Asked on the follower: forwarded to the leader.
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=2, to=2))
    _check_transfer_state(lead, FOLLOWER, 2)
    nt.send(prop(1, b""))
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=1, to=1))
    _check_transfer_state(lead, LEADER, 1)


def test_leader_transfer_with_check_quorum() -> None:
    nt = Network(None, None, None)
    for i in (1, 2, 3):
        r = nt.raft(i)
        r.check_quorum = True
        set_randomized_election_timeout(r, r.election_timeout + i)
    f = nt.raft(2)
    for _ in range(f.election_timeout):
        f.tick()
    nt.send(hup(1))
    lead = nt.raft(1)
    assert lead.lead == 1
    # The transfer's vote request is forced through the followers' leases.
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=2, to=1))
    _check_transfer_state(lead, FOLLOWER, 2)
    nt.send(prop(1, b""))
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=1, to=2))
    _check_transfer_state(lead, LEADER, 1)


def test_leader_transfer_to_slow_follower() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    nt.isolate(3)
    nt.send(prop(1, b""))
    nt.recover()
    lead = nt.raft(1)
    assert lead.trk.progress[3].match == 1
    # The leader first catches 3 up, then sends MsgTimeoutNow.
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=3, to=1))
    _check_transfer_state(lead, FOLLOWER, 3)


def test_leader_transfer_after_snapshot() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    nt.isolate(3)
    nt.send(prop(1, b""))
    lead = nt.raft(1)
    next_ents(lead, nt.storage[1])
    nt.storage[1].create_snapshot(lead.raft_log.applied, ConfState(voters=tuple(lead.trk.voter_nodes())), b"")
    nt.storage[1].compact(lead.raft_log.applied)
    nt.recover()
    assert lead.trk.progress[3].match == 1
    filtered: list[Message] = []

    def hook(m: Message) -> bool:
        # Hold 3's answer to the snapshot until it persisted the snapshot.
        if m.type != MT.MSG_APP_RESP or m.from_ != 3 or m.reject:
            return True
        filtered.append(m)
        return False

    nt.msg_hook = hook
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=3, to=1))
    assert lead.state == LEADER
    assert filtered
    follower = nt.raft(3)
    snap = follower.raft_log.unstable.snapshot
    assert snap is not None
    nt.storage[3].apply_snapshot(snap)
    follower.raft_log.stable_snap_to(snap.metadata.index)
    follower.applied_to(snap.metadata.index)
    nt.msg_hook = None
    nt.send(filtered[0])
    _check_transfer_state(lead, FOLLOWER, 3)


def test_leader_transfer_to_self() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    lead = nt.raft(1)
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=1, to=1))
    _check_transfer_state(lead, LEADER, 1)


def test_leader_transfer_to_non_existing_node() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    lead = nt.raft(1)
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=4, to=1))
    _check_transfer_state(lead, LEADER, 1)


def test_leader_transfer_to_learner_ignored() -> None:
    n1 = new_test_raft(1, [1], learners=[2])
    n2 = new_test_raft(2, [1], learners=[2])
    nt = Network(n1, n2)
    nt.send(hup(1))
    assert n1.state == LEADER
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=2, to=1))
    _check_transfer_state(n1, LEADER, 1)


def test_leader_transfer_timeout() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    nt.isolate(3)
    lead = nt.raft(1)
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=3, to=1))
    assert lead.lead_transferee == 3
    for _ in range(lead.heartbeat_timeout):
        lead.tick()
    assert lead.lead_transferee == 3
    # Aborted after an election timeout.
    for _ in range(lead.election_timeout - lead.heartbeat_timeout):
        lead.tick()
    _check_transfer_state(lead, LEADER, 1)


def test_leader_transfer_ignore_proposal() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    nt.isolate(3)
    lead = nt.raft(1)
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=3, to=1))
    assert lead.lead_transferee == 3
    nt.send(prop(1, b""))
    with pytest.raises(ProposalDropped):
        lead.step(prop(1, b""))
    assert lead.trk.progress[1].match == 1


def test_leader_transfer_receive_higher_term_vote() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    nt.isolate(3)
    lead = nt.raft(1)
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=3, to=1))
    assert lead.lead_transferee == 3
    nt.send(Message(MT.MSG_HUP, from_=2, to=2, index=1, term=2))
    _check_transfer_state(lead, FOLLOWER, 2)


def test_leader_transfer_remove_node() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    nt.ignore(MT.MSG_TIMEOUT_NOW)
    lead = nt.raft(1)
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=3, to=1))
    assert lead.lead_transferee == 3
    lead.apply_conf_change(remove_node(3))
    _check_transfer_state(lead, LEADER, 1)


def test_leader_transfer_back() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    nt.isolate(3)
    lead = nt.raft(1)
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=3, to=1))
    assert lead.lead_transferee == 3
    # Transferring back to ourselves cancels the transfer.
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=1, to=1))
    _check_transfer_state(lead, LEADER, 1)


def test_leader_transfer_second_transfer_to_another_node() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    nt.isolate(3)
    lead = nt.raft(1)
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=3, to=1))
    assert lead.lead_transferee == 3
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=2, to=1))
    _check_transfer_state(lead, FOLLOWER, 2)


def test_leader_transfer_second_transfer_to_same_node() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    nt.isolate(3)
    lead = nt.raft(1)
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=3, to=1))
    assert lead.lead_transferee == 3
    for _ in range(lead.heartbeat_timeout):
        lead.tick()
    # A repeated request does not extend the timeout.
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=3, to=1))
    for _ in range(lead.election_timeout - lead.heartbeat_timeout):
        lead.tick()
    _check_transfer_state(lead, LEADER, 1)


def test_transfer_non_member() -> None:
    r = new_test_raft(1, [2, 3, 4], 5, 1)
    r.step(Message(MT.MSG_TIMEOUT_NOW, from_=2, to=1))
    r.step(Message(MT.MSG_VOTE_RESP, from_=2, to=1))
    r.step(Message(MT.MSG_VOTE_RESP, from_=3, to=1))
    assert r.state == FOLLOWER


def test_learner_campaign() -> None:
    n1 = new_test_raft(1, [1])
    n1.apply_conf_change(add_learner(2))
    n2 = new_test_raft(2, [1])
    n2.apply_conf_change(add_learner(2))
    nt = Network(n1, n2)
    nt.send(hup(2))
    assert n2.is_learner
    assert n2.state == FOLLOWER
    nt.send(hup(1))
    assert n1.state == LEADER and n1.lead == 1
    # A learner ignores MsgTimeoutNow.
    nt.send(Message(MT.MSG_TIMEOUT_NOW, from_=1, to=2))
    assert n2.state == FOLLOWER


# ---------------------------------------------------------------------- pre-vote


def _pre_vote_three() -> tuple[Raft, Raft, Raft, Network]:
    n1 = new_test_raft(1, [1, 2, 3])
    n2 = new_test_raft(2, [1, 2, 3])
    n3 = new_test_raft(3, [1, 2, 3])
    for n in (n1, n2, n3):
        n.become_follower(1, NONE)
        n.pre_vote = True
    return n1, n2, n3, Network(n1, n2, n3)


def test_node_with_smaller_term_can_complete_election() -> None:
    n1, n2, n3, nt = _pre_vote_three()
    nt.cut(1, 3)
    nt.cut(2, 3)
    nt.send(hup(1))
    assert n1.state == LEADER
    assert n2.state == FOLLOWER
    nt.send(hup(3))
    assert n3.state == PRE_CANDIDATE
    nt.send(hup(2))
    # 1 and 2 moved to term 3; 3 is still at term 1.
    assert (n1.term, n2.term, n3.term) == (3, 3, 1)
    assert (n1.state, n2.state, n3.state) == (FOLLOWER, LEADER, PRE_CANDIDATE)
    # Bring back 3 and kill 2: 3 (smaller term) and 1 can still elect someone.
    nt.recover()
    nt.cut(2, 1)
    nt.cut(2, 3)
    nt.send(hup(3))
    nt.send(hup(1))
    assert LEADER in (n1.state, n3.state)


def test_pre_vote_with_split_vote() -> None:
    _n1, n2, n3, nt = _pre_vote_three()
    nt.send(hup(1))
    # Simulate leader down; 2 and 3 campaign at the same time and split the vote.
    nt.isolate(1)
    nt.send(hup(2), hup(3))
    assert (n2.term, n3.term) == (3, 3)
    assert (n2.state, n3.state) == (CANDIDATE, CANDIDATE)
    # Next round: 2 wins.
    nt.send(hup(2))
    assert (n2.term, n3.term) == (4, 4)
    assert (n2.state, n3.state) == (LEADER, FOLLOWER)


def test_pre_vote_with_check_quorum() -> None:
    n1, n2, n3, nt = _pre_vote_three()
    for n in (n1, n2, n3):
        n.check_quorum = True
    nt.send(hup(1))
    nt.isolate(1)
    assert (n1.state, n2.state, n3.state) == (LEADER, FOLLOWER, FOLLOWER)
    # 3's pre-campaign fails (2 is within its leader's lease) but leaves 3 without a leader,
    # so it grants 2's pre-vote and vote: the isolated leader is replaced.
    nt.send(hup(3))
    nt.send(hup(2))
    assert (n2.state, n3.state) == (LEADER, FOLLOWER)


def _pre_vote_migration_cluster() -> tuple[Raft, Raft, Raft, Network]:
    n1 = new_test_raft(1, [1, 2, 3])
    n2 = new_test_raft(2, [1, 2, 3])
    n3 = new_test_raft(3, [1, 2, 3])
    for n in (n1, n2, n3):
        n.become_follower(1, NONE)
    n1.pre_vote = True
    n2.pre_vote = True
    # 3 does not have pre-vote enabled yet.
    nt = Network(n1, n2, n3)
    nt.send(hup(1))
    nt.isolate(3)
    nt.send(prop(1, b"some data"))
    nt.send(hup(3))
    nt.send(hup(3))
    assert (n1.state, n2.state, n3.state) == (LEADER, FOLLOWER, CANDIDATE)
    assert (n1.term, n2.term, n3.term) == (2, 2, 4)
    # Enable pre-vote on 3 and heal.
    n3.pre_vote = True
    nt.recover()
    return n1, n2, n3, nt


def test_pre_vote_migration_can_complete_election() -> None:
    _, n2, n3, nt = _pre_vote_migration_cluster()
    nt.isolate(1)
    nt.send(hup(3))
    nt.send(hup(2))
    # 3's higher term but shorter log: its pre-vote fails; 2's pre-vote is rejected by 3 at
    # term 4, but that rejection moves 2 to term 4...
    assert n2.state == FOLLOWER
    assert n3.state == PRE_CANDIDATE
    nt.send(hup(3))
    nt.send(hup(2))
    # ...so 2 wins this round.
    assert (n2.state, n3.state) == (LEADER, FOLLOWER)


def test_pre_vote_migration_with_free_stuck_pre_candidate() -> None:
    n1, n2, n3, nt = _pre_vote_migration_cluster()
    nt.send(hup(3))
    assert (n1.state, n2.state, n3.state) == (LEADER, FOLLOWER, PRE_CANDIDATE)
    nt.send(hup(3))
    assert (n1.state, n2.state, n3.state) == (LEADER, FOLLOWER, PRE_CANDIDATE)
    # The leader's heartbeat is answered at 3's higher term: the leader steps down, freeing 3.
    nt.send(Message(MT.MSG_HEARTBEAT, from_=1, to=3, term=n1.term))
    assert n1.state == FOLLOWER
    assert n3.term == n1.term


# ---------------------------------------------------------------------- proposals dropped


def test_proposal_dropped_without_leader() -> None:
    r = new_test_raft(1, [1, 2, 3])
    with pytest.raises(ProposalDropped):
        r.step(prop(1))
    r.become_candidate()
    with pytest.raises(ProposalDropped):
        r.step(prop(1))
    r.become_follower(2, NONE)
    r.become_pre_candidate()
    with pytest.raises(ProposalDropped):
        r.step(prop(1))


def test_proposal_forwarding_disabled() -> None:
    nt = Network(None, None, None, config_func=lambda c: setattr(c, "disable_proposal_forwarding", True))
    nt.send(hup(1))
    with pytest.raises(ProposalDropped):
        nt.raft(2).step(prop(2))
    assert read_messages(nt.raft(2)) == []


def test_proposal_forwarded_to_leader() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    f = nt.raft(2)
    f.step(prop(2, b"fwd"))
    msgs = read_messages(f)
    assert [(m.type, m.to, m.from_, m.term) for m in msgs] == [(MT.MSG_PROP, 1, 2, 0)]


# ---------------------------------------------- leader side of snapshots (raft_snap_test.go)


def _leader_after_snapshot(peers: tuple[int, ...]) -> Raft:
    sm = new_test_raft(1, [], 10, 1, storage_with_peers(*peers))
    sm.restore(_snap(11, 11, (1, 2)))
    sm.become_candidate()
    sm.become_leader()
    return sm


def test_sending_snapshot_set_pending_snapshot() -> None:
    sm = _leader_after_snapshot((1,))
    sm.trk.progress[2].next = sm.raft_log.first_index()
    sm.step(Message(MT.MSG_APP_RESP, from_=2, to=1, index=sm.trk.progress[2].next - 1, reject=True))
    assert sm.trk.progress[2].pending_snapshot == 11


def test_pending_snapshot_pause_replication() -> None:
    sm = _leader_after_snapshot((1, 2))
    sm.trk.progress[2].become_snapshot(11)
    sm.step(prop(1))
    assert read_messages(sm) == []


def test_snapshot_failure() -> None:
    sm = _leader_after_snapshot((1, 2))
    sm.trk.progress[2].next = 1
    sm.trk.progress[2].become_snapshot(11)
    sm.step(Message(MT.MSG_SNAP_STATUS, from_=2, to=1, reject=True))
    pr = sm.trk.progress[2]
    assert pr.pending_snapshot == 0
    assert pr.next == 1
    assert pr.msg_app_flow_paused


def test_snapshot_succeed() -> None:
    sm = _leader_after_snapshot((1, 2))
    sm.trk.progress[2].next = 1
    sm.trk.progress[2].become_snapshot(11)
    sm.step(Message(MT.MSG_SNAP_STATUS, from_=2, to=1, reject=False))
    pr = sm.trk.progress[2]
    assert pr.pending_snapshot == 0
    assert pr.next == 12
    assert pr.msg_app_flow_paused


def test_snapshot_abort() -> None:
    # An append response at or past the snapshot index ends the snapshot state early.
    sm = _leader_after_snapshot((1, 2))
    sm.trk.progress[2].next = 1
    sm.trk.progress[2].become_snapshot(11)
    sm.step(Message(MT.MSG_APP_RESP, from_=2, to=1, index=11))
    pr = sm.trk.progress[2]
    assert pr.pending_snapshot == 0
    assert pr.next == 13
    assert pr.inflights.count() == 1


def test_snapshot_temporarily_unavailable_sends_nothing() -> None:
    class LazyStorage(MemoryStorage):
        def snapshot(self) -> Snapshot:
            raise SnapshotTemporarilyUnavailable()

    s = LazyStorage()
    s.append([Entry(index=i, term=1) for i in range(1, 6)])
    s.set_hard_state(HardState(term=1, commit=5))
    s._snapshot = _snap(0, 0, (1, 2))
    s.compact(4)
    sm = new_test_raft(1, [], 10, 1, s)
    sm.become_candidate()
    sm.become_leader()
    read_messages(sm)
    pr = sm.trk.progress[2]
    pr.recent_active = True
    pr.next = 2  # needs compacted entries
    sm.send_append(2)
    assert read_messages(sm) == []
    assert pr.state == ProgressState.PROBE


def test_leader_transfer_forwarded_by_another_follower() -> None:
    # Asked on follower 2 to transfer to 3: the forwarded request still names 3.
    nt = Network(None, None, None)
    nt.send(hup(1))
    lead = nt.raft(1)
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=3, to=2))
    _check_transfer_state(lead, FOLLOWER, 3)
    assert nt.raft(3).state == LEADER


def test_read_index_forwarded_by_follower_answers_follower() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    nt.send(prop(1, b""))
    f = nt.raft(2)
    nt.send(Message(MT.MSG_READ_INDEX, to=2, entries=(Entry(data=b"rctx"),)))
    assert f.read_states == [ReadState(index=nt.raft(1).raft_log.committed, request_ctx=b"rctx")]
    assert nt.raft(1).read_states == []


def test_restore_with_voters_outgoing() -> None:
    s = Snapshot(
        metadata=SnapshotMetadata(
            index=11, term=11, conf_state=ConfState(voters=(2, 3, 4), voters_outgoing=(1, 2, 3))
        )
    )
    sm = new_test_raft(1, [], 10, 1, storage_with_peers(1, 2))
    assert sm.restore(s)
    assert sm.raft_log.last_index() == 11
    assert sm.raft_log.term(11) == 11
    assert sm.trk.voter_nodes() == [1, 2, 3, 4]
    assert not sm.restore(s)
    # With the snapshot not yet persisted the node must not campaign.
    for _ in range(sm.randomized_election_timeout):
        sm.tick()
    assert sm.state == FOLLOWER


def test_leader_transfer_demote_node() -> None:
    nt = Network(None, None, None)
    nt.send(hup(1))
    nt.ignore(MT.MSG_TIMEOUT_NOW)
    lead = nt.raft(1)
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=3, to=1))
    assert lead.lead_transferee == 3
    # Demote 3 through a joint config; the transfer is aborted.
    lead.apply_conf_change(
        ConfChange(
            changes=(
                ConfChangeSingle(ConfChangeType.REMOVE_NODE, 3),
                ConfChangeSingle(ConfChangeType.ADD_LEARNER_NODE, 3),
            )
        )
    )
    lead.apply_conf_change(ConfChange())
    _check_transfer_state(lead, LEADER, 1)


def test_conf_change_check_before_campaign() -> None:
    nt = Network(None, None, None)
    n1 = nt.raft(1)
    n2 = nt.raft(2)
    nt.send(hup(1))
    assert n1.state == LEADER
    # Commit (without applying) a conf change everywhere.
    nt.send(Message(MT.MSG_PROP, from_=1, to=1, entries=(_cc_entry(remove_node(2)),)))
    # 2 cannot campaign while the committed conf change is unapplied...
    for _ in range(n2.randomized_election_timeout):
        n2.tick()
    assert n2.state == FOLLOWER
    # ...not even for a leadership transfer.
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=2, to=1))
    assert n1.state == LEADER
    assert n2.state == FOLLOWER
    # Abort the transfer, apply on 2, and transfer again.
    for _ in range(n1.election_timeout):
        n1.tick()
    next_ents(n2, nt.storage[2])
    nt.send(Message(MT.MSG_TRANSFER_LEADER, from_=2, to=1))
    assert n1.state == FOLLOWER
    assert n2.state == LEADER
    next_ents(n1, nt.storage[1])
    for _ in range(n1.randomized_election_timeout):
        n1.tick()
    assert n1.state == CANDIDATE


# ---------------------------------------------------------------------- corner cases


def test_candidate_receives_snapshot_becomes_follower() -> None:
    r = new_test_raft(2, [1, 2, 3])
    r.become_candidate()
    r.step(Message(MT.MSG_SNAP, from_=1, to=2, term=r.term, snapshot=_snap(11, 11, (1, 2, 3))))
    assert r.state == FOLLOWER
    assert r.lead == 1
    assert r.raft_log.last_index() == 11


def test_candidate_ignores_timeout_now() -> None:
    r = new_test_raft(1, [1, 2, 3])
    r.become_candidate()
    term = r.term
    read_messages(r)
    r.step(Message(MT.MSG_TIMEOUT_NOW, from_=2, to=1, term=term))
    assert r.state == CANDIDATE
    assert r.term == term
    assert read_messages(r) == []


def test_conf_change_refused_while_joint() -> None:
    r = new_test_raft(1, [1])
    r.become_candidate()
    r.become_leader()
    r.apply_conf_change(
        ConfChange(
            changes=(ConfChangeSingle(ConfChangeType.ADD_LEARNER_NODE, 2),),
            transition=ConfChangeTransition.JOINT_EXPLICIT,
        )
    )
    r.raft_log.applied_to(r.raft_log.committed)
    before = r.raft_log.last_index()
    # Only leaving the joint config is accepted now.
    r.step(Message(MT.MSG_PROP, from_=1, to=1, entries=(_cc_entry(add_node(3)),)))
    ents = r.raft_log.entries(before + 1, NO_LIMIT)
    assert [(e.type, e.data) for e in ents] == [(EntryType.NORMAL, b"")]
    r.raft_log.applied_to(r.raft_log.committed)
    r.step(Message(MT.MSG_PROP, from_=1, to=1, entries=(_cc_entry(ConfChange()),)))
    assert r.raft_log.entries(before + 2, NO_LIMIT)[0].type == EntryType.CONF_CHANGE_V2


def test_restore_as_leader_refused() -> None:
    r = new_test_raft(1, [1, 2])
    r.become_candidate()
    r.become_leader()
    term = r.term
    assert not r.restore(_snap(11, 11, (1, 2)))
    assert r.state == FOLLOWER
    assert r.term == term + 1


def test_load_state_out_of_range_panics() -> None:
    r = new_test_raft(1, [1])
    with pytest.raises(RaftPanic):
        r.load_state(HardState(term=1, commit=5))


def test_send_checks_terms() -> None:
    r = new_test_raft(1, [1, 2])
    with pytest.raises(RaftPanic):
        r.send(Message(MT.MSG_VOTE, to=2))
    with pytest.raises(RaftPanic):
        r.send(Message(MT.MSG_APP, to=2, term=5))


def test_peers_and_conf_state_both_given_panics() -> None:
    with pytest.raises(RaftPanic):
        new_test_raft(1, [1, 2], 10, 1, storage_with_peers(1, 2))


def test_empty_proposal_panics() -> None:
    r = new_test_raft(1, [1])
    r.become_candidate()
    r.become_leader()
    with pytest.raises(RaftPanic):
        r.step(Message(MT.MSG_PROP, from_=1, to=1))


def test_stale_pre_vote_is_rejected_with_our_term() -> None:
    r = new_test_raft(1, [1, 2, 3])
    r.become_follower(5, NONE)
    r.step(Message(MT.MSG_PRE_VOTE, from_=2, to=1, term=3, log_term=3, index=10))
    assert read_messages(r) == [Message(MT.MSG_PRE_VOTE_RESP, from_=1, to=2, term=5, reject=True)]


def test_stale_append_answered_with_check_quorum_only() -> None:
    # With check-quorum (or pre-vote) a stale leader's append is answered with our term.
    for check_quorum, want in ((False, []), (True, [MT.MSG_APP_RESP])):
        r = new_test_raft(1, [1, 2, 3], check_quorum=check_quorum)
        r.become_follower(5, NONE)
        r.step(Message(MT.MSG_APP, from_=2, to=1, term=3))
        msgs = read_messages(r)
        assert [m.type for m in msgs] == want
        assert all(m.term == 5 for m in msgs)


def test_peer_list_follows_config_changes() -> None:
    # Swap members in and out many times with maps of the same size; the leader must always
    # address exactly the current members (a cache keyed on id() of freed maps once broke this).
    r = new_test_raft(1, [1, 2, 3])
    r.become_candidate()
    r.become_leader()
    for i in range(200):
        victim = sorted(set(r.trk.progress) - {1})[0]
        r.apply_conf_change(remove_node(victim))
        r.apply_conf_change(add_node(10 + i))
        want = sorted(set(r.trk.progress) - {1})
        assert r._peer_ids() == want
        read_messages(r)
        r.bcast_heartbeat()
        assert sorted(m.to for m in read_messages(r)) == want
