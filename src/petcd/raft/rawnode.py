"""The application's handle on a raft peer (etcd's rawnode.go): a synchronous, thread-free API.

The caller owns the loop:

    rn.tick() / rn.step(msg) / rn.propose(data) ...
    if rn.has_ready():
        rd = rn.ready()
        storage.apply_snapshot(rd.snapshot)      # if not empty
        storage.append(rd.entries)               # fsync if rd.must_sync
        storage.set_hard_state(rd.hard_state)    # if not empty
        send(rd.messages)
        apply(rd.committed_entries)              # rn.apply_conf_change(...) for CONF_CHANGE_V2
        rn.advance(rd)

`ready()` hands out everything produced since the last Ready and forgets the messages and read
states it returned; `advance(rd)` tells raft the rest was done (entries stable, committed entries
applied). Between `ready()` and `advance()` the caller must not ask for another Ready.

A Ready carries `soft_state` only when it differs from the last one handed out, and
`hard_state` only when it differs from the last one acknowledged by `advance`. `must_sync`
is set when entries, the term or the vote changed: those must be on disk before any message
of this Ready is acted upon by a peer (a leader may still send before its own fsync).
"""

from __future__ import annotations

from collections.abc import Sequence

from petcd.raft.config import Config
from petcd.raft.errors import RaftError, StepLocalMsg, StepPeerNotFound
from petcd.raft.raft import Raft
from petcd.raft.status import BasicStatus, Status, get_basic_status, get_status
from petcd.raft.types import (
    EMPTY_HARD_STATE,
    EMPTY_SNAPSHOT,
    LOCAL_MESSAGES,
    NONE,
    RESPONSE_MESSAGES,
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Peer,
    Ready,
    SnapshotStatus,
    SoftState,
)


def must_sync(st: HardState, prev: HardState, n_entries: int) -> bool:
    """Whether a Ready must be fsynced: new entries, or a new term or vote (Raft figure 2)."""
    return n_entries != 0 or st.vote != prev.vote or st.term != prev.term


