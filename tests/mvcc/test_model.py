"""The MVCC store against a tiny model: ``dict[key, list[(rev, value | TOMBSTONE)]]``.

A Hypothesis state machine puts, deletes (single keys and ranges), runs txns, compacts (logically,
then in random batch sizes), reopens the LMDB environment, and checks ranges at every kept revision,
the compacted/future errors and the history the watchers read. The same operations run on an
``LmdbBackend`` store and a ``MemoryBackend`` store, whose HashKV must agree at every step. Keys include
zero bytes and long keys (> 440 bytes) that share their first 500 bytes, so the long-key groups of
``petcd.mvcc.keys`` are exercised in ranges.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from petcd.backend.lmdb import LmdbBackend, db_path
from petcd.backend.memory import MemoryBackend
from petcd.errors import Compacted, FutureRevision
from petcd.mvcc import types as t
from petcd.mvcc.kvstore import KVStore
from petcd.mvcc.types import Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest
from petcd.pb.mvccpb.kv_pb2 import Event, KeyValue

TOMBSTONE = None
LONG = b"L" * 500
KEYS = [
    b"a",
    b"a\x00",
    b"a\x00b",
    b"ab",
    b"b",
    b"\x00",
    b"\xff",
    LONG + b"1",
    LONG + b"2",
    LONG + b"\x00",
    LONG,
    b"L" * 439 + b"\x00" + b"x" * 100,  # cut where the zero no longer fits
    b"L" * 439 + b"M",
    b"L" * 440,  # the longest short key: a prefix of the group above
    b"L" * 441,  # the shortest long key of that group
]
key_st = st.sampled_from(KEYS)
value_st = st.binary(max_size=6)

Versions = list[tuple[int, bytes | None]]


class Model:
    def __init__(self) -> None:
        self.keys: dict[bytes, Versions] = {}
        self.rev = 1  # etcd's empty store is at revision 1
        self.compact = -1  # never compacted

    def value_at(self, key: bytes, rev: int) -> tuple[bytes, int, int, int] | None:
        """(value, create, mod, version) of ``key`` at ``rev``."""
        versions = [(r, v) for r, v in self.keys.get(key, []) if r <= rev]
        if not versions or versions[-1][1] is TOMBSTONE:
            return None
        gen: Versions = []
        for r, v in versions:
            gen = [] if v is TOMBSTONE else [*gen, (r, v)]
        value = gen[-1][1]
        assert value is not None
        return value, gen[0][0], gen[-1][0], len(gen)

    def live(self, start: bytes, end: bytes, rev: int) -> list[tuple[bytes, tuple[bytes, int, int, int]]]:
        out = []
        for k in sorted(self.keys):
            if (not end and k != start) or (end and (k < start or (end != b"\x00" and k >= end))):
                continue
            got = self.value_at(k, rev)
            if got is not None:
                out.append((k, got))
        return out


def decode(raws: list[bytes]) -> list[tuple[bytes, tuple[bytes, int, int, int]]]:
    out = []
    for raw in raws:
        kv = KeyValue.FromString(raw)
        out.append((kv.key, (kv.value, kv.create_revision, kv.mod_revision, kv.version)))
    return out


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="petcd-mvcc-model-"))
        self.lmdb = LmdbBackend(db_path(self.dir))
        self.store = KVStore(self.lmdb)
        self.twin = KVStore(MemoryBackend())
        self.model = Model()
        self.announced: list[tuple[int, list[Event]]] = []
        self.store.set_event_sink(lambda rev, evs: self.announced.append((rev, evs)))

    def teardown(self) -> None:
        self.lmdb.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def both(self, fn: Any) -> Any:
        a = fn(self.store)
        b = fn(self.twin)
        assert a == b
        return a

    @initialize()
    def start(self) -> None:
        pass

    @rule(key=key_st, value=value_st)
    def put(self, key: bytes, value: bytes) -> None:
        r = self.both(lambda s: s.put(PutRequest(key, value, prev_kv=True)))
        self.model.rev += 1
        assert r.revision == self.model.rev
        self.model.keys.setdefault(key, []).append((self.model.rev, value))

    @rule(key=key_st, end=st.sampled_from([b"", b"\x00", *KEYS]))
    def delete(self, key: bytes, end: bytes) -> None:
        doomed = [k for k, _ in self.model.live(key, end, self.model.rev)]
        r = self.both(lambda s: s.delete_range(DeleteRangeRequest(key, end, prev_kv=True)))
        assert r.deleted == len(doomed)
        if doomed:
            self.model.rev += 1
            for k in doomed:
                self.model.keys[k].append((self.model.rev, TOMBSTONE))
        assert r.revision == self.model.rev

    @rule(
        key=key_st,
        expect=value_st,
        then_key=key_st,
        then_value=value_st,
        else_key=key_st,
        del_key=key_st,
    )
    def txn(  # noqa: PLR0917 - one argument per drawn value
        self, key: bytes, expect: bytes, then_key: bytes, then_value: bytes, else_key: bytes, del_key: bytes
    ) -> None:
        current = self.model.value_at(key, self.model.rev)
        ok = current is not None and current[0] == expect
        success = [
            RequestOp.of(PutRequest(then_key, then_value)),
            RequestOp.of(RangeRequest(b"\x00", b"\x00")),
        ]
        if del_key != then_key:
            success.append(RequestOp.of(DeleteRangeRequest(del_key)))
        req = TxnRequest(
            compare=[Compare(key=key, target=t.CMP_VALUE, result=t.CMP_EQUAL, value=expect)],
            success=success,
            failure=[RequestOp.of(PutRequest(else_key, b"else"))],
        )
        r = self.both(lambda s: s.txn(req))
        assert r.succeeded is ok
        self.model.rev += 1
        if ok:
            self.model.keys.setdefault(then_key, []).append((self.model.rev, then_value))
            rng = r.responses[1]
            assert isinstance(rng, t.RangeResult)
            assert decode(rng.kvs) == self.model.live(b"\x00", b"\x00", self.model.rev)
            if del_key != then_key and self.model.value_at(del_key, self.model.rev - 1) is not None:
                self.model.keys[del_key].append((self.model.rev, TOMBSTONE))
        else:
            self.model.keys.setdefault(else_key, []).append((self.model.rev, b"else"))
        assert r.revision == self.model.rev

    @precondition(lambda self: self.model.rev > self.model.compact)
    @rule(data=st.data(), batch=st.sampled_from([1, 3, 1000]), partial=st.booleans())
    def compact(self, data: st.DataObject, batch: int, partial: bool) -> None:
        rev = data.draw(st.integers(max(self.model.compact + 1, 1), self.model.rev))
        self.both(lambda s: s.compact(rev).revision)
        self.model.compact = rev
        self.store.compact_batch(batch)
        if not partial:
            self.store.finish_compaction(batch)
            self.twin.finish_compaction(batch)

    @rule()
    def reopen(self) -> None:
        self.lmdb.close()
        self.lmdb = LmdbBackend(db_path(self.dir))
        sink = self.store._sink
        self.store = KVStore(self.lmdb)
        self.store.set_event_sink(sink)
        assert self.store.current_rev == self.model.rev
        assert self.store.compact_rev == self.model.compact

    @rule(
        data=st.data(),
        key=key_st,
        end=st.sampled_from([b"", b"\x00", *KEYS]),
        limit=st.sampled_from([0, 1, 2]),
        descend=st.booleans(),
    )
    def range_at(self, data: st.DataObject, key: bytes, end: bytes, limit: int, descend: bool) -> None:
        rev = data.draw(st.integers(0, self.model.rev + 1))
        order = t.SORT_DESCEND if descend else t.SORT_NONE
        req = RangeRequest(key, end, revision=rev, limit=limit, sort_order=order)
        at = rev or self.model.rev
        if at > self.model.rev:
            for s in (self.store, self.twin):
                with pytest.raises(FutureRevision):
                    s.range(req)
            return
        if at < self.model.compact:
            for s in (self.store, self.twin):
                with pytest.raises(Compacted):
                    s.range(req)
            return
        want = self.model.live(key, end, at)
        if descend:
            want.reverse()
        r = self.both(lambda s: s.range(req))
        assert r.count == len(want)
        assert decode(r.kvs) == (want[:limit] if limit else want)
        assert r.more == bool(limit and len(want) > limit)

    @invariant()
    def hashes_agree(self) -> None:
        assert self.store.hash_kv() == self.twin.hash_kv()

    @invariant()
    def history_matches_announcements(self) -> None:
        start = max(self.model.compact, 2)
        history = self.store.events(start)
        announced = [(rev, evs) for rev, evs in self.announced if rev >= start]
        # compaction removes superseded versions from the history: what is left is a subsequence
        for rev, evs in history:
            kept = dict(announced)[rev]
            for ev in evs:
                assert any((e.type, e.kv) == (ev.type, ev.kv) for e in kept)
        # every change above the compaction point is still there, in order
        tail = [(rev, [(e.type, e.kv) for e in evs]) for rev, evs in history if rev > self.model.compact]
        assert tail == [
            (rev, [(e.type, e.kv) for e in evs]) for rev, evs in announced if rev > self.model.compact
        ]


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
