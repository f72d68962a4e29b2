"""The server simulator's checkers, fed hand-made histories: good ones pass, bad ones are named."""

from __future__ import annotations

from petcd.sim.checker import Violation
from petcd.sim.linearizability import KvOp, Verdict, check_key
from petcd.sim.server_checker import (
    Change,
    FinalHistory,
    RevisionWatch,
    WatchEvent,
    WatchRecord,
    check_acked_writes,
    check_hash_kv,
    check_kv_history,
    check_watches,
)

K = b"k0"


def put(i: int, invoke: int, ret: int | None, value: bytes, rev: int, key: bytes = K) -> KvOp:  # noqa: PLR0917
    return KvOp(id=i, kind="put", key=key, invoke=invoke, ret=ret, value=value, revision=rev)


def get(  # noqa: PLR0917
    i: int, invoke: int, ret: int, found: bytes | None, mod: int, rev: int, kind: str = "get"
) -> KvOp:
    return KvOp(id=i, kind=kind, key=K, invoke=invoke, ret=ret, found=found, found_mod=mod, revision=rev)


def history(*changes: tuple[int, bytes, bytes | None]) -> FinalHistory:
    return FinalHistory(Change(r, k, v) for r, k, v in changes)


def kinds(violations: list[Violation]) -> list[str]:
    return [v.kind for v in violations]


# -- 1. linearizability ------------------------------------------------------------------------


def test_a_linearizable_history_passes() -> None:
    final = history((2, K, b"a"), (3, K, b"b"))
    ops = [
        put(1, 0, 10, b"a", 2),
        get(2, 5, 20, b"a", 2, 2),  # concurrent with the put: may see it
        put(3, 15, 30, b"b", 3),
        get(4, 25, 40, b"a", 2, 2),  # concurrent with put b: may miss it
        get(5, 35, 45, b"b", 3, 3),
        put(6, 40, None, b"never", 0),  # unknown outcome, not in the history: never happened
    ]
    assert check_kv_history(ops, final, 0) == []


def test_a_stale_read_is_a_violation() -> None:
    final = history((2, K, b"a"), (3, K, b"b"))
    ops = [put(1, 0, 10, b"a", 2), put(2, 11, 20, b"b", 3), get(3, 21, 30, b"a", 2, 2)]
    assert "linearizability" in kinds(check_kv_history(ops, final, 0))


def test_a_stale_read_fails_the_plain_model_search_too() -> None:
    # The same history against the model alone (no final history): no order explains it.
    ops = [put(1, 0, 10, b"a", 2), put(2, 11, 20, b"b", 3), get(3, 21, 30, b"a", 2, 3)]
    assert check_key(ops).verdict is Verdict.VIOLATION
    assert check_key(ops[:2]).verdict is Verdict.OK


def test_writes_whose_revisions_contradict_real_time_are_a_violation() -> None:
    # The second put began after the first was acknowledged, yet got the older revision.
    final = history((2, K, b"b"), (3, K, b"a"))
    ops = [put(1, 0, 10, b"a", 3), put(2, 20, 30, b"b", 2)]
    assert "linearizability" in kinds(check_kv_history(ops, final, 0))


def test_a_cas_that_succeeded_against_the_wrong_revision_is_a_violation() -> None:
    final = history((2, K, b"a"), (3, K, b"b"))
    cas = KvOp(
        id=2, kind="cas", key=K, invoke=20, ret=30, value=b"b", expect_mod=7, revision=3, succeeded=True
    )
    assert "linearizability" in kinds(check_kv_history([put(1, 0, 10, b"a", 2), cas], final, 0))
    good = KvOp(
        id=2, kind="cas", key=K, invoke=20, ret=30, value=b"b", expect_mod=2, revision=3, succeeded=True
    )
    assert check_kv_history([put(1, 0, 10, b"a", 2), good], final, 0) == []


def test_a_delete_that_claims_nothing_was_there_is_a_violation() -> None:
    final = history((2, K, b"a"))
    gone = KvOp(id=2, kind="delete", key=K, invoke=20, ret=30, deleted=0, revision=2)
    assert "linearizability" in kinds(check_kv_history([put(1, 0, 10, b"a", 2), gone], final, 0))


def test_a_serializable_read_must_match_the_history_at_its_revision() -> None:
    final = history((2, K, b"a"), (3, K, b"b"))
    ok = get(2, 50, 50, b"a", 2, 2, kind="sget")  # old but consistent: fine for serializable
    bad = get(3, 50, 50, b"a", 2, 3, kind="sget")
    assert check_kv_history([put(1, 0, 10, b"a", 2), ok], final, 0) == []
    assert "serializable-read" in kinds(check_kv_history([put(1, 0, 10, b"a", 2), bad], final, 0))


