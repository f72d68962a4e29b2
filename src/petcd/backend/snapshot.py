"""The backend snapshot stream: every bucket, key and value of one read transaction, hash-sealed.

Both backends write and read the same format, so a snapshot taken from an ``LmdbBackend`` can be
installed in a ``MemoryBackend`` and back (the simulator and the real server send each other nothing,
but tests, ``etcdutl`` and new members all read one format)::

    stream  = MAGIC record* END sha256
    MAGIC   = b"PETCDSNP" u32(version=1)
    record  = 0x01 u16(len) bucket-name          -- the following pairs belong to this bucket
            | 0x02 u32(len) key u32(len) value
            | 0x03 u16(len) len filler bytes       -- padding (0xff), skipped by readers
    END     = 0x00
    sha256  = 32 bytes: SHA-256 of every byte before it

A stream's length is always a multiple of ``ALIGN_BYTES`` (512): ``dump`` writes one padding record
just before END, sized so that END and the hash finish on the boundary. The reason is etcd's
tooling: a snapshot goes to clients followed by a 32-byte SHA-256 trailer, and ``etcdctl snapshot
save`` / ``snapshot restore`` decide whether that trailer is there by checking that
``(size - 32) % 512 == 0`` (a bbolt file is whole pages), refusing the file otherwise. The padding
is covered by the stream's own hash like every other byte. Streams without a padding record (older
ones) load just the same.

``dump`` produces it lazily, in chunks of about ``CHUNK_BYTES``; ``load`` parses chunks lazily and
raises ``SnapshotCorrupt`` on a bad magic, a truncated stream or a hash mismatch. The hash is checked
only at the end, so a restore must build the new contents aside and switch to them only once ``load``
has finished without error.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from typing import Protocol

MAGIC = b"PETCDSNP" + struct.pack(">I", 1)
CHUNK_BYTES = 1 << 20
ALIGN_BYTES = 512

_BUCKET = 1
_PAIR = 2
_PAD = 3
_END = 0
# the padding record's head, END and the hash: what follows the body besides the padding itself
_TAIL_BYTES = 3 + 1 + 32


class SnapshotCorrupt(Exception):
    """The stream is not a whole, intact backend snapshot."""


class _Source(Protocol):
    def buckets(self) -> list[str]: ...

    def pairs(self, bucket: str) -> Iterator[tuple[bytes, bytes]]: ...


def dump(source: _Source) -> Iterator[bytes]:
    """The stream of ``source`` (all of whose reads must come from one read transaction)."""
    digest = hashlib.sha256()
    out = bytearray(MAGIC)
    written = 0  # bytes already yielded
    for name in source.buckets():
        raw = name.encode()
        out += struct.pack(">BH", _BUCKET, len(raw)) + raw
        for key, value in source.pairs(name):
            out += struct.pack(">BI", _PAIR, len(key))
            out += key
            out += struct.pack(">I", len(value))
            out += value
            if len(out) >= CHUNK_BYTES:
                chunk = bytes(out)
                digest.update(chunk)
                written += len(chunk)
                yield chunk
                out.clear()
    pad = -(written + len(out) + _TAIL_BYTES) % ALIGN_BYTES
    out += struct.pack(">BH", _PAD, pad)
    out += b"\xff" * pad
    out.append(_END)
    digest.update(out)
    yield bytes(out) + digest.digest()


class _Reader:
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = bytearray()
        self._pos = 0
        self.digest = hashlib.sha256()

    def take(self, n: int, hashed: bool = True) -> bytes:
        while len(self._buf) - self._pos < n:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                raise SnapshotCorrupt("snapshot stream is truncated") from None
            del self._buf[: self._pos]
            self._pos = 0
            self._buf += chunk
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        if hashed:
            self.digest.update(out)
        return out

    def at_end(self) -> bool:
        if len(self._buf) > self._pos:
            return False
        return all(not chunk for chunk in self._chunks)


def load(chunks: Iterable[bytes]) -> Iterator[tuple[str, bytes, bytes]]:
    """``(bucket, key, value)`` triples of a stream; raises ``SnapshotCorrupt`` (possibly at the end)."""
    reader = _Reader(chunks)
    if reader.take(len(MAGIC)) != MAGIC:
        raise SnapshotCorrupt("not a petcd backend snapshot")
    bucket: str | None = None
    while True:
        kind = reader.take(1)[0]
        if kind == _END:
            break
        if kind == _BUCKET:
            (length,) = struct.unpack(">H", reader.take(2))
            bucket = reader.take(length).decode()
        elif kind == _PAIR and bucket is not None:
            (klen,) = struct.unpack(">I", reader.take(4))
            key = reader.take(klen)
            (vlen,) = struct.unpack(">I", reader.take(4))
            yield bucket, key, reader.take(vlen)
        elif kind == _PAD:
            (length,) = struct.unpack(">H", reader.take(2))
            reader.take(length)
        else:
            raise SnapshotCorrupt(f"bad record type {kind}")
    expected = reader.digest.digest()
    if reader.take(32, hashed=False) != expected:
        raise SnapshotCorrupt("snapshot hash mismatch")
    if not reader.at_end():
        raise SnapshotCorrupt("trailing bytes after the snapshot")
