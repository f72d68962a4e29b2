"""Value types of the raft state machine: entries, messages, hard state, snapshots, config changes.

These are the nouns ring A speaks. They are small frozen dataclasses (never protobuf objects):
`petcd.codec` turns them into bytes at the edge (the WAL and the peer transport). Numbering of
the enums matches etcd's raftpb so that logs and traces read the same as etcd's.

A configuration change travels through the log as the `data` of an entry of type
`EntryType.CONF_CHANGE`. Raft itself must be able to read such entries (to apply them and to
leave a joint configuration on its own), so their byte format is owned here, with `struct`, and
not by the codec layer.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

NONE = 0
"""The node ID that means "nobody" (no leader, no vote)."""


class EntryType(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1
    # etcd's raftpb has EntryConfChange (v1) and EntryConfChangeV2; petcd has one format that
    # covers both (a list of single changes plus a transition), stored under number 2.
    CONF_CHANGE_V2 = 2


class MessageType(enum.IntEnum):
    MSG_HUP = 0
    MSG_BEAT = 1
    MSG_PROP = 2
    MSG_APP = 3
    MSG_APP_RESP = 4
    MSG_VOTE = 5
    MSG_VOTE_RESP = 6
    MSG_SNAP = 7
    MSG_HEARTBEAT = 8
    MSG_HEARTBEAT_RESP = 9
    MSG_UNREACHABLE = 10
    MSG_SNAP_STATUS = 11
    MSG_CHECK_QUORUM = 12
    MSG_TRANSFER_LEADER = 13
    MSG_TIMEOUT_NOW = 14
    MSG_READ_INDEX = 15
    MSG_READ_INDEX_RESP = 16
    MSG_PRE_VOTE = 17
    MSG_PRE_VOTE_RESP = 18


LOCAL_MESSAGES = frozenset(
    {
        MessageType.MSG_HUP,
        MessageType.MSG_BEAT,
        MessageType.MSG_UNREACHABLE,
        MessageType.MSG_SNAP_STATUS,
        MessageType.MSG_CHECK_QUORUM,
    }
)
"""Messages a node produces for itself; they never cross the network."""

RESPONSE_MESSAGES = frozenset(
    {
        MessageType.MSG_APP_RESP,
        MessageType.MSG_VOTE_RESP,
        MessageType.MSG_HEARTBEAT_RESP,
        MessageType.MSG_UNREACHABLE,
        MessageType.MSG_PRE_VOTE_RESP,
    }
)


def vote_resp_type(t: MessageType) -> MessageType:
    """The response type that answers a (pre-)vote request."""
    if t == MessageType.MSG_VOTE:
        return MessageType.MSG_VOTE_RESP
    if t == MessageType.MSG_PRE_VOTE:
        return MessageType.MSG_PRE_VOTE_RESP
    raise ValueError(f"not a vote message: {t!r}")


class StateType(enum.IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3

    def __str__(self) -> str:
        return _STATE_NAMES[self]


_STATE_NAMES = {
    StateType.FOLLOWER: "StateFollower",
    StateType.CANDIDATE: "StateCandidate",
    StateType.LEADER: "StateLeader",
    StateType.PRE_CANDIDATE: "StatePreCandidate",
}


class ReadOnlyOption(enum.IntEnum):
    SAFE = 0
    """Linearizable reads confirm leadership with a heartbeat round (ReadIndex)."""
    LEASE_BASED = 1
    """Reads trust the leader lease (needs check_quorum and bounded clock drift)."""


class SnapshotStatus(enum.IntEnum):
    FINISH = 1
    FAILURE = 2


@dataclass(frozen=True, slots=True)
class Entry:
    term: int = 0
    index: int = 0
    type: EntryType = EntryType.NORMAL
    data: bytes = b""

    def size(self) -> int:
        """Approximate encoded size, used for the byte limits (max_size_per_msg and friends)."""
        return len(self.data) + 16


@dataclass(frozen=True, slots=True)
class HardState:
    term: int = 0
    vote: int = NONE
    commit: int = 0

    def is_empty(self) -> bool:
        # Field by field: asked at every Ready, and the dataclass __eq__ builds two tuples.
        return self.term == 0 and self.vote == NONE and self.commit == 0


EMPTY_HARD_STATE = HardState()


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()
    # Non-empty only in a joint configuration: the voters of the configuration being left.
    voters_outgoing: tuple[int, ...] = ()
    # Voters of the outgoing configuration that become learners when the joint state is left.
    learners_next: tuple[int, ...] = ()
    auto_leave: bool = False

    def equivalent(self, other: ConfState) -> bool:
        """Equal up to the order of the IDs."""

        def norm(cs: ConfState) -> tuple[object, ...]:
            return (
                sorted(cs.voters),
                sorted(cs.learners),
                sorted(cs.voters_outgoing),
                sorted(cs.learners_next),
                cs.auto_leave,
            )

        return norm(self) == norm(other)


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    conf_state: ConfState = field(default_factory=ConfState)
    index: int = 0
    term: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    data: bytes = b""
    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)

    def is_empty(self) -> bool:
        return self.metadata.index == 0


EMPTY_SNAPSHOT = Snapshot()


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    to: int = NONE
    from_: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


class ConfChangeType(enum.IntEnum):
    ADD_NODE = 0
    REMOVE_NODE = 1
    UPDATE_NODE = 2
    ADD_LEARNER_NODE = 3


class ConfChangeTransition(enum.IntEnum):
    AUTO = 0
    """Simple change if possible, else joint consensus left automatically."""
    JOINT_IMPLICIT = 1
    """Joint consensus, left automatically by raft."""
    JOINT_EXPLICIT = 2
    """Joint consensus, left when the application proposes an empty change."""


@dataclass(frozen=True, slots=True)
class ConfChangeSingle:
    type: ConfChangeType
    node_id: int


_CC_HEADER = struct.Struct(">BBII")  # version, transition, number of changes, context length
_CC_CHANGE = struct.Struct(">BQ")  # change type, node id
_CC_VERSION = 1


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A membership change: one or more single changes, applied atomically.

    Promoting a learner is `ADD_NODE` for a node that is a learner. An empty `changes` with a
    joint configuration in force means "leave the joint configuration". `context` is opaque to
    raft; the server puts the member's attributes (name, peer URLs) there.
    """

    changes: tuple[ConfChangeSingle, ...] = ()
    transition: ConfChangeTransition = ConfChangeTransition.AUTO
    context: bytes = b""

    def leave_joint(self) -> bool:
        """Whether this change is the (empty) request to leave a joint configuration.

        The context does not matter: an application may tag the request with one.
        """
        return not self.changes and self.transition == ConfChangeTransition.AUTO

    def enter_joint(self) -> tuple[bool, bool]:
        """(use joint consensus, leave it automatically), as etcd's ConfChangeV2.EnterJoint."""
        if self.transition != ConfChangeTransition.AUTO or len(self.changes) > 1:
            if self.transition in (ConfChangeTransition.AUTO, ConfChangeTransition.JOINT_IMPLICIT):
                return True, True
            return True, False
        return False, False

    def encode(self) -> bytes:
        parts = [_CC_HEADER.pack(_CC_VERSION, self.transition, len(self.changes), len(self.context))]
        parts.extend(_CC_CHANGE.pack(c.type, c.node_id) for c in self.changes)
        parts.append(self.context)
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        if not data:
            return cls()
        try:
            version, transition, n, ctx_len = _CC_HEADER.unpack_from(data, 0)
            if version != _CC_VERSION:
                raise ValueError(f"unknown conf change version {version}")
            off = _CC_HEADER.size
            changes = []
            for _ in range(n):
                t, node_id = _CC_CHANGE.unpack_from(data, off)
                off += _CC_CHANGE.size
                changes.append(ConfChangeSingle(ConfChangeType(t), node_id))
            context = data[off : off + ctx_len]
            if len(context) != ctx_len or off + ctx_len != len(data):
                raise ValueError("conf change length mismatch")
            return cls(tuple(changes), ConfChangeTransition(transition), bytes(context))
        except struct.error as e:
            raise ValueError(f"malformed conf change: {e}") from e


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth telling the application about; never persisted."""

    lead: int = NONE
    raft_state: StateType = StateType.FOLLOWER


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read point: once `applied >= index`, reads for `request_ctx` may be served."""

    index: int
    request_ctx: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the application must do before calling `RawNode.advance`.

    Contract (as etcd's raft): persist `snapshot`, `entries` and `hard_state` to stable storage
    (fsync when `must_sync`), then send `messages`, then apply `committed_entries`, then
    advance. A leader may send `messages` before its own fsync completes.
    """

    soft_state: SoftState | None = None
    hard_state: HardState = EMPTY_HARD_STATE
    read_states: tuple[ReadState, ...] = ()
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot = EMPTY_SNAPSHOT
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    must_sync: bool = False

    def contains_updates(self) -> bool:
        return bool(
            self.soft_state is not None
            or not self.hard_state.is_empty()
            or not self.snapshot.is_empty()
            or self.entries
            or self.committed_entries
            or self.messages
            or self.read_states
        )


@dataclass(frozen=True, slots=True)
class Peer:
    """A member to bootstrap a brand-new cluster with."""

    id: int
    context: bytes = b""
