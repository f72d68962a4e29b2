"""Snapshot files offline: ``snapshot status`` and ``snapshot restore`` (etcd's etcdutl/snapshot).

A snapshot file is what ``etcdctl snapshot save`` writes: the server's backend snapshot stream
(``petcd.backend.snapshot``: whole 512-byte blocks, hash-sealed itself) followed by the 32-byte
SHA-256 of the stream, which the server appends. As etcd does, the trailer is recognised by the
size alone (``size % 512 == 32``); a file without one (a bare stream) needs ``--skip-hash-check``.

Status
------
etcd's numbers, computed over the stream's buckets in order: ``hash`` is the CRC-32C of every
bucket name, key and value, as etcd's v3_snapshot Status walks a bbolt file; ``revision`` the
store's current revision (0 for an empty store, like etcd's walk of an empty ``key`` bucket);
``totalKey`` the number of pairs in all buckets; ``totalSize`` the size of the stream (the
database, without the trailer); ``version`` the storage version (petcd writes etcd 3.6's schema).

Restore
-------
What etcd's Restore builds, in petcd's formats (what ``petcd.runtime.log_store`` and ``app`` load):

* ``<data-dir>/member/snap/db``: the stream installed into a fresh LMDB backend, with the old
  cluster's members replaced by the new ones (buckets ``members``/``members_removed``), the
  ``consistent_index`` set to the raft index below and, with ``--bump-revision N
  --mark-compacted``, the revision moved N past the newest and compacted there (so that clients
  still holding revisions of the old cluster are told they are compacted rather than seeing the
  same numbers name different data);
* ``<wal-dir>``: a WAL whose metadata names this member and the new cluster, holding one committed
  ConfChange entry per member (index 1..n, term 1, as a bootstrap writes them), the hard state
  ``{term 1, vote: the lowest member ID, commit n}`` and the snapshot marker (n, 1);
* ``<data-dir>/member/snap/<term>-<index>.snap``: a raft snapshot at (n, 1) whose conf state has
  every member as a voter and whose data is the member list.

Every member of the new cluster is restored from the same file with its own ``--name``; each then
starts as a member restarting from its data dir (the flags' --initial-cluster is not read again),
elects a leader, and serves the snapshot's keys. A data dir that exists and is not empty is refused;
a failed restore removes what it created.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from crc32c import crc32c

from petcd.backend import META_BUCKET, put_consistent_index, snapshot
from petcd.backend.lmdb import LmdbBackend, db_path
from petcd.cli.etcdutl.cluster import (
    CLUSTER_BUCKET,
    CLUSTER_VERSION_KEY,
    MEMBERS_BUCKET,
    MEMBERS_REMOVED_BUCKET,
    NewCluster,
    snapshot_data,
)
from petcd.codec.wal import Metadata, WalSnapshot, encode_metadata
from petcd.fs.os_fs import OsFileSystem
from petcd.ids import id_str
from petcd.mvcc.keys import parse_rev
from petcd.mvcc.kvstore import CURRENT_REV_KEY, HISTORY_BUCKET, KVStore
from petcd.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMetadata,
)
from petcd.version import STORAGE_VERSION
from petcd.wal import Snapshotter, Wal, snap_dir, wal_dir

HASH_BYTES = 32
_SECTOR = 512
_READ_BYTES = 1 << 20
STORAGE_VERSION_KEY = b"storageVersion"

Log = Callable[..., None]


class SnapshotError(Exception):
    """The snapshot file cannot be used (etcd's message)."""


def _quiet(*_args: object, **_fields: object) -> None:
    pass


def has_checksum(size: int) -> bool:
    """etcd's hasChecksum: a sha256 trailer follows whole 512-byte blocks."""
    return size % _SECTOR == HASH_BYTES


def _go_bytes(b: bytes) -> str:
    return "[" + " ".join(str(x) for x in b) + "]"


def _chunks(path: str, length: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        left = length
        while left > 0:
            chunk = f.read(min(_READ_BYTES, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def stream_length(path: str, skip_hash_check: bool) -> int:
    """The length of the backend stream in the file, after checking its trailer (etcd's saveDB)."""
    size = os.stat(path).st_size
    has_hash = has_checksum(size)
    if not has_hash and not skip_hash_check:
        raise SnapshotError("snapshot missing hash but --skip-hash-check=false")
    length = size - HASH_BYTES if has_hash else size
    if has_hash and not skip_hash_check:
        digest = hashlib.sha256()
        for chunk in _chunks(path, length):
            digest.update(chunk)
        with open(path, "rb") as f:
            f.seek(length)
            want = f.read(HASH_BYTES)
        got = digest.digest()
        if got != want:
            raise SnapshotError(f"expected sha256 {_go_bytes(want)}, got {_go_bytes(got)}")
    return length


_LMDB_MAGIC = struct.pack("<I", 0xBEEFC0DE)  # MDB_meta.mm_magic, after the 16-byte page header
_BBOLT_MAGIC = struct.pack("<I", 0xED0CDAED)  # bbolt's meta.magic, at the same offset


def backend_stream(path: str, length: int) -> Iterator[bytes]:
    """The backend stream of the first ``length`` bytes of ``path``: a stream file as it is, or a
    backend file copied out of a data dir (LMDB, etcd's "copied from data directory" case)."""
    with open(path, "rb") as f:
        head = f.read(32)
    if head.startswith(snapshot.MAGIC):
        yield from _chunks(path, length)
    elif head[16:20] == _LMDB_MAGIC:
        # a copy to open: LMDB keeps a lock file beside the data file, and the source's
        # directory may not be ours to write in
        with tempfile.TemporaryDirectory(prefix="etcdutl-") as tmp:
            copy = os.path.join(tmp, "db")
            with open(copy, "wb") as out:
                for chunk in _chunks(path, length):
                    out.write(chunk)
            backend = LmdbBackend.open_read_only(copy)
            try:
                yield from backend.snapshot()
            finally:
                backend.close()
    elif head[16:20] == _BBOLT_MAGIC:
        raise SnapshotError(
            f"{path}: is a bbolt database (a snapshot of etcd itself); petcd restores petcd snapshots only"
        )
    else:
        raise SnapshotError(f"{path}: not a petcd backend snapshot (not a petcd snapshot file, or damaged)")


def _triples(path: str, length: int) -> Iterator[tuple[str, bytes, bytes]]:
    try:
        yield from snapshot.load(backend_stream(path, length))
    except snapshot.SnapshotCorrupt as e:
        raise SnapshotError(f"{path}: {e} (not a petcd snapshot file, or damaged)") from None


# -- status -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Status:
    hash: int
    revision: int
    total_key: int
    total_size: int
    version: str


def status(path: str) -> Status:
    """etcd's snapshot Status for a petcd snapshot file (see the module docstring)."""
    if not os.path.exists(path):
        raise SnapshotError(f"stat {path}: no such file or directory")
    size = os.stat(path).st_size
    length = size - HASH_BYTES if has_checksum(size) else size
    h = 0
    bucket: str | None = None
    total = 0
    current = 0
    last_history = 0
    version = ""
    for name, key, value in _triples(path, length):
        if name != bucket:
            bucket = name
            h = crc32c(name.encode(), h)
        h = crc32c(value, crc32c(key, h))
        total += 1
        if name == META_BUCKET and key == CURRENT_REV_KEY:
            (current,) = struct.unpack(">Q", value)
        elif name == META_BUCKET and key == STORAGE_VERSION_KEY:
            version = value.decode(errors="replace")
        elif name == HISTORY_BUCKET:
            last_history = parse_rev(key)[0]
    return Status(
        hash=h,
        revision=current or last_history,
        total_key=total,
        total_size=length,
        version=version or STORAGE_VERSION,
    )


# -- restore ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoreConfig:
    snapshot_path: str
    name: str
    data_dir: str
    wal_dir: str  # "" for <data-dir>/member/wal
    cluster: NewCluster
    skip_hash_check: bool = False
    revision_bump: int = 0
    mark_compacted: bool = False


def _dir_empty(path: str) -> bool:
    try:
        return not os.listdir(path)
    except OSError:
        return False


def restore(cfg: RestoreConfig, log: Log = _quiet) -> None:
    """Build a new member's data dir from a snapshot file (see the module docstring)."""
    if os.path.exists(cfg.data_dir) and not _dir_empty(cfg.data_dir):
        raise SnapshotError(f'data-dir "{cfg.data_dir}" not empty or could not be read')
    if cfg.wal_dir and os.path.exists(cfg.wal_dir):
        raise SnapshotError(f'wal-dir "{cfg.wal_dir}" exists')
    wdir = cfg.wal_dir or wal_dir(cfg.data_dir)
    sdir = snap_dir(cfg.data_dir)
    log(
        "snapshot/v3_snapshot.go:265",
        "restoring snapshot",
        path=cfg.snapshot_path,
        **{"wal-dir": wdir, "data-dir": cfg.data_dir, "snap-dir": sdir},
    )
    # what to remove if the restore fails: only what it created (an empty data dir given to it stays)
    created = [cfg.data_dir if not os.path.exists(cfg.data_dir) else os.path.join(cfg.data_dir, "member")]
    if not os.path.exists(wdir):
        created.append(wdir)
    try:
        length = stream_length(cfg.snapshot_path, cfg.skip_hash_check)
        commit = len(cfg.cluster.members)
        version = _save_db(cfg, length, commit, log)
        _save_wal_and_snap(cfg, wdir, commit, version)
    except BaseException:
        for p in created:
            shutil.rmtree(p, ignore_errors=True)
        raise
    log(
        "snapshot/v3_snapshot.go:293",
        "restored snapshot",
        path=cfg.snapshot_path,
        **{"wal-dir": wdir, "data-dir": cfg.data_dir, "snap-dir": sdir},
    )


def _save_db(cfg: RestoreConfig, length: int, commit: int, log: Log) -> str:
    """Install the stream as the member's backend, for the new cluster; its cluster version."""
    backend = LmdbBackend(db_path(cfg.data_dir))
    try:
        try:
            backend.restore(backend_stream(cfg.snapshot_path, length))
        except snapshot.SnapshotCorrupt as e:
            raise SnapshotError(f"{cfg.snapshot_path}: {e} (not a petcd snapshot file, or damaged)") from None
        if cfg.revision_bump:
            _bump_revision(backend, cfg.revision_bump, cfg.mark_compacted, log)
        with backend.write_txn() as txn:
            # the old cluster's membership goes; the new cluster's is what the raft snapshot says
            for bucket in (MEMBERS_BUCKET, MEMBERS_REMOVED_BUCKET):
                for key in [k for k, _ in txn.range(bucket, b"\x00", None)]:
                    txn.delete(bucket, key)
            for m in cfg.cluster.members:
                txn.put(MEMBERS_BUCKET, id_str(m.id).encode(), m.encode())
                log(
                    "membership/cluster.go:421",
                    "added member",
                    **{
                        "cluster-id": id_str(cfg.cluster.cluster_id),
                        "local-member-id": "0",
                        "added-peer-id": id_str(m.id),
                        "added-peer-peer-urls": list(m.peer_urls),
                    },
                )
            put_consistent_index(txn, commit, 1)
            raw = txn.get(CLUSTER_BUCKET, CLUSTER_VERSION_KEY)
        backend.sync()
        return raw.decode() if raw else ""
    finally:
        backend.close()


def _bump_revision(backend: LmdbBackend, bump: int, mark_compacted: bool, log: Log) -> None:
    kv = KVStore(backend)
    latest = kv.current_rev
    bumped = latest + bump
    log("snapshot/v3_snapshot.go:432", "bumping latest revision", latest=latest, **{"bump-amount": bump})
    with kv.write() as w:
        w.backend.put(META_BUCKET, CURRENT_REV_KEY, struct.pack(">Q", bumped))
    kv.reload()
    if mark_compacted:
        log("snapshot/v3_snapshot.go:446", "marking revision compacted", revision=bumped)
        kv.compact(bumped, physical=True)


def _save_wal_and_snap(cfg: RestoreConfig, wdir: str, commit: int, cluster_version: str) -> None:
    fs = OsFileSystem()
    cluster = cfg.cluster
    metadata = encode_metadata(Metadata(node_id=cluster.local.id, cluster_id=cluster.cluster_id))
    entries = [
        Entry(
            term=1,
            index=i + 1,
            type=EntryType.CONF_CHANGE_V2,
            data=ConfChange(
                changes=(ConfChangeSingle(ConfChangeType.ADD_NODE, m.id),), context=m.encode()
            ).encode(),
        )
        for i, m in enumerate(cluster.members)
    ]
    conf_state = ConfState(voters=tuple(cluster.member_ids))
    data = snapshot_data(cluster.members, cluster_version)
    wal = Wal.create(fs, wdir, metadata)
    try:
        wal.save(HardState(term=1, vote=cluster.members[0].id, commit=commit), entries)
        raft_snap = Snapshot(
            data=data, metadata=SnapshotMetadata(conf_state=conf_state, index=commit, term=1)
        )
        Snapshotter(fs, snap_dir(cfg.data_dir)).save_snap(raft_snap)
        wal.save_snapshot(WalSnapshot(index=commit, term=1, conf_state=conf_state))
    finally:
        wal.close()
