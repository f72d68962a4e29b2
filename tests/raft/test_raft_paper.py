"""The rules of the Raft paper (sections 5.1-5.4), ported from etcd's raft_paper_test.go.

Each test names the rule of "In Search of an Understandable Consensus Algorithm" it checks.
"""

# Table-driven tests take their cases as positional parameters.
# ruff: noqa: PLR0917

from __future__ import annotations

import pytest
from raft_net import (
    NOP_STEPPER,
    Network,
    hup,
    ids_by_size,
    must_append_entry,
    new_test_raft,
    prop,
    read_messages,
    storage_with_peers,
)

from petcd.raft.raft import Raft
from petcd.raft.storage import MemoryStorage
from petcd.raft.types import NONE, Entry, HardState, Message, MessageType, StateType

MT = MessageType
FOLLOWER, CANDIDATE, LEADER = StateType.FOLLOWER, StateType.CANDIDATE, StateType.LEADER


def _sorted(msgs: list[Message]) -> list[Message]:
    return sorted(msgs, key=lambda m: (m.to, m.type, m.index))


def _storage(*ents: Entry, peers: tuple[int, ...] = (1, 2, 3)) -> MemoryStorage:
    s = storage_with_peers(*peers)
    s.append(list(ents))
    return s


def commit_noop_entry(r: Raft, s: MemoryStorage) -> None:
    """Have every follower accept the leader's empty entry, and persist/apply it."""
    assert r.state == LEADER
    r.bcast_append()
    for m in read_messages(r):
        assert m.type == MT.MSG_APP and len(m.entries) == 1 and m.entries[0].data == b""
        r.step(accept_and_reply(m))
    read_messages(r)
    s.append(r.raft_log.unstable_entries())
    r.raft_log.applied_to(r.raft_log.committed)
    r.raft_log.stable_to(r.raft_log.last_index(), r.raft_log.last_term())


def accept_and_reply(m: Message) -> Message:
    assert m.type == MT.MSG_APP
    return Message(MT.MSG_APP_RESP, from_=m.to, to=m.from_, term=m.term, index=m.index + len(m.entries))


# ---------------------------------------------------------------------- 5.1: terms


@pytest.mark.parametrize("state", [FOLLOWER, CANDIDATE, LEADER])
def test_update_term_from_message(state: StateType) -> None:
    # A server that sees a larger term adopts it; a candidate or leader reverts to follower.
    r = new_test_raft(1, [1, 2, 3])
    if state == FOLLOWER:
        r.become_follower(1, 2)
    elif state == CANDIDATE:
        r.become_candidate()
    else:
        r.become_candidate()
        r.become_leader()
    r.step(Message(MT.MSG_APP, term=2))
    assert r.term == 2
    assert r.state == FOLLOWER


def test_reject_stale_term_message() -> None:
    # A request with a stale term is rejected (never reaches the role's step function).
    called: list[Message] = []
    r = new_test_raft(1, [1, 2, 3])
    r._step = called.append
    r.load_state(HardState(term=2))
    r.step(Message(MT.MSG_APP, term=r.term - 1))
    assert called == []


# ---------------------------------------------------------------------- 5.2: leader election


def test_start_as_follower() -> None:
    assert new_test_raft(1, [1, 2, 3]).state == FOLLOWER


def test_leader_bcast_beat() -> None:
    # The leader sends heartbeats (empty appends here: MsgHeartbeat) every heartbeat timeout.
    hi = 1
    r = new_test_raft(1, [1, 2, 3], 10, hi)
    r.become_candidate()
    r.become_leader()
    for i in range(10):
        must_append_entry(r, Entry(index=i + 1))
    for _ in range(hi):
        r.tick()
    msgs = _sorted(read_messages(r))
    assert msgs == [
        Message(MT.MSG_HEARTBEAT, from_=1, to=2, term=1),
        Message(MT.MSG_HEARTBEAT, from_=1, to=3, term=1),
    ]


