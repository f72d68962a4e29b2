"""The lessor: grant, revoke, renew, time-to-live, list, attach/detach, expiry on a fake clock,
persistence and recovery, checkpointing across leader changes (etcd#9888), pile-up spreading.

Modelled on etcd's lease/lessor_test.go, driven synchronously: the tests play the server
(applying checkpoints and revokes the primary asks for).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from petcd.errors import EtcdError
from petcd.lease import (
    MAX_LEASE_TTL_S,
    NO_LEASE,
    LeaseCheckpoint,
    LeaseExists,
    LeaseExpired,
    LeaseIdGenerator,
    LeaseNotFound,
    LeaseTTLTooLarge,
    Lessor,
    LessorConfig,
    MemoryLeaseBucket,
    NotPrimary,
    min_lease_ttl_s,
)
from petcd.lease.lease_queue import LeaseExpiredNotifier
from petcd.lease.lessor import FOREVER_TTL_S, lease_id_from_key, lease_key
from petcd.pb.leasepb import lease_pb2


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeStore:
    """Keys with their lease; each ended delete txn is one revision, recorded in `revisions`."""

    lessor: Lessor | None = None
    keys: dict[bytes, int] = field(default_factory=dict)
    rev: int = 1
    revisions: list[tuple[int, list[bytes]]] = field(default_factory=list)

    def put(self, key: bytes, lease_id: int) -> None:
        assert self.lessor is not None
        self.rev += 1
        old = self.keys.get(key, 0)
        if old and old != lease_id:
            self.lessor.detach(old, key)
        self.keys[key] = lease_id
        if lease_id:
            self.lessor.attach(lease_id, key)

    def txn(self) -> FakeDeleteTxn:
        return FakeDeleteTxn(self)


@dataclass
class FakeDeleteTxn:
    store: FakeStore
    deleted: list[bytes] = field(default_factory=list)
    ended: bool = False

    def delete_range(self, key: bytes, end: bytes | None) -> tuple[int, int]:
        assert end is None and not self.ended
        lease_id = self.store.keys.pop(key, None)
        if lease_id is None:
            return 0, self.store.rev
        self.deleted.append(key)
        if lease_id and self.store.lessor is not None:
            # The real store detaches a deleted key from its lease, while the lease still exists.
            self.store.lessor.detach(lease_id, key)
        return 1, self.store.rev + 1

    def end(self) -> None:
        assert not self.ended
        self.ended = True
        if self.deleted:
            self.store.rev += 1
            self.store.revisions.append((self.store.rev, list(self.deleted)))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Harness:
    """A lessor over a memory bucket and a fake store, recording checkpoint proposals."""

    def __init__(self, clock: FakeClock, bucket: MemoryLeaseBucket | None = None, **config: object) -> None:
        self.clock = clock
        self.bucket = bucket if bucket is not None else MemoryLeaseBucket()
        self.store = FakeStore()
        self.proposed: list[list[LeaseCheckpoint]] = []
        cfg = LessorConfig(**config)  # type: ignore[arg-type]
        self.lessor = Lessor(self.bucket, clock, cfg, self.store.txn, self.proposed.append)
        self.store.lessor = self.lessor

    def apply_checkpoints(self, *lessors: Lessor) -> None:
        """Commit every proposed checkpoint batch: apply it on each member's lessor."""
        for batch in self.proposed:
            for cp in batch:
                for lessor in (self.lessor, *lessors):
                    lessor.checkpoint(cp.id, cp.remaining_ttl_s)
        self.proposed.clear()


def stored(bucket: MemoryLeaseBucket) -> dict[int, tuple[int, int]]:
    out = {}
    for raw in bucket.load_leases():
        rec = lease_pb2.Lease.FromString(raw)
        out[rec.ID] = (rec.TTL, rec.RemainingTTL)
    return out


# -- grant ------------------------------------------------------------------------------------


def test_grant_persists_and_raises_ttl_to_minimum(clock: FakeClock) -> None:
    h = Harness(clock, min_lease_ttl_s=5)
    lease = h.lessor.grant(1, 1)
    assert lease.ttl == 5
    assert h.lessor.grant(2, 10).ttl == 10
    assert stored(h.bucket) == {1: (5, 0), 2: (10, 0)}
    assert h.lessor.lookup(1) is lease
    assert len(h.lessor) == 2 and 2 in h.lessor and 3 not in h.lessor


