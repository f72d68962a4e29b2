"""What clients of a simulated server cluster saw, checked against the final history.

The *final history* is every revision with its changes. Compaction removes old revisions from the
members' stores, so the simulator records each revision as members apply it (`HistoryRecorder`,
fed by every Node's KV event sink): members that apply one revision must agree on its changes
(state-machine safety), no revision may be missing, and once the cluster has caught up the
recorded history must equal what a member still holds above its compaction point. HashKV
agreement (`check_hash_kv`) shows that every member holds that same history. The checks, each
returning `Violation`s (petcd.sim.checker):

1. linearizability (`check_kv_history`): the per-key WGL search of `linearizability`, plus the
   cross-key facts a per-key search cannot see: an acknowledged write that returned before
   another was invoked has the lower revision; a linearizable read is answered at a revision no
   lower than any write acknowledged before it was invoked; no two acknowledged writes share a
   revision. Unknown-outcome puts are given their revision from the final history (values are
   unique), or dropped when it does not hold them (they never took effect). A key whose search
   runs out of budget is reported as `linearizability-unknown`, never passed. Serializable reads
   are not linearizable; they must equal the final history at their header revision.
2. watches (`check_watches`): per watcher, events in revision order, no duplicates, each
   revision in one response, and exactly the final history's events for the watched range from
   the start revision up to the last revision the watcher was told about; prev_kv equal to the
   key's value at revision - 1 (or absent once that revision was compacted away); a watcher still
   open at the end has received everything; a watcher cancelled by compaction names a revision
   that was compacted to, above the next revision the watcher needed (etcd: min_rev < compact);
   a delete at a compaction revision may be missing once compacted (etcd removes that tombstone).
3. HashKV (`check_hash_kv`): every member at the same revision has the same hash.
4. no acknowledged write lost (`check_acked_writes`): the final history holds every acked
   put/cas/delete at its revision.
5. revisions never go back (`RevisionWatch`): each member's revision, observed throughout the
   run and across restarts, never decreases.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from petcd.pb.mvccpb import kv_pb2 as mvccpb
from petcd.sim.checker import Violation
from petcd.sim.linearizability import KvOp, Verdict, check_history


@dataclass(frozen=True, slots=True)
class Change:
    revision: int
    key: bytes
    value: bytes | None  # None: a delete
    lease: int = 0


def change_of(revision: int, is_delete: bool, kv: mvccpb.KeyValue) -> Change:
    """One change as the checkers compare them (a delete carries no value and no lease)."""
    if is_delete:
        return Change(revision, bytes(kv.key), None)
    return Change(revision, bytes(kv.key), bytes(kv.value), int(kv.lease))


class HistoryRecorder:
    """Every revision's changes, as the members applied them (see the module docstring)."""

    def __init__(self) -> None:
        self.by_rev: dict[int, tuple[Change, ...]] = {}
        self.violations: list[Violation] = []

    def record(self, time: int, member: int, revision: int, events: Sequence[mvccpb.Event]) -> None:
        changes = tuple(change_of(revision, e.type == mvccpb.Event.DELETE, e.kv) for e in events)
        have = self.by_rev.get(revision)
        if have is None:
            self.by_rev[revision] = changes
        elif have != changes and len(self.violations) < 5:
            self.violations.append(
                Violation(
                    "state-machine",
                    time,
                    f"m{member} applied {changes} at revision {revision}; another member applied {have}",
                )
            )

    def final(self, upto: int, time: int) -> tuple[FinalHistory, list[Violation]]:
        """The history of revisions 2..`upto` (revision 1 is the empty store's)."""
        missing = [r for r in range(2, upto + 1) if r not in self.by_rev]
        out = list(self.violations)
        if missing:
            out.append(Violation("history-gap", time, f"no member applied revisions {missing[:10]}"))
        changes = [c for r in sorted(self.by_rev) if r <= upto for c in self.by_rev[r]]
        return FinalHistory(changes), out


