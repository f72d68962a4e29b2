"""keys_only ranges: the values are dropped while the range is read (one entry at a time, so a range
over a million keys never holds them all); the answer is the full range's with every value cleared,
whatever the filters, sort, limit, revision, long keys (the hashed groups of petcd.mvcc.keys) or
leases."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petcd.mvcc import kvstore
from petcd.mvcc.kvstore import KVStore
from petcd.mvcc.types import DeleteRangeRequest, PutRequest, RangeRequest
from petcd.pb.mvccpb.kv_pb2 import KeyValue

LONG = b"L" * 500  # past keys.SHORT_MAX: these keys share one hashed group


def _seed(store: KVStore) -> None:
    for i in range(6):
        store.put(PutRequest(key=b"k%d" % i, value=b"v" * (i * 50)))  # k0 has an empty value
    for i in range(4):
        store.put(PutRequest(key=LONG + bytes([i]), value=b"long-%d" % i))
    store.put(PutRequest(key=b"k2", value=b"again"))
    store.delete_range(DeleteRangeRequest(key=b"k4"))
    store.put(PutRequest(key=b"k\x00z", value=b"zero byte"))


def _without_values(raws: list[bytes]) -> list[bytes]:
    out = []
    for raw in raws:
        kv = KeyValue.FromString(raw)
        kv.ClearField("value")
        out.append(kv.SerializeToString())
    return out


ranges = st.builds(
    RangeRequest,
    key=st.sampled_from([b"\x00", b"k", b"k2", LONG, LONG + b"\x01"]),
    range_end=st.sampled_from([b"", b"\x00", b"k3", b"l", LONG + b"\x02", b"M"]),
    revision=st.sampled_from([0, 5, 9]),
    limit=st.sampled_from([0, 1, 3]),
    sort_order=st.sampled_from([0, 1, 2]),
    sort_target=st.sampled_from([0, 1, 2, 3, 4]),
    min_mod_revision=st.sampled_from([0, 4]),
    max_create_revision=st.sampled_from([0, 8]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(req=ranges)
def test_keys_only_is_the_full_range_without_values(store: KVStore, req: RangeRequest) -> None:
    if store.current_rev == 1:
        _seed(store)
    full = store.range(req)
    only = store.range(dataclasses.replace(req, keys_only=True))
    assert only.kvs == _without_values(full.kvs)
    assert (only.count, only.more, only.revision) == (full.count, full.more, full.revision)


def test_values_are_dropped_while_scanning(store: KVStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan itself hands back value-less entries, so no list of full values is ever built."""
    _seed(store)
    seen: list[list[bytes]] = []
    real_scan = kvstore._scan

    def spy(*args: object, **kwargs: bool) -> tuple[list[bytes], int]:
        raws, count = real_scan(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(raws)
        return raws, count

    monkeypatch.setattr(kvstore, "_scan", spy)
    r = store.range(RangeRequest(key=b"\x00", range_end=b"\x00", keys_only=True))
    assert len(r.kvs) == 10
    assert all(KeyValue.FromString(raw).value == b"" for raw in seen[-1])
    # a sort by value still sees the values (and answers without them)
    r = store.range(RangeRequest(key=b"k", range_end=b"l", keys_only=True, sort_target=4, sort_order=2))
    assert any(KeyValue.FromString(raw).value for raw in seen[-1])
    assert [KeyValue.FromString(raw).key for raw in r.kvs][:2] == [b"k\x00z", b"k5"]
    assert all(KeyValue.FromString(raw).value == b"" for raw in r.kvs)
