"""Unstable: the not-yet-persisted tail of the log (etcd's log_unstable_test.go)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petcd.raft.errors import RaftPanic
from petcd.raft.log_unstable import Unstable
from petcd.raft.types import Entry, Snapshot, SnapshotMetadata


def ent(index: int, term: int) -> Entry:
    return Entry(term=term, index=index)


def snap(index: int, term: int) -> Snapshot:
    return Snapshot(metadata=SnapshotMetadata(index=index, term=term))


S4 = snap(4, 1)


@pytest.mark.parametrize(
    ("entries", "offset", "snapshot", "want"),
    [
        ([ent(5, 1)], 5, None, None),
        ([], 0, None, None),
        ([ent(5, 1)], 5, S4, 5),
        ([], 5, S4, 5),
    ],
)
def test_maybe_first_index(entries: list[Entry], offset: int, snapshot: Snapshot | None, want: int) -> None:
    assert Unstable(snapshot, entries, offset).maybe_first_index() == want


@pytest.mark.parametrize(
    ("entries", "offset", "snapshot", "want"),
    [
        ([ent(5, 1)], 5, None, 5),
        ([ent(5, 1)], 5, S4, 5),
        ([], 5, S4, 4),
        ([], 0, None, None),
    ],
)
def test_maybe_last_index(entries: list[Entry], offset: int, snapshot: Snapshot | None, want: int) -> None:
    assert Unstable(snapshot, entries, offset).maybe_last_index() == want


@pytest.mark.parametrize(
    ("entries", "offset", "snapshot", "index", "want"),
    [
        ([ent(5, 1)], 5, None, 5, 1),
        ([ent(5, 1)], 5, None, 6, None),
        ([ent(5, 1)], 5, None, 4, None),
        ([ent(5, 1)], 5, S4, 5, 1),
        ([ent(5, 1)], 5, S4, 6, None),
        # The snapshot's own index answers with the snapshot's term.
        ([ent(5, 1)], 5, S4, 4, 1),
        ([ent(5, 1)], 5, S4, 3, None),
        ([], 5, S4, 5, None),
        ([], 5, S4, 4, 1),
        ([], 0, None, 5, None),
    ],
)
def test_maybe_term(
    entries: list[Entry], offset: int, snapshot: Snapshot | None, index: int, want: int | None
) -> None:
    assert Unstable(snapshot, entries, offset).maybe_term(index) == want


def test_restore() -> None:
    u = Unstable(S4, [ent(5, 1)], 5)
    s = snap(6, 2)
    u.restore(s)
    assert u.offset == 7
    assert u.entries == []
    assert u.snapshot == s


@pytest.mark.parametrize(
    ("entries", "offset", "snapshot", "index", "term", "want_offset", "want_len"),
    [
        ([], 0, None, 5, 1, 0, 0),
        ([ent(5, 1)], 5, None, 5, 1, 6, 0),
        ([ent(5, 1), ent(6, 1)], 5, None, 5, 1, 6, 1),
        # The entry was replaced by one of another term since: keep it.
        ([ent(6, 2)], 6, None, 6, 1, 6, 1),
        ([ent(5, 1)], 5, None, 4, 1, 5, 1),
        ([ent(5, 1)], 5, None, 4, 2, 5, 1),
        ([ent(5, 1)], 5, S4, 5, 1, 6, 0),
        ([ent(5, 1), ent(6, 1)], 5, S4, 5, 1, 6, 1),
        ([ent(6, 2)], 6, snap(5, 1), 6, 1, 6, 1),
        # Stable to the snapshot's index: nothing to drop among the entries.
        ([ent(5, 1)], 5, S4, 4, 1, 5, 1),
        ([ent(5, 2)], 5, snap(4, 2), 4, 1, 5, 1),
    ],
)
def test_stable_to(  # noqa: PLR0917
    entries: list[Entry],
    offset: int,
    snapshot: Snapshot | None,
    index: int,
    term: int,
    want_offset: int,
    want_len: int,
) -> None:
    u = Unstable(snapshot, entries, offset)
    u.stable_to(index, term)
    assert u.offset == want_offset
    assert len(u.entries) == want_len


def test_stable_snap_to() -> None:
    u = Unstable(S4, [ent(5, 1)], 5)
    u.stable_snap_to(3)
    assert u.maybe_first_index() == 5
    u.stable_snap_to(4)
    assert u.maybe_first_index() is None
    assert u.entries == [ent(5, 1)]


@pytest.mark.parametrize(
    ("entries", "offset", "to_append", "want_offset", "want_entries"),
    [
        # Directly after the tail.
        ([ent(5, 1)], 5, [ent(6, 1), ent(7, 1)], 5, [ent(5, 1), ent(6, 1), ent(7, 1)]),
        # Replaces everything from the offset.
        ([ent(5, 1)], 5, [ent(5, 2), ent(6, 2)], 5, [ent(5, 2), ent(6, 2)]),
        # Starts before the offset: the offset moves back.
        ([ent(5, 1)], 5, [ent(4, 2), ent(5, 2), ent(6, 2)], 4, [ent(4, 2), ent(5, 2), ent(6, 2)]),
        # Truncates in the middle.
        ([ent(5, 1), ent(6, 1), ent(7, 1)], 5, [ent(6, 2)], 5, [ent(5, 1), ent(6, 2)]),
        (
            [ent(5, 1), ent(6, 1), ent(7, 1)],
            5,
            [ent(7, 2), ent(8, 2)],
            5,
            [ent(5, 1), ent(6, 1), ent(7, 2), ent(8, 2)],
        ),
    ],
)
def test_truncate_and_append(
    entries: list[Entry], offset: int, to_append: list[Entry], want_offset: int, want_entries: list[Entry]
) -> None:
    u = Unstable(None, entries, offset)
    u.truncate_and_append(to_append)
    assert u.offset == want_offset
    assert u.entries == want_entries


def test_slice_bounds() -> None:
    u = Unstable(None, [ent(5, 1), ent(6, 1), ent(7, 1)], 5)
    assert u.slice(5, 8) == [ent(5, 1), ent(6, 1), ent(7, 1)]
    assert u.slice(6, 7) == [ent(6, 1)]
    assert u.slice(6, 6) == []
    for lo, hi in [(4, 6), (6, 9), (7, 6)]:
        with pytest.raises(RaftPanic):
            u.slice(lo, hi)


def test_slice_is_a_copy() -> None:
    u = Unstable(None, [ent(5, 1), ent(6, 1)], 5)
    got = u.slice(5, 7)
    u.stable_to(5, 1)
    assert got == [ent(5, 1), ent(6, 1)]


@given(
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=12), st.integers(min_value=1, max_value=4)),
        min_size=1,
        max_size=15,
    )
)
def test_truncate_and_append_keeps_indexes_contiguous(ops: list[tuple[int, int]]) -> None:
    """Whatever is appended where, entries[k].index == offset + k, and the appended run ends the log."""
    u = Unstable(None, [], 1)
    for start, n in ops:
        start = min(start, u.offset + len(u.entries))  # no gaps after the tail
        ents = [ent(start + k, 1) for k in range(n)]
        u.truncate_and_append(ents)
        assert [e.index for e in u.entries] == list(range(u.offset, u.offset + len(u.entries)))
        assert u.entries[-len(ents) :] == ents
