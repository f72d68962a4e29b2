"""Membership, leader failure, snapshots to lagging followers, restart recovery, publish, alarms."""

from __future__ import annotations

import pytest
from server_harness import Cluster, FakeLogStore

from petcd.backend.memory import MemoryBackend
from petcd.errors import NoSpace
from petcd.ids import member_id
from petcd.pb.etcdserverpb import rpc_pb2 as rpc
from petcd.server.errors import (
    BadLeaderTransferee,
    LearnerNotReady,
    MemberExists,
    MemberNotEnoughStarted,
    MemberNotFound,
    MemberNotLearner,
    PeerUrlExists,
    TooManyLearners,
)
from petcd.server.membership import Member, MemberStore
from petcd.server.node import NodeConfig


def put(c: Cluster, key: bytes, value: bytes = b"v") -> rpc.PutResponse:
    r = c.ok(c.leader().put(rpc.PutRequest(key=key, value=value)))
    assert isinstance(r, rpc.PutResponse)
    return r


def test_members_publish_names_and_cluster_version() -> None:
    c = Cluster()
    c.elect()
    c.run(30)
    for node in c.nodes.values():
        lst = node.member_list()
        assert sorted(m.name for m in lst.members) == ["n1", "n2", "n3"]
        assert all(m.clientURLs == [f"http://{m.name}:2379"] for m in lst.members)
        assert node.members.cluster_version == "3.6.0"
        assert lst.header.cluster_id == c.cid


def join(c: Cluster, name: str, resp: rpc.MemberAddResponse) -> None:
    """Start a new member for an added one (initial-cluster-state existing)."""
    mid = resp.member.ID
    c.configs[mid] = NodeConfig(
        member_id=mid,
        cluster_id=c.cid,
        name=name,
        peer_urls=tuple(resp.member.peerURLs),
        client_urls=(f"http://{name}:2379",),
    )
    c.logs[mid] = FakeLogStore()
    c.backends[mid] = MemoryBackend()
    c.start(mid)


def test_member_add_learner_promote_remove() -> None:
    c = Cluster()
    c.elect()
    c.run(30)
    for i in range(5):
        put(c, b"k%d" % i)
    leader = c.leader()
    add = c.ok(leader.member_add(["http://n4:2380"], is_learner=True))
    assert isinstance(add, rpc.MemberAddResponse)
    assert add.member.isLearner
    assert len(add.members) == 4
    with pytest.raises(TooManyLearners):
        leader.member_add(["http://n5:2380"], is_learner=True)
    with pytest.raises(MemberExists):  # same URLs in the same second: etcd derives the same ID
        leader.member_add(["http://n4:2380"])
    c.run(10)
    with pytest.raises(PeerUrlExists):
        leader.member_add(["http://n4:2380"])
    # not started yet: too far behind to promote
    with pytest.raises(LearnerNotReady):
        leader.member_promote(add.member.ID)
    join(c, "n4", add)
    c.run(30)
    new = c.nodes[add.member.ID]
    assert new.range(rpc.RangeRequest(key=b"k", range_end=b"l")).count == 5
    assert new.is_learner
    promoted = c.ok(c.leader().member_promote(add.member.ID))
    assert isinstance(promoted, rpc.MemberPromoteResponse)
    assert not any(m.isLearner for m in promoted.members)
    with pytest.raises(MemberNotLearner):
        c.leader().member_promote(add.member.ID)
    c.run(5)
    assert add.member.ID in c.leader().conf_state.voters
    assert c.nodes[add.member.ID].member_list().members[0].name  # published
    victim = c.ids["n2"]
    removed = c.ok(c.leader().member_remove(victim))
    assert isinstance(removed, rpc.MemberRemoveResponse)
    assert victim not in {m.ID for m in removed.members}
    c.run(5)
    assert c.nodes[victim].removed
    c.stop(victim)
    with pytest.raises(MemberNotFound):
        c.elect().member_remove(victim)
    put(c, b"after")
    c.run(3)
    assert len({n.hash_kv().hash for n in c.nodes.values()}) == 1


def test_member_update_and_errors() -> None:
    c = Cluster()
    c.elect()
    c.run(30)
    leader = c.leader()
    n3 = c.ids["n3"]
    upd = c.ok(leader.member_update(n3, ["http://n3-new:2380"]))
    assert isinstance(upd, rpc.MemberUpdateResponse)
    c.run(2)
    for node in c.nodes.values():
        m = node.members.get(n3)
        assert m is not None
        assert m.peer_urls == ("http://n3-new:2380",)
    with pytest.raises(PeerUrlExists):
        leader.member_update(n3, ["http://n1:2380"])
    with pytest.raises(MemberNotFound):
        leader.member_update(12345, ["http://x:1"])
    existing = c.ids["n1"]
    assert existing == member_id(["http://n1:2380"], "etcd-cluster")
    with pytest.raises(MemberExists):
        leader.members.validate_add(leader.members.members[existing])


