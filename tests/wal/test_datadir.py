"""The data-dir lock: a second owner fails at once, with a clear error; a dead owner's lock is gone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from petcd.fs.os_fs import OsFileSystem
from petcd.fs.sim import SimFileSystem
from petcd.wal import DataDirLockedError, lock_data_dir, snap_dir, wal_dir


def test_layout() -> None:
    assert wal_dir("/var/lib/etcd") == "/var/lib/etcd/member/wal"
    assert snap_dir("/var/lib/etcd") == "/var/lib/etcd/member/snap"


def test_second_locker_in_process_fails_then_succeeds_after_release(tmp_path: Path) -> None:
    fs = OsFileSystem()
    d = str(tmp_path / "data")
    lock = lock_data_dir(fs, d)
    with pytest.raises(DataDirLockedError, match=r"data dir .*data is in use by another etcd process"):
        lock_data_dir(fs, d)
    lock.release()
    lock_data_dir(fs, d).release()
    # No lock file is left in the data directory: the layout stays etcd's.
    assert list((tmp_path / "data").iterdir()) == []


def test_second_process_fails_at_once_and_a_killed_owner_frees_it(tmp_path: Path) -> None:
    d = str(tmp_path / "data")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from petcd.fs.os_fs import OsFileSystem\n"
            "from petcd.wal import lock_data_dir\n"
            f"lock_data_dir(OsFileSystem(), {d!r})\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.raises(DataDirLockedError):
            lock_data_dir(OsFileSystem(), d)
        assert time.monotonic() - start < 30.0  # at once: a blocking lock would wait for the holder (60 s)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    lock_data_dir(OsFileSystem(), d).release()


def test_sim_lock_is_exclusive_and_dropped_at_crash() -> None:
    import random

    fs = SimFileSystem()
    lock_data_dir(fs, "/data")
    with pytest.raises(DataDirLockedError):
        lock_data_dir(fs, "/data")
    fs.crash(random.Random(0))
    lock_data_dir(fs, "/data")
