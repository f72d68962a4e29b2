"""The backend snapshot stream: alignment to 512 bytes (etcdctl's checksum rule), round trips, damage."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petcd.backend import snapshot
from petcd.backend.lmdb import LmdbBackend, db_path
from petcd.backend.memory import MemoryBackend
from petcd.backend.snapshot import ALIGN_BYTES, MAGIC, SnapshotCorrupt, dump, load

Contents = dict[str, dict[bytes, bytes]]


class _Source:
    def __init__(self, contents: Contents) -> None:
        self.contents = contents

    def buckets(self) -> list[str]:
        return sorted(self.contents)

    def pairs(self, bucket: str) -> Iterator[tuple[bytes, bytes]]:
        return iter(sorted(self.contents[bucket].items()))


def _triples(contents: Contents) -> list[tuple[str, bytes, bytes]]:
    return [(b, k, v) for b in sorted(contents) for k, v in sorted(contents[b].items())]


contents_strategy = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.dictionaries(st.binary(min_size=1, max_size=40), st.binary(max_size=700), max_size=12),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(contents_strategy)
def test_every_stream_is_whole_512_byte_blocks_and_round_trips(contents: Contents) -> None:
    stream = b"".join(dump(_Source(contents)))
    assert len(stream) % ALIGN_BYTES == 0
    # the reference etcdctl's test for "a sha256 trailer follows": holds once the server appends one
    assert (len(stream) + 32 - 32) % 512 == 0
    assert list(load([stream])) == _triples(contents)


@pytest.mark.parametrize("body", range(0, 1100, 37))
def test_alignment_whatever_the_body_length(body: int) -> None:
    # one value whose length walks through every residue class of the padding arithmetic
    contents = {"b": {b"k": b"x" * body}}
    stream = b"".join(dump(_Source(contents)))
    assert len(stream) % ALIGN_BYTES == 0
    assert list(load([stream])) == _triples(contents)


def test_chunked_stream_stays_aligned(monkeypatch: pytest.MonkeyPatch) -> None:
    # several chunks (the padding must count the bytes already yielded, not just the last chunk)
    monkeypatch.setattr(snapshot, "CHUNK_BYTES", 1000)
    contents = {"a": {b"k%04d" % i: b"v" * (i % 97) for i in range(300)}, "z": {b"one": b"1"}}
    chunks = list(dump(_Source(contents)))
    assert len(chunks) > 5
    stream = b"".join(chunks)
    assert len(stream) % ALIGN_BYTES == 0
    # load takes any chunking of the same bytes
    pieces = [stream[i : i + 333] for i in range(0, len(stream), 333)]
    assert list(load(pieces)) == _triples(contents)


def test_empty_store_is_one_block() -> None:
    stream = b"".join(dump(_Source({})))
    assert len(stream) == ALIGN_BYTES
    assert list(load([stream])) == []


def test_padding_is_covered_by_the_hash() -> None:
    stream = bytearray(b"".join(dump(_Source({"b": {b"k": b"v"}}))))
    # the last padding byte sits just before END and the hash
    pad_at = len(stream) - 32 - 2
    assert stream[pad_at + 1] == 0  # END
    assert stream[pad_at] == 0xFF
    stream[pad_at] = 0
    with pytest.raises(SnapshotCorrupt):
        list(load([bytes(stream)]))


def test_a_stream_without_padding_still_loads() -> None:
    bucket = struct.pack(">BH", 1, 1) + b"b"
    pair = struct.pack(">BI", 2, 1) + b"k" + struct.pack(">I", 1) + b"v"
    body = MAGIC + bucket + pair + b"\x00"
    stream = body + hashlib.sha256(body).digest()
    assert list(load([stream])) == [("b", b"k", b"v")]


@pytest.mark.parametrize("kind", ["lmdb", "memory"])
def test_both_backends_produce_aligned_streams(kind: str, tmp_path: Path) -> None:
    b = LmdbBackend(db_path(tmp_path / "db")) if kind == "lmdb" else MemoryBackend()
    try:
        with b.write_txn() as t:
            for i in range(500):
                t.put("x", b"key%d" % i, b"." * (i % 13))
        stream = b"".join(b.snapshot())
        assert len(stream) % ALIGN_BYTES == 0
        other = MemoryBackend()
        other.restore([stream])
        with other.read_txn() as t:
            assert t.count("x") == 500
    finally:
        b.close()
