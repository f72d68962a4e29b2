"""LmdbBackend: the Backend port on an LMDB environment (the only module that imports ``lmdb``).

Layout
------
The environment is one data file, ``<data-dir>/member/snap/db`` (where etcd keeps its bbolt file), with
its lock file beside it (``db-lock``); LMDB is opened with ``subdir=False``. Each bucket is an LMDB named
database. The writer opens every existing bucket when it starts; buckets are created by
``create_bucket`` or by the first ``put`` in a write transaction, so the writer's table of handles is
complete and a read of an unknown bucket is a read of an empty one. A read-only process (see
``open_read_only``) opens a bucket it does not know yet on first use.

Settings, and why
-----------------
* ``sync=False, metasync=False``: a commit does not fsync. DESIGN.md's durability contract puts the
  acknowledgement on the fsynced WAL and stores ``consistent_index`` in the same transaction as the
  applied batch, so after a crash the server replays the WAL above the backend's ``consistent_index``;
  losing the last commits of the backend costs a replay, not data. ``sync()`` (``mdb_env_sync(force)``)
  flushes everything committed so far; the server calls it before a raft snapshot lets WAL segments go,
  and ``defrag``/``restore`` call it before switching files.
  The caveat, stated plainly: without fsync LMDB is safe against a *process* crash (every committed page
  is in the kernel's page cache), but after a power loss or kernel crash the meta page may have reached
  the disk before the pages it points to. Pass ``sync_commits=True`` (LMDB's ``MDB_NOMETASYNC`` mode:
  one fdatasync per commit) where that matters more than the write latency.
* ``writemap=False``: pages are written with ``pwrite`` and the map is read-only, so a stray write in
  the process cannot corrupt the store, and the data file grows with use instead of being the map size.
* ``map_size = quota + headroom``: the quota (``--quota-backend-bytes``, 2 GiB default) is enforced
  by the MVCC store *before* a write, as etcd's quota applier does (size + cost > quota gives NOSPACE);
  the headroom (an eighth of the quota, at least 64 MiB) lets the deletes and the compaction that get
  out of NOSPACE run even at the quota: LMDB is copy-on-write, so even a delete needs free pages. A
  commit that does hit the end of the map raises ``BackendQuotaExceeded`` and writes nothing.
* ``max_readers=1024``: front-end processes and their threads each hold reader slots.

Sizes: ``size_bytes`` is the high-water mark of pages (``(last_pgno + 1) * psize``, which is the file
size), ``size_in_use_bytes`` the pages reachable from the trees of all buckets.

Defragmentation without stopping readers or writers
---------------------------------------------------
1. Under the write lock (between two write transactions) start *capturing*: every later commit also
   appends its writes, in commit order, to a list.
2. ``mdb_env_copy2(COMPACT)`` copies the environment, as of one read transaction, into ``db.defrag``.
   This is the long part; it holds only a read transaction, so readers and writers carry on.
3. Open the copy and replay the captured writes into it, in batches, without the write lock, until a
   batch is small. Replaying is idempotent (each write is "key := value" or "delete key", applied in
   commit order), so a commit captured and also present in the copy does no harm.
4. Take the write lock (writers now wait), replay the rest, fsync the copy, wait for this process's
   open read transactions to finish (new ones wait), close the old environment, rename ``db.defrag``
   over ``db`` and open it. Writers and readers wait only for step 4: a replay of a small batch and a
   rename, not the copy. (etcd#9222: etcd's defrag holds the write lock for the whole copy.)
Read-only processes still reading the old file keep a consistent view of it (the old inode lives until
they close it); ``LmdbBackend`` in read-only mode notices the new inode at its next read transaction and
reopens. The lock file goes with the data file: step 4 unlinks ``db-lock`` before opening the new file,
so the writer gets a fresh one instead of sharing one whose reader table and last transaction id
describe the old file (which other processes may still hold). A reader that opened the new file with
the old lock file would read the meta page the *old* file's transaction id picks (the copy's empty
first page, or its first state forever after), so the rename, the unlink and the writer's open happen
under an exclusive ``flock`` of the ``snap`` directory, and a read-only open holds a shared one.

Snapshots
---------
``snapshot()`` walks every bucket inside one read transaction and yields ``petcd.backend.snapshot``'s
stream (writers go on meanwhile). ``restore`` builds a fresh environment beside the store from a
stream, checks the stream's hash, and switches to it as step 4 above does.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb

from petcd.backend import MAX_KEY_BYTES, Backend, hard_limit_bytes, snapshot
from petcd.errors import BackendQuotaExceeded

DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024
MAX_BUCKETS = 64
MAX_READERS = 1024
_REPLAY_BATCH = 10_000
_SMALL_TAIL = 1_000


def db_path(data_dir: str | os.PathLike[str]) -> Path:
    """Where the environment lives for a member's data dir: ``<data-dir>/member/snap/db``."""
    return Path(data_dir) / "member" / "snap" / "db"


