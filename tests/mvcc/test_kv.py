"""Conformance of the MVCC store, table-driven like etcd's kv tests, over both backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from crc32c import crc32c

from petcd.backend import Backend
from petcd.errors import (
    Compacted,
    DuplicateKey,
    FutureRevision,
    KeyNotFound,
    KeyNotProvided,
    LeaseProvided,
    NoSpace,
    TooManyOps,
    ValueProvided,
)
from petcd.mvcc import types as t
from petcd.mvcc.kvstore import HISTORY_BUCKET, INDEX_BUCKET, KVStore
from petcd.mvcc.types import (
    Compare,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    RangeResult,
    RequestOp,
    TxnRequest,
)
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.mvccpb.kv_pb2 import Event, KeyValue

MakeBackend = Callable[..., Backend]


def kv(raw: bytes) -> tuple[bytes, bytes, int, int, int, int]:
    m = KeyValue.FromString(raw)
    return m.key, m.value, m.create_revision, m.mod_revision, m.version, m.lease


def keys_of(r: RangeResult) -> list[bytes]:
    return [KeyValue.FromString(raw).key for raw in r.kvs]


def put(s: KVStore, key: bytes, value: bytes = b"v", lease: int = 0) -> int:
    return s.put(PutRequest(key, value, lease=lease)).revision


def seeded(s: KVStore) -> None:
    # revs 2..8 (an empty store is at 1): a, ab, b, c, foo (twice), foo1; z put at 9 and deleted at 10
    for k in [b"a", b"ab", b"b", b"c", b"foo"]:
        put(s, k, b"v-" + k)
    put(s, b"foo", b"v-foo-2")
    put(s, b"foo1", b"v-foo1")
    put(s, b"z", b"gone")
    s.delete_range(DeleteRangeRequest(b"z"))


# -- Range -----------------------------------------------------------------------------------------

RANGE_CASES: list[tuple[str, dict[str, Any], list[bytes], int, bool]] = [
    ("single", {"key": b"ab"}, [b"ab"], 1, False),
    ("single missing", {"key": b"nope"}, [], 0, False),
    ("single deleted", {"key": b"z"}, [], 0, False),
    ("range", {"key": b"a", "range_end": b"c"}, [b"a", b"ab", b"b"], 3, False),
    ("prefix", {"key": b"foo", "range_end": b"fop"}, [b"foo", b"foo1"], 2, False),
    ("from key", {"key": b"b", "range_end": b"\x00"}, [b"b", b"c", b"foo", b"foo1"], 4, False),
    ("all", {"key": b"\x00", "range_end": b"\x00"}, [b"a", b"ab", b"b", b"c", b"foo", b"foo1"], 6, False),
    ("empty range", {"key": b"c", "range_end": b"c"}, [], 0, False),
    ("limit", {"key": b"a", "range_end": b"\x00", "limit": 2}, [b"a", b"ab"], 6, True),
    ("limit exact", {"key": b"a", "range_end": b"b", "limit": 2}, [b"a", b"ab"], 2, False),
    ("count only", {"key": b"a", "range_end": b"\x00", "count_only": True}, [], 6, False),
    (
        "descend by key",
        {"key": b"a", "range_end": b"c", "sort_order": t.SORT_DESCEND},
        [b"b", b"ab", b"a"],
        3,
        False,
    ),
    (
        "descend by key with limit",
        {"key": b"a", "range_end": b"\x00", "sort_order": t.SORT_DESCEND, "limit": 2},
        [b"foo1", b"foo"],
        6,
        True,
    ),
    (
        "by mod descend",
        {"key": b"a", "range_end": b"\x00", "sort_order": t.SORT_DESCEND, "sort_target": t.TARGET_MOD},
        [b"foo1", b"foo", b"c", b"b", b"ab", b"a"],
        6,
        False,
    ),
    (
        "by version descend",
        {"key": b"a", "range_end": b"\x00", "sort_order": t.SORT_DESCEND, "sort_target": t.TARGET_VERSION},
        [b"foo", b"a", b"ab", b"b", b"c", b"foo1"],
        6,
        False,
    ),
    (
        "target without order sorts ascending",
        {"key": b"a", "range_end": b"\x00", "sort_target": t.TARGET_CREATE},
        [b"a", b"ab", b"b", b"c", b"foo", b"foo1"],
        6,
        False,
    ),
    (
        "by value ascend",
        {"key": b"b", "range_end": b"\x00", "sort_order": t.SORT_ASCEND, "sort_target": t.TARGET_VALUE},
        [b"b", b"c", b"foo", b"foo1"],
        4,
        False,
    ),
    ("min mod", {"key": b"a", "range_end": b"\x00", "min_mod_revision": 7}, [b"foo", b"foo1"], 6, False),
    ("max mod", {"key": b"a", "range_end": b"\x00", "max_mod_revision": 2}, [b"a"], 6, False),
    (
        "min create",
        {"key": b"a", "range_end": b"\x00", "min_create_revision": 6},
        [b"foo", b"foo1"],
        6,
        False,
    ),
    ("max create", {"key": b"a", "range_end": b"\x00", "max_create_revision": 3}, [b"a", b"ab"], 6, False),
    (
        "filter then limit",
        {"key": b"a", "range_end": b"\x00", "min_create_revision": 3, "limit": 1},
        [b"ab"],
        6,
        True,
    ),
    ("at past revision", {"key": b"a", "range_end": b"\x00", "revision": 3}, [b"a", b"ab"], 2, False),
    ("past deleted", {"key": b"z", "revision": 9}, [b"z"], 1, False),
]


@pytest.mark.parametrize(
    ("name", "args", "want", "count", "more"), RANGE_CASES, ids=[c[0] for c in RANGE_CASES]
)
def test_range(  # noqa: PLR0917 - one parameter per table column
    store: KVStore, name: str, args: dict[str, Any], want: list[bytes], count: int, more: bool
) -> None:
    seeded(store)
    r = store.range(RangeRequest(**args))
    assert keys_of(r) == want
    assert (r.count, r.more) == (count, more)
    assert r.revision == store.current_rev == 10


def test_range_values_and_keys_only(store: KVStore) -> None:
    seeded(store)
    r = store.range(RangeRequest(b"foo"))
    assert [kv(raw) for raw in r.kvs] == [(b"foo", b"v-foo-2", 6, 7, 2, 0)]
    r = store.range(RangeRequest(b"foo", b"fop", keys_only=True))
    assert [kv(raw) for raw in r.kvs] == [(b"foo", b"", 6, 7, 2, 0), (b"foo1", b"", 8, 8, 1, 0)]
    r = store.range(RangeRequest(b"foo", revision=6))
    assert [kv(raw) for raw in r.kvs] == [(b"foo", b"v-foo", 6, 6, 1, 0)]


def test_range_errors(store: KVStore) -> None:
    seeded(store)
    with pytest.raises(FutureRevision) as e:
        store.range(RangeRequest(b"a", revision=11))
    assert str(e.value) == "etcdserver: mvcc: required revision is a future revision"
    store.compact(6)
    with pytest.raises(Compacted) as c:
        store.range(RangeRequest(b"a", revision=5))
    assert str(c.value) == "etcdserver: mvcc: required revision has been compacted"
    assert keys_of(store.range(RangeRequest(b"a", b"c", revision=6))) == [b"a", b"ab", b"b"]
    with pytest.raises(KeyNotProvided):
        store.range(RangeRequest(b""))


def test_range_accepts_etcdserverpb_messages(store: KVStore) -> None:
    seeded(store)
    r = store.range(pb.RangeRequest(key=b"a", range_end=b"c", sort_order=pb.RangeRequest.DESCEND))
    assert keys_of(r) == [b"b", b"ab", b"a"]
    # the stored bytes splice into a response as they are
    resp = pb.RangeResponse(kvs=[KeyValue.FromString(raw) for raw in r.kvs], count=r.count)
    assert [x.SerializeToString() for x in resp.kvs] == r.kvs


def test_many_versions_range_at_each_revision(store: KVStore) -> None:
    """Deep histories: every revision reads back (exercises the walk's seek past long runs)."""
    for i in range(40):
        put(store, b"k", b"%d" % i)
        put(store, b"k%d" % (i % 3), b"%d" % i)
        if i % 7 == 0:
            store.delete_range(DeleteRangeRequest(b"k", b"k\x00"))
    model: dict[bytes, bytes] = {}
    for rev, events in store.events(1):
        for ev in events:
            if ev.type == Event.PUT:
                model[ev.kv.key] = ev.kv.value
            else:
                model.pop(ev.kv.key, None)
        r = store.range(RangeRequest(b"k", b"l", revision=rev))
        assert [(KeyValue.FromString(x).key, KeyValue.FromString(x).value) for x in r.kvs] == sorted(
            model.items()
        )


# -- Put / DeleteRange ----------------------------------------------------------------------------


def test_put_versions_and_generations(store: KVStore) -> None:
    assert store.current_rev == 1  # an empty store is at revision 1, as in etcd
    assert store.put(PutRequest(b"k", b"1")).revision == 2
    r2 = store.put(PutRequest(b"k", b"2", prev_kv=True))
    assert r2.revision == 3 and r2.prev_kv is not None and kv(r2.prev_kv) == (b"k", b"1", 2, 2, 1, 0)
    d = store.delete_range(DeleteRangeRequest(b"k", prev_kv=True))
    assert (d.revision, d.deleted, [kv(x) for x in d.prev_kvs]) == (4, 1, [(b"k", b"2", 2, 3, 2, 0)])
    r4 = store.put(PutRequest(b"k", b"3", prev_kv=True))
    assert r4.prev_kv is None
    assert [kv(x) for x in store.range(RangeRequest(b"k")).kvs] == [(b"k", b"3", 5, 5, 1, 0)]


def test_delete_of_nothing_takes_no_revision(store: KVStore) -> None:
    put(store, b"a")
    d = store.delete_range(DeleteRangeRequest(b"b", b"\x00", prev_kv=True))
    assert (d.deleted, d.revision, d.prev_kvs) == (0, 2, [])
    assert store.current_rev == 2
    d = store.delete_range(DeleteRangeRequest(b"\x00", b"\x00"))
    assert (d.deleted, d.revision) == (1, 3)


def test_put_ignore_value_and_lease(make_backend: MakeBackend) -> None:
    hooks = Hooks({5, 6})
    s = KVStore(make_backend(), lease_hooks=hooks)
    put(s, b"k", b"v1", lease=5)
    assert hooks.log == [("attach", 5, b"k")]
    s.put(PutRequest(b"k", ignore_value=True, lease=6))
    assert [kv(x) for x in s.range(RangeRequest(b"k")).kvs] == [(b"k", b"v1", 2, 3, 2, 6)]
    s.put(PutRequest(b"k", b"v3", ignore_lease=True))
    assert [kv(x) for x in s.range(RangeRequest(b"k")).kvs] == [(b"k", b"v3", 2, 4, 3, 6)]
    assert hooks.log[1:] == [
        ("detach", 5, b"k"),
        ("attach", 6, b"k"),
        ("detach", 6, b"k"),
        ("attach", 6, b"k"),
    ]
    with pytest.raises(KeyNotFound):
        s.put(PutRequest(b"missing", ignore_value=True))
    with pytest.raises(ValueProvided):
        s.put(PutRequest(b"k", b"x", ignore_value=True))
    with pytest.raises(LeaseProvided):
        s.put(PutRequest(b"k", lease=5, ignore_lease=True))
    with pytest.raises(KeyNotProvided):
        s.put(PutRequest(b""))
    with pytest.raises(LookupError):
        s.put(PutRequest(b"k", lease=99))
    s.delete_range(DeleteRangeRequest(b"k"))
    assert hooks.log[-1] == ("detach", 6, b"k")
    assert s.current_rev == 5
    assert list(s.iter_leased_keys()) == []


class Hooks:
    def __init__(self, leases: set[int]) -> None:
        self.leases = leases
        self.log: list[tuple[str, int, bytes]] = []

    def check_lease(self, lease_id: int) -> None:
        if lease_id not in self.leases:
            raise LookupError(lease_id)

    def attach(self, lease_id: int, key: bytes) -> None:
        self.log.append(("attach", lease_id, key))

    def detach(self, lease_id: int, key: bytes) -> None:
        self.log.append(("detach", lease_id, key))


def test_lease_hooks_run_at_once_and_are_undone_on_abort(make_backend: MakeBackend) -> None:
    hooks = Hooks({5, 6})
    s = KVStore(make_backend(), lease_hooks=hooks)
    put(s, b"k", lease=5)
    with pytest.raises(RuntimeError), s.write() as w:
        w.put(PutRequest(b"k", lease=6))
        # seen by the lessor before the commit: a revoke later in the batch finds the key
        assert hooks.log[-2:] == [("detach", 5, b"k"), ("attach", 6, b"k")]
        raise RuntimeError("abort")
    assert hooks.log[-2:] == [("detach", 6, b"k"), ("attach", 5, b"k")]
    assert [kv(x)[5] for x in s.range(RangeRequest(b"k")).kvs] == [5]


def test_delete_txn_makes_one_revision(store: KVStore) -> None:
    for k in (b"a", b"b", b"c"):
        put(store, k)
    seen: list[tuple[int, list[bytes]]] = []
    store.set_event_sink(lambda rev, evs: seen.append((rev, [e.kv.key for e in evs])))
    with store.write() as w:
        d = w.delete_txn()
        assert d.delete_range(b"a", None) == (1, 5)
        assert d.delete_range(b"b", b"d") == (2, 5)
        assert d.delete_range(b"zz", None) == (0, 5)
        assert d.end() == 5
        assert w.delete_txn().end() == 5  # nothing deleted: no revision
    assert seen == [(5, [b"a", b"b", b"c"])]
    assert store.current_rev == 5


def test_iter_leased_keys(store: KVStore) -> None:
    put(store, b"a", lease=7)
    put(store, b"b")
    put(store, b"c", lease=8)
    put(store, b"a", lease=0)
    assert list(store.iter_leased_keys()) == [(8, b"c")]


# -- Txn --------------------------------------------------------------------------------------------


def op(req: RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest) -> RequestOp:
    return RequestOp.of(req)


def cmp(key: bytes, target: int, result: int, range_end: bytes = b"", **value: Any) -> Compare:
    return Compare(key=key, target=target, result=result, range_end=range_end, **value)


TXN_COMPARE_CASES: list[tuple[str, Compare, bool]] = [
    ("value equal", cmp(b"foo", t.CMP_VALUE, t.CMP_EQUAL, value=b"v-foo-2"), True),
    ("value not equal", cmp(b"foo", t.CMP_VALUE, t.CMP_NOT_EQUAL, value=b"v-foo-2"), False),
    ("value greater", cmp(b"foo", t.CMP_VALUE, t.CMP_GREATER, value=b"v-foo"), True),
    ("value less", cmp(b"foo", t.CMP_VALUE, t.CMP_LESS, value=b"v-foo"), False),
    ("value of missing key fails", cmp(b"nope", t.CMP_VALUE, t.CMP_NOT_EQUAL, value=b"x"), False),
    ("version", cmp(b"foo", t.CMP_VERSION, t.CMP_EQUAL, version=2), True),
    ("version of missing is 0", cmp(b"nope", t.CMP_VERSION, t.CMP_EQUAL, version=0), True),
    ("create", cmp(b"foo", t.CMP_CREATE, t.CMP_EQUAL, create_revision=6), True),
    ("create of missing is 0", cmp(b"z", t.CMP_CREATE, t.CMP_EQUAL, create_revision=0), True),
    ("mod less", cmp(b"foo", t.CMP_MOD, t.CMP_LESS, mod_revision=8), True),
    ("mod greater", cmp(b"foo", t.CMP_MOD, t.CMP_GREATER, mod_revision=7), False),
    ("lease", cmp(b"foo", t.CMP_LEASE, t.CMP_EQUAL, lease=0), True),
    ("range all match", cmp(b"a", t.CMP_CREATE, t.CMP_LESS, b"c", create_revision=5), True),
    ("range one fails", cmp(b"a", t.CMP_CREATE, t.CMP_LESS, b"c", create_revision=4), False),
    ("from key", cmp(b"a", t.CMP_MOD, t.CMP_GREATER, b"\x00", mod_revision=0), True),
    ("empty range compares zero", cmp(b"x", t.CMP_VERSION, t.CMP_EQUAL, b"y", version=0), True),
]


@pytest.mark.parametrize(("name", "compare", "ok"), TXN_COMPARE_CASES, ids=[c[0] for c in TXN_COMPARE_CASES])
def test_txn_compares(store: KVStore, name: str, compare: Compare, ok: bool) -> None:
    seeded(store)
    r = store.txn(
        TxnRequest(compare=[compare], success=[op(PutRequest(b"then"))], failure=[op(PutRequest(b"else"))])
    )
    assert r.succeeded is ok
    assert r.revision == 11
    assert store.range(RangeRequest(b"then")).count == int(ok)
    assert store.range(RangeRequest(b"else")).count == int(not ok)


def test_txn_one_revision_and_ops_in_order(store: KVStore) -> None:
    seeded(store)
    events: list[tuple[int, list[int]]] = []
    store.set_event_sink(lambda rev, evs: events.append((rev, [e.type for e in evs])))
    r = store.txn(
        TxnRequest(
            success=[
                op(PutRequest(b"n1", b"x")),
                op(RangeRequest(b"n", b"o")),
                op(DeleteRangeRequest(b"a", b"b", prev_kv=True)),
                op(PutRequest(b"n2", b"y", prev_kv=True)),
                op(RangeRequest(b"a", b"b")),
                op(RangeRequest(b"foo", revision=6)),
            ]
        )
    )
    assert r.succeeded and r.revision == 11
    rng1, dele, put2, rng2, past = (
        r.responses[1],
        r.responses[2],
        r.responses[3],
        r.responses[4],
        r.responses[5],
    )
    assert isinstance(rng1, RangeResult) and keys_of(rng1) == [b"n1"]
    assert isinstance(dele, t.DeleteRangeResult) and dele.deleted == 2
    assert isinstance(put2, t.PutResult) and put2.prev_kv is None
    assert isinstance(rng2, RangeResult) and keys_of(rng2) == []
    assert isinstance(past, RangeResult) and [kv(x)[1] for x in past.kvs] == [b"v-foo"]
    assert events == [(11, [Event.PUT, Event.DELETE, Event.DELETE, Event.PUT])]
    assert store.current_rev == 11


def test_read_only_txn_takes_no_revision(store: KVStore) -> None:
    seeded(store)
    r = store.txn(
        TxnRequest(
            compare=[cmp(b"a", t.CMP_VERSION, t.CMP_EQUAL, version=1)], success=[op(RangeRequest(b"a"))]
        )
    )
    assert r.succeeded and r.revision == 10 and store.current_rev == 10
    r = store.txn(TxnRequest(success=[op(DeleteRangeRequest(b"nothing"))]))
    assert r.revision == 10


def test_nested_txn(store: KVStore) -> None:
    seeded(store)
    inner_ok = TxnRequest(
        compare=[cmp(b"a", t.CMP_VALUE, t.CMP_EQUAL, value=b"v-a")],
        success=[op(PutRequest(b"in-then"))],
        failure=[op(PutRequest(b"in-else"))],
    )
    inner_fail = TxnRequest(
        compare=[cmp(b"a", t.CMP_VALUE, t.CMP_EQUAL, value=b"other")],
        success=[op(PutRequest(b"in2-then"))],
        failure=[op(PutRequest(b"in2-else")), op(RangeRequest(b"in", b"io"))],
    )
    r = store.txn(TxnRequest(success=[op(inner_ok), op(PutRequest(b"top")), op(inner_fail)]))
    assert r.succeeded and r.revision == 11
    a, _, b = r.responses
    assert isinstance(a, t.TxnResult) and a.succeeded
    assert isinstance(b, t.TxnResult) and not b.succeeded
    rng = b.responses[1]
    assert isinstance(rng, RangeResult) and keys_of(rng) == [b"in-then", b"in2-else"]
    assert keys_of(store.range(RangeRequest(b"i", b"u"))) == [b"in-then", b"in2-else", b"top"]


def test_nested_compares_see_the_state_before_the_txn(store: KVStore) -> None:
    """etcd evaluates every compare, nested ones too, before the first write (compareToPath)."""
    put(store, b"a", b"1")
    r = store.txn(
        TxnRequest(
            success=[
                op(PutRequest(b"a", b"2")),
                op(
                    TxnRequest(
                        compare=[cmp(b"a", t.CMP_VALUE, t.CMP_EQUAL, value=b"1")],
                        success=[op(PutRequest(b"saw-old"))],
                    )
                ),
            ]
        )
    )
    nested = r.responses[1]
    assert isinstance(nested, t.TxnResult) and nested.succeeded


TXN_CHECK_CASES: list[tuple[str, TxnRequest, type[Exception]]] = [
    ("two puts", TxnRequest(success=[op(PutRequest(b"a")), op(PutRequest(b"a"))]), DuplicateKey),
    (
        "put in delete",
        TxnRequest(success=[op(DeleteRangeRequest(b"a", b"c")), op(PutRequest(b"b"))]),
        DuplicateKey,
    ),
    (
        "put = delete key",
        TxnRequest(failure=[op(DeleteRangeRequest(b"a")), op(PutRequest(b"a"))]),
        DuplicateKey,
    ),
    (
        "nested put under delete",
        TxnRequest(
            success=[op(DeleteRangeRequest(b"a", b"c")), op(TxnRequest(success=[op(PutRequest(b"b"))]))]
        ),
        DuplicateKey,
    ),
    (
        "nested put twice",
        TxnRequest(success=[op(PutRequest(b"b")), op(TxnRequest(failure=[op(PutRequest(b"b"))]))]),
        DuplicateKey,
    ),
    ("too many", TxnRequest(success=[op(PutRequest(b"k%d" % i)) for i in range(129)]), TooManyOps),
    ("too many compares", TxnRequest(compare=[cmp(b"a", t.CMP_VERSION, t.CMP_EQUAL)] * 129), TooManyOps),
    (
        "too many nested",
        TxnRequest(success=[op(TxnRequest(success=[op(RangeRequest(b"k%d" % i)) for i in range(129)]))]),
        TooManyOps,
    ),
    ("no key", TxnRequest(success=[op(PutRequest(b""))]), KeyNotProvided),
    (
        "nested txn shares the limit",
        TxnRequest(
            success=[op(RangeRequest(b"a"))] * 100
            + [op(TxnRequest(success=[op(RangeRequest(b"k%d" % i)) for i in range(29)]))]
        ),
        TooManyOps,
    ),
]


@pytest.mark.parametrize(("name", "req", "err"), TXN_CHECK_CASES, ids=[c[0] for c in TXN_CHECK_CASES])
def test_txn_checks(store: KVStore, name: str, req: TxnRequest, err: type[Exception]) -> None:
    put(store, b"a")
    with pytest.raises(err):
        store.txn(req)
    assert store.current_rev == 2


def test_txn_allowed_overlaps(store: KVStore) -> None:
    # the same key in then and else of one nested txn, and overlapping deletes, are fine
    req = TxnRequest(
        success=[
            op(TxnRequest(success=[op(PutRequest(b"k"))], failure=[op(PutRequest(b"k"))])),
            op(DeleteRangeRequest(b"x", b"z")),
            op(DeleteRangeRequest(b"y")),
        ]
    )
    assert store.txn(req).succeeded
    assert str(DuplicateKey()) == "etcdserver: duplicate key given in txn request"
    assert str(TooManyOps()) == "etcdserver: too many operations in txn request"


def test_txn_range_revision_checks_fail_before_writes(store: KVStore) -> None:
    put(store, b"a")
    with pytest.raises(FutureRevision):
        store.txn(TxnRequest(success=[op(PutRequest(b"b")), op(RangeRequest(b"a", revision=5))]))
    assert store.current_rev == 2 and keys_of(store.range(RangeRequest(b"b"))) == []


def test_txn_with_etcdserverpb_messages(store: KVStore) -> None:
    put(store, b"a", b"1")
    req = pb.TxnRequest(
        compare=[pb.Compare(key=b"a", target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=2)],
        success=[
            pb.RequestOp(request_put=pb.PutRequest(key=b"a", value=b"2", prev_kv=True)),
            pb.RequestOp(
                request_txn=pb.TxnRequest(success=[pb.RequestOp(request_range=pb.RangeRequest(key=b"a"))])
            ),
        ],
    )
    r = store.txn(req)
    assert r.succeeded and r.revision == 3
    nested = r.responses[1]
    assert isinstance(nested, t.TxnResult)
    rng = nested.responses[0]
    assert isinstance(rng, RangeResult) and [kv(x)[1] for x in rng.kvs] == [b"2"]


# -- Compaction --------------------------------------------------------------------------------------


def test_compaction(make_backend: MakeBackend) -> None:
    s = KVStore(make_backend())
    for i in range(2, 32):
        put(s, b"k%d" % (i % 5), b"%d" % i)  # revs 2..31
    s.delete_range(DeleteRangeRequest(b"k1"))  # rev 32
    put(s, b"k1", b"again")  # 33
    before = {rev: keys_of(s.range(RangeRequest(b"k", b"l", revision=rev))) for rev in range(21, 34)}
    vals_before = {rev: s.range(RangeRequest(b"k", b"l", revision=rev)).kvs for rev in range(21, 34)}
    with pytest.raises(FutureRevision):
        s.compact(34)
    s.compact(21)
    hashes = {rev: s.hash_kv(rev).hash for rev in range(22, 34)}
    assert s.compaction_pending()
    # a partial compaction changes nothing a read at or after 20 sees, nor HashKV
    s.compact_batch(limit=7)
    assert vals_before == {rev: s.range(RangeRequest(b"k", b"l", revision=rev)).kvs for rev in range(21, 34)}
    s.finish_compaction(limit=7)
    assert not s.compaction_pending()
    assert before == {rev: keys_of(s.range(RangeRequest(b"k", b"l", revision=rev))) for rev in range(21, 34)}
    assert vals_before == {rev: s.range(RangeRequest(b"k", b"l", revision=rev)).kvs for rev in range(21, 34)}
    assert hashes == {rev: s.hash_kv(rev).hash for rev in range(22, 34)}
    with pytest.raises(Compacted):
        s.range(RangeRequest(b"k1", revision=20))
    with pytest.raises(Compacted):
        s.compact(21)
    with pytest.raises(Compacted):
        s.events(20)
    # only the versions reads at >= 21 need are left: 5 keys at 21 + 12 later changes
    assert history_size(s) == 5 + 12
    s.compact(32, physical=True)
    assert keys_of(s.range(RangeRequest(b"k", b"l", revision=32))) == [b"k0", b"k2", b"k3", b"k4"]
    # k1's tombstone at 32 and its older versions are gone; the others kept at 27..30; k1 again at 33
    assert history_size(s) == 5
    assert [(rev, [ev.kv.key for ev in evs]) for rev, evs in s.events(32)] == [(33, [b"k1"])]
    assert s.hash_kv().compact_revision == 32


def test_compaction_resumes_after_reopen(tmp_path: Any) -> None:
    from petcd.backend.lmdb import LmdbBackend, db_path

    b = LmdbBackend(db_path(tmp_path))
    s = KVStore(b)
    for i in range(100):
        put(s, b"k%d" % (i % 10), b"%d" % i)
    want = s.range(RangeRequest(b"k", b"l")).kvs
    s.compact(91)  # revisions 2..101: the keys' last versions at 91 are 82..91
    s.compact_batch(limit=10)
    b.close()
    b = LmdbBackend(db_path(tmp_path))
    s = KVStore(b)
    assert s.compact_rev == 91 and s.compaction_pending()
    s.finish_compaction()
    assert s.range(RangeRequest(b"k", b"l")).kvs == want
    assert history_size(s) == 10 + 10
    b.close()


def history_size(s: KVStore) -> int:
    with s.backend.read_txn() as txn:
        n = txn.count(HISTORY_BUCKET)
        assert txn.count(INDEX_BUCKET) == n
        return n


# -- Hash --------------------------------------------------------------------------------------------


def test_hash_kv_agrees_across_backends_and_compaction_states(make_backend: MakeBackend) -> None:
    a, b = KVStore(make_backend()), KVStore(make_backend())
    for s in (a, b):
        for i in range(50):
            put(s, b"key%d" % (i % 7), b"value%d" % i)
            if i % 11 == 0:
                s.delete_range(DeleteRangeRequest(b"key3"))
        s.compact(30)
    a.finish_compaction()  # b is compacted logically only
    for rev in (0, 31, 40):
        assert a.hash_kv(rev) == b.hash_kv(rev)
    put(a, b"x")
    assert a.hash_kv().hash != b.hash_kv().hash
    with pytest.raises(Compacted):
        a.hash_kv(30)
    with pytest.raises(FutureRevision):
        a.hash_kv(1000)
    assert isinstance(a.hash(), int)


def test_hash_kv_known_value(store: KVStore) -> None:
    """The bytes hashed are etcd's: CRC-32C over "key", revisions and KeyValues (see test_etcd_hashkv)."""
    put(store, b"foo", b"bar")
    raw = KeyValue(key=b"foo", value=b"bar", create_revision=2, mod_revision=2, version=1).SerializeToString()
    expected = crc32c(b"key" + (2).to_bytes(8, "big") + b"_" + (0).to_bytes(8, "big") + raw)
    assert store.hash_kv().hash == expected


# -- Quota -------------------------------------------------------------------------------------------


def test_quota_nospace_then_only_reads_deletes_compaction(make_backend: MakeBackend) -> None:
    s = KVStore(make_backend(quota_bytes=256 * 1024))
    with pytest.raises(NoSpace) as e:
        for i in range(1000):
            put(s, b"k%04d" % i, b"x" * 4096)
    assert str(e.value) == "etcdserver: mvcc: database space exceeded"
    assert s.nospace
    rev = s.current_rev
    with pytest.raises(NoSpace):
        put(s, b"small", b"x")
    with pytest.raises(NoSpace):
        s.txn(
            TxnRequest(
                failure=[op(PutRequest(b"t"))], compare=[cmp(b"zz", t.CMP_VERSION, t.CMP_EQUAL, version=9)]
            )
        )
    assert s.current_rev == rev
    assert s.range(RangeRequest(b"k", b"l", count_only=True)).count == rev - 1
    assert s.txn(TxnRequest(success=[op(RangeRequest(b"k0000"))])).succeeded
    assert s.delete_range(DeleteRangeRequest(b"k", b"l")).deleted == rev - 1
    s.compact(s.current_rev, physical=True)
    assert s.nospace  # until disarmed, as etcd
    s.disarm_nospace()
    assert not s.nospace
    s.backend.defrag()
    put(s, b"after", b"ok")


def test_apply_path_follows_the_alarm_not_the_size(make_backend: MakeBackend) -> None:
    """Sizes differ between members; applying must not depend on them (only on the replicated alarm)."""
    s = KVStore(make_backend(quota_bytes=64 * 1024))
    with s.write() as w:
        for i in range(100):
            w.put(PutRequest(b"k%03d" % i, b"x" * 4096))  # far past the quota: applied anyway
    assert not s.nospace and not s.quota_available(1)
    with s.write() as w:
        s.activate_nospace(w)
        with pytest.raises(NoSpace):
            w.put(PutRequest(b"refused"))
        w.delete_range(DeleteRangeRequest(b"k000"))
    assert s.nospace and s.range(RangeRequest(b"refused")).count == 0
    assert s.range(RangeRequest(b"k", b"l", count_only=True)).count == 99
    with s.write() as w:
        s.disarm_nospace(w)
        w.put(PutRequest(b"accepted"))
    assert s.range(RangeRequest(b"accepted")).count == 1


def test_nospace_alarm_survives_reopen(tmp_path: Any) -> None:
    from petcd.backend.lmdb import LmdbBackend, db_path

    b = LmdbBackend(db_path(tmp_path))
    s = KVStore(b)
    s.activate_nospace()
    b.close()
    b = LmdbBackend(db_path(tmp_path))
    assert KVStore(b).nospace
    b.close()


# -- Events --------------------------------------------------------------------------------------------


def test_events_announced_after_commit_only_and_match_history(store: KVStore) -> None:
    seen: list[tuple[int, list[Event]]] = []
    store.set_event_sink(lambda rev, evs: seen.append((rev, evs)))
    seeded(store)
    with pytest.raises(RuntimeError), store.write() as w:
        w.put(PutRequest(b"never"))
        raise RuntimeError("abort")
    assert store.current_rev == 10
    with store.write() as w:
        w.put(PutRequest(b"x1"))
        w.delete_range(DeleteRangeRequest(b"a"))
        assert len(seen) == 9  # nothing announced before the commit
    assert [rev for rev, _ in seen] == list(range(2, 13))
    history = store.events(1, prev_kv=True)
    assert [(rev, [(e.type, e.kv, e.prev_kv) for e in evs]) for rev, evs in history] == [
        (rev, [(e.type, e.kv, e.prev_kv) for e in evs]) for rev, evs in seen
    ]
    assert [rev for rev, _ in store.events(3, 5)] == [3, 4]
    delete = seen[-1][1][0]
    assert delete.type == Event.DELETE and delete.kv.mod_revision == 12 and delete.prev_kv.value == b"v-a"
    assert store.range(RangeRequest(b"never")).count == 0


def test_write_batches_many_requests_in_one_commit(store: KVStore) -> None:
    from petcd.backend import put_consistent_index, read_consistent_index

    with store.write() as w:
        for i in range(10):
            w.put(PutRequest(b"k%d" % i))
        with pytest.raises(DuplicateKey):
            w.txn(TxnRequest(success=[op(PutRequest(b"d")), op(PutRequest(b"d"))]))
        put_consistent_index(w.backend, 77, 3)
    assert store.current_rev == 11
    with store.backend.read_txn() as txn:
        assert read_consistent_index(txn) == (77, 3)
