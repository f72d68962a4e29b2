"""--force-new-cluster: a member of a stopped cluster restarts alone, with its data.

etcd's restartAsStandaloneNode: the uncommitted WAL tail is dropped, ConfChange entries removing
every other member are appended and committed, and the member goes on as a one-member cluster
that accepts writes and new members.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from server_harness import Cluster

from petcd.pb.etcdserverpb import raft_internal_pb2 as ri
from petcd.pb.etcdserverpb import rpc_pb2 as rpc
from petcd.raft.types import ConfChange, ConfChangeSingle, ConfChangeType, Entry, EntryType
from petcd.server.membership import ConfChangeContext, Member
from petcd.server.node import NodeConfig, configuration_ids, standalone_conf_change_entries


def put(c: Cluster, key: bytes, value: bytes = b"v") -> rpc.PutResponse:
    r = c.ok(c.leader().put(rpc.PutRequest(key=key, value=value)))
    assert isinstance(r, rpc.PutResponse)
    return r


def _cc(t: ConfChangeType, node: int, index: int) -> Entry:
    ctx = ConfChangeContext(Member(node, (f"http://x{node}:2380",))).encode()
    return Entry(
        1, index, EntryType.CONF_CHANGE_V2, ConfChange((ConfChangeSingle(t, node),), context=ctx).encode()
    )


def test_configuration_ids_follow_adds_and_removes() -> None:
    ents = [
        _cc(ConfChangeType.ADD_NODE, 1, 1),
        _cc(ConfChangeType.ADD_NODE, 2, 2),
        _cc(ConfChangeType.ADD_LEARNER_NODE, 3, 3),
        _cc(ConfChangeType.ADD_NODE, 4, 4),
        _cc(ConfChangeType.REMOVE_NODE, 2, 5),
        _cc(ConfChangeType.UPDATE_NODE, 4, 6),
        Entry(1, 7, EntryType.NORMAL, b""),
    ]
    assert configuration_ids(None, ents) == [1, 3, 4]


def test_standalone_entries_remove_the_others_and_add_self_when_missing() -> None:
    me = Member(7, ("http://me:2380",))
    ents = standalone_conf_change_entries([3, 7, 9], me, term=4, index=20)
    assert [(e.index, e.term) for e in ents] == [(21, 4), (22, 4)]
    changes = [ConfChange.decode(e.data).changes[0] for e in ents]
    assert changes == [
        ConfChangeSingle(ConfChangeType.REMOVE_NODE, 3),
        ConfChangeSingle(ConfChangeType.REMOVE_NODE, 9),
    ]
    ents = standalone_conf_change_entries([3], me, term=4, index=20)
    first = ConfChange.decode(ents[0].data)
    assert first.changes[0] == ConfChangeSingle(ConfChangeType.ADD_NODE, 7)  # self first: never no voter
    assert ConfChangeContext.decode(first.context).member.peer_urls == ("http://me:2380",)
    assert ConfChange.decode(ents[1].data).changes[0] == ConfChangeSingle(ConfChangeType.REMOVE_NODE, 3)


@pytest.mark.parametrize("snapshot_count", [10_000, 8])
def test_force_new_cluster_keeps_data_and_continues_alone(
    snapshot_count: int, caplog: pytest.LogCaptureFixture
) -> None:
    c = Cluster(snapshot_count=snapshot_count, snapshot_catchup_entries=2)
    c.elect()
    revs = [put(c, b"k%02d" % i, b"%d" % i).header.revision for i in range(20)]
    c.run(3)
    ids = sorted(c.nodes)
    survivor = ids[1]
    for i in ids:
        c.stop(i)
    log = c.logs[survivor]
    assert (log.snapshot is not None) == (snapshot_count < 20)
    # an entry the cluster never committed: etcd drops it
    last_index = log.entries[-1].index if log.entries else log.snapshot.metadata.index  # type: ignore[union-attr]
    stray = ri.InternalRaftRequest(put=rpc.PutRequest(key=b"uncommitted", value=b"x"))
    stray.header.ID = 99
    log.entries.append(
        Entry(log.hard_state.term, last_index + 1, EntryType.NORMAL, stray.SerializeToString())
    )
    assert log.hard_state.commit == last_index

    caplog.set_level("INFO", logger="petcd.server")
    node = c.start(survivor, replace(c.configs[survivor], force_new_cluster=True))
    msgs = [r.getMessage() for r in caplog.records]
    assert "discarding uncommitted WAL entries" in msgs
    assert "forcing restart member" in msgs
    c.elect()
    assert node.is_leader
    assert [m.id for m in node.members.sorted_members()] == [survivor]
    assert node.conf_state.voters == (survivor,)
    assert sorted(node.members.removed) == [i for i in ids if i != survivor]
    got = node.range(rpc.RangeRequest(key=b"k", range_end=b"l"))
    assert [(kv.key, kv.value) for kv in got.kvs] == [(b"k%02d" % i, b"%d" % i) for i in range(20)]
    assert node.range(rpc.RangeRequest(key=b"uncommitted")).count == 0
    assert node.kv.current_rev == revs[-1]
    r = put(c, b"after", b"force")
    assert r.header.revision == revs[-1] + 1

    # a new member joins the one-member cluster and gets everything
    new = Member(0, ("http://n4:2380",))
    added = c.ok(node.member_add(new.peer_urls))
    assert isinstance(added, rpc.MemberAddResponse)
    new_id = added.member.ID
    cfg = NodeConfig(
        member_id=new_id,
        cluster_id=c.cid,
        name="n4",
        peer_urls=new.peer_urls,
        client_urls=("http://n4:2379",),
    )
    c.configs[new_id] = cfg
    joined = c.start(new_id)
    c.run(20)
    assert joined.range(rpc.RangeRequest(key=b"after")).kvs[0].value == b"force"
    assert sorted(m.id for m in node.members.sorted_members()) == sorted([survivor, new_id])
    put(c, b"two", b"members")
    c.run(3)
    assert joined.hash_kv().hash == node.hash_kv().hash

    # a later plain restart keeps the two-member cluster and the data
    c.stop(survivor)
    node = c.start(survivor, replace(c.configs[survivor], force_new_cluster=False))
    c.elect()
    assert sorted(m.id for m in node.members.sorted_members()) == sorted([survivor, new_id])
    assert node.range(rpc.RangeRequest(key=b"two")).count == 1
