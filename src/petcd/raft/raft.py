"""The raft consensus state machine (etcd's raft.go), without I/O, clock or threads.

Theory of operation
-------------------
A `Raft` is driven by three inputs only: `tick()` (one unit of logical time), `step(message)`
(a message from a peer, or a local request such as a proposal) and the application's
acknowledgement that it has persisted and applied what a `Ready` asked for (`advance`, called by
`RawNode`). Its outputs are accumulated in fields the RawNode drains into a `Ready`: `msgs`
(messages to send), the unstable part of `raft_log` (entries and snapshot to persist), the hard
state (term, vote, commit) and `read_states`.

Each node is a follower, pre-candidate, candidate or leader. The role decides two things, which
are swapped together when the role changes (`become_*`): the tick function (`_tick_election` for
everyone but the leader, `_tick_heartbeat` for the leader) and the step function
(`_step_follower`, `_step_candidate` for both kinds of candidates, `_step_leader`). `step()` itself
first handles what is common to every role: comparing the message's term with ours (stepping down
on a higher term, answering or ignoring a lower one), elections (`MSG_HUP`) and vote requests.

Elections: a follower that hears nothing from a leader for a randomized timeout in
[election_tick, 2*election_tick) campaigns. With pre-vote it first asks for votes for term+1
without changing its term, so a partitioned node cannot disrupt the cluster by inflating terms.
With check-quorum, a leader that has not heard from a quorum within an election timeout steps
down, and a node that heard from a leader recently ignores vote requests (leader stickiness),
unless the request is part of a leadership transfer.

Replication: the leader keeps a `Progress` per peer (tracker.py). A peer in PROBE receives at
most one append per heartbeat round until it answers; in REPLICATE appends are pipelined, bounded
by an inflight window (count and bytes); in SNAPSHOT nothing is sent until the snapshot is
reported. A rejected append carries a hint (index, term) so the leader skips whole terms of
divergent log at once (etcd-io/raft's fast backtracking). The leader only counts replicas of
entries of its current term to move the commit index (Raft paper section 5.4.2).

Membership changes travel through the log (entries of type CONF_CHANGE_V2) and take effect when
the application applies them (`apply_conf_change`). One change may be pending at a time
(`pending_conf_index`); joint configurations entered with auto-leave are left by the leader on
its own once applied.

Linearizable reads (ReadIndex): in SAFE mode the leader records its commit index, confirms its
leadership with a heartbeat round that a quorum acknowledges, then hands out the read point. It
does so only once it has committed an entry of its own term; requests arriving earlier are
queued. In LEASE_BASED mode it answers at once, trusting check-quorum's lease.

Log lines follow etcd's wording ("1 became leader at term 2") with IDs in hex.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from petcd.raft import confchange
from petcd.raft.config import NO_LIMIT, Config, Logger
from petcd.raft.describe import describe_conf_change, describe_conf_state, msg_type_name
from petcd.raft.errors import (
    Compacted,
    ProposalDropped,
    RaftPanic,
    SnapshotTemporarilyUnavailable,
    Unavailable,
)
from petcd.raft.log import RaftLog
from petcd.raft.quorum import VoteResult
from petcd.raft.read_only import ReadOnly
from petcd.raft.tracker import Inflights, Progress, ProgressState, ProgressTracker
from petcd.raft.types import (
    NONE,
    ConfChange,
    ConfChangeTransition,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadOnlyOption,
    ReadState,
    Snapshot,
    SoftState,
    StateType,
    vote_resp_type,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from petcd.raft.tracker import TrackerConfig

    StepFunc = Callable[[Message], None]

MT = MessageType

# A campaign's kind; the transfer kind travels as the context of the vote request, which is how
# a voter knows to skip the leader-lease check.
CAMPAIGN_PRE_ELECTION = b"CampaignPreElection"
CAMPAIGN_ELECTION = b"CampaignElection"
CAMPAIGN_TRANSFER = b"CampaignTransfer"

_VOTE_MESSAGES = frozenset({MT.MSG_VOTE, MT.MSG_VOTE_RESP, MT.MSG_PRE_VOTE, MT.MSG_PRE_VOTE_RESP})
_CONF_CHANGE_TYPES = frozenset({EntryType.CONF_CHANGE, EntryType.CONF_CHANGE_V2})


def payload_size(e: Entry) -> int:
    """The size that counts against max_uncommitted_entries_size and the inflight byte window."""
    return len(e.data)


def payloads_size(ents: Sequence[Entry]) -> int:
    return sum(len(e.data) for e in ents)


def _readdress(m: Message, to: int, from_: int, term: int) -> Message:
    # Messages are frozen; this is a faster dataclasses.replace for the three routing fields.
    return Message(
        m.type,
        to,
        from_,
        term,
        m.log_term,
        m.index,
        m.entries,
        m.commit,
        m.snapshot,
        m.reject,
        m.reject_hint,
        m.context,
    )


def assert_conf_states_equivalent(cs1: ConfState, cs2: ConfState) -> None:
    if not cs1.equivalent(cs2):
        raise RaftPanic(
            "ConfStates not equivalent after sorting:\n"
            f"{describe_conf_state(cs1)}\n{describe_conf_state(cs2)}"
        )


class Raft:
    """One raft peer's protocol state. Internal: applications use `RawNode`."""

    def __init__(self, c: Config, *, peers: Sequence[int] = (), learners: Sequence[int] = ()) -> None:
        """Build from `c.storage`'s initial state.

        `peers` / `learners` (tests only, as etcd's unexported Config.peers) give the initial
        configuration when the storage has none.
        """
        c.validate()
        raft_log = RaftLog(c.storage, c.logger, c.max_committed_size_per_ready)
        hs, cs = c.storage.initial_state()
        if peers or learners:
            if cs.voters or cs.learners:
                raise RaftPanic("cannot specify both Raft(peers, learners) and ConfState.(voters, learners)")
            cs = ConfState(voters=tuple(peers), learners=tuple(learners))

        self.id = c.id
        self.term = 0
        self.vote = NONE
        self.read_states: list[ReadState] = []
        self.raft_log = raft_log
        self.max_msg_size = c.max_size_per_msg
        self.max_uncommitted_size = c.max_uncommitted_entries_size
        self._max_inflight = c.max_inflight_msgs
        self._max_inflight_bytes = c.max_inflight_bytes
        self.trk = ProgressTracker(c.max_inflight_msgs, c.max_inflight_bytes)
        self.state = StateType.FOLLOWER
        self.is_learner = False
        # Outgoing messages, drained by RawNode.ready().
        self.msgs: list[Message] = []
        self.lead = NONE
        # Non-zero while a leadership transfer to that node is under way (thesis 3.10).
        self.lead_transferee = NONE
        # Invariant (leader): no conf change may be proposed while applied < pending_conf_index.
        self.pending_conf_index = 0
        # Leader only: payload bytes appended in this term and not yet committed (an estimate
        # that never overestimates), bounded by max_uncommitted_size.
        self.uncommitted_size = 0
        self.read_only = ReadOnly(c.read_only_option)
        # Ticks since the last election timeout (leader, candidate) or since we last heard from
        # a valid leader (follower).
        self.election_elapsed = 0
        # Leader only: ticks since the last heartbeat round.
        self.heartbeat_elapsed = 0
        self.check_quorum = c.check_quorum
        self.pre_vote = c.pre_vote
        self.heartbeat_timeout = c.heartbeat_tick
        self.election_timeout = c.election_tick
        # In [election_timeout, 2*election_timeout), redrawn on every reset.
        self.randomized_election_timeout = 0
        self.disable_proposal_forwarding = c.disable_proposal_forwarding
        self.rand = c.rand
        self.logger: Logger = c.logger
        # ReadIndex requests that arrived before the leader committed an entry of its term.
        self.pending_read_index_messages: list[Message] = []
        # The last committed index handed to the application in a Ready not yet advanced
        # (maintained by RawNode). Invariant: applied <= applying <= committed.
        self.applying = 0
        self._peers: list[int] = []
        self._peers_src: dict[int, Progress] = {}
        self._peers_self = NONE
        self._tick: Callable[[], None] = self._tick_election
        self._step: StepFunc = self._step_follower

        cfg, prs = confchange.restore(confchange.Changer(self.trk, raft_log.last_index()), cs)
        assert_conf_states_equivalent(cs, self.switch_to_config(cfg, prs))

        if not hs.is_empty():
            self.load_state(hs)
        if c.applied > 0:
            raft_log.applied_to(c.applied)
        self.become_follower(self.term, NONE)

        self.logger.info(
            "newRaft %x [peers: [%s], term: %d, commit: %d, applied: %d, lastindex: %d, lastterm: %d]",
            self.id,
            ",".join(f"{n:x}" for n in self.trk.voter_nodes()),
            self.term,
            self.raft_log.committed,
            self.raft_log.applied,
            self.raft_log.last_index(),
            self.raft_log.last_term(),
        )

    # ------------------------------------------------------------------ state views

    def has_leader(self) -> bool:
        return self.lead != NONE

    def soft_state(self) -> SoftState:
        return SoftState(lead=self.lead, raft_state=self.state)

    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.raft_log.committed)

    def tick(self) -> None:
        self._tick()

    # ------------------------------------------------------------------ sending

    def send(self, m: Message) -> None:
        """Queue `m` for sending, stamping our ID (unless it has a sender) and, for all but votes,
        proposals and read requests, our term."""
        if m.type in _VOTE_MESSAGES:
            # Vote traffic carries the term of the election it is about, set by the caller.
            if m.term == 0:
                raise RaftPanic(f"term should be set when sending {msg_type_name(m.type)}")
            m = _readdress(m, m.to, m.from_ or self.id, m.term)
        else:
            if m.term != 0:
                raise RaftPanic(f"term should not be set when sending {msg_type_name(m.type)} (was {m.term})")
            # Proposals and read requests forwarded to the leader are local in spirit: they
            # carry no term so that they are not dropped as stale on the way.
            term = 0 if m.type in (MT.MSG_PROP, MT.MSG_READ_INDEX) else self.term
            # A message we forward keeps its sender: a forwarded MsgTransferLeader names the
            # transferee in from_, a forwarded MsgReadIndex the node to answer.
            m = _readdress(m, m.to, m.from_ or self.id, term)
        self.msgs.append(m)

    def send_append(self, to: int) -> None:
        self.maybe_send_append(to, True)

    def maybe_send_append(self, to: int, send_if_empty: bool) -> bool:
        """Send `to` the entries it lacks (or a snapshot). Returns whether a message went out.

        With `send_if_empty` False, nothing is sent when there are no entries to send (an empty
        append is only worth it to carry a commit index).
        """
        pr = self.trk.progress[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        log = self.raft_log
        if prev_index < log.first_index() - 1:
            # The entries the peer needs were compacted away: only a snapshot can help.
            if not send_if_empty:
                return False
            return self._maybe_send_snapshot(to, pr)
        try:
            prev_term = log.term(prev_index)
            ents: list[Entry] = []
            # A replicating peer with a full window still gets empty appends: if every inflight
            # append was lost, the answer to an empty one is what unblocks it.
            if pr.state != ProgressState.REPLICATE or not pr.inflights.full():
                ents = log.entries(pr.next, self.max_msg_size)
        except (Compacted, Unavailable):
            if not send_if_empty:
                return False
            return self._maybe_send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        committed = log.committed
        # Hot path: built stamped (from_, term) instead of going through send().
        self.msgs.append(
            Message(
                MT.MSG_APP,
                to=to,
                from_=self.id,
                term=self.term,
                index=prev_index,
                log_term=prev_term,
                entries=tuple(ents),
                commit=committed,
            )
        )
        pr.sent_entries(len(ents), payloads_size(ents))
        pr.sent_commit(committed)
        return True

    def _maybe_send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            self.logger.debug("ignore sending snapshot to %x since it is not recently active", to)
            return False
        try:
            snapshot = self.raft_log.snapshot()
        except SnapshotTemporarilyUnavailable:
            self.logger.debug(
                "%x failed to send snapshot to %x because snapshot is temporarily unavailable",
                self.id,
                to,
            )
            return False
        if snapshot.is_empty():
            raise RaftPanic("need non-empty snapshot")
        sindex, sterm = snapshot.metadata.index, snapshot.metadata.term
        self.logger.debug(
            "%x [firstindex: %d, commit: %d] sent snapshot[index: %d, term: %d] to %x [%s]",
            self.id,
            self.raft_log.first_index(),
            self.raft_log.committed,
            sindex,
            sterm,
            to,
            pr,
        )
        pr.become_snapshot(sindex)
        self.logger.debug("%x paused sending replication messages to %x [%s]", self.id, to, pr)
        self.send(Message(MT.MSG_SNAP, to=to, snapshot=snapshot))
        return True

    def send_heartbeat(self, to: int, ctx: bytes) -> None:
        pr = self.trk.progress[to]
        # Never tell a follower to commit beyond what it is known to hold: its log may still
        # differ from ours past its match index.
        commit = min(pr.match, self.raft_log.committed)
        self.send(Message(MT.MSG_HEARTBEAT, to=to, commit=commit, context=ctx))
        pr.sent_commit(commit)

    def bcast_append(self) -> None:
        for pid in self._peer_ids():
            self.send_append(pid)

    def bcast_heartbeat(self) -> None:
        self.bcast_heartbeat_with_ctx(self.read_only.last_pending_request_ctx())

    def bcast_heartbeat_with_ctx(self, ctx: bytes) -> None:
        for pid in self._peer_ids():
            self.send_heartbeat(pid, ctx)

    def _peer_ids(self) -> list[int]:
        """Every other member, in ID order.

        Cached per progress map: a configuration change installs a new map (switch_to_config),
        and the cache holds a reference to the map it was computed from, so identity is a
        sound test (an id() could be reused by a new map once the old one is freed).
        """
        prs = self.trk.progress
        if prs is not self._peers_src or len(prs) != len(self._peers_src) or self.id != self._peers_self:
            self._peers_src = prs
            self._peers_self = self.id
            self._peers = [pid for pid in sorted(prs) if pid != self.id]
        return self._peers

    # ------------------------------------------------------------------ Ready acknowledgement

    def advance(
        self,
        committed_entries: Sequence[Entry],
        entries: Sequence[Entry],
        snapshot: Snapshot,
    ) -> None:
        """The application persisted `entries` / `snapshot` and applied `committed_entries`."""
        if committed_entries:
            self.applied_to(committed_entries[-1].index)
        elif not snapshot.is_empty():
            self.applied_to(snapshot.metadata.index)
        self.applying = self.raft_log.applied
        if self.uncommitted_size:  # only a leader counts it; spare followers summing payloads
            self.reduce_uncommitted_size(payloads_size(committed_entries))
        if entries:
            last = entries[-1]
            self.raft_log.stable_to(last.index, last.term)
        if not snapshot.is_empty():
            self.raft_log.stable_snap_to(snapshot.metadata.index)

    def applied_to(self, index: int) -> None:
        new_applied = max(index, self.raft_log.applied)
        self.raft_log.applied_to(new_applied)
        if (
            self.trk.config.auto_leave
            and new_applied >= self.pending_conf_index
            and self.state == StateType.LEADER
        ):
            # Leave the joint configuration now that entering it is applied. Empty data (an
            # empty ConfChange) has payload size 0, so the uncommitted-size limit cannot refuse
            # it; a leadership transfer can, and then the next advance tries again.
            m = Message(MT.MSG_PROP, entries=(Entry(type=EntryType.CONF_CHANGE_V2),))
            try:
                self.step(m)
            except ProposalDropped as e:
                self.logger.debug(
                    "not initiating automatic transition out of joint configuration %s: %s",
                    self.trk.config,
                    e,
                )
            else:
                self.logger.info(
                    "initiating automatic transition out of joint configuration %s", self.trk.config
                )

    def maybe_commit(self) -> bool:
        """Move the commit index to what a quorum holds (current-term entries only)."""
        return self.raft_log.maybe_commit(self.trk.committed(), self.term)

    # ------------------------------------------------------------------ role changes

    def reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.trk.reset_votes()
        last = self.raft_log.last_index()
        progress = self.trk.progress
        for pid, pr in progress.items():
            progress[pid] = Progress(
                match=last if pid == self.id else 0,
                next=last + 1,
                inflights=Inflights(self._max_inflight, self._max_inflight_bytes),
                is_learner=pr.is_learner,
            )
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.read_only = ReadOnly(self.read_only.option)

    def append_entry(self, *es: Entry) -> bool:
        """Append entries at our term as leader; False if the uncommitted-size limit refuses."""
        li = self.raft_log.last_index()
        term = self.term
        ents = [Entry(term, li + 1 + i, e.type, e.data) for i, e in enumerate(es)]
        if not self.increase_uncommitted_size(ents):
            self.logger.warning(
                "%x appending new entries to log would exceed uncommitted entry size limit; "
                "dropping proposal",
                self.id,
            )
            return False
        li = self.raft_log.append(ents)
        # The leader's own log counts towards the quorum at once: it persists its entries in
        # parallel with sending them (the Ready contract lets it send before its fsync).
        self.trk.progress[self.id].maybe_update(li)
        self.maybe_commit()
        return True

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.past_election_timeout():
            self.election_elapsed = 0
            self.step(Message(MT.MSG_HUP, from_=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(MT.MSG_CHECK_QUORUM, from_=self.id))
            # A transfer that did not finish within an election timeout is given up, and the
            # leader takes proposals again.
            if self.state == StateType.LEADER and self.lead_transferee != NONE:
                self.abort_leader_transfer()
        if self.state != StateType.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(MT.MSG_BEAT, from_=self.id))

    def become_follower(self, term: int, lead: int) -> None:
        self._step = self._step_follower
        self.reset(term)
        self._tick = self._tick_election
        self.lead = lead
        self.state = StateType.FOLLOWER
        self.logger.info("%x became follower at term %d", self.id, self.term)

    def become_candidate(self) -> None:
        if self.state == StateType.LEADER:
            raise RaftPanic("invalid transition [leader -> candidate]")
        self._step = self._step_candidate
        self.reset(self.term + 1)
        self._tick = self._tick_election
        self.vote = self.id
        self.state = StateType.CANDIDATE
        self.logger.info("%x became candidate at term %d", self.id, self.term)

    def become_pre_candidate(self) -> None:
        if self.state == StateType.LEADER:
            raise RaftPanic("invalid transition [leader -> pre-candidate]")
        # Neither the term nor the vote changes: that is the point of pre-vote.
        self._step = self._step_candidate
        self.trk.reset_votes()
        self._tick = self._tick_election
        self.lead = NONE
        self.state = StateType.PRE_CANDIDATE
        self.logger.info("%x became pre-candidate at term %d", self.id, self.term)

    def become_leader(self) -> None:
        if self.state == StateType.FOLLOWER:
            raise RaftPanic("invalid transition [follower -> leader]")
        self._step = self._step_leader
        self.reset(self.term)
        self._tick = self._tick_heartbeat
        self.lead = self.id
        self.state = StateType.LEADER
        pr = self.trk.progress[self.id]
        pr.become_replicate()
        pr.recent_active = True
        # There may be an unapplied conf change anywhere in the log we inherited; refusing
        # conf changes until everything up to here is applied is safe and cheap.
        self.pending_conf_index = self.raft_log.last_index()
        if not self.append_entry(Entry()):
            raise RaftPanic("empty entry was dropped")
        self.logger.info("%x became leader at term %d", self.id, self.term)

    def hup(self, t: bytes) -> None:
        if self.state == StateType.LEADER:
            self.logger.debug("%x ignoring MsgHup because already leader", self.id)
            return
        if not self.promotable():
            self.logger.warning("%x is unpromotable and can not campaign", self.id)
            return
        if self.has_unapplied_conf_changes():
            self.logger.warning(
                "%x cannot campaign at term %d since there are still pending configuration changes to apply",
                self.id,
                self.term,
            )
            return
        self.logger.info("%x is starting a new election at term %d", self.id, self.term)
        self.campaign(t)

    def has_unapplied_conf_changes(self) -> bool:
        log = self.raft_log
        if log.applied >= log.committed:
            return False
        # Entries below first_index are inside a snapshot, whose configuration is already in force.
        lo = max(log.applied + 1, log.first_index())
        if lo > log.committed:
            return False
        ents = log.slice(lo, log.committed + 1, NO_LIMIT)
        return any(e.type in _CONF_CHANGE_TYPES for e in ents)

    def campaign(self, t: bytes) -> None:
        if not self.promotable():
            self.logger.warning("%x is unpromotable; campaign() should have been called", self.id)
        if t == CAMPAIGN_PRE_ELECTION:
            self.become_pre_candidate()
            vote_msg = MT.MSG_PRE_VOTE
            # Pre-votes ask about the term we would campaign in, without moving to it yet.
            term = self.term + 1
        else:
            self.become_candidate()
            vote_msg = MT.MSG_VOTE
            term = self.term
        _, _, res = self.poll(self.id, vote_resp_type(vote_msg), True)
        if res == VoteResult.VOTE_WON:
            # A single-voter configuration wins on its own vote.
            if t == CAMPAIGN_PRE_ELECTION:
                self.campaign(CAMPAIGN_ELECTION)
            else:
                self.become_leader()
            return
        last_index, last_term = self.raft_log.last_index(), self.raft_log.last_term()
        ctx = CAMPAIGN_TRANSFER if t == CAMPAIGN_TRANSFER else b""
        for pid in sorted(self.trk.config.voters.ids()):
            if pid == self.id:
                continue
            self.logger.info(
                "%x [logterm: %d, index: %d] sent %s request to %x at term %d",
                self.id,
                last_term,
                last_index,
                msg_type_name(vote_msg),
                pid,
                self.term,
            )
            self.send(Message(vote_msg, to=pid, term=term, index=last_index, log_term=last_term, context=ctx))

    def poll(self, node_id: int, t: MessageType, v: bool) -> tuple[int, int, VoteResult]:
        if v:
            self.logger.info(
                "%x received %s from %x at term %d", self.id, msg_type_name(t), node_id, self.term
            )
        else:
            self.logger.info(
                "%x received %s rejection from %x at term %d",
                self.id,
                msg_type_name(t),
                node_id,
                self.term,
            )
        self.trk.record_vote(node_id, v)
        return self.trk.tally_votes()

    # ------------------------------------------------------------------ stepping

    def step(self, m: Message) -> None:
        """Advance the state machine with `m`. Raises ProposalDropped for refused proposals."""
        if m.term == 0:
            pass  # local message
        elif m.term > self.term:
            if m.type in (MT.MSG_VOTE, MT.MSG_PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum and self.lead != NONE and self.election_elapsed < self.election_timeout
                )
                if not force and in_lease:
                    # We heard from a leader within the minimum election timeout: keep it
                    # (leader stickiness); neither the term nor the vote changes.
                    self.logger.info(
                        "%x [logterm: %d, index: %d, vote: %x] ignored %s from %x "
                        "[logterm: %d, index: %d] at term %d: lease is not expired "
                        "(remaining ticks: %d)",
                        self.id,
                        self.raft_log.last_term(),
                        self.raft_log.last_index(),
                        self.vote,
                        msg_type_name(m.type),
                        m.from_,
                        m.log_term,
                        m.index,
                        self.term,
                        self.election_timeout - self.election_elapsed,
                    )
                    return
            if m.type == MT.MSG_PRE_VOTE:
                pass  # never change our term in response to a pre-vote
            elif m.type == MT.MSG_PRE_VOTE_RESP and not m.reject:
                # A granted pre-vote carries the term we asked about; we move to it only when
                # a quorum grants and we campaign for real.
                pass
            else:
                self.logger.info(
                    "%x [term: %d] received a %s message with higher term from %x [term: %d]",
                    self.id,
                    self.term,
                    msg_type_name(m.type),
                    m.from_,
                    m.term,
                )
                if m.type in (MT.MSG_APP, MT.MSG_HEARTBEAT, MT.MSG_SNAP):
                    self.become_follower(m.term, m.from_)
                else:
                    self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (MT.MSG_HEARTBEAT, MT.MSG_APP):
                # A stale leader (or we are the one that inflated its term while partitioned).
                # Answering with our higher term makes a stale leader step down; when we are the
                # stale one, it is how the cluster frees us, since with check-quorum / pre-vote
                # our vote requests alone would be ignored.
                self.send(Message(MT.MSG_APP_RESP, to=m.from_))
            elif m.type == MT.MSG_PRE_VOTE:
                # Reject explicitly: a node that was a candidate before pre-vote was enabled
                # may have a higher term but a shorter log, and silence would deadlock it.
                self.logger.info(
                    "%x [logterm: %d, index: %d, vote: %x] rejected %s from %x "
                    "[logterm: %d, index: %d] at term %d",
                    self.id,
                    self.raft_log.last_term(),
                    self.raft_log.last_index(),
                    self.vote,
                    msg_type_name(m.type),
                    m.from_,
                    m.log_term,
                    m.index,
                    self.term,
                )
                self.send(Message(MT.MSG_PRE_VOTE_RESP, to=m.from_, term=self.term, reject=True))
            else:
                self.logger.info(
                    "%x [term: %d] ignored a %s message with lower term from %x [term: %d]",
                    self.id,
                    self.term,
                    msg_type_name(m.type),
                    m.from_,
                    m.term,
                )
            return

        if m.type == MT.MSG_HUP:
            self.hup(CAMPAIGN_PRE_ELECTION if self.pre_vote else CAMPAIGN_ELECTION)
        elif m.type in (MT.MSG_VOTE, MT.MSG_PRE_VOTE):
            self._handle_vote_request(m)
        else:
            self._step(m)

    def _handle_vote_request(self, m: Message) -> None:
        # We can vote if this repeats a vote we cast, if we have neither voted nor heard of a
        # leader in this term, or if it is a pre-vote for a future term.
        can_vote = (
            self.vote == m.from_
            or (self.vote == NONE and self.lead == NONE)
            or (m.type == MT.MSG_PRE_VOTE and m.term > self.term)
        )
        last_index, last_term = self.raft_log.last_index(), self.raft_log.last_term()
        # Learners answer too: a learner promoted in a config it has not applied yet may be
        # needed for a quorum.
        if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
            self.logger.info(
                "%x [logterm: %d, index: %d, vote: %x] cast %s for %x [logterm: %d, index: %d] at term %d",
                self.id,
                last_term,
                last_index,
                self.vote,
                msg_type_name(m.type),
                m.from_,
                m.log_term,
                m.index,
                self.term,
            )
            # The response carries the request's term, not ours: for a pre-vote ours may be
            # lower, and the candidate would drop the answer as stale.
            self.send(Message(vote_resp_type(m.type), to=m.from_, term=m.term))
            if m.type == MT.MSG_VOTE:
                # Only real votes are recorded.
                self.election_elapsed = 0
                self.vote = m.from_
        else:
            self.logger.info(
                "%x [logterm: %d, index: %d, vote: %x] rejected %s from %x [logterm: %d, "
                "index: %d] at term %d",
                self.id,
                last_term,
                last_index,
                self.vote,
                msg_type_name(m.type),
                m.from_,
                m.log_term,
                m.index,
                self.term,
            )
            self.send(Message(vote_resp_type(m.type), to=m.from_, term=self.term, reject=True))

    # --- leader

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MT.MSG_BEAT:
            self.bcast_heartbeat()
            return
        if t == MT.MSG_CHECK_QUORUM:
            self._check_quorum()
            return
        if t == MT.MSG_PROP:
            self._propose(m)
            return
        if t == MT.MSG_READ_INDEX:
            self._leader_read_index(m)
            return

        pr = self.trk.progress.get(m.from_)
        if pr is None:
            self.logger.debug("%x no progress available for %x", self.id, m.from_)
            return
        if t == MT.MSG_APP_RESP:
            self._handle_append_response(m, pr)
        elif t == MT.MSG_HEARTBEAT_RESP:
            self._handle_heartbeat_response(m, pr)
        elif t == MT.MSG_SNAP_STATUS:
            if pr.state != ProgressState.SNAPSHOT:
                return
            if not m.reject:
                pr.become_probe()
                self.logger.debug(
                    "%x snapshot succeeded, resumed sending replication messages to %x [%s]",
                    self.id,
                    m.from_,
                    pr,
                )
            else:
                # Clear the pending snapshot first, or probing would start from its index
                # although it was never applied.
                pr.pending_snapshot = 0
                pr.become_probe()
                self.logger.debug(
                    "%x snapshot failed, resumed sending replication messages to %x [%s]",
                    self.id,
                    m.from_,
                    pr,
                )
            # After success, wait for the follower's MsgAppResp before the next append; after
            # failure, wait for a heartbeat round before trying again.
            pr.msg_app_flow_paused = True
        elif t == MT.MSG_UNREACHABLE:
            # While replicating optimistically, an unreachable peer most likely lost appends.
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
            self.logger.debug(
                "%x failed to send message to %x because it is unreachable [%s]",
                self.id,
                m.from_,
                pr,
            )
        elif t == MT.MSG_TRANSFER_LEADER:
            self._handle_transfer_leader(m, pr)

    def _check_quorum(self) -> None:
        pr_self = self.trk.progress.get(self.id)
        if pr_self is not None:
            pr_self.recent_active = True
        if not self.trk.quorum_active():
            self.logger.warning("%x stepped down to follower since quorum is not active", self.id)
            self.become_follower(self.term, NONE)
        # Everyone but us must prove activity again before the next check.
        for pid, pr in self.trk.progress.items():
            if pid != self.id:
                pr.recent_active = False

    def _propose(self, m: Message) -> None:
        if not m.entries:
            raise RaftPanic(f"{self.id:x} stepped empty MsgProp")
        if self.id not in self.trk.progress:
            # We were removed from the configuration while leading.
            raise ProposalDropped()
        if self.lead_transferee != NONE:
            self.logger.debug(
                "%x [term %d] transfer leadership to %x is in progress; dropping proposal",
                self.id,
                self.term,
                self.lead_transferee,
            )
            raise ProposalDropped()
        entries = list(m.entries)
        for i, e in enumerate(entries):
            if e.type not in _CONF_CHANGE_TYPES:
                continue
            try:
                cc = ConfChange.decode(e.data)
            except ValueError as err:
                raise RaftPanic(f"cannot decode conf change: {err}") from err
            already_pending = self.pending_conf_index > self.raft_log.applied
            already_joint = bool(self.trk.config.voters.outgoing)
            wants_leave_joint = not cc.changes
            refused = ""
            if already_pending:
                refused = (
                    f"possible unapplied conf change at index {self.pending_conf_index} "
                    f"(applied to {self.raft_log.applied})"
                )
            elif already_joint and not wants_leave_joint:
                refused = "must transition out of joint config first"
            elif not already_joint and wants_leave_joint:
                refused = "not in joint state; refusing empty conf change"
            if refused:
                self.logger.info(
                    "%x ignoring conf change %s at config %s: %s",
                    self.id,
                    describe_conf_change(cc),
                    self.trk.config,
                    refused,
                )
                # The slot stays (the proposer's index accounting does not shift); it just
                # carries nothing.
                entries[i] = Entry(type=EntryType.NORMAL)
            else:
                self.pending_conf_index = self.raft_log.last_index() + i + 1
        if not self.append_entry(*entries):
            raise ProposalDropped()
        self.bcast_append()

    def _leader_read_index(self, m: Message) -> None:
        if self.trk.is_singleton():
            # Only one voter (us): our commit index is the read point.
            resp = self.response_to_read_index_req(m, self.raft_log.committed)
            if resp is not None:
                self.send(resp)
            return
        # Until an entry of our term is committed our commit index may lag behind the previous
        # leader's, so it is no read point yet.
        if not self.committed_entry_in_current_term():
            self.pending_read_index_messages.append(m)
            return
        self.send_msg_read_index_response(m)

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            self.logger.debug(
                "%x received MsgAppResp(rejected, hint: (index %d, term %d)) from %x for index %d",
                self.id,
                m.reject_hint,
                m.log_term,
                m.from_,
                m.index,
            )
            next_probe_idx = m.reject_hint
            if m.log_term > 0:
                # The follower has term m.log_term at m.reject_hint. Every index where our term
                # is above that cannot match (terms only grow along a log), so probe at the
                # last index where ours is <= it: at most one probe per term of our log.
                next_probe_idx, _ = self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe_idx):
                self.logger.debug("%x decreased progress of %x to [%s]", self.id, m.from_, pr)
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self.send_append(m.from_)
            return

        # A response equal to match also moves a probing peer back to replicating (it is what
        # a caught-up follower answers after report_unreachable).
        if not (pr.maybe_update(m.index) or (pr.match == m.index and pr.state == ProgressState.PROBE)):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT and pr.match + 1 >= self.raft_log.first_index():
            # Whatever index the snapshot was actually applied at, the follower can now be
            # caught up from the log; go through probe so pending_snapshot is accounted for.
            self.logger.debug(
                "%x recovered from needing snapshot, resumed sending replication messages to %x [%s]",
                self.id,
                m.from_,
                pr,
            )
            pr.become_probe()
            pr.become_replicate()
        elif pr.state == ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)

        if self.maybe_commit():
            # An entry of our term is committed now, so held-back reads may proceed.
            self.release_pending_read_index_messages()
            self.bcast_append()
        elif self.id != m.from_ and pr.can_bump_commit(self.raft_log.committed):
            # The follower may not know the latest commit index yet; tell it now rather than
            # at the next heartbeat.
            self.send_append(m.from_)
        # The window may have opened for several messages at once.
        if self.id != m.from_:
            while self.maybe_send_append(m.from_, False):
                pass
        if m.from_ == self.lead_transferee and pr.match == self.raft_log.last_index():
            self.logger.info("%x sent MsgTimeoutNow to %x after received MsgAppResp", self.id, m.from_)
            self.send_timeout_now(m.from_)

    def _handle_heartbeat_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        pr.msg_app_flow_paused = False
        # Even a paused (full window) peer gets an append here, possibly empty: if every
        # inflight append was lost, its answer is what frees the window. A caught-up peer in
        # PROBE (after report_unreachable) gets one too, to move back to REPLICATE.
        if pr.match < self.raft_log.last_index() or pr.state == ProgressState.PROBE:
            self.send_append(m.from_)

        if self.read_only.option != ReadOnlyOption.SAFE or not m.context:
            return
        acks = self.read_only.recv_ack(m.from_, m.context)
        if self.trk.config.voters.vote_result(acks or {}) != VoteResult.VOTE_WON:
            return
        for rs in self.read_only.advance(m):
            resp = self.response_to_read_index_req(rs.req, rs.index)
            if resp is not None:
                self.send(resp)

    def _handle_transfer_leader(self, m: Message, pr: Progress) -> None:
        if pr.is_learner:
            self.logger.debug("%x is learner. Ignored transferring leadership", self.id)
            return
        lead_transferee = m.from_
        last_lead_transferee = self.lead_transferee
        if last_lead_transferee != NONE:
            if last_lead_transferee == lead_transferee:
                self.logger.info(
                    "%x [term %d] transfer leadership to %x is in progress, ignores request to same node %x",
                    self.id,
                    self.term,
                    lead_transferee,
                    lead_transferee,
                )
                return
            self.abort_leader_transfer()
            self.logger.info(
                "%x [term %d] abort previous transferring leadership to %x",
                self.id,
                self.term,
                last_lead_transferee,
            )
        if lead_transferee == self.id:
            self.logger.debug("%x is already leader. Ignored transferring leadership to self", self.id)
            return
        self.logger.info(
            "%x [term %d] starts to transfer leadership to %x", self.id, self.term, lead_transferee
        )
        # The transfer must finish within one election timeout (see _tick_heartbeat).
        self.election_elapsed = 0
        self.lead_transferee = lead_transferee
        if pr.match == self.raft_log.last_index():
            self.send_timeout_now(lead_transferee)
            self.logger.info(
                "%x sends MsgTimeoutNow to %x immediately as %x already has up-to-date log",
                self.id,
                lead_transferee,
                lead_transferee,
            )
        else:
            self.send_append(lead_transferee)

    # --- candidate and pre-candidate

    def _step_candidate(self, m: Message) -> None:
        # Only answers to our own kind of campaign count: as a candidate we may still receive
        # stale pre-vote answers of this term.
        my_vote_resp_type = (
            MT.MSG_PRE_VOTE_RESP if self.state == StateType.PRE_CANDIDATE else MT.MSG_VOTE_RESP
        )
        t = m.type
        if t == MT.MSG_PROP:
            self.logger.info("%x no leader at term %d; dropping proposal", self.id, self.term)
            raise ProposalDropped()
        if t == MT.MSG_APP:
            self.become_follower(m.term, m.from_)  # m.term == self.term here
            self.handle_append_entries(m)
        elif t == MT.MSG_HEARTBEAT:
            self.become_follower(m.term, m.from_)
            self.handle_heartbeat(m)
        elif t == MT.MSG_SNAP:
            self.become_follower(m.term, m.from_)
            self.handle_snapshot(m)
        elif t == my_vote_resp_type:
            gr, rj, res = self.poll(m.from_, t, not m.reject)
            self.logger.info(
                "%x has received %d %s votes and %d vote rejections",
                self.id,
                gr,
                msg_type_name(t),
                rj,
            )
            if res == VoteResult.VOTE_WON:
                if self.state == StateType.PRE_CANDIDATE:
                    self.campaign(CAMPAIGN_ELECTION)
                else:
                    self.become_leader()
                    self.bcast_append()
            elif res == VoteResult.VOTE_LOST:
                # A pre-vote response carries our future term; stay at ours.
                self.become_follower(self.term, NONE)
        elif t == MT.MSG_TIMEOUT_NOW:
            self.logger.debug(
                "%x [term %d state %s] ignored MsgTimeoutNow from %x",
                self.id,
                self.term,
                self.state,
                m.from_,
            )

    # --- follower

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MT.MSG_PROP:
            if self.lead == NONE:
                self.logger.info("%x no leader at term %d; dropping proposal", self.id, self.term)
                raise ProposalDropped()
            if self.disable_proposal_forwarding:
                self.logger.info(
                    "%x not forwarding to leader %x at term %d; dropping proposal",
                    self.id,
                    self.lead,
                    self.term,
                )
                raise ProposalDropped()
            self.send(_readdress(m, self.lead, m.from_, 0))
        elif t == MT.MSG_APP:
            self.election_elapsed = 0
            self.lead = m.from_
            self.handle_append_entries(m)
        elif t == MT.MSG_HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.from_
            self.handle_heartbeat(m)
        elif t == MT.MSG_SNAP:
            self.election_elapsed = 0
            self.lead = m.from_
            self.handle_snapshot(m)
        elif t == MT.MSG_TRANSFER_LEADER:
            if self.lead == NONE:
                self.logger.info("%x no leader at term %d; dropping leader transfer msg", self.id, self.term)
                return
            self.send(_readdress(m, self.lead, m.from_, 0))
        elif t == MT.MSG_TIMEOUT_NOW:
            self.logger.info(
                "%x [term %d] received MsgTimeoutNow from %x and starts an election to get leadership.",
                self.id,
                self.term,
                m.from_,
            )
            # Transfers skip pre-vote: the old leader asked for this, there is no partition
            # to guard against.
            self.hup(CAMPAIGN_TRANSFER)
        elif t == MT.MSG_READ_INDEX:
            if self.lead == NONE:
                self.logger.info("%x no leader at term %d; dropping index reading msg", self.id, self.term)
                return
            self.send(_readdress(m, self.lead, m.from_, 0))
        elif t == MT.MSG_READ_INDEX_RESP:
            if len(m.entries) != 1:
                self.logger.error(
                    "%x invalid format of MsgReadIndexResp from %x, entries count: %d",
                    self.id,
                    m.from_,
                    len(m.entries),
                )
                return
            self.read_states.append(ReadState(index=m.index, request_ctx=m.entries[0].data))

    # ------------------------------------------------------------------ follower handlers

    def handle_append_entries(self, m: Message) -> None:
        log = self.raft_log
        if m.index < log.committed:
            self.send(Message(MT.MSG_APP_RESP, to=m.from_, index=log.committed))
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self.msgs.append(
                Message(MT.MSG_APP_RESP, to=m.from_, from_=self.id, term=self.term, index=last_new)
            )
            return
        self.logger.debug(
            "%x [logterm: %d, index: %d] rejected MsgApp [logterm: %d, index: %d] from %x",
            self.id,
            log.zero_term_on_err_compacted(m.index),
            m.index,
            m.log_term,
            m.index,
            m.from_,
        )
        # Hint the leader at the largest (index, term) of ours with index <= m.index and term
        # <= m.log_term: our entries above it cannot match the leader's log, so a divergent
        # tail of higher terms is skipped in one round trip.
        hint_index = min(m.index, log.last_index())
        hint_index, hint_term = log.find_conflict_by_term(hint_index, m.log_term)
        self.send(
            Message(
                MT.MSG_APP_RESP,
                to=m.from_,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=hint_term,
            )
        )

    def handle_heartbeat(self, m: Message) -> None:
        self.raft_log.commit_to(m.commit)
        self.send(Message(MT.MSG_HEARTBEAT_RESP, to=m.from_, context=m.context))

    def handle_snapshot(self, m: Message) -> None:
        s = m.snapshot if m.snapshot is not None else Snapshot()
        sindex, sterm = s.metadata.index, s.metadata.term
        if self.restore(s):
            self.logger.info(
                "%x [commit: %d] restored snapshot [index: %d, term: %d]",
                self.id,
                self.raft_log.committed,
                sindex,
                sterm,
            )
            self.send(Message(MT.MSG_APP_RESP, to=m.from_, index=self.raft_log.last_index()))
        else:
            self.logger.info(
                "%x [commit: %d] ignored snapshot [index: %d, term: %d]",
                self.id,
                self.raft_log.committed,
                sindex,
                sterm,
            )
            self.send(Message(MT.MSG_APP_RESP, to=m.from_, index=self.raft_log.committed))

    def restore(self, s: Snapshot) -> bool:
        """Install snapshot `s` (log and configuration). False if it was stale or ignored."""
        meta = s.metadata
        if meta.index <= self.raft_log.committed:
            return False
        if self.state != StateType.FOLLOWER:
            # Defence in depth: only followers install snapshots.
            self.logger.warning("%x attempted to restore snapshot as leader; should never happen", self.id)
            self.become_follower(self.term + 1, NONE)
            return False
        if self.applying > self.raft_log.applied:
            # Committed entries handed out in a Ready are still being applied; if they hold a
            # conf change, switching to the snapshot's configuration now would make applying
            # it fail. Refuse: the leader sends the snapshot again.
            self.logger.info(
                "%x [applied: %d, applying: %d] ignored snapshot [index: %d, term: %d] while "
                "committed entries are being applied",
                self.id,
                self.raft_log.applied,
                self.applying,
                meta.index,
                meta.term,
            )
            return False
        cs = meta.conf_state
        if self.id not in (*cs.voters, *cs.learners, *cs.voters_outgoing):
            self.logger.warning(
                "%x attempted to restore snapshot but it is not in the ConfState %s; should never happen",
                self.id,
                describe_conf_state(cs),
            )
            return False
        if self.raft_log.match_term(meta.index, meta.term):
            # We already have the snapshot's last entry: just commit up to it.
            self.logger.info(
                "%x [commit: %d, lastindex: %d, lastterm: %d] fast-forwarded commit to snapshot "
                "[index: %d, term: %d]",
                self.id,
                self.raft_log.committed,
                self.raft_log.last_index(),
                self.raft_log.last_term(),
                meta.index,
                meta.term,
            )
            self.raft_log.commit_to(meta.index)
            return False

        self.raft_log.restore(s)
        self.trk = ProgressTracker(self._max_inflight, self._max_inflight_bytes)
        try:
            cfg, prs = confchange.restore(confchange.Changer(self.trk, self.raft_log.last_index()), cs)
        except Exception as e:  # a corrupt conf state: nothing sane is left to do
            raise RaftPanic(f"unable to restore config {describe_conf_state(cs)}: {e}") from e
        assert_conf_states_equivalent(cs, self.switch_to_config(cfg, prs))
        self.logger.info(
            "%x [commit: %d, lastindex: %d, lastterm: %d] restored snapshot [index: %d, term: %d]",
            self.id,
            self.raft_log.committed,
            self.raft_log.last_index(),
            self.raft_log.last_term(),
            meta.index,
            meta.term,
        )
        return True

    # ------------------------------------------------------------------ configuration

    def promotable(self) -> bool:
        """Whether we may campaign: a voter, with no snapshot waiting to be persisted."""
        pr = self.trk.progress.get(self.id)
        return pr is not None and not pr.is_learner and not self.raft_log.has_pending_snapshot()

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        changer = confchange.Changer(self.trk, self.raft_log.last_index())
        try:
            # As etcd's LeaveJoint: no changes and the AUTO transition, whatever the context.
            if not cc.changes and cc.transition == ConfChangeTransition.AUTO:
                cfg, prs = changer.leave_joint()
            else:
                use_joint, auto_leave = cc.enter_joint()
                if use_joint:
                    cfg, prs = changer.enter_joint(auto_leave, *cc.changes)
                else:
                    cfg, prs = changer.simple(*cc.changes)
        except Exception as e:
            # A committed change that cannot be applied means the log or the application is
            # broken; etcd panics too.
            raise RaftPanic(str(e)) from e
        return self.switch_to_config(cfg, prs)

    def switch_to_config(self, cfg: TrackerConfig, prs: dict[int, Progress]) -> ConfState:
        """Make `cfg` / `prs` the active configuration and react to what changed."""
        self.trk.config = cfg
        self.trk.progress = prs
        self.logger.info("%x switched to configuration %s", self.id, self.trk.config)
        cs = self.trk.conf_state()
        pr = prs.get(self.id)
        self.is_learner = pr is not None and pr.is_learner

        if (pr is None or self.is_learner) and self.state == StateType.LEADER:
            # A leader removed (or demoted) by this change steps down; with no progress of its
            # own it will not campaign again.
            self.become_follower(self.term, NONE)
            return cs
        if self.state != StateType.LEADER or not cs.voters:
            return cs
        if self.maybe_commit():
            # The new quorum may commit more.
            self.bcast_append()
        else:
            # Probe new members at once instead of waiting for the next heartbeat or proposal.
            for pid in self._peer_ids():
                self.maybe_send_append(pid, False)
        if self.lead_transferee != NONE and self.lead_transferee not in cfg.voters.ids():
            self.abort_leader_transfer()
        return cs

    def load_state(self, state: HardState) -> None:
        log = self.raft_log
        if state.commit < log.committed or state.commit > log.last_index():
            raise RaftPanic(
                f"{self.id:x} state.commit {state.commit} is out of range "
                f"[{log.committed}, {log.last_index()}]"
            )
        log.committed = state.commit
        self.term = state.term
        self.vote = state.vote

    def past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def reset_randomized_election_timeout(self) -> None:
        self.randomized_election_timeout = self.election_timeout + self.rand.randrange(self.election_timeout)

    def send_timeout_now(self, to: int) -> None:
        self.send(Message(MT.MSG_TIMEOUT_NOW, to=to))

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NONE

    # ------------------------------------------------------------------ reads and size limits

    def committed_entry_in_current_term(self) -> bool:
        return self.raft_log.zero_term_on_err_compacted(self.raft_log.committed) == self.term

    def response_to_read_index_req(self, req: Message, read_index: int) -> Message | None:
        """A local request becomes a ReadState (None returned); a remote one gets a response."""
        if req.from_ in (NONE, self.id):
            self.read_states.append(ReadState(index=read_index, request_ctx=req.entries[0].data))
            return None
        return Message(MT.MSG_READ_INDEX_RESP, to=req.from_, index=read_index, entries=req.entries)

    def increase_uncommitted_size(self, ents: Sequence[Entry]) -> bool:
        s = payloads_size(ents)
        # An empty uncommitted tail accepts any proposal (or a huge one could never go in);
        # empty payloads (a new leader's entry, leaving a joint config) are never refused.
        if self.uncommitted_size > 0 and s > 0 and self.uncommitted_size + s > self.max_uncommitted_size:
            return False
        self.uncommitted_size += s
        return True

    def reduce_uncommitted_size(self, s: int) -> None:
        # The estimate may undercount (it is reset on term changes); saturate at zero.
        self.uncommitted_size = max(0, self.uncommitted_size - s)

    def release_pending_read_index_messages(self) -> None:
        if not self.pending_read_index_messages:
            return
        if not self.committed_entry_in_current_term():
            self.logger.error(
                "pending MsgReadIndex should be released only after first commit in current term"
            )
            return
        msgs, self.pending_read_index_messages = self.pending_read_index_messages, []
        for m in msgs:
            self.send_msg_read_index_response(m)

    def send_msg_read_index_response(self, m: Message) -> None:
        ctx = m.entries[0].data
        if self.read_only.option == ReadOnlyOption.SAFE:
            self.read_only.add_request(self.raft_log.committed, m)
            # We acknowledge our own leadership.
            self.read_only.recv_ack(self.id, ctx)
            self.bcast_heartbeat_with_ctx(ctx)
        else:
            resp = self.response_to_read_index_req(m, self.raft_log.committed)
            if resp is not None:
                self.send(resp)
