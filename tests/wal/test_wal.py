"""The WAL's behaviour on the simulated disk: layout, replay, group commit, cuts, repair,
corruption, release and purge."""

from __future__ import annotations

import random

import pytest

from petcd.codec.wal import RecordType, WalRecord, WalSnapshot, decode_record
from petcd.fs.sim import SimFileSystem
from petcd.raft.types import ConfState, Entry, EntryType, HardState
from petcd.wal import (
    CorruptWalError,
    MetadataConflictError,
    SliceOutOfRangeError,
    SnapshotMismatchError,
    SnapshotNotFoundError,
    Wal,
    WalError,
    WalExistsError,
    WalNotFoundError,
    exists,
    valid_snapshot_entries,
)
from petcd.wal.record import decode_length, encode_frame
from petcd.wal.wal import parse_wal_name, wal_name

DIR = "/d/member/wal"
META = b"metadata"
SEG = 1 << 16


def ents(first: int, last: int, term: int = 1, size: int = 20) -> list[Entry]:
    return [Entry(term=term, index=i, data=bytes([i % 256]) * size) for i in range(first, last + 1)]


Reopened = tuple[Wal, bytes, HardState, list[Entry]]


def reopen(fs: SimFileSystem, snap: WalSnapshot | None = None, **kw: int) -> Reopened:
    w = Wal.open(fs, DIR, snap, **kw)  # type: ignore[arg-type]
    md, hs, es = w.read_all()
    return w, md, hs, es


def segment_files(fs: SimFileSystem) -> list[str]:
    return [n for n in fs.list_dir(DIR) if n.endswith(".wal")]


def test_names() -> None:
    assert wal_name(1, 0x2A) == "0000000000000001-000000000000002a.wal"
    assert parse_wal_name("0000000000000001-000000000000002a.wal") == (1, 0x2A)
    assert parse_wal_name("0000000000000001-000000000000002a.wal.tmp") is None
    assert parse_wal_name("1-2.wal") is None


def test_frame_is_eight_byte_aligned_with_padding_flag() -> None:
    for n in range(0, 20):
        frame = encode_frame(WalRecord(RecordType.ENTRY, crc=7, data=b"x" * n))
        assert len(frame) % 8 == 0
        word = int.from_bytes(frame[:8], "little")
        body, pad = decode_length(word)
        assert 8 + body + pad == len(frame)
        assert (word >> 63 == 1) == (pad != 0)
        assert decode_record(frame[8 : 8 + body]) == WalRecord(RecordType.ENTRY, 7, b"x" * n)


def test_create_then_read_back() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=SEG)
    assert segment_files(fs) == ["0000000000000000-0000000000000000.wal"]
    w.save(HardState(term=1, vote=2, commit=3), ents(1, 5))
    w.close()
    _, md, hs, es = reopen(fs)
    assert md == META
    assert hs == HardState(term=1, vote=2, commit=3)
    assert es == ents(1, 5)


def test_create_refuses_an_existing_wal() -> None:
    fs = SimFileSystem()
    Wal.create(fs, DIR, META, segment_bytes=SEG).close()
    assert exists(fs, DIR)
    with pytest.raises(WalExistsError):
        Wal.create(fs, DIR, META, segment_bytes=SEG)


def test_open_without_wal() -> None:
    fs = SimFileSystem()
    with pytest.raises(WalNotFoundError):
        Wal.open(fs, DIR)


def test_segment_is_preallocated_and_the_tail_is_zero() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=1 << 16)
    w.save(HardState(term=1), ents(1, 3))
    data = fs.read_file(f"{DIR}/{segment_files(fs)[0]}")
    assert len(data) == 1 << 16
    assert data.rstrip(b"\0") and data[-100:] == bytes(100)


def test_first_segment_head_is_crc_metadata_snapshot() -> None:
    fs = SimFileSystem()
    Wal.create(fs, DIR, META, segment_bytes=SEG).close()
    data = fs.read_file(f"{DIR}/{segment_files(fs)[0]}")
    types = []
    off = 0
    while (word := int.from_bytes(data[off : off + 8], "little")) != 0:
        body, pad = decode_length(word)
        types.append(decode_record(data[off + 8 : off + 8 + body]).type)
        off += 8 + body + pad
    assert types == [RecordType.CRC, RecordType.METADATA, RecordType.SNAPSHOT]


