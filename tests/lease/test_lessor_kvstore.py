"""The lessor wired to M1's KVStore on both backends, as the server will wire them: lease hooks,
revoke through the store (one revision for all keys, watchers see it as one response), the lease
record deleted in the same backend transaction, and recovery after reopening the backend.

The range deleter is StoreWrite.delete_txn(): every delete of a revoke shares one revision.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from petcd.backend import Backend, WriteTxn
from petcd.backend.lmdb import LmdbBackend, db_path
from petcd.backend.memory import MemoryBackend
from petcd.lease import LEASE_BUCKET_NAME, BackendLeaseBucket, LeaseNotFound, Lessor, LessorConfig
from petcd.lease.lessor import lease_key
from petcd.mvcc.kvstore import KVStore, StoreWrite, TxnDelete
from petcd.mvcc.types import PutRequest, RangeRequest
from petcd.mvcc.watchable_store import WatchableStore
from petcd.mvcc.watcher import DELETE
from petcd.pb.mvccpb.kv_pb2 import Event, KeyValue


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t


class Member:
    """One member's apply side: store, watchable store and lessor sharing each apply transaction."""

    def __init__(self, backend: Backend, clock: Clock) -> None:
        self.backend = backend
        self.current: StoreWrite | None = None
        self.lessor = Lessor(
            BackendLeaseBucket(backend, self._current_txn),
            clock,
            LessorConfig(min_lease_ttl_s=1),
            range_deleter=self._deleter,
        )
        self.store = KVStore(backend, lease_hooks=self.lessor)
        self.ws = WatchableStore(self.store)
        self.store.set_event_sink(
            lambda rev, evs: self.ws.notify(rev, [(e.type == Event.DELETE, e.kv) for e in evs])
        )
        for lease_id, key in self.store.iter_leased_keys():
            self.lessor.attach(lease_id, key)

    def _current_txn(self) -> WriteTxn | None:
        return self.current.backend if self.current is not None else None

    def _deleter(self) -> TxnDelete:
        assert self.current is not None, "revoke outside an apply transaction"
        return self.current.delete_txn()

    def apply(self, *ops: tuple[str, object]) -> None:
        """Apply entries in one backend transaction, as the server applies one Ready."""
        with self.store.write() as w:
            self.current = w
            try:
                for kind, arg in ops:
                    if kind == "put":
                        assert isinstance(arg, PutRequest)
                        self.store.put(arg, w=w)
                    elif kind == "grant":
                        assert isinstance(arg, tuple)
                        self.lessor.grant(*arg)
                    elif kind == "revoke":
                        assert isinstance(arg, int)
                        self.lessor.revoke(arg)
            finally:
                self.current = None

    def keys(self) -> list[bytes]:
        return [KeyValue.FromString(raw).key for raw in self.store.range(RangeRequest(b"\x00", b"\x00")).kvs]


@pytest.fixture(params=["memory", "lmdb"])
def backend_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield request.param, tmp_path


def open_backend(kind: str, path: Path) -> Backend:
    return MemoryBackend() if kind == "memory" else LmdbBackend(db_path(path))


def test_revoke_deletes_keys_in_one_revision_seen_by_watchers(backend_factory: tuple[str, Path]) -> None:
    kind, path = backend_factory
    m = Member(open_backend(kind, path), Clock())
    m.apply(("grant", (5, 10)), ("grant", (6, 10)))
    m.apply(*[("put", PutRequest(b"k%d" % i, b"v", lease=5)) for i in range(200)])
    m.apply(("put", PutRequest(b"other", b"v", lease=6)), ("put", PutRequest(b"free", b"v")))
    assert m.lessor.get_lease(b"k7") == 5
    assert len(m.lessor.lookup(5).sorted_keys()) == 200  # type: ignore[union-attr]
    stream = m.ws.new_watch_stream()
    stream.watch(b"", b"\x00")
    before = m.store.current_revision()
    m.apply(("revoke", 5))
    assert m.store.current_revision() == before + 1  # 200 deletes, one revision
    (resp,) = stream.drain()
    assert resp.revision == before + 1
    assert [ev.type for ev in resp.events] == [DELETE] * 200
    assert sorted(ev.kv.key for ev in resp.events) == sorted(b"k%d" % i for i in range(200))
    assert sorted(m.keys()) == [b"free", b"other"]
    assert m.lessor.lookup(5) is None and m.lessor.get_lease(b"k7") == 0
    with m.backend.read_txn() as txn:
        assert txn.get(LEASE_BUCKET_NAME, lease_key(5)) is None
        assert txn.get(LEASE_BUCKET_NAME, lease_key(6)) is not None
    m.backend.close()


