"""A Hypothesis state machine drives the lessor against a small model of deadlines.

The model keeps, per lease, its TTL, its last checkpointed remaining TTL, its keys and (while
primary) its deadline, computed the way etcd defines them: grant and renew start the TTL now,
promote starts the remaining (checkpointed, else full) TTL plus the extension, demote removes
every deadline, a restart reloads the records without deadlines. The machine plays the server:
it applies every checkpoint the lessor proposes and revokes every lease `tick` reports.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from petcd.lease import (
    LeaseCheckpoint,
    LeaseExists,
    LeaseExpired,
    LeaseNotFound,
    Lessor,
    LessorConfig,
    MemoryLeaseBucket,
)
from petcd.lease.lessor import FOREVER_TTL_S
from petcd.pb.leasepb import lease_pb2

MIN_TTL = 3
INTERVAL = 20.0
IDS = st.integers(1, 6)
KEYS = st.sampled_from([b"a", b"b", b"c", b"d"])


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


class LessorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.bucket = MemoryLeaseBucket()
        self.primary = False
        self.ttl: dict[int, int] = {}
        self.ckpt: dict[int, int] = {}
        self.keys: dict[int, set[bytes]] = {}
        self.deadline: dict[int, float] = {}
        self.lessor = self._open()

    def _open(self) -> Lessor:
        config = LessorConfig(
            min_lease_ttl_s=MIN_TTL,
            checkpoint_interval_s=INTERVAL,
            expired_lease_retry_interval_s=1.0,
            revoke_limit_per_tick=1000,
        )
        return Lessor(
            self.bucket, self.clock, config, range_deleter=None, checkpointer=self._apply_checkpoints
        )

    def _apply_checkpoints(self, batch: list[LeaseCheckpoint]) -> None:
        # the server proposes them; they come back committed and every member applies them
        for cp in batch:
            self.lessor.checkpoint(cp.id, cp.remaining_ttl_s)
            if cp.id in self.ttl:
                assert 0 <= cp.remaining_ttl_s < self.ttl[cp.id]
                self.ckpt[cp.id] = cp.remaining_ttl_s

    def _start(self, lease_id: int, extend: float = 0.0) -> None:
        remaining = self.ckpt.get(lease_id, 0) or self.ttl[lease_id]
        self.deadline[lease_id] = self.clock.t + extend + remaining

    @rule(lease_id=IDS, ttl=st.integers(0, 60))
    def grant(self, lease_id: int, ttl: int) -> None:
        if lease_id in self.ttl:
            with pytest.raises(LeaseExists):
                self.lessor.grant(lease_id, ttl)
            return
        lease = self.lessor.grant(lease_id, ttl)
        self.ttl[lease_id] = max(ttl, MIN_TTL)
        assert lease.ttl == self.ttl[lease_id]
        self.keys[lease_id] = set()
        if self.primary:
            self._start(lease_id)

    @rule(lease_id=IDS)
    def revoke(self, lease_id: int) -> None:
        if lease_id not in self.ttl:
            with pytest.raises(LeaseNotFound):
                self.lessor.revoke(lease_id)
            return
        self.lessor.revoke(lease_id)
        self._forget(lease_id)

    def _forget(self, lease_id: int) -> None:
        for d in (self.ttl, self.ckpt, self.keys, self.deadline):
            d.pop(lease_id, None)

    @rule(lease_id=IDS, key=KEYS)
    def attach(self, lease_id: int, key: bytes) -> None:
        if lease_id not in self.ttl:
            return
        for keys in self.keys.values():
            keys.discard(key)
        self.lessor.attach(lease_id, key)
        self.keys[lease_id].add(key)

    @rule(lease_id=IDS)
    def renew(self, lease_id: int) -> None:
        if not self.primary or lease_id not in self.ttl:
            return
        if self.deadline[lease_id] <= self.clock.t:
            with pytest.raises(LeaseExpired):
                self.lessor.renew(lease_id)
            return
        assert self.lessor.renew(lease_id) == self.ttl[lease_id]
        self.ckpt.pop(lease_id, None)
        self.deadline[lease_id] = self.clock.t + self.ttl[lease_id]

    @rule(extend=st.integers(0, 3))
    def promote(self, extend: int) -> None:
        self.lessor.promote(extend)
        self.primary = True
        for lease_id in self.ttl:
            self._start(lease_id, extend)

    @rule()
    def demote(self) -> None:
        self.lessor.demote()
        self.primary = False
        self.deadline.clear()

    @rule()
    def restart(self) -> None:
        self.lessor = self._open()
        self.primary = False
        self.deadline.clear()
        for lease_id, keys in self.keys.items():  # the store re-attaches its leased keys
            for key in keys:
                self.lessor.attach(lease_id, key)

    @rule(seconds=st.integers(1, 15))
    def advance_and_tick(self, seconds: int) -> None:
        self.clock.t += seconds
        expired = self.lessor.tick()
        for lease in expired:
            assert self.primary
            assert self.deadline[lease.id] <= self.clock.t, "reported before its deadline"
            self.lessor.revoke(lease.id)  # the server's revoke, committed and applied
            self._forget(lease.id)
        for lease_id, deadline in self.deadline.items():
            assert deadline > self.clock.t, f"lease {lease_id} expired but not reported"

    @precondition(lambda self: self.primary)
    @rule()
    def time_to_live(self) -> None:
        for lease_id, deadline in self.deadline.items():
            got = self.lessor.time_to_live(lease_id, keys=True)
            assert got.ttl_s == math.trunc(deadline - self.clock.t)
            assert got.granted_ttl_s == self.ttl[lease_id]
            assert set(got.keys) == self.keys[lease_id]

    @invariant()
    def same_leases_and_records(self) -> None:
        assert {lease.id for lease in self.lessor.leases()} == set(self.ttl)
        records = {}
        for raw in self.bucket.load_leases():
            rec = lease_pb2.Lease.FromString(raw)
            records[rec.ID] = (rec.TTL, rec.RemainingTTL)
        assert records == {i: (ttl, self.ckpt.get(i, 0)) for i, ttl in self.ttl.items()}
        for lease_id, keys in self.keys.items():
            lease = self.lessor.lookup(lease_id)
            assert lease is not None and set(lease.sorted_keys()) == keys
            for key in keys:
                assert self.lessor.get_lease(key) == lease_id
        if not self.primary:
            for lease_id in self.ttl:
                assert self.lessor.time_to_live(lease_id).ttl_s == FOREVER_TTL_S


TestLessorMachine = LessorMachine.TestCase
TestLessorMachine.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
