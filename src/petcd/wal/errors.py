"""Errors of the WAL, the snapshotter and the data directory.

Corruption is reported, never repaired behind the operator's back: `CorruptWalError` names the
segment file and the byte offset of the first record that cannot be trusted.
"""

from __future__ import annotations


class WalError(Exception):
    """Root of the durable-storage errors."""


class WalExistsError(WalError):
    pass


class WalNotFoundError(WalError):
    """No segment file (or no segment that holds the requested snapshot index)."""


class CorruptWalError(WalError):
    """Damage that is not a torn tail: refusing to start rather than silently dropping records."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(
            f"wal: {path}: corrupt record at offset {offset}: {reason} "
            "(not a torn write at the tail; refusing to drop records)"
        )
        self.path = path
        self.offset = offset
        self.reason = reason


class MetadataConflictError(WalError):
    pass


class SnapshotMismatchError(WalError):
    pass


class SnapshotNotFoundError(WalError):
    pass


class SliceOutOfRangeError(WalError):
    """An entry whose index leaves a gap after the entries read so far."""


class SnapError(WalError):
    """A .snap file that cannot be used (empty, malformed, or failing its CRC)."""


class DataDirLockedError(WalError):
    pass
