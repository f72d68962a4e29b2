"""Linearizability of a KV history against a model of etcd's KV, one key at a time (WGL search).

The history is a list of `KvOp`: what a client asked (put, get, delete, compare-and-set on
mod_revision), when it invoked it and when it got the answer (simulated time), and the answer.
An op whose outcome is unknown (the member crashed, the request timed out) has `ret=None`: it
never constrains another op's place, and it may take effect or not - unless `required` says it
did (the final history holds its unique value), in which case it must be placed somewhere.

The model of one key is `(value, mod_rev, floor)`: the key's value (None: absent), the revision
of its last change, and the lowest revision the next change may carry. Every operation that
carries a revision also moves the floor: a write of revision r needs r > floor, a read answered
at header revision R needs R >= the key's mod_rev and pushes the floor to R (a write placed
after that read must be newer than what the read saw). This is weaker than etcd's single global
revision counter - it is a projection on one key - so a history it rejects is a real violation;
that is what makes checking key by key sound.

Guided mode (`changes` given: the key's final history, which the simulator has checked every
member holds): the state is instead (number of the key's changes applied, floor); a write can
only be the key's next change, a read at revision R must see exactly the key as of R, and a
delete of unknown outcome can only account for a tombstone no acknowledged delete claims. Writes
are then placed in revision order, which keeps the search small on long concurrent histories
that the plain model would explore exponentially.

Search (Wing & Gong, with Lowe's memo): depth first, an op may be placed next when its invocation
precedes the return of every op not yet placed; states already explored with the same set of
placed ops are skipped. A budget of search steps bounds the work: when it runs out the verdict is
`UNKNOWN`, reported as such, never as a pass.
"""

from __future__ import annotations

import bisect
import enum
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# What a key looks like: (value or None, mod_revision, revision floor).
State = tuple[bytes | None, int, int]
INITIAL: State = (None, 0, 0)
UNKNOWN_MOD = -1  # written by an op of unknown outcome and revision: the next read fixes it


class Verdict(enum.Enum):
    OK = "ok"
    VIOLATION = "violation"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class KvOp:
    """One client request on one key, and its answer when known."""

    id: int
    kind: str  # "put" | "get" | "delete" | "cas"
    key: bytes
    invoke: int
    ret: int | None = None  # None: outcome unknown
    value: bytes = b""  # put / cas: the value written (unique per op)
    expect_mod: int = 0  # cas: the compared mod_revision
    revision: int = 0  # the response header's revision
    found: bytes | None = None  # get: the value read (None: absent)
    found_mod: int = 0  # get: its mod_revision
    deleted: int = 0  # delete: keys deleted
    succeeded: bool = False  # cas: the compare held
    required: bool = False  # unknown outcome, yet known to have taken effect
    member: int = 0
    group: int = 0  # nonzero: part of one multi-key txn (its parts share one revision)

    @property
    def known(self) -> bool:
        return self.ret is not None

    def describe(self) -> str:
        r = "?" if self.ret is None else str(self.ret)
        head = f"#{self.id} {self.kind} {self.key!r} [{self.invoke},{r}] m{self.member}"
        if self.kind == "put":
            return f"{head} {self.value!r} -> rev {self.revision or '?'}"
        if self.kind == "cas":
            rev = self.revision or "?"
            return f"{head} if mod={self.expect_mod} put {self.value!r} -> {self.succeeded} rev {rev}"
        if self.kind == "delete":
            return f"{head} -> deleted {self.deleted} rev {self.revision or '?'}"
        return f"{head} -> {self.found!r} mod {self.found_mod} at rev {self.revision}"


def step(state: State, op: KvOp) -> State | None:
    """The model's next state after `op`, or None when `op`'s answer is impossible in `state`."""
    value, mod, floor = state
    kind = op.kind
    if kind == "put" or (kind == "cas" and (op.succeeded or not op.known)):
        if kind == "cas" and (mod if value is not None else 0) != op.expect_mod:
            return None
        if op.revision == 0:  # unknown outcome and unknown revision: the next read tells it
            return (op.value, UNKNOWN_MOD, floor)
        if op.revision <= floor:
            return None
        return (op.value, op.revision, op.revision)
    if kind == "cas":  # failed compare: a read
        if mod == UNKNOWN_MOD or (mod if value is not None else 0) == op.expect_mod:
            return None
        return _read_at(state, op.revision)
    if kind == "delete":
        if not op.known:
            return (None, mod, floor)  # may have deleted it, at some revision above the floor
        if op.deleted:
            if value is None or op.revision <= floor:
                return None
            return (None, op.revision, op.revision)
        if value is not None:
            return None
        return _read_at(state, op.revision)
    # get
    if op.found != value:
        return None
    if value is not None and mod == UNKNOWN_MOD:
        if op.found_mod <= floor:
            return None
        mod = op.found_mod
        floor = max(floor, mod)
        state = (value, mod, floor)
    elif value is not None and op.found_mod != mod:
        return None
    return _read_at(state, op.revision)


