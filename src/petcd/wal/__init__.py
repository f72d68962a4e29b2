"""Durable storage: the write-ahead log, the snapshotter and the data directory.

* petcd.wal.wal - `Wal`: segments of CRC-chained records, group commit, crash recovery,
  release and purge of old segments.
* petcd.wal.record - the record framing and the segment decoder (torn tail vs. corruption).
* petcd.wal.snap - `Snapshotter`: atomic, CRC-checked `.snap` files.
* petcd.wal.datadir - the layout of `<data-dir>/member` and the data-dir lock.

All file access goes through the petcd.fs FileSystem port.
"""

from petcd.wal.datadir import lock_data_dir, snap_dir, wal_dir
from petcd.wal.errors import (
    CorruptWalError,
    DataDirLockedError,
    MetadataConflictError,
    SliceOutOfRangeError,
    SnapError,
    SnapshotMismatchError,
    SnapshotNotFoundError,
    WalError,
    WalExistsError,
    WalNotFoundError,
)
from petcd.wal.snap import DEFAULT_MAX_SNAPSHOTS, Snapshotter
from petcd.wal.wal import DEFAULT_MAX_WALS, SEGMENT_BYTES, Wal, WalData, exists, valid_snapshot_entries

__all__ = [
    "DEFAULT_MAX_SNAPSHOTS",
    "DEFAULT_MAX_WALS",
    "SEGMENT_BYTES",
    "CorruptWalError",
    "DataDirLockedError",
    "MetadataConflictError",
    "SliceOutOfRangeError",
    "SnapError",
    "SnapshotMismatchError",
    "SnapshotNotFoundError",
    "Snapshotter",
    "Wal",
    "WalData",
    "WalError",
    "WalExistsError",
    "WalNotFoundError",
    "exists",
    "lock_data_dir",
    "snap_dir",
    "valid_snapshot_entries",
    "wal_dir",
]
