"""The FileSystem port: every byte petcd keeps on disk goes through it.

The WAL and the snapshotter (petcd.wal) never touch `os` themselves; they are handed a
`FileSystem`. Two implementations exist:

* `OsFileSystem` (petcd.fs.os_fs): the real disk, through `os` file descriptors, `fdatasync`,
  `posix_fallocate` and `flock`.
* `SimFileSystem` (petcd.fs.sim): an in-memory disk that remembers what was made durable and
  what was only written, and at `crash()` loses or tears the writes that were not synced -
  deterministically, from a `random.Random` - so tests can crash a writer at every write and
  every fsync point and check what comes back.

The port is deliberately small and explicit about durability, because the point of it is to
make durability testable:

* Writing data makes nothing durable. `File.fdatasync()` (or `fsync()`) makes the file's
  content and size durable.
* Creating, renaming or removing a file changes a directory; that change is durable only after
  `fsync_dir()` of the directory that holds the name. Callers do it explicitly (the WAL after it
  renames a new segment into place, the snapshotter after its rename), so a crash between the two
  steps is a crash point the simulator can exercise.
* `try_lock()` takes an exclusive advisory lock, failing at once (`LockedError`) if someone else
  holds it. It is how a second process on the same data directory is refused.

Paths are plain `str`, joined with `posixpath` (petcd runs on Linux).
"""

from __future__ import annotations

from typing import Protocol


class FileSystemError(Exception):
    """Root of the errors the file system port raises itself (OS errors pass through as OSError)."""


class LockedError(FileSystemError):
    """The lock is held by someone else (another process, or another holder in this one)."""


class File(Protocol):
    """An open read-write file. Offsets are explicit: the WAL tracks its own write position."""

    @property
    def path(self) -> str: ...

    def size(self) -> int: ...

    def pread(self, offset: int, n: int) -> bytes:
        """Up to `n` bytes at `offset` (fewer only at the end of the file)."""
        ...

    def pwrite(self, offset: int, data: bytes) -> None:
        """All of `data` at `offset`, extending the file if needed."""
        ...

    def truncate(self, size: int) -> None: ...

    def preallocate(self, size: int) -> None:
        """Reserve blocks so the file is at least `size` bytes long; new bytes read as zero."""
        ...

    def fdatasync(self) -> None:
        """Make the content and size durable (not necessarily other metadata such as mtime)."""
        ...

    def fsync(self) -> None: ...

    def close(self) -> None: ...


class Lock(Protocol):
    def release(self) -> None: ...


class FileSystem(Protocol):
    def open(self, path: str, *, create: bool = False) -> File:
        """Open for reading and writing; with `create`, make an empty file if none exists."""
        ...

    def read_file(self, path: str) -> bytes: ...

    def list_dir(self, path: str) -> list[str]:
        """Names in the directory, sorted."""
        ...

    def exists(self, path: str) -> bool: ...

    def is_dir(self, path: str) -> bool: ...

    def make_dirs(self, path: str) -> None:
        """Create the directory and its parents; no error if it exists."""
        ...

    def remove(self, path: str) -> None: ...

    def rename(self, src: str, dst: str) -> None:
        """Atomically replace `dst` by `src` (both in the same directory)."""
        ...

    def fsync_dir(self, path: str) -> None:
        """Make the directory's entries (creates, renames, removes) durable."""
        ...

    def try_lock(self, path: str) -> Lock:
        """Exclusive lock on an existing file or directory; `LockedError` at once if taken."""
        ...


__all__ = ["File", "FileSystem", "FileSystemError", "Lock", "LockedError"]
