"""A deterministic simulation of a petcd raft cluster, driven by one seed.

Theory of operation
-------------------
`Simulation(seed)` builds N in-process raft nodes (a `RawNode` each, with a `MemoryStorage` as its
disk and a tiny KV state machine), a simulated `Network` and a `Scheduler` (fake clock + event
queue), then runs events in simulated time:

* every node ticks once per tick of its own clock (own phase, and a rate skewed by `clock_skew`);
* once per tick the "world" acts: clients propose writes (unique ids, mostly to the node that
  believes it leads, sometimes to any node so raft forwards; retried, with backoff, when there
  is no answer) and ReadIndex reads; membership changes (add a learner with a fresh id, promote,
  remove, or a joint "swap"), leadership transfers, partitions of several shapes (isolate, split,
  deaf, mute, cut links) and crashes start and end;
* messages are delivered, lost, duplicated, delayed and reordered by the network;
* a node's `Ready` is persisted after a random disk delay (a leader may send first, as etcd's
  server does); then its messages are sent, its committed entries applied and `advance` called.
  Messages and ticks keep being stepped meanwhile, as in etcd's node loop. A crash loses what is
  not persisted: the Ready being written, in-flight messages from and to the node, volatile state.
* restart rebuilds the node from its disk the way etcd does: a fresh MemoryStorage holding the
  snapshot, the hard state and the entries after the snapshot; the state machine from its own
  durable copy; `Config.applied` from the state machine (minus any conf change raft must replay)
  or 0 (replay everything after the snapshot), per seed;
* nodes apply committed entries, snapshot their state machine and compact the log every few
  entries, so lagging and new nodes get snapshots (sent as etcd does: the sender's current state).

Every observation is fed to a `Checker` (safety). A run has phases: *chaos* for `ticks` ticks;
then *liveness* (heal everything, restart every crashed node, stop faults: every proposal ever
made must commit and every member catch up within a bound that grows with the backlog); then
*probe* (one new proposal must commit within a bound); then *catch-up* (every member applies
all of it) and the final durability check. A run stops at the first violation.

All randomness comes from `random.Random(seed)`: the knobs, network, faults, clients and disks
use it or generators derived from it, and each raft node gets its own generator (election
jitter) derived from it when it starts. Nothing iterates over an unordered collection whose
order could vary between processes, so the same seed gives the same event log, byte for byte.
"""

from __future__ import annotations

import random
import traceback
from dataclasses import dataclass, field, replace

from petcd.raft.config import Config
from petcd.raft.errors import ProposalDropped, StepPeerNotFound
from petcd.raft.rawnode import RawNode
from petcd.raft.storage import MemoryStorage
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
    Ready,
    Snapshot,
    SnapshotMetadata,
    SnapshotStatus,
    StateType,
)
from petcd.sim.checker import Checker, Violation
from petcd.sim.eventlog import EventLog
from petcd.sim.knobs import Knobs
from petcd.sim.kv import Command, KVStateMachine
from petcd.sim.network import Network
from petcd.sim.node import ReadWait, SimNode
from petcd.sim.scheduler import UNITS_PER_TICK, Scheduler

CONF_ENTRY_TYPES = (EntryType.CONF_CHANGE, EntryType.CONF_CHANGE_V2)


def message_name(t: MessageType) -> str:
    """`MSG_APP_RESP` -> `MsgAppResp`, as etcd prints message types."""
    return "".join(part.capitalize() for part in t.name.split("_"))


def describe_message(m: Message) -> str:
    text = f"{message_name(m.type)} {m.from_}->{m.to} term={m.term}"
    if m.type in (MessageType.MSG_APP, MessageType.MSG_APP_RESP, MessageType.MSG_SNAP):
        text += f" index={m.index}"
    if m.type == MessageType.MSG_APP:
        text += f" logterm={m.log_term} entries={len(m.entries)} commit={m.commit}"
    if m.type == MessageType.MSG_SNAP and m.snapshot is not None:
        text += f" snap={m.snapshot.metadata.index}"
    if m.reject:
        text += f" reject hint={m.reject_hint}"
    return text


class _RaftLogger:
    """Raft's log lines go to the event log, in verbose mode only."""

    def __init__(self, sim: Simulation, node: int) -> None:
        self._sim = sim
        self._node = node

    def _emit(self, level: str, msg: str, args: tuple[object, ...]) -> None:
        log = self._sim.log
        if log.verbose:
            text = msg % args if args else msg
            log.add(self._sim.sched.now, self._node, f"raft {level}: {text}")

    def debug(self, msg: str, *args: object) -> None:
        self._emit("debug", msg, args)

    def info(self, msg: str, *args: object) -> None:
        self._emit("info", msg, args)

    def warning(self, msg: str, *args: object) -> None:
        self._emit("warning", msg, args)

    def error(self, msg: str, *args: object) -> None:
        self._emit("error", msg, args)


@dataclass(slots=True)
class Proposal:
    id: str
    key: str
    issued: int
    target: int = NONE
    target_incarnation: int = -1
    target_term: int = 0
    dropped: bool = False
    last_try: int = 0
    tries: int = 0
    acked: bool = False


