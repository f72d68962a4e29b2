"""The byte formats of the WAL and of snapshot files, as etcd's walpb, etcdserverpb and snappb.

The wal layer may not import protobuf (DESIGN.md, layers), so it frames and checksums records
itself and asks this module for the bytes inside:

* a WAL record (`petcd.walpb.Record`): a record type (`RecordType`, etcd's numbering), the
  running CRC and the payload;
* the payloads that are not raft values: the member metadata written at the head of every
  segment (`etcdserverpb.Metadata`: node and cluster ID) and the snapshot marker
  (`petcd.walpb.Snapshot`: index, term and the ConfState at that point);
* a `.snap` file (`petcd.snappb.Snapshot`): an encoded raft Snapshot and its CRC.

Raft entries and hard states inside records are encoded by petcd.codec.raft.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import DecodeError as _PbDecodeError

from petcd.codec.errors import DecodeError
from petcd.codec.raft import conf_state_from_pb, conf_state_to_pb
from petcd.pb.etcdserverpb import etcdserver_pb2
from petcd.pb.snappb import snap_pb2
from petcd.pb.walpb import record_pb2
from petcd.raft.types import ConfState


class RecordType(enum.IntEnum):
    """What a WAL record's data holds (etcd's numbering)."""

    METADATA = 1
    ENTRY = 2
    STATE = 3
    CRC = 4
    SNAPSHOT = 5


@dataclass(frozen=True, slots=True)
class WalRecord:
    # Kept as a plain int: an unknown type must reach the WAL reader, which decides what it means.
    type: int
    crc: int = 0
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class WalSnapshot:
    """The marker a WAL holds for a snapshot: replay starts after (index, term)."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Metadata:
    node_id: int = 0
    cluster_id: int = 0


@dataclass(frozen=True, slots=True)
class SnapFile:
    """The content of a `.snap` file: `data` is an encoded raft Snapshot, `crc` its CRC-32C."""

    crc: int = 0
    data: bytes = b""


_M = TypeVar("_M", record_pb2.Record, record_pb2.Snapshot, etcdserver_pb2.Metadata, snap_pb2.Snapshot)


def _parse(cls: type[_M], data: bytes) -> _M:
    m = cls()
    try:
        m.ParseFromString(data)
    except _PbDecodeError as e:
        raise DecodeError(f"malformed {cls.DESCRIPTOR.full_name}: {e}") from e
    return m


def encode_record(r: WalRecord) -> bytes:
    return record_pb2.Record(type=r.type, crc=r.crc, data=r.data).SerializeToString()


def decode_record(data: bytes) -> WalRecord:
    m = _parse(record_pb2.Record, data)
    return WalRecord(type=m.type, crc=m.crc, data=m.data)


def encode_wal_snapshot(s: WalSnapshot) -> bytes:
    m = record_pb2.Snapshot(index=s.index, term=s.term, conf_state=conf_state_to_pb(s.conf_state))
    return m.SerializeToString()


def decode_wal_snapshot(data: bytes) -> WalSnapshot:
    m = _parse(record_pb2.Snapshot, data)
    return WalSnapshot(index=m.index, term=m.term, conf_state=conf_state_from_pb(m.conf_state))


def encode_metadata(md: Metadata) -> bytes:
    return etcdserver_pb2.Metadata(NodeID=md.node_id, ClusterID=md.cluster_id).SerializeToString()


def decode_metadata(data: bytes) -> Metadata:
    m = _parse(etcdserver_pb2.Metadata, data)
    return Metadata(node_id=m.NodeID, cluster_id=m.ClusterID)


def encode_snap_file(f: SnapFile) -> bytes:
    return snap_pb2.Snapshot(crc=f.crc, data=f.data).SerializeToString()


def decode_snap_file(data: bytes) -> SnapFile:
    m = _parse(snap_pb2.Snapshot, data)
    return SnapFile(crc=m.crc, data=m.data)