@pytest.mark.parametrize("state", [FOLLOWER, CANDIDATE])
def test_nonleader_start_election(state: StateType) -> None:
    # After an election timeout without a leader: new term, vote for self, request votes.
    et = 10
    r = new_test_raft(1, [1, 2, 3], et, 1)
    if state == FOLLOWER:
        r.become_follower(1, 2)
    else:
        r.become_candidate()
    for _ in range(1, 2 * et):
        r.tick()
    assert r.term == 2
    assert r.state == CANDIDATE
    assert r.trk.votes[r.id]
    msgs = _sorted(read_messages(r))
    assert msgs == [
        Message(MT.MSG_VOTE, from_=1, to=2, term=2),
        Message(MT.MSG_VOTE, from_=1, to=3, term=2),
    ]


@pytest.mark.parametrize(
    ("size", "votes", "state"),
    [
        (1, {}, LEADER),
        (3, {2: True, 3: True}, LEADER),
        (3, {2: True}, LEADER),
        (5, {2: True, 3: True, 4: True, 5: True}, LEADER),
        (5, {2: True, 3: True, 4: True}, LEADER),
        (5, {2: True, 3: True}, LEADER),
        # Lost: a majority rejected.
        (3, {2: False, 3: False}, FOLLOWER),
        (5, {2: False, 3: False, 4: False, 5: False}, FOLLOWER),
        (5, {2: True, 3: False, 4: False, 5: False}, FOLLOWER),
        # Undecided.
        (3, {}, CANDIDATE),
        (5, {2: True}, CANDIDATE),
        (5, {2: False, 3: False}, CANDIDATE),
        (5, {}, CANDIDATE),
    ],
)
def test_leader_election_in_one_round_rpc(size: int, votes: dict[int, bool], state: StateType) -> None:
    r = new_test_raft(1, ids_by_size(size))
    r.step(Message(MT.MSG_HUP, from_=1, to=1))
    for nid, vote in votes.items():
        r.step(Message(MT.MSG_VOTE_RESP, from_=nid, to=1, term=r.term, reject=not vote))
    assert r.state == state
    assert r.term == 1


@pytest.mark.parametrize(
    ("vote", "nvote", "wreject"),
    [(NONE, 1, False), (NONE, 2, False), (1, 1, False), (2, 2, False), (1, 2, True), (2, 1, True)],
)
def test_follower_vote(vote: int, nvote: int, wreject: bool) -> None:
    # At most one vote per term, first come first served.
    r = new_test_raft(1, [1, 2, 3])
    r.load_state(HardState(term=1, vote=vote))
    r.step(Message(MT.MSG_VOTE, from_=nvote, to=1, term=1))
    assert read_messages(r) == [Message(MT.MSG_VOTE_RESP, from_=1, to=nvote, term=1, reject=wreject)]


@pytest.mark.parametrize("term", [1, 2])
def test_candidate_fallback(term: int) -> None:
    # A candidate that hears from a leader with a term at least its own becomes a follower.
    r = new_test_raft(1, [1, 2, 3])
    r.step(Message(MT.MSG_HUP, from_=1, to=1))
    assert r.state == CANDIDATE
    r.step(Message(MT.MSG_APP, from_=2, to=1, term=term))
    assert r.state == FOLLOWER
    assert r.term == term


@pytest.mark.parametrize("state", [FOLLOWER, CANDIDATE])
def test_nonleader_election_timeout_randomized(state: StateType) -> None:
    # Election timeouts are drawn from [et, 2*et): every value in (et, 2*et) shows up.
    et = 10
    r = new_test_raft(1, [1, 2, 3], et, 1)
    timeouts = set()
    for _ in range(50 * et):
        if state == FOLLOWER:
            r.become_follower(r.term + 1, 2)
        else:
            r.become_candidate()
        time = 0
        while not read_messages(r):
            r.tick()
            time += 1
        timeouts.add(time)
    for d in range(et + 1, 2 * et):
        assert d in timeouts, d


