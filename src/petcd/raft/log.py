"""The raft log: stable storage plus the unstable tail, with the commit and apply cursors.

Picture the log as one sequence of indexes::

    [ compacted (in the snapshot) | storage: first_index .. | unstable: offset .. last_index ]
                                   applied <= committed <= last_index

`RaftLog` answers questions about that whole sequence (term of an index, slices, last index)
by asking the unstable part first and storage second, and it implements the log-matching rules
of the raft paper: `maybe_append` accepts a leader's entries only when the entry before them
matches (`match_term`), truncates a conflicting suffix (`find_conflict`), and never truncates
below `committed` (that would be a safety violation, so it raises `RaftPanic`).

`find_conflict_by_term` is the fast backtracking of newer etcd-io/raft: a follower that rejects
an append hints the leader at the last index whose term is not greater than the leader's, so the
leader skips a whole term of divergent entries per round trip instead of one entry.

Invariant: applied <= committed <= last_index(). An index can be asked about (`term`) from
first_index() - 1 (the snapshot's last entry, kept for matching) to last_index().
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from petcd.raft.config import NO_LIMIT, Logger
from petcd.raft.errors import Compacted, RaftPanic, Unavailable
from petcd.raft.log_unstable import Unstable
from petcd.raft.storage import Storage, limit_size
from petcd.raft.types import Entry, Snapshot


class RaftLog:
    def __init__(
        self, storage: Storage, logger: Logger | None = None, max_next_ents_size: int = NO_LIMIT
    ) -> None:
        if storage is None:
            raise RaftPanic("storage must not be nil")
        self.storage = storage
        self.logger: Logger = logger if logger is not None else logging.getLogger("petcd.raft")
        # Bytes of committed entries handed out by one next_ents() call.
        self.max_next_ents_size = max_next_ents_size
        first_index = storage.first_index()
        last_index = storage.last_index()
        self.unstable = Unstable(offset=last_index + 1, logger=self.logger)
        # Everything up to the snapshot is committed and applied by definition; a restart
        # learns the real commit index from the hard state afterwards.
        # Invariant: applied <= committed.
        self.committed = first_index - 1
        self.applied = first_index - 1

    def __str__(self) -> str:
        return (
            f"committed={self.committed}, applied={self.applied}, "
            f"unstable.offset={self.unstable.offset}, len(unstable.Entries)={len(self.unstable.entries)}"
        )

    # -- appending -----------------------------------------------------------------------------

    def maybe_append(self, index: int, log_term: int, committed: int, ents: Sequence[Entry]) -> int | None:
        """Append a leader's `ents`, which follow entry (`index`, `log_term`).

        Returns the index of the last new entry, or None when our log does not contain the
        preceding entry (the append must be rejected). Advances `committed` as far as the leader
        says, but never past what we now know to match the leader.
        """
        if not self.match_term(index, log_term):
            return None
        lastnewi = index + len(ents)
        ci = self.find_conflict(ents)
        if ci == 0:
            pass
        elif ci <= self.committed:
            raise RaftPanic(f"entry {ci} conflict with committed entry [committed({self.committed})]")
        else:
            offset = index + 1
            if ci - offset > len(ents):
                raise RaftPanic(f"index, {ci - offset}, is out of range [{len(ents)}]")
            self.append(list(ents[ci - offset :]))
        self.commit_to(min(committed, lastnewi))
        return lastnewi

    def append(self, ents: Sequence[Entry]) -> int:
        """Append (truncating whatever they replace); returns the new last index."""
        if not ents:
            return self.last_index()
        after = ents[0].index - 1
        if after < self.committed:
            raise RaftPanic(f"after({after}) is out of range [committed({self.committed})]")
        self.unstable.truncate_and_append(list(ents))
        return self.last_index()

    def find_conflict(self, ents: Sequence[Entry]) -> int:
        """The index of the first entry of `ents` that we do not already hold, or 0.

        That is the first entry whose term differs from ours at the same index (a conflict),
        or the first entry past our last index (new). 0 means we hold all of `ents`.
        """
        for ne in ents:
            if not self.match_term(ne.index, ne.term):
                if ne.index <= self.last_index():
                    self.logger.info(
                        "found conflict at index %d [existing term: %d, conflicting term: %d]",
                        ne.index,
                        self.zero_term_on_err_compacted(ne.index),
                        ne.term,
                    )
                return ne.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= `index` whose term is <= `term` (or unknown), with that term.

        Used on a rejected append: the other log has an entry of term `term` at `index`; every
        entry of ours above the returned index has a greater term and so cannot match it. An
        index whose term we do not know (compacted, or past our end) is returned with term 0:
        it might match.
        """
        while index > 0:
            try:
                our_term = self.term(index)
            except (Compacted, Unavailable):
                return index, 0
            if our_term <= term:
                return index, our_term
            index -= 1
        return 0, 0

    # -- what the application must do next -----------------------------------------------------

    def unstable_entries(self) -> list[Entry]:
        """Entries not yet persisted (a copy)."""
        return list(self.unstable.entries)

    def next_ents(self) -> list[Entry]:
        """Committed entries not yet applied, at most `max_next_ents_size` bytes of them."""
        off = max(self.applied + 1, self.first_index())
        if self.committed + 1 > off:
            try:
                return self.slice(off, self.committed + 1, self.max_next_ents_size)
            except (Compacted, Unavailable) as e:
                raise RaftPanic(f"unexpected error when getting unapplied entries ({e})") from e
        return []

    def has_next_ents(self) -> bool:
        off = max(self.applied + 1, self.first_index())
        return self.committed + 1 > off

    def has_pending_snapshot(self) -> bool:
        return self.unstable.snapshot is not None and not self.unstable.snapshot.is_empty()

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    # -- indexes and terms ---------------------------------------------------------------------

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        if i is not None:
            return i
        return self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        if i is not None:
            return i
        return self.storage.last_index()

    def last_term(self) -> int:
        try:
            return self.term(self.last_index())
        except (Compacted, Unavailable) as e:
            raise RaftPanic(f"unexpected error when getting the last term ({e})") from e

    def term(self, i: int) -> int:
        """The term of entry `i`; 0 when `i` is outside [first_index() - 1, last_index()].

        Raises Compacted or Unavailable when storage does (a compaction racing with us).
        """
        dummy_index = self.first_index() - 1
        if i < dummy_index or i > self.last_index():
            return 0
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        return self.storage.term(i)

    def zero_term_on_err_compacted(self, i: int) -> int:
        """term(i), or 0 if it was compacted meanwhile."""
        try:
            return self.term(i)
        except Compacted:
            return 0
        except Unavailable as e:
            raise RaftPanic(f"unexpected error ({e})") from e

    def match_term(self, i: int, term: int) -> bool:
        try:
            return self.term(i) == term
        except (Compacted, Unavailable):
            return False

    def is_up_to_date(self, lasti: int, term: int) -> bool:
        """Whether a log ending at (`lasti`, `term`) is at least as up to date as ours (§5.4.1)."""
        last_term = self.last_term()
        return term > last_term or (term == last_term and lasti >= self.last_index())

    # -- cursors -------------------------------------------------------------------------------

    def commit_to(self, tocommit: int) -> None:
        # The commit index never decreases.
        if self.committed < tocommit:
            if self.last_index() < tocommit:
                raise RaftPanic(
                    f"tocommit({tocommit}) is out of range [lastIndex({self.last_index()})]. "
                    "Was the raft log corrupted, truncated, or lost?"
                )
            self.committed = tocommit

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Commit up to `max_index` if that entry is of `term` (a leader commits only entries of
        its own term by counting replicas, §5.4.2)."""
        if max_index > self.committed and term != 0 and self.zero_term_on_err_compacted(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, i: int) -> None:
        if i == 0:
            return
        if self.committed < i or i < self.applied:
            raise RaftPanic(
                f"applied({i}) is out of range [prevApplied({self.applied}), committed({self.committed})]"
            )
        self.applied = i

    def stable_to(self, i: int, t: int) -> None:
        self.unstable.stable_to(i, t)

    def stable_snap_to(self, i: int) -> None:
        self.unstable.stable_snap_to(i)

    def restore(self, snap: Snapshot) -> None:
        """Throw the log away in favour of a snapshot from the leader."""
        self.logger.info(
            "log [%s] starts to restore snapshot [index: %d, term: %d]",
            self,
            snap.metadata.index,
            snap.metadata.term,
        )
        self.committed = snap.metadata.index
        self.unstable.restore(snap)

    # -- reading entries -----------------------------------------------------------------------

    def entries(self, i: int, max_size: int) -> list[Entry]:
        """Entries from `i` to the end, at most `max_size` bytes (at least one). Raises Compacted."""
        if i > self.last_index():
            return []
        return self.slice(i, self.last_index() + 1, max_size)

    def all_entries(self) -> list[Entry]:
        while True:
            try:
                return self.entries(self.first_index(), NO_LIMIT)
            except Compacted:
                # A compaction raced with us; the new first index will do.
                continue

    def slice(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """Entries [lo, hi), at most `max_size` bytes (at least one). Raises Compacted."""
        self._must_check_out_of_bounds(lo, hi)
        if lo == hi:
            return []
        ents: list[Entry] = []
        offset = self.unstable.offset
        if lo < offset:
            stored_hi = min(hi, offset)
            try:
                stored = self.storage.entries(lo, stored_hi, max_size)
            except Unavailable as e:
                raise RaftPanic(f"entries[{lo}:{stored_hi}) is unavailable from storage") from e
            # Storage already cut the slice at max_size: the unstable part would not fit.
            if len(stored) < stored_hi - lo:
                return stored
            ents = list(stored)
        if hi > offset:
            ents.extend(self.unstable.slice(max(lo, offset), hi))
        return limit_size(ents, max_size)

    def _must_check_out_of_bounds(self, lo: int, hi: int) -> None:
        if lo > hi:
            raise RaftPanic(f"invalid slice {lo} > {hi}")
        fi = self.first_index()
        if lo < fi:
            raise Compacted()
        last = self.last_index()
        if hi > last + 1:
            raise RaftPanic(f"slice[{lo},{hi}) out of bound [{fi},{last}]")
