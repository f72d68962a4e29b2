"""KV requests through raft on 1- and 3-member clusters: put, range, txn, delete, compact, headers."""

from __future__ import annotations

import pytest
from server_harness import Cluster

from petcd.errors import Compacted
from petcd.pb.etcdserverpb import rpc_pb2 as rpc
from petcd.server.errors import Stopped, Timeout
from petcd.server.responses import ReadIndexResult


@pytest.fixture(params=[1, 3], ids=["1-member", "3-member"])
def cluster(request: pytest.FixtureRequest) -> Cluster:
    names = ("n1",) if request.param == 1 else ("n1", "n2", "n3")
    c = Cluster(names)
    c.elect()
    return c


def test_put_then_range_on_every_member(cluster: Cluster) -> None:
    leader = cluster.leader()
    resp = cluster.ok(leader.put(rpc.PutRequest(key=b"mykey", value=b"this is awesome")))
    assert isinstance(resp, rpc.PutResponse)
    assert resp.header.revision == 2  # etcd: the first write of a fresh store
    assert resp.header.cluster_id == cluster.cid
    assert resp.header.member_id == leader.member_id
    assert resp.header.raft_term == leader.term
    cluster.run(2)
    for node in cluster.nodes.values():
        got = node.range(rpc.RangeRequest(key=b"mykey"))
        assert [(kv.key, kv.value) for kv in got.kvs] == [(b"mykey", b"this is awesome")]
        assert got.header.revision == 2
        assert got.header.member_id == node.member_id


def test_follower_proposal_is_forwarded(cluster: Cluster) -> None:
    follower = next(n for n in cluster.nodes.values() if not n.is_leader) if len(cluster.nodes) > 1 else None
    node = follower or cluster.leader()
    resp = cluster.ok(node.put(rpc.PutRequest(key=b"k", value=b"v", prev_kv=True)))
    assert isinstance(resp, rpc.PutResponse)
    assert not resp.HasField("prev_kv")
    resp2 = cluster.ok(node.put(rpc.PutRequest(key=b"k", value=b"v2", prev_kv=True)))
    assert isinstance(resp2, rpc.PutResponse)
    assert resp2.prev_kv.value == b"v"
    assert resp2.header.revision == 3


def test_txn_delete_and_compact(cluster: Cluster) -> None:
    leader = cluster.leader()
    for i in range(3):
        cluster.ok(leader.put(rpc.PutRequest(key=b"k%d" % i, value=b"v%d" % i)))
    txn = rpc.TxnRequest(
        compare=[rpc.Compare(key=b"k0", target=rpc.Compare.VALUE, result=rpc.Compare.EQUAL, value=b"v0")],
        success=[
            rpc.RequestOp(request_put=rpc.PutRequest(key=b"k1", value=b"new")),
            rpc.RequestOp(request_range=rpc.RangeRequest(key=b"k1")),
        ],
        failure=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=b"k0"))],
    )
    t = cluster.ok(leader.txn(txn))
    assert isinstance(t, rpc.TxnResponse)
    assert t.succeeded
    assert t.header.revision == 5
    assert t.responses[1].response_range.kvs[0].value == b"new"
    d = cluster.ok(leader.delete_range(rpc.DeleteRangeRequest(key=b"k", range_end=b"l", prev_kv=True)))
    assert isinstance(d, rpc.DeleteRangeResponse)
    assert d.deleted == 3
    assert sorted(kv.key for kv in d.prev_kvs) == [b"k0", b"k1", b"k2"]
    c = cluster.ok(leader.compact(rpc.CompactionRequest(revision=5)))
    assert isinstance(c, rpc.CompactionResponse)
    again = cluster.wait(leader.compact(rpc.CompactionRequest(revision=4)))
    assert isinstance(again, Compacted)
    cluster.run(2)
    for node in cluster.nodes.values():
        with pytest.raises(Compacted):
            node.range(rpc.RangeRequest(key=b"k0", revision=3))
        assert node.range(rpc.RangeRequest(key=b"k", range_end=b"l")).count == 0


