"""A deterministic simulation of whole petcd server Nodes (ring B), driven by one seed.

Theory of operation
-------------------
`ServerSimulation(seed)` boots 3 or 5 `petcd.server.node.Node`s as a new cluster. Each member
has its own disk - a `SimFileSystem` holding the WAL and snapshot files (`SimWalLogStore`) - and
a `CrashableBackend` (a MemoryBackend whose commits since the last `sync()` a power cut may
lose, as LMDB's unsynced commits), and its own clock: a `DriftingClock` running at 1 + drift of
simulated time. All members share the simulated `Network` of petcd.sim.network (loss, delay,
duplication, reordering, partitions); the Outbox of a member plans each message there and the
`Scheduler` delivers it (`Node.step`, or `receive_snapshot` with the db chunks for a MsgSnap,
the sender then told with `report_snapshot`). After anything is handed to a Node, its
`process_ready()` loop runs to quiescence: the Node writes its WAL synchronously, so a crash,
which happens between events, finds the WAL as the Node left it; what was not fsynced is then
lost or torn by `SimFileSystem.crash`, and the backend's unsynced commits are lost with
probability `lose_backend`. A restart builds a new Node over the same disk and backend.

Every member ticks on its own clock (period 10 units +- `tick_skew`), and once per tick the
"world" acts: faults start and end (crashes, partitions of a member, or a split), clients send
requests to a random live member - Put, Range (linearizable or serializable), DeleteRange, a Txn
compare-and-set on mod_revision, LeaseGrant then a Put with the lease - and open watches from a
past or current revision (with or without prev_kv) whose responses they drain. Each request is
recorded with its invoke and return times and result (petcd.sim.linearizability.KvOp); a crash
or an error leaves a write's outcome unknown. Every member's revision is observed after each
step (also right after a restart's first process_ready loop) and must never go back.

Phases: *chaos* for `ticks` ticks; *liveness*: heal the network, restart every member, stop
faults and clients - every pending request must complete or fail (the Node's request timeout)
within a bound; *probe*: one new Put must be acknowledged within a bound; *catch-up*: every
member reaches the same applied revision. Then the checkers of petcd.sim.server_checker run
over the final history (recorded as members applied it, see `HistoryRecorder`): members' agreement
on each revision and with what they still hold, HashKV agreement, no acknowledged write lost,
linearizability of the KV history, watch guarantees.

Determinism: all randomness comes from `random.Random(seed)` and generators derived from it
(knobs, network, faults, clients, crash tearing, each Node's raft jitter). The same seed gives the
same event log, byte for byte.

Leader transfers (MoveLeader on the leader) happen at `transfer_rate`.

Membership changes (`member_rate`, asked of the leader, or, at `member_via_follower`, adds and
removes asked of a follower, which raft forwards to the leader): add a new
member as a learner (a new slot with an empty disk, started once the leader's member list holds
its peer URL), promote the learner, remove a member (a voter only while more than three remain),
and re-add a removed member's slot as a new member (new ID, fresh disk: etcd refuses a removed
member's data). A member leaves for good once it applies its own removal or any live member
lists it as removed (etcd's peers refuse it); the slot's revision history then starts anew.
Clients talk to voters only (etcd's learners refuse most requests).

Compaction (`compact_rate`): a client compacts to a revision near the current one (physical or
not). Because compaction removes history, the final history is the one recorded as members apply
revisions (`HistoryRecorder`), checked against every member's own store above its compaction.
Lease keep-alives (`keepalive_rate`) renew granted leases on the leader.

These three knobs are drawn from a random stream of their own (and act through one), so that
seeds recorded before they existed replay their other events unchanged.

Not simulated yet: disk stalls (the WAL write is synchronous).
"""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace

from petcd.backend.memory import MemoryBackend
from petcd.errors import EtcdError
from petcd.fs.sim import SimFileSystem
from petcd.ids import cluster_id
from petcd.mvcc.watcher import WatchStream
from petcd.pb.etcdserverpb import rpc_pb2 as rpc
from petcd.pb.mvccpb import kv_pb2 as mvccpb
from petcd.raft.types import Message, MessageType
from petcd.server.membership import Member as NodeMember
from petcd.server.node import Node, NodeConfig, initial_members
from petcd.sim.checker import Violation
from petcd.sim.eventlog import EventLog
from petcd.sim.linearizability import KvOp
from petcd.sim.network import Network
from petcd.sim.scheduler import UNITS_PER_TICK, Scheduler
from petcd.sim.server_checker import (
    HistoryRecorder,
    RevisionWatch,
    WatchEvent,
    WatchRecord,
    change_of,
    check_acked_writes,
    check_hash_kv,
    check_kv_history,
    check_member_history,
    check_watches,
)
from petcd.sim.server_wal import SimWalLogStore

MAX_SLOTS = 7  # members ever added stay below this many slots
TICK_S = 0.1  # a raft tick (--heartbeat-interval) in seconds of a member's clock
SECONDS_PER_UNIT = TICK_S / UNITS_PER_TICK
DATA_DIR = "/data"


def peer_url(slot: int) -> str:
    return f"http://m{slot}:2380"


