"""A Hypothesis state machine: random append / hard state / cut / snapshot / release+purge /
reopen / crash+reopen sequences against a model of what the WAL must return.

The model is raft's view: the log (a later append at an uncommitted index replaces the tail),
the last hard state, the snapshot markers saved. After every reopen - at the newest marker, and
read-only at every older marker whose segments still exist - the WAL must return exactly the
model's entries after that marker and the model's hard state; a marker whose segments were
purged must fail with WalNotFoundError, never return something else.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from petcd.codec.wal import WalSnapshot
from petcd.fs.sim import SimFileSystem
from petcd.raft.types import EMPTY_HARD_STATE, Entry, HardState
from petcd.wal import Wal, WalNotFoundError
from petcd.wal.wal import parse_wal_name, wal_names

DIR = "/data/member/wal"
META = b"\x08\x07\x10\x09"


class WalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fs = SimFileSystem()
        self.segment_bytes = 1024
        self.wal: Wal
        self.entries: list[Entry] = []
        self.hs = EMPTY_HARD_STATE
        # Hard states written since the last one an fsync covered (a crash may keep any of them).
        self.unsynced_hs: list[HardState] = []
        self.snaps: list[WalSnapshot] = [WalSnapshot()]
        self.term = 1

    @initialize(segment_bytes=st.sampled_from([256, 700, 2048]))
    def create(self, segment_bytes: int) -> None:
        self.segment_bytes = segment_bytes
        self.wal = Wal.create(self.fs, DIR, META, segment_bytes=segment_bytes)

    # --- writes ----------------------------------------------------------------------------

    @rule(back=st.integers(0, 4), n=st.integers(1, 12), size=st.integers(0, 300), new_term=st.booleans())
    def append(self, back: int, n: int, size: int, new_term: bool) -> None:
        # Raft only ever replaces uncommitted entries.
        start = max(self.hs.commit + 1, len(self.entries) + 1 - back)
        if new_term:
            self.term += 1
        ents = [Entry(term=self.term, index=i, data=bytes([i % 256]) * size) for i in range(start, start + n)]
        hs = HardState(term=self.term, vote=1, commit=self.hs.commit)
        self.wal.save(hs, ents)
        del self.entries[start - 1 :]
        self.entries.extend(ents)
        self.hs = hs
        self.unsynced_hs = []

    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        if self.hs.commit >= len(self.entries):
            return
        commit = data.draw(st.integers(self.hs.commit + 1, len(self.entries)))
        hs = HardState(term=self.term, vote=1, commit=commit)
        synced = hs.term != self.hs.term or hs.vote != self.hs.vote
        self.wal.save(hs, [])
        self.unsynced_hs = [] if synced else [*self.unsynced_hs, self.hs]
        self.hs = hs

    @rule()
    def cut(self) -> None:
        self.wal.cut()
        self.unsynced_hs = []

    @rule(data=st.data())
    def snapshot(self, data: st.DataObject) -> None:
        last = self.snaps[-1].index
        if self.hs.commit <= last:
            return
        index = data.draw(st.integers(last + 1, self.hs.commit))
        snap = WalSnapshot(index=index, term=self.entries[index - 1].term)
        self.wal.save_snapshot(snap)
        self.snaps.append(snap)
        self.unsynced_hs = []

    @precondition(lambda self: len(self.snaps) > 1)
    @rule(max_wals=st.integers(1, 4))
    def release_and_purge(self, max_wals: int) -> None:
        held_before = self.wal.segment_names
        self.wal.release_lock_to(self.snaps[-1].index)
        held = self.wal.segment_names
        assert held == held_before[len(held_before) - len(held) :]
        removed = self.wal.purge(max_wals)
        event(f"purged {min(len(removed), 3)}")
        remaining = wal_names(self.fs, DIR)
        assert set(held) <= set(remaining)
        assert not set(removed) & set(remaining)

    # --- reopening -------------------------------------------------------------------------

    def _reopen(self) -> None:
        latest = self.snaps[-1]
        self.wal = Wal.open(self.fs, DIR, latest, segment_bytes=self.segment_bytes)
        md, hs, ents = self.wal.read_all()
        assert md == META
        assert ents == self.entries[latest.index :]
        if self.unsynced_hs:
            assert hs in [*self.unsynced_hs, self.hs]
            self.hs = hs
            self.unsynced_hs = []
        assert hs == self.hs
        self._check_older_markers()

    def _check_older_markers(self) -> None:
        starts = [parse_wal_name(n)[1] for n in wal_names(self.fs, DIR)]  # type: ignore[index]
        for snap in self.snaps[:-1]:
            try:
                ro = Wal.open(self.fs, DIR, snap, write=False, segment_bytes=self.segment_bytes)
                _, _, ents = ro.read_all()
            except WalNotFoundError:
                assert not any(s <= snap.index for s in starts), f"{snap} should still open"
                continue
            assert ents == self.entries[snap.index :]

    @rule()
    def close_and_reopen(self) -> None:
        self.wal.close()
        self.unsynced_hs = []
        self._reopen()

    @rule(seed=st.integers(0, 2**16))
    def crash_and_reopen(self, seed: int) -> None:
        self.fs.crash(random.Random(seed))
        self._reopen()

    def teardown(self) -> None:
        # Every sequence ends with a check that what it wrote comes back.
        if hasattr(self, "wal"):
            self.close_and_reopen()

    @invariant()
    def commit_within_log(self) -> None:
        assert self.hs.commit <= len(self.entries)


WalMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestWalModel = WalMachine.TestCase
