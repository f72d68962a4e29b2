"""The MVCC key-value store: etcd's multi-version key space on the Backend port.

Every change makes a new store-wide *revision*; old revisions stay readable until compacted. Unlike
etcd, which keeps its key index (key -> generations of revisions) in memory and rebuilds it on start,
petcd keeps everything a range needs in the backend, so that a range at any kept revision needs
nothing but one read transaction (DESIGN.md, "Scaling past one core"): another process can open the
same LMDB environment read-only and answer ranges, and opening a store of any size is instant.

Buckets
-------
``key_index``  ``ikey(key) + inv_rev(main, sub, tombstone)`` -> ``tag + mvccpb.KeyValue bytes``
    One entry per version of a key. ``ikey`` is the order-preserving, prefix-free image of the key
    (``petcd.mvcc.keys``; keys up to 1.5 MiB fit under LMDB's 511-byte limit), and the inverted
    revision sorts the versions of a key newest first; its lowest bit marks a tombstone, so counting
    needs no values. ``tag`` (``p`` put, ``t`` tombstone) says the same in the value. A tombstone is
    stored as ``KeyValue{key}``, like etcd's; every value is the ``KeyValue`` as etcd marshals it, so
    a range splices it into the response as it is.
``rev``        ``rev_bytes(main, sub)`` (etcd's 17-byte revision) -> ``tag + ikey``
    The history in revision order: it points back into ``key_index``. Watchers catching up, HashKV and
    compaction walk it.
``meta``       the backend's ``consistent_index``/``term``, and the store's ``current_rev``,
    ``compact_rev`` (scheduled: reads below it are refused), ``finished_compact_rev``,
    ``compact_cursor`` (progress of the batched compaction) and ``alarm_nospace``.

A *generation* of a key (etcd's term: from a create to its tombstone) is visible in the versions'
``create_revision`` and ``version`` fields: a put after a tombstone starts a new generation with
``version = 1`` and ``create_revision = mod_revision``.

Reading at revision R: for each ikey in the range, the first entry at or after ``ikey + inv(R)`` is
the newest version at or before R; if it is a tombstone the key does not exist at R. The walk skips
the newer versions and the older ones of each key (by stepping, and by seeking past a long run).
Like etcd, a range counts every key in it whatever the limit: once ``limit + 1`` values are taken,
the rest is counted from the keys alone (about 0.3 us per entry on LMDB: a count over 1M keys costs
~0.3 s of CPU; etcd walks its in-memory btree instead, not measured here).

Revisions are etcd's: an empty store is at revision 1 (so the first write makes revision 2, and the
stored ``KeyValue``s, hence HashKV, match etcd's byte for byte; tests/mvcc/test_etcd_hashkv.py checks
against the reference server), and the compaction revision is -1 until the first compaction.

Writes
------
``with store.write() as w:`` opens one backend write transaction; ``w.backend`` is that transaction,
for the server's other stores and for ``put_consistent_index``. ``store.put/delete_range/txn/compact
(..., w=w)`` each take one revision (a read-only txn and a delete that matches nothing take none), so
the server applies a whole Ready's committed entries in one backend commit. ``w.delete_txn()`` gives
deletes that share one revision (the lessor's revoke: ``delete_range(key, end)`` each, then ``end()``).

Lease hooks (``KVStore(lease_hooks=lessor)``, protocol ``LeaseHooks``) are called at once, in order,
as each put or delete changes a key's lease (``detach`` the old, ``attach`` the new), as etcd's store
does, so a revoke later in the same apply batch sees the key; ``check_lease`` runs before anything is
written. If the transaction does not commit, the calls are reversed.

When the ``with`` block commits, and only then, the store calls the *event sink*
(``store.set_event_sink(fn)``) once per revision, in revision order: ``fn(revision, events)`` with
``events`` a list of ``mvccpb.Event`` in the order of the changes (``kv`` as stored; for a DELETE,
``kv`` is ``{key, mod_revision}``; ``prev_kv`` set when the key existed before). The watchable store
feeds its synced watchers from this. If the block raises, nothing is written and nothing is announced.
The methods without ``w`` open their own write transaction.

*Revision listeners* (``store.add_revision_listener(fn)``) are called once per committed write
transaction that advanced the revision, after the event sink, with the new current revision (and by
``reload`` when it finds the revision changed, e.g. after a snapshot install): one call per applied
batch, however many revisions it made. The core wakes its front-end processes' watchers with it.

The store also has the methods of the watchable store's ``HistoryStore`` protocol
(``current_revision``, ``compact_revision``, ``history``, ``kv_at``); wire the two with
``store.set_event_sink(lambda rev, evs: ws.notify(rev, [(e.type == Event.DELETE, e.kv) for e in evs]))``.

History for unsynced watchers: ``store.events(start_rev, end_rev, prev_kv=...)`` returns
``[(revision, [Event, ...]), ...]`` for ``start_rev <= revision < end_rev`` from one read transaction,
raising ``Compacted`` if ``start_rev`` is below the compaction point. ``store.tail_events(...)`` is the
same for a reader in another process that follows the history as it grows (a front-end's watchers,
petcd.runtime.frontend_watch): it refuses only revisions the physical compaction may have removed.
``store.revisions()`` gives ``(current_rev, compact_rev)`` of one read transaction.

Compaction
----------
``compact(rev)`` checks the revision, records ``compact_rev`` (from then on reads below it get
``Compacted``) and resets the cursor; the removal runs in bounded batches
(``compact_batch(w, limit)``, 1000 revisions by default as etcd's ``--compaction-batch-limit``), each in
its own write transaction between applies, so a compaction of millions of revisions never holds the
writer for long. For each history entry at or below ``rev``, the entry is removed (from both buckets)
if a newer version of its key at or below ``rev`` exists, or if it is a tombstone; otherwise it is the
version reads at ``rev`` need and stays. ``compact(rev, physical=True)`` (or ``finish_compaction()``)
runs the batches to the end. A compaction interrupted by a crash resumes from ``compact_cursor``.

Hash and HashKV
---------------
``hash_kv(rev)`` is etcd's: CRC-32C (Castagnoli) of ``b"key"`` followed by, for each history entry
up to ``rev`` in revision order, its 17-byte revision (plus ``t`` for a tombstone) and its stored
``KeyValue`` bytes, skipping entries at or below the compaction point that are not the newest
non-tombstone version of their key at ``rev``. It depends only on the history and the compaction
point, not on how far the physical compaction has got, so members with the same history agree, and
it gives etcd's numbers for the same history. One deliberate difference: etcd 3.4 stops skipping when
*no* key is live at ``rev`` (``len(keep) == 0``), which makes its hash depend on the progress of the
physical compaction; petcd always skips. ``hash()`` covers both buckets whole (etcd's
Maintenance.Hash is the whole database; it depends on the physical state).

Quota
-----
As in etcd, in two places. Before proposing, the API layer asks ``quota_available(cost)`` (``put_cost``
/ ``txn_cost``: 256 + key + value per put): if ``backend.size_bytes() + cost`` passes the quota it
answers ``NoSpace`` and proposes the NOSPACE alarm. Applying that alarm entry calls
``activate_nospace(w)``; from then on the store refuses puts and txns with puts (``NoSpace``, etcd's
capped applier) while reads, deletes, read-only and delete-only txns and compaction go through, until
``disarm_nospace(w)``. Applying never looks at sizes, which differ between members: that would make
their states diverge. ``put``/``txn`` called without ``w`` (a single process: tests, tools) do both
steps themselves.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from crc32c import crc32c

from petcd.backend import META_BUCKET, Backend, ReadTxn, WriteTxn
from petcd.errors import (
    Compacted,
    DuplicateKey,
    EtcdError,
    FutureRevision,
    KeyNotFound,
    KeyNotProvided,
    LeaseProvided,
    NoSpace,
    TooManyOps,
    ValueProvided,
)
from petcd.mvcc import keys
from petcd.mvcc.types import (
    CMP_CREATE,
    CMP_EQUAL,
    CMP_GREATER,
    CMP_LEASE,
    CMP_LESS,
    CMP_MOD,
    CMP_NOT_EQUAL,
    CMP_VALUE,
    CMP_VERSION,
    SORT_DESCEND,
    SORT_NONE,
    TARGET_CREATE,
    TARGET_KEY,
    TARGET_MOD,
    TARGET_VALUE,
    TARGET_VERSION,
    CompactResult,
    CompareLike,
    DeleteRangeRequestLike,
    DeleteRangeResult,
    HashKVResult,
    PutRequestLike,
    PutResult,
    RangeRequestLike,
    RangeResult,
    RequestOpLike,
    TxnRequestLike,
    TxnResult,
)
from petcd.pb.mvccpb.kv_pb2 import Event, KeyValue

INDEX_BUCKET = "key_index"
HISTORY_BUCKET = "rev"

CURRENT_REV_KEY = b"current_rev"
COMPACT_REV_KEY = b"compact_rev"
FINISHED_COMPACT_REV_KEY = b"finished_compact_rev"
COMPACT_CURSOR_KEY = b"compact_cursor"
NOSPACE_KEY = b"alarm_nospace"

TAG_PUT = 0x70  # b"p"
TAG_TOMBSTONE = 0x74  # b"t"
_PUT = b"p"
_TOMB = b"t"

DEFAULT_MAX_TXN_OPS = 128
DEFAULT_COMPACTION_BATCH = 1000
KV_OVERHEAD_BYTES = 256  # etcd's quota estimate of a key's metadata
_SEEK_AFTER_SKIPS = 8
_U64 = struct.Struct(">Q")
_INV = keys.INV_REV_BYTES

EventSink = Callable[[int, list[Event]], None]
RevisionListener = Callable[[int], None]
_T = TypeVar("_T")


class LeaseHooks(Protocol):
    """What the store needs from the lessor."""

    def check_lease(self, lease_id: int) -> None:
        """Raise the lessor's not-found error if ``lease_id`` does not exist."""
        ...

    def attach(self, lease_id: int, key: bytes) -> None: ...

    def detach(self, lease_id: int, key: bytes) -> None: ...