@pytest.mark.parametrize("state", [FOLLOWER, CANDIDATE])
def test_nonleaders_election_timeout_nonconflict(state: StateType) -> None:
    # Randomized timeouts make simultaneous timeouts (split votes) rare.
    et = 10
    size = 5
    ids = ids_by_size(size)
    rs = [new_test_raft(i, ids, et, 1) for i in ids]
    conflicts = 0
    rounds = 300
    for _ in range(rounds):
        for r in rs:
            if state == FOLLOWER:
                r.become_follower(r.term + 1, NONE)
            else:
                r.become_candidate()
        timeout_num = 0
        while timeout_num == 0:
            for r in rs:
                r.tick()
                if read_messages(r):
                    timeout_num += 1
        if timeout_num > 1:
            conflicts += 1
    assert conflicts / rounds <= 0.3


# ---------------------------------------------------------------------- 5.3: log replication


def test_leader_start_replication() -> None:
    # The leader appends the command to its log and sends appends to every follower.
    s = _storage()
    r = new_test_raft(1, [], 10, 1, s)
    r.become_candidate()
    r.become_leader()
    commit_noop_entry(r, s)
    li = r.raft_log.last_index()
    r.step(prop(1, b"some data"))
    assert r.raft_log.last_index() == li + 1
    assert r.raft_log.committed == li
    wents = (Entry(index=li + 1, term=1, data=b"some data"),)
    assert _sorted(read_messages(r)) == [
        Message(MT.MSG_APP, from_=1, to=2, term=1, index=li, log_term=1, entries=wents, commit=li),
        Message(MT.MSG_APP, from_=1, to=3, term=1, index=li, log_term=1, entries=wents, commit=li),
    ]
    assert tuple(r.raft_log.unstable_entries()) == wents


def test_leader_commit_entry() -> None:
    # Once a majority holds the entry it is committed and the commit index goes out.
    s = _storage()
    r = new_test_raft(1, [], 10, 1, s)
    r.become_candidate()
    r.become_leader()
    commit_noop_entry(r, s)
    li = r.raft_log.last_index()
    r.step(prop(1, b"some data"))
    for m in read_messages(r):
        r.step(accept_and_reply(m))
    assert r.raft_log.committed == li + 1
    assert r.raft_log.next_ents() == [Entry(index=li + 1, term=1, data=b"some data")]
    msgs = _sorted(read_messages(r))
    assert [m.to for m in msgs] == [2, 3]
    assert all(m.type == MT.MSG_APP and m.commit == li + 1 for m in msgs)


@pytest.mark.parametrize(
    ("size", "acceptors", "wack"),
    [
        (1, set(), True),
        (3, set(), False),
        (3, {2}, True),
        (3, {2, 3}, True),
        (5, set(), False),
        (5, {2}, False),
        (5, {2, 3}, True),
        (5, {2, 3, 4}, True),
        (5, {2, 3, 4, 5}, True),
    ],
)
def test_leader_acknowledge_commit(size: int, acceptors: set[int], wack: bool) -> None:
    s = _storage(peers=tuple(ids_by_size(size)))
    r = new_test_raft(1, [], 10, 1, s)
    r.become_candidate()
    r.become_leader()
    commit_noop_entry(r, s)
    li = r.raft_log.last_index()
    r.step(prop(1, b"some data"))
    for m in read_messages(r):
        if m.to in acceptors:
            r.step(accept_and_reply(m))
    assert (r.raft_log.committed > li) == wack


@pytest.mark.parametrize(
    "ents",
    [
        [],
        [Entry(term=2, index=1)],
        [Entry(term=1, index=1), Entry(term=2, index=2)],
        [Entry(term=1, index=1)],
    ],
)
def test_leader_commit_preceding_entries(ents: list[Entry]) -> None:
    # Committing an entry of the current term commits every entry before it.
    r = new_test_raft(1, [], 10, 1, _storage(*ents))
    r.load_state(HardState(term=2))
    r.become_candidate()
    r.become_leader()
    r.step(prop(1, b"some data"))
    for m in read_messages(r):
        r.step(accept_and_reply(m))
    li = len(ents)
    wents = [*ents, Entry(term=3, index=li + 1), Entry(term=3, index=li + 2, data=b"some data")]
    assert r.raft_log.next_ents() == wents