def _read_at(state: State, revision: int) -> State | None:
    value, mod, floor = state
    if revision < mod:
        return None
    return (value, mod, max(floor, revision))


KeyChange = tuple[int, bytes | None]  # (revision, value or None for a delete)


def guided_step(
    state: tuple[int, int], op: KvOp, changes: Sequence[KeyChange], claimed: frozenset[int] = frozenset()
) -> tuple[int, int] | None:
    """The model guided by the key's final history: the state is (p, floor), p the number of
    the key's changes applied. A write must be the key's next change (same revision, same
    value); a read at header revision R sees exactly the key as of R. A delete of unknown
    outcome can only be a tombstone that no acknowledged delete (`claimed`) accounts for."""
    p, floor = state
    nxt = changes[p] if p < len(changes) else None
    if op.kind == "delete" and not op.known and (nxt is None or nxt[0] in claimed):
        return None
    writes = op.kind == "put" or (op.kind == "cas" and (op.succeeded or not op.known))
    if writes or (op.kind == "delete" and (op.deleted or not op.known)):
        if nxt is None or nxt[0] <= floor:
            return None
        is_delete = op.kind == "delete"
        if is_delete != (nxt[1] is None) or (not is_delete and nxt[1] != op.value):
            return None
        if op.revision and op.revision != nxt[0]:
            return None
        if op.kind == "cas":
            prev = changes[p - 1] if p else None
            if (prev[0] if prev is not None and prev[1] is not None else 0) != op.expect_mod:
                return None
        return (p + 1, nxt[0])
    # reads: get, failed cas, delete of nothing
    if not op.known:
        return None
    r = op.revision
    if (p and r < changes[p - 1][0]) or (nxt is not None and r >= nxt[0]):
        return None
    cur = changes[p - 1] if p else None
    value = cur[1] if cur is not None else None
    mod = cur[0] if cur is not None and value is not None else 0
    if op.kind == "get":
        if op.found != value or (value is not None and op.found_mod != mod):
            return None
    elif op.kind == "cas":
        if mod == op.expect_mod:
            return None
    elif value is not None:  # delete that deleted nothing
        return None
    return (p, max(floor, r))


@dataclass(slots=True)
class KeyResult:
    key: bytes
    verdict: Verdict
    steps: int
    detail: str = ""