def check_member_history(
    member: int, held: Iterable[Change], final: FinalHistory, span: tuple[int, int], time: int
) -> list[Violation]:
    """What a member still holds (revisions span[0]..span[1]) equals the recorded history there."""
    lo, hi = span
    got = sorted(held, key=lambda c: (c.revision, c.key))
    want = [c for c in final.changes if lo <= c.revision <= hi]
    if got == want:
        return []
    pairs = zip(got, want, strict=False)
    diff = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(got), len(want)))
    return [
        Violation(
            "history",
            time,
            f"m{member} holds {got[diff : diff + 2]} where the recorded history has {want[diff : diff + 2]}"
            f" (revisions {lo}..{hi})",
        )
    ]


class FinalHistory:
    """Every change by revision, and every key's versions."""

    def __init__(self, changes: Iterable[Change]) -> None:
        self.changes = sorted(changes, key=lambda c: (c.revision, c.key))
        self.by_key: dict[bytes, list[Change]] = {}
        self.by_value: dict[tuple[bytes, bytes], int] = {}
        for c in self.changes:
            self.by_key.setdefault(c.key, []).append(c)
            if c.value is not None:
                self.by_value.setdefault((c.key, c.value), c.revision)
        self._revs = {k: [c.revision for c in v] for k, v in self.by_key.items()}
        self.last_revision = self.changes[-1].revision if self.changes else 1

    def at(self, key: bytes, revision: int) -> Change | None:
        """The key's last change at or before `revision` (None: never written by then)."""
        revs = self._revs.get(key)
        if not revs:
            return None
        i = bisect.bisect_right(revs, revision)
        return self.by_key[key][i - 1] if i else None

    def value_at(self, key: bytes, revision: int) -> tuple[bytes, int] | None:
        """(value, mod_revision) of the key at `revision`, None when absent."""
        c = self.at(key, revision)
        return None if c is None or c.value is None else (c.value, c.revision)

    def in_range(self, start: bytes, end: bytes | None, lo: int, hi: int) -> list[Change]:
        out = []
        for c in self.changes:
            if lo <= c.revision <= hi and _in(c.key, start, end):
                out.append(c)
        return out


def _in(key: bytes, start: bytes, end: bytes | None) -> bool:
    if end is None:
        return key == start
    if end == b"\x00":
        return key >= start
    return start <= key < end


# ------------------------------------------------------------------------------ 1. KV history


def resolve_unknown(ops: Sequence[KvOp], final: FinalHistory) -> list[KvOp]:
    """Unknown-outcome puts and cas: revision from the final history, or dropped."""
    out = []
    for o in ops:
        if not o.known and o.kind in ("put", "cas"):
            rev = final.by_value.get((o.key, o.value))
            if rev is None:
                continue  # never took effect
            o.revision = rev
            o.required = True
            o.succeeded = True
        out.append(o)
    return out


def _write_rev(o: KvOp) -> int:
    """The revision an acknowledged op created (0: none)."""
    if not o.known:
        return 0
    if o.kind == "put" or (o.kind == "cas" and o.succeeded) or (o.kind == "delete" and o.deleted):
        return o.revision
    return 0


