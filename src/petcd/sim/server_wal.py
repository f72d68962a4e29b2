"""The server simulator's LogStore: petcd.wal (Wal + Snapshotter) on a SimFileSystem.

Adapted from tests/server/wal_log_store.py (the reference the server tests run against):

* load(): the newest `.snap` that a WAL snapshot marker names (a `.snap` written ahead of its
  marker is never used), the WAL opened at it, `read_all()` (hard state, entries after it).
  A brand-new data dir gets a WAL created with the member's metadata.
* save(): `Wal.save` (the WAL decides the fsync from the hard state and entries, as raft does),
  so a power cut (`SimFileSystem.crash`) loses or tears exactly what was not synced.
* save_snapshot(): the `.snap` file first, then the WAL marker (etcd's order).
* release_to(): `Wal.release_lock_to`, then purge of old segments and snapshot files.

Small segments (`SEGMENT_BYTES`) so that runs of a few hundred ticks cut and release segments.
"""

from __future__ import annotations

from collections.abc import Sequence

from petcd.codec.wal import Metadata, WalSnapshot, encode_metadata
from petcd.fs import FileSystem
from petcd.raft.types import Entry, HardState, Snapshot
from petcd.server.ports import PersistedLog
from petcd.wal import Snapshotter, Wal, exists, snap_dir, valid_snapshot_entries, wal_dir

SEGMENT_BYTES = 16 * 1024


class SimWalLogStore:
    def __init__(self, fs: FileSystem, data_dir: str, member_id: int, cluster_id: int) -> None:
        self.fs = fs
        self.wal_dir = wal_dir(data_dir)
        self.snapshotter = Snapshotter(fs, snap_dir(data_dir))
        self.metadata = encode_metadata(Metadata(node_id=member_id, cluster_id=cluster_id))
        self.wal: Wal | None = None

    def load(self) -> PersistedLog:
        if not exists(self.fs, self.wal_dir):
            self.wal = Wal.create(self.fs, self.wal_dir, self.metadata, segment_bytes=SEGMENT_BYTES)
            return PersistedLog()
        snap = self.snapshotter.load_newest_available(valid_snapshot_entries(self.fs, self.wal_dir))
        mark = (
            WalSnapshot(snap.metadata.index, snap.metadata.term, snap.metadata.conf_state)
            if snap is not None
            else WalSnapshot()
        )
        self.wal = Wal.open(self.fs, self.wal_dir, mark, segment_bytes=SEGMENT_BYTES)
        data = self.wal.read_all()
        return PersistedLog(snap, data.hard_state, tuple(data.entries))

    def _w(self) -> Wal:
        assert self.wal is not None, "load() first"
        return self.wal

    def save(self, hard_state: HardState, entries: Sequence[Entry], must_sync: bool) -> None:
        # must_sync may be forced by the Node (after installing a snapshot), beyond raft's rule.
        self._w().save(hard_state, entries, force_sync=must_sync)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        md = snapshot.metadata
        self.snapshotter.save_snap(snapshot)
        self._w().save_snapshot(WalSnapshot(md.index, md.term, md.conf_state))

    def release_to(self, index: int) -> None:
        w = self._w()
        w.release_lock_to(index)
        w.purge(2)
        self.snapshotter.purge(2)