def test_group_commit_one_fdatasync_per_batch() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=SEG)
    fs.op_log.clear()
    w.save(HardState(term=1, vote=1, commit=0), ents(1, 100))
    tail = f"{DIR}/{segment_files(fs)[0]}"
    assert fs.op_log == [("write", tail), ("fdatasync", tail)]


def test_commit_only_change_is_written_but_not_synced() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=SEG)
    w.save(HardState(term=1, vote=1, commit=0), ents(1, 3))
    fs.op_log.clear()
    w.save(HardState(term=1, vote=1, commit=3), [])
    assert [k for k, _ in fs.op_log] == ["write"]
    fs.op_log.clear()
    w.save(HardState(term=2, vote=1, commit=3), [])
    assert [k for k, _ in fs.op_log] == ["write", "fdatasync"]
    fs.op_log.clear()
    w.save(HardState(), [])
    assert fs.op_log == []


def test_unsafe_no_fsync_skips_every_sync() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=1024, unsafe_no_fsync=True)
    for i in range(1, 40):
        w.save(HardState(term=1, vote=1, commit=i - 1), ents(i, i, size=50))
    w.save_snapshot(WalSnapshot(index=20, term=1))
    w.release_lock_to(20)
    w.purge(1)
    w.close()
    kinds = {k for k, _ in fs.op_log}
    assert "write" in kinds and "rename" in kinds
    assert not kinds & {"fdatasync", "fsync", "fsync_dir"}
    _, _, _, es = reopen(fs, WalSnapshot(index=20, term=1))
    assert es == ents(21, 39, size=50)


def test_segments_are_cut_when_full_and_named_by_next_index() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=1024)
    for i in range(1, 61):
        w.save(HardState(term=1, vote=1, commit=i - 1), ents(i, i, size=60))
    w.close()
    names = segment_files(fs)
    assert len(names) > 3
    parsed = [parse_wal_name(n) for n in names]
    assert [p[0] for p in parsed if p] == list(range(len(names)))
    _, _, hs, es = reopen(fs, segment_bytes=1024)
    assert es == ents(1, 60, size=60)
    assert hs == HardState(term=1, vote=1, commit=59)
    # Every segment after the first starts with the hard state at the cut, and each segment's
    # name is the index of the first entry written into it.
    for name in names[1:]:
        _, first_index = parse_wal_name(name)  # type: ignore[misc]
        data = fs.read_file(f"{DIR}/{name}")
        recs = []
        off = 0
        while off < len(data) and (word := int.from_bytes(data[off : off + 8], "little")) != 0:
            body, pad = decode_length(word)
            recs.append(decode_record(data[off + 8 : off + 8 + body]))
            off += 8 + body + pad
        assert [r.type for r in recs[:3]] == [RecordType.CRC, RecordType.METADATA, RecordType.STATE]
        entry_recs = [r for r in recs if r.type == RecordType.ENTRY]
        if entry_recs:
            from petcd.codec.raft import decode_entry

            assert decode_entry(entry_recs[0].data).index == first_index
    # Closed segments were truncated at their last record; only the tail is preallocated.
    for name in names[:-1]:
        assert len(fs.read_file(f"{DIR}/{name}")) < 1024 + 200
        assert not fs.read_file(f"{DIR}/{name}").endswith(bytes(8))


def test_open_at_snapshot_replays_from_there() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=1024)
    for i in range(1, 61):
        w.save(HardState(term=1, vote=1, commit=i - 1), ents(i, i, size=60))
        if i == 40:
            w.save_snapshot(WalSnapshot(index=35, term=1, conf_state=ConfState(voters=(1, 2, 3))))
    w.close()
    w2, _, hs, es = reopen(fs, WalSnapshot(index=35, term=1), segment_bytes=1024)
    assert es == ents(36, 60, size=60)
    assert hs.commit == 59
    # Only the segments from the one holding index 35 are held.
    assert parse_wal_name(w2.segment_names[0])[1] <= 35  # type: ignore[index]
    assert len(w2.segment_names) < len(segment_files(fs))


def test_snapshot_not_found_and_mismatch() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=SEG)
    w.save(HardState(term=1, vote=1), ents(1, 10))
    w.save_snapshot(WalSnapshot(index=5, term=1))
    w.close()
    with pytest.raises(SnapshotNotFoundError):
        reopen(fs, WalSnapshot(index=6, term=1))
    with pytest.raises(SnapshotMismatchError):
        reopen(fs, WalSnapshot(index=5, term=2))