def test_strict_reconfig_check_refuses_removing_quorum() -> None:
    c = Cluster()
    c.elect()
    c.run(30)
    leader = c.leader()
    others = [i for i in c.nodes if i != leader.member_id]
    c.stop(others[0])
    c.run(20)
    # Removing the other live voter would leave one started member of two: refused.
    from petcd.server.errors import Unhealthy

    with pytest.raises(Unhealthy):
        c.leader().member_remove(others[1])


def test_started_member_rules() -> None:
    """etcd's IsReadyTo*: "started" members (published a name) must keep a quorum."""
    store = MemberStore()
    store.members = {1: Member(1, ("u1",), "a"), 2: Member(2, ("u2",)), 3: Member(3, ("u3",))}
    assert not store.ready_to_add_voter()  # 1 started of 4
    assert not store.ready_to_remove_voter(2)  # 1 started of 2
    assert not store.ready_to_promote()  # the learner counts as started: 2 of 4
    store.members[2] = Member(2, ("u2",), "b")
    assert not store.ready_to_add_voter()  # 2 of 4
    assert store.ready_to_remove_voter(3)  # 2 of 2
    assert store.ready_to_promote()  # 2 voters + the learner started, of 4
    store.members[3] = Member(3, ("u3",), "c")
    assert store.ready_to_add_voter()
    single = MemberStore(members={1: Member(1, ("u1",), "a")})
    assert single.ready_to_add_voter()  # etcd: one started member of two may add
    assert single.ready_to_promote()  # one started voter and the learner: 2 of 2


def test_not_enough_started_members_refuses_add() -> None:
    c = Cluster()
    leader = c.elect()
    for m in leader.members.sorted_members():
        if m.id != leader.member_id:
            leader.members.members[m.id] = Member(m.id, m.peer_urls)  # as if never published
    with pytest.raises(MemberNotEnoughStarted):
        leader.member_add(["http://n9:2380"])


def test_leader_failure_and_reelection() -> None:
    c = Cluster()
    old = c.elect()
    put(c, b"before")
    c.stop(old.member_id)
    new = c.elect()
    assert new.member_id != old.member_id
    r = put(c, b"after")
    assert r.header.raft_term > 0
    # the old leader comes back, catches up and agrees
    c.start(old.member_id)
    c.run(30)
    back = c.nodes[old.member_id]
    assert not back.is_leader
    assert back.range(rpc.RangeRequest(key=b"after")).count == 1
    assert len({n.hash_kv().hash for n in c.nodes.values()}) == 1


def test_move_leader() -> None:
    c = Cluster()
    leader = c.elect()
    target = next(i for i in c.nodes if i != leader.member_id)
    r = c.ok(leader.move_leader(target))
    assert isinstance(r, rpc.MoveLeaderResponse)
    c.run(3)
    assert c.leader().member_id == target
    with pytest.raises(BadLeaderTransferee):
        c.leader().move_leader(999)
    rid = c.leader().move_leader(target)
    assert rid not in c.sink.results  # never resolved inside the call
    assert isinstance(c.ok(rid), rpc.MoveLeaderResponse)


def test_lagging_follower_gets_the_db_snapshot() -> None:
    c = Cluster(snapshot_count=20, snapshot_catchup_entries=5)
    c.elect()
    lagging = next(i for i in c.nodes if not c.nodes[i].is_leader)
    c.net.cut.add(lagging)
    lease = c.ok(c.leader().lease_grant(rpc.LeaseGrantRequest(TTL=600)))
    assert isinstance(lease, rpc.LeaseGrantResponse)
    for i in range(60):
        c.ok(c.leader().put(rpc.PutRequest(key=b"k%02d" % i, value=b"v", lease=lease.ID if i == 0 else 0)))
    leader = c.leader()
    assert leader.snapshot_index > 0
    assert c.logs[leader.member_id].released_to > 0
    sent = c.net.snapshots_sent
    c.net.cut.discard(lagging)
    c.run(20)
    assert c.net.snapshots_sent > sent
    node = c.nodes[lagging]
    assert node.range(rpc.RangeRequest(key=b"k", range_end=b"l")).count == 60
    assert lease.ID in node.lessor
    assert node.lessor.get_lease(b"k00") == lease.ID
    assert len({n.hash_kv().hash for n in c.nodes.values()}) == 1
    # and it keeps applying after the snapshot
    put(c, b"later")
    c.run(3)
    assert node.range(rpc.RangeRequest(key=b"later")).count == 1
    assert len({n.hash_kv().hash for n in c.nodes.values()}) == 1


