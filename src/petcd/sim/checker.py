"""Safety checkers fed, incrementally, with what the simulated nodes do.

The simulator reports observations as they happen (a node is seen as leader of a term, appends
entries, learns a commit index, applies an entry, restores a snapshot, restarts; a client gets
a write acknowledged or a read served), and `Checker` records a `Violation` whenever one breaks
a raft guarantee:

* election safety: at most one leader per term;
* log matching: two entries with the same index and term carry the same data and follow
  entries of the same term (so, inductively, the logs agree on the whole prefix);
* leader completeness: a committed entry is in the log of every leader of a later term. The
  term an entry was committed in is bounded from above by the term of any node seen knowing
  the commit (the first commit of an index is made by a leader of a term no greater than the
  term of anyone who later learns of it), so checking leaders of terms >= that bound is sound;
* state-machine safety: no two nodes apply different entries at one index, and each node
  applies indexes in order without gaps (a snapshot restore may jump forward, never back);
* state-machine safety again at the end: members that applied up to the same index hold the
  same state (a snapshot must equal the entries it replaces);
* durability: a node's log agrees with every committed entry up to its own commit index (after a
  restart too), no acknowledged write is missing from a node's final state, and no committed
  index is lost (every node ends having applied at least the highest index ever committed);
* reads: a read served at read index r sees every write acknowledged before it was issued.

The checker knows nothing of raft's internals or of the simulator: its inputs are plain values,
so tests can feed it hand-made histories (two leaders in a term, divergent applied entries, a
lost committed entry) and assert that it complains.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from petcd.raft.types import Entry


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str
    time: int
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} at t={self.time}: {self.detail}"


class LogView(Protocol):
    """A node's log as the checker needs to see it."""

    @property
    def snapshot_index(self) -> int:
        """Entries up to here are compacted into a snapshot (assumed to hold them)."""
        ...

    def term_at(self, index: int) -> int | None:
        """Term of the entry at `index`, None when the log has none there."""
        ...


@dataclass(slots=True)
class DictLog:
    """A `LogView` over a plain {index: term} mapping (for tests and small cases)."""

    terms: dict[int, int]
    snapshot_index: int = 0

    def term_at(self, index: int) -> int | None:
        return self.terms.get(index)


@dataclass(slots=True)
class _PendingRead:
    key: str
    max_acked_index: int
    key_acked_index: int
    issued: int


