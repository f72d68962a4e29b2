"""The unstable tail of the raft log: entries (and perhaps a snapshot) not yet in stable storage.

A node's log is split in two. `Storage` holds what the application has persisted; `Unstable`
holds what raft has accepted but the application has not yet written. The unstable part always
sits *after* the stable part: its first entry has index `offset`, and everything below `offset`
is (or will be, once the pending snapshot is saved) in storage.

Two things can be pending:

* a snapshot received from the leader (`snapshot`), which replaces the whole log up to its index;
  while it is pending, `offset == snapshot.metadata.index + 1`;
* entries (`entries`), where `entries[k].index == offset + k`.

The application persists what `Ready` hands it and then tells raft, through `stable_to` and
`stable_snap_to`, which prefix may be forgotten here. A leader change may truncate the unstable
tail (`truncate_and_append`); entries that were already handed out but are then replaced simply
get overwritten in storage by the later `Ready`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from petcd.raft.config import Logger
from petcd.raft.errors import RaftPanic
from petcd.raft.types import Entry, Snapshot


class Unstable:
    __slots__ = ("entries", "logger", "offset", "snapshot")

    def __init__(
        self,
        snapshot: Snapshot | None = None,
        entries: list[Entry] | None = None,
        offset: int = 0,
        logger: Logger | None = None,
    ) -> None:
        # The incoming snapshot, if any, not yet persisted.
        self.snapshot: Snapshot | None = snapshot
        # Invariant: entries[k].index == offset + k.
        self.entries: list[Entry] = list(entries) if entries else []
        self.offset = offset
        self.logger: Logger = logger if logger is not None else logging.getLogger("petcd.raft")

    def __repr__(self) -> str:
        return f"Unstable(snapshot={self.snapshot!r}, offset={self.offset}, entries={self.entries!r})"

    def maybe_first_index(self) -> int | None:
        """The first index of the log if a snapshot is pending (the entry after it), else None.

        Without a pending snapshot the first index is storage's business, not ours.
        """
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        """The last index held here (an entry or the pending snapshot), or None if nothing."""
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, i: int) -> int | None:
        """The term of entry `i` if this part of the log knows it, else None."""
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.metadata.index == i:
                return self.snapshot.metadata.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, i: int, t: int) -> None:
        """Forget entries up to `i`, which the application has persisted at term `t`.

        Only if the entry here still has term `t`: if it was replaced by a newer leader's entry
        since the Ready that carried it, the persisted one is stale and ours must stay.
        """
        gt = self.maybe_term(i)
        if gt is None:
            return
        if gt == t and i >= self.offset:
            del self.entries[: i + 1 - self.offset]
            self.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        """The pending snapshot at index `i` has been persisted."""
        if self.snapshot is not None and self.snapshot.metadata.index == i:
            self.snapshot = None

    def restore(self, snap: Snapshot) -> None:
        """Replace everything with an incoming snapshot."""
        self.offset = snap.metadata.index + 1
        self.entries = []
        self.snapshot = snap

    def truncate_and_append(self, ents: Sequence[Entry]) -> None:
        """Append `ents`, first dropping whatever they overwrite (index >= ents[0].index)."""
        if not ents:
            return
        after = ents[0].index
        if after == self.offset + len(self.entries):
            # Directly after our tail: the common case.
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replaces all of the unstable entries (and perhaps some stable ones, which the
            # application overwrites when it persists these).
            self.logger.info("replace the unstable entries from index %d", after)
            self.offset = after
            self.entries = list(ents)
        else:
            self.logger.info("truncate the unstable entries before index %d", after)
            kept = self.slice(self.offset, after)
            self.entries = kept + list(ents)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries [lo, hi) as a new list; the range must lie within the unstable entries."""
        self._must_check_out_of_bounds(lo, hi)
        return self.entries[lo - self.offset : hi - self.offset]

    def _must_check_out_of_bounds(self, lo: int, hi: int) -> None:
        if lo > hi:
            raise RaftPanic(f"invalid unstable.slice {lo} > {hi}")
        upper = self.offset + len(self.entries)
        if lo < self.offset or hi > upper:
            raise RaftPanic(f"unstable.slice[{lo},{hi}) out of bound [{self.offset},{upper}]")