def _u64(raw: bytes | None) -> int:
    return _U64.unpack(raw)[0] if raw is not None else 0


def _current(txn: ReadTxn) -> int:
    """The current revision: 1 in an empty store, as in etcd (the first write makes revision 2)."""
    raw = txn.get(META_BUCKET, CURRENT_REV_KEY)
    return _U64.unpack(raw)[0] if raw is not None else 1


def _compacted(txn: ReadTxn) -> int:
    """The (scheduled) compaction revision; -1 when never compacted, as etcd reports it."""
    raw = txn.get(META_BUCKET, COMPACT_REV_KEY)
    return _U64.unpack(raw)[0] if raw is not None else -1


def _history_kept_from(txn: ReadTxn) -> int:
    """The lowest revision from which the history bucket is still whole: a compaction removes
    entries in revision order from its cursor on (``compact_batch``), so entries at or after the
    cursor, and after the previous finished compaction, are untouched."""
    compact = _compacted(txn)
    finished = _u64(txn.get(META_BUCKET, FINISHED_COMPACT_REV_KEY))
    if compact < 0 or finished >= compact:
        return compact
    cursor = txn.get(META_BUCKET, COMPACT_CURSOR_KEY)
    if cursor is None:
        return finished
    main, sub = keys.parse_rev(cursor)
    return max(finished, main + 1 if sub else main)


def _read_events(
    txn: ReadTxn, start_rev: int, end_rev: int | None, prev_kv: bool
) -> list[tuple[int, list[Event]]]:
    out: list[tuple[int, list[Event]]] = []
    stop = keys.rev_bytes(end_rev, 0) if end_rev is not None else None
    for rk, v in txn.range(HISTORY_BUCKET, keys.rev_bytes(max(start_rev, 1), 0), stop):
        main, sub = keys.parse_rev(rk)
        ik = v[1:]
        index_key = ik + keys.inv_rev_bytes(main, sub, v[0] == TAG_TOMBSTONE)
        stored = txn.get(INDEX_BUCKET, index_key)
        if stored is None:
            raise AssertionError(f"history entry {main}.{sub} has no index entry")
        kv = KeyValue.FromString(stored[1:])
        if v[0] == TAG_TOMBSTONE:
            kv.mod_revision = main
            event = Event(type=Event.DELETE, kv=kv)
        else:
            event = Event(type=Event.PUT, kv=kv)
        if prev_kv:
            # as of the revision before (not an earlier op of the same txn), as etcd
            older = txn.seek(INDEX_BUCKET, ik + keys.at_or_before(main - 1))
            if older is not None and older[0][:-_INV] == ik and older[1][0] == TAG_PUT:
                event.prev_kv.ParseFromString(older[1][1:])
        if out and out[-1][0] == main:
            out[-1][1].append(event)
        else:
            out.append((main, [event]))
    return out


