"""The FileSystem port on the real disk (Linux).

Files are raw file descriptors (no Python buffering: the WAL assembles a batch in memory and
hands it over in one `pwrite`, and nothing may sit in a user-space buffer when `fdatasync`
returns). Preallocation uses `posix_fallocate`, which reserves blocks and extends the file with
zeros - the zero-filled tail the WAL reader recognises as "nothing written here yet".
Directories are synced by opening them read-only and calling `fsync` on that descriptor. Locks
are `flock` locks, which belong to an open file description: a second `try_lock` of the same path
fails even from the same process, and the kernel drops the lock when the holder dies (so a crashed
member never leaves a stale lock behind).
"""

from __future__ import annotations

import errno
import fcntl
import os
import posixpath

from petcd.fs import LockedError

_PRIVATE_FILE_MODE = 0o600
_PRIVATE_DIR_MODE = 0o700


class OsFile:
    __slots__ = ("_fd", "_path")

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def pread(self, offset: int, n: int) -> bytes:
        chunks = []
        while n > 0:
            chunk = os.pread(self._fd, n, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def pwrite(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def preallocate(self, size: int) -> None:
        current = self.size()
        if size <= current:
            return
        try:
            os.posix_fallocate(self._fd, current, size - current)
        except OSError as e:
            # Some file systems (tmpfs on old kernels, some FUSE mounts) cannot fallocate: fall back
            # to extending the size, which gives the same zero-filled reads without reserved blocks.
            if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            os.ftruncate(self._fd, size)

    def fdatasync(self) -> None:
        os.fdatasync(self._fd)

    def fsync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OsLock:
    __slots__ = ("_fd", "path")

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self.path = path

    def release(self) -> None:
        if self._fd >= 0:
            # Closing the descriptor drops the flock.
            os.close(self._fd)
            self._fd = -1


class OsFileSystem:
    """The real file system. Stateless: one instance may be shared."""

    def open(self, path: str, *, create: bool = False) -> OsFile:
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        return OsFile(os.open(path, flags, _PRIVATE_FILE_MODE), path)

    def read_file(self, path: str) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def list_dir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def make_dirs(self, path: str) -> None:
        os.makedirs(path, mode=_PRIVATE_DIR_MODE, exist_ok=True)

    def remove(self, path: str) -> None:
        os.remove(path)

    def rename(self, src: str, dst: str) -> None:
        if posixpath.dirname(posixpath.abspath(src)) != posixpath.dirname(posixpath.abspath(dst)):
            raise ValueError(f"rename across directories: {src} -> {dst}")
        os.rename(src, dst)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def try_lock(self, path: str) -> OsLock:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(f"{path} is locked by another process") from None
        except BaseException:
            os.close(fd)
            raise
        return OsLock(fd, path)
