"""One simulated raft node: its "disk", its volatile state and a view of its log for the checker.

The node's disk is its `MemoryStorage` (raft's own storage, written only when a `Ready` is
persisted) plus `kv_durable`, the state machine's own durable copy (as etcd's backend with its
consistent index), written on some applies and whenever a snapshot is taken or installed. A crash
keeps exactly those two and loses the rest: the `RawNode`, a `Ready` taken but not yet persisted,
the volatile state machine, pending reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from petcd.raft.errors import RaftError
from petcd.raft.rawnode import RawNode
from petcd.raft.storage import MemoryStorage
from petcd.raft.types import NONE, ConfState, Entry, Ready, Snapshot, StateType
from petcd.sim.kv import KVStateMachine


@dataclass(slots=True)
class ReadWait:
    """A client read that got its read index and waits for the node to apply up to it."""

    index: int
    read_id: str
    key: str


@dataclass(slots=True)
class SimNode:
    id: int
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    kv_durable: bytes = b""
    rn: RawNode | None = None
    # Bumped at every crash: messages and disk writes of an older incarnation are discarded.
    incarnation: int = 0
    alive: bool = False
    removed: bool = False
    kv: KVStateMachine = field(default_factory=KVStateMachine)
    # Invariant: conf_state is the configuration as of raft_applied (what a snapshot there holds).
    conf_state: ConfState = field(default_factory=ConfState)
    raft_applied: int = 0
    pending: Ready | None = None
    term: int = 0
    commit: int = 0
    state: StateType = StateType.FOLLOWER
    lead: int = NONE
    reads: dict[bytes, tuple[str, str]] = field(default_factory=dict)
    read_waits: list[ReadWait] = field(default_factory=list)

    def log_view(self, extra: Sequence[Entry] = (), snapshot: Snapshot | None = None) -> NodeLog:
        return NodeLog(self.storage, tuple(extra), snapshot)


class NodeLog:
    """The node's log: persisted entries, overlaid with not-yet-persisted ones from a Ready."""

    def __init__(self, storage: MemoryStorage, extra: tuple[Entry, ...], snapshot: Snapshot | None) -> None:
        self._storage = storage
        self._extra = extra
        index = storage.first_index() - 1
        # A snapshot about to be installed replaces the whole persisted log.
        self._replaced = snapshot is not None and not snapshot.is_empty()
        if snapshot is not None and self._replaced:
            index = max(index, snapshot.metadata.index)
        self._snapshot_index = index

    @property
    def snapshot_index(self) -> int:
        return self._snapshot_index

    def term_at(self, index: int) -> int | None:
        extra = self._extra
        if extra and index >= extra[0].index:
            offset = index - extra[0].index
            return extra[offset].term if offset < len(extra) else None
        if index <= self._snapshot_index or self._replaced:
            return None
        try:
            if index > self._storage.last_index():
                return None
            return self._storage.term(index)
        except RaftError:
            return None
