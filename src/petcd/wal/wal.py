"""The write-ahead log: raft's hard state and entries, durable before anything acts on them.

Layout
------
A WAL is a directory of segment files `<seq:016x>-<index:016x>.wal`: `seq` counts segments from
0, `index` is the raft index the segment's first entry is expected to have (one past the last
entry written before it was cut). Each segment is preallocated (`segment_bytes`, 64 MB by
default) so appends do not grow the file, and begins with a CRC record (the running CRC where
the previous segment ended), a metadata record (the member's encoded `etcdserverpb.Metadata`,
the same bytes in every segment) and, after the first, the hard state at the cut. Then come
entry, state and snapshot records (see petcd.wal.record for the framing).

A new segment is written whole under `<name>.tmp`, fdatasynced, renamed into place and the
directory fsynced, so a segment name that survives a crash always names a complete head. Before
the cut the old segment is truncated to its last record and synced: only the last segment can
end in preallocated zeros or in a torn record.

Writing
-------
`save(hard_state, entries)` encodes the whole batch into one buffer, hands it to the file in one
write and, if raft says it must (new entries, or a changed term or vote), fdatasyncs once: the
group commit. When the tail segment passes `segment_bytes`, it is cut. `save_snapshot` records a
snapshot marker (index, term, conf state) and always syncs.

Reading
-------
`Wal.open(fs, dir, snap)` selects the segments from the one that holds `snap.index` onwards;
`read_all()` replays them: it checks the CRC chain and the metadata, returns the last hard
state and the entries after `snap.index` (a later entry with an index already seen replaces the
tail from there, as raft's log does), and fails if the marker for `snap` is missing. A torn
tail of the last segment - the record a crash cut short, or one whose sectors did not all reach
the disk - is cut off: the file is truncated there, re-extended with zeros and synced, and
`repaired` tells the caller where. Damage anywhere else raises `CorruptWalError` naming the file
and offset. After `read_all` the WAL appends where the valid records end.

Releasing
---------
Segments the WAL opened are "held". `release_lock_to(index)` lets go of those that lie wholly
before the segment holding `index` (etcd's ReleaseLockTo); it refuses an index beyond the newest
snapshot marker the WAL knows, so a segment is only released once a snapshot covers it (the
caller must also have the backend state of that snapshot on disk - DESIGN.md, "Durability
contract"). `purge(max_wals)` then removes the oldest released segments while more than
`max_wals` remain.

`unsafe_no_fsync` (etcd's --unsafe-no-fsync) skips every fsync; it is the only way to do so.
"""

from __future__ import annotations

import itertools
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from petcd.codec.errors import DecodeError
from petcd.codec.raft import decode_entry, decode_hard_state, encode_entry, encode_hard_state
from petcd.codec.wal import RecordType, WalRecord, WalSnapshot, decode_wal_snapshot, encode_wal_snapshot
from petcd.fs import File, FileSystem, Lock, LockedError
from petcd.raft.rawnode import must_sync
from petcd.raft.types import EMPTY_HARD_STATE, Entry, HardState
from petcd.wal.errors import (
    CorruptWalError,
    MetadataConflictError,
    SliceOutOfRangeError,
    SnapshotMismatchError,
    SnapshotNotFoundError,
    WalError,
    WalExistsError,
    WalNotFoundError,
)
from petcd.wal.record import SegmentDecoder, Stop, crc_update, encode_frame

SEGMENT_BYTES = 64 * 1000 * 1000
DEFAULT_MAX_WALS = 5

_WAL_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")


def wal_name(seq: int, index: int) -> str:
    return f"{seq:016x}-{index:016x}.wal"


def parse_wal_name(name: str) -> tuple[int, int] | None:
    """(seq, index) of a segment file name, or None if it is not one."""
    m = _WAL_NAME.match(name)
    if m is None:
        return None
    return int(m.group(1), 16), int(m.group(2), 16)