# -- reading ---------------------------------------------------------------------------------------


def _walk(txn: ReadTxn, key: bytes, end: bytes, at_rev: int) -> Iterator[bytes]:
    """Stored KeyValue bytes of the keys live at ``at_rev`` in the range, in key order."""
    raws, _ = _scan(txn, key, end, at_rev, -1)
    return iter(raws)


def _without_value(raw: bytes) -> bytes:
    """The stored KeyValue ``raw`` without its value: a ``keys_only`` range's answer. Done to each
    entry as the scan reads it, so that a keys-only range over a million keys never holds a million
    values, nor a million parsed messages (measured: 1.2 GiB and 5 s more than this way, which costs
    about 1.1 us per key; cutting the field out of the bytes with a regex was no faster)."""
    kv = KeyValue.FromString(raw)
    kv.ClearField("value")
    return kv.SerializeToString()


def _scan(
    txn: ReadTxn, key: bytes, end: bytes, at_rev: int, keep: int, *, keys_only: bool = False
) -> tuple[list[bytes], int]:
    """The first ``keep`` (-1: all) stored KeyValues live at ``at_rev`` in the range, and how many are;
    with ``keys_only``, without their values (dropped as they are read, so they are never all held)."""
    out: list[bytes] = []
    if not end:
        raw = _get(txn, key, at_rev)
        if raw is not None and keep:
            out.append(_without_value(raw) if keys_only else raw)
        return out, int(raw is not None)
    lo = keys.lower_bound(key)
    hi = None if end == b"\x00" else keys.upper_bound(end)
    if hi is not None and hi <= lo:
        return out, 0
    if keep < 0:
        keep = 1 << 62
    threshold = keys.inv_main_bytes(at_rev)
    group_mark = keys.GROUP_MARK
    count = 0
    group: list[tuple[bytes, bytes]] = []
    group_of = b""
    decided = b""  # the ikey whose version at at_rev has been found
    skips = 0
    # Unbounded iteration, bounded here: the backend can then hand over its native iterator.
    it = txn.range(INDEX_BUCKET, lo, None)
    stop = hi if hi is not None else b"\xff" * 512  # above every key (they are <= 511 bytes)
    while True:
        restart: bytes | None = None
        for k, v in it:
            if k >= stop:
                break
            ik = k[:-16]
            if ik == decided or k[-16:-8] < threshold:
                # an older version of a key already decided, or a version newer than at_rev
                skips += 1
                if skips >= _SEEK_AFTER_SKIPS:
                    skips = 0
                    suffix = keys.AFTER_ALL_VERSIONS if ik == decided else keys.at_or_before(at_rev)
                    restart = ik + suffix
                    break
                continue
            skips = 0
            decided = ik
            if v[0] != TAG_PUT:
                continue
            if ik[-18:-16] == group_mark:
                g = ik[:-16]
                if g != group_of:
                    count += _flush(group, key, end, out, keep)
                    group_of = g
                raw = v[1:]
                group.append((KeyValue.FromString(raw).key, _without_value(raw) if keys_only else raw))
                continue
            if group:
                count += _flush(group, key, end, out, keep)
                group_of = b""
            count += 1
            if len(out) < keep:
                out.append(_without_value(v[1:]) if keys_only else v[1:])
            elif keep < 1 << 62:
                # Enough values: count the rest from the keys alone (tombstones are marked in them).
                count += _count_rest(txn, k + b"\x00", stop, at_rev, ik, end)
                return out, count
        if restart is None:
            break
        it = txn.range(INDEX_BUCKET, restart, None)
    count += _flush(group, key, end, out, keep)
    return out, count


def _count_rest(  # noqa: PLR0917 - the scan state it takes over
    txn: ReadTxn, start: bytes, stop: bytes, at_rev: int, decided: bytes, end: bytes
) -> int:
    """``_scan``'s count from ``start`` on (no long-key group of the range's start lies ahead)."""
    threshold = keys.inv_main_bytes(at_rev)
    # Only the group holding ``end`` can have members past it: those need their full keys.
    end_group = keys.group_prefix(end) if end != b"\x00" and not keys.is_short(end) else None
    count = 0
    skips = 0
    it = txn.keys(INDEX_BUCKET, start, None)
    while True:
        restart: bytes | None = None
        for k in it:
            if k >= stop:
                break
            ik = k[:-16]
            if ik == decided or k[-16:-8] < threshold:
                skips += 1
                if skips >= _SEEK_AFTER_SKIPS:
                    skips = 0
                    suffix = keys.AFTER_ALL_VERSIONS if ik == decided else keys.at_or_before(at_rev)
                    restart = ik + suffix
                    break
                continue
            skips = 0
            decided = ik
            if k[-1] & 1:  # a tombstone (see keys.inv_rev_bytes)
                continue
            if end_group is not None and ik[:-16] == end_group:
                stored = txn.get(INDEX_BUCKET, k)
                if stored is None or KeyValue.FromString(stored[1:]).key >= end:
                    continue
            count += 1
        if restart is None:
            break
        it = txn.keys(INDEX_BUCKET, restart, None)
    return count


def _flush(group: list[tuple[bytes, bytes]], key: bytes, end: bytes, out: list[bytes], keep: int) -> int:
    """Add a group of long keys (``petcd.mvcc.keys``) in key order, cut to ``[key, end)``; how many."""
    if not group:
        return 0
    group.sort(key=lambda item: item[0])
    n = 0
    for user_key, raw in group:
        if user_key >= key and (end == b"\x00" or user_key < end):
            n += 1
            if len(out) < keep:
                out.append(raw)
    group.clear()
    return n


def _get(txn: ReadTxn, key: bytes, at_rev: int, ik: bytes | None = None) -> bytes | None:
    """The stored KeyValue of ``key`` at ``at_rev``, or None if it did not exist then (``ik``: the
    key's index key, when the caller has it already)."""
    if ik is None:
        ik = keys.ikey(key)
    hit = txn.seek(INDEX_BUCKET, ik + keys.at_or_before(at_rev))
    if hit is None or hit[0][:-_INV] != ik or hit[1][0] != TAG_PUT:
        return None
    raw = hit[1][1:]
    if not keys.is_short(key) and KeyValue.FromString(raw).key != key:
        raise AssertionError(f"ikey hash collision for a key of {len(key)} bytes")
    return raw


