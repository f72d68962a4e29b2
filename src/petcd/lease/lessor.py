"""The lessor: leases, their deadlines, the keys attached to them, and their durable records.

Theory of operation (etcd's lease/lessor.go, made synchronous):

* Every member holds the same set of leases, because grant, revoke and checkpoint reach it only
  by applying committed raft entries (`grant`, `revoke`, `checkpoint`, and `attach`/`detach` from
  the MVCC store as keys are put and deleted). Each lease is a record in the `lease` bucket of the
  backend (8-byte big-endian ID -> `leasepb.Lease`), written in the apply's backend transaction,
  so a restart finds exactly the leases the applied log says exist (`recover`). Which keys belong
  to a lease is not stored: the MVCC store re-attaches them from its key-values on recovery.
* Time belongs to the primary alone (the raft leader): `promote(extend_s)` gives every lease a
  deadline `now + remaining TTL + extend`; `demote()` sets every deadline to "forever". Only the
  primary renews (`renew`, keep-alive) and only the primary finds expired leases (`tick`), which
  the server then proposes as revokes. A lease therefore never expires while no leader is known,
  and a stale leader's revokes are harmless: they carry an old term and are never committed.
* Expired leases are handed out at most `revoke_limit_per_tick` per `tick` (etcd: revoke rate
  1000/s, checked every 500 ms, so 500 per tick). A lease handed out is offered again after
  `expired_lease_retry_interval_s` if its revoke has not been applied by then (the proposal may
  have been lost in a leader change).
* Checkpointing (etcd#9888, on by default here): the primary periodically proposes each long
  lease's remaining TTL (`LeaseCheckpoint`) through the `Checkpointer` port; every member applies
  it with `checkpoint`, persisting it in the lease record. A new primary (or a restarted member)
  then starts each lease from its last checkpointed remaining TTL instead of the full TTL, so
  leader changes no longer make leases immortal. A renew clears the checkpoint (a `LeaseCheckpoint`
  with remaining 0), as etcd does, so that the renewed lease is worth its full TTL everywhere.
  Unlike etcd, the schedule keeps one entry per lease and is re-armed after every due check and
  every renew, so a lease whose due check found nothing to record is still checkpointed later.

All times are seconds from the injected `Clock` (monotonic; its epoch is irrelevant because
deadlines never leave the process). Nothing here blocks, sleeps or starts a thread: the owner
(the server's node loop) calls `tick()` about every `TICK_INTERVAL_S`.

Wiring (tests/lease/test_lessor_kvstore.py does exactly this):

    lessor = Lessor(BackendLeaseBucket(backend, lambda: apply_write.backend if applying else None),
                    clock, LessorConfig(min_lease_ttl_s=min_lease_ttl_s(election_ticks, heartbeat_s)),
                    range_deleter=lambda: apply_write.delete_txn(),
                    checkpointer=propose_lease_checkpoints)
    store = KVStore(backend, lease_hooks=lessor)          # check_lease / attach / detach
    for lease_id, key in store.iter_leased_keys():         # after a restart
        lessor.attach(lease_id, key)

On becoming leader `promote(election_timeout_s)`, on losing it `demote()`; `renew` answers
LeaseKeepAlive on the leader (`LeaseExpired`: wait for the revoke, then "not found");
`time_to_live`/`leases` answer LeaseTimeToLive/LeaseLeases; grant IDs of 0 are replaced by
`LeaseIdGenerator.next()` before proposing. The server caps revokes in flight (etcd: 16).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from petcd.backend import Backend, WriteTxn
from petcd.lease.errors import LeaseExists, LeaseExpired, LeaseNotFound, LeaseTTLTooLarge, NotPrimary
from petcd.lease.lease_queue import LeaseExpiredNotifier
from petcd.pb.leasepb import lease_pb2

NO_LEASE = 0
MAX_LEASE_TTL_S = 9_000_000_000
LEASE_BUCKET_NAME = "lease"

# etcd's lessor loop period; tick() is meant to be called this often.
TICK_INTERVAL_S = 0.5
DEFAULT_REVOKE_RATE = 1000  # leases revoked per second at most
DEFAULT_CHECKPOINT_RATE = 1000  # checkpoint batches proposed per second at most
DEFAULT_CHECKPOINT_INTERVAL_S = 300.0
MAX_CHECKPOINT_BATCH = 1000
DEFAULT_EXPIRED_LEASE_RETRY_INTERVAL_S = 3.0

# What etcd reports as the remaining TTL of a lease without a deadline (a non-primary's view):
# Go's maximal time.Duration in whole seconds.
FOREVER_TTL_S = (2**63 - 1) // 1_000_000_000


def min_lease_ttl_s(election_ticks: int, heartbeat_interval_s: float) -> int:
    """etcd's minimum TTL: ceil of 1.5 election timeouts (2 s for etcd's 10 x 100 ms)."""
    # etcd computes (3*ticks)/2 in integer ticks before scaling by the heartbeat.
    return math.ceil(((3 * election_ticks) // 2) * heartbeat_interval_s - 1e-9)


class Clock(Protocol):
    """Monotonic time in seconds."""

    def now(self) -> float: ...


class TxnDelete(Protocol):
    """A store write transaction that only deletes; everything deleted shares one revision."""

    def delete_range(self, key: bytes, end: bytes | None) -> tuple[int, int]:
        """Delete [key, end) (only `key` when end is None); returns (number deleted, revision)."""
        ...

    def end(self) -> object:
        """Close the deletes' revision (the result, e.g. the store's revision, is not used)."""
        ...


RangeDeleter = Callable[[], TxnDelete]


@dataclass(frozen=True, slots=True)
class LeaseCheckpoint:
    """A lease's remaining TTL, to be proposed through raft (etcdserverpb.LeaseCheckpoint)."""

    id: int
    remaining_ttl_s: int


