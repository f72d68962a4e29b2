"""The checkers of a run, over the history the clients recorded and the cluster's final state.

The *final history* (every change by revision) is read from the cluster itself with a watch from
revision 1 on the whole key space (`HistoryCapture`); before each compaction the harness reads it
up to the compacted revision first, so nothing is lost to compaction. It is trusted only as far as
other checks confirm it: every member's HashKV at the final revision must agree, and the final
state it implies must equal what a Range of the whole key space returns on every member.

Then the checkers of petcd.sim.server_checker run on it (linearizability per key with the cross-key
facts, serializable and historic reads against the history, watches, no acknowledged write lost,
revisions never decreasing), plus the watch properties a generic WatchRecord does not keep:
every stream begins with a `created` response and has no other; a progress notification never
names a revision below an event already delivered (bookmarkable); a stream canceled for
compaction names a compact revision above its start.

A linearizability search that runs out of budget yields `linearizability-unknown`, which fails a
run just as a violation does (never a silent pass).
"""

from __future__ import annotations

import base64
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc
from petcd.pb.mvccpb import kv_pb2
from petcd.robustness.cluster import Cluster
from petcd.robustness.history import Operation
from petcd.robustness.traffic import WatchStream, drain
from petcd.sim.checker import Violation
from petcd.sim.linearizability import KvOp
from petcd.sim.server_checker import (
    Change,
    FinalHistory,
    check_acked_writes,
    check_kv_history,
    check_watches,
)

CAPTURE_TIMEOUT_S = 20.0


