"""Faults: what goes wrong during a run, chosen and timed by the seed, and how each is healed.

A `Fault` is injected once traffic runs (`inject`), and healed before the checks (`heal`):
every member running without failpoints, not paused, every link whole. The schedule (which fault,
which member, when, for how long) is a function of the seed, recorded in the report as `events`.

Faults:
* kill-leader, kill-follower: SIGKILL, then restart from the same data dir a little later;
* pause: SIGSTOP a member for a while, then SIGCONT;
* partition: cut one member from all others (both directions, see `proxy`), then heal;
* delay: slow every link of one member (latency with jitter), then heal;
* member-replace: remove a follower through the API, wipe it, add it back under a new ID;
* restart-cluster: SIGKILL every member, then start them all again;
* compact: compaction during traffic (several times), each at a revision whose history was read
  first (so the checkers keep the whole history);
* defrag: defragment members during traffic;
* failpoint:NAME[=TERM]: arm the point on a running member over GOFAIL_HTTP (term default panic),
  let it crash there (or run slowed, for sleep), disarm, restart it if it died. petcd only: the
  reference etcd binary is built without gofail.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc
from petcd.robustness.cluster import Cluster, Member

BASIC_FAULTS = (
    "kill-leader",
    "kill-follower",
    "pause",
    "partition",
    "delay",
    "member-replace",
    "restart-cluster",
    "compact",
    "defrag",
)
FAILPOINT_FAULTS = (
    "failpoint:raftBeforeSave",
    "failpoint:raftAfterSave",
    "failpoint:beforeCommit",
    "failpoint:afterCommit",
    "failpoint:raftBeforeSaveSnap",
    "failpoint:raftAfterSaveSnap",
    "failpoint:raftBeforeApplySnap",
    "failpoint:raftAfterApplySnap",
    "failpoint:raftBeforeSave=sleep(100)",
)
ALL_FAULTS = BASIC_FAULTS + FAILPOINT_FAULTS
CLUSTER_ONLY = frozenset({"kill-follower", "partition", "delay", "member-replace"})


def applicable(fault: str, members: int, petcd: bool) -> bool:
    if fault.startswith("failpoint:") and not petcd:
        return False
    if fault.partition("=")[0] in {"failpoint:raftBeforeApplySnap", "failpoint:raftAfterApplySnap"}:
        return members > 1
    return not (fault in CLUSTER_ONLY and members < 2)


@dataclass(slots=True)
class FaultLog:
    clock: Callable[[], int]
    events: list[tuple[int, str]] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.events.append((self.clock(), what))


class Injector(threading.Thread):
    """Runs the faults of a run, one after another, during the traffic window."""

    def __init__(  # noqa: PLR0917 - the parts of a run
        self,
        cluster: Cluster,
        faults: list[str],
        seed: int,
        duration_s: float,
        log: FaultLog,
        capture: Callable[[int], int],
    ) -> None:
        super().__init__(name="faults", daemon=True)
        self.cluster = cluster
        self.faults = faults
        self.rand = random.Random(seed ^ 0x5EED)
        self.duration_s = duration_s
        self.log = log
        self.capture = capture  # read the history up to a revision before compacting it
        self.stop = threading.Event()
        self.error = ""

    def _sleep(self, s: float) -> bool:
        """Sleep unless stopped; False when stopped."""
        return not self.stop.wait(max(0.0, s))

    def run(self) -> None:
        try:
            slot = self.duration_s / max(1, len(self.faults))
            for fault in self.faults:
                if not self._sleep(self.rand.uniform(0.15, 0.35) * slot):
                    return
                t0 = time.monotonic()
                self.log.note(f"inject {fault}")
                self._inject(fault, slot * 0.5)
                self.log.note(f"healed {fault}")
                if not self._sleep(slot * 0.65 - (time.monotonic() - t0)):
                    return
        except Exception as e:  # reported as a harness error, not swallowed
            self.error = f"{type(e).__name__}: {e}"
            self.log.note(f"fault injector failed: {self.error}")

    # ------------------------------------------------------------------ faults

    def _pick(self, leader: bool | None) -> Member:
        c = self.cluster
        lead = c.leader()
        alive = [m for m in c.members if m.alive]
        if leader is True and lead is not None:
            return lead
        if leader is False:
            followers = [m for m in alive if m is not lead]
            if followers:
                return self.rand.choice(followers)
        return self.rand.choice(alive or c.members)

    def _inject(self, fault: str, window_s: float) -> None:
        c = self.cluster
        if fault in {"kill-leader", "kill-follower"}:
            m = self._pick(fault == "kill-leader")
            self.log.note(f"SIGKILL {m.name}")
            c.kill(m)
            self._sleep(self.rand.uniform(0.5, 2.0))
            self._restart(m)
        elif fault == "pause":
            m = self._pick(None)
            self.log.note(f"SIGSTOP {m.name}")
            c.pause(m)
            self._sleep(self.rand.uniform(1.0, min(5.0, window_s)))
            self.log.note(f"SIGCONT {m.name}")
            c.resume(m)
        elif fault == "partition":
            m = self._pick(self.rand.random() < 0.5)
            self.log.note(f"isolate {m.name}")
            c.isolate(m)
            self._sleep(self.rand.uniform(2.0, max(2.5, window_s)))
            c.heal()
        elif fault == "delay":
            m = self._pick(None)
            d = self.rand.choice((0.05, 0.2, 0.5, 1.2))
            self.log.note(f"delay {m.name} links by {d}s")
            c.set_rules(delay_s={m.member_id: d}, jitter_s=d / 2)
            self._sleep(self.rand.uniform(2.0, max(2.5, window_s)))
            c.heal()
        elif fault == "member-replace":
            m = self._pick(False)
            self.log.note(f"replace {m.name} (id {m.member_id:x})")
            ok = c.replace(m)
            self.log.note(f"replaced {m.name}: new id {m.member_id:x} ready={ok}")
        elif fault == "restart-cluster":
            self.log.note("SIGKILL every member")
            for m in c.members:
                c.kill(m)
            self._sleep(self.rand.uniform(0.2, 1.0))
            for m in c.members:
                c.start(m, "new")
            for m in c.members:
                c.wait_ready(m)
        elif fault == "compact":
            end = time.monotonic() + window_s
            while time.monotonic() < end and not self.stop.is_set():
                self._compact()
                self._sleep(self.rand.uniform(0.5, 2.0))
        elif fault == "defrag":
            end = time.monotonic() + window_s
            while time.monotonic() < end and not self.stop.is_set():
                m = self._pick(None)
                self.log.note(f"defragment {m.name}")
                try:
                    rpc_pb2_grpc.MaintenanceStub(c.channel(m)).Defragment(pb.DefragmentRequest(), timeout=20)
                except grpc.RpcError as e:
                    self.log.note(f"defragment {m.name} failed: {e.code().name}")
                self._sleep(self.rand.uniform(0.5, 2.0))
        elif fault.startswith("failpoint:"):
            self._failpoint(fault.removeprefix("failpoint:"), window_s)
        else:
            raise ValueError(f"unknown fault {fault!r}")

    def _restart(self, m: Member) -> None:
        c = self.cluster
        if m.alive:
            return
        self.log.note(f"restart {m.name}")
        c.start(m, "new")
        if not c.wait_ready(m):
            self.log.note(f"{m.name} not ready after restart (alive={m.alive})")

    def _compact(self) -> None:
        c = self.cluster
        m = self._pick(None)
        st = c.status(m)
        if st is None:
            return
        target = st.header.revision - self.rand.randrange(0, 20)
        if target <= 1:
            return
        got = self.capture(target)
        if got < target:
            self.log.note(f"compact skipped: history read only to {got} < {target}")
            return
        try:
            rpc_pb2_grpc.KVStub(c.channel(m)).Compact(
                pb.CompactionRequest(revision=target, physical=self.rand.random() < 0.5), timeout=10
            )
            self.log.note(f"compact {target} on {m.name}")
        except grpc.RpcError as e:
            self.log.note(f"compact {target} on {m.name} failed: {e.code().name} {e.details()}")

    def _failpoint(self, spec: str, window_s: float) -> None:
        c = self.cluster
        name, _, term = spec.partition("=")
        term = term or "panic"
        snap = name in {"raftBeforeApplySnap", "raftAfterApplySnap"}
        m = self._pick(False if snap else self.rand.random() < 0.5)
        if snap:
            # A follower installs a snapshot when it is far behind: cut it off while the others
            # move on by more than the catch-up entries; arm the point; let it back.
            self.log.note(f"isolate {m.name} to make it need a snapshot")
            c.isolate(m)
            self._sleep(min(window_s, 8.0))
        armed = c.set_failpoint(m, name, term)
        self.log.note(f"arm {name}={term} on {m.name}: {'ok' if armed else 'FAILED'}")
        if snap:
            c.heal()
        end = time.monotonic() + window_s
        while m.alive and time.monotonic() < end and not self.stop.is_set():
            time.sleep(0.1)
        code = m.proc.poll() if m.proc is not None else None
        self.log.note(f"{m.name} {'crashed, exit ' + str(code) if code is not None else 'still running'}")
        if m.alive:
            c.set_failpoint(m, name, None)
        self._sleep(self.rand.uniform(0.2, 1.0))
        self._restart(m)

    def heal_all(self) -> None:
        """Before the checks: links whole, nobody paused, every member up without failpoints."""
        c = self.cluster
        c.heal()
        for m in c.members:
            c.resume(m)
        for m in c.members:
            if not m.alive:
                self.log.note(f"final restart {m.name}")
                c.start(m, "new")
        for m in c.members:
            c.wait_ready(m, timeout_s=60.0)
        c.learn_ids()


def schedule(faults: list[str], seed: int, members: int, petcd: bool, count: int) -> list[str]:
    """`count` faults drawn (by the seed) from `faults`, keeping only those that apply."""
    usable = [f for f in faults if applicable(f, members, petcd)]
    if not usable:
        return []
    rand = random.Random(seed * 7919 + 1)
    return [rand.choice(usable) for _ in range(count)]