@pytest.mark.parametrize(
    ("ents", "commit"),
    [
        ([Entry(term=1, index=1, data=b"some data")], 1),
        ([Entry(term=1, index=1, data=b"some data"), Entry(term=1, index=2, data=b"some data2")], 2),
        ([Entry(term=1, index=1, data=b"some data2"), Entry(term=1, index=2, data=b"some data")], 2),
        ([Entry(term=1, index=1, data=b"some data"), Entry(term=1, index=2, data=b"some data2")], 1),
    ],
)
def test_follower_commit_entry(ents: list[Entry], commit: int) -> None:
    # A follower applies entries once it learns (leaderCommit) they are committed.
    r = new_test_raft(1, [1, 2, 3])
    r.become_follower(1, 2)
    r.step(Message(MT.MSG_APP, from_=2, to=1, term=1, entries=tuple(ents), commit=commit))
    assert r.raft_log.committed == commit
    assert r.raft_log.next_ents() == ents[:commit]


@pytest.mark.parametrize(
    ("term", "index", "windex", "wreject", "wreject_hint", "wlog_term"),
    [
        # Matches committed entries.
        (0, 0, 1, False, 0, 0),
        (1, 1, 1, False, 0, 0),
        # Matches an uncommitted entry.
        (2, 2, 2, False, 0, 0),
        # Mismatch with an existing entry: hint at the last entry of a term <= 1.
        (1, 2, 2, True, 1, 1),
        # No such entry.
        (3, 3, 3, True, 2, 2),
    ],
)
def test_follower_check_msg_app(
    term: int, index: int, windex: int, wreject: bool, wreject_hint: int, wlog_term: int
) -> None:
    # A follower rejects an append whose previous entry (index, term) it does not have.
    r = new_test_raft(1, [], 10, 1, _storage(Entry(term=1, index=1), Entry(term=2, index=2)))
    r.load_state(HardState(commit=1))
    r.become_follower(2, 2)
    r.step(Message(MT.MSG_APP, from_=2, to=1, term=2, log_term=term, index=index))
    expected = Message(MT.MSG_APP_RESP, from_=1, to=2, term=2, index=windex)
    if wreject:
        expected = Message(
            MT.MSG_APP_RESP,
            from_=1,
            to=2,
            term=2,
            index=windex,
            reject=True,
            reject_hint=wreject_hint,
            log_term=wlog_term,
        )
    assert read_messages(r) == [expected]


@pytest.mark.parametrize(
    ("index", "term", "ents", "wents", "wunstable"),
    [
        (
            2,
            2,
            [Entry(term=3, index=3)],
            [Entry(term=1, index=1), Entry(term=2, index=2), Entry(term=3, index=3)],
            [Entry(term=3, index=3)],
        ),
        (
            1,
            1,
            [Entry(term=3, index=2), Entry(term=4, index=3)],
            [Entry(term=1, index=1), Entry(term=3, index=2), Entry(term=4, index=3)],
            [Entry(term=3, index=2), Entry(term=4, index=3)],
        ),
        (0, 0, [Entry(term=1, index=1)], [Entry(term=1, index=1), Entry(term=2, index=2)], []),
        (0, 0, [Entry(term=3, index=1)], [Entry(term=3, index=1)], [Entry(term=3, index=1)]),
    ],
)
def test_follower_append_entries(
    index: int, term: int, ents: list[Entry], wents: list[Entry], wunstable: list[Entry]
) -> None:
    # Conflicting entries are deleted with all that follow; new entries are appended.
    r = new_test_raft(1, [], 10, 1, _storage(Entry(term=1, index=1), Entry(term=2, index=2)))
    r.become_follower(2, 2)
    r.step(Message(MT.MSG_APP, from_=2, to=1, term=2, log_term=term, index=index, entries=tuple(ents)))
    assert r.raft_log.all_entries() == wents
    assert r.raft_log.unstable_entries() == wunstable


def _terms_log(*terms: int) -> list[Entry]:
    return [Entry(term=t, index=i + 1) for i, t in enumerate(terms)]


_LEADER_LOG = (1, 1, 1, 4, 4, 5, 5, 6, 6, 6)


