"""Quorum arithmetic: which index is committed, and who won an election.

A `MajorityConfig` is a set of voter IDs; a decision needs more than half of them. A
`JointConfig` is two majority configurations (the incoming one and the outgoing one) during a
joint-consensus membership change: a decision needs a majority in *each*. Outside a joint
change the outgoing half is empty, and an empty majority config agrees to everything, so a
joint config with an empty outgoing half behaves exactly as its incoming half.

Committed index: sort the indexes the voters have acknowledged (missing acks count as 0); the
value at position n - (n//2 + 1) of the ascending list is acknowledged by a majority (it and
everything to its right), and no larger value is. For an empty configuration the committed
index is `INFINITE_INDEX`, so that `min` over a joint config ignores the empty half.

Vote result: won once a majority said yes; lost once so many said no that the missing votes
cannot make a majority any more; pending otherwise.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

INFINITE_INDEX = 2**64 - 1
"""The committed index of an empty configuration (Go's math.MaxUint64): it constrains nothing."""

AckedIndexer = Callable[[int], int | None]
"""Maps a voter ID to the log index it acknowledged, or None if it is not known."""


class VoteResult(enum.IntEnum):
    # Numbered as etcd's quorum.VoteResult.
    VOTE_PENDING = 1
    VOTE_LOST = 2
    VOTE_WON = 3

    def __str__(self) -> str:
        return _VOTE_RESULT_NAMES[self]


_VOTE_RESULT_NAMES = {
    VoteResult.VOTE_PENDING: "VotePending",
    VoteResult.VOTE_LOST: "VoteLost",
    VoteResult.VOTE_WON: "VoteWon",
}


def index_str(i: int) -> str:
    return "∞" if i == INFINITE_INDEX else str(i)


class MajorityConfig(set[int]):
    """A set of voter IDs deciding by simple majority."""

    def __str__(self) -> str:
        return "(" + " ".join(str(i) for i in sorted(self)) + ")"

    def __repr__(self) -> str:
        return f"MajorityConfig({sorted(self)!r})"

    def slice(self) -> list[int]:
        """The IDs in ascending order."""
        return sorted(self)

    def copy(self) -> MajorityConfig:
        return MajorityConfig(self)

    def committed_index(self, acked: AckedIndexer) -> int:
        """The largest index acknowledged by a majority of the voters."""
        n = len(self)
        if n == 0:
            return INFINITE_INDEX
        srt = sorted(_acked_or_zero(acked, i) for i in self)
        return srt[n - (n // 2 + 1)]

    def vote_result(self, votes: Mapping[int, bool]) -> VoteResult:
        """The outcome of an election given the votes cast so far (absent = not yet voted)."""
        if not self:
            # An empty configuration has nobody to object; joint configs rely on this.
            return VoteResult.VOTE_WON
        yes = no = missing = 0
        for i in self:
            v = votes.get(i)
            if v is None:
                missing += 1
            elif v:
                yes += 1
            else:
                no += 1
        q = len(self) // 2 + 1
        if yes >= q:
            return VoteResult.VOTE_WON
        if yes + missing >= q:
            return VoteResult.VOTE_PENDING
        return VoteResult.VOTE_LOST

    def describe(self, acked: AckedIndexer) -> str:
        """A table of each voter's acked index with a bar showing its rank (etcd's Describe)."""
        if not self:
            return "<empty majority quorum>"
        n = len(self)
        # (id, index, known?) sorted by index then id, to find how many voters are strictly below.
        info = []
        for i in self:
            idx = acked(i)
            info.append((i, idx if idx is not None else 0, idx is not None))
        info.sort(key=lambda t: (t[1], t[0]))
        bars: dict[int, int] = {}
        for k, (i, idx, _) in enumerate(info):
            bars[i] = k if k > 0 and info[k - 1][1] < idx else 0
        lines = [" " * n + "    idx"]
        for i, idx, known in sorted(info):
            bar = bars[i]
            prefix = "?" + " " * n if not known else "x" * bar + ">" + " " * (n - bar)
            lines.append(f"{prefix} {idx:5d}    (id={i})")
        return "\n".join(lines) + "\n"


def _acked_or_zero(acked: AckedIndexer, voter: int) -> int:
    idx = acked(voter)
    return idx if idx is not None else 0


@dataclass(slots=True)
class JointConfig:
    """Two majority configs that must both agree; `outgoing` is empty outside a joint change."""

    incoming: MajorityConfig = field(default_factory=MajorityConfig)
    outgoing: MajorityConfig = field(default_factory=MajorityConfig)

    @classmethod
    def of(cls, incoming: Iterable[int], outgoing: Iterable[int] = ()) -> JointConfig:
        """A joint config from plain iterables of IDs."""
        return cls(MajorityConfig(incoming), MajorityConfig(outgoing))

    def __str__(self) -> str:
        if self.outgoing:
            return f"{self.incoming}&&{self.outgoing}"
        return str(self.incoming)

    def is_joint(self) -> bool:
        return bool(self.outgoing)

    def clone(self) -> JointConfig:
        return JointConfig(self.incoming.copy(), self.outgoing.copy())

    def ids(self) -> set[int]:
        """Every voter of either half."""
        return set(self.incoming) | set(self.outgoing)

    def committed_index(self, acked: AckedIndexer) -> int:
        return min(self.incoming.committed_index(acked), self.outgoing.committed_index(acked))

    def vote_result(self, votes: Mapping[int, bool]) -> VoteResult:
        r1 = self.incoming.vote_result(votes)
        r2 = self.outgoing.vote_result(votes)
        if r1 == r2:
            return r1
        if VoteResult.VOTE_LOST in (r1, r2):
            # Losing either half loses the election.
            return VoteResult.VOTE_LOST
        # One half won, the other is still pending.
        return VoteResult.VOTE_PENDING

    def describe(self, acked: AckedIndexer) -> str:
        return MajorityConfig(self.ids()).describe(acked)