def test_a_spent_search_budget_is_unknown_never_a_pass() -> None:
    # Many concurrent writes of unknown outcome and a read nobody explains: a big search.
    ops = [put(i, 0, None, b"v%d" % i, 0) for i in range(1, 16)]
    ops.append(get(99, 0, 100, b"zzz", 5, 5))
    result = check_key(ops, budget=50)
    assert result.verdict is Verdict.UNKNOWN
    assert "budget" in result.detail


# -- 2. watches --------------------------------------------------------------------------------


FINAL = history((2, b"k0", b"a"), (3, b"k1", b"b"), (4, b"k0", b"c"), (4, b"k1", None), (5, b"k0", None))


def watch(*responses: tuple[int, list[WatchEvent]], start_rev: int = 2, prev_kv: bool = False) -> WatchRecord:
    w = WatchRecord(1, 1, b"k", b"l", start_rev, prev_kv)
    w.responses = list(responses)
    return w


def ev(rev: int, key: bytes, value: bytes | None, prev: tuple[bytes, int] | None = None) -> WatchEvent:
    return WatchEvent(rev, key, value, prev)


def test_a_faithful_watch_passes() -> None:
    w = watch(
        (2, [ev(2, b"k0", b"a")]),
        (3, [ev(3, b"k1", b"b", None)]),
        (4, [ev(4, b"k0", b"c", (b"a", 2)), ev(4, b"k1", None, (b"b", 3))]),
        prev_kv=True,
    )
    assert check_watches([w], FINAL, 0) == []
    # Told only up to revision 3: revisions 4 and 5 are not owed yet.
    assert check_watches([watch((2, [ev(2, b"k0", b"a")]), (3, [ev(3, b"k1", b"b")]))], FINAL, 0) == []


def test_watch_gap_duplicate_order_split_and_prev_kv_are_violations() -> None:
    gap = watch((2, [ev(2, b"k0", b"a")]), (4, [ev(4, b"k0", b"c"), ev(4, b"k1", None)]))
    dup = watch((2, [ev(2, b"k0", b"a")]), (2, [ev(2, b"k0", b"a")]))
    order = watch((3, [ev(3, b"k1", b"b")]), (3, [ev(2, b"k0", b"a")]))
    split = watch(
        (2, [ev(2, b"k0", b"a")]),
        (3, [ev(3, b"k1", b"b")]),
        (4, [ev(4, b"k0", b"c")]),
        (4, [ev(4, b"k1", None)]),
    )
    prev = watch((2, [ev(2, b"k0", b"a", (b"x", 1))]), prev_kv=True)
    early = watch((2, [ev(2, b"k0", b"a")]), start_rev=3)
    for bad in (gap, dup, order, split, prev, early):
        assert kinds(check_watches([bad], FINAL, 0)) == ["watch"], bad


def test_a_watch_still_open_at_the_end_must_have_everything() -> None:
    told_little = watch((2, [ev(2, b"k0", b"a")]))
    assert check_watches([told_little], FINAL, 0) == []  # not owed revisions it was not told of...
    told_little.complete = True  # ...unless it stayed open while the cluster healed
    assert kinds(check_watches([told_little], FINAL, 0)) == ["watch"]


# -- 3, 4, 5 -----------------------------------------------------------------------------------


def test_hash_kv_disagreement() -> None:
    assert check_hash_kv({1: (5, 42), 2: (5, 42), 3: (5, 42)}, 0) == []
    assert kinds(check_hash_kv({1: (5, 42), 2: (5, 43), 3: (5, 42)}, 0)) == ["hash-kv"]
    assert kinds(check_hash_kv({1: (5, 42), 2: (4, 42)}, 0)) == ["hash-kv"]


def test_an_acknowledged_write_missing_from_the_history_is_lost() -> None:
    final = history((2, K, b"a"))
    assert check_acked_writes([put(1, 0, 10, b"a", 2)], final, 0) == []
    assert kinds(check_acked_writes([put(1, 0, 10, b"b", 3)], final, 0)) == ["lost-write"]
    deleted = KvOp(id=2, kind="delete", key=K, invoke=0, ret=5, deleted=1, revision=3)
    assert kinds(check_acked_writes([deleted], final, 0)) == ["lost-write"]
    unknown = put(3, 0, None, b"c", 0)
    assert check_acked_writes([unknown], final, 0) == []


def test_a_revision_going_back_is_caught() -> None:
    rw = RevisionWatch()
    rw.observe(1, 1, 5)
    rw.observe(2, 1, 5)
    rw.observe(3, 2, 1)
    assert rw.violations == []
    rw.observe(4, 1, 4, "after restart")
    assert [v.kind for v in rw.violations] == ["revision-back"]
    assert "after restart" in rw.violations[0].detail
