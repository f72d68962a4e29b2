"""The snapshotter: raft snapshots as `<term:016x>-<index:016x>.snap` files.

A file holds an encoded `snappb.Snapshot`: the encoded raft Snapshot and the CRC-32C of those
bytes (petcd.codec.wal.SnapFile). A snapshot is written atomically: the bytes go to
`<name>.tmp`, which is fsynced, renamed to `<name>` and the directory fsynced; a crash leaves
either the whole new file or none, plus perhaps a temporary that the next load removes.

Loading walks the files newest first (the names sort by term, then index) and returns the
first that is valid - and, in `load_newest_available`, that the WAL has a marker for, so a
snapshot saved just before a crash that lost its WAL marker is not used. A file that is empty,
malformed or fails its CRC is renamed to `<name>.broken` (as etcd does) and the walk goes on to
older ones. `purge(max_snapshots)` keeps the newest `max_snapshots` files.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence

from crc32c import crc32c

from petcd.codec.errors import DecodeError
from petcd.codec.raft import decode_snapshot, encode_snapshot
from petcd.codec.wal import SnapFile, WalSnapshot, decode_snap_file, encode_snap_file
from petcd.fs import FileSystem
from petcd.raft.types import Snapshot
from petcd.wal.errors import SnapError

SNAP_SUFFIX = ".snap"
DEFAULT_MAX_SNAPSHOTS = 5

_SNAP_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


def snap_name(term: int, index: int) -> str:
    return f"{term:016x}-{index:016x}{SNAP_SUFFIX}"


def read_snap_file(fs: FileSystem, path: str) -> Snapshot:
    """Decode and check one .snap file; `SnapError` if it cannot be trusted."""
    b = fs.read_file(path)
    if not b:
        raise SnapError(f"snap: {path}: empty snapshot file")
    try:
        f = decode_snap_file(b)
    except DecodeError as e:
        raise SnapError(f"snap: {path}: {e}") from None
    if not f.data or f.crc == 0:
        raise SnapError(f"snap: {path}: empty snapshot")
    crc = crc32c(f.data)
    if crc != f.crc:
        raise SnapError(f"snap: {path}: crc mismatch: file says {f.crc:#010x}, data gives {crc:#010x}")
    try:
        return decode_snapshot(f.data)
    except DecodeError as e:
        raise SnapError(f"snap: {path}: {e}") from None


class Snapshotter:
    def __init__(self, fs: FileSystem, dir: str, *, unsafe_no_fsync: bool = False) -> None:
        self._fs = fs
        self.dir = dir
        self.unsafe_no_fsync = unsafe_no_fsync
        # Names set aside as .broken by the last load, for the caller to log.
        self.broken: list[str] = []

    def _path(self, name: str) -> str:
        return posixpath.join(self.dir, name)

    def save_snap(self, snapshot: Snapshot) -> None:
        if snapshot.is_empty():
            return
        self._fs.make_dirs(self.dir)
        data = encode_snapshot(snapshot)
        body = encode_snap_file(SnapFile(crc=crc32c(data), data=data))
        name = snap_name(snapshot.metadata.term, snapshot.metadata.index)
        tmp = self._path(name + ".tmp")
        f = self._fs.open(tmp, create=True)
        try:
            f.truncate(0)
            f.pwrite(0, body)
            if not self.unsafe_no_fsync:
                f.fsync()
        finally:
            f.close()
        self._fs.rename(tmp, self._path(name))
        if not self.unsafe_no_fsync:
            self._fs.fsync_dir(self.dir)

    def snap_names(self) -> list[str]:
        """The .snap files, newest first; leftovers of interrupted saves are removed."""
        if not self._fs.is_dir(self.dir):
            return []
        names = self._fs.list_dir(self.dir)
        for name in names:
            if name.endswith(SNAP_SUFFIX + ".tmp"):
                self._fs.remove(self._path(name))
        return sorted((n for n in names if _SNAP_NAME.match(n)), reverse=True)

    def load(self) -> Snapshot | None:
        """The newest valid snapshot, or None if there is none."""
        return self._load_matching(lambda s: True)

    def load_newest_available(self, wal_snaps: Sequence[WalSnapshot]) -> Snapshot | None:
        """The newest valid snapshot that one of the WAL's snapshot markers names."""
        marks = {(s.term, s.index) for s in wal_snaps}
        return self._load_matching(lambda s: (s.metadata.term, s.metadata.index) in marks)

    def _load_matching(self, match: Callable[[Snapshot], bool]) -> Snapshot | None:
        self.broken = []
        for name in self.snap_names():
            path = self._path(name)
            try:
                snap = read_snap_file(self._fs, path)
            except SnapError:
                self._fs.rename(path, path + ".broken")
                self.broken.append(name)
                continue
            if match(snap):
                return snap
        return None

    def purge(self, max_snapshots: int = DEFAULT_MAX_SNAPSHOTS) -> list[str]:
        """Remove all but the newest `max_snapshots` .snap files; the names removed."""
        names = self.snap_names()
        removed = names[max_snapshots:]
        for name in removed:
            self._fs.remove(self._path(name))
        if removed and not self.unsafe_no_fsync:
            self._fs.fsync_dir(self.dir)
        return sorted(removed)
