"""The RawNode / Ready / advance contract, ported from etcd's rawnode_test.go."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from raft_net import RawCluster, new_test_config, new_test_raw_node, storage_with_peers

from petcd.raft.errors import ProposalDropped, RaftError, StepLocalMsg, StepPeerNotFound
from petcd.raft.rawnode import RawNode
from petcd.raft.storage import MemoryStorage
from petcd.raft.types import (
    EMPTY_HARD_STATE,
    LOCAL_MESSAGES,
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
    Peer,
    ReadState,
    Ready,
    Snapshot,
    SnapshotMetadata,
    SnapshotStatus,
    SoftState,
    StateType,
)

MT = MessageType


def cc_of(
    *changes: tuple[ConfChangeType, int], transition: ConfChangeTransition = ConfChangeTransition.AUTO
) -> ConfChange:
    return ConfChange(changes=tuple(ConfChangeSingle(t, n) for t, n in changes), transition=transition)


def elect_single(rn: RawNode, s: MemoryStorage) -> None:
    """Campaign a single-voter RawNode to leadership, handling its Readies."""
    rn.campaign()
    while True:
        rd = rn.ready()
        s.append(rd.entries)
        if rd.soft_state is not None and rd.soft_state.lead == rn.raft.id:
            rn.advance(rd)
            return
        rn.advance(rd)


def handle_all(rn: RawNode, s: MemoryStorage) -> list[Entry]:
    """Handle Readies until none is left; return the committed entries, applying conf changes."""
    committed: list[Entry] = []
    while rn.has_ready():
        rd = rn.ready()
        if not rd.snapshot.is_empty():
            s.apply_snapshot(rd.snapshot)
        s.append(rd.entries)
        if not rd.hard_state.is_empty():
            s.set_hard_state(rd.hard_state)
        for e in rd.committed_entries:
            committed.append(e)
            if e.type == EntryType.CONF_CHANGE_V2:
                rn.apply_conf_change(ConfChange.decode(e.data))
        rn.advance(rd)
    return committed


# ---------------------------------------------------------------------- a working cluster


def test_three_nodes_elect_and_commit() -> None:
    c = RawCluster([1, 2, 3])
    c.nodes[1].campaign()
    c.stabilize()
    assert c.leader() == 1
    for nid in (1, 2, 3):
        assert c.nodes[nid].basic_status().lead == 1
    c.nodes[1].propose(b"a")
    c.nodes[2].propose(b"b")  # forwarded to the leader
    c.stabilize()
    for nid in (1, 2, 3):
        datas = [e.data for e in c.applied[nid] if e.data]
        assert datas == [b"a", b"b"], nid
        assert c.storage[nid].hard_state.commit == 3
        assert c.nodes[nid].raft.raft_log.applied == 3


def test_three_nodes_elect_by_ticking() -> None:
    c = RawCluster([1, 2, 3], pre_vote=True, check_quorum=True)
    for _ in range(50):
        for rn in c.nodes.values():
            rn.tick()
        c.stabilize()
        if c.leader():
            break
    lead = c.leader()
    assert lead != NONE
    # Stable under further ticking: heartbeats keep followers from campaigning.
    term = c.nodes[lead].raft.term
    for _ in range(100):
        for rn in c.nodes.values():
            rn.tick()
        c.stabilize()
    assert c.leader() == lead
    assert c.nodes[lead].raft.term == term


def test_three_nodes_leader_failover() -> None:
    c = RawCluster([1, 2, 3])
    c.nodes[1].campaign()
    c.stabilize()
    c.nodes[1].propose(b"x")
    c.stabilize()
    # Cut node 1 off; the others elect a new leader which keeps the committed entry.
    c.drop = lambda m: 1 in (m.from_, m.to)
    for _ in range(40):
        for nid in (2, 3):
            c.nodes[nid].tick()
        c.stabilize()
        if c.nodes[2].raft.state == StateType.LEADER or c.nodes[3].raft.state == StateType.LEADER:
            break
    new_lead = 2 if c.nodes[2].raft.state == StateType.LEADER else 3
    assert c.nodes[new_lead].raft.state == StateType.LEADER
    c.nodes[new_lead].propose(b"y")
    c.stabilize()
    other = 5 - new_lead
    assert [e.data for e in c.applied[other] if e.data] == [b"x", b"y"]
    # Heal: node 1 learns of the new term and catches up.
    c.drop = None
    c.nodes[new_lead].raft.bcast_heartbeat()
    c.stabilize()
    assert c.nodes[1].raft.state == StateType.FOLLOWER
    assert [e.data for e in c.applied[1] if e.data] == [b"x", b"y"]


# ---------------------------------------------------------------------- etcd's rawnode tests


@pytest.mark.parametrize("msgt", list(MessageType))
def test_raw_node_step(msgt: MessageType) -> None:
    s = MemoryStorage()
    s.set_hard_state(HardState(term=1, commit=1))
    s.append([Entry(term=1, index=1)])
    s.apply_snapshot(Snapshot(metadata=SnapshotMetadata(conf_state=ConfState(voters=(1,)), index=1, term=1)))
    rn = RawNode(new_test_config(1, 10, 1, s))
    if msgt in LOCAL_MESSAGES:
        with pytest.raises(StepLocalMsg):
            rn.step(Message(msgt))
    elif msgt == MT.MSG_PROP:
        with pytest.raises(ProposalDropped):
            rn.step(Message(msgt, entries=(Entry(),)))
    elif msgt in (MT.MSG_APP_RESP, MT.MSG_VOTE_RESP, MT.MSG_HEARTBEAT_RESP, MT.MSG_PRE_VOTE_RESP):
        # From node 0, which is not a member.
        with pytest.raises(StepPeerNotFound):
            rn.step(Message(msgt))
    else:
        rn.step(Message(msgt))


_L = ConfChangeType.ADD_LEARNER_NODE
_V = ConfChangeType.ADD_NODE
_TRIPLE = ((_V, 2), (_L, 1), (_L, 3))


@pytest.mark.parametrize(
    ("cc", "exp", "exp2"),
    [
        (cc_of((_V, 2)), ConfState(voters=(1, 2)), None),
        (cc_of((_L, 2)), ConfState(voters=(1,), learners=(2,)), None),
        (
            cc_of((_L, 2), transition=ConfChangeTransition.JOINT_EXPLICIT),
            ConfState(voters=(1,), voters_outgoing=(1,), learners=(2,)),
            ConfState(voters=(1,), learners=(2,)),
        ),
        (
            cc_of((_L, 2), transition=ConfChangeTransition.JOINT_IMPLICIT),
            ConfState(voters=(1,), voters_outgoing=(1,), learners=(2,), auto_leave=True),
            ConfState(voters=(1,), learners=(2,)),
        ),
        (
            cc_of(*_TRIPLE),
            ConfState(voters=(2,), voters_outgoing=(1,), learners=(3,), learners_next=(1,), auto_leave=True),
            ConfState(voters=(2,), learners=(1, 3)),
        ),
        (
            cc_of(*_TRIPLE, transition=ConfChangeTransition.JOINT_EXPLICIT),
            ConfState(voters=(2,), voters_outgoing=(1,), learners=(3,), learners_next=(1,)),
            ConfState(voters=(2,), learners=(1, 3)),
        ),
        (
            cc_of(*_TRIPLE, transition=ConfChangeTransition.JOINT_IMPLICIT),
            ConfState(voters=(2,), voters_outgoing=(1,), learners=(3,), learners_next=(1,), auto_leave=True),
            ConfState(voters=(2,), learners=(1, 3)),
        ),
    ],
)
def test_raw_node_propose_and_conf_change(cc: ConfChange, exp: ConfState, exp2: ConfState | None) -> None:
    s = storage_with_peers(1)
    rn = RawNode(new_test_config(1, 10, 1, s))
    rn.campaign()
    proposed = False
    cs: ConfState | None = None
    cc_data = b""
    while cs is None:
        rd = rn.ready()
        s.append(rd.entries)
        for e in rd.committed_entries:
            if e.type == EntryType.CONF_CHANGE_V2:
                cs = rn.apply_conf_change(ConfChange.decode(e.data))
        rn.advance(rd)
        if not proposed and rd.soft_state is not None and rd.soft_state.lead == rn.raft.id:
            rn.propose(b"somedata")
            cc_data = cc.encode()
            rn.propose_conf_change(cc)
            proposed = True
    last_index = s.last_index()
    ents = s.entries(last_index - 1, last_index + 1, 2**63)
    assert len(ents) == 2
    assert ents[0].data == b"somedata"
    assert ents[1].type == EntryType.CONF_CHANGE_V2 and ents[1].data == cc_data
    assert cs.equivalent(exp)

    use_joint, auto_leave = cc.enter_joint()
    maybe_plus_one = 1 if use_joint and auto_leave else 0
    assert rn.raft.pending_conf_index == last_index + maybe_plus_one

    rd = rn.ready()
    if not exp.auto_leave:
        assert not rd.entries
        rn.advance(rd)
        if exp2 is None:
            return
        rn.propose_conf_change(ConfChange())
        rd = rn.ready()
    # The leave-joint entry (proposed by the leader itself under auto-leave). It cannot commit
    # in this one-node test when the outgoing half needs others, so apply it directly, as etcd's
    # test does.
    assert len(rd.entries) == 1
    assert rd.entries[0].type == EntryType.CONF_CHANGE_V2
    leave = ConfChange.decode(rd.entries[0].data)
    assert not leave.changes and leave.transition == ConfChangeTransition.AUTO
    cs = rn.apply_conf_change(leave)
    assert exp2 is not None and cs.equivalent(exp2)
    rn.advance(rd)


def test_raw_node_joint_auto_leave_blocked_by_transfer() -> None:
    # While a leadership transfer is in progress the auto-leave proposal is dropped, and
    # tried again on a later advance.
    s = storage_with_peers(1)
    rn = RawNode(new_test_config(1, 10, 1, s))
    elect_single(rn, s)
    handle_all(rn, s)
    rn.propose_conf_change(
        cc_of((ConfChangeType.ADD_NODE, 2), transition=ConfChangeTransition.JOINT_IMPLICIT)
    )
    rd = rn.ready()
    s.append(rd.entries)
    # Start a transfer to 2 before applying (2 is a voter in the incoming config).
    applied_cs = None
    for e in rd.committed_entries:
        if e.type == EntryType.CONF_CHANGE_V2:
            applied_cs = rn.apply_conf_change(ConfChange.decode(e.data))
    assert applied_cs is not None and applied_cs.auto_leave
    rn.raft.lead_transferee = 2
    rn.advance(rd)
    assert not rn.raft.raft_log.unstable_entries()  # proposal dropped
    rn.raft.abort_leader_transfer()
    rd = rn.ready()
    rn.advance(rd)
    # The next applied index (nothing new) does not retry by itself; a new commit does.
    rn.raft.applied_to(rn.raft.raft_log.applied)
    ents = rn.raft.raft_log.unstable_entries()
    assert len(ents) == 1 and ents[0].type == EntryType.CONF_CHANGE_V2 and ents[0].data == b""


def test_raw_node_propose_add_duplicate_node() -> None:
    s = storage_with_peers(1)
    rn = RawNode(new_test_config(1, 10, 1, s))
    rd = rn.ready()
    s.append(rd.entries)
    rn.advance(rd)
    elect_single(rn, s)

    def propose_and_apply(cc: ConfChange) -> None:
        rn.propose_conf_change(cc)
        rd = rn.ready()
        s.append(rd.entries)
        for e in rd.committed_entries:
            if e.type == EntryType.CONF_CHANGE_V2:
                rn.apply_conf_change(ConfChange.decode(e.data))
        rn.advance(rd)

    cc1 = cc_of((ConfChangeType.ADD_NODE, 1))
    propose_and_apply(cc1)
    propose_and_apply(cc1)  # adding the same node again is harmless
    cc2 = cc_of((ConfChangeType.ADD_NODE, 2))
    propose_and_apply(cc2)
    last = s.last_index()
    ents = s.entries(last - 2, last + 1, 2**63)
    assert len(ents) == 3
    assert ents[0].data == cc1.encode()
    assert ents[2].data == cc2.encode()
    assert rn.raft.trk.config.voters.ids() == {1, 2}


def test_raw_node_read_index() -> None:
    s = storage_with_peers(1)
    rn = RawNode(new_test_config(1, 10, 1, s))
    wrs = [ReadState(index=1, request_ctx=b"somedata")]
    rn.raft.read_states = list(wrs)
    assert rn.has_ready()
    rd = rn.ready()
    assert list(rd.read_states) == wrs
    s.append(rd.entries)
    rn.advance(rd)
    assert rn.raft.read_states == []

    elect_single(rn, s)
    captured: list[Message] = []
    rn.raft._step = captured.append
    rn.read_index(b"somedata2")
    assert len(captured) == 1
    assert captured[0].type == MT.MSG_READ_INDEX
    assert captured[0].entries[0].data == b"somedata2"


def test_raw_node_read_index_single_node_read_state() -> None:
    s = storage_with_peers(1)
    rn = RawNode(new_test_config(1, 10, 1, s))
    elect_single(rn, s)
    handle_all(rn, s)
    rn.read_index(b"ctx")
    rd = rn.ready()
    assert rd.read_states == (ReadState(index=rn.raft.raft_log.committed, request_ctx=b"ctx"),)
    rn.advance(rd)
    assert not rn.has_ready()


def test_raw_node_start() -> None:
    # A storage bootstrapped with a snapshot at index 1 (no faux conf change entries).
    storage = MemoryStorage()
    storage.apply_snapshot(
        Snapshot(metadata=SnapshotMetadata(conf_state=ConfState(voters=(1,)), index=1, term=0))
    )
    rn = RawNode(new_test_config(1, 10, 1, storage))
    assert not rn.has_ready()
    rn.campaign()
    rn.propose(b"foo")
    assert rn.has_ready()
    rd = rn.ready()
    storage.append(rd.entries)
    rn.advance(rd)
    assert rd.soft_state == SoftState(lead=1, raft_state=StateType.LEADER)
    assert rd.hard_state == HardState(term=1, vote=1, commit=3)
    want = (Entry(term=1, index=2), Entry(term=1, index=3, data=b"foo"))
    assert rd.entries == want
    assert rd.committed_entries == want
    assert rd.must_sync
    assert not rn.has_ready()


def test_raw_node_bootstrap() -> None:
    storage = MemoryStorage()
    rn = RawNode(new_test_config(1, 10, 1, storage))
    rn.bootstrap([Peer(1, b"ctx1")])
    rd = rn.ready()
    assert rd.hard_state == HardState(term=1, commit=1)
    assert len(rd.entries) == 1 and rd.entries[0].type == EntryType.CONF_CHANGE_V2
    assert ConfChange.decode(rd.entries[0].data).context == b"ctx1"
    assert rd.committed_entries == rd.entries
    assert rd.must_sync
    storage.append(rd.entries)
    storage.set_hard_state(rd.hard_state)
    for e in rd.committed_entries:
        rn.apply_conf_change(ConfChange.decode(e.data))
    rn.advance(rd)
    assert not rn.has_ready()
    rn.campaign()
    rd = rn.ready()
    assert rd.soft_state is not None and rd.soft_state.raft_state == StateType.LEADER
    with pytest.raises(RaftError):
        rn.bootstrap([Peer(1)])
    with pytest.raises(RaftError):
        RawNode(new_test_config(2, 10, 1, MemoryStorage())).bootstrap([])


def test_raw_node_restart() -> None:
    entries = [Entry(term=1, index=1), Entry(term=1, index=2, data=b"foo")]
    st = HardState(term=1, commit=1)
    storage = storage_with_peers(1)
    storage.set_hard_state(st)
    storage.append(entries)
    rn = RawNode(new_test_config(1, 10, 1, storage))
    rd = rn.ready()
    assert rd.hard_state == EMPTY_HARD_STATE
    assert rd.committed_entries == tuple(entries[:1])
    assert not rd.must_sync
    assert rd.soft_state is None
    assert not rd.entries and not rd.messages
    rn.advance(rd)
    assert not rn.has_ready()


def test_raw_node_restart_from_snapshot() -> None:
    snap = Snapshot(metadata=SnapshotMetadata(conf_state=ConfState(voters=(1, 2)), index=2, term=1))
    entries = [Entry(term=1, index=3, data=b"foo")]
    st = HardState(term=1, commit=3)
    s = MemoryStorage()
    s.set_hard_state(st)
    s.apply_snapshot(snap)
    s.append(entries)
    rn = RawNode(new_test_config(1, 10, 1, s))
    rd = rn.ready()
    assert rd.hard_state == EMPTY_HARD_STATE
    assert rd.committed_entries == tuple(entries)
    assert not rd.must_sync
    rn.advance(rd)
    assert not rn.has_ready()


def test_raw_node_restart_with_applied() -> None:
    entries = [
        Entry(term=1, index=1),
        Entry(term=1, index=2, data=b"foo"),
        Entry(term=1, index=3, data=b"bar"),
    ]
    storage = storage_with_peers(1)
    storage.set_hard_state(HardState(term=1, commit=3))
    storage.append(entries)
    rn = RawNode(new_test_config(1, 10, 1, storage, applied=2))
    rd = rn.ready()
    assert rd.committed_entries == (entries[2],)


def test_raw_node_status() -> None:
    s = storage_with_peers(1)
    rn = RawNode(new_test_config(1, 10, 1, s))
    status = rn.status()
    assert status.progress == {}
    assert status.id == 1
    elect_single(rn, s)
    status = rn.status()
    assert status.lead == 1
    assert status.soft_state.raft_state == StateType.LEADER
    assert set(status.progress) == {1}
    assert status.progress[1] is not rn.raft.trk.progress[1]
    assert status.progress[1].match == rn.raft.trk.progress[1].match
    assert status.config.voters.ids() == {1}
    assert '"raftState":"StateLeader"' in status.to_json()
    basic = rn.basic_status()
    assert basic.term == 1 and basic.vote == 1 and basic.lead == 1


def test_raw_node_commit_pagination_after_restart() -> None:
    # A restarted node with large committed entries hands them out in pieces bounded by
    # max_committed_size_per_ready (at least one entry per Ready), in order.
    s = storage_with_peers(1)
    persisted = HardState(term=1, vote=1, commit=10)
    ents = [Entry(term=1, index=i, type=EntryType.NORMAL, data=b"a" * 1000) for i in range(1, 11)]
    s.set_hard_state(persisted)
    s.append(ents)
    rn = RawNode(new_test_config(1, 10, 1, s, max_size_per_msg=2500, max_committed_size_per_ready=2500))
    highest = 0
    n_readies = 0
    while highest < 10:
        rd = rn.ready()
        n_readies += 1
        assert rd.committed_entries
        assert sum(e.size() for e in rd.committed_entries[:-1]) <= 2500
        for e in rd.committed_entries:
            assert e.index == highest + 1
            highest = e.index
        rn.advance(rd)
    assert n_readies > 1


def test_raw_node_bounded_log_growth_with_partition() -> None:
    max_entries = 16
    data = b"testdata"
    max_entry_size = max_entries * len(data)
    s = storage_with_peers(1, 2)
    rn = RawNode(new_test_config(1, 10, 1, s, max_uncommitted_entries_size=max_entry_size))
    rd = rn.ready()
    s.append(rd.entries)
    rn.advance(rd)
    # Become leader without 2's vote (forced: a two-node cluster cannot elect alone).
    rn.raft.become_candidate()
    rn.raft.become_leader()
    handle_all(rn, s)
    for _ in range(1024):
        with contextlib.suppress(ProposalDropped):
            rn.propose(data)
    # Entries are stuck uncommitted (2 is partitioned): the log is bounded.
    assert rn.raft.uncommitted_size == max_entry_size
    handle_all(rn, s)
    assert rn.raft.uncommitted_size == max_entry_size


def test_raw_node_consume_ready() -> None:
    rn = new_test_raw_node(1, [1])
    m1 = Message(MT.MSG_APP, context=b"foo")
    m2 = Message(MT.MSG_APP, context=b"bar")
    rn.raft.msgs.append(m1)
    rd = rn.ready()
    assert rd.messages == (m1,)
    assert rn.raft.msgs == []
    rn.raft.msgs.append(m2)
    rn.advance(rd)
    assert rn.raft.msgs == [m2]


def test_raw_node_ready_soft_and_hard_state_only_when_changed() -> None:
    s = storage_with_peers(1, 2)
    rn = RawNode(new_test_config(1, 10, 1, s))
    assert not rn.has_ready()
    rn.campaign()
    rd = rn.ready()
    assert rd.soft_state == SoftState(lead=NONE, raft_state=StateType.CANDIDATE)
    assert rd.hard_state == HardState(term=1, vote=1, commit=0)
    assert rd.must_sync  # term and vote changed
    assert [m.type for m in rd.messages] == [MT.MSG_VOTE]
    s.set_hard_state(rd.hard_state)
    rn.advance(rd)
    assert not rn.has_ready()
    # A rejection changes nothing persistent: no hard state in the next Ready.
    rn.step(Message(MT.MSG_VOTE_RESP, from_=2, to=1, term=1, reject=True))
    rd = rn.ready()
    assert rd.soft_state == SoftState(lead=NONE, raft_state=StateType.FOLLOWER)
    assert rd.hard_state == EMPTY_HARD_STATE
    assert not rd.must_sync
    rn.advance(rd)


def test_raw_node_commit_only_change_does_not_force_sync() -> None:
    c = RawCluster([1, 2])
    c.nodes[1].campaign()
    c.stabilize()
    rn2 = c.nodes[2]
    # A heartbeat that only moves commit: hard state present, must_sync false.
    c.nodes[1].propose(b"x")
    c.handle_ready(1)
    c.deliver(2)
    rd = rn2.ready()
    assert rd.entries and rd.must_sync
    rn2.advance(rd)
    c.stabilize()
    c.nodes[1].raft.bcast_heartbeat()
    c.handle_ready(1)
    c.deliver(2)
    rd = rn2.ready()
    assert not rd.must_sync


def test_raw_node_report_unreachable_and_snapshot() -> None:
    c = RawCluster([1, 2])
    c.nodes[1].campaign()
    c.stabilize()
    pr = c.nodes[1].raft.trk.progress[2]
    assert pr.state.name == "REPLICATE"
    c.nodes[1].report_unreachable(2)
    assert pr.state.name == "PROBE"
    pr.become_snapshot(5)
    c.nodes[1].report_snapshot(2, SnapshotStatus.FAILURE)
    assert pr.state.name == "PROBE" and pr.pending_snapshot == 0 and pr.msg_app_flow_paused


def test_raw_node_transfer_leader() -> None:
    c = RawCluster([1, 2, 3])
    c.nodes[1].campaign()
    c.stabilize()
    c.nodes[1].transfer_leader(3)
    c.stabilize()
    assert c.leader() == 3
    assert c.nodes[3].raft.term == 2


def test_raw_node_propose_without_leader_drops() -> None:
    rn = new_test_raw_node(1, [1, 2, 3])
    with pytest.raises(ProposalDropped):
        rn.propose(b"x")


# ---------------------------------------------------------------------- randomized safety check


class _ChaosCluster:
    """RawNodes over a lossy, reordering network with crashes, restarts and log compaction."""

    def __init__(self, n: int, rng: random.Random, membership: bool = False, **overrides: object) -> None:
        # With membership changes on, one more node starts as a learner; voters get demoted
        # and learners promoted (simple and joint changes) while everything else goes on.
        voters = list(range(1, n + 1))
        learners = [n + 1] if membership else []
        self.ids = voters + learners
        self.membership = membership
        self.conf_changes_applied = 0
        self.rng = rng
        self.overrides = overrides
        self.storage = {i: storage_with_peers(*voters, learners=learners) for i in self.ids}
        # What each node's state machine holds: its last applied index (entries applied one by
        # one, or jumped to by a snapshot).
        self.last_applied: dict[int, int] = dict.fromkeys(self.ids, 0)
        # Every entry any node applied, by index: all nodes must agree on it.
        self.applied_log: dict[int, tuple[int, bytes]] = {}
        self.nodes: dict[int, RawNode] = {}
        self.net: list[Message] = []
        self.down: set[int] = set()
        self.isolated: set[int] = set()
        self.leaders_by_term: dict[int, int] = {}
        self.committed_seen: dict[int, int] = dict.fromkeys(self.ids, 0)
        self.snapshots_installed = 0
        # ReadIndex: the commit index known anywhere when each read was asked (its lower bound).
        self.read_floor: dict[bytes, int] = {}
        self.reads_served = 0
        for i in self.ids:
            self._start(i)

    def _start(self, nid: int) -> None:
        # The state machine restarts from the storage's snapshot; later entries (including
        # conf changes, which the config must see again) are applied anew.
        snap_index = self.storage[nid].snapshot().metadata.index
        self.last_applied[nid] = snap_index
        cfg = new_test_config(nid, 10, 1, self.storage[nid], applied=snap_index, **self.overrides)
        cfg.rand = random.Random(self.rng.random())
        self.nodes[nid] = RawNode(cfg)

    def crash(self, nid: int) -> None:
        self.down.add(nid)
        for m in [m for m in self.net if m.to == nid]:
            self.deliver(m, lost=True)
        self.net = [m for m in self.net if m.to != nid]

    def restart(self, nid: int) -> None:
        self.down.discard(nid)
        # A crash loses what was not persisted; the commit index may come back lower.
        self.committed_seen[nid] = 0
        self._start(nid)

    def handle_ready(self, nid: int) -> None:
        rn = self.nodes[nid]
        if nid in self.down or not rn.has_ready():
            return
        rd = rn.ready()
        st = self.storage[nid]
        if not rd.snapshot.is_empty():
            st.apply_snapshot(rd.snapshot)
            assert rd.snapshot.metadata.index > self.last_applied[nid]
            self.last_applied[nid] = rd.snapshot.metadata.index
            self.snapshots_installed += 1
        st.append(rd.entries)
        if not rd.hard_state.is_empty():
            st.set_hard_state(rd.hard_state)
        self.net.extend(rd.messages)
        for rs in rd.read_states:
            # Linearizable: the read point covers everything committed before the request.
            assert rs.index >= self.read_floor[rs.request_ctx], (nid, rs)
            self.reads_served += 1
        for e in rd.committed_entries:
            assert e.index == self.last_applied[nid] + 1, (nid, e, self.last_applied[nid])
            self.last_applied[nid] = e.index
            seen = self.applied_log.setdefault(e.index, (e.term, e.data))
            assert seen == (e.term, e.data), f"node {nid} applied {e} where others applied {seen}"
            if e.type == EntryType.CONF_CHANGE_V2:
                rn.apply_conf_change(ConfChange.decode(e.data))
                self.conf_changes_applied += 1
        rn.advance(rd)
        # Now and then, snapshot the state machine and compact the log behind it.
        applied = self.last_applied[nid]
        if self.rng.random() < 0.03 and applied > st.snapshot().metadata.index:
            st.create_snapshot(applied, rn.raft.trk.conf_state(), b"")
            st.compact(applied)

    def deliver(self, m: Message, lost: bool = False) -> None:
        if not lost:
            with contextlib.suppress(RaftError):
                self.nodes[m.to].step(m)
        elif m.type == MT.MSG_APP and m.from_ not in self.down and self.rng.random() < 0.5:
            # Sometimes the transport notices.
            self.nodes[m.from_].report_unreachable(m.to)
        if m.type == MT.MSG_SNAP and m.from_ not in self.down:
            # The transport tells the sender how sending the snapshot went, as etcd's does;
            # without it the leader would wait for the follower forever.
            status = SnapshotStatus.FAILURE if lost else SnapshotStatus.FINISH
            self.nodes[m.from_].report_snapshot(m.to, status)

    def propose_conf_change(self) -> None:
        up = [n for n in self.ids if n not in self.down]
        leads = [n for n in up if self.nodes[n].raft.state == StateType.LEADER]
        if not leads:
            return
        rn = self.nodes[leads[0]]
        cfg = rn.raft.trk.config
        voters = sorted(cfg.voters.incoming)
        learners = sorted(cfg.learners)
        rng = self.rng
        changes: list[tuple[ConfChangeType, int]] = []
        kind = rng.random()
        if kind < 0.4 and learners:
            changes = [(ConfChangeType.ADD_NODE, rng.choice(learners))]
        elif kind < 0.7 and len(voters) > 3:
            changes = [(ConfChangeType.ADD_LEARNER_NODE, rng.choice(voters))]
        elif learners and len(voters) >= 3:
            # Swap a learner and a voter atomically (joint consensus, left automatically).
            changes = [
                (ConfChangeType.ADD_NODE, rng.choice(learners)),
                (ConfChangeType.ADD_LEARNER_NODE, rng.choice(voters)),
            ]
        if changes:
            with contextlib.suppress(ProposalDropped):
                rn.propose_conf_change(cc_of(*changes))

    def check(self) -> None:
        for nid, rn in self.nodes.items():
            r = rn.raft
            if r.state == StateType.LEADER:
                prev = self.leaders_by_term.setdefault(r.term, nid)
                assert prev == nid, f"two leaders in term {r.term}: {prev} and {nid}"
            assert r.raft_log.committed >= self.committed_seen[nid]
            self.committed_seen[nid] = r.raft_log.committed

    def step(self, i: int) -> None:
        rng = self.rng
        action = rng.random()
        up = [n for n in self.ids if n not in self.down]
        if action < 0.25:
            nid = rng.choice(up)
            self.nodes[nid].tick()
        elif action < 0.75:
            for _ in range(min(len(self.net), rng.randint(1, 4))):
                m = self.net.pop(rng.randrange(len(self.net)))  # reorders
                lost = rng.random() < 0.05 or m.to in self.down or bool({m.to, m.from_} & self.isolated)
                self.deliver(m, lost)
        elif action < 0.90:
            nid = rng.choice(up)
            with contextlib.suppress(ProposalDropped):
                self.nodes[nid].propose(f"v{i}".encode())
        elif action < 0.91 and len(self.down) < (len(self.ids) - 1) // 2:
            self.crash(rng.choice(up))
        elif action < 0.93 and self.down:
            self.restart(rng.choice(sorted(self.down)))
        elif action < 0.95:
            nid = rng.choice(up)
            ctx = f"r{i}".encode()
            self.read_floor[ctx] = max(n.raft.raft_log.committed for n in self.nodes.values())
            self.nodes[nid].read_index(ctx)
        elif action < 0.955 and self.membership:
            self.propose_conf_change()
        elif action < 0.957:
            # Leadership transfer to a random node (learners and the leader itself are refused).
            nid = rng.choice(up)
            self.nodes[nid].transfer_leader(rng.choice(self.ids))
        elif action < 0.96:
            # Partition a node away (one at a time), or, less often, heal.
            if not self.isolated:
                self.isolated.add(rng.choice(self.ids))
            elif rng.random() < 0.3:
                self.isolated.clear()
        for nid in up:
            self.handle_ready(nid)
        self.check()


def final_applied(c: _ChaosCluster) -> bool:
    """Whether the value b"final" is applied on every node (as an entry or inside a snapshot)."""
    idx = [i for i, (_, data) in c.applied_log.items() if data == b"final"]
    return bool(idx) and all(c.last_applied[nid] >= idx[0] for nid in c.ids)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    n=st.sampled_from([3, 5]),
    pre_vote=st.booleans(),
    check_quorum=st.booleans(),
    membership=st.booleans(),
)
def test_randomized_cluster_safety(
    seed: int, n: int, pre_vote: bool, check_quorum: bool, membership: bool
) -> None:
    c = _ChaosCluster(
        n, random.Random(seed), membership=membership, pre_vote=pre_vote, check_quorum=check_quorum
    )
    for i in range(1500):
        c.step(i)
    # Liveness once the network is healed (every node up, no loss): a value proposed to the
    # leader of the highest term gets applied everywhere.
    c.isolated.clear()
    for nid in sorted(c.down):
        c.restart(nid)
    last_proposal = -1000
    for rnd in range(1000):
        for nid in c.ids:
            c.nodes[nid].tick()
        while c.net:
            c.deliver(c.net.pop(0))
            for nid in c.ids:
                c.handle_ready(nid)
        for nid in c.ids:
            c.handle_ready(nid)
        c.check()
        if final_applied(c):
            break
        top = max(c.nodes[nid].raft.term for nid in c.ids)
        leads = [nid for nid in c.ids if c.nodes[nid].raft.state == StateType.LEADER]
        leads = [nid for nid in leads if c.nodes[nid].raft.term == top]
        if leads and rnd - last_proposal >= 100:
            with contextlib.suppress(ProposalDropped):
                c.nodes[leads[0]].propose(b"final")
                last_proposal = rnd
    assert final_applied(c)


def test_raw_node_propose_batch() -> None:
    c = RawCluster([1, 2, 3])
    c.nodes[1].campaign()
    c.stabilize()
    r = c.nodes[1].raft
    r.msgs = []
    c.nodes[1].propose_batch([b"a", b"b", b"c", b"d"])
    apps = [m for m in r.msgs if m.type == MT.MSG_APP]
    # One append per follower carrying the whole batch.
    assert sorted(m.to for m in apps) == [2, 3]
    assert all([e.data for e in m.entries] == [b"a", b"b", b"c", b"d"] for m in apps)
    c.stabilize()
    for nid in (1, 2, 3):
        assert [e.data for e in c.applied[nid] if e.data] == [b"a", b"b", b"c", b"d"]
    # From a follower: forwarded as one proposal.
    c.nodes[2].propose_batch([b"e", b"f"])
    c.stabilize()
    assert [e.data for e in c.applied[3] if e.data][-2:] == [b"e", b"f"]
    c.nodes[1].propose_batch([])  # no-op


def test_raw_node_propose_batch_all_or_nothing() -> None:
    s = storage_with_peers(1, 2)
    rn = RawNode(new_test_config(1, 10, 1, s, max_uncommitted_entries_size=10))
    rn.raft.become_candidate()
    rn.raft.become_leader()
    rn.propose_batch([b"12345678"])
    last = rn.raft.raft_log.last_index()
    with pytest.raises(ProposalDropped):
        rn.propose_batch([b"1", b"2", b"3"])
    assert rn.raft.raft_log.last_index() == last
    with pytest.raises(ProposalDropped):
        new_test_raw_node(2, [1, 2]).propose_batch([b"x"])


# ---------------------------------------------------------------------- describe (etcd's text format)


def test_describe_formats_like_etcd() -> None:
    from petcd.raft.describe import (
        describe_conf_change,
        describe_entry,
        describe_hard_state,
        describe_message,
        describe_ready,
        describe_snapshot,
        describe_soft_state,
    )

    cc = cc_of((ConfChangeType.ADD_NODE, 2), (ConfChangeType.ADD_NODE, 3))
    m = Message(
        MT.MSG_APP,
        from_=1,
        to=2,
        term=1,
        log_term=1,
        index=3,
        commit=4,
        entries=(Entry(term=1, index=4, type=EntryType.CONF_CHANGE_V2, data=cc.encode()),),
    )
    assert describe_message(m) == "1->2 MsgApp Term:1 Log:1/3 Commit:4 Entries:[1/4 EntryConfChangeV2 v2 v3]"
    rej = Message(MT.MSG_APP_RESP, from_=2, to=1, term=1, index=3, reject=True, reject_hint=1, log_term=1)
    assert describe_message(rej) == "2->1 MsgAppResp Term:1 Log:1/3 Rejected (Hint: 1)"
    assert describe_entry(Entry(term=1, index=3)) == '1/3 EntryNormal ""'
    assert describe_entry(Entry(term=2, index=5, data=b'a"\n\x00')) == '2/5 EntryNormal "a\\"\\n\\x00"'
    assert describe_entry(Entry(term=1, index=5, type=EntryType.CONF_CHANGE_V2)) == "1/5 EntryConfChangeV2"
    assert describe_hard_state(HardState(term=1, vote=1, commit=4)) == "Term:1 Vote:1 Commit:4"
    assert describe_hard_state(HardState(term=1, commit=0)) == "Term:1 Commit:0"
    assert describe_soft_state(SoftState(lead=1, raft_state=StateType.LEADER)) == "Lead:1 State:StateLeader"
    cs = ConfState(voters=(1, 2), learners=(3,))
    snap = Snapshot(metadata=SnapshotMetadata(conf_state=cs, index=11, term=2))
    assert describe_snapshot(snap) == (
        "Index:11 Term:2 ConfState:Voters:[1 2] VotersOutgoing:[] Learners:[3] LearnersNext:[] "
        "AutoLeave:false"
    )
    assert describe_conf_change(cc) == (
        "transition:ConfChangeTransitionAuto changes:{type:ConfChangeAddNode node_id:2} "
        "changes:{type:ConfChangeAddNode node_id:3}"
    )
    assert describe_ready(Ready()) == "<empty Ready>"
    rd = Ready(
        soft_state=SoftState(lead=1, raft_state=StateType.LEADER),
        hard_state=HardState(term=1, vote=1, commit=4),
        entries=(Entry(term=1, index=3),),
        committed_entries=(Entry(term=1, index=3),),
        messages=(m,),
        read_states=(ReadState(index=4, request_ctx=b"x"),),
        must_sync=True,
    )
    assert describe_ready(rd) == (
        "Ready MustSync=true:\n"
        "Lead:1 State:StateLeader\n"
        "HardState Term:1 Vote:1 Commit:4\n"
        'ReadStates [{4 "x"}]\n'
        "Entries:\n"
        '1/3 EntryNormal ""\n'
        "CommittedEntries:\n"
        '1/3 EntryNormal ""\n'
        "Messages:\n"
        "1->2 MsgApp Term:1 Log:1/3 Commit:4 Entries:[1/4 EntryConfChangeV2 v2 v3]\n"
    )


def test_tick_quiesced_advances_election_clock_only() -> None:
    rn = new_test_raw_node(1, [1, 2])
    rn.raft.become_candidate()
    rn.raft.become_leader()
    rn.ready()
    for _ in range(5):
        rn.tick_quiesced()
    assert rn.raft.election_elapsed == 5
    assert rn.raft.msgs == []


def test_snapshot_refused_while_committed_entries_are_being_applied() -> None:
    # A follower holding a Ready with committed entries (not yet advanced) must not switch to
    # a snapshot's configuration under the application's feet; the leader resends it later.
    s = storage_with_peers(1, 2)
    rn = RawNode(new_test_config(2, 10, 1, s))
    rn.step(
        Message(
            MT.MSG_APP,
            from_=1,
            to=2,
            term=1,
            index=0,
            log_term=0,
            commit=1,
            entries=(Entry(term=1, index=1),),
        )
    )
    rd = rn.ready()
    assert [e.index for e in rd.committed_entries] == [1]
    snap = Snapshot(metadata=SnapshotMetadata(conf_state=ConfState(voters=(1, 2)), index=5, term=1))
    rn.step(Message(MT.MSG_SNAP, from_=1, to=2, term=1, snapshot=snap))
    assert rn.raft.raft_log.last_index() == 1  # ignored
    s.append(rd.entries)
    s.set_hard_state(rd.hard_state)
    rn.advance(rd)
    rd = rn.ready()  # the answer to the ignored snapshot
    rn.advance(rd)
    rn.step(Message(MT.MSG_SNAP, from_=1, to=2, term=1, snapshot=snap))
    assert rn.raft.raft_log.last_index() == 5
