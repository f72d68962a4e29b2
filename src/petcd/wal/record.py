"""Framing of WAL records and the decoder that walks a segment.

A frame is an 8-byte little-endian length word followed by the encoded `walpb.Record` and zero
padding to the next multiple of 8. When there is padding, the top byte of the length word is
`0x80 | pad`; the low 56 bits are the record's length. Because every frame starts at a multiple
of 8, the length word never straddles a 512-byte sector, so a crash can tear a record's body but
never its length.

Every record except the CRC record carries the running CRC-32C (Castagnoli, as etcd) of the
`data` of all records before it and its own, across segments: a segment begins with a CRC
record holding the running value where the previous segment ended, which the decoder checks and
then continues from.

Decoding one segment ends in one of three ways:

* `END`: the bytes ran out exactly at a frame boundary, or a zero length word was found - the
  preallocated, never-written rest of the segment.
* `TORN`: the last frame is incomplete (the file ends inside it) or fails to decode or to match
  its CRC while one of its 512-byte sectors is all zeros: a write the crash cut short. Only the
  tail of the last segment may be torn; everything before it was fsynced.
* otherwise `CorruptWalError`, naming the file and offset: a frame that is complete, has no
  zeroed sector, and still fails - bit rot or a foreign write, which must stop the member.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from crc32c import crc32c

from petcd.codec.errors import DecodeError
from petcd.codec.wal import RecordType, WalRecord, decode_record, encode_record
from petcd.wal.errors import CorruptWalError

FRAME_HEADER_BYTES = 8
MIN_SECTOR_BYTES = 512
# etcd refuses records this large: raft messages are limited far below it, so such a length is
# damage, not data.
MAX_RECORD_BYTES = 10 * 1024 * 1024

_LENGTH = struct.Struct("<Q")
_LENGTH_MASK = (1 << 56) - 1
_PADDING = (b"", b"\0", b"\0\0", b"\0\0\0", b"\0" * 4, b"\0" * 5, b"\0" * 6, b"\0" * 7)


def crc_update(crc: int, data: bytes) -> int:
    return crc32c(data, crc)


def encode_frame(record: WalRecord) -> bytes:
    body = encode_record(record)
    pad = -len(body) % 8
    length = len(body) | ((0x80 | pad) << 56) if pad else len(body)
    return _LENGTH.pack(length) + body + _PADDING[pad]


def decode_length(word: int) -> tuple[int, int]:
    """(record bytes, padding bytes) of a frame's length word."""
    pad = (word >> 56) & 0x7 if word >> 63 else 0
    return word & _LENGTH_MASK, pad


def _all_zero(buf: bytes, start: int, end: int) -> bool:
    return buf.count(0, start, end) == end - start


class Stop(enum.Enum):
    END = "end"
    TORN = "torn"


@dataclass(slots=True)
class SegmentDecoder:
    """Decodes the frames of one segment, continuing the running CRC of the ones before it.

    After iteration, `offset` is the end of the last valid frame (where appends continue),
    `stop` says how the segment ended and `crc` is the running CRC after the last valid record.
    """

    path: str
    buf: bytes
    crc: int
    # Only the last segment may end in a torn frame; in earlier ones that is corruption.
    is_last: bool
    offset: int = 0
    # Where the record last yielded starts (for error messages).
    record_offset: int = 0
    stop: Stop = Stop.END

    def records(self) -> Iterator[WalRecord]:
        buf = self.buf
        size = len(buf)
        while True:
            off = self.offset
            if off + FRAME_HEADER_BYTES > size:
                if off == size:
                    self.stop = Stop.END
                    return
                self._torn(off, "file ends inside a length word")
                return
            (word,) = _LENGTH.unpack_from(buf, off)
            if word == 0:
                if not self.is_last and not _all_zero(buf, off, size):
                    raise CorruptWalError(self.path, off, "zero length word before the end of the segment")
                self.stop = Stop.END
                return
            rec_bytes, pad = decode_length(word)
            if rec_bytes >= MAX_RECORD_BYTES - pad:
                raise CorruptWalError(self.path, off, f"record length {rec_bytes} over the limit")
            start = off + FRAME_HEADER_BYTES
            end = start + rec_bytes + pad
            if end > size:
                self._torn(off, "file ends inside a record")
                return
            try:
                rec = decode_record(buf[start : start + rec_bytes])
            except DecodeError as e:
                if self._is_torn(start, end):
                    self._torn(off, str(e))
                    return
                raise CorruptWalError(self.path, off, str(e)) from None
            if rec.type == RecordType.CRC:
                # A segment's CRC record restates the running CRC so far; 0 means "start here".
                if self.crc not in (0, rec.crc):
                    raise CorruptWalError(
                        self.path, off, f"crc record {rec.crc:#010x} != running crc {self.crc:#010x}"
                    )
                new_crc = rec.crc
            else:
                new_crc = crc32c(rec.data, self.crc)
                if new_crc != rec.crc:
                    if self._is_torn(start, end):
                        self._torn(off, "crc mismatch in a partly zero record")
                        return
                    raise CorruptWalError(
                        self.path,
                        off,
                        f"crc mismatch: record says {rec.crc:#010x}, data gives {new_crc:#010x}",
                    )
            self.crc = new_crc
            self.record_offset = off
            self.offset = end
            yield rec

    def _torn(self, off: int, reason: str) -> None:
        if not self.is_last:
            raise CorruptWalError(
                self.path, off, f"incomplete record in a segment that is not the last: {reason}"
            )
        self.stop = Stop.TORN

    def _is_torn(self, start: int, end: int) -> bool:
        """Whether some sector-aligned piece of the frame body is all zeros (a write cut short)."""
        if not self.is_last:
            return False
        pos = start
        while pos < end:
            chunk_end = min(end, (pos // MIN_SECTOR_BYTES + 1) * MIN_SECTOR_BYTES)
            if _all_zero(self.buf, pos, chunk_end):
                return True
            pos = chunk_end
        return False