def test_later_entry_replaces_the_tail() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=SEG)
    w.save(HardState(term=1, vote=1), ents(1, 10, term=1))
    w.save(HardState(term=2, vote=2), ents(6, 8, term=2))
    w.close()
    _, _, _, es = reopen(fs)
    assert es == ents(1, 5, term=1) + ents(6, 8, term=2)


def test_gap_is_an_error() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=SEG)
    w.save(HardState(term=1, vote=1), ents(1, 3))
    w.save(HardState(term=1, vote=1), ents(5, 6))
    w.close()
    with pytest.raises(SliceOutOfRangeError):
        reopen(fs)


def test_metadata_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=512)
    w._metadata = b"other"  # what a bug or a foreign segment would leave
    for i in range(1, 30):
        w.save(HardState(term=1, vote=1), ents(i, i, size=60))
    w.close()
    with pytest.raises(MetadataConflictError):
        reopen(fs)


def test_read_all_only_once_and_save_needs_read_all() -> None:
    fs = SimFileSystem()
    Wal.create(fs, DIR, META, segment_bytes=SEG).close()
    w = Wal.open(fs, DIR)
    with pytest.raises(WalError):
        w.save(HardState(term=1), ents(1, 1))
    w.read_all()
    with pytest.raises(WalError):
        w.read_all()


def test_read_only_open_does_not_write_or_repair() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=SEG)
    w.save(HardState(term=1, vote=1), ents(1, 5))
    tail = f"{DIR}/{segment_files(fs)[0]}"
    # A torn record: a length word promising more than was written.
    w._pending += (200).to_bytes(8, "little") + b"\x01" * 40
    w._flush()
    before = fs.read_file(tail)
    fs.op_log.clear()
    ro = Wal.open(fs, DIR, write=False)
    assert ro.read_all().entries == ents(1, 5)
    assert fs.op_log == [] and fs.read_file(tail) == before


def _torn_tail(fs: SimFileSystem) -> tuple[str, int]:
    """A WAL whose last record lost its second sector to a crash; (path, offset of that record)."""
    w = Wal.create(fs, DIR, META, segment_bytes=1 << 14)
    w.save(HardState(term=1, vote=1), ents(1, 5))
    offset = w._offset
    w.save(HardState(term=1, vote=1), [Entry(term=1, index=6, data=b"\xaa" * 1500)])
    w.close()
    path = f"{DIR}/{segment_files(fs)[0]}"
    start = (offset // 512 + 1) * 512
    buf = bytearray(fs.read_file(path))
    buf[start : start + 512] = bytes(512)
    f = fs.open(path)
    f.pwrite(0, bytes(buf))
    f.fdatasync()
    return path, offset


def test_torn_tail_is_cut_off_zeroed_and_synced() -> None:
    fs = SimFileSystem()
    path, offset = _torn_tail(fs)
    size = len(fs.read_file(path))
    w, _, _hs, es = reopen(fs, segment_bytes=1 << 14)
    assert es == ents(1, 5)
    assert w.repaired == (path, offset)
    durable = fs.durable_bytes(path)
    assert len(durable) == size
    assert durable[offset:] == bytes(size - offset)
    w.save(HardState(term=1, vote=1), ents(6, 7))
    w.close()
    _, _, _, es = reopen(fs, segment_bytes=1 << 14)
    assert es == ents(1, 7)


def test_truncated_file_ending_inside_a_record_is_torn() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=64)  # tiny: every save cuts
    w.save(HardState(term=1, vote=1), ents(1, 1))
    w.save(HardState(term=1, vote=1), ents(2, 2))
    w.close()
    path = f"{DIR}/{segment_files(fs)[-1]}"
    data = fs.read_file(path)
    f = fs.open(path)
    f.pwrite(len(data), encode_frame(WalRecord(RecordType.ENTRY, 1, b"y" * 100))[:50])
    w, _, _, es = reopen(fs, segment_bytes=64)
    assert es == ents(1, 2)
    assert w.repaired == (path, len(data))