class Checker:
    def __init__(self, max_violations: int = 20) -> None:
        self.violations: list[Violation] = []
        self.max_violations = max_violations
        self.leaders: dict[int, int] = {}  # term -> node
        # (index, term) -> (data, term of the previous entry or None when unknown)
        self._entries: dict[tuple[int, int], tuple[bytes, int | None]] = {}
        # index -> upper bound of the term the index was first committed in
        self._commit_term: dict[int, int] = {}
        self._node_commit: dict[int, int] = {}
        # index -> (term, data) of the entry committed (first applied) there
        self._applied: dict[int, tuple[int, bytes]] = {}
        # index -> term, for committed indexes known from snapshots or applies
        self._committed_term: dict[int, int] = {}
        self.max_committed = 0
        self._node_applied: dict[int, int] = {}
        self._acked: dict[str, tuple[str, int]] = {}  # write id -> (key, index)
        self._max_acked_index = 0
        self._key_acked_index: dict[str, int] = {}
        self._reads: dict[str, _PendingRead] = {}
        self.reads_checked = 0

    # -- recording ----------------------------------------------------------------------------

    def fail(self, kind: str, time: int, detail: str) -> None:
        if len(self.violations) < self.max_violations:
            self.violations.append(Violation(kind, time, detail))

    @property
    def ok(self) -> bool:
        return not self.violations

    # -- raft observations ------------------------------------------------------------------

    def on_leader(self, time: int, node: int, term: int, log: LogView | None) -> None:
        """`node` is (or was, at `term`) the leader; `log` is its log at or after election.

        Without `log` only election safety is checked (the log is not always at hand).
        """
        other = self.leaders.setdefault(term, node)
        if other != node:
            self.fail("election-safety", time, f"term {term} has two leaders: {other} and {node}")
        if log is None:
            return
        for index in range(log.snapshot_index + 1, self.max_committed + 1):
            bound = self._commit_term.get(index)
            want = self._committed_term.get(index)
            if bound is None or want is None or bound > term:
                continue
            got = log.term_at(index)
            if got != want:
                self.fail(
                    "leader-completeness",
                    time,
                    f"leader {node} of term {term} has term {got} at index {index}, "
                    f"committed (by term <= {bound}) with term {want}",
                )
                return

    def on_commit(self, time: int, node: int, term: int, commit: int) -> None:
        """`node`, at `term`, knows everything up to `commit` is committed."""
        start = self._node_commit.get(node, 0)
        if commit <= start:
            return
        ct = self._commit_term
        for index in range(start + 1, commit + 1):
            old = ct.get(index)
            if old is None or term < old:
                ct[index] = term
        self._node_commit[node] = commit

    def on_append(self, time: int, node: int, entries: Sequence[Entry], prev_term: int | None) -> None:
        """`node` appends `entries` (consecutive); `prev_term` is the term of the entry before."""
        known = self._entries
        for e in entries:
            key = (e.index, e.term)
            old = known.get(key)
            if old is None:
                known[key] = (e.data, prev_term)
            else:
                data, old_prev = old
                if data != e.data:
                    self.fail(
                        "log-matching",
                        time,
                        f"node {node} has index {e.index} term {e.term} with other data than seen before",
                    )
                elif old_prev is None and prev_term is not None:
                    known[key] = (data, prev_term)
                elif prev_term is not None and old_prev != prev_term:
                    self.fail(
                        "log-matching",
                        time,
                        f"node {node}: index {e.index} term {e.term} follows term {prev_term}, "
                        f"elsewhere term {old_prev}",
                    )
            prev_term = e.term

    def on_apply(self, time: int, node: int, entry: Entry) -> None:
        last = self._node_applied.get(node, 0)
        if entry.index != last + 1:
            self.fail("apply-order", time, f"node {node} applies index {entry.index} after {last}")
        self._node_applied[node] = entry.index
        self._record_committed(time, node, entry.index, entry.term, entry.data)

    def on_snapshot(self, time: int, node: int, index: int, term: int) -> None:
        """`node` restored a snapshot taken at `index` (whose entry has `term`)."""
        last = self._node_applied.get(node, 0)
        if index < last:
            self.fail("apply-order", time, f"node {node} restores snapshot {index} after applying {last}")
        self._node_applied[node] = index
        self._record_committed(time, node, index, term, None)

    def on_restart(self, time: int, node: int, applied: int, commit: int, log: LogView) -> None:
        """`node` restarted; raft will hand out entries after `applied`; it persisted `commit`."""
        self._node_applied[node] = applied
        self.check_log(time, node, commit, log)

    def check_log(self, time: int, node: int, commit: int, log: LogView) -> None:
        """A node's log must agree with every committed entry up to the node's commit index."""
        for index in range(log.snapshot_index + 1, min(commit, self.max_committed) + 1):
            want = self._committed_term.get(index)
            if want is None:
                continue
            got = log.term_at(index)
            if got != want:
                self.fail(
                    "durability",
                    time,
                    f"node {node} (commit {commit}) has term {got} at committed index {index}, "
                    f"committed with term {want}",
                )
                return

    def _record_committed(self, time: int, node: int, index: int, term: int, data: bytes | None) -> None:
        old_term = self._committed_term.get(index)
        if old_term is not None and old_term != term:
            self.fail(
                "state-machine-safety",
                time,
                f"node {node} applies term {term} at index {index}, other nodes applied term {old_term}",
            )
            return
        self._committed_term[index] = term
        if data is not None:
            old = self._applied.get(index)
            if old is None:
                self._applied[index] = (term, data)
            elif old[1] != data:
                self.fail(
                    "state-machine-safety",
                    time,
                    f"node {node} applies other data at index {index} than other nodes",
                )
        self.max_committed = max(self.max_committed, index)

    # -- client observations ----------------------------------------------------------------

    def on_ack(self, time: int, write_id: str, key: str, index: int) -> None:
        """The write `write_id` to `key`, effective at `index`, was acknowledged to its client."""
        if write_id in self._acked:
            return
        self._acked[write_id] = (key, index)
        self._max_acked_index = max(self._max_acked_index, index)
        self._key_acked_index[key] = max(self._key_acked_index.get(key, 0), index)

    def on_read_issued(self, time: int, read_id: str, key: str) -> None:
        self._reads[read_id] = _PendingRead(
            key, self._max_acked_index, self._key_acked_index.get(key, 0), time
        )

    def on_read_served(self, time: int, read_id: str, read_index: int, applied: int, seen_index: int) -> None:
        """The read was served at `applied` >= `read_index` and saw the write effective at `seen_index`."""
        pending = self._reads.pop(read_id, None)
        if pending is None:
            return
        self.reads_checked += 1
        if read_index < pending.max_acked_index:
            self.fail(
                "read",
                time,
                f"read {read_id} got read index {read_index}, but index {pending.max_acked_index} "
                f"was acknowledged before it was issued (t={pending.issued})",
            )
        elif seen_index < pending.key_acked_index:
            self.fail(
                "read",
                time,
                f"read {read_id} of {pending.key} saw the write at index {seen_index}, but the write "
                f"at index {pending.key_acked_index} was acknowledged before it was issued",
            )
        elif seen_index > applied or read_index > applied:
            self.fail("read", time, f"read {read_id} served at applied {applied} below what it saw")

    def forget_read(self, read_id: str) -> None:
        self._reads.pop(read_id, None)

    # -- end of run ---------------------------------------------------------------------------

    def check_final(self, time: int, nodes: Iterable[tuple[int, int, set[str]]]) -> None:
        """Each (node, applied index, ids applied) must hold every acknowledged write and commit."""
        for node, applied, seen in nodes:
            if applied < self.max_committed:
                self.fail(
                    "durability",
                    time,
                    f"node {node} ends at applied index {applied}, "
                    f"but index {self.max_committed} was committed",
                )
            missing = sorted(w for w, (_, index) in self._acked.items() if index <= applied and w not in seen)
            if missing:
                self.fail(
                    "durability",
                    time,
                    f"node {node} lost acknowledged writes {', '.join(missing[:5])}",
                )

    def check_states(self, time: int, states: Iterable[tuple[int, int, bytes]]) -> None:
        """Nodes at the same applied index must hold the same state (node, applied, encoded state).

        This catches a snapshot that does not match the entries it replaces.
        """
        first: dict[int, tuple[int, bytes]] = {}
        for node, applied, state in states:
            seen = first.setdefault(applied, (node, state))
            if seen[1] != state:
                self.fail(
                    "state-machine-safety",
                    time,
                    f"nodes {seen[0]} and {node} both applied up to {applied} but hold different states",
                )
                return

    @property
    def acked(self) -> int:
        return len(self._acked)
