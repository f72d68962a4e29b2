"""petcd.codec.raft: raft values survive bytes unchanged, and the bytes are etcd's numbering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petcd.codec import DecodeError
from petcd.codec.raft import (
    decode_conf_state,
    decode_entry,
    decode_hard_state,
    decode_message,
    decode_snapshot,
    encode_conf_state,
    encode_entry,
    encode_hard_state,
    encode_message,
    encode_snapshot,
    message_to_pb,
)
from petcd.raft.types import (
    EMPTY_HARD_STATE,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

u64 = st.integers(min_value=0, max_value=2**64 - 1)
ids = st.lists(u64, max_size=6).map(tuple)

entries = st.builds(Entry, term=u64, index=u64, type=st.sampled_from(EntryType), data=st.binary(max_size=64))
hard_states = st.builds(HardState, term=u64, vote=u64, commit=u64)
conf_states = st.builds(
    ConfState,
    voters=ids,
    learners=ids,
    voters_outgoing=ids,
    learners_next=ids,
    auto_leave=st.booleans(),
)
snapshots = st.builds(
    Snapshot,
    data=st.binary(max_size=64),
    metadata=st.builds(SnapshotMetadata, conf_state=conf_states, index=u64, term=u64),
)
messages = st.builds(
    Message,
    type=st.sampled_from(MessageType),
    to=u64,
    from_=u64,
    term=u64,
    log_term=u64,
    index=u64,
    entries=st.lists(entries, max_size=5).map(tuple),
    commit=u64,
    snapshot=st.none() | snapshots,
    reject=st.booleans(),
    reject_hint=u64,
    context=st.binary(max_size=32),
)


@given(entries)
def test_entry_round_trip(e: Entry) -> None:
    assert decode_entry(encode_entry(e)) == e


@given(hard_states)
def test_hard_state_round_trip(hs: HardState) -> None:
    assert decode_hard_state(encode_hard_state(hs)) == hs


@given(conf_states)
def test_conf_state_round_trip(cs: ConfState) -> None:
    decoded = decode_conf_state(encode_conf_state(cs))
    assert decoded == cs  # order of IDs kept, not just equivalent
    assert type(decoded.voters) is tuple


@given(snapshots)
def test_snapshot_round_trip(s: Snapshot) -> None:
    assert decode_snapshot(encode_snapshot(s)) == s


@given(messages)
def test_message_round_trip(m: Message) -> None:
    decoded = decode_message(encode_message(m))
    assert decoded == m
    assert all(isinstance(e.type, EntryType) for e in decoded.entries)
    assert isinstance(decoded.type, MessageType)


def test_empty_snapshot_is_not_no_snapshot() -> None:
    with_empty = Message(type=MessageType.MSG_SNAP, snapshot=Snapshot())
    without = Message(type=MessageType.MSG_SNAP)
    assert encode_message(with_empty) != encode_message(without)
    assert decode_message(encode_message(with_empty)).snapshot == Snapshot()
    assert decode_message(encode_message(without)).snapshot is None


def test_empty_hard_state_is_empty_bytes() -> None:
    assert encode_hard_state(EMPTY_HARD_STATE) == b""
    assert decode_hard_state(b"") == EMPTY_HARD_STATE


def test_entry_bytes_use_etcds_field_numbers() -> None:
    # raftpb.Entry: Type = 1 (varint), Term = 2, Index = 3, Data = 4 (bytes).
    e = Entry(term=5, index=7, type=EntryType.CONF_CHANGE, data=b"hi")
    assert encode_entry(e) == bytes([0x08, 1, 0x10, 5, 0x18, 7, 0x22, 2]) + b"hi"


def test_hard_state_bytes_use_etcds_field_numbers() -> None:
    # raftpb.HardState: term = 1, vote = 2, commit = 3.
    assert encode_hard_state(HardState(term=1, vote=2, commit=3)) == bytes([0x08, 1, 0x10, 2, 0x18, 3])


def test_message_bytes_use_etcds_field_numbers() -> None:
    # raftpb.Message: type 1, to 2, from 3, term 4, logTerm 5, index 6, entries 7, commit 8,
    # snapshot 9, reject 10, rejectHint 11, context 12.
    m = Message(
        type=MessageType.MSG_APP_RESP,
        to=2,
        from_=3,
        term=4,
        log_term=5,
        index=6,
        commit=8,
        reject=True,
        reject_hint=11,
        context=b"c",
    )
    expected = bytes(
        [0x08, 4, 0x10, 2, 0x18, 3, 0x20, 4, 0x28, 5, 0x30, 6, 0x40, 8, 0x50, 1, 0x58, 11, 0x62, 1]
    )
    assert encode_message(m) == expected + b"c"


def test_large_ids_survive() -> None:
    # Member IDs are random 64-bit numbers; the top bit must not turn into a sign.
    m = Message(type=MessageType.MSG_HEARTBEAT, to=2**64 - 1, from_=2**63)
    assert decode_message(encode_message(m)) == m


def test_pb_object_is_the_same_encoding() -> None:
    m = Message(type=MessageType.MSG_PROP, entries=(Entry(data=b"x"),))
    assert message_to_pb(m).SerializeToString() == encode_message(m)


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a",  # a length-delimited field with its length missing
        b"\x3a\x05\x08",  # entries: says 5 bytes, has 1
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # varint longer than 10 bytes
    ],
)
def test_malformed_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_message(data)


def test_unknown_message_type_raises_decode_error() -> None:
    with pytest.raises(DecodeError, match="unknown message type 99"):
        decode_message(bytes([0x08, 99]))


def test_unknown_entry_type_raises_decode_error() -> None:
    with pytest.raises(DecodeError, match="unknown entry type 7"):
        decode_entry(bytes([0x08, 7]))
    with pytest.raises(DecodeError):
        decode_message(bytes([0x3A, 2, 0x08, 7]))


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def test_enum_numbers_match_raftpb() -> None:
    from petcd.pb.raftpb import raft_pb2

    assert {_camel(t.name): int(t) for t in MessageType} == dict(raft_pb2.MessageType.items())
    assert {"Entry" + _camel(t.name): int(t) for t in EntryType} == dict(raft_pb2.EntryType.items())
