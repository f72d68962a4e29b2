"""In-process clusters of server Nodes wired with in-memory ports.

* `FakeLogStore` keeps what a WAL would (snapshot, hard state, entries) and records every save,
  so tests can check one save per Ready, syncs, snapshots and releases; `load()` gives the
  durable state back for a restart.
* `Network` is the Outbox of every node: messages queue per destination and are delivered by
  `Cluster.deliver()`; a node can be cut off (`isolate`) or stopped (`stop`).
* `FakeClock` moves only when the test says so.
* `Sink` collects results by request ID.

`Cluster.run(ticks)` advances the clock by one heartbeat per tick, ticks every running node and
then delivers messages and processes Readies until nothing moves.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from petcd.backend.memory import MemoryBackend
from petcd.errors import EtcdError
from petcd.ids import cluster_id
from petcd.raft.types import EMPTY_HARD_STATE, Entry, HardState, Message, Snapshot
from petcd.server.node import Node, NodeConfig, initial_members
from petcd.server.ports import PersistedLog


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def now_s(self) -> float:
        return self.t


class Sink:
    def __init__(self) -> None:
        self.results: dict[int, object] = {}

    def resolve(self, request_id: int, result: object | EtcdError) -> None:
        assert request_id not in self.results, f"request {request_id} resolved twice"
        self.results[request_id] = result


@dataclass
class FakeLogStore:
    snapshot: Snapshot | None = None
    hard_state: HardState = EMPTY_HARD_STATE
    entries: list[Entry] = field(default_factory=list)
    saves: list[tuple[HardState, int, bool]] = field(default_factory=list)
    snapshots: list[int] = field(default_factory=list)
    released_to: int = 0

    def load(self) -> PersistedLog:
        return PersistedLog(self.snapshot, self.hard_state, tuple(self.entries))

    def save(self, hard_state: HardState, entries: Sequence[Entry], must_sync: bool) -> None:
        self.saves.append((hard_state, len(entries), must_sync))
        if entries:
            first = entries[0].index
            self.entries = [e for e in self.entries if e.index < first] + list(entries)
        if not hard_state.is_empty():
            self.hard_state = hard_state

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot.metadata.index)
        if self.snapshot is None or snapshot.metadata.index > self.snapshot.metadata.index:
            self.snapshot = snapshot
        self.entries = [e for e in self.entries if e.index > snapshot.metadata.index]

    def release_to(self, index: int) -> None:
        self.released_to = max(self.released_to, index)


class CrashableBackend(MemoryBackend):
    """A MemoryBackend whose commits since the last sync() are lost by crash() (as LMDB's
    unsynced commits may be): what consistent_index and the WAL tail must make up for."""

    def __init__(self) -> None:
        super().__init__()
        self._synced: list[bytes] = list(MemoryBackend().snapshot())

    def sync(self) -> None:
        self._synced = list(self.snapshot())

    def crash(self) -> None:
        self.restore(self._synced)


class Outbox:
    def __init__(self, net: Network, member: int) -> None:
        self.net = net
        self.member = member

    def send(self, messages: Sequence[Message]) -> None:
        for m in messages:
            self.net.queue[m.to].append((m, None))

    def send_snapshot(self, message: Message, db: Iterable[bytes]) -> None:
        self.net.snapshots_sent += 1
        self.net.queue[message.to].append((message, list(db)))


class Network:
    def __init__(self) -> None:
        self.queue: dict[int, list[tuple[Message, list[bytes] | None]]] = defaultdict(list)
        self.cut: set[int] = set()
        self.snapshots_sent = 0
        # Fraction of messages lost (drawn from `rand`): raft must cope, the tests check it does.
        self.loss = 0.0
        self.rand = random.Random(0)

    def lost(self) -> bool:
        return self.loss > 0 and self.rand.random() < self.loss


class Cluster:
    def __init__(
        self,
        names: Sequence[str] = ("n1", "n2", "n3"),
        *,
        snapshot_count: int = 10_000,
        snapshot_catchup_entries: int = 5000,
        **config: object,
    ) -> None:
        self.clock = FakeClock()
        self.net = Network()
        self.sink = Sink()
        peers = {name: [f"http://{name}:2380"] for name in names}
        self.members = initial_members(peers)
        self.cid = cluster_id(m.id for m in self.members)
        self.ids = {m.name: m.id for m in self.members}
        self.configs: dict[int, NodeConfig] = {}
        self.logs: dict[int, FakeLogStore] = {}
        self.backends: dict[int, MemoryBackend] = {}
        self.nodes: dict[int, Node] = {}
        for m in self.members:
            cfg = NodeConfig(
                member_id=m.id,
                cluster_id=self.cid,
                name=m.name,
                peer_urls=m.peer_urls,
                client_urls=(f"http://{m.name}:2379",),
                initial_members=self.members,
                snapshot_count=snapshot_count,
                snapshot_catchup_entries=snapshot_catchup_entries,
                **config,  # type: ignore[arg-type]
            )
            self.configs[m.id] = cfg
            self.logs[m.id] = FakeLogStore()
            self.backends[m.id] = CrashableBackend()
            self.start(m.id)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, member: int, config: NodeConfig | None = None) -> Node:
        if config is not None:
            self.configs[member] = config
        node = Node(
            self.configs[member],
            self.logs.setdefault(member, FakeLogStore()),
            self.backends.setdefault(member, MemoryBackend()),
            Outbox(self.net, member),
            self.clock,
            self.sink,
        )
        self.nodes[member] = node
        self.net.cut.discard(member)
        return node

    def stop(self, member: int, lose_unsynced: bool = False) -> None:
        """Crash: the node goes; its log store and backend stay (as on disk), the backend's
        unsynced commits too unless `lose_unsynced`."""
        self.nodes.pop(member)
        self.net.queue.pop(member, None)
        backend = self.backends[member]
        if lose_unsynced and isinstance(backend, CrashableBackend):
            backend.crash()

    def restart(self, member: int) -> Node:
        self.stop(member)
        return self.start(member)

    # -- driving ---------------------------------------------------------------------------------

    def settle(self, rounds: int = 100) -> None:
        for _ in range(rounds):
            moved = False
            for node in list(self.nodes.values()):
                while node.process_ready():
                    moved = True
            for to in list(self.net.queue):
                msgs = self.net.queue.pop(to)
                dest = self.nodes.get(to)
                if dest is None or to in self.net.cut:
                    continue
                for m, db in msgs:
                    if m.from_ in self.net.cut or self.net.lost():
                        if db is not None and m.from_ in self.nodes:
                            self.nodes[m.from_].report_snapshot(to, False)
                        continue
                    moved = True
                    if db is not None:
                        dest.receive_snapshot(m, db)
                        sender = self.nodes.get(m.from_)
                        if sender is not None:
                            sender.report_snapshot(to, True)
                    else:
                        dest.step(m)
            if not moved:
                return

    def run(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.clock.t += 0.1
            for node in list(self.nodes.values()):
                node.tick()
            self.settle()

    def leader(self) -> Node:
        leaders = [n for n in self.nodes.values() if n.is_leader and n.member_id not in self.net.cut]
        assert len(leaders) == 1, f"leaders: {[hex(n.member_id) for n in leaders]}"
        return leaders[0]

    def elect(self, max_ticks: int = 100) -> Node:
        for _ in range(max_ticks):
            self.run()
            up = [n for n in self.nodes.values() if n.member_id not in self.net.cut]
            live = [n for n in up if n.is_leader]
            if len(live) == 1 and all(n.leader_id == live[0].member_id for n in up):
                return live[0]
        raise AssertionError("no leader elected")

    def wait(self, rid: int, max_ticks: int = 100) -> object:
        self.settle()
        for _ in range(max_ticks):
            if rid in self.sink.results:
                return self.sink.results.pop(rid)
            self.run()
        raise AssertionError(f"request {rid} got no result")

    def ok(self, rid: int, max_ticks: int = 100) -> object:
        result = self.wait(rid, max_ticks)
        if isinstance(result, BaseException):
            raise result
        return result