Checkpointer = Callable[[list[LeaseCheckpoint]], None]


class LeaseBucket(Protocol):
    """The durable lease records: the `lease` bucket of the backend, in the apply's transaction."""

    def put_lease(self, lease_id: int, record: bytes) -> None: ...

    def delete_lease(self, lease_id: int) -> None: ...

    def load_leases(self) -> Iterable[bytes]:
        """Every stored record (a serialized leasepb.Lease)."""
        ...


def lease_key(lease_id: int) -> bytes:
    """The record's key in the `lease` bucket: the ID as 8 bytes, big-endian two's complement."""
    return struct.pack(">q", lease_id)


def lease_id_from_key(key: bytes) -> int:
    if len(key) != 8:
        raise ValueError(f"lease key must be 8 bytes, got {len(key)}")
    return int(struct.unpack(">q", key)[0])


class MemoryLeaseBucket:
    """A LeaseBucket in a dict: for tests and for a lessor without durable state."""

    def __init__(self) -> None:
        self.records: dict[bytes, bytes] = {}

    def put_lease(self, lease_id: int, record: bytes) -> None:
        self.records[lease_key(lease_id)] = record

    def delete_lease(self, lease_id: int) -> None:
        self.records.pop(lease_key(lease_id), None)

    def load_leases(self) -> Iterator[bytes]:
        for key in sorted(self.records):
            yield self.records[key]


class Lease:
    """One lease: its TTL, its deadline (primary only) and the keys attached to it."""

    __slots__ = ("expiry", "id", "items", "remaining_ttl", "ttl")

    def __init__(self, lease_id: int, ttl: int, remaining_ttl: int = 0) -> None:
        self.id = lease_id
        self.ttl = ttl
        # The last checkpointed remaining TTL; 0 means none, i.e. the full TTL applies.
        self.remaining_ttl = remaining_ttl
        # Clock time of expiry; None means forever (the lessor is not the primary).
        self.expiry: float | None = None
        self.items: set[bytes] = set()

    def effective_ttl(self) -> int:
        """The TTL a refresh starts from: the checkpointed remainder if any, else the TTL."""
        return self.remaining_ttl if self.remaining_ttl > 0 else self.ttl

    def remaining(self, now: float) -> float:
        """Seconds until expiry (inf when the lease has no deadline)."""
        return math.inf if self.expiry is None else self.expiry - now

    def expired(self, now: float) -> bool:
        return self.remaining(now) <= 0

    def sorted_keys(self) -> list[bytes]:
        """The attached keys, sorted (so every member deletes them in the same order)."""
        return sorted(self.items)

    def record(self) -> bytes:
        return lease_pb2.Lease(ID=self.id, TTL=self.ttl, RemainingTTL=self.remaining_ttl).SerializeToString()

    def __repr__(self) -> str:
        return f"Lease(id={self.id:016x}, ttl={self.ttl}, remaining_ttl={self.remaining_ttl})"


