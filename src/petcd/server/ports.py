"""The ports of ring B: everything the server Node needs from the world, as protocols.

The Node never touches a file, a socket or a clock itself. The runtime (ring C) implements these
over the WAL, the peer transport and the system clock; the simulator over its simulated disk,
network and clock; the tests over plain lists.

* `LogStore` - raft's durable log: the WAL plus the snapshot files. `load()` is called once, by the
  Node's constructor; after that the Node only appends (`save`), records snapshots
  (`save_snapshot`) and lets go of what a snapshot covers (`release_to`).
* `Outbox` - the peer transport: fire-and-forget sends. Delivery failures are reported back to the
  Node by the runtime (`Node.report_unreachable`, `Node.report_snapshot`), never raised.
* `Clock` - monotonic seconds (its epoch does not matter; nothing leaves the process).
* `ResultSink` - where the results of requests go: the runtime resolves the future it registered
  under the request ID; unknown IDs (a request that timed out meanwhile) are ignored by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from petcd.errors import EtcdError
from petcd.raft.types import EMPTY_HARD_STATE, Entry, HardState, Message, Snapshot


@dataclass(frozen=True, slots=True)
class PersistedLog:
    """What a LogStore holds on start: the newest usable snapshot, the hard state, the entries
    after the snapshot. All empty for a member that never ran."""

    snapshot: Snapshot | None = None
    hard_state: HardState = EMPTY_HARD_STATE
    entries: Sequence[Entry] = field(default_factory=tuple)

    def is_empty(self) -> bool:
        return self.snapshot is None and self.hard_state.is_empty() and not self.entries


class LogStore(Protocol):
    """raft's durable log (runtime: petcd.wal.Wal + Snapshotter; sim: the same on SimFileSystem)."""

    def load(self) -> PersistedLog:
        """The persisted state, read once on start (WAL opened at the newest snapshot marker)."""
        ...

    def save(self, hard_state: HardState, entries: Sequence[Entry], must_sync: bool) -> None:
        """Append `entries` (replacing any suffix from entries[0].index on) and record
        `hard_state` (may be empty: keep the previous one). Durable on return when `must_sync`."""
        ...

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Write the snapshot file (metadata + data) and the WAL's snapshot marker; durable on
        return. The Node calls it only after the backend state at `snapshot.metadata.index` is
        synced (so a restart at this snapshot finds a backend at least that far)."""
        ...

    def release_to(self, index: int) -> None:
        """WAL segments wholly before `index` may go (etcd: ReleaseLockTo, then purge)."""
        ...


class Outbox(Protocol):
    """The peer transport, seen from the Node."""

    def send(self, messages: Sequence[Message]) -> None:
        """Queue raft messages for their `to` members. Never blocks; drops on overflow (the runtime
        then calls `Node.report_unreachable(to)`)."""
        ...

    def send_snapshot(self, message: Message, db: Iterable[bytes]) -> None:
        """Send a MsgSnap together with the backend stream `db` (petcd.backend.snapshot format).

        `db` is a view of the backend as of the snapshot's index, taken when the Node calls this;
        it may be consumed on another thread. When the transfer ends the runtime calls
        `Node.report_snapshot(message.to, ok)`; the receiving runtime hands both to
        `Node.receive_snapshot(message, db)`."""
        ...


class Clock(Protocol):
    def now_s(self) -> float:
        """Monotonic seconds."""
        ...


class ResultSink(Protocol):
    def resolve(self, request_id: int, result: object | EtcdError) -> None:
        """Deliver the result of request `request_id` (a response message, or the error)."""
        ...