def test_restart_recovery_applies_nothing_twice() -> None:
    c = Cluster(snapshot_count=15)
    c.elect()
    for i in range(40):
        put(c, b"k%d" % (i % 4), b"%d" % i)
    c.run(3)
    revs = {i: n.kv.current_rev for i, n in c.nodes.items()}
    hashes = {n.hash_kv().hash for n in c.nodes.values()}
    assert all(log.snapshot is not None for log in c.logs.values())
    for i in list(c.nodes):
        c.restart(i)
    for i, n in c.nodes.items():
        assert n.kv.current_rev == revs[i]
        assert len(n.members.members) == 3
    c.elect()
    c.run(5)
    for i, n in c.nodes.items():
        assert n.kv.current_rev == revs[i]  # replay of the WAL tail changed nothing
        assert n.members.cluster_version == "3.6.0"
    assert {n.hash_kv().hash for n in c.nodes.values()} == hashes
    r = put(c, b"new")
    assert r.header.revision == max(revs.values()) + 1


def test_restart_with_backend_behind_the_wal_replays_the_tail() -> None:
    """The backend lost its last commits (not synced): the WAL tail above consistent_index is re-applied."""
    c = Cluster(("n1",))
    c.elect()
    put(c, b"a")
    mid = c.ids["n1"]
    saved = MemoryBackend()
    saved.restore(c.backends[mid].snapshot())
    put(c, b"b")
    put(c, b"c")
    c.stop(mid)
    c.backends[mid] = saved
    node = c.start(mid)
    before = node.recovered
    assert before is False
    assert node.kv.current_rev == 2
    c.elect()
    assert node.recovered
    c.run(2)
    assert node.range(rpc.RangeRequest(key=b"a", range_end=b"d")).count == 3
    assert node.kv.current_rev == 4


def test_nospace_alarm_blocks_puts_until_disarmed() -> None:
    c = Cluster(("n1",))
    leader = c.elect()
    leader.backend._quota_bytes = 1  # type: ignore[attr-defined]
    with pytest.raises(NoSpace):
        leader.put(rpc.PutRequest(key=b"a", value=b"x"))
    c.run(2)
    assert [(a.memberID, a.alarm) for a in leader.alarm_list()] == [(leader.member_id, rpc.NOSPACE)]
    got = c.ok(leader.alarm(rpc.AlarmRequest(action=rpc.AlarmRequest.GET)))
    assert isinstance(got, rpc.AlarmResponse)
    assert len(got.alarms) == 1
    assert leader.status().errors == [f"memberID:{leader.member_id} alarm:NOSPACE "]
    leader.backend._quota_bytes = 1 << 30  # type: ignore[attr-defined]
    c.ok(
        leader.alarm(
            rpc.AlarmRequest(action=rpc.AlarmRequest.DEACTIVATE, memberID=leader.member_id, alarm=rpc.NOSPACE)
        )
    )
    assert leader.alarm_list() == []
    put(c, b"a")


def test_auto_compaction_revision_mode() -> None:
    c = Cluster(("n1",), auto_compaction_mode="revision", auto_compaction_retention=5)
    leader = c.elect()
    for i in range(20):
        put(c, b"k", b"%d" % i)
    c.run(3001)  # past the 5-minute revision compactor interval
    assert leader.kv.current_rev == 21
    assert leader.kv.compact_rev == 16


def test_auto_compaction_periodic_mode() -> None:
    c = Cluster(("n1",), auto_compaction_retention=10.0)
    leader = c.elect()
    for i in range(5):
        put(c, b"k", b"%d" % i)
    c.run(150)
    assert leader.kv.compact_rev == 6


def test_leases_survive_restart_and_still_expire() -> None:
    c = Cluster()
    c.elect()
    g = c.ok(c.leader().lease_grant(rpc.LeaseGrantRequest(TTL=5)))
    assert isinstance(g, rpc.LeaseGrantResponse)
    c.ok(c.leader().put(rpc.PutRequest(key=b"eph", value=b"x", lease=g.ID)))
    for i in list(c.nodes):
        c.restart(i)
    for n in c.nodes.values():
        assert n.lessor.get_lease(b"eph") == g.ID
    c.elect()
    c.run(100)
    for n in c.nodes.values():
        assert n.range(rpc.RangeRequest(key=b"eph")).count == 0
        assert g.ID not in n.lessor


