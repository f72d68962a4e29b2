"""The Backend port: a transactional, ordered key-value store with named buckets.

Everything petcd keeps across restarts besides the WAL and raft snapshots lives behind this port: the
MVCC key space (``petcd.mvcc``), leases, auth, membership and the ``meta`` bucket. Two implementations:

* ``LmdbBackend`` (``petcd.backend.lmdb``): an LMDB environment at ``<data-dir>/member/snap/db``.
* ``MemoryBackend`` (``petcd.backend.memory``): pure Python, sorted keys, for the simulator and tests.

Model
-----
A backend holds *buckets* (LMDB named databases), each an ordered map ``bytes -> bytes`` sorted by
unsigned lexicographic byte order (``memcmp``, shorter first on a common prefix). Bucket names are
``str``. A bucket exists once a write transaction has put into it (or ``create_bucket`` was called);
reading a bucket that does not exist behaves as reading an empty one.

Keys are at most ``MAX_KEY_BYTES`` (511, LMDB's limit) and never empty; values may be any size up to
the quota. Callers that need longer keys (the MVCC store) encode them (see ``petcd.mvcc.keys``).

Transactions
------------
* ``read_txn()`` is a context manager giving a ``ReadTxn``: a consistent snapshot of every bucket as of
  the last commit before it began; later commits are invisible to it. Any number of read transactions
  may be open at once, in any thread (LMDB: and in other processes, see ``LmdbBackend.open_read_only``).
  A read transaction never blocks and is never blocked by a writer.
* ``write_txn()`` is a context manager giving a ``WriteTxn`` (a ``ReadTxn`` that also writes). One writer
  at a time (a second caller waits). Its reads see its own writes. Leaving the block normally commits
  atomically (all or nothing, visible to transactions begun afterwards); leaving by an exception aborts
  and nothing is written. A commit is atomic and crash-consistent but, by default, *not* fsynced: see
  "Durability" below.
* Objects handed out by a transaction (values, iterators) are valid only while it is open; values are
  returned as ``bytes`` (copies), so they may be kept.

Iteration: ``txn.range(bucket, start, end, reverse=False)`` yields ``(key, value)`` for keys in
``[start, end)`` (``end=None``: to the last key), ascending, or descending when ``reverse`` is true.
``txn.keys(bucket, start, end)`` is the same walk, ascending, without the values (for counting).
``txn.seek(bucket, key)`` gives the first pair with a key ``>= key`` and ``txn.seek_before(bucket, key)``
the last pair with a key ``< key`` (``None`` if there is none): the cursor moves the key index is built on.
A write transaction may write while it iterates only after it stops iterating (iterators are lazy).

Durability
----------
DESIGN.md's contract: an acknowledged write is in the fsynced WAL, and the server stores
``consistent_index`` (the raft index applied) and the term in the ``meta`` bucket in the same write
transaction as the applied batch (``put_consistent_index``). Replaying WAL entries above
``consistent_index`` is therefore idempotent, so commits need no fsync. What a crash may lose is a suffix
of commits, never a part of one, and never a commit followed by a later one. ``sync()`` forces everything
committed so far to disk; call it before a raft snapshot lets WAL segments go.

Size, quota, defragmentation, snapshots
--------------------------------------
* ``size_bytes()`` is the space the store takes (``DbSize``); ``size_in_use_bytes()`` the part holding
  live pages (``DbSizeInUse``). ``quota_bytes`` is the configured quota, which the MVCC store enforces
  before writing (as etcd does: size + cost > quota raises the NOSPACE alarm). The backend's own hard
  limit is ``hard_limit_bytes(quota)``, a little above it so that deletes and compaction still run at
  the quota; a commit that would pass the hard limit raises ``petcd.errors.BackendQuotaExceeded`` and
  writes nothing.
* ``defrag()`` rewrites the store compactly. Reads and writes go on while it copies (see the
  implementations for how); it returns when the compact copy has replaced the store.
* ``snapshot()`` yields the whole store, as of one read transaction, as a byte stream in the format of
  ``petcd.backend.snapshot`` (buckets, keys and values, then a SHA-256 of everything before it);
  ``restore(chunks)`` replaces the store's contents with a stream's (after checking the hash). The
  format is the same for both implementations.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

MAX_KEY_BYTES = 511

META_BUCKET = "meta"
CONSISTENT_INDEX_KEY = b"consistent_index"
TERM_KEY = b"term"

_U64 = struct.Struct(">Q")


class ReadTxn(Protocol):
    """A consistent read-only view of the backend (see the module docstring)."""

    def get(self, bucket: str, key: bytes) -> bytes | None:
        """The value at ``key``, or ``None``."""
        ...

    def range(
        self, bucket: str, start: bytes, end: bytes | None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with ``start <= key < end`` (``end=None``: unbounded), ascending or descending."""
        ...

    def keys(self, bucket: str, start: bytes, end: bytes | None) -> Iterator[bytes]:
        """The keys of ``range(bucket, start, end)`` (ascending) without their values: cheaper."""
        ...

    def seek(self, bucket: str, key: bytes) -> tuple[bytes, bytes] | None:
        """The first pair whose key is ``>= key``."""
        ...

    def seek_before(self, bucket: str, key: bytes) -> tuple[bytes, bytes] | None:
        """The last pair whose key is ``< key``."""
        ...

    def count(self, bucket: str) -> int:
        """The number of keys in the bucket."""
        ...