def test_grant_errors_carry_etcd_strings(clock: FakeClock) -> None:
    h = Harness(clock)
    h.lessor.grant(7, 10)
    with pytest.raises(LeaseExists) as exists:
        h.lessor.grant(7, 20)
    assert str(exists.value) == "etcdserver: lease already exists"
    with pytest.raises(LeaseNotFound) as zero:
        h.lessor.grant(NO_LEASE, 10)
    assert str(zero.value) == "etcdserver: requested lease not found"
    with pytest.raises(LeaseTTLTooLarge) as large:
        h.lessor.grant(8, MAX_LEASE_TTL_S + 1)
    assert str(large.value) == "etcdserver: too large lease TTL"
    assert isinstance(large.value, EtcdError)
    assert h.lessor.grant(8, MAX_LEASE_TTL_S).ttl == MAX_LEASE_TTL_S
    # a failed grant changed nothing
    assert h.lessor.lookup(7) is not None and h.lessor.lookup(7).ttl == 10  # type: ignore[union-attr]
    assert set(stored(h.bucket)) == {7, 8}


def test_grant_deadline_only_on_primary(clock: FakeClock) -> None:
    h = Harness(clock)
    follower_lease = h.lessor.grant(1, 10)
    assert follower_lease.expiry is None
    assert h.lessor.time_to_live(1).ttl_s == FOREVER_TTL_S
    h.lessor.promote(0)
    primary_lease = h.lessor.grant(2, 10)
    assert primary_lease.expiry == clock.now() + 10


@pytest.mark.parametrize(
    ("election_ticks", "heartbeat_s", "expected"),
    [(10, 0.1, 2), (10, 1.0, 15), (5, 0.1, 1), (11, 0.1, 2), (100, 0.01, 2), (20, 0.1, 3)],
)
def test_min_lease_ttl_from_election_timeout(election_ticks: int, heartbeat_s: float, expected: int) -> None:
    assert min_lease_ttl_s(election_ticks, heartbeat_s) == expected