@dataclass(frozen=True, slots=True)
class ServerKnobs:
    nodes: int = 3
    election_ticks: int = 10
    pre_vote: bool = True
    snapshot_count: int = 30
    catchup_entries: int = 10
    loss: float = 0.0
    dup: float = 0.0
    delay_max: int = 10
    fifo: bool = False
    partition_rate: float = 0.0
    partition_ticks_max: int = 60
    crash_rate: float = 0.0
    down_ticks_max: int = 60
    lose_backend: float = 0.5  # chance that a power cut loses the backend's unsynced commits
    clock_drift: float = 0.0  # each member's clock runs at 1 +- up to this
    tick_skew: int = 0  # a member's tick lasts UNITS_PER_TICK +- up to this
    write_rate: float = 0.5
    read_rate: float = 0.3
    watch_rate: float = 0.03
    lease_rate: float = 0.03
    keys: int = 4
    # NodeConfig.durable_commit_before_apply; off (only with --set) brings back the revision going back
    # after a power cut that the server fixed (etcd#13766), to show the checker still sees it.
    durable_commit_before_apply: bool = True
    transfer_rate: float = 0.0  # per tick: the leader is asked to MoveLeader to another member
    member_rate: float = 0.0  # per tick: a membership change (add learner, promote, remove, re-add)
    compact_rate: float = 0.0  # per tick: a client Compact near the current revision
    keepalive_rate: float = 0.0  # per tick: a LeaseKeepAlive of a granted lease
    # share of member adds and removes asked of a follower (raft forwards them to the leader)
    member_via_follower: float = 0.0

    @classmethod
    def draw(cls, rand: random.Random, nodes: int | None = None) -> ServerKnobs:
        k = cls(
            nodes=rand.choice((3, 3, 5)),
            election_ticks=rand.choice((10, 10, 15)),
            pre_vote=rand.random() < 0.7,
            snapshot_count=rand.choice((10, 30, 100)),
            catchup_entries=rand.choice((2, 10, 50)),
            loss=rand.choice((0.0, 0.01, 0.05, 0.1)),
            dup=rand.choice((0.0, 0.0, 0.02, 0.1)),
            delay_max=rand.choice((2, 5, 10, 20)),
            fifo=rand.random() < 0.3,
            partition_rate=rand.choice((0.0, 0.005, 0.01, 0.02)),
            partition_ticks_max=rand.choice((20, 60, 120)),
            crash_rate=rand.choice((0.0, 0.005, 0.01, 0.02)),
            down_ticks_max=rand.choice((10, 40, 100)),
            lose_backend=rand.choice((0.0, 0.5, 1.0)),
            clock_drift=rand.choice((0.0, 0.0, 0.01, 0.05)),
            tick_skew=rand.choice((0, 0, 1, 2)),
            write_rate=rand.choice((0.3, 0.6, 1.0)),
            read_rate=rand.choice((0.1, 0.3, 0.6)),
            watch_rate=rand.choice((0.0, 0.02, 0.05)),
            lease_rate=rand.choice((0.0, 0.02, 0.05)),
            keys=rand.choice((1, 3, 8)),
            transfer_rate=rand.choice((0.0, 0.0, 0.01, 0.03)),
        )
        # The later knobs from a copy of the stream: `rand` itself moves on as before they existed.
        fork = random.Random()
        fork.setstate(rand.getstate())
        extra = random.Random(fork.getrandbits(64) ^ 0x6D656D62)
        k = replace(
            k,
            member_rate=extra.choice((0.0, 0.01, 0.02, 0.05)),
            compact_rate=extra.choice((0.0, 0.01, 0.03, 0.1)),
            keepalive_rate=extra.choice((0.0, 0.05, 0.2)),
            member_via_follower=extra.choice((0.0, 0.5)),
        )
        if nodes is not None:
            k = replace(k, nodes=nodes)
        return k

    def with_overrides(self, overrides: dict[str, str]) -> ServerKnobs:
        values: dict[str, object] = {}
        for name, text in overrides.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown server knob {name!r}")
            current = getattr(self, name)
            if isinstance(current, bool):
                values[name] = text.lower() in ("true", "1")
            elif isinstance(current, int):
                values[name] = int(text)
            else:
                values[name] = float(text)
        return replace(self, **values)  # type: ignore[arg-type]

    def describe(self) -> str:
        return " ".join(f"{name}={value}" for name, value in asdict(self).items())


@dataclass(slots=True)
class ServerResult:
    seed: int
    knobs: ServerKnobs
    violations: list[Violation]
    stats: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        stats = " ".join(f"{k}={v}" for k, v in self.stats.items())
        verdict = "ok" if self.ok else f"FAIL {self.violations[0]}"
        return f"server seed {self.seed}: {verdict} [{stats}]"


class CrashableBackend(MemoryBackend):
    """A MemoryBackend whose commits since the last sync() a power cut may lose."""

    def __init__(self) -> None:
        super().__init__()
        self._synced: list[bytes] = list(MemoryBackend().snapshot())

    def sync(self) -> None:
        self._synced = list(self.snapshot())

    def power_cut(self) -> None:
        self.restore(self._synced)


class DriftingClock:
    """A member's monotonic clock: simulated time at its own rate."""

    def __init__(self, sched: Scheduler, rate: float, offset_s: float) -> None:
        self._sched = sched
        self.rate = rate
        self.offset_s = offset_s

    def now_s(self) -> float:
        return self.offset_s + self._sched.now * SECONDS_PER_UNIT * self.rate


class _Sink:
    def __init__(self, sim: ServerSimulation, slot: int, incarnation: int) -> None:
        self._sim = sim
        self._slot = slot
        self._incarnation = incarnation

    def resolve(self, request_id: int, result: object | EtcdError) -> None:
        self._sim.on_result(self._slot, self._incarnation, request_id, result)