@dataclass(slots=True)
class SimResult:
    seed: int
    knobs: Knobs
    violations: list[Violation]
    stats: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        stats = " ".join(f"{k}={v}" for k, v in self.stats.items())
        verdict = "ok" if self.ok else f"FAIL {self.violations[0]}"
        return f"seed {self.seed}: {verdict} [{stats}]"


class Simulation:
    def __init__(
        self,
        seed: int,
        *,
        ticks: int = 300,
        nodes: int | None = None,
        knobs: Knobs | None = None,
        overrides: dict[str, str] | None = None,
        log: EventLog | None = None,
        liveness_ticks: int | None = None,
        probe_ticks: int | None = None,
    ) -> None:
        self.seed = seed
        self.rand = random.Random(seed)
        self.knobs = knobs if knobs is not None else Knobs.draw(self.rand, nodes)
        if overrides:
            self.knobs = self.knobs.with_overrides(overrides)
        k = self.knobs
        self.ticks = ticks
        self.liveness_ticks = liveness_ticks if liveness_ticks is not None else 40 * k.election_tick
        self.probe_ticks = probe_ticks if probe_ticks is not None else 20 * k.election_tick
        self.retry_ticks = 3 * k.election_tick
        self.log = log if log is not None else EventLog(enabled=False)
        self.sched = Scheduler()
        self.checker = Checker()
        self.net = Network(
            random.Random(self.rand.getrandbits(64)),
            loss=k.loss,
            dup=k.dup,
            delay_min=k.delay_min,
            delay_max=k.delay_max,
            fifo=k.fifo,
        )
        self.fault_rand = random.Random(self.rand.getrandbits(64))
        self.client_rand = random.Random(self.rand.getrandbits(64))
        self.disk_rand = random.Random(self.rand.getrandbits(64))
        self.nodes: dict[int, SimNode] = {}
        self.tick_period: dict[int, int] = {}  # node -> units per raft tick (its clock rate)
        self.proposals: dict[str, Proposal] = {}
        # Proposals not yet applied anywhere: the ones a client may still retry.
        self.unresolved: dict[str, Proposal] = {}
        self.write_index: dict[str, int] = {}  # write id -> index of its first (effective) application
        self.phase = "chaos"
        self.phase_start = 0
        self.done = False
        self.tick = 0
        self.partition_epoch = 0
        self.partitioned = False
        self.next_node_id = k.nodes + 1
        self.conf_state = ConfState()
        self.conf_index = 0
        self.conf_pending_since: int | None = None
        self.probe_id: str | None = None
        self.liveness_bound = self.liveness_ticks
        self._next_read = 0
        self._current: int | None = None
        self.stats: dict[str, int] = {
            "ticks": 0,
            "elections": 0,
            "proposals": 0,
            "acked": 0,
            "reads": 0,
            "crashes": 0,
            "partitions": 0,
            "snapshots_sent": 0,
            "snapshots_installed": 0,
            "transfers": 0,
            "conf_changes": 0,
            "max_index": 0,
        }

    # ---------------------------------------------------------------------------------------
    # running

    def run(self) -> SimResult:
        k = self.knobs
        ids = list(range(1, k.nodes + 1))
        self.log.add(0, None, f"seed {self.seed} knobs {k.describe()}")
        boot = Snapshot(
            data=KVStateMachine(applied=1).encode(),
            metadata=SnapshotMetadata(conf_state=ConfState(voters=tuple(ids)), index=1, term=1),
        )
        self.conf_state = boot.metadata.conf_state
        self.conf_index = 1
        for node_id in ids:
            node = SimNode(node_id)
            node.storage.apply_snapshot(boot)
            node.storage.set_hard_state(HardState(term=1, commit=1))
            node.kv_durable = boot.data
            self.nodes[node_id] = node
            self._start(node)
            self._schedule_ticks(node)
        self.sched.at(0, self._world_tick)
        # The phases end the run (by success or by a liveness bound); `end` is only a backstop.
        end = (self.ticks + 100_000) * UNITS_PER_TICK
        try:
            self.sched.run_until(end, stop=lambda: self.done or not self.checker.ok)
        except Exception as e:  # a raft panic or a simulator bug: either way the seed fails
            where = f"node {self._current}" if self._current is not None else "simulator"
            tb = traceback.extract_tb(e.__traceback__)[-1]
            self.checker.fail(
                "exception", self.sched.now, f"{where}: {type(e).__name__}: {e} ({tb.filename}:{tb.lineno})"
            )
        if not self.done and self.checker.ok:
            self.checker.fail("liveness", self.sched.now, "the run did not finish (simulator bug)")
        self.stats["ticks"] = self.tick
        self.stats["acked"] = self.checker.acked
        self.stats["reads"] = self.checker.reads_checked
        self.stats["max_index"] = self.checker.max_committed
        for v in self.checker.violations:
            self.log.add(self.sched.now, None, f"VIOLATION {v}")
        return SimResult(self.seed, k, list(self.checker.violations), dict(self.stats), self.log.lines)

    def _schedule_ticks(self, node: SimNode) -> None:
        phase = self.fault_rand.randint(1, UNITS_PER_TICK - 1)
        skew = self.knobs.clock_skew
        self.tick_period[node.id] = UNITS_PER_TICK + self.fault_rand.randint(-skew, skew)
        self.sched.at(self.sched.now + phase, self._node_tick, node.id)

    def _node_tick(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.removed:
            return
        self.sched.after(self.tick_period[node_id], self._node_tick, node_id)
        if node.alive and node.rn is not None:
            self._current = node_id
            node.rn.tick()
            self._drive(node)

    def members(self) -> list[SimNode]:
        """Nodes that are part of the cluster (started and not removed), by id."""
        return [self.nodes[i] for i in sorted(self.nodes) if not self.nodes[i].removed]

    def alive_members(self) -> list[SimNode]:
        return [n for n in self.members() if n.alive]

    # ---------------------------------------------------------------------------------------
    # node lifecycle

    def _start(self, node: SimNode) -> None:
        """(Re)start a node from what its disk holds."""
        k = self.knobs
        storage = self._reload_storage(node)
        snap = storage.snapshot()
        snap_index = snap.metadata.index
        kv = KVStateMachine.decode(node.kv_durable)
        if snap.metadata.index > kv.applied:
            kv = KVStateMachine.decode(snap.data)
            kv.applied = snap.metadata.index
        hs, _ = storage.initial_state()
        if k.replay_from_snapshot:
            applied = 0
        else:
            # Raft restores its configuration from the snapshot only, so it must replay every
            # conf change after the snapshot: report as applied only what precedes the first one.
            applied = kv.applied
            last = storage.last_index()
            for index in range(snap_index + 1, min(kv.applied, last) + 1):
                if storage.entries(index, index + 1, 1 << 62)[0].type in CONF_ENTRY_TYPES:
                    applied = index - 1
                    break
            applied = max(applied, snap_index) if applied > 0 else 0
        node.kv = kv
        node.conf_state = snap.metadata.conf_state
        node.raft_applied = max(applied, snap_index)
        node.pending = None
        node.term = hs.term
        node.commit = hs.commit
        node.state = StateType.FOLLOWER
        node.lead = NONE
        config = Config(
            id=node.id,
            storage=storage,
            election_tick=k.election_tick,
            heartbeat_tick=k.heartbeat_tick,
            applied=applied,
            max_size_per_msg=k.max_size_per_msg,
            max_committed_size_per_ready=k.max_committed_size_per_ready,
            max_uncommitted_entries_size=k.max_uncommitted_entries_size,
            max_inflight_msgs=k.max_inflight_msgs,
            check_quorum=k.check_quorum,
            pre_vote=k.pre_vote,
            read_only_option=(
                ReadOnlyOption.LEASE_BASED if k.lease_reads and k.check_quorum else ReadOnlyOption.SAFE
            ),
            rand=random.Random(self.rand.getrandbits(64)),
            logger=_RaftLogger(self, node.id),
        )
        self._current = node.id
        node.rn = RawNode(config)
        node.alive = True
        self.log.add(
            self.sched.now,
            node.id,
            f"start incarnation={node.incarnation} term={hs.term} commit={hs.commit} "
            f"snapshot={snap_index} last={storage.last_index()} applied={applied} kv_applied={kv.applied}",
        )
        self.checker.on_restart(self.sched.now, node.id, node.raft_applied, hs.commit, node.log_view())
        self._drive(node)

    @staticmethod
    def _reload_storage(node: SimNode) -> MemoryStorage:
        """Rebuild the node's MemoryStorage from what is on its disk, as etcd does at startup.

        etcd loads the latest snapshot, the hard state and the WAL entries after the snapshot
        into a fresh MemoryStorage; entries at or below the snapshot index (kept in memory
        before the crash for slow followers) are not loaded, so raft restarts with its first
        index right after the snapshot.
        """
        old = node.storage
        snap = old.snapshot()
        fresh = MemoryStorage()
        if not snap.is_empty():
            fresh.apply_snapshot(snap)
        fresh.set_hard_state(old.hard_state)
        last = old.last_index()
        if last > snap.metadata.index:
            fresh.append(old.entries(snap.metadata.index + 1, last + 1, 1 << 62))
        node.storage = fresh
        return fresh

    def _crash(self, node: SimNode, why: str = "crash") -> None:
        lost = len(node.pending.entries) if node.pending is not None else 0
        node.alive = False
        node.rn = None
        node.pending = None
        node.incarnation += 1
        node.kv = KVStateMachine()
        for read_id, _ in node.reads.values():
            self.checker.forget_read(read_id)
        for w in node.read_waits:
            self.checker.forget_read(w.read_id)
        node.reads.clear()
        node.read_waits.clear()
        node.state = StateType.FOLLOWER
        node.lead = NONE
        self.stats["crashes"] += why == "crash"
        self.log.add(self.sched.now, node.id, f"{why} (unpersisted entries lost: {lost})")

    def _restart(self, node_id: int, incarnation: int) -> None:
        node = self.nodes[node_id]
        if node.alive or node.removed or node.incarnation != incarnation:
            return
        self._start(node)

    # ---------------------------------------------------------------------------------------
    # the Ready loop

    def _drive(self, node: SimNode) -> None:
        """Take Readies from the node until it has none or one is waiting for the disk."""
        rn = node.rn
        if rn is not None and node.alive:
            # Between Readies too (a Ready may be waiting for the disk): a node can win and lose
            # an election before its next Ready, and election safety must still see it.
            st = rn.basic_status()
            if st.soft_state.raft_state == StateType.LEADER and self.checker.leaders.get(st.term) != node.id:
                self.checker.on_leader(self.sched.now, node.id, st.term, None)
        while node.alive and rn is not None and node.pending is None and rn.has_ready():
            self._current = node.id
            rd = rn.ready()
            self._observe(node, rd)
            needs_disk = bool(rd.entries) or not rd.hard_state.is_empty() or not rd.snapshot.is_empty()
            if needs_disk and self.knobs.disk_delay_max > 0:
                if self.knobs.leader_sends_early and node.state == StateType.LEADER and rd.messages:
                    for m in rd.messages:
                        self._send(node, m)
                    rd = replace(rd, messages=())
                node.pending = rd
                delay = self.disk_rand.randint(1, self.knobs.disk_delay_max)
                self.sched.after(delay, self._disk_done, node.id, node.incarnation)
                return
            self._handle(node, rd)

    def _disk_done(self, node_id: int, incarnation: int) -> None:
        node = self.nodes[node_id]
        if node.incarnation != incarnation or node.pending is None:
            return
        rd = node.pending
        self._current = node_id
        self._handle(node, rd)
        node.pending = None
        self._drive(node)

    def _observe(self, node: SimNode, rd: Ready) -> None:
        """What a Ready shows, at the moment it is taken (before it is persisted)."""
        now = self.sched.now
        hs = rd.hard_state
        if not hs.is_empty():
            if hs.commit > node.commit and self.log.enabled:
                self.log.add(now, node.id, f"commit {node.commit}->{hs.commit} term={hs.term}")
            node.term = hs.term
            node.commit = hs.commit
            self.checker.on_commit(now, node.id, hs.term, hs.commit)
        ss = rd.soft_state
        if ss is not None and (ss.raft_state != node.state or ss.lead != node.lead):
            node.state = ss.raft_state
            node.lead = ss.lead
            self.log.add(now, node.id, f"{ss.raft_state} term={node.term} lead={ss.lead}")
            if ss.raft_state == StateType.LEADER:
                self.stats["elections"] += 1
                self.checker.on_leader(now, node.id, node.term, node.log_view(rd.entries, rd.snapshot))
        if rd.entries:
            first = rd.entries[0].index
            prev_term: int | None = None
            if not rd.snapshot.is_empty() and rd.snapshot.metadata.index == first - 1:
                prev_term = rd.snapshot.metadata.term
            else:
                prev_term = node.log_view().term_at(first - 1)
            self.checker.on_append(now, node.id, rd.entries, prev_term)

    def _handle(self, node: SimNode, rd: Ready) -> None:
        """Persist, send, apply, advance: the Ready contract, after the disk write completed."""
        rn = node.rn
        assert rn is not None
        now = self.sched.now
        storage = node.storage
        if not rd.snapshot.is_empty():
            meta = rd.snapshot.metadata
            storage.apply_snapshot(rd.snapshot)
            kv = KVStateMachine.decode(rd.snapshot.data)
            kv.applied = meta.index
            node.kv = kv
            node.kv_durable = rd.snapshot.data
            node.conf_state = meta.conf_state
            node.raft_applied = meta.index
            self.checker.on_snapshot(now, node.id, meta.index, meta.term)
            self.stats["snapshots_installed"] += 1
            self.log.add(now, node.id, f"install snapshot index={meta.index} term={meta.term}")
        if rd.entries:
            storage.append(list(rd.entries))
        if not rd.hard_state.is_empty():
            storage.set_hard_state(rd.hard_state)
        for m in rd.messages:
            self._send(node, m)
        self._apply(node, rd.committed_entries)
        rn.advance(rd)
        for rs in rd.read_states:
            req = node.reads.pop(rs.request_ctx, None)
            if req is not None:
                node.read_waits.append(ReadWait(rs.index, req[0], req[1]))
                self.log.add(now, node.id, f"read {req[0]} got read index {rs.index}")
        self._serve_reads(node)
        self._maybe_compact(node)

    def _apply(self, node: SimNode, entries: tuple[Entry, ...]) -> None:
        rn = node.rn
        assert rn is not None
        now = self.sched.now
        kv = node.kv
        for e in entries:
            self.checker.on_apply(now, node.id, e)
            if e.type in CONF_ENTRY_TYPES:
                cc = ConfChange.decode(e.data)
                node.conf_state = rn.apply_conf_change(cc)
                self._on_conf_applied(node, e.index, cc, node.conf_state)
            elif e.data and e.index > kv.applied:
                cmd = Command.decode(e.data)
                kv.apply(e.index, cmd)
                first = self.write_index.setdefault(cmd.id, e.index)
                self.unresolved.pop(cmd.id, None)
                p = self.proposals.get(cmd.id)
                if (
                    p is not None
                    and not p.acked
                    and p.target == node.id
                    and p.target_incarnation == node.incarnation
                ):
                    p.acked = True
                    self.checker.on_ack(now, p.id, p.key, first)
                    self.log.add(now, node.id, f"ack {p.id} key={p.key} index={first}")
            kv.applied = max(kv.applied, e.index)
            node.raft_applied = e.index
        if entries and self.disk_rand.random() < self.knobs.kv_sync_prob:
            node.kv_durable = kv.encode()

    def _maybe_compact(self, node: SimNode) -> None:
        k = self.knobs
        storage = node.storage
        applied = node.raft_applied
        if applied - storage.snapshot().metadata.index < k.compact_every or node.kv.applied != applied:
            return
        data = node.kv.encode()
        node.kv_durable = data
        storage.create_snapshot(applied, node.conf_state, data)
        compact_to = applied - k.compact_keep
        if compact_to > storage.first_index() - 1:
            storage.compact(compact_to)
        if self.log.verbose:
            self.log.add(self.sched.now, node.id, f"snapshot at {applied}, compacted to {compact_to}")

    def _serve_reads(self, node: SimNode) -> None:
        if not node.read_waits:
            return
        kv = node.kv
        still: list[ReadWait] = []
        for w in node.read_waits:
            if w.index > kv.applied:
                still.append(w)
                continue
            seen = kv.get(w.key)
            seen_index = self.write_index[seen] if seen is not None else 0
            self.checker.on_read_served(self.sched.now, w.read_id, w.index, kv.applied, seen_index)
            self.log.add(
                self.sched.now,
                node.id,
                f"read {w.read_id} served at {kv.applied}: {w.key}={seen} ({seen_index})",
            )
        node.read_waits = still

    # ---------------------------------------------------------------------------------------
    # the network

    def _merged_snapshot(self, node: SimNode, m: Message) -> Message:
        """Send the sender's current state instead of its last storage snapshot, as etcd does.

        etcd's server replaces the snapshot raft picked with one of its applied state (and
        configuration) when it sends it. Without this, a node added after the last snapshot
        would be sent a snapshot whose configuration lacks it, which raft refuses, forever.
        """
        snap = m.snapshot
        applied = node.raft_applied
        if snap is None or applied <= snap.metadata.index or node.kv.applied != applied:
            return m
        merged = Snapshot(
            data=node.kv.encode(),
            metadata=SnapshotMetadata(
                conf_state=node.conf_state, index=applied, term=node.storage.term(applied)
            ),
        )
        return replace(m, snapshot=merged)

    def _send(self, node: SimNode, m: Message) -> None:
        now = self.sched.now
        if m.type == MessageType.MSG_SNAP:
            m = self._merged_snapshot(node, m)
        dest = self.nodes.get(m.to)
        plan = self.net.plan(now, m.from_, m.to)
        if dest is None or dest.removed:
            plan.deliveries.clear()
            plan.dropped = "no such node"
        if not plan.deliveries:
            if self.log.verbose:
                self.log.add(now, node.id, f"drop ({plan.dropped}) {describe_message(m)}")
            if m.type == MessageType.MSG_SNAP:
                self.sched.after(
                    1, self._report_snapshot, node.id, node.incarnation, m.to, SnapshotStatus.FAILURE
                )
            elif plan.dropped == "partition" and self.knobs.report_unreachable:
                self.sched.after(1, self._report_unreachable, node.id, node.incarnation, m.to)
            return
        assert dest is not None
        for t in plan.deliveries:
            self.sched.at(t, self._deliver, m, node.incarnation, dest.incarnation)
        if m.type == MessageType.MSG_SNAP:
            self.stats["snapshots_sent"] += 1

    def _deliver(self, m: Message, from_incarnation: int, to_incarnation: int) -> None:
        sender = self.nodes[m.from_]
        dest = self.nodes[m.to]
        now = self.sched.now
        if sender.incarnation != from_incarnation or dest.incarnation != to_incarnation or not dest.alive:
            if self.log.verbose:
                self.log.add(now, m.to, f"discard (crash) {describe_message(m)}")
            if m.type == MessageType.MSG_SNAP:
                # The sender's transport sees the stream break: raft must hear of it, or the
                # follower's progress stays in StateSnapshot forever.
                self._report_snapshot(m.from_, from_incarnation, m.to, SnapshotStatus.FAILURE)
            return
        if dest.removed:
            return
        if (
            m.type == MessageType.MSG_SNAP
            and self.knobs.hold_snapshots
            and dest.pending is not None
            and dest.pending.committed_entries
        ):
            # Hold a snapshot until the node has applied the Ready it is writing. Were raft to
            # restore the snapshot's configuration at once, the conf changes of that Ready
            # (already part of it) would be applied a second time (a leave-joint twice is a
            # panic). etcd's raft has that hazard; petcd's raft refuses such a snapshot, so the
            # hold is a knob: off, the refusal path is exercised.
            self.sched.after(1, self._deliver, m, from_incarnation, to_incarnation)
            return
        rn = dest.rn
        assert rn is not None
        self._current = dest.id
        if self.log.enabled:
            self.log.add(now, dest.id, f"recv {describe_message(m)}")
        try:
            rn.step(m)
        except StepPeerNotFound:
            if self.log.verbose:
                self.log.add(now, dest.id, "step: peer not found")
        except ProposalDropped:
            if self.log.verbose:
                self.log.add(now, dest.id, "forwarded proposal dropped")
        self._drive(dest)
        if m.type == MessageType.MSG_SNAP:
            self._report_snapshot(m.from_, from_incarnation, m.to, SnapshotStatus.FINISH)

    def _report_snapshot(self, node_id: int, incarnation: int, to: int, status: SnapshotStatus) -> None:
        node = self.nodes[node_id]
        if node.incarnation != incarnation or node.rn is None:
            return
        self._current = node_id
        node.rn.report_snapshot(to, status)
        if self.log.verbose:
            self.log.add(self.sched.now, node_id, f"report snapshot to {to}: {status.name}")
        self._drive(node)

    def _report_unreachable(self, node_id: int, incarnation: int, to: int) -> None:
        node = self.nodes[node_id]
        if node.incarnation != incarnation or node.rn is None:
            return
        self._current = node_id
        node.rn.report_unreachable(to)
        self._drive(node)

    # ---------------------------------------------------------------------------------------
    # the world: faults, clients, phases

    def _world_tick(self) -> None:
        self._current = None
        self.tick = self.sched.now // UNITS_PER_TICK
        self.sched.after(UNITS_PER_TICK, self._world_tick)
        if self.phase == "chaos":
            if self.tick >= self.ticks:
                self._begin_liveness()
            else:
                self._faults()
                self._clients()
        if self.phase != "chaos":
            self._retry_proposals()
            self._check_progress()
        if self.tick % 50 == 0:
            self._audit()

    def _faults(self) -> None:
        k = self.knobs
        r = self.fault_rand
        if not self.partitioned and k.partition_rate and r.random() < k.partition_rate:
            self._start_partition()
        if k.crash_rate:
            for node in self.alive_members():
                if r.random() < k.crash_rate:
                    self._crash(node)
                    down = r.randint(1, k.down_ticks_max)
                    self.sched.after(down * UNITS_PER_TICK, self._restart, node.id, node.incarnation)
        if k.conf_change_rate and r.random() < k.conf_change_rate:
            self._conf_change()
        if k.transfer_rate and r.random() < k.transfer_rate:
            self._transfer_leader()

    def _transfer_leader(self) -> None:
        leader = self._leader_guess()
        if leader is None or leader.rn is None:
            return
        voters = [v for v in sorted(self.conf_state.voters) if v != leader.id]
        if not voters:
            return
        to = self.fault_rand.choice(voters)
        self.log.add(self.sched.now, leader.id, f"transfer leadership to {to}")
        self.stats["transfers"] += 1
        self._current = leader.id
        leader.rn.transfer_leader(to)
        self._drive(leader)

    def _start_partition(self) -> None:
        r = self.fault_rand
        ids = [n.id for n in self.members()]
        kind = r.choice(("isolate", "split", "deaf", "mute", "links"))
        net = self.net
        if kind == "isolate":
            net.isolate(r.choice(ids), ids)
        elif kind == "split":
            shuffled = list(ids)
            r.shuffle(shuffled)
            cut = r.randint(1, len(shuffled) - 1)
            net.partition([shuffled[:cut], shuffled[cut:]])
        elif kind == "deaf":
            net.isolate(r.choice(ids), ids, outbound=False)
        elif kind == "mute":
            net.isolate(r.choice(ids), ids, inbound=False)
        else:
            for _ in range(r.randint(1, len(ids))):
                a, b = r.sample(ids, 2)
                net.cut_link(a, b)
        self.partitioned = True
        self.partition_epoch += 1
        self.stats["partitions"] += 1
        duration = r.randint(5, self.knobs.partition_ticks_max)
        self.log.add(self.sched.now, None, f"partition {kind}: cut {net.describe_cut()} for {duration} ticks")
        self.sched.after(duration * UNITS_PER_TICK, self._heal, self.partition_epoch)

    def _heal(self, epoch: int) -> None:
        if epoch != self.partition_epoch or not self.partitioned:
            return
        self.net.heal()
        self.partitioned = False
        self.log.add(self.sched.now, None, "heal partition")

    def _leader_guess(self) -> SimNode | None:
        """The live node that believes it leads the highest term, if any."""
        best: SimNode | None = None
        for node in self.alive_members():
            if node.state == StateType.LEADER and (best is None or node.term > best.term):
                best = node
        return best

    def _pick_target(self) -> SimNode | None:
        """Mostly the node that believes it leads; sometimes any node (raft forwards)."""
        r = self.client_rand
        leader = self._leader_guess()
        if leader is not None and r.random() < 0.8:
            return leader
        alive = self.alive_members()
        return r.choice(alive) if alive else None

    def _clients(self) -> None:
        k = self.knobs
        r = self.client_rand
        if r.random() < k.propose_rate and len(self.unresolved) < 40:
            pid = f"w{len(self.proposals) + 1}"
            p = Proposal(pid, f"k{r.randrange(k.keys)}", self.sched.now)
            self.proposals[pid] = p
            self.unresolved[pid] = p
            self.stats["proposals"] += 1
            self._propose(p)
        if r.random() < k.read_rate:
            self._read()
        self._retry_proposals()

    def _propose(self, p: Proposal) -> None:
        node = self._pick_target()
        p.last_try = self.sched.now
        p.tries += 1
        if node is None or node.rn is None:
            return
        p.target = node.id
        p.target_incarnation = node.incarnation
        p.target_term = node.term
        p.dropped = False
        self._current = node.id
        try:
            node.rn.propose(Command(p.id, p.key).encode())
            self.log.add(self.sched.now, node.id, f"propose {p.id} key={p.key} try={p.tries}")
        except ProposalDropped:
            p.dropped = True
            self.log.add(self.sched.now, node.id, f"propose {p.id} key={p.key} try={p.tries}: dropped")
        self._drive(node)

    def _retry_proposals(self) -> None:
        # The client retries what it has no answer for, backing off; it is told (by the oracle that
        # the simulator is) when a write committed elsewhere, so retries do not flood a slow log.
        now = self.sched.now
        # Back off while faults rage; once healed, retry steadily. A few retries per tick, oldest
        # first, so a crowd of retries does not trip max_uncommitted_entries_size all at once.
        backoff_cap = 4 if self.phase == "chaos" else 1
        budget = 8
        for p in sorted(self.unresolved.values(), key=lambda p: (p.last_try, p.id)):
            if p.last_try + self.retry_ticks * min(p.tries, backoff_cap) * UNITS_PER_TICK > now:
                continue
            if budget == 0:
                break
            # Like a client on a live connection, wait while the node that took the proposal is
            # still up and still leads the term it was proposed in (then it is in its log).
            target = self.nodes.get(p.target)
            waiting = (
                not p.dropped
                and target is not None
                and target.alive
                and target.incarnation == p.target_incarnation
                and target.state == StateType.LEADER
                and target.term == p.target_term
                and p.last_try + 10 * self.retry_ticks * UNITS_PER_TICK > now
            )
            if not waiting:
                budget -= 1
                self._propose(p)

    def _read(self) -> None:
        node = self._pick_target()
        if node is None or node.rn is None:
            return
        self._next_read += 1
        read_id = f"r{self._next_read}"
        key = f"k{self.client_rand.randrange(self.knobs.keys)}"
        ctx = read_id.encode()
        node.reads[ctx] = (read_id, key)
        self.checker.on_read_issued(self.sched.now, read_id, key)
        self.log.add(self.sched.now, node.id, f"read {read_id} key={key}")
        self._current = node.id
        node.rn.read_index(ctx)
        self._drive(node)

    def _conf_change(self) -> None:
        """Propose one membership change: add a learner (fresh id), promote one, or remove one."""
        if self.conf_pending_since is not None:
            if self.tick - self.conf_pending_since < 10 * self.knobs.election_tick:
                return
            self.conf_pending_since = None
        leader = self._leader_guess()
        if leader is None or leader.rn is None:
            return
        cs = self.conf_state
        if cs.voters_outgoing:
            return
        r = self.fault_rand
        voters = sorted(cs.voters)
        learners = sorted(cs.learners)
        options = ["add"]
        if learners:
            options += ["promote", "remove-learner"]
            if len(voters) >= 3:
                options.append("swap")  # promote a learner and demote a voter, jointly
        if len(voters) > 3:
            options.append("remove")
        what = r.choice(options)
        transition = ConfChangeTransition.AUTO
        changes: tuple[ConfChangeSingle, ...]
        if what == "add":
            node_id = self.next_node_id
            self.next_node_id += 1
            changes = (ConfChangeSingle(ConfChangeType.ADD_LEARNER_NODE, node_id),)
        elif what == "promote":
            changes = (ConfChangeSingle(ConfChangeType.ADD_NODE, r.choice(learners)),)
        elif what == "remove-learner":
            changes = (ConfChangeSingle(ConfChangeType.REMOVE_NODE, r.choice(learners)),)
        elif what == "swap":
            changes = (
                ConfChangeSingle(ConfChangeType.ADD_NODE, r.choice(learners)),
                ConfChangeSingle(ConfChangeType.ADD_LEARNER_NODE, r.choice(voters)),
            )
            transition = r.choice((ConfChangeTransition.AUTO, ConfChangeTransition.JOINT_IMPLICIT))
        else:
            changes = (ConfChangeSingle(ConfChangeType.REMOVE_NODE, r.choice(voters)),)
        cc = ConfChange(changes=changes, transition=transition)
        described = f"{what} {' '.join(str(c.node_id) for c in changes)}"
        self._current = leader.id
        try:
            leader.rn.propose_conf_change(cc)
        except ProposalDropped:
            self.log.add(self.sched.now, leader.id, f"conf change {described}: dropped")
            return
        self.conf_pending_since = self.tick
        self.log.add(self.sched.now, leader.id, f"propose conf change {described}")
        self._drive(leader)

    def _on_conf_applied(self, node: SimNode, index: int, cc: ConfChange, cs: ConfState) -> None:
        if index <= self.conf_index:
            return
        # First application of this change anywhere: the cluster's membership moves on.
        self.conf_index = index
        self.conf_state = cs
        self.conf_pending_since = None
        self.stats["conf_changes"] += 1
        self.log.add(
            self.sched.now,
            node.id,
            f"conf change applied at {index}: voters={list(cs.voters)} learners={list(cs.learners)} "
            f"outgoing={list(cs.voters_outgoing)}",
        )
        # Nodes enter the world when a configuration first names them, and leave it (shut down
        # for good, their ids never reused) when one no longer does.
        named = set(cs.voters) | set(cs.learners) | set(cs.voters_outgoing) | set(cs.learners_next)
        for target in sorted(named):
            if target not in self.nodes:
                self.nodes[target] = SimNode(target)
                self.sched.after(1, self._start_new, target)
        for target in sorted(self.nodes):
            if target not in named and not self.nodes[target].removed:
                self.sched.after(UNITS_PER_TICK, self._decommission, target)

    def _start_new(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.removed or node.alive:
            return
        self._start(node)
        self._schedule_ticks(node)

    def _decommission(self, node_id: int) -> None:
        node = self.nodes[node_id]
        cs = self.conf_state
        if node.removed or node_id in (*cs.voters, *cs.learners, *cs.voters_outgoing, *cs.learners_next):
            return
        if node.alive:
            self._crash(node, why="removed from the cluster")
        node.removed = True

    def _begin_liveness(self) -> None:
        self.phase = "liveness"
        self.phase_start = self.tick
        self.partition_epoch += 1
        self.partitioned = False
        self.net.heal()
        self.net.loss = 0.0
        self.net.dup = 0.0
        for node in self.members():
            if not node.alive:
                self._start(node)
        # Draining a backlog takes a round trip per message at worst (max_size_per_msg may hold
        # one entry, max_inflight_msgs one message): the bound grows with the backlog.
        members = self.members()
        backlog = max(n.storage.last_index() for n in members) - min(n.kv.applied for n in members)
        backlog += len(self.unresolved)
        round_trip_ticks = 2 * self.knobs.delay_max // UNITS_PER_TICK + 2
        self.liveness_bound = self.liveness_ticks + backlog * round_trip_ticks
        self.log.add(
            self.sched.now,
            None,
            f"liveness phase: heal all, restart all, no more faults (backlog {backlog}, "
            f"bound {self.liveness_bound} ticks)",
        )
        for p in self.unresolved.values():
            p.last_try = -(10**9)  # retry everything now
        self._retry_proposals()

    def _caught_up(self, index: int) -> bool:
        return all(n.alive and n.kv.applied >= index for n in self.members())

    def _check_progress(self) -> None:
        waited = self.tick - self.phase_start
        now = self.sched.now
        if self.phase == "liveness":
            ids = sorted(self.proposals)
            missing = [i for i in ids if i not in self.write_index]
            # Quiescent: every member applied all of the longest log (retried duplicates too),
            # so the probe measures the latency of one proposal, not the drain of a backlog.
            longest = max((n.storage.last_index() for n in self.alive_members()), default=0)
            if not missing and self._caught_up(max(longest, self.checker.max_committed)):
                self.phase = "probe"
                self.phase_start = self.tick
                pid = f"w{len(self.proposals) + 1}"
                p = Proposal(pid, "k0", now)
                self.proposals[pid] = p
                self.unresolved[pid] = p
                self.probe_id = pid
                self.log.add(now, None, f"all {len(ids)} proposals applied everywhere; probe {pid}")
                self._propose(p)
            elif waited > self.liveness_bound:
                lagging = [n.id for n in self.members() if n.kv.applied < self.checker.max_committed]
                self.checker.fail(
                    "liveness",
                    now,
                    f"after {waited} healed ticks: {len(missing)} proposals never committed "
                    f"({', '.join(missing[:5])}), nodes behind: {lagging}",
                )
        elif self.phase == "probe":
            assert self.probe_id is not None
            if self.proposals[self.probe_id].acked:
                self.phase = "catch-up"
                self.phase_start = self.tick
                self.log.add(now, None, f"probe {self.probe_id} committed in {waited} ticks")
            elif waited > self.probe_ticks:
                self.checker.fail(
                    "liveness", now, f"probe {self.probe_id} not committed after {waited} ticks"
                )
        elif self.phase == "catch-up":
            if self._caught_up(self.checker.max_committed):
                self.log.add(now, None, f"every member applied {self.checker.max_committed}")
                self._audit()
                self.checker.check_final(now, ((n.id, n.kv.applied, n.kv.seen) for n in self.members()))
                self.checker.check_states(now, ((n.id, n.kv.applied, n.kv.encode()) for n in self.members()))
                self.done = True
            elif waited > self.probe_ticks:
                lagging = [n.id for n in self.members() if n.kv.applied < self.checker.max_committed]
                self.checker.fail(
                    "liveness",
                    now,
                    f"nodes {lagging} did not apply {self.checker.max_committed} after {waited} ticks",
                )

    def _audit(self) -> None:
        for node in self.alive_members():
            self.checker.check_log(self.sched.now, node.id, node.storage.hard_state.commit, node.log_view())
