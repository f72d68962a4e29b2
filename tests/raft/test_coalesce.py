"""petcd.raft.coalesce: the rules on hand-made sequences, then real raft nodes exchanging batches
that go through it (the same end state as without it; safety under loss, elections and
reordering between links)."""

from __future__ import annotations

import contextlib
import random
from collections import defaultdict

import pytest
from raft_net import new_test_raft, read_messages

from petcd.raft.coalesce import coalesce
from petcd.raft.errors import ProposalDropped
from petcd.raft.raft import CAMPAIGN_ELECTION, Raft
from petcd.raft.storage import MemoryStorage
from petcd.raft.tracker import ProgressState
from petcd.raft.types import Entry, Message, MessageType, StateType

MT = MessageType


def ents(first: int, n: int, term: int = 2, size: int = 3) -> tuple[Entry, ...]:
    return tuple(Entry(term=term, index=i, data=b"x" * size) for i in range(first, first + n))


def app(index: int, n: int, commit: int, *, term: int = 2, log_term: int = 2, to: int = 2) -> Message:
    return Message(
        MT.MSG_APP,
        to=to,
        from_=1,
        term=term,
        index=index,
        log_term=log_term,
        entries=ents(index + 1, n, term),
        commit=commit,
    )


def ack(index: int, term: int = 2, reject: bool = False) -> Message:
    return Message(MT.MSG_APP_RESP, to=1, from_=2, term=term, index=index, reject=reject)


def prop(*datas: bytes) -> Message:
    return Message(MT.MSG_PROP, to=1, from_=2, entries=tuple(Entry(data=d) for d in datas))


# --- the rules ----------------------------------------------------------------------------------


def test_continuing_appends_merge_into_one() -> None:
    a, b, c = app(10, 2, 8), app(12, 3, 9), app(15, 1, 9)
    (m,) = coalesce([a, b, c])
    assert (m.index, m.log_term, m.commit, m.term, m.to, m.from_) == (10, 2, 9, 2, 2, 1)
    assert m.entries == a.entries + b.entries + c.entries


def test_an_empty_append_carries_its_commit_into_the_next() -> None:
    commit_only = Message(MT.MSG_APP, to=2, from_=1, term=2, index=12, log_term=2, commit=11)
    got = coalesce([app(10, 2, 8), commit_only, app(12, 2, 12)])
    assert len(got) == 1
    assert (got[0].index, got[0].commit, [e.index for e in got[0].entries]) == (10, 12, [11, 12, 13, 14])
    # and one that starts a batch is continued by the next
    (m,) = coalesce([commit_only, app(12, 1, 12)])
    assert (m.index, m.log_term, m.commit, len(m.entries)) == (12, 2, 12, 1)


@pytest.mark.parametrize(
    "second",
    [
        app(13, 1, 9),  # a gap
        app(11, 1, 9),  # an overlap (a resend after a rejection)
        app(12, 1, 9, log_term=1),  # another term at the joint
        app(12, 1, 9, term=3, log_term=2),  # another leader term
        app(12, 1, 7),  # the commit index going back
    ],
)
def test_appends_that_do_not_continue_stay_apart(second: Message) -> None:
    first = app(10, 2, 8)
    assert coalesce([first, second]) == [first, second]


def test_a_message_in_between_stops_merging() -> None:
    hb = Message(MT.MSG_HEARTBEAT, to=2, from_=1, term=2, commit=8)
    seq = [app(10, 2, 8), hb, app(12, 1, 9)]
    assert coalesce(seq) == seq


def test_merged_appends_stay_below_the_byte_bound() -> None:
    seq = [app(10 + 2 * i, 2, 8, term=2) for i in range(10)]  # 2 entries of 3 bytes each
    got = coalesce(seq, bytes_max=12)
    assert [len(m.entries) for m in got] == [4, 4, 4, 4, 4]
    assert [e.index for m in got for e in m.entries] == list(range(11, 31))
    assert all(m.index == m.entries[0].index - 1 for m in got)