class _Outbox:
    def __init__(self, sim: ServerSimulation, slot: int, incarnation: int) -> None:
        self._sim = sim
        self._slot = slot
        self._incarnation = incarnation

    def send(self, messages: Sequence[Message]) -> None:
        for m in messages:
            self._sim.send(self._slot, self._incarnation, m, None)

    def send_snapshot(self, message: Message, db: Iterable[bytes]) -> None:
        self._sim.send(self._slot, self._incarnation, message, list(db))


@dataclass(slots=True)
class Pending:
    op: KvOp | None  # None: a lease grant (lease_key set) or another request, named by `what`
    lease_key: bytes = b""
    lease_value: bytes = b""
    what: str = ""  # for op None: "lease", "transfer", "compact", "member-add", ...


@dataclass(slots=True)
class LiveWatch:
    record: WatchRecord
    stream: WatchStream
    watch_id: int
    incarnation: int


@dataclass(slots=True)
class Member:
    slot: int  # 1..n: the name in the event log and the address on the network
    id: int
    config: NodeConfig
    fs: SimFileSystem = field(default_factory=SimFileSystem)
    backend: CrashableBackend = field(default_factory=CrashableBackend)
    clock: DriftingClock | None = None
    node: Node | None = None
    incarnation: int = 0
    tick_period: int = UNITS_PER_TICK
    pending: dict[int, Pending] = field(default_factory=dict)
    watches: list[LiveWatch] = field(default_factory=list)
    down_until: int = 0
    lead: int = 0
    gone: bool = False  # removed from the cluster: never started again


