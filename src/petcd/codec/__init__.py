"""Bytes at the edge: petcd's value types to and from their protobuf encodings.

Rings A and B speak frozen dataclasses (petcd.raft.types); the WAL, the snapshot files and the
peer transport need bytes. This layer is the only translation between the two, so that nothing
above it handles protobuf objects for raft's nouns and nothing below it knows protobuf exists.

* `petcd.codec.raft`: Entry, HardState, ConfState, SnapshotMetadata, Snapshot and Message through
  the `petcd.raftpb` messages (field numbers as etcd's raftpb).
* `petcd.codec.wal`: the WAL record frame, the WAL's snapshot marker and member metadata, and the
  `.snap` file frame (as etcd's walpb, etcdserverpb.Metadata and snappb).

Every decoder raises `DecodeError` (a ValueError) on bytes it cannot read, never a protobuf
exception, so callers need not import protobuf to handle damage.
"""

from petcd.codec.errors import DecodeError

__all__ = ["DecodeError"]