def _range(txn: ReadTxn, req: RangeRequestLike, current_rev: int, compact_rev: int) -> RangeResult:
    if not req.key:
        raise KeyNotProvided()
    at_rev = req.revision if req.revision > 0 else current_rev
    if at_rev > current_rev:
        raise FutureRevision()
    if at_rev < compact_rev:
        raise Compacted()
    filters = (
        req.min_mod_revision or req.max_mod_revision or req.min_create_revision or req.max_create_revision
    )
    fetch = req.limit if req.sort_order == SORT_NONE and not filters else 0
    if fetch > 0:
        fetch += 1  # one more, to know whether there are more
    keep = 0 if req.count_only else (fetch if fetch > 0 else -1)
    sort_order = req.sort_order
    if req.sort_target != TARGET_KEY and sort_order == SORT_NONE:
        sort_order = 1  # ASCEND: ranges come out by key, other targets need sorting
    sorts = sort_order != SORT_NONE and req.sort_target != TARGET_KEY
    # values go at once, unless the sort needs them
    stripped = req.keys_only and not (sorts and req.sort_target == TARGET_VALUE)
    raws, count = _scan(txn, req.key, req.range_end, at_rev, keep, keys_only=stripped)
    more = False
    needs_parse = filters or sorts or (req.keys_only and not stripped)
    if needs_parse and raws:
        kvs = [KeyValue.FromString(r) for r in raws]
        pairs = list(zip(kvs, raws, strict=True))
        if req.max_mod_revision:
            pairs = [p for p in pairs if p[0].mod_revision <= req.max_mod_revision]
        if req.min_mod_revision:
            pairs = [p for p in pairs if p[0].mod_revision >= req.min_mod_revision]
        if req.max_create_revision:
            pairs = [p for p in pairs if p[0].create_revision <= req.max_create_revision]
        if req.min_create_revision:
            pairs = [p for p in pairs if p[0].create_revision >= req.min_create_revision]
        if sort_order != SORT_NONE and req.sort_target != TARGET_KEY:
            pairs.sort(key=_sort_key(req.sort_target), reverse=sort_order == SORT_DESCEND)
        elif sort_order == SORT_DESCEND:
            pairs.reverse()
        if req.keys_only and not stripped:
            out = []
            for kv, _ in pairs:
                kv.ClearField("value")
                out.append(kv.SerializeToString())
            raws = out
        else:
            raws = [raw for _, raw in pairs]
    elif sort_order == SORT_DESCEND:
        raws.reverse()
    if req.limit > 0 and len(raws) > req.limit:
        del raws[req.limit :]
        more = True
    return RangeResult(kvs=raws, count=count, more=more, revision=current_rev)


def _sort_key(target: int) -> Callable[[tuple[KeyValue, bytes]], Any]:
    if target == TARGET_VERSION:
        return lambda p: p[0].version
    if target == TARGET_CREATE:
        return lambda p: p[0].create_revision
    if target == TARGET_MOD:
        return lambda p: p[0].mod_revision
    if target == TARGET_VALUE:
        return lambda p: p[0].value
    return lambda p: p[0].key


def _compare(txn: ReadTxn, c: CompareLike, at_rev: int) -> bool:
    end = c.range_end
    found = [KeyValue.FromString(raw) for raw in _walk(txn, c.key, end, at_rev)]
    if not found:
        if c.target == CMP_VALUE:
            # etcd: comparing the value of a missing key always fails (no way to say "no value")
            return False
        found = [KeyValue()]
    return all(_compare_kv(c, kv) for kv in found)


def _compare_kv(c: CompareLike, kv: KeyValue) -> bool:
    result: int
    if c.target == CMP_VALUE:
        result = (kv.value > c.value) - (kv.value < c.value)
    else:
        ours, theirs = {
            CMP_VERSION: (kv.version, c.version),
            CMP_CREATE: (kv.create_revision, c.create_revision),
            CMP_MOD: (kv.mod_revision, c.mod_revision),
            CMP_LEASE: (kv.lease, c.lease),
        }.get(c.target, (0, 0))
        result = (ours > theirs) - (ours < theirs)
    if c.result == CMP_EQUAL:
        return result == 0
    if c.result == CMP_NOT_EQUAL:
        return result != 0
    if c.result == CMP_GREATER:
        return result > 0
    if c.result == CMP_LESS:
        return result < 0
    return True


# -- request checks (etcd's v3rpc checks and apply checks) -----------------------------------------


def check_put(req: PutRequestLike) -> None:
    """etcd's checkPutRequest (done before proposing)."""
    if not req.key:
        raise KeyNotProvided()
    if req.ignore_value and req.value:
        raise ValueProvided()
    if req.ignore_lease and req.lease:
        raise LeaseProvided()


def check_txn(req: TxnRequestLike, max_txn_ops: int = DEFAULT_MAX_TXN_OPS) -> None:
    """etcd's checkTxnRequest plus checkIntervals: sizes, keys given, no key written twice."""
    _check_txn_sizes(req, max_txn_ops)
    _check_intervals(req.success)
    _check_intervals(req.failure)


def _check_txn_sizes(req: TxnRequestLike, max_txn_ops: int) -> None:
    # etcd's checkTxnRequest: a nested txn gets what its parent's widest list leaves of the limit
    opc = max(len(req.compare), len(req.success), len(req.failure))
    if opc > max_txn_ops:
        raise TooManyOps()
    for c in req.compare:
        if not c.key:
            raise KeyNotProvided()
    for op in (*req.success, *req.failure):
        kind = op.WhichOneof("request")
        if kind == "request_range":
            if not op.request_range.key:
                raise KeyNotProvided()
        elif kind == "request_put":
            check_put(op.request_put)
        elif kind == "request_delete_range":
            if not op.request_delete_range.key:
                raise KeyNotProvided()
        elif kind == "request_txn":
            _check_txn_sizes(op.request_txn, max_txn_ops - opc)
        else:
            raise KeyNotFound()  # an empty RequestOp, as etcd answers it


def _in_dels(dels: list[tuple[bytes, bytes]], k: bytes) -> bool:
    # etcd's affine intervals: [key, end) with a non-empty end, or the point key
    return any((k == lo) if not hi else (lo <= k < hi) for lo, hi in dels)


