"""The FileSystem port: the same contract on the real disk and on the simulated one, plus the
simulator's crash model."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from petcd.fs import FileSystem, LockedError
from petcd.fs.os_fs import OsFileSystem
from petcd.fs.sim import SECTOR_BYTES, SimCrash, SimFileSystem


@pytest.fixture(params=["os", "sim"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FileSystem, str]]:
    if request.param == "os":
        yield OsFileSystem(), str(tmp_path)
    else:
        fs = SimFileSystem()
        fs.make_dirs("/tmp/x")
        yield fs, "/tmp/x"


def test_write_read_size_truncate(env: tuple[FileSystem, str]) -> None:
    fs, d = env
    f = fs.open(f"{d}/a", create=True)
    assert f.size() == 0
    f.pwrite(0, b"hello")
    f.pwrite(10, b"world")
    assert f.size() == 15
    assert f.pread(0, 100) == b"hello\0\0\0\0\0world"
    f.truncate(3)
    assert fs.read_file(f"{d}/a") == b"hel"
    f.fdatasync()
    f.fsync()
    f.close()


def test_preallocate_extends_with_zeros_and_never_shrinks(env: tuple[FileSystem, str]) -> None:
    fs, d = env
    f = fs.open(f"{d}/a", create=True)
    f.pwrite(0, b"abc")
    f.preallocate(4096)
    assert f.size() == 4096
    assert f.pread(0, 4096) == b"abc" + bytes(4093)
    f.preallocate(10)
    assert f.size() == 4096
    f.close()


def test_open_missing_without_create_fails(env: tuple[FileSystem, str]) -> None:
    fs, d = env
    with pytest.raises(FileNotFoundError):
        fs.open(f"{d}/missing")
    with pytest.raises(FileNotFoundError):
        fs.remove(f"{d}/missing")


def test_dirs_list_rename_remove(env: tuple[FileSystem, str]) -> None:
    fs, d = env
    fs.make_dirs(f"{d}/m/wal")
    fs.make_dirs(f"{d}/m/wal")
    assert fs.is_dir(f"{d}/m/wal") and fs.exists(f"{d}/m")
    for name in ("b", "a", "c"):
        fs.open(f"{d}/m/wal/{name}", create=True).close()
    assert fs.list_dir(f"{d}/m/wal") == ["a", "b", "c"]
    assert fs.list_dir(f"{d}/m") == ["wal"]
    fs.rename(f"{d}/m/wal/a", f"{d}/m/wal/z")
    fs.remove(f"{d}/m/wal/b")
    fs.fsync_dir(f"{d}/m/wal")
    assert fs.list_dir(f"{d}/m/wal") == ["c", "z"]
    assert not fs.exists(f"{d}/m/wal/a")
    with pytest.raises(ValueError, match="across directories"):
        fs.rename(f"{d}/m/wal/c", f"{d}/m/c")


def test_lock_is_exclusive(env: tuple[FileSystem, str]) -> None:
    fs, d = env
    lock = fs.try_lock(d)
    with pytest.raises(LockedError):
        fs.try_lock(d)
    lock.release()
    fs.try_lock(d).release()


# --- the simulator's crash model ---------------------------------------------------------------


def test_synced_data_survives_and_unsynced_may_not() -> None:
    fs = SimFileSystem()
    fs.make_dirs("/d")
    f = fs.open("/d/f", create=True)
    f.pwrite(0, b"durable")
    f.fdatasync()
    fs.fsync_dir("/d")
    f.pwrite(7, b"-volatile")
    outcomes = set()
    for seed in range(30):
        sim = _clone_after(seed, b"durable", b"-volatile")
        outcomes.add(sim)
    assert all(o.startswith(b"durable") for o in outcomes)
    assert b"durable" in outcomes and b"durable-volatile" in outcomes


def _clone_after(seed: int, synced: bytes, unsynced: bytes) -> bytes:
    fs = SimFileSystem()
    fs.make_dirs("/d")
    f = fs.open("/d/f", create=True)
    f.pwrite(0, synced)
    f.fdatasync()
    fs.fsync_dir("/d")
    f.pwrite(len(synced), unsynced)
    fs.crash(random.Random(seed))
    return fs.read_file("/d/f")


def test_tearing_is_per_sector_and_deterministic() -> None:
    data = bytes(range(1, 256)) * 20  # 5100 bytes, ~10 sectors, no zero byte
    results = []
    for seed in range(40):
        fs = SimFileSystem()
        fs.make_dirs("/d")
        f = fs.open("/d/f", create=True)
        f.preallocate(8192)
        f.fdatasync()
        fs.fsync_dir("/d")
        f.pwrite(100, data)
        fs.crash(random.Random(seed))
        image = fs.read_file("/d/f")
        results.append(image)
        # Every sector of the write is either all new or all old (zero).
        for start in range(0, 8192, SECTOR_BYTES):
            lo, hi = max(start, 100), min(start + SECTOR_BYTES, 100 + len(data))
            if lo >= hi:
                continue
            piece = image[lo:hi]
            assert piece in (data[lo - 100 : hi - 100], bytes(hi - lo)), (seed, start)
    torn = [r for r in results if r[100 : 100 + len(data)] not in (data, bytes(len(data)))]
    assert torn, "some crash must tear the write"
    again = []
    for seed in range(40):
        fs = SimFileSystem()
        fs.make_dirs("/d")
        f = fs.open("/d/f", create=True)
        f.preallocate(8192)
        f.fdatasync()
        fs.fsync_dir("/d")
        f.pwrite(100, data)
        fs.crash(random.Random(seed))
        again.append(fs.read_file("/d/f"))
    assert again == results


def test_directory_entries_need_fsync_dir() -> None:
    lost = kept = 0
    for seed in range(30):
        fs = SimFileSystem()
        fs.make_dirs("/d")
        f = fs.open("/d/new", create=True)
        f.pwrite(0, b"x")
        f.fsync()
        fs.crash(random.Random(seed))
        if fs.exists("/d/new"):
            kept += 1
            assert fs.read_file("/d/new") == b"x"
        else:
            lost += 1
    assert lost and kept
    fs = SimFileSystem()
    fs.make_dirs("/d")
    fs.open("/d/new", create=True).fsync()
    fs.fsync_dir("/d")
    fs.crash(random.Random(0))
    assert fs.exists("/d/new")


def test_rename_is_atomic_at_a_crash() -> None:
    for seed in range(30):
        fs = SimFileSystem()
        fs.make_dirs("/d")
        f = fs.open("/d/a.tmp", create=True)
        f.pwrite(0, b"new")
        f.fsync()
        fs.fsync_dir("/d")
        fs.rename("/d/a.tmp", "/d/a")
        fs.crash(random.Random(seed))
        names = fs.list_dir("/d")
        assert names in (["a"], ["a.tmp"]), names


def test_crash_points_are_counted_and_the_machine_stays_down() -> None:
    fs = SimFileSystem()
    fs.make_dirs("/d")
    f = fs.open("/d/f", create=True)
    f.pwrite(0, b"a")
    f.fdatasync()
    assert fs.ops == 3
    assert [k for k, _ in fs.op_log] == ["create", "write", "fdatasync"]
    fs.crash_at = 4
    f.pwrite(1, b"b")
    with pytest.raises(SimCrash):
        f.fdatasync()
    with pytest.raises(SimCrash):
        f.pwrite(2, b"c")
    with pytest.raises(SimCrash):
        fs.open("/d/g", create=True)
    fs.crash(random.Random(0))
    # Handles from before the crash are dead; the file is there with at least the synced byte.
    with pytest.raises(SimCrash):
        f.pwrite(0, b"z")
    assert fs.read_file("/d/f")[:1] == b"a"
    fs.open("/d/f").pwrite(0, b"z")


def test_flip_bit_changes_both_images() -> None:
    fs = SimFileSystem()
    fs.make_dirs("/d")
    f = fs.open("/d/f", create=True)
    f.pwrite(0, b"\x00\x00")
    f.fdatasync()
    fs.flip_bit("/d/f", 9)
    assert fs.read_file("/d/f") == b"\x00\x02" == fs.durable_bytes("/d/f")
