"""Leases through raft (grant, revoke, expiry proposed by the leader, keep-alive) and watch events."""

from __future__ import annotations

import pytest
from server_harness import Cluster

from petcd.lease import LeaseNotFound
from petcd.mvcc.watcher import DELETE, PUT
from petcd.pb.etcdserverpb import rpc_pb2 as rpc
from petcd.server.errors import NotLeader


@pytest.fixture
def cluster() -> Cluster:
    c = Cluster()
    c.elect()
    return c


def test_lease_grant_attach_revoke(cluster: Cluster) -> None:
    leader = cluster.leader()
    g = cluster.ok(leader.lease_grant(rpc.LeaseGrantRequest(TTL=60)))
    assert isinstance(g, rpc.LeaseGrantResponse)
    assert g.ID != 0
    assert g.TTL == 60
    cluster.ok(leader.put(rpc.PutRequest(key=b"a", value=b"1", lease=g.ID)))
    cluster.ok(leader.put(rpc.PutRequest(key=b"b", value=b"2", lease=g.ID)))
    ttl = leader.lease_time_to_live(rpc.LeaseTimeToLiveRequest(ID=g.ID, keys=True))
    assert sorted(ttl.keys) == [b"a", b"b"]
    assert 59 <= ttl.TTL <= 60
    r = cluster.ok(leader.lease_revoke(rpc.LeaseRevokeRequest(ID=g.ID)))
    assert isinstance(r, rpc.LeaseRevokeResponse)
    cluster.run(2)
    for node in cluster.nodes.values():
        assert node.range(rpc.RangeRequest(key=b"a", range_end=b"c")).count == 0
        assert g.ID not in node.lessor
        # both keys went in one revision: 2 puts then 1 revoke
        assert node.kv.current_rev == 4
    assert isinstance(cluster.wait(leader.lease_revoke(rpc.LeaseRevokeRequest(ID=g.ID))), LeaseNotFound)
    assert len({n.hash_kv().hash for n in cluster.nodes.values()}) == 1


def test_put_with_unknown_lease_fails(cluster: Cluster) -> None:
    leader = cluster.leader()
    assert isinstance(cluster.wait(leader.put(rpc.PutRequest(key=b"a", lease=12345))), LeaseNotFound)


def test_lease_expiry_is_proposed_by_the_leader(cluster: Cluster) -> None:
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes.values() if not n.is_leader)
    g = cluster.ok(follower.lease_grant(rpc.LeaseGrantRequest(TTL=5)))
    assert isinstance(g, rpc.LeaseGrantResponse)
    cluster.ok(follower.put(rpc.PutRequest(key=b"eph", value=b"x", lease=g.ID)))
    with pytest.raises(NotLeader) as e:
        follower.lease_renew(g.ID)
    assert e.value.leader == leader.member_id
    # keep-alive on the leader holds it past its TTL
    for _ in range(4):
        cluster.run(20)
        leader.lease_renew(g.ID)
    assert all(n.range(rpc.RangeRequest(key=b"eph")).count == 1 for n in cluster.nodes.values())
    cluster.run(80)  # 8 s without renewal
    for node in cluster.nodes.values():
        assert node.range(rpc.RangeRequest(key=b"eph")).count == 0
        assert g.ID not in node.lessor


def test_lease_checkpoint_persists_remaining_ttl() -> None:
    c = Cluster(("n1",))
    leader = c.elect()
    g = c.ok(leader.lease_grant(rpc.LeaseGrantRequest(TTL=1000)))
    assert isinstance(g, rpc.LeaseGrantResponse)
    c.run(3010)  # past the 300 s checkpoint interval
    lease = leader.lessor.lookup(g.ID)
    assert lease is not None
    assert 0 < lease.remaining_ttl < 1000


def test_watch_sees_puts_and_deletes_on_a_follower(cluster: Cluster) -> None:
    follower = next(n for n in cluster.nodes.values() if not n.is_leader)
    stream = follower.watchable.new_watch_stream()
    wid = stream.watch(b"k", b"l", prev_kv=True)
    leader = cluster.leader()
    cluster.ok(leader.put(rpc.PutRequest(key=b"k1", value=b"a")))
    cluster.ok(leader.put(rpc.PutRequest(key=b"zz", value=b"ignored")))
    cluster.ok(leader.delete_range(rpc.DeleteRangeRequest(key=b"k1")))
    cluster.run(2)
    events = [(ev.type, ev.kv.key, ev.kv.mod_revision) for r in stream.drain() for ev in r.events]
    assert events == [(PUT, b"k1", 2), (DELETE, b"k1", 4)]
    stream.cancel(wid)


def test_watch_from_a_past_revision_catches_up(cluster: Cluster) -> None:
    leader = cluster.leader()
    for i in range(3):
        cluster.ok(leader.put(rpc.PutRequest(key=b"x", value=b"%d" % i)))
    stream = leader.watchable.new_watch_stream()
    stream.watch(b"x", start_rev=2)
    cluster.run(1)  # the node's tick catches unsynced watchers up
    revs = [ev.kv.mod_revision for r in stream.drain() for ev in r.events]
    assert revs == [2, 3, 4]


def test_slow_watcher_is_parked_and_catches_up(cluster: Cluster) -> None:
    leader = cluster.leader()
    stream = leader.watchable.new_watch_stream()
    stream.capacity = 2
    stream.watch(b"s", b"t")
    for i in range(6):
        cluster.ok(leader.put(rpc.PutRequest(key=b"s%d" % i, value=b"v")))
    got = [ev.kv.key for r in stream.drain() for ev in r.events]
    cluster.run(1)
    got += [ev.kv.key for r in stream.drain() for ev in r.events]
    cluster.run(1)
    got += [ev.kv.key for r in stream.drain() for ev in r.events]
    cluster.run(1)
    got += [ev.kv.key for r in stream.drain() for ev in r.events]
    assert got == [b"s%d" % i for i in range(6)]