class WriteTxn(ReadTxn, Protocol):
    """A read transaction that writes; committed on a normal exit of its ``with`` block."""

    def put(self, bucket: str, key: bytes, value: bytes) -> None:
        """Store ``value`` at ``key`` (1..511 bytes), creating the bucket if needed."""
        ...

    def delete(self, bucket: str, key: bytes) -> bool:
        """Remove ``key``; whether it was there."""
        ...


class Backend(Protocol):
    """The storage port (see the module docstring for the full contract)."""

    @property
    def quota_bytes(self) -> int: ...

    @property
    def read_only(self) -> bool: ...

    def read_txn(self) -> AbstractContextManager[ReadTxn]: ...

    def write_txn(self) -> AbstractContextManager[WriteTxn]: ...

    def create_bucket(self, bucket: str) -> None:
        """Make ``bucket`` exist (idempotent). Not allowed inside a transaction of this thread."""
        ...

    def size_bytes(self) -> int: ...

    def size_in_use_bytes(self) -> int: ...

    def sync(self) -> None:
        """Force every committed transaction to stable storage."""
        ...

    def defrag(self) -> None:
        """Compact the store without stopping readers or writers for the copy."""
        ...

    def snapshot(self) -> Iterator[bytes]:
        """The whole store as of one read transaction, as a byte stream."""
        ...

    def restore(self, chunks: Iterable[bytes]) -> None:
        """Replace the whole contents with a ``snapshot()`` stream's."""
        ...

    def close(self) -> None: ...


def hard_limit_bytes(quota_bytes: int) -> int:
    """The most a backend may hold: the quota plus room (an eighth, at least 64 MiB) for deletes."""
    return quota_bytes + max(quota_bytes // 8, 64 * 1024 * 1024)


def put_consistent_index(txn: WriteTxn, index: int, term: int) -> None:
    """Record the raft index (and its term) whose effects this transaction completes."""
    txn.put(META_BUCKET, CONSISTENT_INDEX_KEY, _U64.pack(index))
    txn.put(META_BUCKET, TERM_KEY, _U64.pack(term))


def read_consistent_index(txn: ReadTxn) -> tuple[int, int]:
    """``(consistent_index, term)``, ``(0, 0)`` for a fresh backend."""
    index = txn.get(META_BUCKET, CONSISTENT_INDEX_KEY)
    term = txn.get(META_BUCKET, TERM_KEY)
    return (
        _U64.unpack(index)[0] if index is not None else 0,
        _U64.unpack(term)[0] if term is not None else 0,
    )


__all__ = [
    "CONSISTENT_INDEX_KEY",
    "MAX_KEY_BYTES",
    "META_BUCKET",
    "TERM_KEY",
    "Backend",
    "ReadTxn",
    "WriteTxn",
    "hard_limit_bytes",
    "put_consistent_index",
    "read_consistent_index",
]
