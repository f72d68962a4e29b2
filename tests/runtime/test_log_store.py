"""The WAL-backed LogStore: what is saved comes back on reopen; snapshots and release."""

from __future__ import annotations

from pathlib import Path

from petcd.codec.wal import Metadata
from petcd.fs.os_fs import OsFileSystem
from petcd.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from petcd.runtime.log_store import WalLogStore

MD = Metadata(node_id=0x1234, cluster_id=0xABCD)


def open_store(tmp: Path, max_wals: int = 5, max_snapshots: int = 5) -> WalLogStore:
    return WalLogStore.open_or_create(
        OsFileSystem(),
        str(tmp / "member" / "wal"),
        str(tmp / "member" / "snap"),
        MD,
        max_wals=max_wals,
        max_snapshots=max_snapshots,
    )


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term=term, index=i, data=f"e{i}".encode()) for i in range(first, last + 1)]


def test_new_store_is_empty_and_holds_the_metadata(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    assert s.load().is_empty()
    s.close()
    assert WalLogStore.exists(OsFileSystem(), str(tmp_path / "member" / "wal"))
    assert WalLogStore.read_metadata(OsFileSystem(), str(tmp_path / "member" / "wal")) == MD


def test_saved_entries_and_hard_state_come_back(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    s.save(HardState(term=1, vote=0x1234, commit=3), entries(1, 5), must_sync=True)
    s.save(HardState(term=2, vote=0x1234, commit=5), [Entry(term=2, index=4, data=b"new")], must_sync=True)
    s.close()
    again = open_store(tmp_path, max_wals=5)
    p = again.load()
    assert p.hard_state == HardState(term=2, vote=0x1234, commit=5)
    assert [(e.index, e.term) for e in p.entries] == [(1, 1), (2, 1), (3, 1), (4, 2)]
    assert again.metadata == MD
    again.close()


def test_restart_starts_at_the_newest_snapshot(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    s.save(HardState(term=1, commit=10), entries(1, 10), must_sync=True)
    snap = Snapshot(data=b"members", metadata=SnapshotMetadata(ConfState(voters=(0x1234,)), index=8, term=1))
    s.save_snapshot(snap)
    s.release_to(8)
    s.save(HardState(term=1, commit=12), entries(11, 12), must_sync=True)
    s.close()
    p = open_store(tmp_path).load()
    assert p.snapshot == snap
    assert [e.index for e in p.entries] == [9, 10, 11, 12]
    assert p.hard_state.commit == 12


def test_snapshot_files_are_purged_beyond_max(tmp_path: Path) -> None:
    s = open_store(tmp_path, max_snapshots=2)
    s.save(HardState(term=1, commit=40), entries(1, 40), must_sync=True)
    for idx in (10, 20, 30, 40):
        s.save_snapshot(Snapshot(data=b"m", metadata=SnapshotMetadata(index=idx, term=1)))
        s.release_to(idx)
    snaps = sorted(p.name for p in (tmp_path / "member" / "snap").iterdir() if p.name.endswith(".snap"))
    assert len(snaps) == 2 and snaps[-1].endswith(f"{40:016x}.snap")
    s.close()