@pytest.mark.parametrize("seed", range(6))
def test_flipped_bit_mid_file_is_detected_with_file_and_offset(seed: int) -> None:
    rng = random.Random(seed)
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=2048)
    offsets = []
    for i in range(1, 80):
        offsets.append((len(segment_files(fs)), w._offset))
        w.save(HardState(term=1, vote=1, commit=i - 1), ents(i, i, size=30 + i))
    w.close()
    names = segment_files(fs)
    # A record in the middle of the log, in its payload (not the last record of the last segment).
    i = rng.randrange(10, 60)
    seg_no, off = offsets[i]
    path = f"{DIR}/{names[seg_no - 1]}"
    data = fs.read_file(path)
    if off >= len(data.rstrip(b"\0")):
        pytest.skip("offset landed at a cut")
    fs.flip_bit(path, (off + 8 + rng.randrange(8, 30)) * 8 + rng.randrange(8))
    with pytest.raises(CorruptWalError) as err:
        reopen(fs, segment_bytes=2048)
    assert err.value.path == path
    assert err.value.offset == off
    assert path in str(err.value) and f"offset {off}" in str(err.value)


def test_every_single_bit_flip_in_a_closed_segment_is_detected_or_harmless() -> None:
    """Exhaustive over one closed segment: no flip may silently change or drop records."""
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=600)
    for i in range(1, 30):
        w.save(HardState(term=1, vote=1, commit=i - 1), ents(i, i, size=40))
    w.close()
    names = segment_files(fs)
    path = f"{DIR}/{names[1]}"
    good = reopen(fs, segment_bytes=600)[1:]
    size = len(fs.read_file(path))
    detected = 0
    for bit in range(size * 8):
        fs.flip_bit(path, bit)
        try:
            got = Wal.open(fs, DIR, write=False).read_all()
        except WalError:
            detected += 1
        else:
            assert tuple(got) == good, f"bit {bit}: silently different"
        fs.flip_bit(path, bit)
    assert detected > size * 8 * 0.8


def test_release_and_purge_need_a_covering_snapshot() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=1024)
    for i in range(1, 101):
        w.save(HardState(term=1, vote=1, commit=i - 1), ents(i, i, size=60))
    all_names = segment_files(fs)
    assert len(all_names) > 6
    with pytest.raises(WalError):
        w.release_lock_to(50)  # no snapshot covers index 50 yet
    assert w.purge(1) == []
    w.save_snapshot(WalSnapshot(index=80, term=1))
    w.release_lock_to(80)
    held = w.segment_names
    assert held[0] != all_names[0]
    # The held segment that holds index 80 and everything after it stay.
    first_held_index = parse_wal_name(held[0])[1]  # type: ignore[index]
    assert first_held_index <= 80
    removed = w.purge(2)
    assert removed and all(n not in held for n in removed)
    assert segment_files(fs) == [n for n in all_names if n not in removed] + [
        n for n in segment_files(fs) if n not in all_names
    ]
    assert set(held) <= set(segment_files(fs))
    w.close()
    _, _, _, es = reopen(fs, WalSnapshot(index=80, term=1), segment_bytes=1024)
    assert es == ents(81, 100, size=60)


def test_purge_keeps_max_wals() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=512)
    for i in range(1, 101):
        w.save(HardState(term=1, vote=1, commit=i - 1), ents(i, i, size=60))
    w.save_snapshot(WalSnapshot(index=100, term=1))
    w.release_lock_to(100)
    w.purge(5)
    assert len(segment_files(fs)) == 5
    w.close()
    _, _, _, es = reopen(fs, WalSnapshot(index=100, term=1), segment_bytes=512)
    assert es == []


def test_valid_snapshot_entries_are_those_committed() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=1024)
    w.save(HardState(term=1, vote=1, commit=5), ents(1, 10))
    w.save_snapshot(WalSnapshot(index=4, term=1))
    w.save_snapshot(WalSnapshot(index=8, term=1))
    w.close()
    assert valid_snapshot_entries(fs, DIR) == [WalSnapshot(), WalSnapshot(index=4, term=1)]


def test_entry_types_and_large_entries_round_trip() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=4096)
    big = [
        Entry(term=3, index=1, type=EntryType.CONF_CHANGE, data=b"c" * 10),
        Entry(term=3, index=2, data=b"\x00" * 5000),
        Entry(term=3, index=3, data=b""),
    ]
    w.save(HardState(term=3, vote=2, commit=2), big)
    w.close()
    assert reopen(fs, segment_bytes=4096)[3] == big


