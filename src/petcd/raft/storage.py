"""The stable part of the raft log, as raft sees it: the `Storage` protocol and `MemoryStorage`.

Raft only reads storage; the application writes it (persisting what each `Ready` carries) and
compacts it (after taking a snapshot of its state machine). Storage holds:

* the latest snapshot (its metadata: index, term, configuration);
* the entries after it, plus the *index and term* of the entry the snapshot ends at, so that an
  append right after the snapshot can still be matched against its predecessor.

`MemoryStorage` keeps this as a list whose element 0 is a dummy entry carrying the index and
term of the last compacted entry (0/0 for a fresh log): so `first_index()` is `ents[0].index + 1`
and `term(ents[0].index)` still answers. The dummy is the whole trick; every method below is
offset arithmetic around it.

Errors follow etcd: asking for compacted entries raises `Compacted`, for entries past the end
`Unavailable`; a snapshot older than the one held raises `SnapOutOfDate`. Asking for something
that cannot exist (a slice past the last index) is a bug in the caller and raises `RaftPanic`.
"""

from __future__ import annotations

from typing import Protocol

from petcd.raft.errors import Compacted, RaftPanic, SnapOutOfDate, Unavailable
from petcd.raft.types import (
    EMPTY_HARD_STATE,
    EMPTY_SNAPSHOT,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
)


def limit_size(ents: list[Entry], max_size: int) -> list[Entry]:
    """The longest prefix of `ents` whose total size is within `max_size`, but at least one entry.

    Always returning one entry (even an oversized one) keeps replication moving.
    """
    if not ents:
        return ents
    size = ents[0].size()
    limit = 1
    while limit < len(ents):
        size += ents[limit].size()
        if size > max_size:
            break
        limit += 1
    return ents[:limit]


class Storage(Protocol):
    """What raft needs to read from the application's persisted log."""

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the configuration of the latest snapshot."""
        ...

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """Entries [lo, hi), limited to `max_size` bytes (but at least one entry if any)."""
        ...

    def term(self, i: int) -> int:
        """The term of entry `i`; i may be first_index() - 1 (the snapshot's last entry)."""
        ...

    def last_index(self) -> int: ...

    def first_index(self) -> int:
        """The first index still available as an entry (older ones are in the snapshot)."""
        ...

    def snapshot(self) -> Snapshot:
        """The latest snapshot; may raise SnapshotTemporarilyUnavailable."""
        ...


class MemoryStorage(Storage):
    """A `Storage` kept in memory; the reference implementation used by tests and the simulator."""

    def __init__(self) -> None:
        self.hard_state: HardState = EMPTY_HARD_STATE
        self._snapshot: Snapshot = EMPTY_SNAPSHOT
        # Invariant: ents[0] is the dummy entry (index and term of the last compacted entry),
        # and ents[k].index == ents[0].index + k.
        self.ents: list[Entry] = [Entry()]

    # -- Storage protocol ----------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self._snapshot.metadata.conf_state

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        offset = self.ents[0].index
        if lo <= offset:
            raise Compacted()
        if hi > self._last_index() + 1:
            raise RaftPanic(f"entries' hi({hi}) is out of bound lastindex({self._last_index()})")
        if len(self.ents) == 1:
            # Only the dummy: nothing but the snapshot is here.
            raise Unavailable()
        return limit_size(self.ents[lo - offset : hi - offset], max_size)

    def term(self, i: int) -> int:
        offset = self.ents[0].index
        if i < offset:
            raise Compacted()
        if i - offset >= len(self.ents):
            raise Unavailable()
        return self.ents[i - offset].term

    def last_index(self) -> int:
        return self._last_index()

    def first_index(self) -> int:
        return self.ents[0].index + 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- writes by the application -------------------------------------------------------------

    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log with `snap` (an incoming snapshot from the leader)."""
        if self._snapshot.metadata.index >= snap.metadata.index:
            raise SnapOutOfDate()
        self._snapshot = snap
        self.ents = [Entry(term=snap.metadata.term, index=snap.metadata.index)]

    def create_snapshot(self, i: int, cs: ConfState | None, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine taken at applied index `i`.

        Entries are kept; call `compact` afterwards to drop the ones the snapshot covers.
        """
        if i <= self._snapshot.metadata.index:
            raise SnapOutOfDate()
        if i > self._last_index():
            raise RaftPanic(f"snapshot {i} is out of bound lastindex({self._last_index()})")
        offset = self.ents[0].index
        meta = self._snapshot.metadata
        self._snapshot = Snapshot(
            data=data,
            metadata=SnapshotMetadata(
                conf_state=cs if cs is not None else meta.conf_state,
                index=i,
                term=self.ents[i - offset].term,
            ),
        )
        return self._snapshot

    def compact(self, compact_index: int) -> None:
        """Drop entries before `compact_index`; that entry becomes the new dummy."""
        offset = self.ents[0].index
        if compact_index <= offset:
            raise Compacted()
        if compact_index > self._last_index():
            raise RaftPanic(f"compact {compact_index} is out of bound lastindex({self._last_index()})")
        k = compact_index - offset
        dummy = Entry(term=self.ents[k].term, index=self.ents[k].index)
        self.ents = [dummy, *self.ents[k + 1 :]]

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Persist `entries`, overwriting any existing entries from entries[0].index on.

        Entries already compacted away are skipped; a gap after the last index is a bug.
        """
        if not entries:
            return
        first = self.first_index()
        last = entries[0].index + len(entries) - 1
        if last < first:
            return
        ents = list(entries)
        if first > ents[0].index:
            ents = ents[first - ents[0].index :]
        offset = ents[0].index - self.ents[0].index
        if len(self.ents) > offset:
            self.ents = self.ents[:offset] + ents
        elif len(self.ents) == offset:
            self.ents.extend(ents)
        else:
            raise RaftPanic(f"missing log entry [last: {self._last_index()}, append at: {ents[0].index}]")

    def _last_index(self) -> int:
        return self.ents[0].index + len(self.ents) - 1