def check_key(
    ops: Sequence[KvOp],
    budget: int = 200_000,
    initial: State = INITIAL,
    changes: Sequence[KeyChange] | None = None,
) -> KeyResult:
    """Is the history of one key linearizable? `ops` all touch the same key.

    With `changes` (the key's final history, checked elsewhere to be what every member holds),
    the search follows it (`guided_step`): writes can only be placed in revision order, which
    keeps the search small; without, the plain model (`step`)."""
    key = ops[0].key if ops else b""
    # Unknown ops that can change nothing are left out (they may always be left unplaced).
    ops = [o for o in ops if o.known or o.required or o.kind != "get"]
    n = len(ops)
    if n == 0:
        return KeyResult(key, Verdict.OK, 0)
    order = sorted(range(n), key=lambda i: (ops[i].invoke, ops[i].id))
    ops = [ops[i] for i in order]
    inf = 1 << 62
    rets = [o.ret if o.ret is not None else inf for o in ops]
    must = 0  # bit set: ops that have to be placed
    for i, o in enumerate(ops):
        if o.known or o.required:
            must |= 1 << i
    start: object = initial if changes is None else (0, 0)
    claimed = frozenset(o.revision for o in ops if o.kind == "delete" and o.known and o.deleted)

    def advance(state: object, o: KvOp) -> object:
        if changes is None:
            return step(state, o)  # type: ignore[arg-type]
        return guided_step(state, o, changes, claimed)  # type: ignore[arg-type]

    # Deletes of unknown outcome are interchangeable but for their invocation times, and nothing
    # bounds them from above: placing the earliest-invoked one first loses no linearization, and
    # keeps the search from trying every subset of them.
    unknown_deletes = [i for i, o in enumerate(ops) if o.kind == "delete" and not o.known]
    is_read = [
        o.known
        and (
            o.kind == "get" or (o.kind == "cas" and not o.succeeded) or (o.kind == "delete" and not o.deleted)
        )
        for o in ops
    ]

    invokes = [o.invoke for o in ops]
    optional = [i for i in range(n) if not (must >> i) & 1]  # may stay unplaced
    seen: set[tuple[int, object]] = set()
    steps = 0
    best = 0  # the most ops placed on any path (for the report)
    best_state: object = start
    best_mask = 0
    # Iterative DFS: stack of (mask, state).
    stack: list[tuple[int, object]] = [(0, start)]
    while stack:
        mask, state = stack.pop()
        if (mask & must) == must:
            return KeyResult(key, Verdict.OK, steps)
        if (mask, state) in seen:
            continue
        seen.add((mask, state))
        steps += 1
        if steps > budget:
            return KeyResult(key, Verdict.UNKNOWN, steps, f"search budget of {budget} steps spent")
        placed = mask.bit_count()
        if placed > best:
            best, best_state, best_mask = placed, state, mask
        # Earliest return among ops not yet placed that must be placed: nothing invoked after it
        # can go next. Ops are in invocation order and none returns before it is invoked, so the
        # scans start at the first unplaced op that must be placed (`low`: everything before it
        # that must be placed is) and stop at the first op invoked after the horizon: what they
        # skip could not qualify. This keeps each step linear in the ops in flight, not in n.
        remaining = must & ~mask
        low = (remaining & -remaining).bit_length() - 1
        horizon = inf
        for i in range(low, n):
            if ops[i].invoke > horizon:
                break
            if (remaining >> i) & 1 and rets[i] < horizon:
                horizon = rets[i]
        high = bisect.bisect_right(invokes, horizon)
        first_unknown_delete = next((i for i in unknown_deletes if not (mask >> i) & 1), -1)
        if changes is not None:
            # A read that can go now, goes now, alone: in the guided model it changes only the
            # floor, to a revision below the key's next change, so it disables nothing (and
            # leaving the ops list early only relaxes the horizon). Trying reads in every order
            # is what made long concurrent histories explode.
            read = next(
                (
                    i
                    for i in range(low, high)
                    if not (mask >> i) & 1
                    and is_read[i]
                    and ops[i].invoke <= horizon
                    and advance(state, ops[i]) is not None
                ),
                -1,
            )
            if read >= 0:
                stack.append((mask | (1 << read), advance(state, ops[read])))
                continue
        early = [j for j in optional if j < low and not (mask >> j) & 1 and ops[j].invoke <= horizon]
        for i in itertools.chain(range(high - 1, low - 1, -1), reversed(early)):
            if (mask >> i) & 1:
                continue
            o = ops[i]
            if o.kind == "delete" and not o.known and i != first_unknown_delete:
                continue
            if o.invoke > horizon:
                continue
            nxt = advance(state, o)
            if nxt is not None:
                stack.append((mask | (1 << i), nxt))
    pending = [ops[i].describe() for i in range(n) if not (best_mask >> i) & 1 and (must >> i) & 1][:6]
    return KeyResult(
        key,
        Verdict.VIOLATION,
        steps,
        f"no linearization; longest prefix places {best}/{must.bit_count()} ops, reaching "
        f"{_describe_state(best_state, changes)}; stuck before: " + "; ".join(pending),
    )


def _describe_state(state: object, changes: Sequence[KeyChange] | None) -> str:
    if changes is None:
        plain: State = state  # type: ignore[assignment]
        return f"value={plain[0]!r} mod={plain[1]} floor={plain[2]}"
    guided: tuple[int, int] = state  # type: ignore[assignment]
    p = guided[0]
    cur = changes[p - 1] if p else None
    return f"the key's change #{p} {cur} floor={guided[1]}"


def check_history(
    ops: Iterable[KvOp],
    budget_per_key: int = 200_000,
    changes: dict[bytes, list[KeyChange]] | None = None,
) -> list[KeyResult]:
    """Check every key separately; results for every key, in key order. `changes`: each key's
    final history (guided search), or None (plain model)."""
    by_key: dict[bytes, list[KvOp]] = {}
    for o in ops:
        by_key.setdefault(o.key, []).append(o)
    return [
        check_key(by_key[k], budget_per_key, changes=None if changes is None else changes.get(k, []))
        for k in sorted(by_key)
    ]
