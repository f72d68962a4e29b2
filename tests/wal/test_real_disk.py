"""The WAL on OsFileSystem: real preallocation, a torn tail written into a real file, bit rot
in a real file, and a full round trip through segment cuts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from petcd.codec.wal import WalSnapshot
from petcd.fs.os_fs import OsFileSystem
from petcd.raft.types import Entry, HardState
from petcd.wal import CorruptWalError, Wal

SEG = 64 * 1024


def ents(first: int, last: int, size: int = 100) -> list[Entry]:
    return [Entry(term=1, index=i, data=bytes([i % 250 + 1]) * size) for i in range(first, last + 1)]


def segments(d: Path) -> list[Path]:
    return sorted(d.glob("*.wal"))


def test_round_trip_with_cuts_and_preallocation(tmp_path: Path) -> None:
    d = tmp_path / "member" / "wal"
    w = Wal.create(OsFileSystem(), str(d), b"m", segment_bytes=SEG)
    for i in range(1, 1201, 100):
        w.save(HardState(term=1, vote=1, commit=i - 1), ents(i, i + 99))
    w.close()
    segs = segments(d)
    assert len(segs) > 1
    assert segs[-1].stat().st_size == SEG  # the tail is preallocated
    assert all(s.stat().st_size < SEG + 20 * 1024 for s in segs[:-1])
    assert not list(d.glob("*.tmp"))
    w2 = Wal.open(OsFileSystem(), str(d), WalSnapshot(), segment_bytes=SEG)
    _, hs, got = w2.read_all()
    assert got == ents(1, 1200) and hs.commit == 1100
    w2.close()


def test_torn_tail_in_a_real_file_is_repaired(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = Wal.create(OsFileSystem(), str(d), b"m", segment_bytes=SEG)
    w.save(HardState(term=1, vote=1), ents(1, 10))
    end = w._offset
    w.save(HardState(term=1, vote=1), [Entry(term=1, index=11, data=b"\x77" * 3000)])
    w.close()
    tail = segments(d)[-1]
    # The crash kept the first sector of the big record and lost the next one.
    lost = (end // 512 + 1) * 512
    with tail.open("r+b") as f:
        f.seek(lost)
        f.write(bytes(512))
    w2 = Wal.open(OsFileSystem(), str(d), WalSnapshot(), segment_bytes=SEG)
    _, _, got = w2.read_all()
    assert got == ents(1, 10)
    assert w2.repaired == (str(tail), end)
    assert tail.read_bytes()[end:] == bytes(SEG - end)
    w2.save(HardState(term=1, vote=1), ents(11, 12))
    w2.close()
    w3 = Wal.open(OsFileSystem(), str(d), WalSnapshot(), segment_bytes=SEG)
    assert w3.read_all().entries == ents(1, 12)
    w3.close()


def test_bit_rot_in_a_real_file_refuses_to_start(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = Wal.create(OsFileSystem(), str(d), b"m", segment_bytes=SEG)
    offsets = []
    for i in range(1, 21):
        offsets.append(w._offset)
        w.save(HardState(term=1, vote=1), ents(i, i))
    w.close()
    tail = segments(d)[-1]
    target = offsets[7]
    fd = os.open(tail, os.O_RDWR)
    try:
        byte = os.pread(fd, 1, target + 40)
        os.pwrite(fd, bytes([byte[0] ^ 0x10]), target + 40)
    finally:
        os.close(fd)
    with pytest.raises(CorruptWalError) as err:
        Wal.open(OsFileSystem(), str(d), WalSnapshot(), segment_bytes=SEG).read_all()
    assert err.value.path == str(tail) and err.value.offset == target
    assert f"{tail}: corrupt record at offset {target}: crc mismatch" in str(err.value)
    # Refusing does not touch the file: the operator can still inspect or repair it.
    assert tail.stat().st_size == SEG