def check_kv_history(
    ops: Sequence[KvOp], final: FinalHistory, time: int, budget_per_key: int = 200_000
) -> list[Violation]:
    """Linearizable ops (serializable gets pass `serializable` set in `kind` = "sget")."""
    violations: list[Violation] = []
    lin = [o for o in ops if o.kind != "sget"]
    for o in ops:
        if o.kind == "sget" and o.known:
            want = final.value_at(o.key, o.revision)
            got = None if o.found is None else (o.found, o.found_mod)
            if want != got:
                violations.append(
                    Violation("serializable-read", time, f"{o.describe()}: the history holds {want} there")
                )
    lin = resolve_unknown(lin, final)
    # Cross-key: revisions of writes follow real time; reads see every write acked before them.
    writes = sorted((o for o in lin if _write_rev(o)), key=lambda o: o.ret or 0)
    by_rev: dict[int, KvOp] = {}
    for o in writes:
        r = _write_rev(o)
        if r in by_rev and not (o.group and by_rev[r].group == o.group):
            violations.append(
                Violation(
                    "linearizability",
                    time,
                    f"two writes at revision {r}: {by_rev[r].describe()} / {o.describe()}",
                )
            )
        by_rev[r] = o
    rets = [o.ret or 0 for o in writes]
    # prefix maxima of revisions by return time
    prefix_max: list[int] = []
    m = 0
    for o in writes:
        m = max(m, _write_rev(o))
        prefix_max.append(m)
    for o in lin:
        if not o.known:
            continue
        i = bisect.bisect_left(rets, o.invoke)  # writes returned strictly before o was invoked
        if i == 0:
            continue
        floor = prefix_max[i - 1]
        mine = _write_rev(o) or o.revision
        if mine < floor or (_write_rev(o) and mine == floor):
            culprit = next(w for w in writes[:i] if _write_rev(w) == floor)
            violations.append(
                Violation(
                    "linearizability",
                    time,
                    f"{o.describe()} is older than {culprit.describe()}, acknowledged before it began",
                )
            )
            break
    key_changes = {k: [(c.revision, c.value) for c in cs] for k, cs in final.by_key.items()}
    for res in check_history(lin, budget_per_key, key_changes):
        if res.verdict is Verdict.VIOLATION:
            violations.append(Violation("linearizability", time, f"key {res.key!r}: {res.detail}"))
        elif res.verdict is Verdict.UNKNOWN:
            violations.append(Violation("linearizability-unknown", time, f"key {res.key!r}: {res.detail}"))
    return violations


# ------------------------------------------------------------------------------ 2. watches


@dataclass(slots=True)
class WatchEvent:
    revision: int
    key: bytes
    value: bytes | None  # None: delete
    prev: tuple[bytes, int] | None = None  # prev_kv (value, mod_revision), when asked for


@dataclass(slots=True)
class WatchRecord:
    """One watcher as its client saw it: the responses, in order."""

    id: int
    member: int
    start: bytes
    end: bytes | None
    start_rev: int
    prev_kv: bool
    responses: list[tuple[int, list[WatchEvent]]] = field(default_factory=list)  # (revision, events)
    canceled: str = ""
    compact_revision: int = 0  # cancelled by compaction: the response's compact_revision
    # The member's compaction revision when responses were drained: prev_kv of an event at or
    # below it may be missing (etcd reads prev_kv at revision - 1, which compaction may remove).
    compacted_seen: int = 0
    unexpected_cancel: str = ""  # cancelled by the server for no reason the client gave
    # Still open at the end, on a member that caught up: every event of the final history in its
    # range from start_rev on must have arrived (a watch makes progress once the cluster heals).
    complete: bool = False

    def describe(self) -> str:
        return f"watch #{self.id} on m{self.member} [{self.start!r},{self.end!r}) from rev {self.start_rev}"


def check_watches(
    watches: Iterable[WatchRecord], final: FinalHistory, time: int, compactions: set[int] | None = None
) -> list[Violation]:
    """`compactions`: every revision a compaction was asked for (None: no compaction ran)."""
    out: list[Violation] = []
    for w in watches:
        problem = _check_watch(w, final, compactions or set())
        if problem:
            out.append(Violation("watch", time, f"{w.describe()}: {problem}"))
    return out


