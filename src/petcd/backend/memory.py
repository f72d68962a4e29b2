"""MemoryBackend: the Backend port in pure Python, for the simulator and tests.

Each bucket is a sorted ``list`` of keys beside a ``dict`` of values. Committed buckets are never
mutated: a write transaction copies a bucket the first time it writes to it and works on the copy, and
the commit swaps the copies in (a new top-level dict, so a read transaction that captured the old one
keeps its snapshot for as long as it lives). Aborting is dropping the copies. The copy costs O(size of
the bucket) per write transaction, which is nothing at simulator sizes; the LMDB backend is the one
that has to be fast.

Sizes: ``size_in_use_bytes`` counts keys and values plus a fixed per-pair overhead; ``size_bytes`` is
its high-water mark (like a file that only grows), which ``defrag`` brings back down. A commit whose
in-use size would exceed ``hard_limit_bytes(quota)`` raises ``BackendQuotaExceeded`` and writes nothing.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from petcd.backend import MAX_KEY_BYTES, Backend, hard_limit_bytes, snapshot
from petcd.errors import BackendQuotaExceeded

DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024
PAIR_OVERHEAD_BYTES = 16


class _Bucket:
    __slots__ = ("data", "keys", "used")

    def __init__(self, keys: list[bytes] | None = None, data: dict[bytes, bytes] | None = None) -> None:
        # Invariant: keys == sorted(data)
        self.keys: list[bytes] = keys if keys is not None else []
        self.data: dict[bytes, bytes] = data if data is not None else {}
        self.used = sum(len(k) + len(v) + PAIR_OVERHEAD_BYTES for k, v in self.data.items())

    def copy(self) -> _Bucket:
        twin = _Bucket.__new__(_Bucket)
        twin.keys = list(self.keys)
        twin.data = dict(self.data)
        twin.used = self.used
        return twin


_EMPTY = _Bucket()


class _MemoryReadTxn:
    def __init__(self, buckets: dict[str, _Bucket]) -> None:
        self._buckets = buckets

    def _bucket(self, name: str) -> _Bucket:
        return self._buckets.get(name, _EMPTY)

    def get(self, bucket: str, key: bytes) -> bytes | None:
        return self._bucket(bucket).data.get(key)

    def range(
        self, bucket: str, start: bytes, end: bytes | None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        b = self._bucket(bucket)
        lo = bisect.bisect_left(b.keys, start)
        hi = len(b.keys) if end is None else bisect.bisect_left(b.keys, end)
        # Slice first: the iterator must not see writes made after it was created.
        keys = b.keys[lo:hi]
        data = b.data
        if reverse:
            keys.reverse()
        return ((k, data[k]) for k in keys)

    def keys(self, bucket: str, start: bytes, end: bytes | None) -> Iterator[bytes]:
        b = self._bucket(bucket)
        lo = bisect.bisect_left(b.keys, start)
        hi = len(b.keys) if end is None else bisect.bisect_left(b.keys, end)
        return iter(b.keys[lo:hi])

    def seek(self, bucket: str, key: bytes) -> tuple[bytes, bytes] | None:
        b = self._bucket(bucket)
        i = bisect.bisect_left(b.keys, key)
        if i == len(b.keys):
            return None
        k = b.keys[i]
        return k, b.data[k]

    def seek_before(self, bucket: str, key: bytes) -> tuple[bytes, bytes] | None:
        b = self._bucket(bucket)
        i = bisect.bisect_left(b.keys, key)
        if i == 0:
            return None
        k = b.keys[i - 1]
        return k, b.data[k]

    def count(self, bucket: str) -> int:
        return len(self._bucket(bucket).keys)

    def bucket_names(self) -> list[str]:
        return sorted(self._buckets)


class _MemoryWriteTxn(_MemoryReadTxn):
    def __init__(self, buckets: dict[str, _Bucket]) -> None:
        super().__init__(dict(buckets))
        self._copied: set[str] = set()
        self.ops: list[tuple[str, bytes, bytes | None]] = []

    def _writable(self, name: str) -> _Bucket:
        if name not in self._copied:
            current = self._buckets.get(name)
            self._buckets[name] = current.copy() if current is not None else _Bucket()
            self._copied.add(name)
        return self._buckets[name]

    def put(self, bucket: str, key: bytes, value: bytes) -> None:
        if not 0 < len(key) <= MAX_KEY_BYTES:
            raise ValueError(f"backend key of {len(key)} bytes (must be 1..{MAX_KEY_BYTES})")
        b = self._writable(bucket)
        old = b.data.get(key)
        if old is None:
            bisect.insort(b.keys, key)
            b.used += len(key) + len(value) + PAIR_OVERHEAD_BYTES
        else:
            b.used += len(value) - len(old)
        b.data[key] = bytes(value)

    def delete(self, bucket: str, key: bytes) -> bool:
        if key not in self._bucket(bucket).data:
            return False
        b = self._writable(bucket)
        old = b.data.pop(key)
        del b.keys[bisect.bisect_left(b.keys, key)]
        b.used -= len(key) + len(old) + PAIR_OVERHEAD_BYTES
        return True

    def create(self, bucket: str) -> None:
        self._writable(bucket)

    def result(self) -> dict[str, _Bucket]:
        return self._buckets


class MemoryBackend:
    """The Backend port in memory (see the module docstring)."""

    def __init__(self, quota_bytes: int = DEFAULT_QUOTA_BYTES) -> None:
        self._quota_bytes = quota_bytes
        self._buckets: dict[str, _Bucket] = {}
        self._write_lock = threading.Lock()
        self._size_bytes = 0

    @property
    def quota_bytes(self) -> int:
        return self._quota_bytes

    @property
    def read_only(self) -> bool:
        return False

    @contextmanager
    def read_txn(self) -> Iterator[_MemoryReadTxn]:
        yield _MemoryReadTxn(self._buckets)

    @contextmanager
    def write_txn(self) -> Iterator[_MemoryWriteTxn]:
        with self._write_lock:
            txn = _MemoryWriteTxn(self._buckets)
            yield txn
            buckets = txn.result()
            used = sum(b.used for b in buckets.values())
            if used > hard_limit_bytes(self._quota_bytes):
                raise BackendQuotaExceeded()
            self._buckets = buckets
            self._size_bytes = max(self._size_bytes, used)

    def create_bucket(self, bucket: str) -> None:
        if bucket not in self._buckets:
            with self.write_txn() as txn:
                txn.create(bucket)

    def size_bytes(self) -> int:
        return self._size_bytes

    def size_in_use_bytes(self) -> int:
        return sum(b.used for b in self._buckets.values())

    def sync(self) -> None:
        pass

    def defrag(self) -> None:
        # Nothing to copy: committed buckets are immutable, so "compacting" is forgetting the high-water mark.
        self._size_bytes = self.size_in_use_bytes()

    def snapshot(self) -> Iterator[bytes]:
        txn = _MemoryReadTxn(self._buckets)

        class _Source:
            def buckets(self) -> list[str]:
                return txn.bucket_names()

            def pairs(self, bucket: str) -> Iterator[tuple[bytes, bytes]]:
                return txn.range(bucket, b"", None)

        return snapshot.dump(_Source())

    def restore(self, chunks: Iterable[bytes]) -> None:
        fresh: dict[str, _Bucket] = {}
        for bucket, key, value in snapshot.load(chunks):
            b = fresh.setdefault(bucket, _Bucket())
            b.data[key] = value
        for name, b in list(fresh.items()):
            fresh[name] = _Bucket(sorted(b.data), b.data)
        with self._write_lock:
            self._buckets = fresh
            self._size_bytes = self.size_in_use_bytes()

    def close(self) -> None:
        pass


def _conforms() -> Backend:
    # mypy checks here that MemoryBackend satisfies the port.
    return MemoryBackend()
