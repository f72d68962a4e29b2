"""Nodes on the real WAL (petcd.wal on the simulated file system) through power cuts: a crash keeps
only what was fsynced (torn writes included) and the backend loses its unsynced commits; every
acknowledged write survives, replay applies nothing twice, members agree (HashKV)."""

from __future__ import annotations

import contextlib
import os
import random

import pytest
from server_harness import Cluster, CrashableBackend
from wal_log_store import WalLogStore

from petcd.errors import EtcdError
from petcd.fs.sim import SimFileSystem
from petcd.pb.etcdserverpb import rpc_pb2 as rpc
from petcd.server.node import Node


class WalCluster(Cluster):
    def __init__(self, **config: object) -> None:
        self.fss: dict[int, SimFileSystem] = {}
        super().__init__(**config)  # type: ignore[arg-type]

    def start(self, member: int, config: object = None) -> Node:
        fs = self.fss.setdefault(member, SimFileSystem())
        self.logs[member] = WalLogStore(fs, "/data", member, self.cid)  # type: ignore[assignment]
        return super().start(member)

    def power_cut(self, member: int, rng: random.Random) -> None:
        self.stop(member)
        self.fss[member].crash(rng)
        backend = self.backends[member]
        assert isinstance(backend, CrashableBackend)
        backend.crash()


@pytest.mark.parametrize("seed", range(int(os.environ.get("PETCD_SERVER_SEEDS", "4"))))
def test_power_cuts_keep_acknowledged_writes(seed: int) -> None:
    rng = random.Random(seed)
    c = WalCluster(snapshot_count=20, snapshot_catchup_entries=5, request_timeout_s=3.0)
    c.elect()
    ids = list(c.configs)
    acked: dict[int, tuple[bytes, bytes, int]] = {}
    sent: dict[int, tuple[bytes, bytes]] = {}
    for step in range(150):
        if rng.random() < 0.05:
            victim = rng.choice(ids)
            if victim in c.nodes and len(c.nodes) > 1:
                c.power_cut(victim, rng)
        if rng.random() < 0.2:
            for i in ids:
                if i not in c.nodes:
                    c.start(i)
        node = c.nodes[rng.choice(list(c.nodes))]
        key, value = b"k%d" % rng.randrange(6), b"%d" % step
        with contextlib.suppress(EtcdError):
            sent[node.put(rpc.PutRequest(key=key, value=value))] = (key, value)
        c.run(rng.choice([1, 2, 4]))
        for rid in list(sent):
            res = c.sink.results.pop(rid, None)
            if isinstance(res, rpc.PutResponse):
                acked[rid] = (*sent.pop(rid), res.header.revision)
            elif res is not None:
                sent.pop(rid)
    # the whole cluster loses power at once, then comes back
    for i in ids:
        if i in c.nodes:
            c.power_cut(i, rng)
    for i in ids:
        c.start(i)
    c.elect(300)
    c.ok(c.leader().put(rpc.PutRequest(key=b"final", value=b"x")))
    c.run(30)
    assert len(acked) > 20
    assert len({n.hash_kv().hash for n in c.nodes.values()}) == 1
    for k, v, rev in acked.values():
        for n in c.nodes.values():
            kv = n.kv.kv_at(k, rev)
            assert kv is not None and kv.value == v and kv.mod_revision == rev
