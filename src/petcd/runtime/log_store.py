"""The LogStore port over petcd.wal: the WAL directory plus the snapshot files (ring C).

Opening (`WalLogStore.open_or_create`, before the Node exists), as etcd's bootstrap does:
* a data dir that holds a WAL: find the WAL's snapshot markers, load the newest `.snap` file one of
  them names, open the WAL at that marker and replay the rest: metadata (member ID, cluster ID),
  hard state, entries after the snapshot. `load()` hands exactly that to the Node;
* otherwise create the WAL with the metadata of the new member.

Group commit: the Node calls `save()` once per Ready with every entry of that Ready; the Wal writes
them all and fdatasyncs once when raft says the batch must be durable (new entries, term or vote
change). `save_snapshot()` writes the `.snap` file first and the WAL marker after it (a marker
never names a missing snapshot), both synced. `release_to()` lets the WAL drop the segments a
snapshot covers and purges files beyond --max-wals / --max-snapshots.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from petcd.codec.wal import Metadata, RecordType, WalSnapshot, decode_metadata, encode_metadata
from petcd.fs import FileSystem
from petcd.raft.types import Entry, HardState, Snapshot
from petcd.server.ports import PersistedLog
from petcd.wal import Snapshotter, Wal, exists, valid_snapshot_entries
from petcd.wal.errors import WalError, WalNotFoundError
from petcd.wal.record import SegmentDecoder
from petcd.wal.wal import wal_names

log = logging.getLogger("petcd.runtime.log_store")


class WalLogStore:
    """raft's durable log for one member: `<data-dir>/member/wal` and `<data-dir>/member/snap`."""

    def __init__(  # noqa: PLR0917 - built by open_or_create only
        self,
        fs: FileSystem,
        wal_dir: str,
        snap_dir: str,
        wal: Wal,
        snapshotter: Snapshotter,
        metadata: Metadata,
        persisted: PersistedLog,
        *,
        max_wals: int = 5,
        max_snapshots: int = 5,
    ) -> None:
        self.fs = fs
        self.wal_dir = wal_dir
        self.snap_dir = snap_dir
        self.wal = wal
        self.snapshotter = snapshotter
        self.metadata = metadata
        self._persisted = persisted
        self.max_wals = max_wals
        self.max_snapshots = max_snapshots
        self.saves = 0
        # Called with the seconds each synced save took (etcd_disk_wal_fsync_duration_seconds).
        self.observe_sync: Callable[[float], None] | None = None

    @staticmethod
    def exists(fs: FileSystem, wal_dir: str) -> bool:
        return exists(fs, wal_dir)

    @staticmethod
    def read_metadata(fs: FileSystem, wal_dir: str) -> Metadata:
        """The member and cluster IDs a data dir was created with (read only; no lock taken).

        Every segment starts with the metadata record, so the head of the oldest one is enough
        (replaying the whole WAL here would read every preallocated segment twice on start)."""
        names = wal_names(fs, wal_dir)
        if not names:
            raise WalNotFoundError(f"wal: no segment files in {wal_dir}")
        path = f"{wal_dir}/{names[0]}"
        f = fs.open(path)
        try:
            head = f.pread(0, 64 * 1024)
        finally:
            f.close()
        for rec in SegmentDecoder(path, head, 0, True).records():
            if rec.type == RecordType.METADATA:
                return decode_metadata(rec.data)
        raise WalError(f"wal: no metadata record at the head of {path}")

    @classmethod
    def open_or_create(
        cls,
        fs: FileSystem,
        wal_dir: str,
        snap_dir: str,
        metadata: Metadata,
        *,
        max_wals: int = 5,
        max_snapshots: int = 5,
        unsafe_no_fsync: bool = False,
    ) -> WalLogStore:
        """Open the existing WAL (its metadata wins over `metadata`) or create a new one."""
        fs.make_dirs(snap_dir)
        snapshotter = Snapshotter(fs, snap_dir, unsafe_no_fsync=unsafe_no_fsync)
        if not exists(fs, wal_dir):
            wal = Wal.create(fs, wal_dir, encode_metadata(metadata), unsafe_no_fsync=unsafe_no_fsync)
            return cls(
                fs,
                wal_dir,
                snap_dir,
                wal,
                snapshotter,
                metadata,
                PersistedLog(),
                max_wals=max_wals,
                max_snapshots=max_snapshots,
            )
        marks = valid_snapshot_entries(fs, wal_dir)
        snapshot = snapshotter.load_newest_available(marks)
        start = WalSnapshot()
        if snapshot is not None:
            md = snapshot.metadata
            start = WalSnapshot(index=md.index, term=md.term, conf_state=md.conf_state)
        wal = Wal.open(fs, wal_dir, start, unsafe_no_fsync=unsafe_no_fsync)
        data = wal.read_all()
        if wal.repaired is not None:
            log.warning(
                "repaired WAL tail", extra={"fields": {"path": wal.repaired[0], "offset": wal.repaired[1]}}
            )
        persisted = PersistedLog(snapshot, data.hard_state, tuple(data.entries))
        return cls(
            fs,
            wal_dir,
            snap_dir,
            wal,
            snapshotter,
            decode_metadata(data.metadata),
            persisted,
            max_wals=max_wals,
            max_snapshots=max_snapshots,
        )

    # --- the LogStore port ------------------------------------------------------------------

    def load(self) -> PersistedLog:
        return self._persisted

    def save(self, hard_state: HardState, entries: Sequence[Entry], must_sync: bool) -> None:
        # One fdatasync for the whole batch when raft's rule asks for it (new entries, term or vote
        # changed) or the Node does (a commit it acts on at once, e.g. with an installed snapshot).
        observe = self.observe_sync
        if observe is None or not must_sync:
            self.wal.save(hard_state, entries, force_sync=must_sync)
        else:
            t0 = time.perf_counter()
            self.wal.save(hard_state, entries, force_sync=True)
            observe(time.perf_counter() - t0)
        self.saves += 1

    def save_snapshot(self, snapshot: Snapshot) -> None:
        md = snapshot.metadata
        self.snapshotter.save_snap(snapshot)
        self.wal.save_snapshot(WalSnapshot(index=md.index, term=md.term, conf_state=md.conf_state))

    def release_to(self, index: int) -> None:
        try:
            self.wal.release_lock_to(index)
        except WalError as e:
            log.warning("failed to release WAL", extra={"fields": {"index": index, "error": str(e)}})
            return
        if self.max_wals > 0:
            for name in self.wal.purge(self.max_wals):
                log.info("purged", extra={"fields": {"path": f"{self.wal_dir}/{name}"}})
        if self.max_snapshots > 0:
            for name in self.snapshotter.purge(self.max_snapshots):
                log.info("purged", extra={"fields": {"path": f"{self.snap_dir}/{name}"}})

    def close(self) -> None:
        self.wal.close()
