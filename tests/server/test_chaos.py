"""Random schedules on a 3-member cluster: lost messages, crashes and restarts, cut-off members,
requests (puts, deletes, linearizable reads) on any member. A linearizable read never misses a
write acknowledged before it was issued. After healing, every member holds the same store
(HashKV), every acknowledged write is in it, and no member's revision ever went back.
PETCD_SERVER_SEEDS=200 runs more seeds (6 by default)."""

from __future__ import annotations

import os
import random

import pytest
from server_harness import Cluster

from petcd.errors import EtcdError
from petcd.pb.etcdserverpb import rpc_pb2 as rpc


@pytest.mark.parametrize("seed", range(int(os.environ.get("PETCD_SERVER_SEEDS", "6"))))
def test_random_faults_keep_members_consistent(seed: int) -> None:
    rand = random.Random(seed)
    c = Cluster(snapshot_count=25, snapshot_catchup_entries=5, request_timeout_s=3.0)
    c.net.rand = random.Random(seed + 1000)
    c.elect()
    ids = list(c.configs)
    c.net.loss = 0.0
    acked: dict[int, tuple[bytes, bytes, int]] = {}  # request -> (key, value, revision)
    sent: dict[int, tuple[bytes, bytes]] = {}
    reads: dict[int, int] = {}  # linearizable read -> newest acked revision when it was issued
    n_reads = 0
    last_rev = {i: 0 for i in ids}
    for step in range(300):
        r = rand.random()
        if r < 0.02 and len(c.nodes) == 3:
            c.stop(rand.choice(list(c.nodes)), lose_unsynced=rand.random() < 0.5)
        elif r < 0.06 and len(c.nodes) < 3:
            c.start(rand.choice([i for i in ids if i not in c.nodes]))
        elif r < 0.08:
            c.net.cut = {rand.choice(ids)} if not c.net.cut else set()
        elif r < 0.10:
            c.net.loss = rand.choice([0.0, 0.1, 0.3])
        node = c.nodes[rand.choice(list(c.nodes))]
        key = b"k%d" % rand.randrange(8)
        value = b"%d" % step
        try:
            op = rand.random()
            if op < 0.7:
                sent[node.put(rpc.PutRequest(key=key, value=value))] = (key, value)
            elif op < 0.85:
                newest = max((rev for _, _, rev in acked.values()), default=0)
                reads[node.linearizable_range(rpc.RangeRequest(key=key))] = newest
            else:
                node.delete_range(rpc.DeleteRangeRequest(key=key))
        except EtcdError:
            pass
        c.run(rand.choice([1, 1, 2, 5]))
        for rid in list(sent):
            res = c.sink.results.pop(rid, None)
            if isinstance(res, rpc.PutResponse):
                k, v = sent.pop(rid)
                acked[rid] = (k, v, res.header.revision)
            elif res is not None:
                sent.pop(rid)
        for rid in list(reads):
            got = c.sink.results.pop(rid, None)
            if got is not None:
                newest = reads.pop(rid)
                if isinstance(got, rpc.RangeResponse):
                    assert got.header.revision >= newest, "a linearizable read missed an acked write"
                    n_reads += 1
        for i, n in c.nodes.items():
            assert n.kv.current_rev >= last_rev[i], "revision went back"
            last_rev[i] = n.kv.current_rev
    # heal
    c.net.cut = set()
    c.net.loss = 0.0
    for i in ids:
        if i not in c.nodes:
            c.start(i)
    leader = c.elect(300)
    c.ok(leader.put(rpc.PutRequest(key=b"final", value=b"x")))
    c.run(50)
    hashes = {n.hash_kv().hash for n in c.nodes.values()}
    revs = {n.kv.current_rev for n in c.nodes.values()}
    assert n_reads > 0
    assert len(hashes) == 1, revs
    assert len(revs) == 1
    for k, v, rev in acked.values():
        for n in c.nodes.values():
            kv = n.kv.kv_at(k, rev)
            assert kv is not None and kv.value == v and kv.mod_revision == rev