def _check_intervals(ops: Sequence[RequestOpLike]) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    dels: list[tuple[bytes, bytes]] = []
    for op in ops:
        if op.WhichOneof("request") == "request_delete_range":
            d = op.request_delete_range
            dels.append((d.key, d.range_end))
    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        puts_then, dels_then = _check_intervals(op.request_txn.success)
        puts_else, dels_else = _check_intervals(op.request_txn.failure)
        for k in puts_then:
            if k in puts or _in_dels(dels, k):
                raise DuplicateKey()
            puts.add(k)
        for k in puts_else:
            if (k in puts and k not in puts_then) or _in_dels(dels, k):
                raise DuplicateKey()
            puts.add(k)
        dels.extend(dels_then)
        dels.extend(dels_else)
    for op in ops:
        if op.WhichOneof("request") != "request_put":
            continue
        k = op.request_put.key
        if k in puts or _in_dels(dels, k):
            raise DuplicateKey()
        puts.add(k)
    return puts, dels


def put_cost(req: PutRequestLike) -> int:
    return KV_OVERHEAD_BYTES + len(req.key) + len(req.value)


def txn_cost(req: TxnRequestLike) -> int:
    def branch(ops: Sequence[RequestOpLike]) -> int:
        total = 0
        for op in ops:
            kind = op.WhichOneof("request")
            if kind == "request_put":
                total += put_cost(op.request_put)
            elif kind == "request_txn":
                total += txn_cost(op.request_txn)
        return total

    return max(branch(req.success), branch(req.failure))


def _is_write(ops: Sequence[RequestOpLike]) -> bool:
    for op in ops:
        kind = op.WhichOneof("request")
        if kind in ("request_put", "request_delete_range"):
            return True
        if kind == "request_txn" and (_is_write(op.request_txn.success) or _is_write(op.request_txn.failure)):
            return True
    return False


# -- writing ---------------------------------------------------------------------------------------