class RawNode:
    """Wraps a `Raft` and tracks what was already handed to the application."""

    def __init__(self, config: Config, *, peers: Sequence[int] = (), learners: Sequence[int] = ()) -> None:
        # peers / learners: tests only, see Raft.__init__.
        self.raft = Raft(config, peers=peers, learners=learners)
        self._prev_soft_state: SoftState = self.raft.soft_state()
        self._prev_hard_state: HardState = self.raft.hard_state()

    # ------------------------------------------------------------------ inputs

    def tick(self) -> None:
        """Advance the logical clock by one tick (elections, heartbeats)."""
        self.raft.tick()

    def tick_quiesced(self) -> None:
        """Advance only the election clock, sending no heartbeats (for idle groups)."""
        self.raft.election_elapsed += 1

    def campaign(self) -> None:
        """Start an election now (pre-vote first if configured)."""
        self.raft.step(Message(MessageType.MSG_HUP))

    def propose(self, data: bytes) -> None:
        """Propose `data` for the log. Raises ProposalDropped when it cannot be accepted."""
        self.raft.step(Message(MessageType.MSG_PROP, from_=self.raft.id, entries=(Entry(data=data),)))

    def propose_batch(self, datas: Sequence[bytes]) -> None:
        """Propose several entries in one message (one append per follower, not one per entry).

        All or nothing: raises ProposalDropped for the whole batch. An empty batch is a no-op.
        """
        if not datas:
            return
        self.raft.step(
            Message(
                MessageType.MSG_PROP,
                from_=self.raft.id,
                entries=tuple(Entry(data=d) for d in datas),
            )
        )

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose a membership change (an entry of type CONF_CHANGE_V2)."""
        self.raft.step(
            Message(
                MessageType.MSG_PROP,
                entries=(Entry(type=EntryType.CONF_CHANGE_V2, data=cc.encode()),),
            )
        )

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed membership change; returns the resulting configuration."""
        return self.raft.apply_conf_change(cc)

    def step(self, m: Message) -> None:
        """Feed a message received from a peer."""
        if m.type in LOCAL_MESSAGES:
            raise StepLocalMsg()
        if m.type in RESPONSE_MESSAGES and m.from_ not in self.raft.trk.progress:
            # A response from a node that is not (or no longer) a member.
            raise StepPeerNotFound()
        self.raft.step(m)

    def report_unreachable(self, node_id: int) -> None:
        """The transport failed to reach `node_id`: the leader goes back to probing it."""
        self.raft.step(Message(MessageType.MSG_UNREACHABLE, from_=node_id))

    def report_snapshot(self, node_id: int, status: SnapshotStatus) -> None:
        """Report whether sending a snapshot to `node_id` finished or failed."""
        self.raft.step(
            Message(
                MessageType.MSG_SNAP_STATUS,
                from_=node_id,
                reject=status == SnapshotStatus.FAILURE,
            )
        )

    def transfer_leader(self, transferee: int) -> None:
        """Ask the leader to hand leadership to `transferee`."""
        self.raft.step(Message(MessageType.MSG_TRANSFER_LEADER, from_=transferee))

    def read_index(self, rctx: bytes) -> None:
        """Request a linearizable read point; it comes back as a ReadState carrying `rctx`."""
        self.raft.step(Message(MessageType.MSG_READ_INDEX, entries=(Entry(data=rctx),)))

    def bootstrap(self, peers: list[Peer]) -> None:
        """Initialize a brand-new cluster's log with one committed ADD_NODE entry per peer.

        Call once, on empty storage, before the first Ready. The entries come out in the first
        Ready (to persist and apply like any others).
        """
        if not peers:
            raise RaftError("must provide at least one peer to Bootstrap")
        if self.raft.raft_log.storage.last_index() != 0:
            raise RaftError("can't bootstrap a nonempty Storage")
        # The first Ready must carry the hard state even if it looks like the initial one.
        self._prev_hard_state = EMPTY_HARD_STATE
        self.raft.become_follower(1, NONE)
        ents = [
            Entry(
                term=1,
                index=i + 1,
                type=EntryType.CONF_CHANGE_V2,
                data=ConfChange(
                    changes=(ConfChangeSingle(ConfChangeType.ADD_NODE, peer.id),),
                    context=peer.context,
                ).encode(),
            )
            for i, peer in enumerate(peers)
        ]
        self.raft.raft_log.append(ents)
        # The entries are committed by fiat (there is no one else to agree with), and applied
        # to the tracker right away, so the node knows its peers before it first campaigns.
        # The application sees them as committed entries and applies them again, which is a
        # no-op for the tracker.
        self.raft.raft_log.committed = len(ents)
        for peer in peers:
            self.raft.apply_conf_change(
                ConfChange(changes=(ConfChangeSingle(ConfChangeType.ADD_NODE, peer.id),))
            )

    # ------------------------------------------------------------------ outputs

    def ready(self) -> Ready:
        """Everything to persist, send and apply since the last Ready (see module doc)."""
        r = self.raft
        log = r.raft_log
        soft = r.soft_state()
        hard = r.hard_state()
        entries = tuple(log.unstable_entries())
        snap = log.unstable.snapshot
        rd = Ready(
            soft_state=soft if soft != self._prev_soft_state else None,
            hard_state=hard if hard != self._prev_hard_state else EMPTY_HARD_STATE,
            read_states=tuple(r.read_states),
            entries=entries,
            snapshot=snap if snap is not None else EMPTY_SNAPSHOT,
            committed_entries=tuple(log.next_ents()),
            messages=tuple(r.msgs),
            must_sync=must_sync(hard, self._prev_hard_state, len(entries)),
        )
        # Accept: what was handed out is the application's now.
        if rd.committed_entries:
            r.applying = rd.committed_entries[-1].index
        if rd.soft_state is not None:
            self._prev_soft_state = rd.soft_state
        r.read_states = []
        r.msgs = []
        return rd

    def has_ready(self) -> bool:
        """Whether `ready()` would return anything."""
        # Called in every loop iteration of the server: compare fields rather than build the
        # soft and hard state values.
        r = self.raft
        if r.msgs or r.read_states:
            return True
        ps = self._prev_soft_state
        if r.lead != ps.lead or r.state != ps.raft_state:
            return True
        log = r.raft_log
        ph = self._prev_hard_state
        if (r.term, r.vote, log.committed) != (ph.term, ph.vote, ph.commit) and (
            r.term or r.vote or log.committed
        ):
            return True
        if log.unstable.entries or log.has_pending_snapshot():
            return True
        return log.has_next_ents()

    def advance(self, rd: Ready) -> None:
        """Acknowledge that `rd` was persisted, sent and applied."""
        if not rd.hard_state.is_empty():
            self._prev_hard_state = rd.hard_state
        self.raft.advance(rd.committed_entries, rd.entries, rd.snapshot)

    # ------------------------------------------------------------------ inspection

    def status(self) -> Status:
        """Full status; includes copies of every peer's progress when leader."""
        return get_status(self.raft)

    def basic_status(self) -> BasicStatus:
        """Status without the progress map and configuration (cheap)."""
        return get_basic_status(self.raft)
