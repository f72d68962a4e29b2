"""Crash the WAL writer at every write and every fsync; what comes back must be a prefix that
holds every record that was fsynced.

The workload writes batches of entries (some large enough to span several 512-byte sectors,
so a crash can tear them), hard states (some commit-only, which raft does not fsync), snapshot
markers and segment cuts (small segments). It runs once to count the file system operations;
then, for every operation k, again on a fresh SimFileSystem that loses power right before
operation k. The crash keeps, drops or tears every unsynced write (several seeds per k). Then:

* if `Wal.create` had returned, the WAL must exist;
* reopened, it returns entries that are a prefix of those written, at least up to the last one
  covered by an fsync; the hard state is one that was written, no older than the last synced
  one; opening at the newest synced snapshot marker works;
* appending after the recovery works and survives a second crash (during recovery and append)
  and a third reopen: the torn tail was truly repaired, not just skipped once.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field

import pytest

from petcd.codec.wal import WalSnapshot
from petcd.fs.sim import SimCrash, SimFileSystem
from petcd.raft.types import EMPTY_HARD_STATE, Entry, HardState
from petcd.wal import Wal, WalNotFoundError, exists

DIR = "/data/member/wal"
META = b"\x08\x01\x10\x02"
SEGMENT_BYTES = 1536
BATCHES = 30
SEEDS_PER_POINT = 3


def payload(index: int) -> bytes:
    # Sizes from a few bytes to ~1.3 KB: large ones span sectors and can be torn.
    size = (index * 37) % 1300 if index % 4 == 0 else 8 + index % 50
    return bytes((index + i) % 251 + 1 for i in range(size))


@dataclass
class Log:
    """What the writer did, and what was durable when it stopped."""

    created: bool = False
    entries: list[Entry] = field(default_factory=list)
    states: list[HardState] = field(default_factory=list)
    # Entries [0, synced_entries) and states[synced_state:] bounds were covered by an fsync.
    synced_entries: int = 0
    synced_state: int = -1
    snapshots: list[WalSnapshot] = field(default_factory=list)
    synced_snapshots: int = 0
    purged: int = 0


def write_batches(w: Wal, log: Log, first_batch: int, batches: int) -> None:
    term = 1
    for b in range(first_batch, first_batch + batches):
        term = 1 + b // 6
        next_index = len(log.entries) + 1
        if b % 6 in (3, 4):
            ents: list[Entry] = []  # commit-only: raft does not fsync it
        else:
            ents = [
                Entry(term=term, index=next_index + i, data=payload(next_index + i)) for i in range(1 + b % 4)
            ]
        prev = log.states[-1] if log.states else EMPTY_HARD_STATE
        hs = HardState(term=term, vote=1, commit=max(prev.commit, len(log.entries) - (b % 2)))
        log.entries.extend(ents)
        log.states.append(hs)
        w.save(hs, ents)
        if ents or hs.term != prev.term or hs.vote != prev.vote:
            log.synced_entries = len(log.entries)
            log.synced_state = len(log.states) - 1
        last_snap = log.snapshots[-1].index if log.snapshots else 0
        if b % 7 == 6 and hs.commit > last_snap:
            snap = WalSnapshot(index=hs.commit, term=log.entries[hs.commit - 1].term)
            log.snapshots.append(snap)
            w.save_snapshot(snap)
            log.synced_snapshots = len(log.snapshots)
            # save_snapshot fsyncs, which makes every earlier write durable too.
            log.synced_entries = len(log.entries)
            log.synced_state = len(log.states) - 1
            # The snapshot covers everything up to its index: older segments may go.
            w.release_lock_to(snap.index)
            log.purged += len(w.purge(2))


def workload(fs: SimFileSystem, log: Log) -> None:
    w = Wal.create(fs, DIR, META, segment_bytes=SEGMENT_BYTES)
    log.created = True
    write_batches(w, log, 0, BATCHES)
    w.close()


def check_recovered(fs: SimFileSystem, log: Log, where: str) -> tuple[Wal, int, HardState] | None:
    """Reopen and check the durability contract; the open WAL, the entry count and hard state."""
    if not exists(fs, DIR):
        assert not log.created, f"{where}: WAL vanished after create returned"
        return None
    # Older segments may have been purged: open at the newest snapshot marker that was synced.
    snap = log.snapshots[log.synced_snapshots - 1] if log.synced_snapshots else WalSnapshot()
    w = Wal.open(fs, DIR, snap, segment_bytes=SEGMENT_BYTES)
    metadata, hs, ents = w.read_all()
    assert metadata == META, where
    n = snap.index + len(ents)
    assert ents == log.entries[snap.index : n], f"{where}: not a prefix of what was written"
    assert n >= log.synced_entries, f"{where}: lost fsynced entries: got {n}, synced {log.synced_entries}"
    if hs == EMPTY_HARD_STATE:
        assert log.synced_state < 0, f"{where}: lost the synced hard state"
    else:
        matches = [k for k, s in enumerate(log.states) if s == hs]
        assert matches, f"{where}: hard state {hs} was never written"
        assert max(matches) >= log.synced_state, f"{where}: hard state older than the synced one"
    return w, n, hs


def reset_log_to(log: Log, n: int, hs: HardState) -> None:
    """After a recovery, the log continues from what came back (all of it durable now)."""
    del log.entries[n:]
    log.synced_entries = n
    log.states = [hs]
    log.synced_state = 0
    log.snapshots = [s for s in log.snapshots[: log.synced_snapshots] if s.index <= n]
    log.synced_snapshots = len(log.snapshots)


def count_ops() -> int:
    fs = SimFileSystem()
    workload(fs, Log())
    return fs.ops


TOTAL_OPS = count_ops()


def test_the_workload_exercises_writes_syncs_cuts_and_purges() -> None:
    fs = SimFileSystem()
    log = Log()
    workload(fs, log)
    kinds = {k for k, _ in fs.op_log}
    assert {"write", "fdatasync", "rename", "fsync_dir", "truncate", "create", "remove"} <= kinds
    assert log.purged >= 2 and len(log.snapshots) >= 3
    assert len([n for n in fs.list_dir(DIR) if n.endswith(".wal")]) >= 2
    assert TOTAL_OPS >= 100


@pytest.mark.parametrize("chunk", range(4))
def test_crash_at_every_operation(chunk: int) -> None:
    points = [k for k in range(TOTAL_OPS + 1) if k % 4 == chunk]
    for k in points:
        for seed in range(SEEDS_PER_POINT):
            run_crash_point(k, seed)


def run_crash_point(k: int, seed: int) -> None:
    rng = random.Random(k * 1000 + seed)
    where = f"crash before op {k} (seed {seed})"
    fs = SimFileSystem()
    fs.crash_at = k
    log = Log()
    with contextlib.suppress(SimCrash):
        workload(fs, log)
    fs.crash(rng)
    opened = check_recovered(fs, log, where)
    if opened is None:
        return
    w, n, hs = opened
    # Second life: continue writing, crash at a random point of it, recover once more.
    reset_log_to(log, n, hs)
    fs.crash_at = fs.ops + rng.randrange(0, 50)
    try:
        write_batches(w, log, BATCHES, 8)
        w.close()
    except SimCrash:
        pass
    fs.crash(rng)
    opened = check_recovered(fs, log, where + ", then again during the second life")
    assert opened is not None
    w2, n2, hs2 = opened
    # Third life: no crash; everything appended after the second recovery must be readable.
    reset_log_to(log, n2, hs2)
    write_batches(w2, log, BATCHES + 8, 3)
    w2.close()
    snap = log.snapshots[-1] if log.snapshots else WalSnapshot()
    w3 = Wal.open(fs, DIR, snap, segment_bytes=SEGMENT_BYTES)
    _, _, ents = w3.read_all()
    assert ents == log.entries[snap.index :], where + ", third life"


def test_crash_before_create_finishes_leaves_no_wal() -> None:
    fs = SimFileSystem()
    fs.crash_at = 3
    with pytest.raises(SimCrash):
        workload(fs, Log())
    fs.crash(random.Random(1))
    assert not exists(fs, DIR)
    with pytest.raises(WalNotFoundError):
        Wal.open(fs, DIR, WalSnapshot())
    # A leftover temporary does not block a fresh create.
    w = Wal.create(fs, DIR, META, segment_bytes=SEGMENT_BYTES)
    w.close()
    assert [n for n in fs.list_dir(DIR) if n.endswith(".tmp")] == []