class HistoryCapture:
    """The cluster's change history, read with watches from revision 1, in pieces."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.changes: list[Change] = []
        self.revision = 1  # every change up to here is in `changes`
        self.problem = ""

    def capture_to(self, target: int) -> int:
        """Read changes up to at least `target`; the revision read to."""
        if self.revision >= target:
            return self.revision
        deadline = time.monotonic() + CAPTURE_TIMEOUT_S
        while self.revision < target and time.monotonic() < deadline:
            for m in self.cluster.members:
                if not m.alive or m.paused:
                    continue
                self._capture_from(m, target, deadline)
                if self.revision >= target:
                    break
            else:
                time.sleep(0.2)
        return self.revision

    def _capture_from(self, m: object, target: int, deadline: float) -> None:
        requests: queue.Queue[pb.WatchRequest | None] = queue.Queue()
        requests.put(
            pb.WatchRequest(
                create_request=pb.WatchCreateRequest(
                    key=b"\x00", range_end=b"\x00", start_revision=self.revision + 1
                )
            )
        )

        stub = rpc_pb2_grpc.WatchStub(self.cluster.channel(m))  # type: ignore[arg-type]
        timeout = max(0.5, min(5.0, deadline - time.monotonic()))
        call = stub.Watch(drain(requests), timeout=timeout)
        try:
            for resp in call:
                if resp.canceled:
                    if resp.compact_revision:
                        self.problem = (
                            f"history lost: compacted at {resp.compact_revision} before it was read "
                            f"(read to {self.revision})"
                        )
                    return
                for e in resp.events:
                    kv = e.kv
                    if kv.mod_revision <= self.revision:
                        continue  # a member resent what another gave already
                    value = None if e.type == kv_pb2.Event.DELETE else kv.value
                    self.changes.append(Change(kv.mod_revision, kv.key, value, kv.lease))
                if resp.events:
                    self.revision = max(self.revision, resp.events[-1].kv.mod_revision)
                if self.revision >= target:
                    return
        except grpc.RpcError:
            return
        finally:
            requests.put(None)
            call.cancel()

    def final(self) -> FinalHistory:
        return FinalHistory(self.changes)


@dataclass(slots=True)
class Outcome:
    violations: list[Violation]
    unknown: list[Violation]
    lin_seconds: float = 0.0
    ops: int = 0


def check_streams(streams: Sequence[WatchStream], now: int) -> list[Violation]:
    """What check_watches cannot see: created flags, bookmarks below delivered events, headers
    below their events (the records name an event response by its last event's revision)."""
    out: list[Violation] = []
    for s in streams:
        rec = s.record
        if s.created and not s.created[0] and not rec.canceled:
            out.append(Violation("watch", now, f"{rec.describe()}: first response not 'created'"))
        if any(s.created[1:]):
            out.append(Violation("watch", now, f"{rec.describe()}: a second 'created' response"))
        last_event = 0
        progress = dict(s.progress)
        for i, (rev, events) in enumerate(rec.responses):
            if events and i < len(s.headers) and s.headers[i] < events[-1].revision:
                out.append(
                    Violation(
                        "watch",
                        now,
                        f"{rec.describe()}: response at header revision {s.headers[i]} carries an event "
                        f"at {events[-1].revision}",
                    )
                )
                break
            if events:
                last_event = max(last_event, events[-1].revision)
            elif i in progress and rev < last_event:
                out.append(
                    Violation(
                        "watch",
                        now,
                        f"{rec.describe()}: progress notification at {rev} after an event at {last_event}",
                    )
                )
                break
        if s.compact_revision and s.compact_revision <= rec.start_rev and rec.canceled:
            out.append(
                Violation(
                    "watch",
                    now,
                    f"{rec.describe()}: canceled as compacted at {s.compact_revision} <= its start",
                )
            )
    return out


def check_final_state(
    final: FinalHistory, ranges: dict[str, tuple[int, list[tuple[bytes, bytes, int]]]], now: int
) -> list[Violation]:
    """Each member's full Range at its revision equals the history's state there."""
    out = []
    for name, (rev, kvs) in ranges.items():
        want = sorted((k, v[0], v[1]) for k in final.by_key if (v := final.value_at(k, rev)) is not None)
        if sorted(kvs) != want:
            got_keys = {k for k, _, _ in kvs}
            want_keys = {k for k, _, _ in want}
            diff = sorted(got_keys ^ want_keys)[:5]
            wrong = [x for x in kvs if x not in want][:3]
            out.append(
                Violation(
                    "final-state",
                    now,
                    f"{name} at revision {rev}: range differs from the history (keys only on one side "
                    f"{diff}, values not in the history {wrong})",
                )
            )
    return out


def _int(d: dict[str, object] | None, *path: str) -> int:
    cur: object = d
    for p in path:
        if not isinstance(cur, dict):
            return 0
        cur = cur.get(p)
    return int(cur) if isinstance(cur, (str, int)) else 0


def check_leases(operations: Sequence[Operation], final: FinalHistory, now: int) -> list[Violation]:
    """A revoke that was acknowledged at revision R deleted, by R, every key put with that lease
    before it (unless something else changed the key meanwhile)."""
    puts: dict[int, list[tuple[bytes, int]]] = {}
    revokes: list[tuple[int, int, Operation]] = []
    for o in operations:
        if o.response is None:
            continue
        if o.kind == "put" and _int(o.request, "lease"):
            key = base64.b64decode(str((o.request or {}).get("key", "")))
            puts.setdefault(_int(o.request, "lease"), []).append(
                (key, _int(o.response, "header", "revision"))
            )
        elif o.kind == "lease-revoke":
            revokes.append((_int(o.request, "ID"), _int(o.response, "header", "revision"), o))
    out = []
    for lease, rev, op in revokes:
        for key, put_rev in puts.get(lease, []):
            if put_rev >= rev:
                continue
            c = final.at(key, rev)
            if c is not None and c.revision == put_rev:
                out.append(
                    Violation(
                        "lease",
                        now,
                        f"revoke of lease {lease:x} (op #{op.id}, revision {rev}) left {key!r} as put at "
                        f"revision {put_rev} with that lease",
                    )
                )
    return out


def run_checks(  # noqa: PLR0917 - the parts of a run
    kv_ops: list[KvOp],
    streams: Sequence[WatchStream],
    final: FinalHistory,
    lin_keys: set[bytes],
    budget_per_key: int,
    now: int,
) -> Outcome:
    violations: list[Violation] = []
    t0 = time.monotonic()
    lin_ops = [o for o in kv_ops if o.key in lin_keys]
    for v in check_kv_history(lin_ops, final, now, budget_per_key):
        violations.append(v)
    lin_s = time.monotonic() - t0
    violations += check_acked_writes(kv_ops, final, now)
    violations += check_watches([s.record for s in streams], final, now)
    violations += check_streams(streams, now)
    unknown = [v for v in violations if v.kind.endswith("-unknown")]
    real = [v for v in violations if not v.kind.endswith("-unknown")]
    return Outcome(real, unknown, lin_s, len(kv_ops))
