"""The snapshotter: atomic .snap files, newest valid one loaded, broken ones set aside."""

from __future__ import annotations

import contextlib
import random

import pytest

from petcd.codec.wal import SnapFile, WalSnapshot, encode_snap_file
from petcd.fs.os_fs import OsFileSystem
from petcd.fs.sim import SimCrash, SimFileSystem
from petcd.raft.types import ConfState, Snapshot, SnapshotMetadata
from petcd.wal import DEFAULT_MAX_SNAPSHOTS, Snapshotter
from petcd.wal.snap import read_snap_file, snap_name

DIR = "/d/member/snap"


def snap(term: int, index: int, data: bytes = b"state") -> Snapshot:
    return Snapshot(
        data=data + bytes([index % 256]),
        metadata=SnapshotMetadata(conf_state=ConfState(voters=(1, 2, 3)), index=index, term=term),
    )


def test_name_and_round_trip() -> None:
    fs = SimFileSystem()
    ss = Snapshotter(fs, DIR)
    ss.save_snap(snap(2, 0x10))
    assert fs.list_dir(DIR) == [snap_name(2, 0x10)] == ["0000000000000002-0000000000000010.snap"]
    assert ss.load() == snap(2, 0x10)
    assert read_snap_file(fs, f"{DIR}/{snap_name(2, 0x10)}") == snap(2, 0x10)


def test_empty_snapshot_is_not_saved_and_no_snapshot_loads_none() -> None:
    fs = SimFileSystem()
    ss = Snapshotter(fs, DIR)
    ss.save_snap(Snapshot())
    assert ss.load() is None


def test_save_is_write_fsync_rename_fsync_dir() -> None:
    fs = SimFileSystem()
    ss = Snapshotter(fs, DIR)
    ss.save_snap(snap(1, 5))
    kinds = [k for k, _ in fs.op_log]
    assert kinds == ["create", "truncate", "write", "fsync", "rename", "fsync_dir"]


def test_newest_valid_is_loaded_and_broken_set_aside() -> None:
    fs = SimFileSystem()
    ss = Snapshotter(fs, DIR)
    for i in (5, 10, 15):
        ss.save_snap(snap(1, i))
    newest = f"{DIR}/{snap_name(1, 15)}"
    fs.flip_bit(newest, 8 * 20)
    assert ss.load() == snap(1, 10)
    assert ss.broken == [snap_name(1, 15)]
    assert snap_name(1, 15) + ".broken" in fs.list_dir(DIR)
    assert snap_name(1, 15) not in fs.list_dir(DIR)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xff\xff",
        encode_snap_file(SnapFile(crc=0, data=b"x")),
        encode_snap_file(SnapFile(crc=5, data=b"")),
        encode_snap_file(SnapFile(crc=1234, data=b"data")),
    ],
    ids=["empty", "malformed", "zero-crc", "no-data", "crc-mismatch"],
)
def test_bad_files_are_broken(content: bytes) -> None:
    fs = SimFileSystem()
    ss = Snapshotter(fs, DIR)
    ss.save_snap(snap(1, 1))
    f = fs.open(f"{DIR}/{snap_name(1, 2)}", create=True)
    f.pwrite(0, content)
    assert ss.load() == snap(1, 1)
    assert ss.broken == [snap_name(1, 2)]


def test_load_newest_available_needs_a_wal_marker() -> None:
    fs = SimFileSystem()
    ss = Snapshotter(fs, DIR)
    for i in (5, 10, 15):
        ss.save_snap(snap(1, i))
    marks = [WalSnapshot(), WalSnapshot(index=5, term=1), WalSnapshot(index=10, term=1)]
    assert ss.load_newest_available(marks) == snap(1, 10)
    assert ss.load_newest_available([WalSnapshot(index=10, term=2)]) is None


def test_purge_keeps_the_newest() -> None:
    fs = SimFileSystem()
    ss = Snapshotter(fs, DIR)
    for i in range(1, 9):
        ss.save_snap(snap(1, i))
    removed = ss.purge()
    assert removed == [snap_name(1, i) for i in range(1, 4)]
    assert fs.list_dir(DIR) == [snap_name(1, i) for i in range(4, 9)]
    assert DEFAULT_MAX_SNAPSHOTS == 5


def test_crash_at_every_point_of_a_save_leaves_old_or_new() -> None:
    def ops_of_save() -> int:
        fs = SimFileSystem()
        Snapshotter(fs, DIR).save_snap(snap(1, 1))
        before = fs.ops
        Snapshotter(fs, DIR).save_snap(snap(1, 2, b"x" * 3000))
        return fs.ops - before

    for k in range(ops_of_save() + 1):
        for seed in range(4):
            fs = SimFileSystem()
            ss = Snapshotter(fs, DIR)
            ss.save_snap(snap(1, 1))
            fs.crash_at = fs.ops + k
            done = False
            with contextlib.suppress(SimCrash):
                ss.save_snap(snap(1, 2, b"x" * 3000))
                done = True
            fs.crash(random.Random(seed))
            ss = Snapshotter(fs, DIR)
            got = ss.load()
            assert ss.broken == [], f"crash before op {k}: a torn snapshot file appeared"
            assert got in (snap(1, 1), snap(1, 2, b"x" * 3000)), k
            if done:
                assert got == snap(1, 2, b"x" * 3000), k
            assert not [n for n in fs.list_dir(DIR) if n.endswith(".tmp")]


def test_on_the_real_disk(tmp_path: object) -> None:
    fs = OsFileSystem()
    d = f"{tmp_path}/member/snap"
    ss = Snapshotter(fs, d)
    ss.save_snap(snap(3, 7))
    ss.save_snap(snap(3, 9))
    assert ss.load() == snap(3, 9)
    assert fs.list_dir(d) == [snap_name(3, 7), snap_name(3, 9)]