def test_acknowledgements_keep_the_largest_index() -> None:
    assert coalesce([ack(5), ack(9), ack(7)]) == [ack(9)]


def test_rejections_are_kept_and_break_runs() -> None:
    rej = ack(4, reject=True)
    assert coalesce([ack(5), rej, ack(3), ack(6)]) == [ack(5), rej, ack(6)]
    assert coalesce([ack(5, term=2), ack(6, term=3)]) == [ack(5, term=2), ack(6, term=3)]


def test_forwarded_proposals_concatenate() -> None:
    (m,) = coalesce([prop(b"a"), prop(b"b", b"c")])
    assert [e.data for e in m.entries] == [b"a", b"b", b"c"]
    assert (m.type, m.to, m.from_, m.term, m.index, m.log_term, m.commit) == (MT.MSG_PROP, 1, 2, 0, 0, 0, 0)


def test_other_messages_pass_unchanged() -> None:
    seq = [
        Message(MT.MSG_HEARTBEAT_RESP, to=1, from_=2, term=2),
        Message(MT.MSG_HEARTBEAT_RESP, to=1, from_=2, term=2),
        Message(MT.MSG_VOTE, to=1, from_=2, term=3, index=5, log_term=2),
        Message(MT.MSG_READ_INDEX, to=1, from_=2, entries=(Entry(data=b"ctx"),)),
        Message(MT.MSG_READ_INDEX, to=1, from_=2, entries=(Entry(data=b"ctx2"),)),
    ]
    assert coalesce(seq) == seq
    assert coalesce([]) == []


# --- with real raft nodes ----------------------------------------------------------------------


class Cluster:
    """Three raft nodes; each directed link holds the messages sent on it until it is delivered
    (as the transport's queue does), in one batch, optionally through coalesce()."""

    def __init__(self, coalesced: bool, seed: int = 0) -> None:
        self.coalesced = coalesced
        self.storage = {i: MemoryStorage() for i in (1, 2, 3)}
        self.nodes = {i: new_test_raft(i, [1, 2, 3], 10, 1, self.storage[i]) for i in (1, 2, 3)}
        for i, r in self.nodes.items():
            r.rand = random.Random(seed * 10 + i)  # different election timeouts per seed
            r.reset_randomized_election_timeout()
        self.links: dict[tuple[int, int], list[Message]] = defaultdict(list)
        self.stepped = 0

    def persist_and_queue(self, i: int) -> None:
        r = self.nodes[i]
        unstable = r.raft_log.unstable_entries()
        if unstable:
            self.storage[i].append(unstable)
            r.raft_log.stable_to(unstable[-1].index, unstable[-1].term)
        r.raft_log.applied_to(r.raft_log.committed)
        for m in read_messages(r):
            self.links[(i, m.to)].append(m)

    def step(self, i: int, m: Message) -> None:
        with contextlib.suppress(ProposalDropped):
            self.nodes[i].step(m)
        self.stepped += 1
        self.persist_and_queue(i)

    def deliver(self, frm: int, to: int, lose: bool = False) -> None:
        batch = self.links.pop((frm, to), [])
        if lose:
            if batch:
                with contextlib.suppress(KeyError):
                    self.nodes[frm].trk.progress[to].become_probe()  # the transport's report_unreachable
            return
        for m in coalesce(batch) if self.coalesced else batch:
            self.step(to, m)

    def tick(self, i: int) -> None:
        self.nodes[i].tick()
        self.persist_and_queue(i)

    def propose(self, i: int, data: bytes) -> None:
        self.step(i, Message(MT.MSG_PROP, to=i, from_=i, entries=(Entry(data=data),)))

    def leader(self) -> Raft | None:
        leaders = [r for r in self.nodes.values() if r.state == StateType.LEADER]
        return max(leaders, key=lambda r: r.term) if leaders else None

    def elect(self, i: int = 1) -> None:
        self.nodes[i].campaign(CAMPAIGN_ELECTION)
        self.persist_and_queue(i)
        self.settle()

    def settle(self, rounds: int = 200) -> None:
        for _ in range(rounds):
            if not any(self.links.values()):
                return
            for link in [k for k, v in self.links.items() if v]:
                self.deliver(*link)
        raise AssertionError("messages still flowing after many rounds")

    def log(self, i: int) -> list[tuple[int, int, bytes]]:
        r = self.nodes[i]
        return [(e.index, e.term, e.data) for e in r.raft_log.all_entries()]

    def check_committed_prefixes_agree(self) -> None:
        logs = {i: self.log(i) for i in self.nodes}
        for i in self.nodes:
            for j in self.nodes:
                n = min(self.nodes[i].raft_log.committed, self.nodes[j].raft_log.committed)
                assert logs[i][:n] == logs[j][:n], f"committed entries of {i} and {j} differ"


