"""Bookkeeping of linearizable reads in ReadIndex "safe" mode (etcd's read_only.go).

A read request carries an opaque context (the first entry's data of a MsgReadIndex). The leader
records the commit index at the time of the request, then piggybacks the context on a round
of heartbeats. Once a quorum of voters echoes the context back in MsgHeartbeatResp, the leader
knows it was still the leader when the request arrived, so the recorded commit index is a safe
read point. Requests are queued in arrival order: an acknowledgement of a later request confirms
every earlier one too (a follower that answered the later heartbeat also knew the leader at the
time of the earlier one), so `advance` releases the whole prefix of the queue up to the acked
context.

Contexts must be unique per pending request; a duplicate is ignored (as etcd does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from petcd.raft.errors import RaftPanic
from petcd.raft.types import Message, ReadOnlyOption


@dataclass(slots=True)
class ReadIndexStatus:
    req: Message
    index: int
    # Voters that echoed the context; a plain dict so quorum.vote_result can read it.
    acks: dict[int, bool] = field(default_factory=dict)


class ReadOnly:
    """Pending ReadIndex requests of a leader, keyed by request context, in arrival order."""

    __slots__ = ("option", "pending_read_index", "read_index_queue")

    def __init__(self, option: ReadOnlyOption) -> None:
        self.option = option
        self.pending_read_index: dict[bytes, ReadIndexStatus] = {}
        # Invariant: the keys of pending_read_index, in the order the requests arrived.
        self.read_index_queue: list[bytes] = []

    def add_request(self, index: int, m: Message) -> None:
        """Queue read request `m`, taken when the leader's commit index was `index`."""
        ctx = m.entries[0].data
        if ctx in self.pending_read_index:
            return
        self.pending_read_index[ctx] = ReadIndexStatus(req=m, index=index)
        self.read_index_queue.append(ctx)

    def recv_ack(self, node_id: int, context: bytes) -> dict[int, bool] | None:
        """Record that `node_id` echoed `context`; return the acks so far (None if unknown)."""
        rs = self.pending_read_index.get(context)
        if rs is None:
            return None
        rs.acks[node_id] = True
        return rs.acks

    def advance(self, m: Message) -> list[ReadIndexStatus]:
        """Dequeue every request up to and including the one whose context `m` carries."""
        ctx = m.context
        try:
            pos = self.read_index_queue.index(ctx)
        except ValueError:
            return []
        released_ctxs = self.read_index_queue[: pos + 1]
        self.read_index_queue = self.read_index_queue[pos + 1 :]
        released: list[ReadIndexStatus] = []
        for c in released_ctxs:
            rs = self.pending_read_index.pop(c, None)
            if rs is None:
                raise RaftPanic("cannot find corresponding read state from pending map")
            released.append(rs)
        return released

    def last_pending_request_ctx(self) -> bytes:
        """The context of the newest pending request (b"" when none): heartbeats carry it."""
        if not self.read_index_queue:
            return b""
        return self.read_index_queue[-1]
