"""What a leader knows about its followers: per-peer progress, flow control, the configuration.

`Progress` is one follower as seen by the leader. It is a small state machine:

* PROBE: the leader does not know where the follower's log matches its own. It sends one
  append at a time (then pauses until a response or a heartbeat response) and walks `next`
  back on rejections.
* REPLICATE: the follower is known to match up to `match`; the leader streams appends
  optimistically, advancing `next` as it sends, bounded by `Inflights` (how many messages and
  how many bytes may be unacknowledged).
* SNAPSHOT: the follower needs a snapshot (the entries it lacks were compacted); nothing else
  is sent until the snapshot is reported done or failed.

Invariant: match < next. `pending_commit` (the highest commit index already sent) lets the
leader skip appends whose only news would be a commit index the follower already has;
invariant: pending_commit < next.

`Inflights` is a FIFO of (last index, bytes) of the appends in flight. The byte limit is soft:
one message may take the total from below the limit to above it, so a single oversized entry
can still be sent. A caller checks `full()` before `add()`; adding to a full window is a bug.

`ProgressTracker` holds the configuration (`TrackerConfig`: voters as a joint config, learners,
and the learners-to-be of a joint change), the progress of every member, and the votes of the
current election; it answers the quorum questions (`committed`, `quorum_active`, `tally_votes`).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from petcd.raft.errors import RaftPanic
from petcd.raft.quorum import JointConfig, MajorityConfig, VoteResult
from petcd.raft.types import ConfState


class ProgressState(enum.IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2

    def __str__(self) -> str:
        return _STATE_NAMES[self]


_STATE_NAMES = {
    ProgressState.PROBE: "StateProbe",
    ProgressState.REPLICATE: "StateReplicate",
    ProgressState.SNAPSHOT: "StateSnapshot",
}


class Inflights:
    """The sliding window of append messages sent but not yet acknowledged."""

    __slots__ = ("_buffer", "_bytes", "max_bytes", "size")

    def __init__(self, size: int, max_bytes: int = 0) -> None:
        # At most `size` messages; at most `max_bytes` bytes (soft; 0 means no byte limit).
        self.size = size
        self.max_bytes = max_bytes
        # (last entry index of the message, its payload bytes), in increasing index order.
        self._buffer: deque[tuple[int, int]] = deque()
        # Invariant: _bytes == sum of the bytes in _buffer.
        self._bytes = 0

    def __repr__(self) -> str:
        return f"Inflights(size={self.size}, max_bytes={self.max_bytes}, inflight={list(self._buffer)})"

    def clone(self) -> Inflights:
        c = Inflights(self.size, self.max_bytes)
        c._buffer = deque(self._buffer)
        c._bytes = self._bytes
        return c

    def add(self, index: int, nbytes: int = 0) -> None:
        """Record an append whose last entry is `index`. Indexes must increase."""
        if self.full():
            raise RaftPanic("cannot add into a Full inflights")
        self._buffer.append((index, nbytes))
        self._bytes += nbytes

    def free_le(self, to: int) -> None:
        """Forget every message whose last index is <= `to` (they were acknowledged)."""
        buf = self._buffer
        while buf and buf[0][0] <= to:
            self._bytes -= buf.popleft()[1]

    def free_first_one(self) -> None:
        if self._buffer:
            self.free_le(self._buffer[0][0])

    def full(self) -> bool:
        return len(self._buffer) >= self.size or (self.max_bytes != 0 and self._bytes >= self.max_bytes)

    def count(self) -> int:
        return len(self._buffer)

    @property
    def nbytes(self) -> int:
        """Payload bytes in flight."""
        return self._bytes

    def indexes(self) -> list[int]:
        """The last indexes of the messages in flight, oldest first."""
        return [i for i, _ in self._buffer]

    def reset(self) -> None:
        self._buffer.clear()
        self._bytes = 0


@dataclass(slots=True, eq=False)
class Progress:
    """One follower's replication state, as the leader tracks it."""

    # Invariant: 0 <= match < next.
    match: int = 0
    next: int = 1
    state: ProgressState = ProgressState.PROBE
    # In SNAPSHOT: the index of the snapshot being sent.
    pending_snapshot: int = 0
    # Heard from since the last check-quorum round; the leader's own entry stays true.
    recent_active: bool = False
    # In PROBE: an append was sent and not yet answered. In REPLICATE: the window is full.
    msg_app_flow_paused: bool = False
    inflights: Inflights = field(default_factory=lambda: Inflights(256))
    is_learner: bool = False
    # The highest commit index sent to the follower. Invariant: pending_commit < next.
    pending_commit: int = 0

    def clone(self) -> Progress:
        return Progress(
            match=self.match,
            next=self.next,
            state=self.state,
            pending_snapshot=self.pending_snapshot,
            recent_active=self.recent_active,
            msg_app_flow_paused=self.msg_app_flow_paused,
            inflights=self.inflights.clone(),
            is_learner=self.is_learner,
            pending_commit=self.pending_commit,
        )

    # -- state transitions ---------------------------------------------------------------------

    def reset_state(self, state: ProgressState) -> None:
        self.msg_app_flow_paused = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            # The snapshot may have arrived: probe from just after it rather than from match.
            pending_snapshot = self.pending_snapshot
            self.reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending_snapshot + 1)
        else:
            self.reset_state(ProgressState.PROBE)
            self.next = self.match + 1
            self.pending_commit = min(self.pending_commit, self.match)

    def become_replicate(self) -> None:
        self.reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1
        self.pending_commit = min(self.pending_commit, self.match)

    def become_snapshot(self, snapshot_index: int) -> None:
        self.reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    # -- sending -------------------------------------------------------------------------------

    def sent_entries(self, entries: int, nbytes: int) -> None:
        """An append carrying `entries` entries (`nbytes` of payload) from `next` on was sent."""
        if self.state == ProgressState.REPLICATE:
            if entries > 0:
                self.next += entries
                self.inflights.add(self.next - 1, nbytes)
            # A full window pauses the flow until an acknowledgement frees some of it.
            self.msg_app_flow_paused = self.inflights.full()
        elif self.state == ProgressState.PROBE:
            if entries > 0:
                self.msg_app_flow_paused = True
        else:
            raise RaftPanic(f"sending append in unhandled state {self.state}")

    def update_on_entries_send(self, entries: int, nbytes: int, next_index: int) -> None:
        """As `sent_entries`, for an append whose first entry is `next_index` (etcd 3.5 name)."""
        if self.state == ProgressState.REPLICATE and entries > 0:
            self.next = next_index
        self.sent_entries(entries, nbytes)

    def optimistic_update(self, n: int) -> None:
        self.next = n + 1

    def can_bump_commit(self, index: int) -> bool:
        """Whether sending commit index `index` could advance the follower's commit index."""
        # The follower cannot commit past what it holds, which is at most next - 1.
        return self.pending_commit < min(index, self.next - 1)

    def sent_commit(self, commit: int) -> None:
        self.pending_commit = min(max(self.pending_commit, commit), self.next - 1)

    # -- responses -----------------------------------------------------------------------------

    def maybe_update(self, n: int) -> bool:
        """An append response acknowledged index `n`; False if it tells nothing new."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.msg_app_flow_paused = False
        self.next = max(self.next, n + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """An append at `rejected` was refused; the follower hints its log matches up to
        `match_hint`. False if the rejection is stale (answers an older message)."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            # Entries in flight after match are lost with this rejection: resend from match.
            self.next = self.match + 1
            self.pending_commit = min(self.pending_commit, self.match)
            return True
        # Probing sends one append at a time, so a genuine rejection is for next - 1.
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.pending_commit = min(self.pending_commit, self.next - 1)
        self.msg_app_flow_paused = False
        return True

    def is_paused(self) -> bool:
        """Whether the leader should hold back appends to this follower for now."""
        if self.state in (ProgressState.PROBE, ProgressState.REPLICATE):
            return self.msg_app_flow_paused
        return True

    def __str__(self) -> str:
        parts = [f"{self.state} match={self.match} next={self.next}"]
        if self.is_learner:
            parts.append(" learner")
        if self.is_paused():
            parts.append(" paused")
        if self.pending_snapshot > 0:
            parts.append(f" pendingSnap={self.pending_snapshot}")
        if not self.recent_active:
            parts.append(" inactive")
        n = self.inflights.count()
        if n > 0:
            parts.append(f" inflight={n}")
            if self.inflights.full():
                parts.append("[full]")
        return "".join(parts)


