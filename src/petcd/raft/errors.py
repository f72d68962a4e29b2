"""Errors raised by the raft state machine.

These are expected conditions the caller handles (a dropped proposal, a compacted index),
not broken invariants: a broken invariant raises `RaftPanic` and the node must stop.
"""


class RaftError(Exception):
    """Root of the raft errors a caller is expected to handle."""


class ProposalDropped(RaftError):
    def __init__(self, reason: str = "raft proposal dropped") -> None:
        super().__init__(reason)


class Compacted(RaftError):
    def __init__(self) -> None:
        super().__init__("requested index is unavailable due to compaction")


class SnapOutOfDate(RaftError):
    def __init__(self) -> None:
        super().__init__("requested index is older than the existing snapshot")


class Unavailable(RaftError):
    def __init__(self) -> None:
        super().__init__("requested entry at index is unavailable")


class SnapshotTemporarilyUnavailable(RaftError):
    def __init__(self) -> None:
        super().__init__("snapshot is temporarily unavailable")


class StepLocalMsg(RaftError):
    def __init__(self) -> None:
        super().__init__("raft: cannot step raft local message")


class StepPeerNotFound(RaftError):
    def __init__(self) -> None:
        super().__init__("raft: cannot step as peer not found")


class ConfigInvalid(RaftError):
    """A raft Config that cannot work (zero ID, heartbeat >= election timeout, ...)."""


class RaftPanic(Exception):
    """A broken invariant (etcd's raft panics here). The node must stop, not go on wrong."""