@dataclass(frozen=True, slots=True)
class LeaseTimeToLive:
    """LeaseTimeToLive's answer: remaining seconds, granted TTL, and the keys when asked."""

    id: int
    ttl_s: int
    granted_ttl_s: int
    keys: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class LessorConfig:
    min_lease_ttl_s: int = 2
    checkpointing: bool = True
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S
    # Persist checkpointed remaining TTLs in the lease records (etcd 3.6 always does).
    checkpoint_persist: bool = True
    expired_lease_retry_interval_s: float = DEFAULT_EXPIRED_LEASE_RETRY_INTERVAL_S
    revoke_limit_per_tick: int = int(DEFAULT_REVOKE_RATE * TICK_INTERVAL_S)
    checkpoint_batches_per_tick: int = int(DEFAULT_CHECKPOINT_RATE * TICK_INTERVAL_S)
    revoke_rate_per_s: int = DEFAULT_REVOKE_RATE


class Lessor:
    """Owns every lease of a member. Single-threaded: the server's node loop is its only caller."""

    def __init__(
        self,
        bucket: LeaseBucket,
        clock: Clock,
        config: LessorConfig | None = None,
        range_deleter: RangeDeleter | None = None,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self._config = config or LessorConfig()
        self._clock = clock
        self._bucket = bucket
        self._range_deleter = range_deleter
        self._checkpointer = checkpointer
        self._primary = False
        self._lease_map: dict[int, Lease] = {}
        # Invariant: item_map[key] == lease.id  <=>  key in lease.items
        self._item_map: dict[bytes, int] = {}
        # Invariant: empty unless primary; one entry per lease that has a deadline.
        self._expired_notifier = LeaseExpiredNotifier()
        # Invariant: empty unless primary and a checkpointer is set.
        self._checkpoint_schedule = LeaseExpiredNotifier()
        # etcd's lease counters (etcd_debugging_lease_{granted,revoked,renewed}_total)
        self.granted_total = 0
        self.revoked_total = 0
        self.renewed_total = 0
        self._init_and_recover()

    # -- wiring ---------------------------------------------------------------------------------

    @property
    def min_lease_ttl_s(self) -> int:
        return self._config.min_lease_ttl_s

    def set_range_deleter(self, range_deleter: RangeDeleter) -> None:
        self._range_deleter = range_deleter

    def set_checkpointer(self, checkpointer: Checkpointer | None) -> None:
        self._checkpointer = checkpointer

    def recover(self, bucket: LeaseBucket, range_deleter: RangeDeleter | None = None) -> None:
        """Reload every lease from `bucket` (after a restart or a snapshot install).

        Keys must be attached again by the caller (the MVCC store does it as it rebuilds).
        Deadlines are forever until the next `promote`.
        """
        self._bucket = bucket
        if range_deleter is not None:
            self._range_deleter = range_deleter
        self._lease_map = {}
        self._item_map = {}
        self._expired_notifier.clear()
        self._checkpoint_schedule.clear()
        self._init_and_recover()
        if self._primary:
            self._refresh_all(0.0)

    def _init_and_recover(self) -> None:
        for raw in self._bucket.load_leases():
            record = lease_pb2.Lease.FromString(raw)
            ttl = max(record.TTL, self._config.min_lease_ttl_s)
            self._lease_map[record.ID] = Lease(record.ID, ttl, record.RemainingTTL)

    # -- applied operations (every member, in log order) ---------------------------------------

    def grant(self, lease_id: int, ttl_s: int) -> Lease:
        """Create a lease of at least `ttl_s` seconds (raised to the minimum TTL)."""
        if lease_id == NO_LEASE:
            raise LeaseNotFound()
        if ttl_s > MAX_LEASE_TTL_S:
            raise LeaseTTLTooLarge()
        if lease_id in self._lease_map:
            raise LeaseExists()
        lease = Lease(lease_id, max(ttl_s, self._config.min_lease_ttl_s))
        self._lease_map[lease_id] = lease
        self._bucket.put_lease(lease_id, lease.record())
        if self._primary:
            self._refresh(lease, 0.0)
        self.granted_total += 1
        return lease

    def revoke(self, lease_id: int) -> None:
        """Delete the lease and, in one store revision, every key attached to it."""
        lease = self._lease_map.get(lease_id)
        if lease is None:
            raise LeaseNotFound()
        txn = self._range_deleter() if self._range_deleter is not None else None
        if txn is not None:
            # Sorted, so every member's deletes (and backend hashes) agree.
            for key in lease.sorted_keys():
                txn.delete_range(key, None)
        # The store detaches deleted keys itself; whatever is left must not outlive the lease.
        for key in lease.items:
            if self._item_map.get(key) == lease_id:
                del self._item_map[key]
        lease.items.clear()
        del self._lease_map[lease_id]
        self._expired_notifier.remove(lease_id)
        self._checkpoint_schedule.remove(lease_id)
        # Before txn.end(): the record goes in the same backend transaction as the key deletes.
        self._bucket.delete_lease(lease_id)
        if txn is not None:
            txn.end()
        self.revoked_total += 1

    def checkpoint(self, lease_id: int, remaining_ttl_s: int) -> None:
        """Record a lease's remaining TTL (applied from a LeaseCheckpoint entry); unknown IDs are ignored."""
        lease = self._lease_map.get(lease_id)
        if lease is None:
            return
        lease.remaining_ttl = remaining_ttl_s
        if self._config.checkpoint_persist:
            self._bucket.put_lease(lease_id, lease.record())

    def check_lease(self, lease_id: int) -> None:
        """Raise LeaseNotFound unless the lease exists (a put naming a lease checks this first)."""
        if lease_id not in self._lease_map:
            raise LeaseNotFound()

    def attach(self, lease_id: int, key: bytes) -> None:
        """Attach `key` to the lease (the store calls this as a put with a lease changes the key)."""
        lease = self._lease_map.get(lease_id)
        if lease is None:
            raise LeaseNotFound()
        previous = self._item_map.get(key)
        if previous is not None and previous != lease_id:
            # A key belongs to one lease at a time: moving it drops the old attachment.
            old = self._lease_map.get(previous)
            if old is not None:
                old.items.discard(key)
        lease.items.add(key)
        self._item_map[key] = lease_id

    def detach(self, lease_id: int, key: bytes) -> None:
        """Detach `key` (overwritten without the lease, or deleted). Unknown leases are ignored:
        the revoke that deletes a lease's keys runs before the store reports their deletion."""
        lease = self._lease_map.get(lease_id)
        if lease is not None:
            lease.items.discard(key)
        if self._item_map.get(key) == lease_id:
            del self._item_map[key]

    # -- queries --------------------------------------------------------------------------------

    def get_lease(self, key: bytes) -> int:
        """The ID of the lease `key` is attached to, or NO_LEASE."""
        return self._item_map.get(key, NO_LEASE)

    def lookup(self, lease_id: int) -> Lease | None:
        return self._lease_map.get(lease_id)

    def leases(self) -> list[Lease]:
        """Every lease, soonest expiry first (ties by ID, so the order is deterministic)."""
        now = self._clock.now()
        return sorted(self._lease_map.values(), key=lambda lease: (lease.remaining(now), lease.id))

    def time_to_live(self, lease_id: int, keys: bool = False) -> LeaseTimeToLive:
        """LeaseTimeToLive as the primary answers it: remaining whole seconds (truncated, as Go)."""
        lease = self._lease_map.get(lease_id)
        if lease is None:
            raise LeaseNotFound()
        remaining = lease.remaining(self._clock.now())
        ttl_s = FOREVER_TTL_S if math.isinf(remaining) else math.trunc(remaining)
        return LeaseTimeToLive(lease_id, ttl_s, lease.ttl, tuple(lease.sorted_keys()) if keys else ())

    def __len__(self) -> int:
        return len(self._lease_map)

    def __contains__(self, lease_id: object) -> bool:
        return lease_id in self._lease_map

    # -- the primary's clock duties --------------------------------------------------------------

    @property
    def is_primary(self) -> bool:
        return self._primary

    def promote(self, extend_s: float) -> None:
        """Become the primary: every lease gets a deadline of its remaining TTL plus `extend_s`.

        `extend_s` covers the election that just happened (etcd passes the election timeout), so
        a client's keep-alive that was in flight to the old leader still arrives in time. When
        many leases would expire together, later ones are spread out so that no second has more
        than 3/4 of the revoke rate due (etcd's pile-up avoidance).
        """
        self._primary = True
        self._refresh_all(extend_s)
        self._spread_pileup(extend_s)

    def demote(self) -> None:
        """Stop being the primary: no lease has a deadline until the next promote."""
        self._primary = False
        for lease in self._lease_map.values():
            lease.expiry = None
        self._expired_notifier.clear()
        self._checkpoint_schedule.clear()

    def renew(self, lease_id: int) -> int:
        """Keep-alive: restart the lease's full TTL; returns the TTL. Primary only."""
        if not self._primary:
            raise NotPrimary()
        lease = self._lease_map.get(lease_id)
        if lease is None:
            raise LeaseNotFound()
        if lease.expired(self._clock.now()):
            raise LeaseExpired()
        if lease.remaining_ttl > 0:
            # Our own view changes now (the full TTL is granted at once); the checkpoint tells
            # the other members, and makes a later leader start from the full TTL too.
            lease.remaining_ttl = 0
            if self._checkpointer is not None and self._config.checkpointing:
                self._checkpointer([LeaseCheckpoint(lease_id, 0)])
        self._refresh(lease, 0.0)
        self.renewed_total += 1
        return lease.ttl

    def tick(self) -> list[Lease]:
        """The primary's periodic duty: propose due checkpoints; return leases to revoke.

        At most `revoke_limit_per_tick` leases are returned; the rest wait for the next tick.
        A returned lease is returned again after the retry interval if still not revoked.
        """
        if not self._primary:
            return []
        self._checkpoint_scheduled_leases()
        return self.find_expired_leases(self._config.revoke_limit_per_tick)

    def find_expired_leases(self, limit: int) -> list[Lease]:
        now = self._clock.now()
        expired: list[Lease] = []
        while len(expired) < limit:
            item = self._expired_notifier.poll()
            if item is None or item.time > now:
                break
            lease = self._lease_map.get(item.id)
            if lease is None:
                self._expired_notifier.unregister()
                continue
            # Look again later: the revoke we are about to ask for may never be committed.
            retry_at = now + self._config.expired_lease_retry_interval_s
            self._expired_notifier.register_or_update(item.id, retry_at)
            if lease.expired(now):
                expired.append(lease)
        return expired

    # -- internals --------------------------------------------------------------------------------

    def _refresh(self, lease: Lease, extend_s: float) -> None:
        now = self._clock.now()
        lease.expiry = now + extend_s + lease.effective_ttl()
        self._expired_notifier.register_or_update(lease.id, lease.expiry)
        self._schedule_checkpoint_if_needed(lease, now)

    def _refresh_all(self, extend_s: float) -> None:
        for lease in self._lease_map.values():
            self._refresh(lease, extend_s)

    def _spread_pileup(self, extend_s: float) -> None:
        rate = self._config.revoke_rate_per_s
        if len(self._lease_map) < rate:
            return  # fewer leases than one second of revokes: no pile-up possible
        now = self._clock.now()
        leases = sorted(self._lease_map.values(), key=lambda lease: (lease.remaining(now), lease.id))
        target_per_s = (3 * rate) // 4
        base_window = leases[0].remaining(now)
        next_window = base_window + 1.0
        expires = 0
        for lease in leases:
            remaining = lease.remaining(now)
            if remaining > next_window:
                base_window = remaining
                next_window = base_window + 1.0
                expires = 1
                continue
            expires += 1
            if expires <= target_per_s:
                continue
            # Push the overflow back in proportion to how far past the target rate it is; a lease
            # already later than the window's start needs correspondingly less delay.
            delay = expires / target_per_s - (remaining - base_window)
            next_window = base_window + delay
            lease.expiry = now + delay + extend_s + lease.effective_ttl()
            self._expired_notifier.register_or_update(lease.id, lease.expiry)

    def _checkpointing(self) -> bool:
        return self._checkpointer is not None and self._config.checkpointing

    def _schedule_checkpoint_if_needed(self, lease: Lease, now: float) -> None:
        if not self._checkpointing():
            return
        if lease.effective_ttl() > self._config.checkpoint_interval_s:
            self._checkpoint_schedule.register_or_update(lease.id, now + self._config.checkpoint_interval_s)
        else:
            self._checkpoint_schedule.remove(lease.id)

    def _checkpoint_scheduled_leases(self) -> None:
        if not self._checkpointing():
            return
        for _ in range(self._config.checkpoint_batches_per_tick):
            batch = self._find_due_checkpoints(MAX_CHECKPOINT_BATCH)
            if batch:
                assert self._checkpointer is not None
                self._checkpointer(batch)
            if len(batch) < MAX_CHECKPOINT_BATCH:
                return

    def _find_due_checkpoints(self, limit: int) -> list[LeaseCheckpoint]:
        now = self._clock.now()
        due: list[LeaseCheckpoint] = []
        while len(due) < limit:
            item = self._checkpoint_schedule.poll()
            if item is None or item.time > now:
                break
            self._checkpoint_schedule.unregister()
            lease = self._lease_map.get(item.id)
            if lease is None or lease.expiry is None or now >= lease.expiry:
                continue
            remaining = math.ceil(lease.expiry - now)
            interval = self._config.checkpoint_interval_s
            if remaining > interval:
                self._checkpoint_schedule.register_or_update(lease.id, now + interval)
            if remaining >= lease.ttl:
                continue  # nothing to record: a new leader would grant the full TTL anyway
            due.append(LeaseCheckpoint(lease.id, remaining))
        return due


class LeaseIdGenerator:
    """Lease IDs for grants that name none (etcd's idutil.Generator, masked to positive).

    The ID is generated by the member that receives the request, before proposing, so every
    member applies the same ID. Layout: member ID's low 16 bits, then 40 bits of the clock in
    milliseconds at start, then an 8-bit counter that carries into the time bits.
    """

    _TS_BITS = 40
    _COUNT_BITS = 8
    _SUFFIX_BITS = _TS_BITS + _COUNT_BITS

    def __init__(self, member_id: int, now_ms: int) -> None:
        self._prefix = (member_id << self._SUFFIX_BITS) & 0xFFFF_FFFF_FFFF_FFFF
        self._suffix = (now_ms & ((1 << self._TS_BITS) - 1)) << self._COUNT_BITS

    def next(self) -> int:
        while True:
            self._suffix = (self._suffix + 1) & ((1 << self._SUFFIX_BITS) - 1)
            lease_id = (self._prefix | self._suffix) & ((1 << 63) - 1)
            if lease_id != NO_LEASE:
                return lease_id


class BackendLeaseBucket:
    """The `lease` bucket of a Backend.

    Writes go into the transaction `current_txn()` returns when it returns one (the server's
    apply transaction, so a revoke's record delete commits with its key deletes), else into a
    write transaction of their own.
    """

    def __init__(self, backend: Backend, current_txn: Callable[[], WriteTxn | None] | None = None) -> None:
        self._backend = backend
        self._current_txn = current_txn

    def _write(self, action: Callable[[WriteTxn], object]) -> None:
        txn = self._current_txn() if self._current_txn is not None else None
        if txn is not None:
            action(txn)
            return
        with self._backend.write_txn() as own:
            action(own)

    def put_lease(self, lease_id: int, record: bytes) -> None:
        self._write(lambda txn: txn.put(LEASE_BUCKET_NAME, lease_key(lease_id), record))

    def delete_lease(self, lease_id: int) -> None:
        self._write(lambda txn: txn.delete(LEASE_BUCKET_NAME, lease_key(lease_id)))

    def load_leases(self) -> list[bytes]:
        with self._backend.read_txn() as txn:
            return [value for _, value in txn.range(LEASE_BUCKET_NAME, b"", None)]