def test_lease_id_generator_unique_positive_nonzero() -> None:
    gen = LeaseIdGenerator(member_id=0xABCD_1234_5678_9ABC, now_ms=1_700_000_000_000)
    ids = [gen.next() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(0 < i < 2**63 for i in ids)
    assert all(i >> 48 == 0x1ABC & 0x7FFF or i >> 48 == 0x9ABC & 0x7FFF for i in ids)
    # the counter carries into the time bits instead of wrapping
    assert ids == sorted(ids)
    # a member whose prefix and clock are zero still never hands out 0
    zero = LeaseIdGenerator(member_id=0, now_ms=0)
    assert zero.next() == 1


# -- revoke -----------------------------------------------------------------------------------


def test_revoke_deletes_attached_keys_in_one_revision(clock: FakeClock) -> None:
    h = Harness(clock)
    h.lessor.grant(1, 10)
    h.lessor.grant(2, 10)
    for key in (b"foo", b"bar", b"baz"):
        h.store.put(key, 1)
    h.store.put(b"other", 2)
    assert h.lessor.get_lease(b"foo") == 1
    h.lessor.revoke(1)
    # one revision, keys in sorted order, the other lease's key untouched
    assert h.store.revisions == [(h.store.rev, [b"bar", b"baz", b"foo"])]
    assert h.store.keys == {b"other": 2}
    assert h.lessor.lookup(1) is None
    assert h.lessor.get_lease(b"foo") == NO_LEASE
    assert set(stored(h.bucket)) == {2}
    with pytest.raises(LeaseNotFound):
        h.lessor.revoke(1)


def test_revoke_without_keys_makes_no_revision(clock: FakeClock) -> None:
    h = Harness(clock)
    h.lessor.grant(1, 10)
    h.lessor.revoke(1)
    assert h.store.revisions == []
    assert stored(h.bucket) == {}


def test_revoked_lease_is_not_reported_expired(clock: FakeClock) -> None:
    h = Harness(clock)
    h.lessor.promote(0)
    h.lessor.grant(1, 10)
    h.lessor.revoke(1)
    clock.advance(20)
    assert h.lessor.tick() == []


# -- attach / detach ----------------------------------------------------------------------------


def test_attach_detach(clock: FakeClock) -> None:
    h = Harness(clock)
    h.lessor.grant(1, 10)
    h.lessor.grant(2, 10)
    h.lessor.attach(1, b"a")
    h.lessor.attach(1, b"b")
    assert h.lessor.lookup(1).sorted_keys() == [b"a", b"b"]  # type: ignore[union-attr]
    h.lessor.detach(1, b"a")
    assert h.lessor.get_lease(b"a") == NO_LEASE
    assert h.lessor.get_lease(b"b") == 1
    # a key moves between leases: it belongs to the last one only
    h.lessor.attach(2, b"b")
    assert h.lessor.get_lease(b"b") == 2
    assert h.lessor.lookup(1).sorted_keys() == []  # type: ignore[union-attr]
    with pytest.raises(LeaseNotFound):
        h.lessor.attach(3, b"x")
    with pytest.raises(LeaseNotFound):
        h.lessor.check_lease(3)
    h.lessor.check_lease(2)
    h.lessor.detach(3, b"b")  # a lease already revoked: ignored, and b stays with lease 2
    assert h.lessor.get_lease(b"b") == 2
    assert h.lessor.get_lease(b"x") == NO_LEASE


# -- renew / time to live / list ------------------------------------------------------------------


def test_renew_needs_primary_and_restarts_ttl(clock: FakeClock) -> None:
    h = Harness(clock)
    h.lessor.grant(1, 10)
    with pytest.raises(NotPrimary):
        h.lessor.renew(1)
    h.lessor.promote(0)
    clock.advance(6)
    assert h.lessor.time_to_live(1).ttl_s == 4
    assert h.lessor.renew(1) == 10
    assert h.lessor.time_to_live(1).ttl_s == 10
    assert (h.lessor.granted_total, h.lessor.renewed_total, h.lessor.revoked_total) == (1, 1, 0)
    clock.advance(9.5)
    assert h.lessor.tick() == []
    with pytest.raises(LeaseNotFound):
        h.lessor.renew(99)


def test_renew_of_expired_lease_is_refused(clock: FakeClock) -> None:
    h = Harness(clock)
    h.lessor.promote(0)
    h.lessor.grant(1, 10)
    clock.advance(10)
    with pytest.raises(LeaseExpired) as err:
        h.lessor.renew(1)
    # mapped like "not found", which is what the client sees once the revoke is applied
    assert isinstance(err.value, LeaseNotFound)
    assert str(err.value) == "etcdserver: requested lease not found"


def test_time_to_live_with_keys(clock: FakeClock) -> None:
    h = Harness(clock)
    h.lessor.promote(0)
    h.lessor.grant(5, 30)
    h.store.put(b"k2", 5)
    h.store.put(b"k1", 5)
    clock.advance(10.7)
    ttl = h.lessor.time_to_live(5, keys=True)
    assert (ttl.id, ttl.ttl_s, ttl.granted_ttl_s, ttl.keys) == (5, 19, 30, (b"k1", b"k2"))
    assert h.lessor.time_to_live(5).keys == ()
    with pytest.raises(LeaseNotFound):
        h.lessor.time_to_live(6)


def test_leases_sorted_by_expiry(clock: FakeClock) -> None:
    h = Harness(clock)
    h.lessor.promote(0)
    h.lessor.grant(1, 30)
    h.lessor.grant(2, 10)
    h.lessor.grant(3, 20)
    assert [lease.id for lease in h.lessor.leases()] == [2, 3, 1]


# -- expiry -------------------------------------------------------------------------------------


def test_expiry_is_reported_by_primary_and_retried(clock: FakeClock) -> None:
    h = Harness(clock, expired_lease_retry_interval_s=3.0)
    h.lessor.promote(0)
    h.lessor.grant(1, 10)
    h.lessor.grant(2, 20)
    clock.advance(9.9)
    assert h.lessor.tick() == []
    clock.advance(0.1)
    assert [lease.id for lease in h.lessor.tick()] == [1]
    # the revoke was not applied: not asked again at once, but again after the retry interval
    assert h.lessor.tick() == []
    clock.advance(2.9)
    assert h.lessor.tick() == []
    clock.advance(0.1)
    assert [lease.id for lease in h.lessor.tick()] == [1]
    # the server applies the revoke: lease 1 is never reported again
    h.lessor.revoke(1)
    clock.advance(10)
    assert [lease.id for lease in h.lessor.tick()] == [2]


def test_only_primary_expires_leases(clock: FakeClock) -> None:
    h = Harness(clock)
    h.lessor.grant(1, 5)
    clock.advance(100)
    assert h.lessor.tick() == []  # a follower never expires anything
    h.lessor.promote(0)
    clock.advance(4)
    assert h.lessor.tick() == []
    h.lessor.demote()
    clock.advance(100)
    assert h.lessor.tick() == []  # nor does a demoted leader
    assert h.lessor.time_to_live(1).ttl_s == FOREVER_TTL_S
    h.lessor.promote(1.0)
    clock.advance(5.5)
    assert h.lessor.tick() == []
    clock.advance(0.5)
    assert [lease.id for lease in h.lessor.tick()] == [1]


def test_revoke_rate_limit_per_tick(clock: FakeClock) -> None:
    h = Harness(clock, revoke_limit_per_tick=4)
    h.lessor.promote(0)
    for i in range(1, 11):
        h.lessor.grant(i, 5)
    clock.advance(5)
    seen: list[int] = []
    for expected in (4, 4, 2, 0):
        batch = h.lessor.tick()
        assert len(batch) == expected
        for lease in batch:
            seen.append(lease.id)
            h.lessor.revoke(lease.id)
    assert sorted(seen) == list(range(1, 11))


def test_promote_spreads_pileup(clock: FakeClock) -> None:
    rate = 40
    h = Harness(clock, revoke_rate_per_s=rate)
    for i in range(1, 201):
        h.lessor.grant(i, 10)
    h.lessor.promote(0)
    target = (3 * rate) // 4
    expiries = sorted(lease.expiry for lease in h.lessor.leases() if lease.expiry is not None)
    assert len(expiries) == 200
    first = expiries[0]
    assert first == clock.now() + 10
    # no one-second window holds more than the target expiry rate
    per_second: dict[int, int] = {}
    for expiry in expiries:
        second = int(expiry - first + 1e-9)
        per_second[second] = per_second.get(second, 0) + 1
    assert max(per_second.values()) <= target
    assert len(per_second) >= 200 // target
    # and the spread leases expire at their new deadlines
    clock.advance(10)
    assert len(h.lessor.find_expired_leases(1000)) == per_second[0]


# -- persistence and recovery --------------------------------------------------------------------


def test_recover_from_bucket(clock: FakeClock) -> None:
    h = Harness(clock, min_lease_ttl_s=2)
    h.lessor.grant(1, 10)
    h.lessor.grant(2, 20)
    h.lessor.grant(-3, 30)  # any non-zero int64 is a valid ID
    h.lessor.revoke(2)
    h.lessor.checkpoint(1, 7)
    # restart: a new lessor over the same records, with a larger minimum TTL now
    again = Harness(clock, bucket=h.bucket, min_lease_ttl_s=15)
    assert {lease.id: (lease.ttl, lease.remaining_ttl) for lease in again.lessor.leases()} == {
        1: (15, 7),
        -3: (30, 0),
    }
    assert all(lease.expiry is None for lease in again.lessor.leases())
    # recover() on a running lessor drops its leases and attachments and reloads
    h.store.put(b"k", 1)
    other = MemoryLeaseBucket()
    other.put_lease(9, lease_pb2.Lease(ID=9, TTL=9).SerializeToString())
    h.lessor.recover(other)
    assert [lease.id for lease in h.lessor.leases()] == [9]
    assert h.lessor.get_lease(b"k") == NO_LEASE


def test_recover_while_primary_gives_deadlines(clock: FakeClock) -> None:
    h = Harness(clock)
    h.lessor.grant(1, 10)
    h.lessor.promote(0)
    h.lessor.recover(h.bucket)
    clock.advance(10)
    assert [lease.id for lease in h.lessor.tick()] == [1]


def test_lease_key_encoding() -> None:
    assert lease_key(1) == b"\x00" * 7 + b"\x01"
    assert lease_key(-1) == b"\xff" * 8
    assert lease_id_from_key(lease_key(-(2**63))) == -(2**63)
    with pytest.raises(ValueError):
        lease_id_from_key(b"\x00")


# -- checkpointing (etcd#9888) ---------------------------------------------------------------------


def test_checkpoints_scheduled_for_long_leases_only(clock: FakeClock) -> None:
    h = Harness(clock, checkpoint_interval_s=60.0)
    h.lessor.promote(0)
    h.lessor.grant(1, 3600)
    h.lessor.grant(2, 30)  # shorter than the interval: never worth a checkpoint
    clock.advance(59)
    h.lessor.tick()
    assert h.proposed == []
    clock.advance(1)
    h.lessor.tick()
    assert h.proposed == [[LeaseCheckpoint(1, 3540)]]
    h.apply_checkpoints()
    assert stored(h.bucket)[1] == (3600, 3540)
    # re-armed: the next one comes an interval later
    clock.advance(60)
    h.lessor.tick()
    assert h.proposed == [[LeaseCheckpoint(1, 3480)]]


def test_leader_change_keeps_remaining_ttl_with_checkpoints(clock: FakeClock) -> None:
    """etcd#9888: without checkpoints a new leader renews every lease to its full TTL."""
    leader = Harness(clock, checkpoint_interval_s=60.0)
    follower = Harness(clock, checkpoint_interval_s=60.0)
    leader.lessor.promote(0)
    for h in (leader, follower):
        h.lessor.grant(1, 3600)
    for _ in range(20):  # 10 minutes of ticks every 30 s
        clock.advance(30)
        assert leader.lessor.tick() == []
        leader.apply_checkpoints(follower.lessor)
    assert leader.lessor.time_to_live(1).ttl_s == 3000
    # the leader steps down, the follower takes over after an election of 1 s
    leader.lessor.demote()
    clock.advance(1)
    follower.lessor.promote(1.0)
    assert follower.lessor.time_to_live(1).ttl_s == 3001
    # the old leader, promoted again, also resumes from the checkpoint
    leader.lessor.promote(0)
    assert leader.lessor.time_to_live(1).ttl_s == 3000
    # and a restarted member (records only) too
    restarted = Harness(clock, bucket=follower.bucket)
    restarted.lessor.promote(0)
    assert restarted.lessor.time_to_live(1).ttl_s == 3000


def test_leader_change_without_checkpointer_renews_full_ttl(clock: FakeClock) -> None:
    h = Harness(clock, checkpoint_interval_s=60.0, checkpointing=False)
    h.lessor.promote(0)
    h.lessor.grant(1, 3600)
    for _ in range(20):
        clock.advance(30)
        h.lessor.tick()
    assert h.proposed == []
    h.lessor.demote()
    h.lessor.promote(0)
    assert h.lessor.time_to_live(1).ttl_s == 3600


def test_renew_clears_checkpoint_everywhere(clock: FakeClock) -> None:
    leader = Harness(clock, checkpoint_interval_s=60.0)
    follower = Harness(clock, checkpoint_interval_s=60.0)
    leader.lessor.promote(0)
    for h in (leader, follower):
        h.lessor.grant(1, 3600)
    clock.advance(600)
    leader.lessor.tick()
    leader.apply_checkpoints(follower.lessor)
    assert follower.lessor.lookup(1).remaining_ttl == 3000  # type: ignore[union-attr]
    assert leader.lessor.renew(1) == 3600
    assert leader.proposed == [[LeaseCheckpoint(1, 0)]]
    assert leader.lessor.time_to_live(1).ttl_s == 3600
    leader.apply_checkpoints(follower.lessor)
    follower.lessor.promote(0)
    assert follower.lessor.time_to_live(1).ttl_s == 3600
    assert stored(follower.bucket)[1] == (3600, 0)
    # a second renew with no checkpoint pending proposes nothing
    leader.lessor.renew(1)
    assert leader.proposed == []


def test_checkpoint_of_unknown_lease_is_ignored(clock: FakeClock) -> None:
    h = Harness(clock)
    h.lessor.checkpoint(42, 5)
    assert stored(h.bucket) == {}


def test_checkpoint_without_persist_stays_in_memory(clock: FakeClock) -> None:
    h = Harness(clock, checkpoint_persist=False)
    h.lessor.grant(1, 100)
    h.lessor.checkpoint(1, 50)
    assert h.lessor.lookup(1).remaining_ttl == 50  # type: ignore[union-attr]
    assert stored(h.bucket)[1] == (100, 0)


def test_checkpoint_batches_are_bounded(clock: FakeClock) -> None:
    h = Harness(clock, checkpoint_interval_s=10.0, checkpoint_batches_per_tick=2)
    h.lessor.promote(0)
    for i in range(1, 2501):
        h.lessor.grant(i, 100)
    clock.advance(10)
    h.lessor.tick()
    assert [len(batch) for batch in h.proposed] == [1000, 1000]
    h.proposed.clear()
    h.lessor.tick()
    assert [len(batch) for batch in h.proposed] == [500]


# -- the deadline queue ----------------------------------------------------------------------------


def test_expired_notifier_moves_and_removes() -> None:
    q = LeaseExpiredNotifier()
    q.register_or_update(1, 5.0)
    q.register_or_update(2, 3.0)
    q.register_or_update(2, 7.0)
    assert len(q) == 2
    assert q.poll() is not None and q.poll().id == 1  # type: ignore[union-attr]
    assert q.deadline(2) == 7.0
    q.remove(1)
    assert q.unregister().id == 2
    assert q.poll() is None and len(q) == 0
    with pytest.raises(IndexError):
        q.unregister()
    # many updates of one lease do not grow the heap without bound
    for t in range(10_000):
        q.register_or_update(3, float(t))
    assert len(q._heap) < 200
    assert q.unregister().time == 9999.0