def _check_watch(w: WatchRecord, final: FinalHistory, compactions: set[int]) -> str:
    last_rev = 0  # highest revision of any event delivered
    told = 0  # highest revision the watcher was told it has seen
    got: list[WatchEvent] = []
    for resp_rev, events in w.responses:
        revs = [e.revision for e in events]
        if revs != sorted(revs):
            return f"events out of order in one response: {revs}"
        if revs and revs[0] <= last_rev:
            return f"revision {revs[0]} delivered after revision {last_rev} (duplicate, split or reordered)"
        if revs and resp_rev < revs[-1]:
            return f"response revision {resp_rev} below its events' {revs[-1]}"
        for e in events:
            if e.revision < w.start_rev:
                return f"event at revision {e.revision} before the start revision"
        if revs:
            last_rev = revs[-1]
        told = max(told, resp_rev)
        got.extend(events)
    seen = {(e.revision, e.key) for e in got}
    if len(seen) != len(got):
        return "duplicate events"
    hi = min(told, final.last_revision)
    if w.complete:
        hi = final.last_revision
    want = final.in_range(w.start, w.end, w.start_rev, hi)
    if told > final.last_revision:
        return f"told revision {told}, beyond the final history's {final.last_revision}"
    # Within one revision (a txn) the order is the txn's, which the history does not keep.
    got_cmp = sorted((e.revision, e.key, e.value) for e in got)
    # A delete at the compaction revision itself is removed with the compacted revisions (etcd's
    # keyIndex.keep drops a tombstone there), so a watcher from that revision may never see it.
    want_cmp = sorted(
        (c.revision, c.key, c.value)
        for c in want
        if not (c.value is None and c.revision in compactions and c.revision <= w.compacted_seen)
        or (c.revision, c.key, c.value) in got_cmp
    )
    if got_cmp != want_cmp:
        missing = [x for x in want_cmp if x not in got_cmp][:3]
        extra = [x for x in got_cmp if x not in want_cmp][:3]
        return f"events differ from the history up to revision {hi}: missing {missing}, unexpected {extra}"
    if w.unexpected_cancel:
        return f"cancelled by the server without a compaction ({w.unexpected_cancel})"
    if w.compact_revision:
        needed = max(w.start_rev, told + 1)
        if w.compact_revision not in compactions:
            return f"cancelled with compact_revision {w.compact_revision}, never compacted to"
        if needed >= w.compact_revision:
            return f"cancelled by compaction at {w.compact_revision} while it needed revision {needed} on"
    if w.prev_kv:
        for e in got:
            want_prev = final.value_at(e.key, e.revision - 1)
            if e.prev is None and e.revision <= w.compacted_seen:
                continue
            if e.prev != want_prev:
                return (
                    f"prev_kv of {e.key!r} at revision {e.revision} is {e.prev}, "
                    f"the history holds {want_prev}"
                )
    return ""


# ------------------------------------------------------------------------------ 3, 4, 5


def check_hash_kv(hashes: dict[int, tuple[int, int]], time: int) -> list[Violation]:
    """`hashes`: member -> (revision, hash)."""
    revs = {r for r, _ in hashes.values()}
    if len(revs) != 1:
        return [Violation("hash-kv", time, f"members at different revisions after catch-up: {hashes}")]
    if len({h for _, h in hashes.values()}) != 1:
        return [Violation("hash-kv", time, f"members disagree at revision {revs.pop()}: {hashes}")]
    return []


def check_acked_writes(ops: Iterable[KvOp], final: FinalHistory, time: int) -> list[Violation]:
    out = []
    for o in ops:
        rev = _write_rev(o)
        if not rev:
            continue
        c = final.at(o.key, rev)
        want_value = None if o.kind == "delete" else o.value
        if c is None or c.revision != rev or c.value != want_value:
            out.append(
                Violation("lost-write", time, f"{o.describe()}: the history holds {c} at revision {rev}")
            )
    return out


class RevisionWatch:
    """Each member's revision must never go back (restarts included)."""

    def __init__(self) -> None:
        self.last: dict[int, int] = {}
        self.violations: list[Violation] = []

    def observe(self, time: int, member: int, revision: int, when: str = "") -> None:
        before = self.last.get(member, 0)
        if revision < before:
            self.violations.append(
                Violation(
                    "revision-back",
                    time,
                    f"member m{member} at revision {revision} after {before} {when}".strip(),
                )
            )
        self.last[member] = max(before, revision)

    def forget(self, member: int) -> None:
        """The slot holds a new member (re-added with an empty store): start over."""
        self.last.pop(member, None)