@pytest.mark.parametrize(
    "follower_terms",
    [
        (1, 1, 1, 4, 4, 5, 5, 6, 6),  # missing entries
        (1, 1, 1, 4),
        (1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6),  # extra uncommitted entries
        (1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7),
        (1, 1, 1, 4, 4, 4, 4),  # both
        (1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3),
    ],
)
def test_leader_sync_follower_log(follower_terms: tuple[int, ...]) -> None:
    # The leader forces followers' logs to duplicate its own (figure 7 of the paper).
    term = 8
    lead = new_test_raft(1, [], 10, 1, _storage(*_terms_log(*_LEADER_LOG)))
    lead.load_state(HardState(commit=lead.raft_log.last_index(), term=term))
    follower = new_test_raft(2, [], 10, 1, _storage(*_terms_log(*follower_terms)))
    follower.load_state(HardState(term=term - 1))
    n = Network(lead, follower, NOP_STEPPER)
    n.send(hup(1))
    # The black hole's vote, at a term to which the leader has to move.
    n.send(Message(MT.MSG_VOTE_RESP, from_=3, to=1, term=term + 1))
    n.send(prop(1, b""))
    assert lead.raft_log.all_entries() == follower.raft_log.all_entries()
    assert lead.raft_log.committed == follower.raft_log.committed


# ---------------------------------------------------------------------- 5.4: safety


@pytest.mark.parametrize(
    ("ents", "wterm"),
    [([Entry(term=1, index=1)], 2), ([Entry(term=1, index=1), Entry(term=2, index=2)], 3)],
)
def test_vote_request(ents: list[Entry], wterm: int) -> None:
    # Vote requests carry the candidate's last log index and term.
    r = new_test_raft(1, [1, 2, 3])
    r.step(Message(MT.MSG_APP, from_=2, to=1, term=wterm - 1, log_term=0, index=0, entries=tuple(ents)))
    read_messages(r)
    for _ in range(1, r.election_timeout * 2):
        r._tick_election()
    msgs = _sorted(read_messages(r))
    assert len(msgs) == 2
    for i, m in enumerate(msgs):
        assert m.type == MT.MSG_VOTE
        assert m.to == i + 2
        assert m.term == wterm
        assert (m.index, m.log_term) == (ents[-1].index, ents[-1].term)


@pytest.mark.parametrize(
    ("ents", "log_term", "index", "wreject"),
    [
        # Same last term: the longer (or equal) log wins.
        ([Entry(term=1, index=1)], 1, 1, False),
        ([Entry(term=1, index=1)], 1, 2, False),
        ([Entry(term=1, index=1), Entry(term=1, index=2)], 1, 1, True),
        # Candidate's last term higher.
        ([Entry(term=1, index=1)], 2, 1, False),
        ([Entry(term=1, index=1)], 2, 2, False),
        ([Entry(term=1, index=1), Entry(term=1, index=2)], 2, 1, False),
        # Voter's last term higher.
        ([Entry(term=2, index=1)], 1, 1, True),
        ([Entry(term=2, index=1)], 1, 2, True),
        ([Entry(term=2, index=1), Entry(term=1, index=2)], 1, 1, True),
    ],
)
def test_voter(ents: list[Entry], log_term: int, index: int, wreject: bool) -> None:
    # A voter denies its vote to a candidate whose log is less up-to-date than its own.
    r = new_test_raft(1, [], 10, 1, _storage(*ents, peers=(1, 2)))
    r.step(Message(MT.MSG_VOTE, from_=2, to=1, term=3, log_term=log_term, index=index))
    msgs = read_messages(r)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MSG_VOTE_RESP
    assert msgs[0].reject == wreject


@pytest.mark.parametrize(("index", "wcommit"), [(1, 0), (2, 0), (3, 3)])
def test_leader_only_commits_log_from_current_term(index: int, wcommit: int) -> None:
    # Entries of earlier terms are not committed by counting replicas (figure 8).
    r = new_test_raft(1, [], 10, 1, _storage(Entry(term=1, index=1), Entry(term=2, index=2), peers=(1, 2)))
    r.load_state(HardState(term=2))
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    r.step(prop(1, b""))
    r.step(Message(MT.MSG_APP_RESP, from_=2, to=1, term=r.term, index=index))
    assert r.raft_log.committed == wcommit