def _load(c: Cluster, rounds: int) -> None:
    """Batches of proposals at the leader and at a follower, links delivered in an order that
    lets several Readies' worth of messages pile up on each link."""
    for k in range(rounds):
        for n in range(4):
            c.propose(1, b"L%d.%d" % (k, n))
            c.propose(2 + k % 2, b"F%d.%d" % (k, n))
        for link in [(1, 2), (2, 1), (1, 3), (3, 1)] if k % 2 else [(3, 1), (1, 3), (2, 1), (1, 2)]:
            c.deliver(*link)


def test_same_end_state_with_and_without_coalescing() -> None:
    runs = []
    for coalesced in (False, True):
        c = Cluster(coalesced)
        c.elect(1)
        _load(c, 30)
        c.settle()
        lead = c.nodes[1]
        prs = {i: (p.match, p.next, p.state, p.inflights.count()) for i, p in lead.trk.progress.items()}
        commits = [c.nodes[i].raft_log.committed for i in (1, 2, 3)]
        runs.append(([c.log(i) for i in (1, 2, 3)], commits, prs, c))
    (logs0, commits0, prs0, plain), (logs1, commits1, prs1, merged) = runs
    assert logs1 == logs0
    assert logs0[0] == logs0[1] == logs0[2]
    assert len(logs0[0]) == 1 + 30 * 8  # the leader's empty entry and every proposal
    assert commits1 == commits0 == [len(logs0[0])] * 3
    assert prs1 == prs0
    assert all(state == ProgressState.REPLICATE for *_, state, _n in prs1.values())
    # what it is for: far fewer messages stepped for the same work
    assert merged.stepped < plain.stepped * 0.7, (merged.stepped, plain.stepped)


@pytest.mark.parametrize("seed", range(40))
def test_random_schedules_with_loss_and_elections_stay_safe(seed: int) -> None:
    rand = random.Random(seed)
    c = Cluster(coalesced=True, seed=seed)
    c.elect(1 + seed % 3)
    proposed = 0
    isolated = 0  # a node whose links lose everything for a while: elections, stale leaders
    for step in range(600):
        if step % 150 == 75:
            isolated = rand.choice((0, 1, 2, 3))
        x = rand.random()
        if x < 0.25:
            c.propose(rand.choice((1, 2, 3)), b"p%d" % proposed)
            proposed += 1
        elif x < 0.75:
            links = [k for k, v in c.links.items() if v]
            if links:
                frm, to = rand.choice(links)
                c.deliver(frm, to, lose=isolated in (frm, to) or rand.random() < 0.03)
        else:
            c.tick(rand.choice((1, 2, 3)))
        c.check_committed_prefixes_agree()
    # heal: everything delivered, heartbeats until the logs agree
    for _ in range(100):
        c.settle()
        lead = c.leader()
        if lead is not None and all(c.log(i) == c.log(lead.id) for i in (1, 2, 3)):
            committed = {c.nodes[i].raft_log.committed for i in (1, 2, 3)}
            if committed == {lead.raft_log.last_index()}:
                break
        for i in (1, 2, 3):
            c.tick(i)
    else:
        raise AssertionError("the cluster did not converge")
    c.check_committed_prefixes_agree()