ProgressMap = dict[int, Progress]


def progress_map_str(m: ProgressMap) -> str:
    """One line per peer, in ID order (etcd's ProgressMap.String)."""
    return "".join(f"{i}: {m[i]}\n" for i in sorted(m))


@dataclass(slots=True)
class TrackerConfig:
    """The membership raft acts on: voters (joint during a change) and learners.

    Invariants (checked by confchange): no ID is both a voter and a learner; `learners_next`
    (voters of the outgoing config that become learners when the joint state is left) is a
    subset of the outgoing voters and is empty outside a joint config; `auto_leave` is only set
    in a joint config.
    """

    voters: JointConfig = field(default_factory=JointConfig)
    auto_leave: bool = False
    learners: set[int] = field(default_factory=set)
    learners_next: set[int] = field(default_factory=set)

    def __str__(self) -> str:
        s = f"voters={self.voters}"
        if self.learners:
            s += f" learners={MajorityConfig(self.learners)}"
        if self.learners_next:
            s += f" learners_next={MajorityConfig(self.learners_next)}"
        if self.auto_leave:
            s += " autoleave"
        return s

    def clone(self) -> TrackerConfig:
        return TrackerConfig(
            voters=self.voters.clone(),
            auto_leave=self.auto_leave,
            learners=set(self.learners),
            learners_next=set(self.learners_next),
        )