def wal_names(fs: FileSystem, dir: str) -> list[str]:
    """The segment names in `dir`, in order (other files are ignored)."""
    if not fs.is_dir(dir):
        return []
    return [n for n in fs.list_dir(dir) if parse_wal_name(n) is not None]


def exists(fs: FileSystem, dir: str) -> bool:
    return bool(wal_names(fs, dir))


@dataclass(frozen=True, slots=True)
class _Segment:
    name: str
    seq: int
    index: int


def _segment(name: str) -> _Segment:
    parsed = parse_wal_name(name)
    assert parsed is not None, name
    return _Segment(name, *parsed)


class _UnknownRecord(Exception):
    pass


class _Replay:
    """What replaying records from a snapshot marker accumulates (etcd's ReadAll loop)."""

    def __init__(self, start: WalSnapshot) -> None:
        self.start = start
        self.metadata: bytes | None = None
        self.state = EMPTY_HARD_STATE
        self.ents: list[Entry] = []
        self.match = False
        self.enti = 0
        self.snap_index = 0

    def apply(self, rec: WalRecord, path: str) -> None:
        t = rec.type
        if t == RecordType.ENTRY:
            self._entry(decode_entry(rec.data), path)
        elif t == RecordType.STATE:
            self.state = decode_hard_state(rec.data)
        elif t == RecordType.METADATA:
            if self.metadata is not None and self.metadata != rec.data:
                raise MetadataConflictError(f"wal: {path}: conflicting metadata found")
            self.metadata = rec.data
        elif t == RecordType.SNAPSHOT:
            self._snapshot(decode_wal_snapshot(rec.data))
        elif t != RecordType.CRC:
            raise _UnknownRecord

    def _entry(self, e: Entry, path: str) -> None:
        first = self.start.index + 1
        if e.index < first:
            # Raft cut its log back to e.index (before the snapshot was taken): whatever was read
            # after the snapshot index so far was replaced. etcd keeps it; that returns entries
            # that are no longer in the log.
            self.ents.clear()
        else:
            up = e.index - first
            if up > len(self.ents):
                after = self.start.index + len(self.ents)
                raise SliceOutOfRangeError(f"wal: {path}: entry {e.index} leaves a gap after {after}")
            # A re-sent index replaces the tail from there on, as in raft's own log.
            del self.ents[up:]
            self.ents.append(e)
        self.enti = e.index

    def _snapshot(self, s: WalSnapshot) -> None:
        self.snap_index = max(self.snap_index, s.index)
        if s.index == self.start.index:
            if s.term != self.start.term:
                raise SnapshotMismatchError(
                    f"wal: snapshot marker at index {s.index} has term {s.term}, expected {self.start.term}"
                )
            self.match = True


class WalData(NamedTuple):
    metadata: bytes
    hard_state: HardState
    entries: list[Entry]