def test_publish_after_every_start_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    c = Cluster(("n1",))
    c.elect()
    c.run(5)
    mid = c.ids["n1"]
    caplog.clear()
    with caplog.at_level("INFO", logger="petcd.server"):
        c.restart(mid)
        c.elect()
        c.run(5)
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs.count("published local member to cluster through raft") == 1
    assert "restarting local member" in msgs


def test_default_cluster_version_is_the_one_petcd_reports() -> None:
    from petcd.version import CLUSTER_VERSION

    assert NodeConfig(member_id=1, cluster_id=1).cluster_version == CLUSTER_VERSION


def test_auto_compaction_periodic_keeps_about_the_retention() -> None:
    c = Cluster(("n1",), auto_compaction_retention=10.0)
    leader = c.elect()
    rev_at: dict[int, int] = {}
    for second in range(40):
        put(c, b"k", b"%d" % second)
        rev_at[second] = leader.kv.current_rev
        c.run(10)
    # compactions every 10 s, each to the revision of ~10 s before it: the newest history kept
    # is between one and two retentions long
    assert rev_at[18] <= leader.kv.compact_rev <= rev_at[31]


def test_membership_changes_while_writes_run() -> None:
    c = Cluster(snapshot_count=30, snapshot_catchup_entries=5)
    c.elect()
    c.run(30)
    acked: list[tuple[bytes, int]] = []
    n = 0

    def write(ticks: int) -> None:
        nonlocal n
        for _ in range(ticks):
            node = c.nodes[sorted(c.nodes)[n % len(c.nodes)]]
            rid = node.put(rpc.PutRequest(key=b"w%d" % n, value=b"x"))
            n += 1
            c.run(1)
            res = c.sink.results.get(rid)
            if isinstance(res, rpc.PutResponse):
                acked.append((b"w%d" % (n - 1), res.header.revision))

    write(10)
    c.run(20)
    add = c.ok(c.leader().member_add(["http://n4:2380"], is_learner=True))
    assert isinstance(add, rpc.MemberAddResponse)
    write(10)
    join(c, "n4", add)
    write(40)
    promoted = c.ok(c.leader().member_promote(add.member.ID))
    assert isinstance(promoted, rpc.MemberPromoteResponse)
    write(10)
    gone = next(i for i in c.nodes if i != c.leader().member_id and i != add.member.ID)
    c.ok(c.leader().member_remove(gone))
    c.run(3)
    c.stop(gone)
    write(20)
    c.elect()
    c.run(20)
    assert len(c.nodes) == 3
    assert len({nd.hash_kv().hash for nd in c.nodes.values()}) == 1
    for nd in c.nodes.values():
        assert sorted(nd.conf_state.voters) == sorted(c.nodes)
        for key, rev in acked:
            kv = nd.kv.kv_at(key, rev)
            assert kv is not None and kv.mod_revision == rev


def test_corrupt_alarm_refuses_writes_and_nospace_refuses_lease_grants() -> None:
    from petcd.server.errors import Corrupt

    c = Cluster(("n1",))
    leader = c.elect()
    me = leader.member_id
    c.ok(leader.alarm(rpc.AlarmRequest(action=rpc.AlarmRequest.ACTIVATE, memberID=me, alarm=rpc.CORRUPT)))
    assert isinstance(c.wait(leader.put(rpc.PutRequest(key=b"a", value=b"x"))), Corrupt)
    c.ok(leader.alarm(rpc.AlarmRequest(action=rpc.AlarmRequest.DEACTIVATE, memberID=me, alarm=rpc.CORRUPT)))
    put(c, b"a")
    c.ok(leader.alarm(rpc.AlarmRequest(action=rpc.AlarmRequest.ACTIVATE, memberID=me, alarm=rpc.NOSPACE)))
    with pytest.raises(NoSpace):
        leader.lease_grant(rpc.LeaseGrantRequest(TTL=10))
    # deletes still go through under NOSPACE
    d = c.ok(leader.delete_range(rpc.DeleteRangeRequest(key=b"a")))
    assert isinstance(d, rpc.DeleteRangeResponse) and d.deleted == 1


def test_status_reports_raft_state_and_no_leader() -> None:
    c = Cluster()
    node = next(iter(c.nodes.values()))
    assert node.status().errors == ["etcdserver: no leader"]
    leader = c.elect()
    put(c, b"a")
    st = leader.status()
    assert st.leader == leader.member_id
    assert st.raftTerm == leader.term
    assert st.raftIndex == leader.committed_index
    assert st.raftAppliedIndex == leader.applied_index
    assert st.errors == []
    assert st.header.revision == 2
    assert st.dbSize > 0