class ProgressTracker:
    """The configuration, every member's progress, and the votes of the current election."""

    def __init__(self, max_inflight: int, max_inflight_bytes: int = 0) -> None:
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes
        self.config = TrackerConfig()
        # Invariant: an entry for every ID in the config (voters of both halves and learners).
        self.progress: ProgressMap = {}
        self.votes: dict[int, bool] = {}

    # Shortcuts into the config (etcd embeds Config in ProgressTracker).
    @property
    def voters(self) -> JointConfig:
        return self.config.voters

    @property
    def learners(self) -> set[int]:
        return self.config.learners

    @property
    def learners_next(self) -> set[int]:
        return self.config.learners_next

    @property
    def auto_leave(self) -> bool:
        return self.config.auto_leave

    def new_inflights(self) -> Inflights:
        return Inflights(self.max_inflight, self.max_inflight_bytes)

    def conf_state(self) -> ConfState:
        c = self.config
        return ConfState(
            voters=tuple(sorted(c.voters.incoming)),
            learners=tuple(sorted(c.learners)),
            voters_outgoing=tuple(sorted(c.voters.outgoing)),
            learners_next=tuple(sorted(c.learners_next)),
            auto_leave=c.auto_leave,
        )

    def is_singleton(self) -> bool:
        """A single voter and no joint change: that voter decides alone."""
        return len(self.config.voters.incoming) == 1 and not self.config.voters.outgoing

    def _acked(self, voter: int) -> int | None:
        pr = self.progress.get(voter)
        return pr.match if pr is not None else None

    def committed(self) -> int:
        """The largest index replicated on a quorum (by the `match` of each voter)."""
        return self.config.voters.committed_index(self._acked)

    def visit(self, fn: Callable[[int, Progress], None]) -> None:
        """Call fn for every member, in ascending ID order (deterministic message order)."""
        for i in sorted(self.progress):
            fn(i, self.progress[i])

    def quorum_active(self) -> bool:
        """Whether a quorum of voters has been recently active."""
        votes = {i: pr.recent_active for i, pr in self.progress.items() if not pr.is_learner}
        return self.config.voters.vote_result(votes) == VoteResult.VOTE_WON

    def voter_nodes(self) -> list[int]:
        return sorted(self.config.voters.ids())

    def learner_nodes(self) -> list[int]:
        return sorted(self.config.learners)

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, id: int, granted: bool) -> None:
        # The first vote of a peer counts; a duplicate response cannot change it.
        self.votes.setdefault(id, granted)

    def tally_votes(self) -> tuple[int, int, VoteResult]:
        """(granted, rejected, result) over the voters' recorded votes."""
        granted = rejected = 0
        for i, pr in self.progress.items():
            if pr.is_learner:
                continue
            v = self.votes.get(i)
            if v is None:
                continue
            if v:
                granted += 1
            else:
                rejected += 1
        return granted, rejected, self.config.voters.vote_result(self.votes)
