"""MemoryStorage: the dummy-entry offset arithmetic, errors and size limits (etcd's storage_test.go)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petcd.raft.config import NO_LIMIT
from petcd.raft.errors import Compacted, RaftPanic, SnapOutOfDate, Unavailable
from petcd.raft.storage import MemoryStorage, limit_size
from petcd.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata


def ent(index: int, term: int) -> Entry:
    return Entry(term=term, index=index)


def storage_with(ents: list[Entry]) -> MemoryStorage:
    """A storage whose dummy entry is ents[0] (so the log was compacted up to it)."""
    ms = MemoryStorage()
    ms.ents = list(ents)
    return ms


THREE = [ent(3, 3), ent(4, 4), ent(5, 5)]


@pytest.mark.parametrize(
    ("i", "err", "term"),
    [(2, Compacted, 0), (3, None, 3), (4, None, 4), (5, None, 5), (6, Unavailable, 0)],
)
def test_term(i: int, err: type[Exception] | None, term: int) -> None:
    s = storage_with(THREE)
    if err is not None:
        with pytest.raises(err):
            s.term(i)
    else:
        assert s.term(i) == term


FOUR = [ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 6)]
SZ = FOUR[1].size()  # all four entries have the same size


@pytest.mark.parametrize(
    ("lo", "hi", "max_size", "want"),
    [
        (2, 6, NO_LIMIT, Compacted),
        (3, 4, NO_LIMIT, Compacted),
        (4, 5, NO_LIMIT, [ent(4, 4)]),
        (4, 6, NO_LIMIT, [ent(4, 4), ent(5, 5)]),
        (4, 7, NO_LIMIT, [ent(4, 4), ent(5, 5), ent(6, 6)]),
        # Even a zero limit returns one entry, so that replication can make progress.
        (4, 7, 0, [ent(4, 4)]),
        (4, 7, 2 * SZ, [ent(4, 4), ent(5, 5)]),
        (4, 7, 2 * SZ + SZ // 2, [ent(4, 4), ent(5, 5)]),
        (4, 7, 3 * SZ - 1, [ent(4, 4), ent(5, 5)]),
        (4, 7, 3 * SZ, [ent(4, 4), ent(5, 5), ent(6, 6)]),
    ],
)
def test_entries(lo: int, hi: int, max_size: int, want: object) -> None:
    s = storage_with(FOUR)
    if isinstance(want, type):
        with pytest.raises(want):
            s.entries(lo, hi, max_size)
    else:
        assert s.entries(lo, hi, max_size) == want


def test_entries_past_the_end_is_a_bug() -> None:
    with pytest.raises(RaftPanic):
        storage_with(FOUR).entries(4, 8, NO_LIMIT)


def test_entries_of_an_empty_log_are_unavailable() -> None:
    s = storage_with([ent(3, 3)])
    with pytest.raises(Unavailable):
        s.entries(4, 4, NO_LIMIT)


def test_last_index_follows_append() -> None:
    s = storage_with(THREE)
    assert s.last_index() == 5
    s.append([ent(6, 5)])
    assert s.last_index() == 6


def test_first_index_follows_compact() -> None:
    s = storage_with(THREE)
    assert s.first_index() == 4
    s.compact(4)
    assert s.first_index() == 5


def test_fresh_storage() -> None:
    s = MemoryStorage()
    assert (s.first_index(), s.last_index()) == (1, 0)
    assert s.term(0) == 0
    hs, cs = s.initial_state()
    assert hs.is_empty()
    assert cs == ConfState()


@pytest.mark.parametrize(
    ("i", "err", "dummy", "length"),
    [
        (2, Compacted, ent(3, 3), 3),
        (3, Compacted, ent(3, 3), 3),
        (4, None, ent(4, 4), 2),
        (5, None, ent(5, 5), 1),
    ],
)
def test_compact(i: int, err: type[Exception] | None, dummy: Entry, length: int) -> None:
    s = storage_with(THREE)
    if err is not None:
        with pytest.raises(err):
            s.compact(i)
    else:
        s.compact(i)
    assert s.ents[0] == dummy
    assert len(s.ents) == length


def test_compact_past_the_end_is_a_bug() -> None:
    with pytest.raises(RaftPanic):
        storage_with(THREE).compact(6)


def test_compact_keeps_only_index_and_term_of_the_dummy() -> None:
    s = storage_with([ent(3, 3), Entry(term=4, index=4, data=b"payload"), ent(5, 5)])
    s.compact(4)
    assert s.ents[0] == ent(4, 4)
    assert s.term(4) == 4


@pytest.mark.parametrize("i", [4, 5])
def test_create_snapshot(i: int) -> None:
    cs = ConfState(voters=(1, 2, 3))
    s = storage_with(THREE)
    snap = s.create_snapshot(i, cs, b"data")
    assert snap == Snapshot(data=b"data", metadata=SnapshotMetadata(conf_state=cs, index=i, term=i))
    assert s.snapshot() == snap
    # Creating a snapshot does not compact.
    assert s.first_index() == 4


def test_create_snapshot_keeps_conf_state_when_none_given() -> None:
    s = storage_with(THREE)
    cs = ConfState(voters=(1,))
    s.create_snapshot(4, cs, b"a")
    assert s.create_snapshot(5, None, b"b").metadata.conf_state == cs


def test_create_snapshot_errors() -> None:
    s = storage_with(THREE)
    s.create_snapshot(4, None, b"")
    with pytest.raises(SnapOutOfDate):
        s.create_snapshot(4, None, b"")
    with pytest.raises(RaftPanic):
        s.create_snapshot(6, None, b"")


@pytest.mark.parametrize(
    ("entries", "want"),
    [
        # Entirely compacted away: ignored.
        ([ent(1, 1), ent(2, 2)], [ent(3, 3), ent(4, 4), ent(5, 5)]),
        ([ent(3, 3), ent(4, 4), ent(5, 5)], [ent(3, 3), ent(4, 4), ent(5, 5)]),
        # Overwrites from the first conflicting index.
        ([ent(3, 3), ent(4, 6), ent(5, 6)], [ent(3, 3), ent(4, 6), ent(5, 6)]),
        ([ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 5)], [ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 5)]),
        # Partially compacted: the compacted prefix is cut, the rest truncates.
        ([ent(2, 3), ent(3, 3), ent(4, 5)], [ent(3, 3), ent(4, 5)]),
        ([ent(4, 5)], [ent(3, 3), ent(4, 5)]),
        ([ent(6, 5)], [ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 5)]),
    ],
)
def test_append(entries: list[Entry], want: list[Entry]) -> None:
    s = storage_with(THREE)
    s.append(entries)
    assert s.ents == want


def test_append_with_a_gap_is_a_bug() -> None:
    with pytest.raises(RaftPanic):
        storage_with(THREE).append([ent(7, 5)])


def test_apply_snapshot() -> None:
    cs = ConfState(voters=(1, 2, 3))
    s = MemoryStorage()
    s.append([ent(1, 1), ent(2, 1)])
    snap4 = Snapshot(data=b"data", metadata=SnapshotMetadata(conf_state=cs, index=4, term=4))
    s.apply_snapshot(snap4)
    assert s.snapshot() == snap4
    assert (s.first_index(), s.last_index(), s.term(4)) == (5, 4, 4)
    assert s.initial_state()[1] == cs
    with pytest.raises(SnapOutOfDate):
        s.apply_snapshot(Snapshot(data=b"data", metadata=SnapshotMetadata(conf_state=cs, index=3, term=3)))
    with pytest.raises(SnapOutOfDate):
        s.apply_snapshot(snap4)


def test_hard_state() -> None:
    s = MemoryStorage()
    s.set_hard_state(HardState(term=2, vote=1, commit=3))
    assert s.initial_state()[0] == HardState(term=2, vote=1, commit=3)
    assert s.hard_state == HardState(term=2, vote=1, commit=3)


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=50), min_size=0, max_size=20),
    max_size=st.integers(min_value=0, max_value=1000),
)
def test_limit_size_is_the_longest_fitting_prefix_but_never_empty(sizes: list[int], max_size: int) -> None:
    ents = [Entry(term=1, index=i + 1, data=b"x" * n) for i, n in enumerate(sizes)]
    got = limit_size(ents, max_size)
    assert got == ents[: len(got)]
    if not ents:
        assert got == []
        return
    assert len(got) >= 1
    total = sum(e.size() for e in got)
    assert len(got) == 1 or total <= max_size
    if len(got) < len(ents):
        assert total + ents[len(got)].size() > max_size