def test_put_with_unknown_lease_is_refused(backend_factory: tuple[str, Path]) -> None:
    kind, path = backend_factory
    m = Member(open_backend(kind, path), Clock())
    with pytest.raises(LeaseNotFound):
        m.apply(("put", PutRequest(b"k", b"v", lease=99)))
    assert m.keys() == []
    m.backend.close()


def test_overwrite_moves_key_between_leases(backend_factory: tuple[str, Path]) -> None:
    kind, path = backend_factory
    m = Member(open_backend(kind, path), Clock())
    m.apply(("grant", (1, 10)), ("grant", (2, 10)))
    m.apply(("put", PutRequest(b"k", b"v", lease=1)))
    m.apply(("put", PutRequest(b"k", b"w", lease=2)))
    assert m.lessor.get_lease(b"k") == 2
    m.apply(("revoke", 1))
    assert m.keys() == [b"k"]
    m.apply(("put", PutRequest(b"k", b"x")))  # no lease any more
    m.apply(("revoke", 2))
    assert m.keys() == [b"k"]
    m.backend.close()


def test_recovery_after_reopening(tmp_path: Path) -> None:
    clock = Clock()
    m = Member(LmdbBackend(db_path(tmp_path)), clock)
    m.apply(("grant", (7, 60)), ("grant", (8, 60)))
    m.apply(("put", PutRequest(b"a", b"1", lease=7)), ("put", PutRequest(b"b", b"2", lease=8)))
    m.lessor.checkpoint(7, 30)  # applied outside a write: its own transaction
    m.backend.close()

    again = Member(LmdbBackend(db_path(tmp_path)), clock)
    assert {lease.id: (lease.ttl, lease.remaining_ttl) for lease in again.lessor.leases()} == {
        7: (60, 30),
        8: (60, 0),
    }
    assert again.lessor.get_lease(b"a") == 7 and again.lessor.get_lease(b"b") == 8
    again.lessor.promote(0)
    assert again.lessor.time_to_live(7).ttl_s == 30
    clock.t += 30
    assert [lease.id for lease in again.lessor.tick()] == [7]
    again.apply(("revoke", 7))
    assert again.keys() == [b"b"]
    again.backend.close()


def test_put_then_revoke_in_one_apply_batch(backend_factory: tuple[str, Path]) -> None:
    kind, path = backend_factory
    m = Member(open_backend(kind, path), Clock())
    m.apply(("grant", (3, 10)))
    m.apply(("put", PutRequest(b"k", b"v", lease=3)), ("put", PutRequest(b"j", b"v", lease=3)), ("revoke", 3))
    assert m.keys() == []
    assert m.lessor.lookup(3) is None and m.lessor.get_lease(b"k") == 0
    m.backend.close()


def test_aborted_apply_leaves_attachments_as_they_were(backend_factory: tuple[str, Path]) -> None:
    kind, path = backend_factory
    m = Member(open_backend(kind, path), Clock())
    m.apply(("grant", (3, 10)), ("grant", (4, 10)))
    m.apply(("put", PutRequest(b"k", b"v", lease=3)))
    with pytest.raises(LeaseNotFound):
        m.apply(("put", PutRequest(b"k", b"w", lease=4)), ("put", PutRequest(b"x", b"v", lease=99)))
    assert m.lessor.get_lease(b"k") == 3
    assert m.lessor.lookup(4).sorted_keys() == []  # type: ignore[union-attr]
    m.backend.close()