class StoreWrite:
    """One backend write transaction of the store (see "Writes" in the module docstring)."""

    def __init__(self, store: KVStore, backend_txn: WriteTxn) -> None:
        self.store = store
        self.backend = backend_txn
        # Invariant: rev is the store's revision inside this transaction (>= store.current_rev).
        self.rev = store._current_rev
        self.compact_rev = store._compact_rev
        self.nospace = store._nospace
        self.announce: list[tuple[int, list[Event]]] = []
        self.lease_changes: list[tuple[bool, int, bytes]] = []  # (attach?, lease, key), as made
        # the revision being built by the current operation, and its changes so far
        self._main = 0
        self._events: list[Event] = []

    # one revision per request --------------------------------------------------------------------

    def _begin(self) -> None:
        self._main = self.rev + 1
        self._events = []

    def _end(self) -> int:
        if self._events:
            self.rev = self._main
            self.backend.put(META_BUCKET, CURRENT_REV_KEY, _U64.pack(self.rev))
            self.announce.append((self.rev, self._events))
        self._events = []
        return self.rev

    def _lease(self, attach: bool, lease: int, key: bytes) -> None:
        # At once, as etcd does: a revoke later in the same apply batch must see this key.
        hooks = self.store.lease_hooks
        if hooks is None:
            return
        if attach:
            hooks.attach(lease, key)
        else:
            hooks.detach(lease, key)
        self.lease_changes.append((attach, lease, key))

    def undo_lease_changes(self) -> None:
        """Reverse the lessor calls of a transaction that did not commit (best effort)."""
        hooks = self.store.lease_hooks
        if hooks is None:
            return
        for attach, lease, key in reversed(self.lease_changes):
            try:
                if attach:
                    hooks.detach(lease, key)
                else:
                    hooks.attach(lease, key)
            except EtcdError:
                pass  # the lease itself went away in the same transaction
        self.lease_changes.clear()

    def delete_txn(self) -> TxnDelete:
        """Deletes sharing one new revision (a lease revoke): ``delete_range`` each, then ``end()``."""
        return TxnDelete(self)

    def _put(self, key: bytes, value: bytes, lease: int) -> bytes | None:
        """Write a new version of ``key``; the previous stored KeyValue if the key existed."""
        main, sub = self._main, len(self._events)
        ik = keys.ikey(key)
        prev_raw = _get(self.backend, key, main, ik)
        kv = KeyValue(key=key, mod_revision=main, value=value, lease=lease)
        prev: KeyValue | None = None
        if prev_raw is not None:
            prev = KeyValue.FromString(prev_raw)
            kv.create_revision = prev.create_revision
            kv.version = prev.version + 1
            if prev.lease:
                self._lease(False, prev.lease, key)
        else:
            kv.create_revision = main
            kv.version = 1
        if lease:
            self._lease(True, lease, key)
        raw = kv.SerializeToString()
        self.backend.put(INDEX_BUCKET, ik + keys.inv_rev_bytes(main, sub), _PUT + raw)
        self.backend.put(HISTORY_BUCKET, keys.rev_bytes(main, sub), _PUT + ik)
        event = Event(type=Event.PUT, kv=kv)
        event_prev = self._event_prev(key, prev)
        if event_prev is not None:
            event.prev_kv.CopyFrom(event_prev)
        self._events.append(event)
        return prev_raw

    def _event_prev(self, key: bytes, prev: KeyValue | None) -> KeyValue | None:
        """An event's prev_kv: the key as of the revision before this one (etcd reads it at
        mod_revision - 1), not a version an earlier op of the same txn wrote."""
        if prev is None or prev.mod_revision < self._main:
            return prev
        older = _get(self.backend, key, self._main - 1)
        return None if older is None else KeyValue.FromString(older)

    def _delete(self, key: bytes, end: bytes) -> list[bytes]:
        """Tombstone every live key in the range; their stored KeyValues before the delete."""
        main = self._main
        found = list(_walk(self.backend, key, end, main))
        for raw in found:
            prev = KeyValue.FromString(raw)
            sub = len(self._events)
            ik = keys.ikey(prev.key)
            tomb = KeyValue(key=prev.key)
            self.backend.put(
                INDEX_BUCKET, ik + keys.inv_rev_bytes(main, sub, True), _TOMB + tomb.SerializeToString()
            )
            self.backend.put(HISTORY_BUCKET, keys.rev_bytes(main, sub), _TOMB + ik)
            if prev.lease:
                self._lease(False, prev.lease, prev.key)
            tomb.mod_revision = main
            self._events.append(Event(type=Event.DELETE, kv=tomb, prev_kv=self._event_prev(prev.key, prev)))
        return found

    # requests -----------------------------------------------------------------------------------

    def _check_quota(self) -> None:
        # Only the (replicated) alarm decides here; see "Quota" in the module docstring.
        if self.nospace:
            raise NoSpace()

    def _check_put_applies(self, req: PutRequestLike, at_rev: int) -> None:
        """etcd's checkPut: ignore_* need the key; a lease must exist."""
        if (req.ignore_value or req.ignore_lease) and _get(self.backend, req.key, at_rev) is None:
            raise KeyNotFound()
        if req.lease and self.store.lease_hooks is not None:
            self.store.lease_hooks.check_lease(req.lease)

    def put(self, req: PutRequestLike) -> PutResult:
        check_put(req)
        self._check_quota()
        self._check_put_applies(req, self.rev)
        self._begin()
        result = self._apply_put(req)
        result.revision = self._end()
        return result

    def _apply_put(self, req: PutRequestLike) -> PutResult:
        value, lease = req.value, req.lease
        if req.ignore_value or req.ignore_lease:
            current = _get(self.backend, req.key, self._main)
            if current is None:
                raise KeyNotFound()
            prev = KeyValue.FromString(current)
            if req.ignore_value:
                value = prev.value
            if req.ignore_lease:
                lease = prev.lease
        prev_raw = self._put(req.key, value, lease)
        return PutResult(revision=self._main, prev_kv=prev_raw if req.prev_kv else None)

    def delete_range(self, req: DeleteRangeRequestLike) -> DeleteRangeResult:
        if not req.key:
            raise KeyNotProvided()
        self._begin()
        result = self._apply_delete(req)
        result.revision = self._end()
        return result

    def _apply_delete(self, req: DeleteRangeRequestLike) -> DeleteRangeResult:
        found = self._delete(req.key, req.range_end)
        revision = self._main if self._events else self.rev
        return DeleteRangeResult(revision=revision, deleted=len(found), prev_kvs=found if req.prev_kv else [])

    def range(self, req: RangeRequestLike) -> RangeResult:
        return _range(self.backend, req, self.rev, self.compact_rev)

    def txn(self, req: TxnRequestLike) -> TxnResult:
        check_txn(req, self.store.max_txn_ops)
        path = self._path(req)
        ops = req.success if path[0] else req.failure
        chosen = self._chosen_ops(req, path)
        if any(op.WhichOneof("request") == "request_put" for op in chosen):
            self._check_quota()
        for op in chosen:
            kind = op.WhichOneof("request")
            if kind == "request_put":
                self._check_put_applies(op.request_put, self.rev)
            elif kind == "request_range":
                r = op.request_range.revision
                if r > self.rev:
                    raise FutureRevision()
                if 0 < r < self.compact_rev:
                    raise Compacted()
        self._begin()
        result = self._apply_txn(req, ops, path, 0)[0]
        self._end()
        result.revision = self.rev
        return result

    def _path(self, req: TxnRequestLike) -> list[bool]:
        """etcd's compareToPath: every compare, nested ones too, against the state before the txn."""
        ok = all(_compare(self.backend, c, self.rev) for c in req.compare)
        path = [ok]
        for op in req.success if ok else req.failure:
            if op.WhichOneof("request") == "request_txn":
                path.extend(self._path(op.request_txn))
        return path

    def _chosen_ops(self, req: TxnRequestLike, path: list[bool]) -> list[RequestOpLike]:
        out: list[RequestOpLike] = []

        def visit(r: TxnRequestLike, i: int) -> int:
            ops = r.success if path[i] else r.failure
            i += 1
            for op in ops:
                if op.WhichOneof("request") == "request_txn":
                    i = visit(op.request_txn, i)
                else:
                    out.append(op)
            return i

        visit(req, 0)
        return out

    def _apply_txn(
        self, req: TxnRequestLike, ops: Sequence[RequestOpLike], path: list[bool], i: int
    ) -> tuple[TxnResult, int]:
        result = TxnResult(revision=0, succeeded=path[i])
        i += 1
        for op in ops:
            kind = op.WhichOneof("request")
            if kind == "request_range":
                # reads inside a txn see its earlier writes
                result.responses.append(
                    _range(self.backend, op.request_range, self._main if self._events else self.rev, 0)
                )
            elif kind == "request_put":
                result.responses.append(self._apply_put(op.request_put))
            elif kind == "request_delete_range":
                result.responses.append(self._apply_delete(op.request_delete_range))
            elif kind == "request_txn":
                nested = op.request_txn
                sub, i = self._apply_txn(nested, nested.success if path[i] else nested.failure, path, i)
                result.responses.append(sub)
        return result, i

    def compact(self, rev: int) -> CompactResult:
        if rev <= self.compact_rev:
            raise Compacted()
        if rev > self.rev:
            raise FutureRevision()
        self.compact_rev = rev
        self.backend.put(META_BUCKET, COMPACT_REV_KEY, _U64.pack(rev))
        self.backend.put(META_BUCKET, COMPACT_CURSOR_KEY, keys.rev_bytes(0, 0))
        return CompactResult(revision=self.rev)

    def compact_batch(self, limit: int = DEFAULT_COMPACTION_BATCH) -> bool:
        """Remove what the scheduled compaction allows, up to ``limit`` history entries; True when done."""
        target = self.compact_rev
        txn = self.backend
        finished = _u64(txn.get(META_BUCKET, FINISHED_COMPACT_REV_KEY))
        if finished >= target:
            return True
        cursor = txn.get(META_BUCKET, COMPACT_CURSOR_KEY) or keys.rev_bytes(0, 0)
        end = keys.rev_bytes(target + 1, 0)
        batch = list(_take(txn.range(HISTORY_BUCKET, cursor, end), limit))
        for rk, v in batch:
            main, sub = keys.parse_rev(rk)
            ik = v[1:]
            index_key = ik + keys.inv_rev_bytes(main, sub, v[0] == TAG_TOMBSTONE)
            newer = txn.seek_before(INDEX_BUCKET, index_key)
            superseded = (
                newer is not None and newer[0][:-_INV] == ik and keys.parse_inv_rev(newer[0])[0] <= target
            )
            if superseded or v[0] == TAG_TOMBSTONE:
                txn.delete(INDEX_BUCKET, index_key)
                txn.delete(HISTORY_BUCKET, rk)
        if len(batch) < limit:
            txn.put(META_BUCKET, FINISHED_COMPACT_REV_KEY, _U64.pack(target))
            txn.delete(META_BUCKET, COMPACT_CURSOR_KEY)
            return True
        last_main, last_sub = keys.parse_rev(batch[-1][0])
        txn.put(META_BUCKET, COMPACT_CURSOR_KEY, keys.rev_bytes(last_main, last_sub + 1))
        return False


