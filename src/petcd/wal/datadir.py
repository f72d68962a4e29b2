"""The data directory: where the WAL and the snapshots live, and the lock that makes it ours.

    <data-dir>/member/wal/    WAL segments (petcd.wal.wal)
    <data-dir>/member/snap/   .snap files (petcd.wal.snap) and the backend

One member process owns a data directory. `lock_data_dir` takes an exclusive lock on the
directory itself (no extra file, so the layout stays etcd's) and fails at once with
`DataDirLockedError` if another process - or another holder in this one - has it. The lock goes
away with its holder, so a member killed with SIGKILL leaves nothing stale behind.
"""

from __future__ import annotations

import posixpath

from petcd.fs import FileSystem, Lock, LockedError
from petcd.wal.errors import DataDirLockedError


def member_dir(data_dir: str) -> str:
    return posixpath.join(data_dir, "member")


def wal_dir(data_dir: str) -> str:
    return posixpath.join(data_dir, "member", "wal")


def snap_dir(data_dir: str) -> str:
    return posixpath.join(data_dir, "member", "snap")


def lock_data_dir(fs: FileSystem, data_dir: str) -> Lock:
    """Create the data directory if needed and lock it; `DataDirLockedError` if it is taken."""
    fs.make_dirs(data_dir)
    try:
        return fs.try_lock(data_dir)
    except LockedError:
        raise DataDirLockedError(
            f"data dir {data_dir} is in use by another etcd process (could not lock it); "
            "each member needs its own --data-dir"
        ) from None
