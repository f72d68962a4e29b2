"""The server Node: one etcd member's core, synchronous, driven by one owner thread (ring B).

A `Node` holds the raft RawNode, the MVCC store (`kv`) with its watchable store (`watchable`), the
lessor, the member list and the alarms, and turns raft's Readies into durable state, messages and
applied results. All I/O goes through the ports of petcd.server.ports, handed to the constructor:
`LogStore` (the WAL), `Backend`, `Outbox` (peers), `Clock`, `ResultSink` (request results).

The owner loop (runtime: a node thread; simulator: its scheduler)
-----------------------------------------------------------------
    node = Node(config, log_store, backend, outbox, clock, sink)   # restores or bootstraps
    every config.tick_s:          node.tick()
    on a peer message:            node.step(msg)   /  node.receive_snapshot(msg, db_chunks)
    on a client request:          rid = node.propose(InternalRaftRequest) ... (see below)
    after any of these:           while node.process_ready(): pass

`process_ready()` does, for one raft Ready: hand the proposals and read requests queued since the
last Ready to raft in one batch each (`propose_batch`, one ReadIndex for every waiting read); the
leader sends its messages first; a received snapshot restores the backend; the LogStore saves the
hard state and entries (one sync; also forced when the Ready's committed entries go past the
commit the WAL holds durably, so that a power cut can never undo what was answered); followers
send their messages; every committed entry is applied in ONE backend write transaction that also
records `consistent_index`/term; then results are resolved through the ResultSink, watchers
notified, reads whose index is applied released, and a raft snapshot taken every `snapshot_count`
applied entries. It returns whether there was anything to do.

The API the runtime's facade calls (all on the owner thread)
-----------------------------------------------------------
Requests through raft (result later, via `sink.resolve(request_id, response | EtcdError)`, never
inside the call itself, so the caller may register the ID after the call returns; each returns the
request ID, or raises an EtcdError at once when the request is refused before raft):
    propose(req: InternalRaftRequest) -> int       generic: put, delete_range, txn, compaction,
                                                   lease_grant (ID 0 -> generated), lease_revoke,
                                                   alarm, ...; header.ID 0 -> generated.
                                                   put/txn are checked against the quota first.
    put/delete_range/txn/compact/lease_grant/lease_revoke/alarm(req: rpc_pb2.XRequest) -> int
    member_add(peer_urls, is_learner) / member_remove(id) / member_update(id, peer_urls) /
        member_promote(id) -> int                  MemberXResponse (header, members...);
                                                   promote on the leader only (else NotLeader)
    move_leader(target_id) -> int                  MoveLeaderResponse once target leads
    read_index() -> int                            ReadIndexResult(index) once applied >= index
    linearizable_range(req: RangeRequest) -> int   RangeResponse, read after the read index
Requests answered at once (local state). range, hash_kv, hash, status, defragment and
snapshot_stream use nothing but backend transactions (and plain reads of a few counters), so the
runtime may call them from other threads too (a long defragment should not stall the owner loop):
    range(req) -> RangeResponse (serializable)     hash_kv(rev) -> HashKVResponse   hash()
    member_list() -> MemberListResponse            status() -> StatusResponse (version unset)
    lease_renew(id) -> LeaseKeepAliveResponse      lease_time_to_live(req) / lease_leases()
        (leader only: NotLeader(leader=...) elsewhere, for the runtime to forward)
    defragment()                                   snapshot_stream() -> Iterator[bytes]
    sync_watchers()                                (also run by tick) watch catch-up and victims
    header() -> ResponseHeader                     watchable: the WatchableStore (watch streams)
State for the runtime: member_id, cluster_id, leader_id, is_leader, term, applied_index,
committed_index, members (MemberStore), removed (this member was removed: stop), stopped,
recovered (everything committed before this start is applied again: serve clients from then on).
Metrics for the runtime: proposals_pending, proposals_failed (client proposals waiting for, or
left without, an answer), observe_backend_commit (a callback: seconds per applied batch's commit).
Transport feedback: report_unreachable(id), report_snapshot(id, ok).
`on_members_changed(callback)` is called with the member list after each applied change (the
transport adds/removes peers). Run the process_ready loop right after construction: a restart
re-applies the committed log tail there (member list included) before anything else happens.
Control: campaign() (start an election now), snapshot() (take a raft snapshot now), stop() (every
waiting request gets Stopped).

Logging goes to the `logger` given (default `logging.getLogger("petcd.server")`) with etcd's
messages ("published local member to cluster through raft", "set initial cluster version",
"enabled capabilities for version", "added member", "removed member", "applied incoming
snapshot", ...) and etcd's field names in `extra={"fields": {...}}`.

Determinism: applying depends only on the entries and the applied state (no clock, no sizes), so
every member computes the same store (HashKV agrees). Time enters only on the leader, as
proposals (lease revokes and checkpoints, auto-compaction).

Restart recovery: the LogStore gives (snapshot, hard state, entries); raft restarts from the
snapshot with `applied = snapshot.index`; entries up to the backend's `consistent_index` are
re-applied to raft and to the in-memory member list only (the backend already holds them), so
nothing is applied twice and the revision never goes back. The raft snapshot's data holds the
member list at its index (the backend db itself is what a lagging follower is sent). With
`force_new_cluster` (etcd's --force-new-cluster) a restart first turns the log into a one-member
cluster's (see `_force_new_cluster`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import random
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from petcd.backend import Backend, WriteTxn, put_consistent_index, read_consistent_index
from petcd.errors import EtcdError, NoSpace
from petcd.ids import RequestIdGenerator, id_str, member_id
from petcd.lease import BackendLeaseBucket, LeaseCheckpoint, LeaseIdGenerator, Lessor, LessorConfig
from petcd.lease.lessor import TICK_INTERVAL_S, TxnDelete, min_lease_ttl_s
from petcd.mvcc.kvstore import KVStore, StoreWrite, put_cost, txn_cost
from petcd.mvcc.watchable_store import PROGRESS_NOTIFY_INTERVAL_S, WatchableStore
from petcd.pb.etcdserverpb import raft_internal_pb2 as ri
from petcd.pb.etcdserverpb import rpc_pb2 as rpc
from petcd.pb.membershippb import membership_pb2 as mpb
from petcd.raft.config import Config
from petcd.raft.errors import ProposalDropped, StepPeerNotFound
from petcd.raft.rawnode import RawNode
from petcd.raft.storage import MemoryStorage
from petcd.raft.types import (
    NONE,
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Peer,
    Ready,
    Snapshot,
    SnapshotMetadata,
    SnapshotStatus,
    StateType,
)
from petcd.server.errors import (
    BadLeaderTransferee,
    Corrupt,
    LearnerNotReady,
    MemberBadUrls,
    MemberNotEnoughStarted,
    MemberNotFound,
    NoLeader,
    NotLeader,
    RequestTooLarge,
    Stopped,
    Timeout,
    TimeoutLeaderTransfer,
    TooManyRequests,
    Unhealthy,
    UnknownMethod,
)
from petcd.server.membership import ConfChangeContext, Member, MemberStore
from petcd.server.ports import Clock, LogStore, Outbox, PersistedLog, ResultSink
from petcd.server.responses import (
    ReadIndexResult,
    delete_response,
    member_pb,
    put_response,
    range_response,
    txn_response,
)

ALARM_BUCKET = "alarm"
# etcd: a proposal is refused when the applied index lags the committed one by this much.
MAX_GAP_BETWEEN_APPLY_AND_COMMIT = 5000
MAX_PENDING_REVOKES = 16
READ_INDEX_RETRY_S = 0.5
PUBLISH_RETRY_S = 2.0
CLUSTER_VERSION_RETRY_S = 2.0
REVISION_COMPACTOR_INTERVAL_S = 300.0
LEARNER_READY_PERCENT = 0.9
# Room for the InternalRaftRequest envelope around a request of max_request_bytes.
REQUEST_OVERHEAD_BYTES = 1024

_CTX = struct.Struct(">Q")
_DEFERRED = object()  # an applied request whose result comes later
LEASE_OVERHEAD_BYTES = 64  # etcd's quota estimate of a lease
# What etcd's corrupt applier refuses while a CORRUPT alarm is raised.
_REFUSED_WHEN_CORRUPT: tuple[
    Literal["range", "put", "delete_range", "txn", "compaction", "lease_grant", "lease_revoke"], ...
] = (
    "range",
    "put",
    "delete_range",
    "txn",
    "compaction",
    "lease_grant",
    "lease_revoke",
)

log = logging.getLogger("petcd.server")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A member's settings (etcd's flags, already parsed and validated by the command)."""

    member_id: int
    cluster_id: int
    name: str = "default"
    peer_urls: tuple[str, ...] = ("http://localhost:2380",)
    client_urls: tuple[str, ...] = ("http://localhost:2379",)
    # A new cluster: every initial member (this one included), with its peer URLs. Empty when
    # joining an existing cluster (the leader's log or snapshot brings the membership).
    initial_members: tuple[Member, ...] = ()
    cluster_token: str = "etcd-cluster"
    tick_s: float = 0.1  # --heartbeat-interval
    election_ticks: int = 10  # --election-timeout / --heartbeat-interval
    heartbeat_ticks: int = 1
    snapshot_count: int = 100_000
    snapshot_catchup_entries: int = 5000
    max_txn_ops: int = 128
    max_request_bytes: int = 1536 * 1024
    strict_reconfig_check: bool = True
    pre_vote: bool = True
    auto_compaction_mode: str = "periodic"  # or "revision"
    # periodic: seconds of history to keep; revision: revisions to keep; 0 disables.
    auto_compaction_retention: float = 0.0
    cluster_version: str = "3.6.0"  # petcd.version.CLUSTER_VERSION (a test keeps them equal)
    request_timeout_s: float = 0.0  # 0: etcd's 5 s + 2 election timeouts
    max_inflight_msgs: int = 512
    # Make the commit index durable in the WAL before applying entries past it (see
    # `_handle_ready`), so a power cut can never leave the member behind what it answered. Only
    # tests that measure something else (and --unsafe-no-fsync) turn it off.
    durable_commit_before_apply: bool = True
    # --watch-progress-notify-interval: the periodic progress notification of watchers that asked
    # for it (progress_notify) and got no event since the last one
    progress_notify_interval_s: float = PROGRESS_NOTIFY_INTERVAL_S
    seed: int | None = None  # election jitter; default: derived from the member ID
    # Wall-clock milliseconds at start (the runtime's time.time()): request and lease IDs and
    # added members' IDs derive from it, as etcd's do. None: the Clock's reading (tests, sim).
    start_unix_ms: int | None = None
    # --force-new-cluster: on restart, continue as a one-member cluster (see `_force_new_cluster`).
    force_new_cluster: bool = False

    @property
    def election_timeout_s(self) -> float:
        return self.election_ticks * self.tick_s

    def effective_request_timeout_s(self) -> float:
        return self.request_timeout_s or 5.0 + 2 * self.election_timeout_s


