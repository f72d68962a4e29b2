"""Offline work on a member's backend: ``defrag`` and ``hashkv``.

``defrag(data_dir)`` compacts ``<data-dir>/member/snap/db`` in place (``LmdbBackend.defrag``). It
takes the data dir's lock first (the lock a running member holds, ``petcd.wal.lock_data_dir``), so
a data dir in use is refused instead of being rewritten under the member.

``hash_kv(path, rev)`` is etcd's HashKV (``KVStore.hash_kv``: CRC-32C of the key history up to
``rev``, the latest by default) of any of the places a petcd backend lives: a data dir, the backend
file itself, or a snapshot file (``etcdctl snapshot save``'s, trailer or not), which is loaded into
memory. The numbers are the ones ``etcdctl endpoint hashkv`` gets from the running member.
"""

from __future__ import annotations

import os

from petcd.backend import Backend
from petcd.backend.lmdb import LmdbBackend, db_path
from petcd.backend.memory import MemoryBackend
from petcd.backend.snapshot import MAGIC, SnapshotCorrupt
from petcd.errors import Compacted, FutureRevision
from petcd.fs import LockedError
from petcd.fs.os_fs import OsFileSystem
from petcd.mvcc.kvstore import KVStore
from petcd.mvcc.types import HashKVResult


class DataDirError(Exception):
    """The data dir or file cannot be used (the message etcdutl prints)."""


def defrag(data_dir: str) -> None:
    path = db_path(data_dir)
    if not path.is_file():
        raise DataDirError(f"open {path}: no such file or directory")
    lock = None
    try:
        lock = OsFileSystem().try_lock(data_dir)
    except LockedError:
        raise DataDirError(
            f"data dir {data_dir} is in use by a running member; stop it first, or defragment it "
            "online with `etcdctl defrag`"
        ) from None
    try:
        backend = LmdbBackend(path)
        try:
            backend.defrag()
        finally:
            backend.close()
    finally:
        lock.release()


def _open(path: str) -> Backend:
    if os.path.isdir(path):
        path = str(db_path(path))
    if not os.path.isfile(path):
        raise DataDirError(f"open {path}: no such file or directory")
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
    if head != MAGIC:
        return LmdbBackend.open_read_only(path)
    from petcd.cli.etcdutl.snapshot import HASH_BYTES, backend_stream, has_checksum

    size = os.stat(path).st_size
    backend = MemoryBackend()
    try:
        backend.restore(backend_stream(path, size - HASH_BYTES if has_checksum(size) else size))
    except SnapshotCorrupt as e:
        raise DataDirError(f"{path}: {e}") from None
    return backend


def hash_kv(path: str, rev: int = 0) -> HashKVResult:
    backend = _open(path)
    try:
        try:
            return KVStore(backend).hash_kv(rev)
        except Compacted:
            raise DataDirError("mvcc: required revision has been compacted") from None
        except FutureRevision:
            raise DataDirError("mvcc: required revision is a future revision") from None
    finally:
        backend.close()
