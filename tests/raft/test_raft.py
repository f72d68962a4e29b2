"""Behaviour of the raft state machine, ported from etcd's raft_test.go (and etcd-io/raft)."""

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
    voted_with_config,
)

from petcd.raft.errors import ProposalDropped
from petcd.raft.raft import Raft
from petcd.raft.storage import MemoryStorage
from petcd.raft.tracker import ProgressState
from petcd.raft.types import (
    NONE,
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    Entry,
    HardState,
    Message,
    MessageType,
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
