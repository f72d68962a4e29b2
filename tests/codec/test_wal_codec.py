"""petcd.codec.wal: WAL records, snapshot markers, member metadata and .snap frames."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petcd.codec import DecodeError
from petcd.codec.wal import (
    Metadata,
    RecordType,
    SnapFile,
    WalRecord,
    WalSnapshot,
    decode_metadata,
    decode_record,
    decode_snap_file,
    decode_wal_snapshot,
    encode_metadata,
    encode_record,
    encode_snap_file,
    encode_wal_snapshot,
)
from petcd.raft.types import ConfState

u64 = st.integers(min_value=0, max_value=2**64 - 1)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
ids = st.lists(u64, max_size=4).map(tuple)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), u32, st.binary(max_size=64))
def test_record_round_trip(t: int, crc: int, data: bytes) -> None:
    r = WalRecord(type=t, crc=crc, data=data)
    assert decode_record(encode_record(r)) == r


@given(u64, u64, st.builds(ConfState, voters=ids, learners=ids, auto_leave=st.booleans()))
def test_wal_snapshot_round_trip(index: int, term: int, cs: ConfState) -> None:
    s = WalSnapshot(index=index, term=term, conf_state=cs)
    assert decode_wal_snapshot(encode_wal_snapshot(s)) == s


@given(u64, u64)
def test_metadata_round_trip(node_id: int, cluster_id: int) -> None:
    md = Metadata(node_id=node_id, cluster_id=cluster_id)
    assert decode_metadata(encode_metadata(md)) == md


@given(u32, st.binary(max_size=64))
def test_snap_file_round_trip(crc: int, data: bytes) -> None:
    f = SnapFile(crc=crc, data=data)
    assert decode_snap_file(encode_snap_file(f)) == f


def test_record_bytes_use_etcds_field_numbers() -> None:
    # walpb.Record: type = 1 (varint), crc = 2 (varint), data = 3 (bytes).
    r = WalRecord(type=RecordType.ENTRY, crc=300, data=b"d")
    assert encode_record(r) == bytes([0x08, 2, 0x10, 0xAC, 0x02, 0x1A, 1]) + b"d"


def test_metadata_bytes_use_etcds_field_numbers() -> None:
    # etcdserverpb.Metadata (proto2): NodeID = 1, ClusterID = 2.
    assert encode_metadata(Metadata(node_id=1, cluster_id=2)) == bytes([0x08, 1, 0x10, 2])


def test_record_types_are_etcds() -> None:
    assert [int(t) for t in RecordType] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("decode", [decode_record, decode_wal_snapshot, decode_metadata, decode_snap_file])
def test_truncated_bytes_raise_decode_error(decode: object) -> None:
    assert callable(decode)
    with pytest.raises(DecodeError):
        decode(b"\x1a\x10abc")