class ServerSimulation:
    def __init__(
        self,
        seed: int,
        *,
        ticks: int = 200,
        nodes: int | None = None,
        knobs: ServerKnobs | None = None,
        overrides: dict[str, str] | None = None,
        log: EventLog | None = None,
        lin_budget: int = 200_000,
    ) -> None:
        self.seed = seed
        self.rand = random.Random(seed)
        self.knobs = knobs if knobs is not None else ServerKnobs.draw(self.rand, nodes)
        if overrides:
            self.knobs = self.knobs.with_overrides(overrides)
        k = self.knobs
        self.ticks = ticks
        self.lin_budget = lin_budget
        self.log = log if log is not None else EventLog(enabled=False)
        self.sched = Scheduler()
        self.net = Network(
            random.Random(self.rand.getrandbits(64)),
            loss=k.loss,
            dup=k.dup,
            delay_min=1,
            delay_max=k.delay_max,
            fifo=k.fifo,
        )
        self.fault_rand = random.Random(self.rand.getrandbits(64))
        self.client_rand = random.Random(self.rand.getrandbits(64))
        self.disk_rand = random.Random(self.rand.getrandbits(64))
        self.node_seeds = random.Random(self.rand.getrandbits(64))
        # membership changes, compaction and keep-alives (see the module docstring)
        self.extra_rand = random.Random((seed << 20) ^ 0x45585452)
        self.follower_rand = random.Random((seed << 20) ^ 0x464F4C4C)
        self.recorder = HistoryRecorder()
        self.compactions: set[int] = set()
        self.granted: list[int] = []
        # slots being added: slot -> tick by which the leader's member list should name it
        self.adding: dict[int, int] = {}
        self.violations: list[Violation] = []
        self.revisions = RevisionWatch()
        self.ops: list[KvOp] = []
        self.watches: list[WatchRecord] = []
        self.next_op = 0
        self.value_seq = 0
        self.phase = "chaos"
        self.phase_start = 0
        self.done = False
        self.tick = 0
        self.partitioned_until = 0
        self.probe: KvOp | None = None
        self.settled_ticks = 0
        self.leases: list[int] = []
        self._current: int | None = None
        self.node_logger = logging.getLogger("petcd.sim.server.node")
        self.node_logger.addHandler(logging.NullHandler())
        self.node_logger.propagate = False
        self.node_logger.disabled = True
        self.stats: dict[str, int] = {
            "ticks": 0,
            "ops": 0,
            "acked": 0,
            "reads": 0,
            "unknown": 0,
            "crashes": 0,
            "partitions": 0,
            "watches": 0,
            "watch_events": 0,
            "snapshots_sent": 0,
            "leases": 0,
            "transfers": 0,
            "member_changes": 0,
            "members_left": 0,
            "re_adds": 0,
            "watches_compacted": 0,
            "compactions": 0,
            "keepalives": 0,
            "revision": 0,
        }
        peers = {f"m{i}": [f"http://m{i}:2380"] for i in range(1, k.nodes + 1)}
        members = initial_members(peers)
        self.cluster_id = cluster_id(m.id for m in members)
        by_name = {m.name: m for m in members}
        self.members: dict[int, Member] = {}
        self.slot_of: dict[int, int] = {}
        for slot in range(1, k.nodes + 1):
            m = by_name[f"m{slot}"]
            rate = 1.0 + self.fault_rand.uniform(-k.clock_drift, k.clock_drift)
            mem = Member(slot, m.id, self._member_config(slot, m.id, members))
            mem.clock = DriftingClock(self.sched, rate, 1000.0 + 100.0 * slot)
            mem.tick_period = UNITS_PER_TICK + self.fault_rand.randint(-k.tick_skew, k.tick_skew)
            self.members[slot] = mem
            self.slot_of[m.id] = slot

    def _member_config(self, slot: int, member_id: int, initial: Sequence[NodeMember] = ()) -> NodeConfig:
        """`initial`: a new cluster's members; empty for a member joining after `member add`."""
        k = self.knobs
        return NodeConfig(
            member_id=member_id,
            cluster_id=self.cluster_id,
            name=f"m{slot}",
            peer_urls=(peer_url(slot),),
            client_urls=(f"http://m{slot}:2379",),
            initial_members=tuple(initial),
            tick_s=TICK_S,
            election_ticks=k.election_ticks,
            heartbeat_ticks=1,
            snapshot_count=k.snapshot_count,
            snapshot_catchup_entries=k.catchup_entries,
            pre_vote=k.pre_vote,
            request_timeout_s=3.0,
            durable_commit_before_apply=k.durable_commit_before_apply,
        )

    # ---------------------------------------------------------------------------------------
    # running

    def run(self) -> ServerResult:
        k = self.knobs
        self.log.add(0, None, f"server seed {self.seed} knobs {k.describe()}")
        end = (self.ticks + 5000) * UNITS_PER_TICK
        try:
            for mem in self.members.values():
                self._start(mem)
                self.sched.at(self.fault_rand.randint(1, UNITS_PER_TICK - 1), self._member_tick, mem.slot)
            self.sched.at(UNITS_PER_TICK, self._world_tick)
            self.sched.run_until(end, stop=lambda: self.done or bool(self.violations))
        except Exception as e:  # a server panic or a simulator bug: either way the seed fails
            where = f"m{self._current}" if self._current is not None else "simulator"
            tb = traceback.extract_tb(e.__traceback__)[-1]
            self._fail("exception", f"{where}: {type(e).__name__}: {e} ({tb.filename}:{tb.lineno})")
        if not self.done and not self.violations:
            self._fail("liveness", "the run did not finish (simulator bug)")
        self.violations.extend(self.revisions.violations)
        self.stats["ticks"] = self.tick
        self.stats["ops"] = len(self.ops)
        for v in self.violations:
            self.log.add(self.sched.now, None, f"VIOLATION {v}")
        return ServerResult(self.seed, k, list(self.violations), dict(self.stats), self.log.lines)

    def _fail(self, kind: str, detail: str) -> None:
        self.violations.append(Violation(kind, self.sched.now, detail))

    def _say(self, slot: int | None, what: str) -> None:
        self.log.add(self.sched.now, slot, what)

    # ---------------------------------------------------------------------------------------
    # members

    def _start(self, mem: Member) -> None:
        mem.incarnation += 1
        assert mem.clock is not None
        cfg = replace(mem.config, seed=self.node_seeds.getrandbits(32))
        self._current = mem.slot
        node = Node(
            cfg,
            SimWalLogStore(mem.fs, DATA_DIR, mem.id, cfg.cluster_id),
            mem.backend,
            _Outbox(self, mem.slot, mem.incarnation),
            mem.clock,
            _Sink(self, mem.slot, mem.incarnation),
            logger=self.node_logger,
        )
        mem.node = node
        watch_sink = node.watchable.event_sink
        slot = mem.slot

        def tee(revision: int, events: Sequence[mvccpb.Event]) -> None:
            self.recorder.record(self.sched.now, slot, revision, events)
            watch_sink(revision, events)

        node.kv.set_event_sink(tee)
        self._drive(mem)
        self._say(
            mem.slot,
            f"start #{mem.incarnation} applied={node.applied_index} rev={node.kv.current_rev} "
            f"commit={node.committed_index} recovered={node.recovered}",
        )

    def _drive(self, mem: Member) -> None:
        node = mem.node
        if node is None:
            return
        self._current = mem.slot
        while node.process_ready():
            pass
        if node.recovered:  # what a client may see (the runtime serves from then on)
            self.revisions.observe(
                self.sched.now, mem.slot, node.kv.current_rev, f"(incarnation {mem.incarnation})"
            )
        if node.leader_id != mem.lead:
            mem.lead = node.leader_id
            self._say(mem.slot, f"leader m{self.slot_of.get(node.leader_id, 0)} term={node.term}")
        self._current = None
        if node.removed:
            self._leave(mem, "applied its own removal")

    def _member_tick(self, slot: int) -> None:
        mem = self.members[slot]
        self.sched.after(mem.tick_period, self._member_tick, slot)
        if mem.node is not None:
            self._current = slot
            mem.node.tick()
            self._drive(mem)

    def _crash(self, mem: Member) -> None:
        node = mem.node
        if node is None:
            return
        lose = self.disk_rand.random() < self.knobs.lose_backend
        self._say(
            mem.slot,
            f"power cut at applied={node.applied_index} rev={node.kv.current_rev} "
            f"commit={node.committed_index} (backend's unsynced commits {'lost' if lose else 'kept'})",
        )
        self.stats["crashes"] += 1
        mem.node = None
        mem.fs.crash(self.disk_rand)
        if lose:
            mem.backend.power_cut()
        self._abandon(mem, "member crashed")
        mem.down_until = self.tick + self.fault_rand.randint(1, self.knobs.down_ticks_max)

    def _abandon(self, mem: Member, why: str) -> None:
        """The member's clients lose their connection: outcomes unknown, watches cancelled."""
        for _rid, p in sorted(mem.pending.items()):
            self._unknown(p)
        mem.pending.clear()
        for lw in mem.watches:
            lw.record.canceled = why
        mem.watches.clear()

    def _leave(self, mem: Member, why: str) -> None:
        """The member is out of the cluster for good (the runtime stops a removed member)."""
        if mem.gone:
            return
        mem.gone = True
        self.stats["members_left"] += 1
        self._say(mem.slot, f"leaves the cluster: {why}")
        if mem.node is not None:
            mem.node.stop()
            mem.node = None
        self._abandon(mem, "member removed")

    def _unknown(self, p: Pending) -> None:
        if p.op is not None and p.op.kind not in ("get", "sget"):
            self.stats["unknown"] += 1
            self.ops.append(p.op)  # ret stays None: outcome unknown

    # ---------------------------------------------------------------------------------------
    # network

    def send(self, slot: int, incarnation: int, m: Message, db: list[bytes] | None) -> None:
        to = self.slot_of.get(m.to)
        if to is None:
            return
        plan = self.net.plan(self.sched.now, slot, to)
        if db is not None:
            self.stats["snapshots_sent"] += 1
            self._say(slot, f"send snapshot to m{to} index={m.snapshot.metadata.index if m.snapshot else 0}")
            if not plan.deliveries:
                self.sched.after(UNITS_PER_TICK, self._snapshot_done, slot, incarnation, m.to, False)
                return
            plan.deliveries = plan.deliveries[:1]
        if m.type == MessageType.MSG_PROP:
            # A forwarded proposal travels once (TCP does not duplicate, and etcd does not
            # deduplicate applies: a duplicated MsgProp would be a second write).
            plan.deliveries = plan.deliveries[:1]
        for t in plan.deliveries:
            self.sched.at(t, self._deliver, slot, incarnation, to, m, db)

    def _deliver(self, frm: int, frm_incarnation: int, to: int, m: Message, db: list[bytes] | None) -> None:
        dest = self.members[to]
        if dest.node is None or dest.id != m.to:  # down, or the slot holds a new member now
            if db is not None:
                self._snapshot_done(frm, frm_incarnation, m.to, False)
            return
        self._current = to
        if db is not None and m.type == MessageType.MSG_SNAP:
            dest.node.receive_snapshot(m, db)
            self._drive(dest)
            self._snapshot_done(frm, frm_incarnation, m.to, True)
        else:
            dest.node.step(m)
            self._drive(dest)

    def _snapshot_done(self, frm: int, incarnation: int, to: int, ok: bool) -> None:
        sender = self.members[frm]
        if sender.node is not None and sender.incarnation == incarnation:
            sender.node.report_snapshot(to, ok)
            self._drive(sender)

    # ---------------------------------------------------------------------------------------
    # the world

    def _world_tick(self) -> None:
        self.tick += 1
        self.sched.after(UNITS_PER_TICK, self._world_tick)
        self._drain_watches()
        self._sync_membership()
        if self.phase == "chaos":
            self._faults()
            self._clients()
            if self.tick >= self.ticks:
                self._begin_liveness()
        else:
            self._check_progress()

    def _alive(self) -> list[Member]:
        return [m for m in self.members.values() if m.node is not None]

    def _faults(self) -> None:
        k = self.knobs
        r = self.fault_rand
        for mem in self.members.values():
            if mem.node is None and not mem.gone and self.tick >= mem.down_until:
                self._say(mem.slot, "restart")
                self._start(mem)
        if self.partitioned_until and self.tick >= self.partitioned_until:
            self.partitioned_until = 0
            self.net.heal()
            self._say(None, "heal")
        elif not self.partitioned_until and r.random() < k.partition_rate:
            slots = sorted(self.members)
            if r.random() < 0.5:
                victim = r.choice(slots)
                self.net.isolate(victim, slots)
            else:
                r.shuffle(slots)
                cut = r.randint(1, len(slots) - 1)
                self.net.partition([slots[:cut], slots[cut:]])
            self.partitioned_until = self.tick + r.randint(5, k.partition_ticks_max)
            self.stats["partitions"] += 1
            self._say(None, f"partition {self.net.describe_cut()}")
        alive = self._alive()
        if alive and r.random() < k.crash_rate:
            self._crash(r.choice(alive))
        if r.random() < k.transfer_rate:
            self._transfer_leader()
        if self.extra_rand.random() < k.member_rate:
            self._change_membership()

    def _leader(self) -> Member | None:
        leaders = [m for m in self._alive() if m.node is not None and m.node.is_leader]
        return leaders[0] if leaders else None

    def _transfer_leader(self) -> None:
        mem = self._leader()
        if mem is None:
            return
        target = self.fault_rand.choice([m for m in self.members.values() if m is not mem])
        self.stats["transfers"] += 1
        self._submit(mem, None, "move_leader", target.id, Pending(None, what="transfer"))

    # ---------------------------------------------------------------------------------------
    # membership

    def _change_membership(self) -> None:
        """One change asked of the leader: promote the learner, add a learner (a new slot, or a
        removed member's slot re-added with an empty disk), or remove a member."""
        leader = self._leader()
        if leader is None or leader.node is None or self.adding:
            return
        node = leader.node
        r = self.extra_rand
        asker = leader
        if self.knobs.member_via_follower and self.follower_rand.random() < self.knobs.member_via_follower:
            followers = [m for m in self._serving() if m is not leader]
            asker = self.follower_rand.choice(followers) if followers else leader
        listed = node.members.sorted_members()
        learners = [m for m in listed if m.is_learner]
        voters = [m for m in listed if not m.is_learner]
        x = r.random()
        if learners and x < 0.5:
            target = learners[0]
            self._request(leader, f"promote {target.id:x}", lambda n: n.member_promote(target.id), "promote")
        elif x < 0.75:
            gone = [slot for slot, m in self.members.items() if m.gone]
            if gone and r.random() < 0.5:
                slot = r.choice(gone)
            elif len(self.members) < MAX_SLOTS:
                slot = max(self.members) + 1
            else:
                return
            url = peer_url(slot)
            if any(url in m.peer_urls for m in listed):
                return  # its removal is not applied on the leader yet
            if self._request(asker, f"add m{slot} as learner", lambda n: n.member_add([url], True), "add"):
                self.adding[slot] = self.tick + 100
                if slot in self.members:
                    self.stats["re_adds"] += 1
        else:
            candidates = learners + (voters if len(voters) > 3 else [])
            if not candidates:
                return
            target = r.choice(candidates)
            self._request(asker, f"remove {target.id:x}", lambda n: n.member_remove(target.id), "remove")

    def _sync_membership(self) -> None:
        """Members listed as removed leave; added members start once listed (see the docstring)."""
        alive = [m.node for m in self.members.values() if m.node is not None]
        removed = set().union(*(n.members.removed for n in alive)) if alive else set()
        for mem in list(self.members.values()):
            if not mem.gone and mem.id in removed:
                self._leave(mem, "listed as removed")
        for slot, deadline in sorted(self.adding.items()):
            url = peer_url(slot)
            new = {
                m.id
                for n in alive
                for m in n.members.members.values()
                if url in m.peer_urls and m.id not in self.slot_of and m.id not in removed
            }
            if new:
                del self.adding[slot]
                self._start_new_member(slot, min(new))
            elif self.tick > deadline:
                del self.adding[slot]
                self._say(slot, "add never applied")

    def _start_new_member(self, slot: int, member_id: int) -> None:
        k = self.knobs
        r = self.extra_rand
        old = self.members.get(slot)
        mem = Member(slot, member_id, self._member_config(slot, member_id))
        rate = 1.0 + r.uniform(-k.clock_drift, k.clock_drift)
        mem.clock = DriftingClock(self.sched, rate, 1000.0 + 100.0 * slot)
        mem.tick_period = UNITS_PER_TICK + r.randint(-k.tick_skew, k.tick_skew)
        self.members[slot] = mem
        self.slot_of[member_id] = slot
        self.revisions.forget(slot)
        self.stats["member_changes"] += 1
        self._say(slot, f"new member {member_id:x} (empty disk)")
        self._start(mem)
        if old is None:  # a re-used slot's tick loop runs on
            self.sched.after(r.randint(1, UNITS_PER_TICK - 1), self._member_tick, slot)

    # ---------------------------------------------------------------------------------------
    # clients

    def _new_op(self, kind: str, key: bytes, mem: Member) -> KvOp:
        self.next_op += 1
        return KvOp(id=self.next_op, kind=kind, key=key, invoke=self.sched.now, member=mem.slot)

    def _value(self) -> bytes:
        self.value_seq += 1
        return b"v%d" % self.value_seq

    def _serving(self) -> list[Member]:
        """Members a client can reach: up and recovered (as the runtime, which serves only then),
        and voters (etcd's learners refuse client requests)."""
        out = []
        for m in self.members.values():
            if m.node is not None and m.node.recovered:
                me = m.node.members.get(m.id)
                if me is not None and not me.is_learner:
                    out.append(m)
        return out

    def _clients(self) -> None:
        k = self.knobs
        r = self.client_rand
        alive = self._serving()
        if not alive:
            return
        if r.random() < k.write_rate:
            self._write(r.choice(alive))
        if r.random() < k.read_rate:
            self._read(r.choice(alive))
        if r.random() < k.watch_rate:
            self._watch(r.choice(alive))
        if r.random() < k.lease_rate:
            self._lease(r.choice(alive))
        x = self.extra_rand
        if x.random() < k.compact_rate:
            self._compact(x.choice(alive))
        if x.random() < k.keepalive_rate:
            self._keepalive()

    def _submit(self, mem: Member, op: KvOp | None, call: str, req: object, pending: Pending) -> None:
        """Call `node.<call>(req)` and track the request ID (a refusal is logged and dropped)."""
        node = mem.node
        assert node is not None
        try:
            rid: int = getattr(node, call)(req)
        except EtcdError as e:
            self._say(mem.slot, f"refused {op.describe() if op else call}: {type(e).__name__}")
            return
        mem.pending[rid] = pending
        self._say(mem.slot, f"invoke {op.describe() if op else call}")

    def _request(self, mem: Member, label: str, call: Callable[[Node], int], what: str) -> bool:
        """A request that is not a KV op (membership, compaction); whether it was taken."""
        assert mem.node is not None
        try:
            rid = call(mem.node)
        except EtcdError as e:
            self._say(mem.slot, f"refused {label}: {type(e).__name__}")
            return False
        mem.pending[rid] = Pending(None, what=what)
        self._say(mem.slot, f"invoke {label}")
        return True

    def _compact(self, mem: Member) -> None:
        x = self.extra_rand
        assert mem.node is not None
        rev = mem.node.kv.current_rev
        target = x.randint(max(1, rev - 30), rev)
        req = rpc.CompactionRequest(revision=target, physical=x.random() < 0.3)
        self.compactions.add(target)
        self.stats["compactions"] += 1
        self._request(mem, f"compact {target} physical={req.physical}", lambda n: n.compact(req), "compact")

    def _keepalive(self) -> None:
        leader = self._leader()
        if leader is None or leader.node is None or not self.granted:
            return
        lease = self.extra_rand.choice(self.granted[-8:])
        self.stats["keepalives"] += 1
        try:
            resp = leader.node.lease_renew(lease)
        except EtcdError as e:
            self._say(leader.slot, f"keepalive {lease:x}: {type(e).__name__}")
            return
        self._say(leader.slot, f"keepalive {lease:x} ttl={resp.TTL}")

    def _write(self, mem: Member) -> None:
        r = self.client_rand
        key = b"k%d" % r.randrange(self.knobs.keys)
        what = r.random()
        if what < 0.6:
            op = self._new_op("put", key, mem)
            op.value = self._value()
            self._submit(mem, op, "put", rpc.PutRequest(key=key, value=op.value), Pending(op))
        elif what < 0.8:
            op = self._new_op("delete", key, mem)
            self._submit(mem, op, "delete_range", rpc.DeleteRangeRequest(key=key), Pending(op))
        else:
            op = self._new_op("cas", key, mem)
            op.value = self._value()
            op.expect_mod = self._guess_mod(key)
            req = rpc.TxnRequest(
                compare=[
                    rpc.Compare(
                        key=key,
                        target=rpc.Compare.MOD,
                        result=rpc.Compare.EQUAL,
                        mod_revision=op.expect_mod,
                    )
                ],
                success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=op.value))],
            )
            self._submit(mem, op, "txn", req, Pending(op))

    def _guess_mod(self, key: bytes) -> int:
        """A recent mod_revision of the key as some client saw it (or 0), to make CAS succeed often."""
        for o in reversed(self.ops[-50:]):
            if o.key == key and o.known:
                if o.kind in ("get", "sget"):
                    return o.found_mod if o.found is not None else 0
                if o.kind in ("put", "cas") and o.revision and (o.kind == "put" or o.succeeded):
                    return o.revision
        return 0

    def _read(self, mem: Member) -> None:
        r = self.client_rand
        key = b"k%d" % r.randrange(self.knobs.keys)
        node = mem.node
        assert node is not None
        if r.random() < 0.25:
            op = self._new_op("sget", key, mem)
            resp = node.range(rpc.RangeRequest(key=key, serializable=True))
            op.ret = self.sched.now
            self._fill_get(op, resp)
            self.ops.append(op)
            self.stats["reads"] += 1
            self._say(mem.slot, f"serializable {op.describe()}")
            return
        op = self._new_op("get", key, mem)
        self._submit(mem, op, "linearizable_range", rpc.RangeRequest(key=key), Pending(op))

    @staticmethod
    def _fill_get(op: KvOp, resp: rpc.RangeResponse) -> None:
        op.revision = resp.header.revision
        if resp.kvs:
            op.found = resp.kvs[0].value
            op.found_mod = resp.kvs[0].mod_revision

    def _lease(self, mem: Member) -> None:
        r = self.client_rand
        ttl = r.choice((2, 5, 30))
        key = b"L%d" % r.randrange(4)
        # The put follows once the grant is answered: a Pending without an op.
        self._submit(
            mem,
            None,
            "lease_grant",
            rpc.LeaseGrantRequest(TTL=ttl),
            Pending(None, key, self._value(), what="lease"),
        )

    def _watch(self, mem: Member) -> None:
        r = self.client_rand
        node = mem.node
        assert node is not None
        if len(mem.watches) >= 3:
            lw = mem.watches.pop(0)
            lw.stream.close()
            lw.record.canceled = "closed by client"
        rev = node.kv.current_rev
        start_rev = r.randint(max(1, rev - 20), rev + 1)
        if r.random() < 0.5:
            start, end = b"k", b"l"
        else:
            start, end = b"", b"\x00"
        prev_kv = r.random() < 0.5
        stream = node.watchable.new_watch_stream()
        wid = stream.watch(start, end, start_rev, prev_kv=prev_kv)
        self.stats["watches"] += 1
        rec = WatchRecord(len(self.watches) + 1, mem.slot, start, end, start_rev, prev_kv)
        self.watches.append(rec)
        mem.watches.append(LiveWatch(rec, stream, wid, mem.incarnation))
        self._say(mem.slot, f"{rec.describe()} prev_kv={prev_kv}")

    def _drain_watches(self) -> None:
        for mem in self.members.values():
            for lw in mem.watches:
                if mem.node is not None:
                    lw.record.compacted_seen = mem.node.kv.compact_rev
                for resp in lw.stream.drain():
                    if resp.canceled:
                        lw.record.canceled = resp.cancel_reason or "canceled"
                        lw.record.compact_revision = resp.compact_revision
                        if resp.compact_revision:
                            self.stats["watches_compacted"] += 1
                        else:  # nothing in the simulation asks the server to cancel a watch
                            lw.record.unexpected_cancel = lw.record.canceled
                        continue
                    events = []
                    for e in resp.events:
                        kv = e.kv
                        prev = None
                        if e.prev_kv is not None and e.prev_kv.key:
                            prev = (bytes(e.prev_kv.value), int(e.prev_kv.mod_revision))
                        value = None if e.type == 1 else bytes(kv.value)
                        events.append(WatchEvent(int(kv.mod_revision), bytes(kv.key), value, prev))
                    self.stats["watch_events"] += len(events)
                    lw.record.responses.append((resp.revision, events))

    def on_result(self, slot: int, incarnation: int, rid: int, result: object) -> None:
        mem = self.members[slot]
        if incarnation != mem.incarnation:
            return
        p = mem.pending.pop(rid, None)
        if p is None:
            return
        op = p.op
        if op is None and p.what != "lease":  # leader transfer, membership, compaction
            self._say(slot, f"{p.what}: {type(result).__name__}")
            return
        if op is None:  # a lease grant
            if isinstance(result, rpc.LeaseGrantResponse) and not result.error and mem.node is not None:
                self.stats["leases"] += 1
                self.granted.append(result.ID)
                put = self._new_op("put", p.lease_key, mem)
                put.value = p.lease_value
                self._say(slot, f"lease {result.ID:x} ttl={result.TTL}")
                self._submit(
                    mem,
                    put,
                    "put",
                    rpc.PutRequest(key=p.lease_key, value=p.lease_value, lease=result.ID),
                    Pending(put),
                )
            return
        if isinstance(result, (EtcdError, BaseException)):
            self._say(slot, f"error {op.describe()}: {type(result).__name__}")
            self._unknown(p)
            return
        op.ret = self.sched.now
        if op.kind == "get":
            assert isinstance(result, rpc.RangeResponse), result
            self._fill_get(op, result)
            self.stats["reads"] += 1
        elif op.kind == "put":
            assert isinstance(result, rpc.PutResponse), result
            op.revision = result.header.revision
            self.stats["acked"] += 1
        elif op.kind == "delete":
            assert isinstance(result, rpc.DeleteRangeResponse), result
            op.revision = result.header.revision
            op.deleted = result.deleted
            self.stats["acked"] += 1
        elif op.kind == "cas":
            assert isinstance(result, rpc.TxnResponse), result
            op.revision = result.header.revision
            op.succeeded = result.succeeded
            self.stats["acked"] += 1
        self.ops.append(op)
        self._say(slot, f"return {op.describe()}")
        if op is self.probe:
            self._say(None, "probe acknowledged")

    # ---------------------------------------------------------------------------------------
    # liveness and the final checks

    def _begin_liveness(self) -> None:
        self.phase = "liveness"
        self.phase_start = self.tick
        self.net.heal()
        self.partitioned_until = 0
        self._say(None, "liveness: heal, restart every member, clients stop")
        for mem in self.members.values():
            if mem.node is None and not mem.gone:
                self._start(mem)

    def _pending_count(self) -> int:
        return sum(len(m.pending) for m in self.members.values())

    def _check_progress(self) -> None:
        waited = self.tick - self.phase_start
        if self.phase == "liveness":
            # The Node's request timeout (3 s = 30 ticks) bounds every pending request.
            if self._pending_count() == 0:
                self.phase = "probe"
                self.phase_start = self.tick
                self._say(None, "every pending request completed or failed; probe")
            elif waited > 30 + 20 * self.knobs.election_ticks:
                left = [
                    p.op.describe() if p.op else p.what
                    for m in self.members.values()
                    for p in m.pending.values()
                ]
                self._fail("liveness", f"requests still pending after {waited} ticks: {left[:5]}")
            return
        if self.phase == "probe":
            if self.probe is not None and self.probe.known:
                self.phase = "catch-up"
                self.phase_start = self.tick
                return
            if waited > 60 * self.knobs.election_ticks:
                self._fail("liveness", f"no write acknowledged within {waited} ticks of healing")
                return
            probe_pending = any(p.op is self.probe for m in self.members.values() for p in m.pending.values())
            if self.probe is None or not probe_pending:
                alive = self._alive()
                mem = alive[waited % len(alive)]
                self.probe = self._new_op("put", b"probe", mem)
                self.probe.value = self._value()
                req = rpc.PutRequest(key=b"probe", value=self.probe.value)
                self._submit(mem, self.probe, "put", req, Pending(self.probe))
            return
        # catch-up: every member at one revision and applied index
        nodes = [m.node for m in self.members.values() if m.node is not None]
        revs = {n.kv.current_rev for n in nodes}
        applied = {n.applied_index for n in nodes}
        if len(revs) == 1 and len(applied) == 1 and self._pending_count() == 0:
            # A few more ticks for the watchers to catch up (they sync on ticks) before judging.
            self.settled_ticks += 1
            if self.settled_ticks > 3:
                self._final_checks()
                self.done = True
        elif waited > 40 * self.knobs.election_ticks:
            self._fail(
                "liveness", f"members did not catch up: revisions {sorted(revs)}, applied {sorted(applied)}"
            )

    def _final_checks(self) -> None:
        self._drain_watches()
        for mem in self.members.values():
            for lw in mem.watches:
                lw.record.complete = not lw.record.canceled
        now = self.sched.now
        nodes = {slot: m.node for slot, m in self.members.items() if m.node is not None}
        rev = min(n.kv.current_rev for n in nodes.values())
        self.stats["revision"] = rev
        hashes = {slot: (n.kv.current_rev, n.hash_kv(rev).hash) for slot, n in nodes.items()}
        self.violations.extend(check_hash_kv(hashes, now))
        final, problems = self.recorder.final(rev, now)
        self.violations.extend(problems)
        for slot, n in nodes.items():
            lo = n.kv.compact_rev + 1
            held = [change_of(r, is_delete, kv) for r, is_delete, kv in n.kv.history(lo, rev)]
            self.violations.extend(check_member_history(slot, held, final, (lo, rev), now))
        self.violations.extend(check_acked_writes(self.ops, final, now))
        kv_ops = [o for o in self.ops if o.key.startswith(b"k")]
        self.violations.extend(check_kv_history(kv_ops, final, now, self.lin_budget))
        self.violations.extend(check_watches(self.watches, final, now, self.compactions))
        self._say(None, f"final: revision {rev}, {len(final.changes)} changes, {len(self.ops)} ops checked")
