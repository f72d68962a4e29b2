"""One robustness run: start a cluster, run traffic and faults, heal, check, report.

Sequence of `run(RunConfig)`:
1. start the cluster (all members ready), note each member's ID;
2. start the clients (profile), the watchers and the revision monitor; the fault injector runs the
   seed's schedule during the traffic window;
3. stop traffic; heal every fault (links, pauses, crashed or failpoint-armed members restarted);
   wait for all members to reach the same revision (else `no-convergence`);
4. read the rest of the history; HashKV on every member at the final revision; a full Range on
   every member; watchers asked for progress until they reach the final revision;
5. run the checkers (`checks`). A violation or an unknown verdict fails the run.

On failure the run directory (data dirs, member logs) is kept and `report.json` (seed, config,
fault schedule, violations) and `history.jsonl` (every operation) are written into it; on success
it is deleted unless `keep` is set.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc
from petcd.robustness.checks import HistoryCapture, Outcome, check_final_state, check_leases, run_checks
from petcd.robustness.cluster import Cluster
from petcd.robustness.faults import FaultLog, Injector, schedule
from petcd.robustness.history import History, write_history
from petcd.robustness.traffic import (
    ETCD_KEYS,
    K8S_KEYS,
    K8S_PREFIX,
    Client,
    Clock,
    Context,
    Watcher,
    prefix_end,
)
from petcd.sim.checker import Violation
from petcd.sim.server_checker import RevisionWatch, check_hash_kv

DEFAULT_BINARY = "etcd"
CONVERGE_TIMEOUT_S = 60.0
WATCH_CATCHUP_TIMEOUT_S = 20.0


@dataclass(slots=True)
class RunConfig:
    seed: int
    profile: str = "etcd"
    duration_s: float = 60.0
    members: int = 3
    faults: list[str] = field(default_factory=list)
    fault_count: int = 1
    binary: str = DEFAULT_BINARY
    clients: int = 4
    watchers: int = 2
    report_root: str = ""
    keep: bool = False
    budget_per_key: int = 2_000_000
    inject: str = ""  # harness self-test (see traffic.Context.inject)
    member_args: list[str] = field(default_factory=list)  # extra flags for every member
    defrag_traffic: bool = True  # the etcd profile's client Defragment requests


@dataclass(slots=True)
class RunResult:
    config: RunConfig
    schedule: list[str]
    events: list[tuple[int, str]]
    violations: list[str]
    unknown: list[str]
    operations: int
    final_revision: int
    seconds: float
    lin_seconds: float
    report_dir: str = ""
    failing_ops: list[str] = field(default_factory=list)  # history lines of the ops named
    harness_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations and not self.unknown and not self.harness_errors

    def summary(self) -> str:
        c = self.config
        head = (
            f"seed={c.seed} profile={c.profile} members={c.members} faults={','.join(self.schedule) or '-'}: "
            f"{'OK' if self.ok else 'FAIL'} ({self.operations} ops, revision {self.final_revision}, "
            f"{self.seconds:.0f}s, lin check {self.lin_seconds:.1f}s)"
        )
        lines = [head]
        injected = [what for _, what in self.events if not what.startswith(("cluster ready", "raft timing"))]
        lines.append("  events: " + "; ".join(injected)[:600])
        lines += [f"  VIOLATION {v}" for v in self.violations[:20]]
        lines += [f"  UNKNOWN {v}" for v in self.unknown[:20]]
        lines += [f"  HARNESS {e}" for e in self.harness_errors]
        lines += [f"  OP {line[:400]}" for line in self.failing_ops[:10]]
        if self.report_dir:
            lines.append(f"  report kept in {self.report_dir}")
        return "\n".join(lines)


class RevisionMonitor(threading.Thread):
    """Polls every member's revision; it must never go back (restarts included)."""

    def __init__(self, cluster: Cluster, clock: Clock) -> None:
        super().__init__(name="revision-monitor", daemon=True)
        self.cluster = cluster
        self.clock = clock
        self.watch = RevisionWatch()
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def poll(self) -> None:
        with self._lock:  # the runner polls too, at the end
            self._poll()

    def _poll(self) -> None:
        for problem in self.cluster.unexpected_exits():
            self.watch.violations.append(Violation("member-exit", self.clock.now_us(), problem))
        for m in self.cluster.members:
            st = self.cluster.status(m, timeout_s=1.0)
            if st is not None:
                # keyed by member ID: a replaced member starts a new life
                self.watch.observe(
                    self.clock.now_us(), st.header.member_id, st.header.revision, f"({m.name})"
                )

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.poll()