def test_hash_kv_equal_on_all_members(cluster: Cluster) -> None:
    node = next(iter(cluster.nodes.values()))
    for i in range(20):
        cluster.ok(node.put(rpc.PutRequest(key=b"key%d" % (i % 7), value=b"%d" % i)))
    cluster.ok(node.delete_range(rpc.DeleteRangeRequest(key=b"key3")))
    cluster.run(3)
    hashes = {n.hash_kv().hash for n in cluster.nodes.values()}
    revs = {n.kv.current_rev for n in cluster.nodes.values()}
    assert len(hashes) == 1
    assert revs == {22}


def test_linearizable_read_waits_for_the_read_index(cluster: Cluster) -> None:
    nodes = list(cluster.nodes.values())
    cluster.ok(nodes[0].put(rpc.PutRequest(key=b"a", value=b"1")))
    reader = nodes[-1]
    rids = [reader.linearizable_range(rpc.RangeRequest(key=b"a")) for _ in range(5)]
    plain = reader.read_index()
    results = [cluster.ok(r) for r in rids]
    for r in results:
        assert isinstance(r, rpc.RangeResponse)
        assert r.kvs[0].value == b"1"
    idx = cluster.ok(plain)
    assert isinstance(idx, ReadIndexResult)
    assert reader.applied_index >= idx.index


def test_one_save_per_ready_and_batched_proposals() -> None:
    c = Cluster(("n1",))
    leader = c.elect()
    log = c.logs[leader.member_id]
    before = len(log.saves)
    rids = [leader.put(rpc.PutRequest(key=b"k%d" % i, value=b"v")) for i in range(50)]
    assert leader.process_ready()
    # All 50 proposals went into raft as one batch: one save carries them all.
    assert len(log.saves) == before + 1
    assert log.saves[-1][1] == 50
    assert log.saves[-1][2] is True
    c.settle()
    assert all(isinstance(c.sink.results[r], rpc.PutResponse) for r in rids)
    assert {c.sink.results[r].header.revision for r in rids} == set(range(2, 52))  # type: ignore[attr-defined]


def test_one_backend_write_txn_for_a_batch_of_committed_entries() -> None:
    c = Cluster(("n1",))
    leader = c.elect()
    backend = c.backends[leader.member_id]
    calls = 0
    real = backend.write_txn

    def counting():  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return real()

    backend.write_txn = counting  # type: ignore[method-assign]
    rids = [leader.put(rpc.PutRequest(key=b"k%d" % i, value=b"v")) for i in range(100)]
    c.settle()
    assert all(r in c.sink.results for r in rids)
    assert calls == 1
    with backend.read_txn() as txn:
        from petcd.backend import read_consistent_index

        assert read_consistent_index(txn)[0] == leader.applied_index


def test_physical_compaction_finishes_between_applies() -> None:
    c = Cluster(("n1",))
    leader = c.elect()
    for i in range(10):
        c.ok(leader.put(rpc.PutRequest(key=b"k", value=b"%d" % i)))
    c.ok(leader.compact(rpc.CompactionRequest(revision=8)))
    c.run(2)
    assert not leader.kv.compaction_pending()
    assert leader.kv.compact_rev == 8
    rid = leader.compact(rpc.CompactionRequest(revision=10, physical=True))
    resp = c.ok(rid)
    assert isinstance(resp, rpc.CompactionResponse)
    assert not leader.kv.compaction_pending()  # answered only once the removal finished


def test_requests_time_out_without_a_quorum_and_stop_fails_the_rest() -> None:
    c = Cluster(request_timeout_s=2.0)
    leader = c.elect()
    for other in [i for i in c.nodes if i != leader.member_id]:
        c.net.cut.add(other)
    rid = leader.put(rpc.PutRequest(key=b"k", value=b"v"))
    c.run(15)
    assert rid not in c.sink.results
    c.run(10)
    assert isinstance(c.sink.results.pop(rid), Timeout)
    pending = leader.read_index()
    leader.stop()
    assert isinstance(c.sink.results.pop(pending), Stopped)
    with pytest.raises(Stopped):
        leader.put(rpc.PutRequest(key=b"k", value=b"v"))


def test_proposals_wait_for_a_leader() -> None:
    c = Cluster()
    node = next(iter(c.nodes.values()))
    rid = node.put(rpc.PutRequest(key=b"early", value=b"v"))
    c.elect()
    resp = c.ok(rid)
    assert isinstance(resp, rpc.PutResponse)
    assert resp.header.revision == 2