class Wal:
    """One WAL directory, open for appending (or, with `write=False`, for reading only)."""

    def __init__(
        self,
        fs: FileSystem,
        dir: str,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        unsafe_no_fsync: bool = False,
    ) -> None:
        """Use `Wal.create` or `Wal.open`."""
        self._fs = fs
        self.dir = dir
        self.segment_bytes = segment_bytes
        self.unsafe_no_fsync = unsafe_no_fsync
        self._metadata = b""
        # The last hard state written or read; repeated at the head of every new segment.
        self._state = EMPTY_HARD_STATE
        # Index of the last entry written or read.
        self._enti = 0
        # Newest snapshot marker index written or read: nothing past it may be released.
        self._snap_index = 0
        # The segments this WAL holds (opened or created, not yet released), oldest first.
        self._segments: list[_Segment] = []
        self._tail: File | None = None
        # Invariant: everything before _offset in the tail is written; _pending goes there next.
        self._offset = 0
        self._pending = bytearray()
        self._crc = 0
        self._start = WalSnapshot()
        self._reading = False
        self._write = True
        self._closed = False
        # Held while open for writing: a second writer fails at once (etcd flocks its segments).
        self._lock: Lock | None = None
        # (segment path, offset) where read_all cut off a torn tail, for the caller to log.
        self.repaired: tuple[str, int] | None = None

    # --- creating and opening --------------------------------------------------------------

    @classmethod
    def create(
        cls,
        fs: FileSystem,
        dir: str,
        metadata: bytes,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        unsafe_no_fsync: bool = False,
    ) -> Wal:
        """A new WAL whose first segment holds the metadata and an empty snapshot marker."""
        if exists(fs, dir):
            raise WalExistsError(f"wal: {dir} already holds a WAL")
        fs.make_dirs(dir)
        w = cls(fs, dir, segment_bytes=segment_bytes, unsafe_no_fsync=unsafe_no_fsync)
        w._take_lock()
        w._metadata = metadata
        w._remove_temporaries()
        # The empty snapshot marker is part of the first segment's head, so the segment that
        # appears under its final name can always be opened at WalSnapshot().
        head = [
            WalRecord(RecordType.METADATA, data=metadata),
            WalRecord(RecordType.SNAPSHOT, data=encode_wal_snapshot(WalSnapshot())),
        ]
        w._start_segment(_segment(wal_name(0, 0)), prev_crc=0, head=head)
        if not unsafe_no_fsync:
            # The directories may be new too: make their entries durable (wal in member, member
            # in the data dir) so the WAL cannot vanish with them.
            parent = posixpath.dirname(posixpath.normpath(dir))
            for d in (parent, posixpath.dirname(parent)):
                if d and d != "/":
                    fs.fsync_dir(d)
        return w

    @classmethod
    def open(
        cls,
        fs: FileSystem,
        dir: str,
        snap: WalSnapshot | None = None,
        *,
        write: bool = True,
        segment_bytes: int = SEGMENT_BYTES,
        unsafe_no_fsync: bool = False,
    ) -> Wal:
        """Open at a snapshot marker; call `read_all()` next. `write=False` never modifies files."""
        snap = snap or WalSnapshot()
        names = wal_names(fs, dir)
        if not names:
            raise WalNotFoundError(f"wal: no segment files in {dir}")
        segments = [_segment(n) for n in names]
        first = None
        for i in range(len(segments) - 1, -1, -1):
            if segments[i].index <= snap.index:
                first = i
                break
        if first is None:
            raise WalNotFoundError(f"wal: no segment in {dir} holds index {snap.index}")
        held = segments[first:]
        for a, b in itertools.pairwise(held):
            if b.seq != a.seq + 1:
                raise WalNotFoundError(f"wal: segment sequence broken in {dir}: {a.name} then {b.name}")
        w = cls(fs, dir, segment_bytes=segment_bytes, unsafe_no_fsync=unsafe_no_fsync)
        w._segments = held
        w._start = snap
        w._reading = True
        w._write = write
        if write:
            w._take_lock()
            try:
                w._remove_temporaries()
            except BaseException:
                w.close()
                raise
        return w

    def _take_lock(self) -> None:
        try:
            self._lock = self._fs.try_lock(self.dir)
        except LockedError:
            raise WalError(f"wal: {self.dir} is already open for writing by another process") from None

    def _path(self, name: str) -> str:
        return posixpath.join(self.dir, name)

    def _remove_temporaries(self) -> None:
        """Segments whose creation a crash interrupted: never renamed into place, so never used."""
        removed = False
        for name in self._fs.list_dir(self.dir):
            if name.endswith(".wal.tmp"):
                self._fs.remove(self._path(name))
                removed = True
        if removed:
            self._fsync_dir()

    # --- reading ---------------------------------------------------------------------------

    def read_all(self) -> WalData:
        """Replay the held segments from the snapshot marker given to `open`.

        On any error the WAL is closed (and its lock released): it cannot be used.
        """
        if not self._reading:
            raise WalError("wal: read_all is only allowed once, right after open")
        self._reading = False
        try:
            return self._read_all()
        except BaseException:
            self.close()
            raise

    def _read_all(self) -> WalData:
        replay = _Replay(self._start)
        crc = 0
        decoder: SegmentDecoder | None = None
        for i, seg in enumerate(self._segments):
            path = self._path(seg.name)
            last = i == len(self._segments) - 1
            decoder = SegmentDecoder(path, self._fs.read_file(path), crc, is_last=last)
            for rec in decoder.records():
                try:
                    replay.apply(rec, path)
                except DecodeError as e:
                    # The CRC matched, so these are the bytes that were written: a writer bug.
                    kind = RecordType(rec.type).name
                    raise CorruptWalError(path, decoder.record_offset, f"undecodable {kind}: {e}") from None
                except _UnknownRecord:
                    reason = f"unexpected record type {rec.type}"
                    raise CorruptWalError(path, decoder.record_offset, reason) from None
            crc = decoder.crc
        assert decoder is not None
        if not replay.match:
            start = self._start
            raise SnapshotNotFoundError(
                f"wal: no snapshot marker for index {start.index} term {start.term} in {self.dir}"
            )
        self._metadata = replay.metadata or b""
        self._state = replay.state
        self._enti = replay.enti
        self._snap_index = replay.snap_index
        self._crc = crc
        if self._write:
            self._open_tail(decoder)
        return WalData(self._metadata, replay.state, replay.ents)

    def _open_tail(self, decoder: SegmentDecoder) -> None:
        tail = self._fs.open(decoder.path)
        self._tail = tail
        self._offset = decoder.offset
        buf = decoder.buf
        if decoder.stop is Stop.TORN or buf.count(0, decoder.offset) != len(buf) - decoder.offset:
            # Cut off the torn record - and any bytes a crash left beyond the hole it made: new
            # records would land right before them, and a stale record that happens to continue
            # the CRC chain would come back to life. Zero the rest, keeping the preallocated size,
            # and make that durable before anything new is appended.
            size = tail.size()
            tail.truncate(decoder.offset)
            tail.preallocate(size)
            self._sync()
            self.repaired = (decoder.path, decoder.offset)

    # --- writing ---------------------------------------------------------------------------

    def _writable(self) -> File:
        if self._tail is None or self._closed:
            raise WalError("wal: not open for writing (call read_all after open)")
        return self._tail

    def _append(self, type: RecordType, data: bytes) -> None:
        self._crc = crc_update(self._crc, data)
        self._pending += encode_frame(WalRecord(type, self._crc, data))

    def _flush(self) -> None:
        if self._pending:
            self._writable().pwrite(self._offset, bytes(self._pending))
            self._offset += len(self._pending)
            self._pending.clear()

    def _sync(self) -> None:
        if not self.unsafe_no_fsync:
            self._writable().fdatasync()

    def _fsync_dir(self) -> None:
        if not self.unsafe_no_fsync:
            self._fs.fsync_dir(self.dir)

    def save(self, hard_state: HardState, entries: Sequence[Entry], force_sync: bool = False) -> None:
        """Append the entries and the hard state; one fdatasync for the whole batch if needed.

        Needed means raft's rule (new entries, term or vote changed) or `force_sync`: a caller that
        will act on a commit-only change (installing a snapshot, as etcd's storage.Sync()) asks for it.
        """
        if hard_state.is_empty() and not entries:
            return
        self._writable()
        sync = force_sync or must_sync(hard_state, self._state, len(entries))
        for e in entries:
            self._append(RecordType.ENTRY, encode_entry(e))
            self._enti = e.index
        if not hard_state.is_empty():
            self._append(RecordType.STATE, encode_hard_state(hard_state))
            self._state = hard_state
        self._flush()
        if self._offset < self.segment_bytes:
            if sync:
                self._sync()
            return
        self.cut()

    def save_snapshot(self, snap: WalSnapshot) -> None:
        """Record a snapshot marker: reopening at `snap` will find it. Always synced."""
        self._writable()
        self._append(RecordType.SNAPSHOT, encode_wal_snapshot(snap))
        self._enti = max(self._enti, snap.index)
        self._snap_index = max(self._snap_index, snap.index)
        self._flush()
        self._sync()

    def sync(self) -> None:
        self._flush()
        self._sync()

    def cut(self) -> None:
        """Close the tail segment at its last record and continue in a new one."""
        tail = self._writable()
        self._flush()
        tail.truncate(self._offset)
        self._sync()
        last = self._segments[-1]
        head = [WalRecord(RecordType.METADATA, data=self._metadata)]
        if not self._state.is_empty():
            head.append(WalRecord(RecordType.STATE, data=encode_hard_state(self._state)))
        self._start_segment(
            _segment(wal_name(last.seq + 1, self._enti + 1)),
            prev_crc=self._crc,
            head=head,
        )
        tail.close()

    def _start_segment(self, seg: _Segment, prev_crc: int, head: list[WalRecord]) -> None:
        """Write a segment's head under a temporary name, sync it, then rename it into place."""
        tmp = self._path(seg.name + ".tmp")
        f = self._fs.open(tmp, create=True)
        f.truncate(0)
        f.preallocate(self.segment_bytes)
        self._tail = f
        self._offset = 0
        self._crc = prev_crc
        self._pending += encode_frame(WalRecord(RecordType.CRC, crc=prev_crc))
        for rec in head:
            self._append(RecordType(rec.type), rec.data)
        self._flush()
        self._sync()
        self._fs.rename(tmp, self._path(seg.name))
        self._fsync_dir()
        # Reopen under the final name so the handle's path names the segment in messages.
        f.close()
        self._tail = self._fs.open(self._path(seg.name))
        self._segments.append(seg)

    # --- releasing -------------------------------------------------------------------------

    @property
    def segment_names(self) -> list[str]:
        """The held segments, oldest first."""
        return [s.name for s in self._segments]

    def release_lock_to(self, index: int) -> None:
        """Release the held segments that lie wholly before the one holding `index`.

        `index` must be covered by a snapshot marker in this WAL; the caller must also have the
        backend state of that snapshot on disk.
        """
        if index > self._snap_index:
            raise WalError(
                f"wal: cannot release up to index {index}: "
                f"the newest snapshot marker is at {self._snap_index}"
            )
        found = next((i for i, s in enumerate(self._segments) if s.index >= index), None)
        smaller = (found if found is not None else len(self._segments)) - 1
        if smaller <= 0:
            return
        del self._segments[:smaller]

    def purge(self, max_wals: int = DEFAULT_MAX_WALS) -> list[str]:
        """Remove the oldest released segments while more than `max_wals` remain; their names."""
        names = wal_names(self._fs, self.dir)
        held = {s.name for s in self._segments}
        removed = []
        while len(names) > max_wals and names[0] not in held:
            self._fs.remove(self._path(names[0]))
            removed.append(names.pop(0))
        if removed:
            self._fsync_dir()
        return removed

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._tail is not None:
                self._flush()
                self._sync()
                self._tail.close()
        finally:
            self._closed = True
            if self._lock is not None:
                self._lock.release()
                self._lock = None


def valid_snapshot_entries(fs: FileSystem, dir: str) -> list[WalSnapshot]:
    """The snapshot markers in the whole WAL at or below the last committed index, oldest first.

    The snapshotter loads the newest `.snap` file that one of these names, so a snapshot file
    written ahead of its WAL marker (a crash in between) is never used.
    """
    names = wal_names(fs, dir)
    if not names:
        raise WalNotFoundError(f"wal: no segment files in {dir}")
    snaps: list[WalSnapshot] = []
    state = EMPTY_HARD_STATE
    crc = 0
    for i, name in enumerate(names):
        path = posixpath.join(dir, name)
        decoder = SegmentDecoder(path, fs.read_file(path), crc, is_last=i == len(names) - 1)
        for rec in decoder.records():
            if rec.type == RecordType.SNAPSHOT:
                snaps.append(decode_wal_snapshot(rec.data))
            elif rec.type == RecordType.STATE:
                state = decode_hard_state(rec.data)
        crc = decoder.crc
    return [s for s in snaps if s.index <= state.commit]