def _converge(cluster: Cluster) -> tuple[int, list[str]]:
    """Wait until every member reports the same revision and raft index; (revision, problems)."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    last: dict[str, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        last = {}
        for m in cluster.members:
            st = cluster.status(m)
            if st is not None:
                last[m.name] = (st.header.revision, st.raftAppliedIndex or st.raftIndex)
        if len(last) == len(cluster.members) and len({r for r, _ in last.values()}) == 1:
            # one more look after a moment: nothing moved
            time.sleep(0.5)
            again = {m.name: st.header.revision for m in cluster.members if (st := cluster.status(m))}
            if again and all(again.get(n) == r for n, (r, _) in last.items()):
                return next(iter(last.values()))[0], []
        time.sleep(0.3)
    return max((r for r, _ in last.values()), default=0), [f"members did not converge: {last}"]


def _hash_kv(cluster: Cluster, revision: int, now: int) -> list[Violation]:
    hashes: dict[int, tuple[int, int]] = {}
    problems = []
    for m in cluster.members:
        try:
            r = rpc_pb2_grpc.MaintenanceStub(cluster.channel(m)).HashKV(
                pb.HashKVRequest(revision=revision), timeout=10
            )
            hashes[m.index] = (revision, r.hash)
        except grpc.RpcError as e:
            problems.append(
                Violation("hash-kv", now, f"{m.name}: HashKV failed: {e.code().name} {e.details()}")
            )
    return problems + (check_hash_kv(hashes, now) if len(hashes) > 1 else [])


def _ranges(cluster: Cluster, revision: int) -> dict[str, tuple[int, list[tuple[bytes, bytes, int]]]]:
    out = {}
    for m in cluster.members:
        try:
            r = rpc_pb2_grpc.KVStub(cluster.channel(m)).Range(
                pb.RangeRequest(key=b"\x00", range_end=b"\x00", revision=revision, serializable=True),
                timeout=10,
            )
        except grpc.RpcError:
            continue
        out[m.name] = (revision, [(kv.key, kv.value, kv.mod_revision) for kv in r.kvs])
    return out


def _member_log_problems(cluster: Cluster, now: int) -> list[Violation]:
    """A Python traceback (or a Go panic) in a member's log: something broke inside it, even if
    the member went on."""
    out = []
    for m in cluster.members:
        try:
            text = m.log_path.read_text(errors="replace")
        except OSError:
            continue
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith(("Traceback (most recent call last)", "panic: ")):
                if any("exception was never retrieved" in x for x in lines[max(0, i - 2) : i]):
                    continue  # asyncio's note on a dropped future (noise, reported apart), not a fault
                end = next((j for j in range(i + 1, len(lines)) if not lines[j].startswith(" ")), i)
                out.append(
                    Violation("member-log", now, f"{m.name}: {line.strip()} ... {lines[end].strip()[:300]}")
                )
                break  # the first one per member is enough
    return out


def _lease_keys_left(cluster: Cluster, revision: int, now: int) -> list[Violation]:
    """Every lease was revoked before the final revision: no key may still carry one."""
    for m in cluster.members:
        try:
            kv = rpc_pb2_grpc.KVStub(cluster.channel(m))
            r = kv.Range(pb.RangeRequest(key=b"\x00", range_end=b"\x00", revision=revision), timeout=10)
            left = rpc_pb2_grpc.LeaseStub(cluster.channel(m)).LeaseLeases(pb.LeaseLeasesRequest(), timeout=5)
        except grpc.RpcError:
            continue
        alive = {lease.ID for lease in left.leases}
        stale = [(kv.key, kv.lease) for kv in r.kvs if kv.lease and kv.lease not in alive]
        if stale:
            return [Violation("lease", now, f"keys still attached to revoked leases at the end: {stale[:5]}")]
        return []
    return []


def run(cfg: RunConfig) -> RunResult:
    t_start = time.monotonic()
    root = Path(cfg.report_root or tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"robustness-{cfg.profile}-s{cfg.seed}-", dir=root))
    # Raft timing, drawn by the seed: etcd's defaults, or twice as eager (more elections)
    heartbeat_ms, election_ms = random.Random(cfg.seed).choice(((100, 1000), (100, 1000), (50, 500)))
    cluster = Cluster(
        cfg.binary,
        cfg.members,
        run_dir,
        cfg.seed,
        heartbeat_ms=heartbeat_ms,
        election_ms=election_ms,
        extra_args=cfg.member_args,
    )
    clock = Clock()
    history = History()
    log = FaultLog(clock.now_us)
    plan = schedule(cfg.faults, cfg.seed, cfg.members, cluster.petcd, cfg.fault_count) if cfg.faults else []
    harness_errors: list[str] = []
    violations: list[Violation] = []
    outcome = Outcome([], [])
    final_rev = 0
    stop = threading.Event()
    ctx = Context(cluster, history, clock, cfg.profile, stop, cfg.inject, cfg.defrag_traffic)
    clients: list[Client] = []
    watchers: list[Watcher] = []
    monitor = RevisionMonitor(cluster, clock)
    capture = HistoryCapture(cluster)
    capture_lock = threading.Lock()

    def capture_to(rev: int) -> int:
        with capture_lock:
            return capture.capture_to(rev)

    injector = Injector(cluster, plan, cfg.seed, cfg.duration_s, log, capture_to)
    try:
        cluster.start_all()
        log.note(f"raft timing: heartbeat {heartbeat_ms} ms, election {election_ms} ms")
        log.note("cluster ready: " + ", ".join(f"{m.name}={m.member_id:x}" for m in cluster.members))
        if cfg.profile == "etcd":
            wrange = (ETCD_KEYS[0][:3], b"\x00")  # every key from "key" on (leases too)
        else:
            wrange = (K8S_PREFIX, prefix_end(K8S_PREFIX))
        for i in range(cfg.watchers):
            # etcd profile: from revision 1 (the whole history); kubernetes: from a list's revision
            start_rev = 1 if cfg.profile == "etcd" else 0
            watchers.append(Watcher(ctx, i, wrange[0], wrange[1], start_rev, cfg.seed * 101 + i))
        for i in range(cfg.clients):
            clients.append(Client(ctx, i, cfg.seed * 1009 + i))
        monitor.start()
        for w in watchers:
            w.start()
        for c in clients:
            c.start()
        injector.start()
        end = time.monotonic() + cfg.duration_s
        while time.monotonic() < end:
            time.sleep(0.2)
            if not injector.is_alive() and injector.error:
                break
        log.note("traffic stops")
        stop.set()
        for w in watchers:
            w.draining.set()
        injector.stop.set()
        injector.join(timeout=120)
        if injector.is_alive():
            harness_errors.append("fault injector did not finish")
        if injector.error:
            harness_errors.append(f"fault injector: {injector.error}")
        for c in clients:
            c.join(timeout=30)
        monitor.poll()  # an exit nobody asked for, before the healing restarts the member
        injector.heal_all()
        log.note("healed")
        # Leases left would expire later and move the revision on under the final checks.
        log.note(f"revoked {_revoke_leases(cluster)} leases")
        final_rev, problems = _converge(cluster)
        now = clock.now_us()
        violations += [Violation("no-convergence", now, p) for p in problems]
        monitor.poll()
        monitor.stop.set()
        got = capture_to(final_rev)
        if capture.problem:
            harness_errors.append(capture.problem)
        elif got < final_rev:
            harness_errors.append(f"history read only to revision {got} of {final_rev}")
        violations += _hash_kv(cluster, final_rev, now)
        ranges = _ranges(cluster, final_rev)
        for index, told in _drain_watchers(watchers, final_rev):
            violations.append(
                Violation("watch", now, f"watcher {index} reached only revision {told} of {final_rev}")
            )
        streams = [s for w in watchers for s in w.streams]
        # Something may still have moved the revision on (a lease the revoke missed): read on.
        told_max = max((r for s in streams for r, _ in s.record.responses), default=0)
        if told_max > final_rev:
            log.note(f"revision moved on to {told_max} after the checks began")
            capture_to(told_max)
        final = capture.final()
        violations += check_final_state(final, ranges, now)
        kv_ops = history.kv_ops()
        lin_keys = set(ETCD_KEYS if cfg.profile == "etcd" else K8S_KEYS)
        outcome = run_checks(kv_ops, streams, final, lin_keys, cfg.budget_per_key, now)
        violations += outcome.violations
        violations += check_leases(history.operations, final, now)
        violations += _lease_keys_left(cluster, final_rev, now)
        violations += _member_log_problems(cluster, now)
        violations += monitor.watch.violations
    except Exception as e:  # a harness failure keeps the evidence too
        harness_errors.append(f"{type(e).__name__}: {e}")
    finally:
        stop.set()
        injector.stop.set()
        monitor.stop.set()
        for w in watchers:
            w.finish()
        cluster.close()
    result = RunResult(
        config=cfg,
        schedule=plan,
        events=log.events,
        violations=[str(v) for v in violations],
        unknown=[str(v) for v in outcome.unknown],
        operations=len(history.operations),
        final_revision=final_rev,
        seconds=time.monotonic() - t_start,
        lin_seconds=outcome.lin_seconds,
    )
    result.harness_errors = harness_errors
    if result.ok and not cfg.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        result.report_dir = str(run_dir)
        result.failing_ops = _failing_ops(result.violations, history)
        write_history(str(run_dir / "history.jsonl"), history.operations)
        with open(run_dir / "cluster_history.jsonl", "w") as f:  # as read back from the cluster
            for change in capture.changes:
                value = None if change.value is None else change.value.decode("latin-1")
                key = change.key.decode("latin-1")
                f.write(json.dumps({"rev": change.revision, "key": key, "value": value}) + "\n")
        with open(run_dir / "report.json", "w") as f:
            json.dump(
                {
                    "config": asdict(cfg),
                    "schedule": plan,
                    "events": log.events,
                    "violations": result.violations,
                    "unknown": result.unknown,
                    "harness_errors": harness_errors,
                    "final_revision": final_rev,
                    "failing_operations": result.failing_ops,
                },
                f,
                indent=1,
            )
    return result


def _drain_watchers(watchers: list[Watcher], final_rev: int) -> list[tuple[int, int]]:
    """Ask for progress until every watcher is told `final_rev`, then end them; the ones that
    were not, as (index, revision told)."""
    deadline = time.monotonic() + WATCH_CATCHUP_TIMEOUT_S
    behind = []
    while time.monotonic() < deadline:
        behind = [w for w in watchers if w.told < final_rev]
        if not behind:
            break
        for w in behind:
            w.request_progress()
        time.sleep(0.5)
    for w in watchers:
        w.finish()
    for w in watchers:
        w.join(timeout=5)
    return [(w.index, w.told) for w in behind]


def _revoke_leases(cluster: Cluster) -> int:
    for m in cluster.members:
        channel = cluster.channel(m)
        try:
            leases = rpc_pb2_grpc.LeaseStub(channel).LeaseLeases(pb.LeaseLeasesRequest(), timeout=5).leases
        except grpc.RpcError:
            continue
        revoked = 0
        for lease in leases:
            try:
                rpc_pb2_grpc.LeaseStub(channel).LeaseRevoke(pb.LeaseRevokeRequest(ID=lease.ID), timeout=5)
                revoked += 1
            except grpc.RpcError:
                pass  # expired meanwhile, or the member is busy: the read-on below covers it
        return revoked
    return 0


def _failing_ops(violations: list[str], history: History) -> list[str]:
    """Operations named (#id) in the violations, as history lines."""
    ids = {int(x) for v in violations for x in re.findall(r"#(\d+) ", v)}
    out = []
    for o in history.operations:
        if any(k.id in ids for k in o.kv_ops):
            out.append(o.to_line())
    return out[:50]
