"""RaftLog: log matching, truncation, commit/apply cursors and slicing (etcd's log_test.go)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petcd.raft.config import NO_LIMIT
from petcd.raft.errors import Compacted, RaftPanic
from petcd.raft.log import RaftLog
from petcd.raft.storage import MemoryStorage
from petcd.raft.types import Entry, Snapshot, SnapshotMetadata


def ent(index: int, term: int) -> Entry:
    return Entry(term=term, index=index)


def snap(index: int, term: int) -> Snapshot:
    return Snapshot(metadata=SnapshotMetadata(index=index, term=term))


def new_log(storage: MemoryStorage | None = None) -> RaftLog:
    return RaftLog(storage if storage is not None else MemoryStorage())


PREV3 = [ent(1, 1), ent(2, 2), ent(3, 3)]


@pytest.mark.parametrize(
    ("ents", "want"),
    [
        ([], 0),
        # All already there.
        ([ent(1, 1), ent(2, 2), ent(3, 3)], 0),
        ([ent(2, 2), ent(3, 3)], 0),
        ([ent(3, 3)], 0),
        # No conflict, but new entries: the first new one.
        ([ent(1, 1), ent(2, 2), ent(3, 3), ent(4, 4), ent(5, 4)], 4),
        ([ent(2, 2), ent(3, 3), ent(4, 4), ent(5, 4)], 4),
        ([ent(3, 3), ent(4, 4), ent(5, 4)], 4),
        ([ent(4, 4), ent(5, 4)], 4),
        # Conflicts: the first conflicting index.
        ([ent(1, 4), ent(2, 4)], 1),
        ([ent(2, 1), ent(3, 4), ent(4, 4)], 2),
        ([ent(3, 1), ent(4, 2), ent(5, 4), ent(6, 4)], 3),
    ],
)
def test_find_conflict(ents: list[Entry], want: int) -> None:
    log = new_log()
    log.append(PREV3)
    assert log.find_conflict(ents) == want


def _log_from_terms(first: int, terms: list[int]) -> RaftLog:
    """A log whose entry `first` (the snapshot, unless first == 0) has terms[0], and so on."""
    st_ = MemoryStorage()
    if first > 0:
        st_.apply_snapshot(snap(first, terms[0]))
    log = RaftLog(st_)
    log.append([ent(first + k, t) for k, t in enumerate(terms) if k > 0])
    return log


@pytest.mark.parametrize(
    ("first", "terms", "index", "term", "want"),
    [
        # The log starts at index 1.
        (0, [0, 2, 2, 5, 5, 5], 100, 2, 100),  # past our end: unknown, might match
        (0, [0, 2, 2, 5, 5, 5], 5, 6, 5),
        (0, [0, 2, 2, 5, 5, 5], 5, 5, 5),
        (0, [0, 2, 2, 5, 5, 5], 5, 4, 2),
        (0, [0, 2, 2, 5, 5, 5], 5, 2, 2),
        (0, [0, 2, 2, 5, 5, 5], 5, 1, 0),
        (0, [0, 2, 2, 5, 5, 5], 1, 2, 1),
        (0, [0, 2, 2, 5, 5, 5], 1, 1, 0),
        (0, [0, 2, 2, 5, 5, 5], 0, 0, 0),
        # A compacted log: snapshot at (10, 3).
        (10, [3, 3, 3, 4, 4, 4], 30, 3, 30),
        (10, [3, 3, 3, 4, 4, 4], 14, 9, 14),
        (10, [3, 3, 3, 4, 4, 4], 14, 4, 14),
        (10, [3, 3, 3, 4, 4, 4], 14, 3, 12),
        (10, [3, 3, 3, 4, 4, 4], 14, 2, 9),  # below the snapshot: unknown
        (10, [3, 3, 3, 4, 4, 4], 11, 5, 11),
        (10, [3, 3, 3, 4, 4, 4], 10, 5, 10),
        (10, [3, 3, 3, 4, 4, 4], 10, 3, 10),
        (10, [3, 3, 3, 4, 4, 4], 10, 2, 9),
        (10, [3, 3, 3, 4, 4, 4], 9, 2, 9),
        (10, [3, 3, 3, 4, 4, 4], 4, 2, 4),
        (10, [3, 3, 3, 4, 4, 4], 0, 0, 0),
    ],
)
def test_find_conflict_by_term(first: int, terms: list[int], index: int, term: int, want: int) -> None:
    log = _log_from_terms(first, terms)
    got_index, got_term = log.find_conflict_by_term(index, term)
    assert got_index == want
    assert got_term == log.zero_term_on_err_compacted(got_index)


@given(
    terms=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=20).map(sorted),
    index=st.integers(min_value=0, max_value=25),
    term=st.integers(min_value=0, max_value=4),
)
def test_find_conflict_by_term_skips_only_entries_of_greater_term(
    terms: list[int], index: int, term: int
) -> None:
    log = _log_from_terms(0, [0, *terms])
    got_index, got_term = log.find_conflict_by_term(index, term)
    assert got_index <= index
    assert got_term <= term
    # Every entry skipped over has a greater term, so it cannot match (index, term).
    for i in range(got_index + 1, min(index, log.last_index()) + 1):
        assert log.term(i) > term


@pytest.mark.parametrize(
    ("last_index_delta", "term", "want"),
    [
        (-1, 4, True),
        (0, 4, True),
        (1, 4, True),
        (-1, 2, False),
        (0, 2, False),
        (1, 2, False),
        (-1, 3, False),
        (0, 3, True),
        (1, 3, True),
    ],
)
def test_is_up_to_date(last_index_delta: int, term: int, want: bool) -> None:
    log = new_log()
    log.append(PREV3)
    assert log.is_up_to_date(log.last_index() + last_index_delta, term) is want


@pytest.mark.parametrize(
    ("ents", "want_index", "want_ents", "want_unstable"),
    [
        ([], 2, [ent(1, 1), ent(2, 2)], 3),
        ([ent(3, 2)], 3, [ent(1, 1), ent(2, 2), ent(3, 2)], 3),
        # Conflicts with the first stable entry: the unstable part starts there.
        ([ent(1, 2)], 1, [ent(1, 2)], 1),
        ([ent(2, 3), ent(3, 3)], 3, [ent(1, 1), ent(2, 3), ent(3, 3)], 2),
    ],
)
def test_append(ents: list[Entry], want_index: int, want_ents: list[Entry], want_unstable: int) -> None:
    storage = MemoryStorage()
    storage.append([ent(1, 1), ent(2, 2)])
    log = new_log(storage)
    assert log.append(ents) == want_index
    assert log.entries(1, NO_LIMIT) == want_ents
    assert log.unstable.offset == want_unstable


def test_append_below_commit_is_a_bug() -> None:
    log = new_log()
    log.append(PREV3)
    log.commit_to(2)
    with pytest.raises(RaftPanic):
        log.append([ent(2, 4)])


LI, LT, COMMIT = 3, 3, 1


@pytest.mark.parametrize(
    ("log_term", "index", "committed", "ents", "want_lasti", "want_commit"),
    [
        # Previous entry does not match: rejected.
        (LT - 1, LI, LI, [ent(LI + 1, 4)], None, COMMIT),
        (LT, LI + 1, LI, [ent(LI + 2, 4)], None, COMMIT),
        # Accepted, nothing to append.
        (LT, LI, LI, [], LI, LI),
        # Commit is not raised above the last new entry ...
        (LT, LI, LI + 1, [], LI, LI),
        # ... is raised to what the leader says ...
        (LT, LI, LI - 1, [], LI, LI - 1),
        # ... and never lowered.
        (LT, LI, 0, [], LI, COMMIT),
        (0, 0, LI, [], 0, COMMIT),
        (LT, LI, LI, [ent(LI + 1, 4)], LI + 1, LI),
        (LT, LI, LI + 1, [ent(LI + 1, 4)], LI + 1, LI + 1),
        (LT, LI, LI + 2, [ent(LI + 1, 4)], LI + 1, LI + 1),
        (LT, LI, LI + 2, [ent(LI + 1, 4), ent(LI + 2, 4)], LI + 2, LI + 2),
        # Conflicts with uncommitted entries: the suffix is replaced.
        (LT - 1, LI - 1, LI, [ent(LI, 4)], LI, LI),
        (LT - 2, LI - 2, LI, [ent(LI - 1, 4)], LI - 1, LI - 1),
        (LT - 2, LI - 2, LI, [ent(LI - 1, 4), ent(LI, 4)], LI, LI),
    ],
)
def test_maybe_append(  # noqa: PLR0917
    log_term: int, index: int, committed: int, ents: list[Entry], want_lasti: int | None, want_commit: int
) -> None:
    log = new_log()
    log.append(PREV3)
    log.committed = COMMIT
    assert log.maybe_append(index, log_term, committed, ents) == want_lasti
    assert log.committed == want_commit
    if want_lasti is not None and ents:
        assert log.slice(log.last_index() - len(ents) + 1, log.last_index() + 1, NO_LIMIT) == ents


def test_maybe_append_conflicting_with_a_committed_entry_is_a_bug() -> None:
    log = new_log()
    log.append(PREV3)
    log.committed = COMMIT
    with pytest.raises(RaftPanic):
        log.maybe_append(LI - 3, LT - 3, LI, [ent(LI - 2, 4)])


def test_compaction_side_effects() -> None:
    last_index, unstable_index = 1000, 750
    storage = MemoryStorage()
    for i in range(1, unstable_index + 1):
        storage.append([ent(i, i)])
    log = new_log(storage)
    for i in range(unstable_index, last_index):
        log.append([ent(i + 1, i + 1)])
    assert log.maybe_commit(last_index, last_index)
    log.applied_to(log.committed)

    storage.compact(500)
    assert log.last_index() == last_index
    for j in range(500, last_index + 1):
        assert log.term(j) == j
        assert log.match_term(j, j)
    unstable = log.unstable_entries()
    assert len(unstable) == 250
    assert unstable[0].index == 751

    prev = log.last_index()
    log.append([ent(prev + 1, prev + 1)])
    assert log.last_index() == prev + 1
    assert len(log.entries(log.last_index(), NO_LIMIT)) == 1


def _log_after_snapshot_3() -> RaftLog:
    storage = MemoryStorage()
    storage.apply_snapshot(snap(3, 1))
    log = new_log(storage)
    log.append([ent(4, 1), ent(5, 1), ent(6, 1)])
    log.maybe_commit(5, 1)
    return log


@pytest.mark.parametrize(
    ("applied", "want"),
    [(0, [ent(4, 1), ent(5, 1)]), (3, [ent(4, 1), ent(5, 1)]), (4, [ent(5, 1)]), (5, [])],
)
def test_next_ents(applied: int, want: list[Entry]) -> None:
    log = _log_after_snapshot_3()
    log.applied_to(applied)
    assert log.has_next_ents() is bool(want)
    assert log.next_ents() == want


def test_next_ents_respects_max_size() -> None:
    storage = MemoryStorage()
    storage.append([ent(1, 1), ent(2, 1), ent(3, 1)])
    log = RaftLog(storage, max_next_ents_size=ent(1, 1).size() * 2)
    log.commit_to(3)
    assert log.next_ents() == [ent(1, 1), ent(2, 1)]


@pytest.mark.parametrize(("unstable", "want"), [(3, []), (1, [ent(1, 1), ent(2, 2)])])
def test_unstable_ents(unstable: int, want: list[Entry]) -> None:
    prev = [ent(1, 1), ent(2, 2)]
    storage = MemoryStorage()
    storage.append(prev[: unstable - 1])
    log = new_log(storage)
    log.append(prev[unstable - 1 :])
    ents = log.unstable_entries()
    if ents:
        log.stable_to(ents[-1].index, ents[-1].term)
    assert ents == want
    assert log.unstable.offset == 3


@pytest.mark.parametrize(("commit", "want"), [(3, 3), (1, 2)])
def test_commit_to(commit: int, want: int) -> None:
    log = new_log()
    log.append(PREV3)
    log.committed = 2
    log.commit_to(commit)
    assert log.committed == want


def test_commit_past_the_end_is_a_bug() -> None:
    log = new_log()
    log.append(PREV3)
    with pytest.raises(RaftPanic):
        log.commit_to(4)


def test_maybe_commit_only_entries_of_the_given_term() -> None:
    log = new_log()
    log.append(PREV3)
    assert not log.maybe_commit(3, 2)
    assert not log.maybe_commit(3, 0)
    assert log.maybe_commit(2, 2)
    assert log.committed == 2
    assert not log.maybe_commit(1, 1)  # never backwards
    assert log.maybe_commit(3, 3)


def test_applied_to_bounds() -> None:
    log = new_log()
    log.append(PREV3)
    log.commit_to(2)
    log.applied_to(2)
    log.applied_to(0)  # no-op
    assert log.applied == 2
    with pytest.raises(RaftPanic):
        log.applied_to(3)
    with pytest.raises(RaftPanic):
        log.applied_to(1)


@pytest.mark.parametrize(("i", "t", "want_unstable"), [(1, 1, 2), (2, 2, 3), (2, 1, 1), (3, 1, 1)])
def test_stable_to(i: int, t: int, want_unstable: int) -> None:
    log = new_log()
    log.append([ent(1, 1), ent(2, 2)])
    log.stable_to(i, t)
    assert log.unstable.offset == want_unstable


SI, ST = 5, 2


@pytest.mark.parametrize(
    ("i", "t", "new", "want_unstable"),
    [
        (SI + 1, ST, [], SI + 1),
        (SI, ST, [], SI + 1),
        (SI - 1, ST, [], SI + 1),
        (SI + 1, ST + 1, [], SI + 1),
        (SI, ST + 1, [], SI + 1),
        (SI - 1, ST + 1, [], SI + 1),
        (SI + 1, ST, [ent(SI + 1, ST)], SI + 2),
        (SI, ST, [ent(SI + 1, ST)], SI + 1),
        (SI - 1, ST, [ent(SI + 1, ST)], SI + 1),
        (SI + 1, ST + 1, [ent(SI + 1, ST)], SI + 1),
        (SI, ST + 1, [ent(SI + 1, ST)], SI + 1),
        (SI - 1, ST + 1, [ent(SI + 1, ST)], SI + 1),
    ],
)
def test_stable_to_with_snapshot(i: int, t: int, new: list[Entry], want_unstable: int) -> None:
    storage = MemoryStorage()
    storage.apply_snapshot(snap(SI, ST))
    log = new_log(storage)
    log.append(new)
    log.stable_to(i, t)
    assert log.unstable.offset == want_unstable


@pytest.mark.parametrize(
    ("compacts", "want_left"),
    [([300, 500, 800, 900], [700, 500, 200, 100])],
)
def test_compaction(compacts: list[int], want_left: list[int]) -> None:
    storage = MemoryStorage()
    for i in range(1, 1001):
        storage.append([ent(i, 1)])
    log = new_log(storage)
    log.maybe_commit(1000, 1)
    log.applied_to(log.committed)
    for c, left in zip(compacts, want_left, strict=True):
        storage.compact(c)
        assert len(log.all_entries()) == left


def test_compaction_errors() -> None:
    storage = MemoryStorage()
    for i in range(1, 1001):
        storage.append([ent(i, 1)])
    with pytest.raises(RaftPanic):
        storage.compact(1001)
    storage.compact(300)
    with pytest.raises(Compacted):
        storage.compact(299)


def test_log_restore_from_storage_snapshot() -> None:
    storage = MemoryStorage()
    storage.apply_snapshot(snap(1000, 1000))
    log = new_log(storage)
    assert log.all_entries() == []
    assert log.first_index() == 1001
    assert log.committed == 1000
    assert log.applied == 1000
    assert log.unstable.offset == 1001
    assert log.term(1000) == 1000


def test_restore_puts_the_snapshot_in_unstable() -> None:
    log = new_log()
    log.append(PREV3)
    s = snap(10, 4)
    log.restore(s)
    assert log.committed == 10
    assert log.has_pending_snapshot()
    assert log.snapshot() == s
    assert (log.first_index(), log.last_index(), log.last_term()) == (11, 10, 4)
    assert log.unstable_entries() == []
    log.stable_snap_to(10)
    assert not log.has_pending_snapshot()


def _log_100_after_snapshot_100() -> RaftLog:
    storage = MemoryStorage()
    storage.apply_snapshot(snap(100, 0))
    log = new_log(storage)
    for i in range(1, 101):
        log.append([ent(100 + i, 0)])
    return log


@pytest.mark.parametrize(
    ("lo", "hi", "want"),
    [
        (99, 102, Compacted),
        (100, 102, Compacted),
        (101, 101, None),
        (151, 151, None),
        (200, 200, None),
        (201, 201, None),
        (201, 202, RaftPanic),
        (202, 202, RaftPanic),
        (102, 101, RaftPanic),
    ],
)
def test_slice_bounds(lo: int, hi: int, want: type[Exception] | None) -> None:
    log = _log_100_after_snapshot_100()
    if want is None:
        log.slice(lo, hi, NO_LIMIT)
    else:
        with pytest.raises(want):
            log.slice(lo, hi, NO_LIMIT)


@pytest.mark.parametrize(("index", "want"), [(99, 0), (100, 1), (150, 50), (199, 99), (200, 0)])
def test_term(index: int, want: int) -> None:
    storage = MemoryStorage()
    storage.apply_snapshot(snap(100, 1))
    log = new_log(storage)
    for i in range(1, 100):
        log.append([ent(100 + i, i)])
    assert log.term(index) == want


@pytest.mark.parametrize(("index", "want"), [(100, 0), (101, 0), (104, 0), (105, 1)])
def test_term_with_unstable_snapshot(index: int, want: int) -> None:
    storage = MemoryStorage()
    storage.apply_snapshot(snap(100, 1))
    log = new_log(storage)
    log.restore(snap(105, 1))
    assert log.term(index) == want


HALF = 150
SZ = ent(HALF, HALF).size()


def _half_stable_log() -> RaftLog:
    """Snapshot at 100, 101..149 in storage, 150..199 unstable; term == index."""
    storage = MemoryStorage()
    storage.apply_snapshot(snap(100, 0))
    for i in range(101, HALF):
        storage.append([ent(i, i)])
    log = new_log(storage)
    for i in range(HALF, 200):
        log.append([ent(i, i)])
    return log


@pytest.mark.parametrize(
    ("lo", "hi", "limit", "want"),
    [
        (99, 101, NO_LIMIT, Compacted),
        (100, 101, NO_LIMIT, Compacted),
        (HALF - 1, HALF + 1, NO_LIMIT, [ent(HALF - 1, HALF - 1), ent(HALF, HALF)]),
        (HALF, HALF + 1, NO_LIMIT, [ent(HALF, HALF)]),
        (199, 200, NO_LIMIT, [ent(199, 199)]),
        (200, 201, NO_LIMIT, RaftPanic),
        # Size limits, across the stable/unstable boundary.
        (HALF - 1, HALF + 1, 0, [ent(HALF - 1, HALF - 1)]),
        (HALF - 1, HALF + 1, SZ + 1, [ent(HALF - 1, HALF - 1)]),
        (HALF - 2, HALF + 1, SZ + 1, [ent(HALF - 2, HALF - 2)]),
        (HALF - 1, HALF + 1, SZ * 2, [ent(HALF - 1, HALF - 1), ent(HALF, HALF)]),
        (HALF - 1, HALF + 2, SZ * 3, [ent(HALF - 1, HALF - 1), ent(HALF, HALF), ent(HALF + 1, HALF + 1)]),
        (HALF, HALF + 2, SZ, [ent(HALF, HALF)]),
        (HALF, HALF + 2, SZ * 2, [ent(HALF, HALF), ent(HALF + 1, HALF + 1)]),
    ],
)
def test_slice(lo: int, hi: int, limit: int, want: object) -> None:
    log = _half_stable_log()
    if isinstance(want, type):
        with pytest.raises(want):
            log.slice(lo, hi, limit)
    else:
        assert log.slice(lo, hi, limit) == want


def test_new_log_starts_at_the_storage_snapshot() -> None:
    storage = MemoryStorage()
    storage.apply_snapshot(snap(5, 2))
    storage.append([ent(6, 2), ent(7, 3)])
    log = new_log(storage)
    assert (log.first_index(), log.last_index(), log.last_term()) == (6, 7, 3)
    assert (log.committed, log.applied) == (5, 5)
    assert log.unstable.offset == 8
    assert "committed=5" in str(log)


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=8),  # prev index
            st.integers(min_value=1, max_value=4),  # entry term
            st.integers(min_value=0, max_value=4),  # number of entries
        ),
        max_size=12,
    )
)
def test_maybe_append_matches_the_leader_suffix(ops: list[tuple[int, int, int]]) -> None:
    """After a successful maybe_append the log holds the leader's entries after the matched one,
    and the committed prefix is never rewritten."""
    log = new_log()
    for prev, term, n in ops:
        term = max(term, log.last_term())  # a later leader never has a lower term
        prev = min(prev, log.last_index())
        prev_term = log.term(prev)
        ents = [ent(prev + 1 + k, term) for k in range(n)]
        if prev + 1 <= log.committed and any(not log.match_term(e.index, e.term) for e in ents):
            continue  # would overwrite committed entries: cannot come from a legitimate leader
        committed_before = log.slice(log.first_index(), log.committed + 1, NO_LIMIT)
        lasti = log.maybe_append(prev, prev_term, prev + n, ents)
        assert lasti == prev + n
        for e in ents:
            assert log.term(e.index) == e.term
        assert log.slice(log.first_index(), len(committed_before) + 1, NO_LIMIT) == committed_before
        assert log.committed <= log.last_index()
