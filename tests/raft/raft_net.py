"""Test helpers for the raft state machine: etcd's `newNetwork` and friends, in Python.

`Network` connects `Raft` instances (or black holes) by direct calls: `send()` delivers a
message, collects what the receiver emits and keeps delivering until nothing is left, so a
whole election or replication round happens inside one call. Links can be cut or made lossy
and message types ignored, to build partitions.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Sequence

from petcd.raft import confchange
from petcd.raft.config import NO_LIMIT, Config
from petcd.raft.errors import ProposalDropped, RaftError
from petcd.raft.raft import Raft
from petcd.raft.rawnode import RawNode
from petcd.raft.storage import MemoryStorage
from petcd.raft.tracker import ProgressTracker
from petcd.raft.types import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    StateType,
)

ConfigFunc = Callable[[Config], None] | None

_quiet = logging.getLogger("petcd.raft.test")


def new_test_config(
    node_id: int, election: int, heartbeat: int, storage: MemoryStorage, **overrides: object
) -> Config:
    c = Config(
        id=node_id,
        storage=storage,
        election_tick=election,
        heartbeat_tick=heartbeat,
        max_size_per_msg=NO_LIMIT,
        max_inflight_msgs=256,
        rand=random.Random(node_id),
        logger=_quiet,
    )
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


def new_test_raft(  # noqa: PLR0917 - etcd's positional newTestRaft signature
    node_id: int,
    peers: Sequence[int],
    election: int = 10,
    heartbeat: int = 1,
    storage: MemoryStorage | None = None,
    learners: Sequence[int] = (),
    **overrides: object,
) -> Raft:
    st = storage if storage is not None else MemoryStorage()
    return Raft(
        new_test_config(node_id, election, heartbeat, st, **overrides), peers=peers, learners=learners
    )


def new_test_raw_node(
    node_id: int,
    peers: Sequence[int],
    election: int = 10,
    heartbeat: int = 1,
    storage: MemoryStorage | None = None,
    **overrides: object,
) -> RawNode:
    st = storage if storage is not None else MemoryStorage()
    return RawNode(new_test_config(node_id, election, heartbeat, st, **overrides), peers=peers)


def storage_with_peers(*peers: int, learners: Sequence[int] = ()) -> MemoryStorage:
    """A MemoryStorage whose initial configuration names `peers` (like etcd's withPeers)."""
    from petcd.raft.types import Snapshot, SnapshotMetadata

    s = MemoryStorage()
    s._snapshot = Snapshot(
        metadata=SnapshotMetadata(conf_state=ConfState(voters=peers, learners=tuple(learners)))
    )
    return s


def read_messages(r: Raft) -> list[Message]:
    msgs, r.msgs = r.msgs, []
    return msgs


def next_ents(r: Raft, s: MemoryStorage) -> list[Entry]:
    """Persist the unstable entries, then return and mark applied the committed ones."""
    s.append(r.raft_log.unstable_entries())
    r.raft_log.stable_to(r.raft_log.last_index(), r.raft_log.last_term())
    ents = r.raft_log.next_ents()
    r.raft_log.applied_to(r.raft_log.committed)
    return ents


def must_append_entry(r: Raft, *ents: Entry) -> None:
    if not r.append_entry(*ents):
        raise AssertionError("entry unexpectedly dropped")


def ents_with_config(config_func: ConfigFunc, *terms: int) -> Raft:
    """A raft whose log holds one entry per term in `terms` (id 1, no peers yet)."""
    storage = MemoryStorage()
    for i, term in enumerate(terms):
        storage.append([Entry(index=i + 1, term=term)])
    cfg = new_test_config(1, 5, 1, storage)
    if config_func is not None:
        config_func(cfg)
    sm = Raft(cfg)
    sm.reset(terms[-1])
    return sm


def voted_with_config(config_func: ConfigFunc, vote: int, term: int) -> Raft:
    """A raft that voted for `vote` in `term` but has no log."""
    storage = MemoryStorage()
    storage.set_hard_state(HardState(vote=vote, term=term))
    cfg = new_test_config(1, 5, 1, storage)
    if config_func is not None:
        config_func(cfg)
    sm = Raft(cfg)
    sm.reset(term)
    return sm


def pre_vote_config(c: Config) -> None:
    c.pre_vote = True


class BlackHole:
    """A peer that swallows everything."""

    def step(self, m: Message) -> None:
        pass


NOP_STEPPER = BlackHole()


def ids_by_size(size: int) -> list[int]:
    return list(range(1, size + 1))


def set_randomized_election_timeout(r: Raft, v: int) -> None:
    r.randomized_election_timeout = v


class Network:
    """etcd's test `network`: peers by ID 1..n, synchronous delivery, droppable links."""

    def __init__(
        self, *peers: Raft | BlackHole | None, config_func: ConfigFunc = None, seed: int = 0
    ) -> None:
        size = len(peers)
        addrs = ids_by_size(size)
        self.peers: dict[int, Raft | BlackHole] = {}
        self.storage: dict[int, MemoryStorage] = {}
        self.dropm: dict[tuple[int, int], float] = {}
        self.ignorem: set[MessageType] = set()
        self.msg_hook: Callable[[Message], bool] | None = None
        self.rand = random.Random(seed)
        for j, p in enumerate(peers):
            nid = addrs[j]
            if p is None:
                st = MemoryStorage()
                self.storage[nid] = st
                cfg = new_test_config(nid, 10, 1, st)
                if config_func is not None:
                    config_func(cfg)
                self.peers[nid] = Raft(cfg, peers=addrs)
            elif isinstance(p, Raft):
                learners = set(p.trk.config.learners)
                p.id = nid
                p.trk = ProgressTracker(p._max_inflight, p._max_inflight_bytes)
                cs = ConfState(
                    voters=tuple(a for a in addrs if a not in learners),
                    learners=tuple(a for a in addrs if a in learners),
                )
                cfg_, prs = confchange.restore(confchange.Changer(p.trk, p.raft_log.last_index()), cs)
                p.trk.config = cfg_
                p.trk.progress = prs
                p.reset(p.term)
                self.peers[nid] = p
            else:
                self.peers[nid] = p

    def raft(self, nid: int) -> Raft:
        p = self.peers[nid]
        assert isinstance(p, Raft)
        return p

    def send(self, *msgs: Message) -> None:
        queue = list(msgs)
        while queue:
            m = queue.pop(0)
            p = self.peers[m.to]
            with contextlib.suppress(ProposalDropped):
                p.step(m)
            if isinstance(p, Raft):
                queue.extend(self.filter(read_messages(p)))

    def drop(self, from_: int, to: int, perc: float) -> None:
        self.dropm[(from_, to)] = perc

    def cut(self, one: int, other: int) -> None:
        self.drop(one, other, 2.0)
        self.drop(other, one, 2.0)

    def isolate(self, nid: int) -> None:
        for other in self.peers:
            if other != nid:
                self.drop(nid, other, 1.0)
                self.drop(other, nid, 1.0)

    def ignore(self, t: MessageType) -> None:
        self.ignorem.add(t)

    def recover(self) -> None:
        self.dropm = {}
        self.ignorem = set()

    def filter(self, msgs: Iterable[Message]) -> list[Message]:
        out = []
        for m in msgs:
            if m.type in self.ignorem:
                continue
            if m.type == MessageType.MSG_HUP:
                raise AssertionError("unexpected msgHup")
            perc = self.dropm.get((m.from_, m.to), 0.0)
            if self.rand.random() < perc:
                continue
            if self.msg_hook is not None and not self.msg_hook(m):
                continue
            out.append(m)
        return out


def hup(nid: int) -> Message:
    return Message(MessageType.MSG_HUP, from_=nid, to=nid)


def prop(nid: int, data: bytes = b"somedata") -> Message:
    return Message(MessageType.MSG_PROP, from_=nid, to=nid, entries=(Entry(data=data),))


class RawCluster:
    """RawNodes with MemoryStorage, driven through the full Ready / advance contract.

    `stabilize()` handles Readies and delivers messages until nothing is left to do, like the
    `stabilize` command of etcd's interaction tests. Messages can be filtered with `drop`.
    """

    def __init__(self, ids: Sequence[int], **overrides: object) -> None:
        self.storage: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, RawNode] = {}
        self.applied: dict[int, list[Entry]] = {}
        self.inbox: dict[int, list[Message]] = {}
        self.drop: Callable[[Message], bool] | None = None
        for nid in ids:
            st = storage_with_peers(*ids)
            self.storage[nid] = st
            self.nodes[nid] = RawNode(new_test_config(nid, 10, 1, st, **overrides))
            self.applied[nid] = []
            self.inbox[nid] = []

    def handle_ready(self, nid: int) -> bool:
        rn = self.nodes[nid]
        if not rn.has_ready():
            return False
        rd = rn.ready()
        st = self.storage[nid]
        if not rd.snapshot.is_empty():
            st.apply_snapshot(rd.snapshot)
        st.append(rd.entries)
        if not rd.hard_state.is_empty():
            st.set_hard_state(rd.hard_state)
        for m in rd.messages:
            if self.drop is not None and self.drop(m):
                continue
            if m.to in self.inbox:
                self.inbox[m.to].append(m)
        for e in rd.committed_entries:
            self.applied[nid].append(e)
            if e.type == EntryType.CONF_CHANGE_V2:
                rn.apply_conf_change(ConfChange.decode(e.data))
        rn.advance(rd)
        return True

    def deliver(self, nid: int) -> bool:
        msgs, self.inbox[nid] = self.inbox[nid], []
        for m in msgs:
            with contextlib.suppress(RaftError):
                self.nodes[nid].step(m)
        return bool(msgs)

    def stabilize(self, max_rounds: int = 1000) -> None:
        for _ in range(max_rounds):
            busy = False
            for nid in self.nodes:
                busy |= self.handle_ready(nid)
            for nid in self.nodes:
                busy |= self.deliver(nid)
            if not busy:
                return
        raise AssertionError("cluster did not stabilize")

    def leader(self) -> int:
        leads = {rn.raft.id for rn in self.nodes.values() if rn.raft.state == StateType.LEADER}
        assert len(leads) <= 1
        return leads.pop() if leads else NONE