class TxnDelete:
    """Deletes that make one revision together (etcd's lessor revoke: every key of a lease at once)."""

    def __init__(self, w: StoreWrite) -> None:
        self._w = w
        w._begin()

    def delete_range(self, key: bytes, end: bytes | None) -> tuple[int, int]:
        """Tombstone the live keys of ``[key, end)`` (None/empty: the key alone); (deleted, revision)."""
        found = self._w._delete(key, end or b"")
        return len(found), self._w._main

    def end(self) -> int:
        """Close the revision (none is taken if nothing was deleted); the store's revision after it."""
        return self._w._end()


def _take(it: Iterator[tuple[bytes, bytes]], n: int) -> Iterator[tuple[bytes, bytes]]:
    for i, item in enumerate(it):
        if i >= n:
            return
        yield item


# -- the store ---------------------------------------------------------------------------------------


class KVStore:
    """etcd's MVCC store on a Backend (see the module docstring)."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_txn_ops: int = DEFAULT_MAX_TXN_OPS,
        lease_hooks: LeaseHooks | None = None,
    ) -> None:
        self.backend = backend
        self.max_txn_ops = max_txn_ops
        self.lease_hooks = lease_hooks
        self._sink: EventSink | None = None
        self._revision_listeners: list[RevisionListener] = []
        self._current_rev = 0
        self._announcing = 0  # the revision being handed to the event sink (see write)
        if not backend.read_only:
            for bucket in (INDEX_BUCKET, HISTORY_BUCKET, META_BUCKET):
                backend.create_bucket(bucket)
        self.reload()

    def reload(self) -> None:
        """Re-read the revisions and alarm from the backend (after opening, or a backend restore)."""
        with self.backend.read_txn() as txn:
            before = self._current_rev
            self._current_rev = _current(txn)
            self._compact_rev = _compacted(txn)
            self._nospace = txn.get(META_BUCKET, NOSPACE_KEY) is not None
        if self._revision_listeners and self._current_rev != before:
            self._announce_revision()

    def set_event_sink(self, sink: EventSink | None) -> None:
        """``sink(revision, events)`` is called after each commit, once per revision, in order."""
        self._sink = sink

    def add_revision_listener(self, listener: RevisionListener) -> None:
        """``listener(current_rev)`` after each commit that advanced the revision (module doc)."""
        self._revision_listeners.append(listener)

    def remove_revision_listener(self, listener: RevisionListener) -> None:
        if listener in self._revision_listeners:
            self._revision_listeners.remove(listener)

    def _announce_revision(self) -> None:
        for listener in list(self._revision_listeners):
            listener(self._current_rev)

    # -- state ----------------------------------------------------------------------------------

    @property
    def current_rev(self) -> int:
        """The revision of the last committed change (read from the backend in a read-only process,
        where another process writes; the writer knows it without reading)."""
        if self.backend.read_only:
            self.reload()
        return self._current_rev

    @property
    def compact_rev(self) -> int:
        if self.backend.read_only:
            self.reload()
        return self._compact_rev

    @property
    def nospace(self) -> bool:
        return self._nospace

    def revisions(self) -> tuple[int, int]:
        """``(current_rev, compact_rev)`` as committed (reads the backend: right in any process)."""
        with self.backend.read_txn() as txn:
            return _current(txn), _compacted(txn)

    # -- reads ----------------------------------------------------------------------------------

    def range(self, req: RangeRequestLike) -> RangeResult:
        with self.backend.read_txn() as txn:
            current = _current(txn)
            compact = _compacted(txn)
            return _range(txn, req, current, compact)

    def events(
        self, start_rev: int, end_rev: int | None = None, *, prev_kv: bool = False
    ) -> list[tuple[int, list[Event]]]:
        """The changes of revisions ``start_rev <= rev < end_rev`` (None: to the current one)."""
        with self.backend.read_txn() as txn:
            if start_rev < _compacted(txn):
                raise Compacted()
            return _read_events(txn, start_rev, end_rev, prev_kv)

    def tail_events(
        self, start_rev: int, end_rev: int, *, prev_kv: bool = False
    ) -> list[tuple[int, list[Event]]]:
        """``events`` for a reader that follows the history from another process (a front-end's
        watchers): revisions below a scheduled compaction may still be read while its physical
        removal has not reached them; ``Compacted`` once entries at or after ``start_rev`` may be
        gone."""
        with self.backend.read_txn() as txn:
            if start_rev < _history_kept_from(txn):
                raise Compacted()
            return _read_events(txn, start_rev, end_rev, prev_kv)

    # the watchable store's HistoryStore protocol (petcd.mvcc.watchable_store)

    def current_revision(self) -> int:
        return self._announcing or self.current_rev

    def compact_revision(self) -> int:
        return self.compact_rev

    def history(self, min_rev: int, max_rev: int) -> Iterator[tuple[int, bool, KeyValue]]:
        """``(main, is_delete, kv)`` of every change with ``min_rev <= main <= max_rev``, in order."""
        for main, events in self.events(min_rev, max_rev + 1):
            for ev in events:
                yield main, ev.type == Event.DELETE, ev.kv

    def kv_at(self, key: bytes, rev: int) -> KeyValue | None:
        """The key's value at revision ``rev``, or None (no compaction check: for prev_kv)."""
        with self.backend.read_txn() as txn:
            raw = _get(txn, key, rev)
        return KeyValue.FromString(raw) if raw is not None else None

    def iter_leased_keys(self) -> Iterator[tuple[int, bytes]]:
        """``(lease, key)`` of every live key attached to a lease (for the lessor's recovery)."""
        with self.backend.read_txn() as txn:
            current = _current(txn)
            for raw in _walk(txn, b"\x00", b"\x00", current):
                kv = KeyValue.FromString(raw)
                if kv.lease:
                    yield kv.lease, kv.key

    # -- writes ---------------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[StoreWrite]:
        """One backend write transaction; announces its changes after it commits."""
        w: StoreWrite | None = None
        try:
            with self.backend.write_txn() as btxn:
                w = StoreWrite(self, btxn)
                yield w
        except BaseException:
            if w is not None:
                w.undo_lease_changes()
            raise
        advanced = w.rev != self._current_rev
        self._current_rev = w.rev
        self._compact_rev = w.compact_rev
        self._nospace = w.nospace
        if self._sink is not None:
            try:
                for rev, evs in w.announce:
                    # The sink sees each revision as the current one while it is handed out: a
                    # progress response sent from inside it must not claim later revisions of this
                    # commit whose events are not queued yet.
                    self._announcing = rev
                    self._sink(rev, evs)
            finally:
                self._announcing = 0
        if advanced and self._revision_listeners:
            self._announce_revision()

    def _run(self, w: StoreWrite | None, fn: Callable[[StoreWrite], _T]) -> _T:
        if w is not None:
            return fn(w)
        with self.write() as own:
            return fn(own)

    def _admit(self, cost: int) -> None:
        """The API layer's quota check, for callers without raft (no ``w``)."""
        if cost and not self.quota_available(cost):
            if not self._nospace:
                self.activate_nospace()
            raise NoSpace()

    def put(self, req: PutRequestLike, w: StoreWrite | None = None) -> PutResult:
        if w is None:
            self._admit(put_cost(req))
        return self._run(w, lambda w: w.put(req))

    def delete_range(self, req: DeleteRangeRequestLike, w: StoreWrite | None = None) -> DeleteRangeResult:
        return self._run(w, lambda w: w.delete_range(req))

    def txn(self, req: TxnRequestLike, w: StoreWrite | None = None) -> TxnResult:
        if not _is_write(req.success) and not _is_write(req.failure) and w is None:
            with self.backend.read_txn() as txn:
                current = _current(txn)
                compact = _compacted(txn)
                return _ReadOnlyTxn(txn, current, compact, self.max_txn_ops).txn(req)
        if w is None:
            self._admit(txn_cost(req))
        return self._run(w, lambda w: w.txn(req))

    def compact(self, rev: int, *, physical: bool = False, w: StoreWrite | None = None) -> CompactResult:
        result = self._run(w, lambda w: w.compact(rev))
        if physical and w is None:
            self.finish_compaction()
        return result

    def compaction_pending(self) -> bool:
        with self.backend.read_txn() as txn:
            return _u64(txn.get(META_BUCKET, FINISHED_COMPACT_REV_KEY)) < _compacted(txn)

    def compact_batch(self, limit: int = DEFAULT_COMPACTION_BATCH, w: StoreWrite | None = None) -> bool:
        return self._run(w, lambda w: w.compact_batch(limit))

    def finish_compaction(self, limit: int = DEFAULT_COMPACTION_BATCH) -> None:
        while not self.compact_batch(limit):
            pass

    def activate_nospace(self, w: StoreWrite | None = None) -> None:
        def do(w: StoreWrite) -> None:
            w.nospace = True
            w.backend.put(META_BUCKET, NOSPACE_KEY, b"1")

        self._run(w, do)

    def disarm_nospace(self, w: StoreWrite | None = None) -> None:
        def do(w: StoreWrite) -> None:
            w.nospace = False
            w.backend.delete(META_BUCKET, NOSPACE_KEY)

        self._run(w, do)

    def quota_available(self, cost: int, size_bytes: int | None = None) -> bool:
        """etcd's quota check, for the API layer to run before proposing (`size_bytes`: the
        backend's size if the caller already knows it)."""
        size = self.backend.size_bytes() if size_bytes is None else size_bytes
        return not self._nospace and size + cost <= self.backend.quota_bytes

    # -- hashes ---------------------------------------------------------------------------------

    def hash_kv(self, rev: int = 0) -> HashKVResult:
        with self.backend.read_txn() as txn:
            current = _current(txn)
            compact = _compacted(txn)
            if rev > 0 and rev <= compact:
                raise Compacted()
            if rev > current:
                raise FutureRevision()
            at = rev if rev > 0 else current
            h = crc32c(b"key", 0)
            for rk, v in txn.range(HISTORY_BUCKET, keys.rev_bytes(0, 0), keys.rev_bytes(at + 1, 0)):
                main, sub = keys.parse_rev(rk)
                ik = v[1:]
                index_key = ik + keys.inv_rev_bytes(main, sub, v[0] == TAG_TOMBSTONE)
                if main <= compact and not _kept(txn, ik, index_key, v[0], at):
                    continue
                stored = txn.get(INDEX_BUCKET, index_key)
                if stored is None:
                    raise AssertionError(f"history entry {main}.{sub} has no index entry")
                h = crc32c(rk + (b"t" if v[0] == TAG_TOMBSTONE else b""), h)
                h = crc32c(stored[1:], h)
            return HashKVResult(hash=h, compact_revision=compact, hash_revision=at, revision=current)

    def hash(self) -> int:
        """CRC-32C over both MVCC buckets, names, keys and values (Maintenance.Hash)."""
        with self.backend.read_txn() as txn:
            h = 0
            for bucket in (HISTORY_BUCKET, INDEX_BUCKET):
                h = crc32c(bucket.encode(), h)
                for k, v in txn.range(bucket, b"\x00", None):
                    h = crc32c(v, crc32c(k, h))
            return h


