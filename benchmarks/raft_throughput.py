"""Committed entries per second through a 3-node in-memory raft cluster.

Each round proposes a batch on the leader (one `propose_batch`, as the server's group commit
does), then moves every Ready through MemoryStorage and delivers messages until the batch is
committed and applied on all three nodes. This measures the cost of the consensus state machine
itself (no disk, no network), the floor under everything the server adds. Bounded by entry count
and by wall time per case.

    python benchmarks/raft_throughput.py [--entries N] [--seconds S]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import deque

from petcd.raft.config import Config
from petcd.raft.rawnode import RawNode
from petcd.raft.storage import MemoryStorage
from petcd.raft.types import ConfChange, EntryType, Message, Peer, StateType


class Cluster:
    def __init__(self, size: int = 3) -> None:
        ids = list(range(1, size + 1))
        self.storages = {i: MemoryStorage() for i in ids}
        self.nodes: dict[int, RawNode] = {}
        for i in ids:
            cfg = Config(id=i, storage=self.storages[i], rand=random.Random(i), max_inflight_msgs=1024)
            self.nodes[i] = RawNode(cfg)
            self.nodes[i].bootstrap([Peer(j) for j in ids])
        self.applied = dict.fromkeys(ids, 0)
        self.queue: deque[Message] = deque()

    def pump(self) -> None:
        """Process Readies and deliver messages until the cluster is quiet."""
        busy = True
        while busy:
            busy = False
            for i, node in self.nodes.items():
                if not node.has_ready():
                    continue
                busy = True
                rd = node.ready()
                st = self.storages[i]
                if not rd.snapshot.is_empty():
                    st.apply_snapshot(rd.snapshot)
                if rd.entries:
                    st.append(list(rd.entries))
                if not rd.hard_state.is_empty():
                    st.set_hard_state(rd.hard_state)
                self.queue.extend(rd.messages)
                for e in rd.committed_entries:
                    if e.type == EntryType.CONF_CHANGE_V2:
                        node.apply_conf_change(ConfChange.decode(e.data))
                    self.applied[i] = e.index
                node.advance(rd)
            while self.queue:
                busy = True
                m = self.queue.popleft()
                self.nodes[m.to].step(m)

    def leader(self) -> int:
        for i, node in self.nodes.items():
            if node.status().soft_state.raft_state == StateType.LEADER:
                return i
        raise RuntimeError("no leader")


def run_case(payload: int, batch: int, entries_max: int, seconds_max: float) -> tuple[int, float]:
    c = Cluster()
    c.pump()  # apply the bootstrap configuration before campaigning, as etcd requires
    c.nodes[1].campaign()
    c.pump()
    lead = c.leader()
    data = b"x" * payload
    done = 0
    start = time.perf_counter()
    while done < entries_max and time.perf_counter() - start < seconds_max:
        c.nodes[lead].propose_batch([data] * batch)
        c.pump()
        done += batch
    elapsed = time.perf_counter() - start
    target = c.applied[lead]
    assert all(a == target for a in c.applied.values()), c.applied
    return done, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=50_000, help="entries per case at most")
    ap.add_argument("--seconds", type=float, default=10.0, help="wall time per case at most")
    args = ap.parse_args()
    print("| payload | batch | entries | seconds | entries/s | MB/s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for payload in (64, 1024):
        for batch in (1, 10, 100, 1000):
            n, secs = run_case(payload, batch, args.entries, args.seconds)
            rate = n / secs
            print(f"| {payload} | {batch} | {n} | {secs:.2f} | {rate:,.0f} | {rate * payload / 1e6:.2f} |")


if __name__ == "__main__":
    main()
