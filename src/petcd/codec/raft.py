"""Raft's value types (petcd.raft.types) to and from bytes, through petcd.raftpb.

Two levels are offered. `encode_*` / `decode_*` work on bytes and are what the WAL and the peer
transport call. `*_to_pb` / `*_from_pb` work on the protobuf objects, for codecs that embed a
raft value inside a larger message (the WAL's snapshot marker carries a ConfState).

The mapping is one to one: every field of a dataclass has a field of the same meaning and
etcd's number in the protobuf message, and enums keep their numbers. proto3 leaves zero values
out of the encoding, so an empty HardState encodes to b"" and decodes back to EMPTY_HARD_STATE.
`Message.snapshot` is the one optional field: None is "absent", which is not the same as an
empty Snapshot, and the encoding keeps the difference.

These functions sit on the hot path (every appended entry, every message), so they build
protobuf objects directly and convert enums by table lookup, without generic reflection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from google.protobuf.message import DecodeError as _PbDecodeError

from petcd.codec.errors import DecodeError
from petcd.pb.raftpb import raft_pb2 as pb
from petcd.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

# Enum members by number, so decoding an enum is an index instead of an EnumMeta call.
_ENTRY_TYPES: tuple[EntryType, ...] = tuple(sorted(EntryType))
_MESSAGE_TYPES: tuple[MessageType, ...] = tuple(sorted(MessageType))
assert all(int(t) == i for i, t in enumerate(_ENTRY_TYPES)), "EntryType numbers must be dense"
assert all(int(t) == i for i, t in enumerate(_MESSAGE_TYPES)), "MessageType numbers must be dense"
_ENTRY_TYPE_OF: dict[int, EntryType] = {int(t): t for t in EntryType}


def _entry_type(n: int) -> EntryType:
    if 0 <= n < len(_ENTRY_TYPES):
        return _ENTRY_TYPES[n]
    raise DecodeError(f"unknown entry type {n}")


def _message_type(n: int) -> MessageType:
    if 0 <= n < len(_MESSAGE_TYPES):
        return _MESSAGE_TYPES[n]
    raise DecodeError(f"unknown message type {n}")


_M = TypeVar("_M", pb.Entry, pb.HardState, pb.ConfState, pb.Snapshot, pb.Message)


def _parse(cls: type[_M], data: bytes) -> _M:
    m = cls()
    try:
        m.ParseFromString(data)
    except _PbDecodeError as e:
        raise DecodeError(f"malformed {cls.DESCRIPTOR.name}: {e}") from e
    return m


# --- Entry ---------------------------------------------------------------------------------


def entry_to_pb(e: Entry) -> pb.Entry:
    return pb.Entry(type=pb.EntryType.ValueType(e.type), term=e.term, index=e.index, data=e.data)


def entry_from_pb(m: pb.Entry) -> Entry:
    return Entry(term=m.term, index=m.index, type=_entry_type(m.type), data=m.data)


def encode_entry(e: Entry) -> bytes:
    return entry_to_pb(e).SerializeToString()


def decode_entry(data: bytes) -> Entry:
    return entry_from_pb(_parse(pb.Entry, data))


# --- HardState -----------------------------------------------------------------------------


def hard_state_to_pb(hs: HardState) -> pb.HardState:
    return pb.HardState(term=hs.term, vote=hs.vote, commit=hs.commit)


def hard_state_from_pb(m: pb.HardState) -> HardState:
    return HardState(term=m.term, vote=m.vote, commit=m.commit)


def encode_hard_state(hs: HardState) -> bytes:
    return hard_state_to_pb(hs).SerializeToString()


def decode_hard_state(data: bytes) -> HardState:
    return hard_state_from_pb(_parse(pb.HardState, data))


# --- ConfState -----------------------------------------------------------------------------


def conf_state_to_pb(cs: ConfState) -> pb.ConfState:
    return pb.ConfState(
        voters=cs.voters,
        learners=cs.learners,
        voters_outgoing=cs.voters_outgoing,
        learners_next=cs.learners_next,
        auto_leave=cs.auto_leave,
    )


def conf_state_from_pb(m: pb.ConfState) -> ConfState:
    return ConfState(
        voters=tuple(m.voters),
        learners=tuple(m.learners),
        voters_outgoing=tuple(m.voters_outgoing),
        learners_next=tuple(m.learners_next),
        auto_leave=m.auto_leave,
    )


def encode_conf_state(cs: ConfState) -> bytes:
    return conf_state_to_pb(cs).SerializeToString()


def decode_conf_state(data: bytes) -> ConfState:
    return conf_state_from_pb(_parse(pb.ConfState, data))


# --- Snapshot ------------------------------------------------------------------------------


def snapshot_metadata_to_pb(md: SnapshotMetadata) -> pb.SnapshotMetadata:
    return pb.SnapshotMetadata(conf_state=conf_state_to_pb(md.conf_state), index=md.index, term=md.term)


def snapshot_metadata_from_pb(m: pb.SnapshotMetadata) -> SnapshotMetadata:
    return SnapshotMetadata(conf_state=conf_state_from_pb(m.conf_state), index=m.index, term=m.term)


def snapshot_to_pb(s: Snapshot) -> pb.Snapshot:
    return pb.Snapshot(data=s.data, metadata=snapshot_metadata_to_pb(s.metadata))


def snapshot_from_pb(m: pb.Snapshot) -> Snapshot:
    return Snapshot(data=m.data, metadata=snapshot_metadata_from_pb(m.metadata))


def encode_snapshot(s: Snapshot) -> bytes:
    return snapshot_to_pb(s).SerializeToString()


def decode_snapshot(data: bytes) -> Snapshot:
    return snapshot_from_pb(_parse(pb.Snapshot, data))


# --- Message -------------------------------------------------------------------------------


def message_to_pb(msg: Message) -> pb.Message:
    m = pb.Message(
        type=pb.MessageType.ValueType(msg.type),
        to=msg.to,
        from_=msg.from_,
        term=msg.term,
        log_term=msg.log_term,
        index=msg.index,
        commit=msg.commit,
        reject=msg.reject,
        reject_hint=msg.reject_hint,
        context=msg.context,
    )
    if msg.entries:
        add = m.entries.add
        for e in msg.entries:
            add(type=pb.EntryType.ValueType(e.type), term=e.term, index=e.index, data=e.data)
    if msg.snapshot is not None:
        m.snapshot.CopyFrom(snapshot_to_pb(msg.snapshot))
    return m


def _entries_from_pb(es: Sequence[pb.Entry]) -> tuple[Entry, ...]:
    # The hot loop of a follower (every replicated entry): positional construction and a dict
    # lookup for the enum are about twice as fast as keywords and a call per entry.
    if not es:
        return ()
    types = _ENTRY_TYPE_OF
    try:
        return tuple([Entry(e.term, e.index, types[e.type], e.data) for e in es])
    except KeyError as err:
        raise DecodeError(f"unknown entry type {err.args[0]}") from None


def message_from_pb(m: pb.Message) -> Message:
    # Positional, in Message's field order (type, to, from_, term, log_term, index, entries,
    # commit, snapshot, reject, reject_hint, context); the round-trip tests pin the order.
    return Message(
        _message_type(m.type),
        m.to,
        m.from_,
        m.term,
        m.log_term,
        m.index,
        _entries_from_pb(m.entries),
        m.commit,
        snapshot_from_pb(m.snapshot) if m.HasField("snapshot") else None,
        m.reject,
        m.reject_hint,
        m.context,
    )


def encode_message(msg: Message) -> bytes:
    return message_to_pb(msg).SerializeToString()


def decode_message(data: bytes) -> Message:
    return message_from_pb(_parse(pb.Message, data))