def initial_members(
    named_peer_urls: Mapping[str, Sequence[str]], cluster_token: str = "etcd-cluster"
) -> tuple[Member, ...]:
    """The members of `--initial-cluster` (name -> peer URLs), with etcd's derived IDs."""
    return tuple(
        sorted(
            (
                Member(member_id(urls, cluster_token), tuple(sorted(urls)), name)
                for name, urls in named_peer_urls.items()
            ),
            key=lambda m: m.id,
        )
    )


class _LessorClock:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now_s()


def _snapshot_data(members: MemberStore) -> bytes:
    return json.dumps(
        {
            "members": [m.to_json() for m in members.sorted_members()],
            "removed": sorted(members.removed),
            "clusterVersion": members.cluster_version,
        },
        separators=(",", ":"),
    ).encode()


def _members_from_snapshot_data(data: bytes) -> MemberStore:
    store = MemberStore()
    if not data:
        return store
    d = json.loads(data)
    for raw in d.get("members", []):
        m = Member.from_json(raw)
        store.members[m.id] = m
    store.removed = {int(x) for x in d.get("removed", [])}
    store.cluster_version = str(d.get("clusterVersion", ""))
    return store


class Node:
    """One member's core (see the module docstring)."""

    def __init__(  # noqa: PLR0917 - the ports, in the order of DESIGN.md
        self,
        config: NodeConfig,
        log_store: LogStore,
        backend: Backend,
        outbox: Outbox,
        clock: Clock,
        sink: ResultSink,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self.member_id = config.member_id
        self.cluster_id = config.cluster_id
        self.log_store = log_store
        self.backend = backend
        self.outbox = outbox
        self.clock = clock
        self.sink = sink
        self.log = logger or log
        self.stopped = False
        self.removed = False
        self._members_listeners: list[Callable[[list[Member]], None]] = []

        # Wall time (from the runtime) keeps request IDs unique across restarts, as etcd's are.
        self._start_clock_s = clock.now_s()
        now_ms = config.start_unix_ms if config.start_unix_ms is not None else int(self._start_clock_s * 1000)
        self._ids = RequestIdGenerator(config.member_id, now_ms)
        self._lease_ids = LeaseIdGenerator(config.member_id, now_ms)

        # The write transaction of the batch being applied (for the lessor's records and deletes).
        self._apply_w: StoreWrite | None = None
        self.lessor = Lessor(
            BackendLeaseBucket(backend, self._apply_txn),
            _LessorClock(clock),
            LessorConfig(min_lease_ttl_s=min_lease_ttl_s(config.election_ticks, config.tick_s)),
            range_deleter=self._range_deleter,
            checkpointer=self._propose_checkpoints,
        )
        self.kv = KVStore(backend, max_txn_ops=config.max_txn_ops, lease_hooks=self.lessor)
        self.watchable = WatchableStore(self.kv, max_request_bytes=config.max_request_bytes)
        self.kv.set_event_sink(self.watchable.event_sink)
        backend.create_bucket(ALARM_BUCKET)
        self._reattach_leases()
        self.alarms: list[rpc.AlarmMember] = self._load_alarms()

        # Requests waiting for a result: request ID -> deadline; deadlines in proposal order.
        self._waits: dict[int, float] = {}
        # The backend size `_check_quota` last read, and the applied index it was read at.
        self._quota_size = 0
        self._quota_size_at = -1
        self._deadlines: deque[tuple[float, int]] = deque()
        self._proposals: list[bytes] = []
        # Membership changes raft did not take yet (no leader, a leader transfer in progress):
        # offered again at each Ready until their request times out, as proposals are.
        self._conf_changes: list[tuple[int, ConfChange]] = []
        # Client proposals not answered yet (etcd_server_proposals_pending) and those that failed
        # for lack of an answer: timed out or stopped (etcd_server_proposals_failed_total).
        self._pending_proposals: set[int] = set()
        self.proposals_failed = 0
        # Called with the seconds each applied batch's backend commit (and sync) took
        # (etcd_disk_backend_commit_duration_seconds); measured on the Clock port.
        self.observe_backend_commit: Callable[[float], None] | None = None
        # Requests the Node made itself (lease revokes, publish, ...): request ID -> what.
        self._internal: dict[int, str] = {}
        self._revokes_inflight: dict[int, tuple[int, float]] = {}
        # Reads: waiting for the next ReadIndex; in flight (context -> ids, sent at); with an index.
        self._reads_waiting: list[tuple[int, Callable[[], object] | None]] = []
        self._reads_inflight: dict[bytes, tuple[list[tuple[int, Callable[[], object] | None]], float]] = {}
        self._reads_ready: list[tuple[int, list[tuple[int, Callable[[], object] | None]]]] = []
        self._read_ctx = itertools.count(1)
        # MoveLeader in progress: (request id, target, deadline).
        self._transfer: tuple[int, int, float] | None = None
        # Results known when the request was made, resolved at the next process_ready (never
        # inside the call that hands out the request ID).
        self._immediate: list[tuple[int, object]] = []
        # Physical compactions applied, answered once the removal finishes.
        self._physical_waiters: list[tuple[int, object]] = []
        # Incoming snapshot dbs by (term, index), until raft hands the snapshot out in a Ready.
        self._pending_db: dict[tuple[int, int], Iterable[bytes]] = {}

        self.lead = NONE
        self.raft_state = StateType.FOLLOWER
        self._published = False
        self._last_publish_s = -1e18
        self._last_version_s = -1e18
        self._last_lessor_tick_s = clock.now_s()
        self._last_progress_s = clock.now_s()
        # the auto-compactor (etcd's v3compactor): revision samples, last compaction, next wait
        self._compactor_samples: deque[tuple[float, int]] = deque()
        self._last_compactor_s = clock.now_s()
        self._last_sample_s = -1e18
        self._compactor_wait_s = config.auto_compaction_retention

        # A scheduled compaction still removing old revisions (in batches, between applies).
        self._compacting = self.kv.compaction_pending()

        self._raft_storage = MemoryStorage()
        self._start_raft()

    # ================================================================== start / restart

    def _start_raft(self) -> None:
        cfg = self.config
        persisted = self.log_store.load()
        with self.backend.read_txn() as txn:
            self.consistent_index, _ = read_consistent_index(txn)
        if cfg.force_new_cluster and not persisted.is_empty():
            persisted = self._force_new_cluster(persisted)
        snap_index = 0
        self.members = MemberStore()
        self.conf_state = ConfState()
        self.applied_term = 0
        if persisted.snapshot is not None and not persisted.snapshot.is_empty():
            snap = persisted.snapshot
            snap_index = snap.metadata.index
            if self.consistent_index < snap_index:
                raise RuntimeError(
                    f"backend consistent index {self.consistent_index} is behind the snapshot at {snap_index}"
                )
            self._raft_storage.apply_snapshot(snap)
            self.members = _members_from_snapshot_data(snap.data)
            self.conf_state = snap.metadata.conf_state
            self.applied_term = snap.metadata.term
        if not persisted.hard_state.is_empty():
            self._raft_storage.set_hard_state(persisted.hard_state)
        if persisted.entries:
            self._raft_storage.append(list(persisted.entries))
        self.applied_index = snap_index
        self.snapshot_index = snap_index
        # What was committed before this start: the store is only as new as before the crash
        # once it is applied again (see `recovered`).
        self._start_commit = persisted.hard_state.commit
        # The highest commit index the WAL holds durably (see `_handle_ready`).
        self._durable_commit = persisted.hard_state.commit
        raft_cfg = Config(
            id=cfg.member_id,
            storage=self._raft_storage,
            election_tick=cfg.election_ticks,
            heartbeat_tick=cfg.heartbeat_ticks,
            applied=snap_index,
            max_size_per_msg=1024 * 1024,
            max_inflight_msgs=cfg.max_inflight_msgs,
            max_uncommitted_entries_size=1 << 30,
            check_quorum=True,
            pre_vote=cfg.pre_vote,
            rand=random.Random(cfg.seed if cfg.seed is not None else cfg.member_id),
        )
        self.raw = RawNode(raft_cfg)
        if persisted.is_empty() and cfg.initial_members:
            peers = [
                Peer(m.id, ConfChangeContext(m).encode())
                for m in sorted(cfg.initial_members, key=lambda m: m.id)
            ]
            self.raw.bootstrap(peers)
            self.log.info(
                "starting a new member",
                extra={
                    "fields": {"local-member-id": id_str(cfg.member_id), "cluster-id": id_str(cfg.cluster_id)}
                },
            )
        elif not persisted.is_empty():
            self.log.info(
                "restarting local member",
                extra={
                    "fields": {
                        "local-member-id": id_str(cfg.member_id),
                        "commit-index": persisted.hard_state.commit,
                        "consistent-index": self.consistent_index,
                    }
                },
            )

    def _force_new_cluster(self, persisted: PersistedLog) -> PersistedLog:
        """etcd's restartAsStandaloneNode: drop the uncommitted tail of the WAL, then append (and
        commit, durably) ConfChange entries that remove every other member of the configuration,
        so this member goes on alone with its data; the entries are applied like any others.

        Unlike etcd, what the backend already applied counts as committed (its consistent index
        may be ahead of the WAL's commit, which is not fsynced on its own), and learners are
        removed too (etcd 3.4 only looks at the snapshot's voters)."""
        hs = persisted.hard_state
        entries = list(persisted.entries)
        last = (
            entries[-1].index if entries else (persisted.snapshot.metadata.index if persisted.snapshot else 0)
        )
        commit = max(hs.commit, min(self.consistent_index, last))
        kept = [e for e in entries if e.index <= commit]
        if len(kept) < len(entries):
            self.log.info(
                "discarding uncommitted WAL entries",
                extra={
                    "fields": {
                        "entry-index": entries[len(kept)].index,
                        "commit-index-from-wal": hs.commit,
                        "number-of-discarded-entries": len(entries) - len(kept),
                    }
                },
            )
        ids = configuration_ids(persisted.snapshot, kept)
        added = standalone_conf_change_entries(
            ids, Member(self.member_id, self.config.peer_urls), hs.term, commit
        )
        new_hs = HardState(term=hs.term, vote=hs.vote, commit=commit + len(added))
        self.log_store.save(new_hs, added, True)
        self.log.info(
            "forcing restart member",
            extra={
                "fields": {
                    "cluster-id": id_str(self.cluster_id),
                    "local-member-id": id_str(self.member_id),
                    "commit-index": new_hs.commit,
                }
            },
        )
        return PersistedLog(persisted.snapshot, new_hs, (*kept, *added))

    def _reattach_leases(self) -> None:
        for lease_id, key in self.kv.iter_leased_keys():
            if lease_id in self.lessor:
                self.lessor.attach(lease_id, key)

    def _load_alarms(self) -> list[rpc.AlarmMember]:
        with self.backend.read_txn() as txn:
            return [rpc.AlarmMember.FromString(k) for k, _ in txn.range(ALARM_BUCKET, b"\x00", None)]

    # ================================================================== wiring helpers

    def _apply_txn(self) -> WriteTxn | None:
        return self._apply_w.backend if self._apply_w is not None else None

    def _range_deleter(self) -> TxnDelete:
        if self._apply_w is None:
            raise RuntimeError("lease revoke outside of an apply transaction")
        return self._apply_w.delete_txn()

    def on_members_changed(self, callback: Callable[[list[Member]], None]) -> None:
        self._members_listeners.append(callback)

    # ================================================================== state

    @property
    def leader_id(self) -> int:
        return self.lead

    @property
    def is_leader(self) -> bool:
        return self.raft_state == StateType.LEADER

    @property
    def term(self) -> int:
        return self.raw.raft.term

    @property
    def committed_index(self) -> int:
        return self.raw.raft.raft_log.committed

    @property
    def _corrupt(self) -> bool:
        return any(a.alarm == rpc.CORRUPT for a in self.alarms)

    @property
    def recovered(self) -> bool:
        """Whether everything committed before this start is applied again. A backend that lost
        its unsynced commits in a crash is behind until then: serve clients only afterwards, so
        no one sees the revision go back."""
        return self.applied_index >= self._start_commit

    @property
    def proposals_pending(self) -> int:
        return len(self._pending_proposals)

    @property
    def is_learner(self) -> bool:
        m = self.members.get(self.member_id)
        return m is not None and m.is_learner

    def header(self, revision: int = 0) -> rpc.ResponseHeader:
        return rpc.ResponseHeader(
            cluster_id=self.cluster_id,
            member_id=self.member_id,
            revision=revision or self.kv.current_rev,
            raft_term=self.term,
        )

    # ================================================================== inputs

    def tick(self) -> None:
        """One heartbeat interval passed (call every config.tick_s)."""
        if self.stopped:
            return
        self.raw.tick()
        now = self.clock.now_s()
        self._expire_requests(now)
        self._retry_reads(now)
        if self._compacting:
            self._compact_batch()
        self.sync_watchers(now)
        if self.lead != NONE:
            self._maybe_publish(now)
        if self.is_leader:
            if now - self._last_lessor_tick_s >= TICK_INTERVAL_S:
                self._last_lessor_tick_s = now
                self._revoke_expired_leases(now)
            self._maybe_update_cluster_version(now)
        self._auto_compact(now)

    def sync_watchers(self, now: float | None = None) -> None:
        """The watchable store's duties: catch up unsynced watchers, retry parked (victim) ones,
        progress notifications. Called by tick(); the runtime may call it more often (etcd: victims
        every 10 ms) when `watchable.has_victims`."""
        ws = self.watchable
        if ws.has_victims:
            ws.sync_victims()
        if ws.has_unsynced:
            ws.sync_watchers()
        now = self.clock.now_s() if now is None else now
        if now - self._last_progress_s >= self.config.progress_notify_interval_s:
            self._last_progress_s = now
            ws.progress_tick()

    def campaign(self) -> None:
        self.raw.campaign()

    def step(self, msg: Message) -> None:
        """A raft message from a peer."""
        if self.stopped:
            return
        if msg.type == MessageType.MSG_SNAP:
            raise ValueError("a MsgSnap comes with its db: use receive_snapshot")
        # A forwarded proposal that cannot be taken now is lost (the proposer times out), as in etcd.
        with contextlib.suppress(StepPeerNotFound, ProposalDropped):
            self.raw.step(msg)

    def receive_snapshot(self, msg: Message, db: Iterable[bytes]) -> None:
        """A MsgSnap with the leader's backend stream (re-iterable or read once, at install)."""
        if self.stopped or msg.snapshot is None:
            return
        md = msg.snapshot.metadata
        self._pending_db = {(md.term, md.index): db}
        with contextlib.suppress(StepPeerNotFound):
            self.raw.step(msg)
        if not self.raw.raft.raft_log.has_pending_snapshot():
            self._pending_db = {}  # raft ignored it (stale, or a Ready is being applied)

    def report_unreachable(self, member: int) -> None:
        self.raw.report_unreachable(member)

    def report_snapshot(self, member: int, ok: bool) -> None:
        self.raw.report_snapshot(member, SnapshotStatus.FINISH if ok else SnapshotStatus.FAILURE)

    # ------------------------------------------------------------------ proposals

    def _check_running(self) -> None:
        if self.stopped or self.removed:
            raise Stopped()

    def _track(self, rid: int) -> None:
        deadline = self.clock.now_s() + self.config.effective_request_timeout_s()
        self._waits[rid] = deadline
        self._deadlines.append((deadline, rid))

    def _enqueue(self, req: ri.InternalRaftRequest, internal: str | None = None) -> int:
        if not req.header.ID:
            req.header.ID = self._ids.next()
        rid = int(req.header.ID)
        data = req.SerializeToString()
        if len(data) > self.config.max_request_bytes + REQUEST_OVERHEAD_BYTES:
            raise RequestTooLarge()
        if self.committed_index - self.applied_index > MAX_GAP_BETWEEN_APPLY_AND_COMMIT:
            raise TooManyRequests()
        self._proposals.append(data)
        if internal is None:
            self._track(rid)
            self._pending_proposals.add(rid)
        else:
            self._internal[rid] = internal
        return rid

    def propose(self, req: ri.InternalRaftRequest | bytes) -> int:
        """Propose a request through raft; its result goes to the ResultSink (see module doc)."""
        self._check_running()
        if isinstance(req, bytes):
            req = ri.InternalRaftRequest.FromString(req)
        if req.HasField("put"):
            self._check_quota(put_cost(req.put))
        elif req.HasField("txn"):
            self._check_quota(txn_cost(req.txn))
        elif req.HasField("lease_grant"):
            self._check_quota(LEASE_OVERHEAD_BYTES)
            if req.lease_grant.ID == 0:
                req.lease_grant.ID = self._lease_ids.next()
        return self._enqueue(req)

    def _check_quota(self, cost: int) -> None:
        # The backend's size changes only as entries are applied (a defragmentation only shrinks
        # it, and the alarm it clears is disarmed by an applied entry): read it once per applied
        # index, not once per proposal (a stat of the environment each time).
        if self._quota_size_at != self.applied_index:
            self._quota_size_at = self.applied_index
            self._quota_size = self.backend.size_bytes()
        if self.kv.quota_available(cost, self._quota_size):
            return
        if not self.kv.nospace:
            self.log.warning("exceeded database quota, activating alarm", extra={"fields": {"quota": cost}})
            self._enqueue(
                ri.InternalRaftRequest(
                    alarm=rpc.AlarmRequest(
                        action=rpc.AlarmRequest.ACTIVATE, memberID=self.member_id, alarm=rpc.NOSPACE
                    )
                ),
                internal="alarm",
            )
        raise NoSpace()

    def put(self, req: rpc.PutRequest) -> int:
        return self.propose(ri.InternalRaftRequest(put=req))

    def delete_range(self, req: rpc.DeleteRangeRequest) -> int:
        return self.propose(ri.InternalRaftRequest(delete_range=req))

    def txn(self, req: rpc.TxnRequest) -> int:
        return self.propose(ri.InternalRaftRequest(txn=req))

    def compact(self, req: rpc.CompactionRequest) -> int:
        return self.propose(ri.InternalRaftRequest(compaction=req))

    def lease_grant(self, req: rpc.LeaseGrantRequest) -> int:
        return self.propose(ri.InternalRaftRequest(lease_grant=req))

    def lease_revoke(self, req: rpc.LeaseRevokeRequest) -> int:
        return self.propose(ri.InternalRaftRequest(lease_revoke=req))

    def alarm(self, req: rpc.AlarmRequest) -> int:
        return self.propose(ri.InternalRaftRequest(alarm=req))

    # ------------------------------------------------------------------ reads

    def read_index(self) -> int:
        """A linearizable read point; resolves with ReadIndexResult once applied >= it."""
        return self._queue_read(None)

    def linearizable_range(self, req: rpc.RangeRequest) -> int:
        """A linearizable Range: resolves with the RangeResponse read after the read index."""
        return self._queue_read(lambda: self.range(req))

    def _queue_read(self, action: Callable[[], object] | None) -> int:
        self._check_running()
        rid = self._ids.next()
        self._track(rid)
        self._reads_waiting.append((rid, action))
        return rid

    def range(self, req: rpc.RangeRequest) -> rpc.RangeResponse:
        """A serializable Range on the local store."""
        return range_response(self.kv.range(req), self.header())

    # ------------------------------------------------------------------ leases (leader-side)

    def _require_leader(self) -> None:
        if not self.is_leader:
            raise NotLeader(self.lead)

    def lease_renew(self, lease_id: int) -> rpc.LeaseKeepAliveResponse:
        self._require_leader()
        ttl = self.lessor.renew(lease_id)
        return rpc.LeaseKeepAliveResponse(header=self.header(), ID=lease_id, TTL=ttl)

    def lease_time_to_live(self, req: rpc.LeaseTimeToLiveRequest) -> rpc.LeaseTimeToLiveResponse:
        self._require_leader()
        t = self.lessor.time_to_live(req.ID, req.keys)
        return rpc.LeaseTimeToLiveResponse(
            header=self.header(), ID=t.id, TTL=t.ttl_s, grantedTTL=t.granted_ttl_s, keys=list(t.keys)
        )

    def lease_leases(self) -> rpc.LeaseLeasesResponse:
        return rpc.LeaseLeasesResponse(
            header=self.header(), leases=[rpc.LeaseStatus(ID=le.id) for le in self.lessor.leases()]
        )

    # ------------------------------------------------------------------ maintenance

    def hash_kv(self, revision: int = 0) -> rpc.HashKVResponse:
        r = self.kv.hash_kv(revision)
        return rpc.HashKVResponse(
            header=self.header(r.revision),
            hash=r.hash,
            compact_revision=r.compact_revision,
            hash_revision=r.hash_revision,
        )

    def hash(self) -> rpc.HashResponse:
        return rpc.HashResponse(header=self.header(), hash=self.kv.hash())

    def status(self) -> rpc.StatusResponse:
        return rpc.StatusResponse(
            header=self.header(),
            dbSize=self.backend.size_bytes(),
            dbSizeInUse=self.backend.size_in_use_bytes(),
            dbSizeQuota=self.backend.quota_bytes,
            leader=self.lead,
            raftIndex=self.committed_index,
            raftTerm=self.term,
            raftAppliedIndex=self.applied_index,
            errors=([NoLeader.message] if self.lead == NONE else [])
            # Go's compact proto text of each AlarmMember (with its trailing space), as etcd sends
            + [f"memberID:{a.memberID} alarm:{rpc.AlarmType.Name(a.alarm)} " for a in self.alarms],
            isLearner=self.is_learner,
        )

    def defragment(self) -> rpc.DefragmentResponse:
        self.backend.defrag()
        return rpc.DefragmentResponse(header=self.header())

    def snapshot_stream(self) -> Iterator[bytes]:
        """The whole backend as of now (Maintenance.Snapshot), in petcd.backend.snapshot format."""
        return _started(self.backend.snapshot())

    def alarm_list(self) -> list[rpc.AlarmMember]:
        return list(self.alarms)

    # ------------------------------------------------------------------ membership

    def member_list(self) -> rpc.MemberListResponse:
        return rpc.MemberListResponse(
            header=self.header(), members=[member_pb(m) for m in self.members.sorted_members()]
        )

    def _propose_conf_change(self, t: ConfChangeType, ctx: ConfChangeContext) -> int:
        self._check_running()
        rid = self._ids.next()
        ctx = replace(ctx, request_id=rid)
        cc = ConfChange(changes=(ConfChangeSingle(t, ctx.member.id),), context=ctx.encode())
        self._track(rid)
        self._conf_changes.append((rid, cc))
        self._flush_conf_changes()
        return rid

    def _unix_s(self) -> int:
        """Wall-clock seconds now (etcd puts them in the ID of a member added at run time)."""
        base = (self.config.start_unix_ms or 0) / 1000
        return int(base + self.clock.now_s() - (self._start_clock_s if base else 0))

    def _check_urls(self, peer_urls: Sequence[str]) -> None:
        if not peer_urls or any("://" not in u for u in peer_urls):
            raise MemberBadUrls()

    def _connected_voters(self) -> int | None:
        """Voters the leader heard from recently (itself included); None when not the leader."""
        if not self.is_leader:
            return None
        prs = self.raw.raft.trk.progress
        voters = [m.id for m in self.members.voting_members()]
        return sum(1 for v in voters if v == self.member_id or (v in prs and prs[v].recent_active))

    def member_add(self, peer_urls: Sequence[str], is_learner: bool = False) -> int:
        """MemberAdd; resolves with MemberAddResponse once the change is applied."""
        self._check_urls(peer_urls)
        m = Member(
            member_id(peer_urls, self.config.cluster_token, self._unix_s()),
            tuple(sorted(peer_urls)),
            is_learner=is_learner,
        )
        self.members.validate_add(m)
        if self.config.strict_reconfig_check and not is_learner:
            if not self.members.ready_to_add_voter():
                raise MemberNotEnoughStarted()
            connected = self._connected_voters()
            if connected is not None and connected < len(self.members.voting_members()):
                raise Unhealthy()
        t = ConfChangeType.ADD_LEARNER_NODE if is_learner else ConfChangeType.ADD_NODE
        return self._propose_conf_change(t, ConfChangeContext(m))

    def member_remove(self, member: int) -> int:
        self.members.validate_remove(member)
        m = self.members.get(member)
        assert m is not None
        if self.config.strict_reconfig_check and not m.is_learner:
            if not self.members.ready_to_remove_voter(member):
                raise MemberNotEnoughStarted()
            connected = self._connected_voters()
            voters = self.members.voting_members()
            if connected is not None and member != self.member_id:
                prs = self.raw.raft.trk.progress
                gone_is_active = member in prs and prs[member].recent_active
                if (connected - (1 if gone_is_active else 0)) < 1 + (len(voters) - 1) // 2:
                    raise Unhealthy()
        return self._propose_conf_change(ConfChangeType.REMOVE_NODE, ConfChangeContext(m))

    def member_update(self, member: int, peer_urls: Sequence[str]) -> int:
        self._check_urls(peer_urls)
        old = self.members.get(member)
        if old is None:
            raise MemberNotFound()
        m = replace(old, peer_urls=tuple(sorted(peer_urls)))
        self.members.validate_update(m)
        return self._propose_conf_change(ConfChangeType.UPDATE_NODE, ConfChangeContext(m))

    def member_promote(self, member: int) -> int:
        """Promote a learner, only if it is in sync (etcd: match >= 90% of the leader's). Only the
        leader knows that: elsewhere NotLeader(leader), for the runtime to forward the request to
        the leader (etcd's promoteMemberHTTP)."""
        self.members.validate_promote(member)
        if not self.is_leader:
            raise NotLeader(self.lead)
        prs = self.raw.raft.trk.progress
        pr = prs.get(member)
        own = prs.get(self.member_id)
        if pr is not None and own is not None and pr.match < own.match * LEARNER_READY_PERCENT:
            raise LearnerNotReady()
        if self.config.strict_reconfig_check and not self.members.ready_to_promote():
            raise MemberNotEnoughStarted()
        m = self.members.get(member)
        assert m is not None
        return self._propose_conf_change(ConfChangeType.ADD_NODE, ConfChangeContext(m, is_promote=True))

    def move_leader(self, target: int) -> int:
        """MoveLeader: resolves with MoveLeaderResponse once `target` is the leader."""
        self._check_running()
        self._require_leader()
        if target not in self.conf_state.voters or target == NONE:
            raise BadLeaderTransferee()
        rid = self._ids.next()
        self._track(rid)
        if target == self.member_id:
            self._immediate.append((rid, rpc.MoveLeaderResponse(header=self.header())))
            return rid
        self._transfer = (rid, target, self._waits[rid])
        self.raw.transfer_leader(target)
        return rid

    # ================================================================== the Ready loop

    def process_ready(self) -> bool:
        """Handle one raft Ready (see the module docstring); False when there was none."""
        if self.stopped:
            return False
        immediate = bool(self._immediate)
        for rid, result in self._immediate:
            self._resolve(rid, result)
        self._immediate = []
        self._flush_proposals()
        self._flush_reads()
        if not self.raw.has_ready():
            return immediate
        rd = self.raw.ready()
        try:
            self._handle_ready(rd)
        except BaseException:
            self.stopped = True
            raise
        return True

    def _handle_ready(self, rd: Ready) -> None:
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.lead, rd.soft_state.raft_state)
        leader = self.is_leader
        if leader:
            self._send(rd.messages)
        installed = not rd.snapshot.is_empty()
        if installed:
            self._install_snapshot(rd.snapshot)
        # After installing a snapshot the hard state's commit must be durable before anything
        # acts on it: a restart whose WAL forgot that commit would drop the snapshot's marker
        # and meet a leader's commit beyond its log (etcd#10219; etcd forces storage.Sync()).
        hard_state = rd.hard_state
        sync = rd.must_sync or installed
        committed = rd.committed_entries
        if (
            committed
            and committed[-1].index > self._durable_commit
            and self.config.durable_commit_before_apply
            and not sync
        ):
            # These entries are in the WAL, but the commit that covers them may not be (a
            # commit-only hard state is not fsynced by raft's rule). Once applied they are
            # answered from, and a power cut may undo the backend's latest commits (LMDB's
            # meta page is not synced per commit, and the backend is not synced per batch):
            # replay after a restart must then reach them again, so the WAL must name this
            # commit first (etcd#13766: a member's revision went back after a crash).
            sync = True
            if hard_state.is_empty():
                hard_state = self._raft_storage.hard_state
        self.log_store.save(hard_state, rd.entries, sync)
        if sync and not hard_state.is_empty():
            self._durable_commit = max(self._durable_commit, hard_state.commit)
        if not rd.hard_state.is_empty():
            self._raft_storage.set_hard_state(rd.hard_state)
        if rd.entries:
            self._raft_storage.append(rd.entries)
        if not leader:
            self._send(rd.messages)
        for rs in rd.read_states:
            got = self._reads_inflight.pop(rs.request_ctx, None)
            if got is not None:
                self._reads_ready.append((rs.index, got[0]))
        self._apply(rd.committed_entries)
        self.raw.advance(rd)
        self._release_reads()
        self._maybe_snapshot()
        if self._compacting:
            self._compact_batch()

    def _on_soft_state(self, lead: int, state: StateType) -> None:
        was_leader = self.is_leader
        old_lead = self.lead
        self.lead = lead
        self.raft_state = state
        if state == StateType.LEADER and not was_leader:
            self.lessor.promote(self.config.election_timeout_s)
            # etcd resumes the compactor on a new leader: a full period before its first compaction
            self._last_compactor_s = self.clock.now_s()
            self._compactor_wait_s = self.config.auto_compaction_retention
        elif was_leader and state != StateType.LEADER:
            self.lessor.demote()
            self._revokes_inflight.clear()
        if lead != old_lead:
            self.log.info(
                "leader changed" if lead != NONE else "lost leader",
                extra={"fields": {"local-member-id": id_str(self.member_id), "leader": id_str(lead)}},
            )
            # Reads in flight asked the old leader: ask again.
            for entries, _ in self._reads_inflight.values():
                self._reads_waiting.extend(entries)
            self._reads_inflight.clear()
        if self._transfer is not None and lead == self._transfer[1]:
            rid = self._transfer[0]
            self._transfer = None
            self._resolve(rid, rpc.MoveLeaderResponse(header=self.header()))

    def _flush_conf_changes(self) -> None:
        keep = []
        for rid, cc in self._conf_changes:
            if rid not in self._waits:
                continue  # timed out meanwhile: never proposed
            try:
                self.raw.propose_conf_change(cc)
            except ProposalDropped:
                keep.append((rid, cc))
        self._conf_changes = keep

    def _flush_proposals(self) -> None:
        if self._conf_changes:
            self._flush_conf_changes()
        if not self._proposals or self.raw.raft.lead == NONE:
            return
        try:
            self.raw.propose_batch(self._proposals)
        except ProposalDropped:
            return  # kept: tried again at the next Ready (requests time out meanwhile)
        self._proposals = []

    def _flush_reads(self) -> None:
        if not self._reads_waiting or self.raw.raft.lead == NONE:
            return
        ctx = _CTX.pack(next(self._read_ctx))
        self._reads_inflight[ctx] = (self._reads_waiting, self.clock.now_s())
        self._reads_waiting = []
        self.raw.read_index(ctx)

    def _retry_reads(self, now: float) -> None:
        for ctx, (entries, sent) in list(self._reads_inflight.items()):
            if now - sent >= READ_INDEX_RETRY_S:
                del self._reads_inflight[ctx]
                self._reads_waiting.extend(entries)

    def _release_reads(self) -> None:
        if not self._reads_ready:
            return
        keep = []
        for index, entries in self._reads_ready:
            if index > self.applied_index:
                keep.append((index, entries))
                continue
            for rid, action in entries:
                if rid not in self._waits:
                    continue
                try:
                    result: object = action() if action is not None else ReadIndexResult(index)
                except EtcdError as e:
                    result = e
                self._resolve(rid, result)
        self._reads_ready = keep

    # ------------------------------------------------------------------ sending

    def _send(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        plain = []
        for m in messages:
            if m.type == MessageType.MSG_SNAP:
                self._send_snapshot(m)
            else:
                plain.append(m)
        if plain:
            self.outbox.send(plain)

    def _send_snapshot(self, m: Message) -> None:
        # etcd's merged snapshot: the metadata of what is applied now, with the backend as of now.
        snap = Snapshot(
            data=_snapshot_data(self.members),
            metadata=SnapshotMetadata(
                conf_state=self.conf_state, index=self.applied_index, term=self.applied_term
            ),
        )
        self.log.info(
            "sending merged snapshot",
            extra={"fields": {"to": id_str(m.to), "snapshot-index": self.applied_index}},
        )
        self.outbox.send_snapshot(replace(m, snapshot=snap), _started(self.backend.snapshot()))

    # ------------------------------------------------------------------ snapshots

    def _install_snapshot(self, snap: Snapshot) -> None:
        md = snap.metadata
        db = self._pending_db.pop((md.term, md.index), None)
        self._pending_db.clear()
        if db is None:
            raise RuntimeError(f"raft installed snapshot {md.term}/{md.index} without its db")
        self.log.info("applying snapshot", extra={"fields": {"snapshot-index": md.index}})
        self.backend.restore(db)
        self.backend.sync()
        self.kv.reload()
        self._compacting = self.kv.compaction_pending()
        self.lessor.recover(BackendLeaseBucket(self.backend, self._apply_txn))
        self._reattach_leases()
        self.watchable.restore()
        self.alarms = self._load_alarms()
        with self.backend.read_txn() as txn:
            self.consistent_index, _ = read_consistent_index(txn)
        self.members = _members_from_snapshot_data(snap.data)
        self.log_store.save_snapshot(snap)
        self._raft_storage.apply_snapshot(snap)
        self.applied_index = md.index
        self.applied_term = md.term
        self.snapshot_index = md.index
        self.conf_state = md.conf_state
        self._notify_members()
        self.log.info("applied incoming snapshot", extra={"fields": {"snapshot-index": md.index}})

    def _compact_batch(self) -> None:
        # Physical removal of compacted revisions: its own write transaction, one batch at a time.
        if self.kv.compact_batch():
            self._compacting = False
            waiters, self._physical_waiters = self._physical_waiters, []
            for rid, resp in waiters:
                self._resolve(rid, resp)

    def stop(self) -> None:
        """Stop: every request still waiting gets `Stopped`; nothing else happens afterwards."""
        self.stopped = True
        waiting, self._waits = self._waits, {}
        self.proposals_failed += len(self._pending_proposals)
        self._pending_proposals.clear()
        self._deadlines.clear()
        self._reads_waiting, self._reads_inflight, self._reads_ready = [], {}, []
        self._conf_changes = []
        self._transfer = None
        self._immediate = []
        self._physical_waiters = []
        for rid in waiting:
            self.sink.resolve(rid, Stopped())

    def _maybe_snapshot(self) -> None:
        if self.applied_index - self.snapshot_index <= self.config.snapshot_count:
            return
        self.snapshot()

    def snapshot(self) -> None:
        """Take a raft snapshot at the applied index now (etcd does every snapshot_count entries)."""
        index = self.applied_index
        if index <= self.snapshot_index:
            return
        # The backend state at `index` must be on disk before anything relies on the snapshot.
        self.backend.sync()
        snap = self._raft_storage.create_snapshot(index, self.conf_state, _snapshot_data(self.members))
        self.log_store.save_snapshot(snap)
        self.snapshot_index = index
        compact_to = index - self.config.snapshot_catchup_entries
        if compact_to > self._raft_storage.first_index():
            self._raft_storage.compact(compact_to)
        self.log_store.release_to(index)
        self.log.info("saved snapshot", extra={"fields": {"snapshot-index": index}})

    # ================================================================== applying

    def _apply(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        results: list[tuple[int, object]] = []
        last = entries[-1]
        if last.index > self.consistent_index:
            with self.kv.write() as w:
                self._apply_w = w
                try:
                    for e in entries:
                        self._apply_entry(e, w if e.index > self.consistent_index else None, results)
                    put_consistent_index(w.backend, last.index, last.term)
                    # the commit happens as the transaction closes; it needs no sync of its
                    # own: the WAL already names a commit covering it (see `_handle_ready`)
                    commit_start = self.clock.now_s() if self.observe_backend_commit is not None else 0.0
                finally:
                    self._apply_w = None
            if self.observe_backend_commit is not None:
                self.observe_backend_commit(self.clock.now_s() - commit_start)
            self.consistent_index = last.index
        else:
            for e in entries:
                self._apply_entry(e, None, results)
        self.applied_index = last.index
        self.applied_term = last.term
        for rid, result in results:
            if result is not _DEFERRED:
                self._resolve(rid, result)

    def _apply_entry(self, e: Entry, w: StoreWrite | None, results: list[tuple[int, object]]) -> None:
        if e.type == EntryType.NORMAL:
            if not e.data:
                return  # a new leader's empty entry
            req = ri.InternalRaftRequest.FromString(e.data)
            rid = int(req.header.ID or req.ID)
            if w is None:
                self._apply_membership_request(req, None)  # memory only: the backend has it
                return
            try:
                # On a follower (or for a client gone) nobody waits for most answers: their
                # responses are not built (a few percent of a follower's busy time).
                result = self._apply_request(req, w, rid in self._waits or rid in self._internal)
            except EtcdError as err:
                result = err
            results.append((rid, result))
        else:
            got = self._apply_conf_change(ConfChange.decode(e.data), w)
            if got is not None:
                results.append(got)

    def _apply_request(self, req: ri.InternalRaftRequest, w: StoreWrite, answered: bool = True) -> object:
        if self._corrupt and any(req.HasField(f) for f in _REFUSED_WHEN_CORRUPT):
            raise Corrupt()
        if req.HasField("put"):
            r = w.put(req.put)
            return put_response(r, self.header(r.revision)) if answered else None
        if req.HasField("delete_range"):
            d = w.delete_range(req.delete_range)
            return delete_response(d, self.header(d.revision)) if answered else None
        if req.HasField("txn"):
            t = w.txn(req.txn)
            return txn_response(t, self.header(t.revision)) if answered else None
        if req.HasField("range"):
            return range_response(w.range(req.range), self.header(w.rev)) if answered else None
        if req.HasField("compaction"):
            c = w.compact(req.compaction.revision)
            self._compacting = True
            resp = rpc.CompactionResponse(header=self.header(c.revision))
            if req.compaction.physical:
                # etcd answers a physical compaction once the old revisions are gone.
                self._physical_waiters.append((int(req.header.ID or req.ID), resp))
                return _DEFERRED
            return resp
        if req.HasField("lease_grant"):
            if w.nospace:
                raise NoSpace()  # etcd's capped applier
            lease = self.lessor.grant(req.lease_grant.ID, req.lease_grant.TTL)
            return rpc.LeaseGrantResponse(header=self.header(w.rev), ID=lease.id, TTL=lease.ttl)
        if req.HasField("lease_revoke"):
            self.lessor.revoke(req.lease_revoke.ID)
            return rpc.LeaseRevokeResponse(header=self.header(w.rev))
        if req.HasField("lease_checkpoint"):
            for cp in req.lease_checkpoint.checkpoints:
                self.lessor.checkpoint(cp.ID, cp.remaining_TTL)
            return rpc.LeaseCheckpointResponse(header=self.header(w.rev))
        if req.HasField("alarm"):
            return self._apply_alarm(req.alarm, w)
        if self._apply_membership_request(req, w):
            return None
        raise UnknownMethod()

    def _apply_membership_request(self, req: ri.InternalRaftRequest, w: StoreWrite | None) -> bool:
        txn = w.backend if w is not None else None
        if req.HasField("cluster_member_attr_set"):
            a = req.cluster_member_attr_set
            ok = self.members.set_attrs(
                txn, a.member_ID, a.member_attributes.name, a.member_attributes.client_urls
            )
            if ok and w is not None and a.member_ID == self.member_id and not self._published:
                self._published = True
                self.log.info(
                    "published local member to cluster through raft",
                    extra={
                        "fields": {
                            "local-member-id": id_str(self.member_id),
                            "local-member-attributes": f"{{Name:{a.member_attributes.name} "
                            f"ClientURLs:[{' '.join(a.member_attributes.client_urls)}]}}",
                            "cluster-id": id_str(self.cluster_id),
                        }
                    },
                )
            if ok:
                self._notify_members()
            return True
        if req.HasField("cluster_version_set"):
            old = self.members.cluster_version
            self.members.set_cluster_version(txn, req.cluster_version_set.ver)
            if old != req.cluster_version_set.ver:
                msg = "set initial cluster version" if not old else "updated cluster version"
                self.log.info(msg, extra={"fields": {"cluster-version": req.cluster_version_set.ver}})
                self.log.info(
                    "enabled capabilities for version",
                    extra={"fields": {"cluster-version": req.cluster_version_set.ver}},
                )
            return True
        return False

    def _apply_alarm(self, a: rpc.AlarmRequest, w: StoreWrite) -> rpc.AlarmResponse:
        resp = rpc.AlarmResponse(header=self.header(w.rev))
        member = rpc.AlarmMember(memberID=a.memberID, alarm=a.alarm)
        key = member.SerializeToString()
        present = any(x.memberID == a.memberID and x.alarm == a.alarm for x in self.alarms)
        if a.action == rpc.AlarmRequest.GET:
            resp.alarms.extend(x for x in self.alarms if a.alarm in (rpc.NONE, x.alarm))
        elif a.action == rpc.AlarmRequest.ACTIVATE:
            if a.alarm == rpc.NONE:
                return resp
            if not present:
                w.backend.put(ALARM_BUCKET, key or b"\x00", b"")
                self.alarms.append(member)
                resp.alarms.append(member)
            if a.alarm == rpc.NOSPACE and not w.nospace:
                self.kv.activate_nospace(w)
        elif a.action == rpc.AlarmRequest.DEACTIVATE:
            if present:
                w.backend.delete(ALARM_BUCKET, key or b"\x00")
                self.alarms = [
                    x for x in self.alarms if not (x.memberID == a.memberID and x.alarm == a.alarm)
                ]
                resp.alarms.append(member)
            if a.alarm == rpc.NOSPACE and not any(x.alarm == rpc.NOSPACE for x in self.alarms) and w.nospace:
                self.kv.disarm_nospace(w)
        return resp

    def _apply_conf_change(self, cc: ConfChange, w: StoreWrite | None) -> tuple[int, object] | None:
        if not cc.changes:
            self.conf_state = self.raw.apply_conf_change(cc)
            return None
        single = cc.changes[0]
        ctx = ConfChangeContext.decode(cc.context)
        m = ctx.member
        try:
            if single.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
                if ctx.is_promote:
                    self.members.validate_promote(single.node_id)
                else:
                    self.members.validate_add(m)
            elif single.type == ConfChangeType.REMOVE_NODE:
                self.members.validate_remove(single.node_id)
            else:
                self.members.validate_update(m)
        except EtcdError as err:
            # Refused on every member alike: raft's configuration does not change either.
            return (ctx.request_id, err) if w is not None and ctx.request_id else None
        self.conf_state = self.raw.apply_conf_change(cc)
        txn = w.backend if w is not None else None
        response: object
        if single.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
            if ctx.is_promote:
                self.members.promote(txn, single.node_id)
                response = rpc.MemberPromoteResponse()
            else:
                self.members.add(txn, m)
                response = rpc.MemberAddResponse(member=member_pb(m))
                self.log.info(
                    "added member",
                    extra={
                        "fields": {"added-peer-id": id_str(m.id), "added-peer-peer-urls": list(m.peer_urls)}
                    },
                )
        elif single.type == ConfChangeType.REMOVE_NODE:
            self.members.remove(txn, single.node_id)
            response = rpc.MemberRemoveResponse()
            self.log.info("removed member", extra={"fields": {"removed-member-id": id_str(single.node_id)}})
            if single.node_id == self.member_id:
                self.removed = True
        else:
            self.members.update_raft_attrs(txn, single.node_id, m.peer_urls)
            response = rpc.MemberUpdateResponse()
        self._notify_members()
        if w is None or not ctx.request_id:
            return None
        response.header.CopyFrom(self.header(w.rev))
        response.members.extend(member_pb(x) for x in self.members.sorted_members())
        return ctx.request_id, response

    def _notify_members(self) -> None:
        if self._members_listeners:
            members = self.members.sorted_members()
            for cb in self._members_listeners:
                cb(members)

    # ================================================================== results and timers

    def _resolve(self, rid: int, result: object) -> None:
        if self._waits.pop(rid, None) is not None:
            self._pending_proposals.discard(rid)
            self.sink.resolve(rid, result)
            return
        what = self._internal.pop(rid, None)
        if what == "revoke":
            self._revokes_inflight.pop(rid, None)

    def _expire_requests(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, rid = self._deadlines.popleft()
            if self._waits.pop(rid, None) is not None:
                if rid in self._pending_proposals:
                    self._pending_proposals.discard(rid)
                    self.proposals_failed += 1
                if self._transfer is not None and self._transfer[0] == rid:
                    self._transfer = None
                    self.sink.resolve(rid, TimeoutLeaderTransfer())
                else:
                    self.sink.resolve(rid, Timeout())
        for rid, (_, sent) in list(self._revokes_inflight.items()):
            if now - sent > self.config.effective_request_timeout_s():
                del self._revokes_inflight[rid]
                self._internal.pop(rid, None)

    def _revoke_expired_leases(self, now: float) -> None:
        for lease in self.lessor.tick():
            if len(self._revokes_inflight) >= MAX_PENDING_REVOKES:
                break
            rid = self._enqueue(
                ri.InternalRaftRequest(lease_revoke=rpc.LeaseRevokeRequest(ID=lease.id)), internal="revoke"
            )
            self._revokes_inflight[rid] = (lease.id, now)

    def _propose_checkpoints(self, checkpoints: list[LeaseCheckpoint]) -> None:
        if not self.is_leader:
            return
        req = ri.InternalRaftRequest(
            lease_checkpoint=rpc.LeaseCheckpointRequest(
                checkpoints=[
                    rpc.LeaseCheckpoint(ID=c.id, remaining_TTL=c.remaining_ttl_s) for c in checkpoints
                ]
            )
        )
        self._enqueue(req, internal="checkpoint")

    def _maybe_publish(self, now: float) -> None:
        # Once per start, as etcd does (even when the attributes are already known), until applied.
        if self._published or self.members.get(self.member_id) is None:
            return
        if now - self._last_publish_s < PUBLISH_RETRY_S:
            return
        self._last_publish_s = now
        attrs = mpb.Attributes(name=self.config.name, client_urls=list(self.config.client_urls))
        self._enqueue(
            ri.InternalRaftRequest(
                cluster_member_attr_set=mpb.ClusterMemberAttrSetRequest(
                    member_ID=self.member_id, member_attributes=attrs
                )
            ),
            internal="publish",
        )

    def _maybe_update_cluster_version(self, now: float) -> None:
        if self.members.cluster_version == self.config.cluster_version:
            return
        if now - self._last_version_s < CLUSTER_VERSION_RETRY_S:
            return
        self._last_version_s = now
        self._enqueue(
            ri.InternalRaftRequest(
                cluster_version_set=mpb.ClusterVersionSetRequest(ver=self.config.cluster_version)
            ),
            internal="version",
        )

    def _auto_compact(self, now: float) -> None:
        """etcd's v3compactor, run by every member's tick, compacting only on the leader.

        periodic (retention = a duration): a revision sample every min(retention, 1 h) / 10; the
        first compaction `retention` after start (or after becoming leader), then one every
        min(retention, 1 h), each to the oldest sample kept (the revision of about `retention`
        ago). revision (retention = a count): every 5 minutes, to current - retention.
        """
        retention = self.config.auto_compaction_retention
        if retention <= 0:
            return
        rev = self.kv.current_rev
        if self.config.auto_compaction_mode == "revision":
            if now - self._last_compactor_s < REVISION_COMPACTOR_INTERVAL_S:
                return
            self._last_compactor_s = now
            target = rev - int(retention)
            mode = "revision"
        else:
            period = min(retention, 3600.0)
            retry = period / 10
            if now - self._last_sample_s < retry:
                return
            self._last_sample_s = now
            self._compactor_samples.append((now, rev))
            while len(self._compactor_samples) > int(retention / retry) + 1:
                self._compactor_samples.popleft()
            if now - self._last_compactor_s < self._compactor_wait_s:
                return
            target = self._compactor_samples[0][1]
            mode = "periodic"
        if not self.is_leader or target <= 0 or target <= self.kv.compact_rev:
            return
        if mode == "periodic":
            self._last_compactor_s = now
            self._compactor_wait_s = min(retention, 3600.0)
        self.log.info(f"starting auto {mode} compaction", extra={"fields": {"revision": target}})
        self._enqueue(
            ri.InternalRaftRequest(compaction=rpc.CompactionRequest(revision=target)), internal="compaction"
        )


def configuration_ids(snapshot: Snapshot | None, entries: Iterable[Entry]) -> list[int]:
    """The members of raft's configuration after `entries` (etcd's getIDs), voters and learners."""
    ids: set[int] = set()
    if snapshot is not None and not snapshot.is_empty():
        cs = snapshot.metadata.conf_state
        ids.update(cs.voters, cs.learners, cs.voters_outgoing)
    for e in entries:
        if e.type == EntryType.NORMAL:
            continue
        for c in ConfChange.decode(e.data).changes:
            if c.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
                ids.add(c.node_id)
            elif c.type == ConfChangeType.REMOVE_NODE:
                ids.discard(c.node_id)
    return sorted(ids)


def standalone_conf_change_entries(ids: Sequence[int], me: Member, term: int, index: int) -> list[Entry]:
    """ConfChange entries after `index` that leave `me` alone in the configuration (etcd's
    createConfigChangeEnts): `me` added first when it is not among `ids` (raft must never be
    left without a voter), then every other ID removed."""
    changes: list[tuple[ConfChangeSingle, bytes]] = []
    if me.id not in ids:
        changes.append((ConfChangeSingle(ConfChangeType.ADD_NODE, me.id), ConfChangeContext(me).encode()))
    changes.extend((ConfChangeSingle(ConfChangeType.REMOVE_NODE, i), b"") for i in ids if i != me.id)
    return [
        Entry(
            term=term,
            index=index + 1 + n,
            type=EntryType.CONF_CHANGE_V2,
            data=ConfChange(changes=(single,), context=ctx).encode(),
        )
        for n, (single, ctx) in enumerate(changes)
    ]


def _started(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Start a (lazy) backend stream now, so its read transaction is of this moment."""
    it = iter(chunks)
    try:
        first = next(it)
    except StopIteration:
        return iter(())
    return itertools.chain((first,), it)