class _ReadScope:
    """The context manager of ``LmdbBackend.read_txn`` (a class, not a generator: every read enters one)."""

    __slots__ = ("_backend", "_txn")

    def __init__(self, backend: LmdbBackend) -> None:
        self._backend = backend
        self._txn: Any = None

    def __enter__(self) -> _LmdbReadTxn:
        backend = self._backend
        if backend._read_only:
            backend._follow_swap()
        backend._enter_env()
        try:
            txn, dbs = backend._begin_read()
        except BaseException:
            backend._leave_env()
            raise
        self._txn = txn
        return _LmdbReadTxn(backend, txn, dbs)

    def __exit__(self, *exc: object) -> None:
        try:
            self._txn.abort()
        finally:
            self._txn = None
            self._backend._leave_env()


class _LmdbReadTxn:
    def __init__(self, backend: LmdbBackend, txn: Any, dbs: dict[str, Any]) -> None:
        self._backend = backend
        self._txn = txn
        # The handles that existed when the transaction began: LMDB refuses a newer one in it.
        self._dbs = dbs

    def _db(self, bucket: str) -> Any:
        return self._dbs.get(bucket)

    def get(self, bucket: str, key: bytes) -> bytes | None:
        db = self._db(bucket)
        if db is None:
            return None
        value: bytes | None = self._txn.get(key, db=db)
        return value

    def range(
        self, bucket: str, start: bytes, end: bytes | None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        db = self._db(bucket)
        if db is None:
            return iter(())
        cur = self._txn.cursor(db=db)
        if end is None and not reverse:
            # The hot case (the MVCC scan checks its own bound): LMDB's C iterator, no Python frame.
            it: Iterator[tuple[bytes, bytes]] = cur.iternext() if cur.set_range(start) else iter(())
            return it
        return _iterate(cur, start, end, reverse)

    def keys(self, bucket: str, start: bytes, end: bytes | None) -> Iterator[bytes]:
        db = self._db(bucket)
        if db is None:
            return iter(())
        cur = self._txn.cursor(db=db)
        if not cur.set_range(start):
            return iter(())
        it: Iterator[bytes] = cur.iternext(keys=True, values=False)
        if end is None:
            return it
        return itertools.takewhile(end.__gt__, it)

    def seek(self, bucket: str, key: bytes) -> tuple[bytes, bytes] | None:
        db = self._db(bucket)
        if db is None:
            return None
        cur = self._txn.cursor(db=db)
        if not cur.set_range(key):
            return None
        return cur.key(), cur.value()

    def seek_before(self, bucket: str, key: bytes) -> tuple[bytes, bytes] | None:
        db = self._db(bucket)
        if db is None:
            return None
        cur = self._txn.cursor(db=db)
        found = cur.prev() if cur.set_range(key) else cur.last()
        if not found:
            return None
        return cur.key(), cur.value()

    def count(self, bucket: str) -> int:
        db = self._db(bucket)
        if db is None:
            return 0
        entries: int = self._txn.stat(db)["entries"]
        return entries


def _iterate(cur: Any, start: bytes, end: bytes | None, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
    # iternext/iterprev are C iterators: far cheaper per item than key()/value()/next() calls.
    if not reverse:
        if not cur.set_range(start):
            return
        if end is None:
            yield from cur.iternext()
            return
        for item in cur.iternext():
            if item[0] >= end:
                return
            yield item
    else:
        if end is None:
            found = cur.last()
        else:
            found = cur.prev() if cur.set_range(end) else cur.last()
        if not found:
            return
        for item in cur.iterprev():
            if item[0] < start:
                return
            yield item


class _LmdbWriteTxn(_LmdbReadTxn):
    def __init__(self, backend: LmdbBackend, txn: Any, capture: bool) -> None:
        super().__init__(backend, txn, dict(backend._dbs))
        self.created = False
        # Writes in order, kept only while a defrag is copying (see the module docstring).
        self.ops: list[tuple[str, bytes, bytes | None]] | None = [] if capture else None

    def _create(self, bucket: str) -> Any:
        db = self._dbs.get(bucket)
        if db is None:
            # Visible to other transactions only once this one commits (see write_txn).
            db = self._backend._env.open_db(bucket.encode(), txn=self._txn, create=True)
            self._dbs[bucket] = db
            self.created = True
        return db

    def put(self, bucket: str, key: bytes, value: bytes) -> None:
        if not 0 < len(key) <= MAX_KEY_BYTES:
            raise ValueError(f"backend key of {len(key)} bytes (must be 1..{MAX_KEY_BYTES})")
        try:
            self._txn.put(key, value, db=self._create(bucket))
        except lmdb.MapFullError:
            raise BackendQuotaExceeded() from None
        if self.ops is not None:
            self.ops.append((bucket, key, value))

    def delete(self, bucket: str, key: bytes) -> bool:
        db = self._dbs.get(bucket)
        if db is None:
            return False
        try:
            deleted: bool = self._txn.delete(key, db=db)
        except lmdb.MapFullError:
            raise BackendQuotaExceeded() from None
        if deleted and self.ops is not None:
            self.ops.append((bucket, key, None))
        return deleted


class LmdbBackend:
    """The Backend port on LMDB (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        quota_bytes: int = DEFAULT_QUOTA_BYTES,
        *,
        read_only: bool = False,
        sync_commits: bool = False,
    ) -> None:
        self._path = Path(path)
        self._quota_bytes = quota_bytes
        self._read_only = read_only
        self._sync_commits = sync_commits
        self._write_lock = threading.Lock()
        self._defrag_lock = threading.Lock()
        # Held by a commit that creates buckets from its start to the publication of the new handles,
        # and by a reader from the start of its transaction to its look at the handles: so a reader
        # whose transaction sees a new bucket also sees its handle.
        self._publish_lock = threading.Lock()
        # Guards _readers and _swapping: a swap of the environment waits for readers to leave. Readers
        # take the bare lock (a C-level context manager: this runs on every read) and use the
        # condition only while a swap is on.
        self._env_lock = threading.Lock()
        self._cond = threading.Condition(self._env_lock)
        self._readers = 0
        self._swapping = False
        self._capture: list[tuple[str, bytes, bytes | None]] | None = None
        self._dbs: dict[str, Any] = {}
        if not read_only:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._switch_lock(shared=True):
            self._env = self._open(self._path)
            self._inode = os.stat(self._path).st_ino
        self._load_handles()

    @classmethod
    def open_read_only(cls, path: str | os.PathLike[str]) -> LmdbBackend:
        """A reader of an environment another process writes (it must exist)."""
        return cls(path, read_only=True)

    @contextmanager
    def _switch_lock(self, shared: bool) -> Iterator[None]:
        """Pair the data file with its own lock file: a switch (exclusive) renames the new data file
        in, replaces the lock file and opens both; a reader's open (shared) never falls in between."""
        fd = os.open(self._path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # drops the flock

    def _open(self, path: Path) -> Any:
        return lmdb.open(
            str(path),
            subdir=False,
            map_size=hard_limit_bytes(self._quota_bytes),
            max_dbs=MAX_BUCKETS,
            max_readers=MAX_READERS,
            readonly=self._read_only,
            sync=self._sync_commits,
            metasync=False,
            writemap=False,
            readahead=False,
            lock=True,
        )

    def _load_handles(self) -> None:
        with self._env.begin() as txn:
            names = [bytes(k).decode() for k, _ in txn.cursor()]
        # Replaced, never mutated: transactions hold on to the dict they began with.
        self._dbs = {name: self._env.open_db(name.encode(), create=False) for name in names}

    def _begin_read(self) -> tuple[Any, dict[str, Any]]:
        if not self._read_only:
            with self._publish_lock:
                return self._env.begin(buffers=False), self._dbs
        txn = self._env.begin(buffers=False)
        if self._read_only and txn.stat()["entries"] != len(self._dbs):
            # The writer created a bucket since we looked: open it, then start over so that the
            # transaction is younger than the handle.
            txn.abort()
            self._load_handles()
            txn = self._env.begin(buffers=False)
        return txn, self._dbs

    @property
    def path(self) -> Path:
        return self._path

    @property
    def quota_bytes(self) -> int:
        return self._quota_bytes

    @property
    def read_only(self) -> bool:
        return self._read_only

    # -- transactions --------------------------------------------------------------------------

    def read_txn(self) -> _ReadScope:
        """``with backend.read_txn() as txn``: a read transaction, aborted on leaving."""
        return _ReadScope(self)

    @contextmanager
    def _using_env(self) -> Iterator[None]:
        """Keep the environment open: a defrag's or restore's switch waits until every user has left.

        Every use of ``self._env`` outside a write transaction (which the switch excludes by holding
        the write lock) goes through here or through ``_enter_env``/``_leave_env``: read
        transactions, sizes, syncs.
        """
        self._enter_env()
        try:
            yield
        finally:
            self._leave_env()

    def _enter_env(self) -> None:
        with self._env_lock:
            if self._swapping:
                self._wait_for_swap()
            self._readers += 1

    def _wait_for_swap(self) -> None:
        # called holding _env_lock, which is the condition's lock: wait() releases it meanwhile
        while self._swapping:
            self._cond.wait()

    def _leave_env(self) -> None:
        with self._env_lock:
            self._readers -= 1
            if self._readers == 0 and self._swapping:
                self._cond.notify_all()

    @contextmanager
    def write_txn(self) -> Iterator[_LmdbWriteTxn]:
        if self._read_only:
            raise PermissionError("write transaction on a read-only LMDB backend")
        with self._write_lock:
            txn = self._env.begin(write=True, buffers=False)
            wtxn = _LmdbWriteTxn(self, txn, capture=self._capture is not None)
            try:
                yield wtxn
                try:
                    if wtxn.created:
                        # A handle is valid in transactions begun after the commit; readers wait
                        # here so that none begins after the commit and looks before the publication.
                        with self._publish_lock:
                            txn.commit()
                            self._dbs = wtxn._dbs
                    else:
                        txn.commit()
                except lmdb.MapFullError:
                    raise BackendQuotaExceeded() from None
            except BaseException:
                txn.abort()
                raise
            if self._capture is not None and wtxn.ops:
                self._capture.extend(wtxn.ops)

    def create_bucket(self, bucket: str) -> None:
        if self._read_only or bucket in self._dbs:
            return
        with self._write_lock, self._publish_lock:
            self._dbs = {**self._dbs, bucket: self._env.open_db(bucket.encode(), create=True)}

    # -- sizes ---------------------------------------------------------------------------------

    def size_bytes(self) -> int:
        with self._using_env():
            info = self._env.info()
            psize: int = self._env.stat()["psize"]
        return (int(info["last_pgno"]) + 1) * psize

    def size_in_use_bytes(self) -> int:
        with self.read_txn() as rtxn:
            txn = rtxn._txn
            main = self._env.stat()
            pages = 2 + main["branch_pages"] + main["leaf_pages"] + main["overflow_pages"]
            for db in rtxn._dbs.values():
                st = txn.stat(db)
                pages += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
            psize: int = main["psize"]
            return int(pages) * psize

    def sync(self) -> None:
        if not self._read_only:
            with self._using_env():
                self._env.sync(True)

    # -- defrag, snapshot, restore -------------------------------------------------------------

    def defrag(self) -> None:
        if self._read_only:
            raise PermissionError("defrag on a read-only LMDB backend")
        with self._defrag_lock:
            tmp = self._path.with_name(self._path.name + ".defrag")
            _remove_env_files(tmp)
            with self._write_lock:
                self._capture = []
            try:
                self._env.copy(str(tmp), compact=True)
                fresh = self._open(tmp)
                while True:
                    with self._write_lock:
                        batch, self._capture = self._capture, []
                    _replay(fresh, batch)
                    if len(batch) < _SMALL_TAIL:
                        break
                with self._write_lock:
                    _replay(fresh, self._capture or [])
                    self._capture = None
                    fresh.sync(True)
                    fresh.close()
                    self._switch_to(tmp)
            finally:
                self._capture = None
                _remove_env_files(tmp)

    def snapshot(self) -> Iterator[bytes]:
        with self.read_txn() as rtxn:
            names = sorted(rtxn._dbs)

            class _Source:
                def buckets(self) -> list[str]:
                    return names

                def pairs(self, bucket: str) -> Iterator[tuple[bytes, bytes]]:
                    return rtxn.range(bucket, b"", None)

            yield from snapshot.dump(_Source())

    def restore(self, chunks: Iterable[bytes]) -> None:
        if self._read_only:
            raise PermissionError("restore on a read-only LMDB backend")
        with self._defrag_lock:
            tmp = self._path.with_name(self._path.name + ".restore")
            _remove_env_files(tmp)
            try:
                fresh = self._open(tmp)
                try:
                    pending: list[tuple[str, bytes, bytes | None]] = []
                    for bucket, key, value in snapshot.load(chunks):
                        pending.append((bucket, key, value))
                        if len(pending) >= _REPLAY_BATCH:
                            _replay(fresh, pending)
                            pending = []
                    _replay(fresh, pending)
                    fresh.sync(True)
                finally:
                    fresh.close()
                with self._write_lock:
                    self._switch_to(tmp)
            finally:
                _remove_env_files(tmp)

    def _switch_to(self, tmp: Path) -> None:
        """Replace the environment by the one at ``tmp`` (write lock held)."""
        with self._cond:
            self._swapping = True
            while self._readers:
                self._cond.wait()
        try:
            self._env.close()
            with self._switch_lock(shared=False):
                os.replace(tmp, self._path)
                # A fresh lock file: the old one may still be held by other processes reading the
                # old file, and its shared state (reader table, last txn id) belongs to that file.
                _lock_path(self._path).unlink(missing_ok=True)
                self._env = self._open(self._path)
                self._inode = os.stat(self._path).st_ino
            self._load_handles()
        finally:
            with self._cond:
                self._swapping = False
                self._cond.notify_all()

    def _follow_swap(self) -> None:
        try:
            inode = os.stat(self._path).st_ino
        except FileNotFoundError:
            return
        if inode == self._inode:
            return
        with self._cond:
            # Another thread may be switching already: let it finish, then look again (two threads
            # closing and reopening the environment at once would close one another's handle).
            while self._swapping:
                self._cond.wait()
            if inode == self._inode:
                return
            self._swapping = True
            while self._readers:
                self._cond.wait()
        try:
            self._env.close()
            with self._switch_lock(shared=True):
                self._env = self._open(self._path)
                self._inode = os.stat(self._path).st_ino
            self._load_handles()
        finally:
            with self._cond:
                self._swapping = False
                self._cond.notify_all()

    def close(self) -> None:
        if not self._read_only:
            # A clean shutdown leaves nothing for WAL replay to redo, even after a power loss.
            self._env.sync(True)
        self._env.close()


def _replay(env: Any, ops: list[tuple[str, bytes, bytes | None]]) -> None:
    if not ops:
        return
    handles: dict[str, Any] = {}
    with env.begin(write=True) as txn:
        for bucket, key, value in ops:
            db = handles.get(bucket)
            if db is None:
                db = handles[bucket] = env.open_db(bucket.encode(), txn=txn, create=True)
            if value is None:
                txn.delete(key, db=db)
            else:
                txn.put(key, value, db=db)


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + "-lock")


def _remove_env_files(path: Path) -> None:
    for p in (path, _lock_path(path)):
        p.unlink(missing_ok=True)


def _conforms(path: str) -> Backend:
    # mypy checks here that LmdbBackend satisfies the port.
    return LmdbBackend(path)