def _kept(txn: ReadTxn, ik: bytes, index_key: bytes, tag: int, at: int) -> bool:
    """etcd's keyIndex.keep: the newest version of the key at ``at``, unless it is a tombstone."""
    if tag == TAG_TOMBSTONE:
        return False
    newer = txn.seek_before(INDEX_BUCKET, index_key)
    return not (newer is not None and newer[0][:-_INV] == ik and keys.parse_inv_rev(newer[0])[0] <= at)


class _ReadOnlyTxn:
    """A txn without writes, on a read transaction (etcd serves these without the write lock)."""

    def __init__(self, txn: ReadTxn, current: int, compact: int, max_txn_ops: int) -> None:
        self._txn = txn
        self._current = current
        self._compact = compact
        self._max_txn_ops = max_txn_ops

    def txn(self, req: TxnRequestLike) -> TxnResult:
        check_txn(req, self._max_txn_ops)
        ok = all(_compare(self._txn, c, self._current) for c in req.compare)
        result = TxnResult(revision=self._current, succeeded=ok)
        for op in req.success if ok else req.failure:
            kind = op.WhichOneof("request")
            if kind == "request_range":
                result.responses.append(_range(self._txn, op.request_range, self._current, self._compact))
            elif kind == "request_txn":
                result.responses.append(self.txn(op.request_txn))
        return result