def test_stale_bytes_beyond_a_hole_are_zeroed_before_appending() -> None:
    """A crash can keep a later unsynced write and drop an earlier one: the reader stops at the
    hole, and the bytes beyond it must not survive to follow the next records."""
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=SEG)
    w.save(HardState(term=1, vote=1, commit=0), ents(1, 3))
    end = w._offset
    w.close()
    path = f"{DIR}/{segment_files(fs)[0]}"
    stale = fs.read_file(path)[:end]
    f = fs.open(path)
    f.pwrite(end + 64, stale[-64:])  # some bytes of an unsynced record that reached the disk
    f.fdatasync()
    w2, _, _, es = reopen(fs, segment_bytes=SEG)
    assert es == ents(1, 3)
    assert w2.repaired == (path, end)
    assert fs.durable_bytes(path)[end:] == bytes(SEG - end)
    w2.save(HardState(term=1, vote=1, commit=1), ents(4, 4))
    w2.close()
    assert reopen(fs, segment_bytes=SEG)[3] == ents(1, 4)


def test_clean_tail_is_not_rewritten() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=SEG)
    w.save(HardState(term=1, vote=1, commit=0), ents(1, 3))
    w.close()
    fs.op_log.clear()
    w2, _, _, _ = reopen(fs, segment_bytes=SEG)
    assert w2.repaired is None
    assert fs.op_log == []


def test_entry_at_or_below_the_snapshot_replaces_what_followed() -> None:
    """Log cut back below the snapshot index before the snapshot was taken: entries read after
    the snapshot index so far are no longer in the log."""
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=SEG)
    w.save(HardState(term=1, vote=1), ents(1, 2, term=1))
    w.save(HardState(term=2, vote=2), ents(1, 1, term=2))
    w.save(HardState(term=2, vote=2, commit=1), [])
    w.save_snapshot(WalSnapshot(index=1, term=2))
    w.close()
    assert reopen(fs, WalSnapshot(index=1, term=2), segment_bytes=SEG)[3] == []


def test_a_second_writer_fails_at_once_readers_do_not() -> None:
    fs = SimFileSystem()
    w = Wal.create(fs, DIR, META, segment_bytes=SEG)
    with pytest.raises(WalError, match="already open for writing"):
        Wal.open(fs, DIR)
    Wal.open(fs, DIR, write=False).read_all()
    w.close()
    w2, _, _, _ = reopen(fs, segment_bytes=SEG)
    with pytest.raises(WalError, match="already open for writing"):
        Wal.open(fs, DIR)
    w2.close()


def test_a_failed_read_all_releases_the_lock() -> None:
    fs = SimFileSystem()
    Wal.create(fs, DIR, META, segment_bytes=SEG).close()
    with pytest.raises(SnapshotNotFoundError):
        reopen(fs, WalSnapshot(index=9, term=1))
    reopen(fs)[0].close()


def _three_segments(fs: SimFileSystem) -> list[str]:
    w = Wal.create(fs, DIR, META, segment_bytes=512)
    for i in range(1, 20):
        w.save(HardState(term=1, vote=1, commit=i - 1), ents(i, i, size=60))
    w.close()
    names = segment_files(fs)
    assert len(names) >= 3
    return names


def test_a_missing_middle_segment_is_refused() -> None:
    fs = SimFileSystem()
    names = _three_segments(fs)
    fs.remove(f"{DIR}/{names[1]}")
    with pytest.raises(WalNotFoundError, match="sequence broken"):
        Wal.open(fs, DIR)


def test_an_earlier_segment_cut_short_is_corruption_not_a_torn_tail() -> None:
    fs = SimFileSystem()
    names = _three_segments(fs)
    path = f"{DIR}/{names[0]}"
    f = fs.open(path)
    f.truncate(f.size() - 20)
    with pytest.raises(CorruptWalError, match="segment that is not the last") as err:
        reopen(fs, segment_bytes=512)
    assert err.value.path == path


def test_zeros_inside_an_earlier_segment_are_corruption() -> None:
    fs = SimFileSystem()
    names = _three_segments(fs)
    path = f"{DIR}/{names[0]}"
    data = fs.read_file(path)
    f = fs.open(path)
    f.pwrite(len(data) - 200, bytes(80))
    with pytest.raises(CorruptWalError) as err:
        reopen(fs, segment_bytes=512)
    assert err.value.path == path
