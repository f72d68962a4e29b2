"""Progress, Inflights and ProgressTracker (etcd's tracker tests, with etcd-io/raft's byte limits)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petcd.raft.errors import RaftPanic
from petcd.raft.quorum import JointConfig, VoteResult
from petcd.raft.tracker import (
    Inflights,
    Progress,
    ProgressState,
    ProgressTracker,
    TrackerConfig,
    progress_map_str,
)
from petcd.raft.types import ConfState

PROBE, REPLICATE, SNAPSHOT = ProgressState.PROBE, ProgressState.REPLICATE, ProgressState.SNAPSHOT

# -- Inflights ---------------------------------------------------------------------------------


def test_inflights_add_and_full() -> None:
    ins = Inflights(10)
    for i in range(5):
        ins.add(i)
    assert ins.count() == 5
    assert not ins.full()
    for i in range(5, 10):
        ins.add(i)
    assert ins.count() == 10
    assert ins.full()
    with pytest.raises(RaftPanic, match="cannot add into a Full inflights"):
        ins.add(10)


def test_inflights_free_le() -> None:
    ins = Inflights(10)
    for i in range(10):
        ins.add(i)
    ins.free_le(0)
    assert ins.indexes() == list(range(1, 10))
    ins.free_le(4)
    assert ins.count() == 5
    ins.free_le(8)
    assert ins.indexes() == [9]
    for i in range(10, 15):
        ins.add(i)
    ins.free_le(12)
    assert ins.indexes() == [13, 14]
    ins.free_le(14)
    assert ins.count() == 0
    ins.free_le(100)  # nothing left: no-op
    assert ins.count() == 0


def test_inflights_free_le_below_the_window_is_a_no_op() -> None:
    ins = Inflights(10)
    for i in (5, 6, 7):
        ins.add(i, 10)
    ins.free_le(4)
    assert (ins.count(), ins.nbytes) == (3, 30)


def test_inflights_free_first_one_and_reset() -> None:
    ins = Inflights(10, 1000)
    for i in range(10):
        ins.add(i, 10)
    ins.free_first_one()
    assert ins.count() == 9
    assert ins.nbytes == 90
    ins.reset()
    assert (ins.count(), ins.nbytes, ins.full()) == (0, 0, False)


def test_inflights_clone_is_independent() -> None:
    ins = Inflights(4, 100)
    ins.add(1, 10)
    c = ins.clone()
    c.add(2, 10)
    ins.free_le(1)
    assert (ins.count(), ins.nbytes) == (0, 0)
    assert (c.count(), c.nbytes, c.indexes()) == (2, 20, [1, 2])


@pytest.mark.parametrize(
    ("size", "max_bytes", "full_at", "free_le", "again_at"),
    [
        (0, 0, 0, 0, 0),  # always full
        (1, 0, 1, 1, 2),
        (1, 10, 1, 1, 2),  # one message may overflow the byte limit
        (15, 0, 15, 6, 22),
        (8, 400, 4, 2, 7),  # slight overflow
        (8, 406, 4, 3, 8),  # exactly the byte limit is full
        (15, 408, 5, 1, 6),  # larger overflow
    ],
)
def test_inflights_full_by_count_or_bytes(
    size: int, max_bytes: int, full_at: int, free_le: int, again_at: int
) -> None:
    """Message i carries 100 + i bytes."""
    ins = Inflights(size, max_bytes)

    def add_until_full(begin: int, end: int) -> None:
        for i in range(begin, end):
            assert not ins.full(), f"full at {i}, want {end}"
            ins.add(i, 100 + i)
        assert ins.full()

    add_until_full(0, full_at)
    ins.free_le(free_le)
    add_until_full(full_at, again_at)
    with pytest.raises(RaftPanic):
        ins.add(100, 1024)


@given(
    size=st.integers(min_value=0, max_value=8),
    max_bytes=st.sampled_from([0, 50, 100, 300]),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.integers(min_value=0, max_value=120)),
            st.tuples(st.just("free"), st.integers(min_value=0, max_value=40)),
        ),
        max_size=40,
    ),
)
def test_inflights_limits_and_free_le(size: int, max_bytes: int, ops: list[tuple[str, int]]) -> None:
    ins = Inflights(size, max_bytes)
    model: list[tuple[int, int]] = []  # (index, bytes)
    next_index = 1
    for op, arg in ops:
        if op == "add":
            if ins.full():
                with pytest.raises(RaftPanic):
                    ins.add(next_index, arg)
                continue
            ins.add(next_index, arg)
            model.append((next_index, arg))
            next_index += 1
            # The count never exceeds the limit; bytes exceed it only through the last message.
            assert ins.count() <= size
            if max_bytes:
                assert ins.nbytes - arg < max_bytes
        else:
            to = arg
            ins.free_le(to)
            # Exactly the prefix of messages with index <= to is freed.
            model = [m for m in model if m[0] > to]
        assert ins.indexes() == [i for i, _ in model]
        assert ins.nbytes == sum(b for _, b in model)
        assert ins.full() == (len(model) >= size or (max_bytes != 0 and ins.nbytes >= max_bytes))


# -- Progress ----------------------------------------------------------------------------------


def test_progress_string() -> None:
    ins = Inflights(1)
    ins.add(123)
    pr = Progress(
        match=1,
        next=2,
        state=SNAPSHOT,
        pending_snapshot=123,
        recent_active=False,
        msg_app_flow_paused=True,
        is_learner=True,
        inflights=ins,
    )
    assert str(pr) == "StateSnapshot match=1 next=2 learner paused pendingSnap=123 inactive inflight=1[full]"
    assert (
        str(Progress(match=3, next=4, state=REPLICATE, recent_active=True)) == "StateReplicate match=3 next=4"
    )


@pytest.mark.parametrize(
    ("state", "paused", "want"),
    [
        (PROBE, False, False),
        (PROBE, True, True),
        (REPLICATE, False, False),
        (REPLICATE, True, True),
        (SNAPSHOT, False, True),
        (SNAPSHOT, True, True),
    ],
)
def test_progress_is_paused(state: ProgressState, paused: bool, want: bool) -> None:
    assert Progress(state=state, msg_app_flow_paused=paused).is_paused() is want


def test_progress_resume() -> None:
    p = Progress(next=2, msg_app_flow_paused=True)
    p.maybe_decr_to(1, 1)
    assert not p.msg_app_flow_paused
    p.msg_app_flow_paused = True
    p.maybe_update(2)
    assert not p.msg_app_flow_paused


@pytest.mark.parametrize(
    ("state", "pending_snapshot", "want_next"),
    [(REPLICATE, 0, 2), (SNAPSHOT, 10, 11), (SNAPSHOT, 0, 2)],
)
def test_progress_become_probe(state: ProgressState, pending_snapshot: int, want_next: int) -> None:
    p = Progress(state=state, match=1, next=5, pending_snapshot=pending_snapshot)
    p.inflights.add(4)
    p.become_probe()
    assert (p.state, p.match, p.next, p.pending_snapshot) == (PROBE, 1, want_next, 0)
    assert p.inflights.count() == 0


def test_progress_become_replicate_and_snapshot() -> None:
    p = Progress(state=PROBE, match=1, next=5, msg_app_flow_paused=True)
    p.become_replicate()
    assert (p.state, p.match, p.next, p.msg_app_flow_paused) == (REPLICATE, 1, 2, False)
    p = Progress(state=PROBE, match=1, next=5)
    p.become_snapshot(10)
    assert (p.state, p.match, p.pending_snapshot) == (SNAPSHOT, 1, 10)
    assert p.is_paused()


@pytest.mark.parametrize(
    ("update", "want_match", "want_next", "want_ok"),
    [
        (2, 3, 5, False),  # match and next never decrease
        (3, 3, 5, False),
        (4, 4, 5, True),  # match grows, next stays
        (5, 5, 6, True),  # both grow
    ],
)
def test_progress_maybe_update(update: int, want_match: int, want_next: int, want_ok: bool) -> None:
    p = Progress(match=3, next=5)
    assert p.maybe_update(update) is want_ok
    assert (p.match, p.next) == (want_match, want_next)


@pytest.mark.parametrize(
    ("state", "match", "next_", "rejected", "hint", "want_ok", "want_next"),
    [
        # Replicate: stale if rejected <= match; otherwise back to match + 1.
        (REPLICATE, 5, 10, 5, 5, False, 10),
        (REPLICATE, 5, 10, 4, 4, False, 10),
        (REPLICATE, 5, 10, 9, 9, True, 6),
        # Probe: stale unless rejected == next - 1.
        (PROBE, 0, 0, 0, 0, False, 0),
        (PROBE, 0, 10, 5, 5, False, 10),
        (PROBE, 0, 10, 9, 9, True, 9),
        (PROBE, 0, 2, 1, 1, True, 1),
        (PROBE, 0, 1, 0, 0, True, 1),
        # The hint moves next further back, but never to or below match.
        (PROBE, 0, 10, 9, 2, True, 3),
        (PROBE, 0, 10, 9, 0, True, 1),
        (PROBE, 4, 10, 9, 2, True, 5),
    ],
)
def test_progress_maybe_decr_to(  # noqa: PLR0917
    state: ProgressState, match: int, next_: int, rejected: int, hint: int, want_ok: bool, want_next: int
) -> None:
    p = Progress(state=state, match=match, next=next_)
    assert p.maybe_decr_to(rejected, hint) is want_ok
    assert p.match == match
    assert p.next == want_next


def test_sent_entries_in_replicate_fills_the_window() -> None:
    p = Progress(match=0, next=1, inflights=Inflights(2, 0))
    p.become_replicate()
    p.sent_entries(3, 30)
    assert (p.next, p.inflights.indexes(), p.msg_app_flow_paused) == (4, [3], False)
    p.sent_entries(2, 20)
    assert (p.next, p.inflights.indexes()) == (6, [3, 5])
    assert p.msg_app_flow_paused and p.is_paused()
    # The acknowledgement of the first message frees room and resumes the flow.
    assert p.maybe_update(3)
    p.inflights.free_le(3)
    assert not p.is_paused()
    # An empty append (commit index only) does not occupy the window.
    p.sent_entries(0, 0)
    assert p.inflights.indexes() == [5]


def test_sent_entries_in_replicate_with_byte_limit() -> None:
    p = Progress(inflights=Inflights(100, 50))
    p.become_replicate()
    p.sent_entries(1, 49)
    assert not p.is_paused()
    p.sent_entries(1, 1)
    assert p.is_paused()


def test_sent_entries_in_probe_pauses_until_answer() -> None:
    p = Progress(match=0, next=1)
    p.sent_entries(0, 0)
    assert not p.is_paused()
    p.sent_entries(2, 20)
    assert p.is_paused()
    assert p.next == 1  # probing does not advance next optimistically
    assert p.inflights.count() == 0


def test_sent_entries_in_snapshot_is_a_bug() -> None:
    p = Progress()
    p.become_snapshot(5)
    with pytest.raises(RaftPanic):
        p.sent_entries(1, 1)


def test_update_on_entries_send() -> None:
    p = Progress(match=4, next=5)
    p.become_replicate()
    p.update_on_entries_send(3, 30, 5)
    assert (p.next, p.inflights.indexes()) == (8, [7])


def test_commit_bookkeeping() -> None:
    p = Progress(match=3, next=4)
    p.become_replicate()
    assert p.can_bump_commit(3)
    assert not p.can_bump_commit(0)
    p.sent_commit(10)  # capped at next - 1: the follower cannot commit what it lacks
    assert p.pending_commit == 3
    assert not p.can_bump_commit(3)
    p.sent_entries(2, 2)
    assert p.can_bump_commit(5)
    p.sent_commit(5)
    assert not p.can_bump_commit(5)
    # A rejection rolls the sent commit back with next.
    p.maybe_decr_to(5, 3)
    assert p.pending_commit == 3


def test_progress_clone_is_deep() -> None:
    p = Progress(match=1, next=2, inflights=Inflights(4))
    c = p.clone()
    c.inflights.add(3)
    c.match = 5
    assert (p.match, p.inflights.count()) == (1, 0)


# -- ProgressTracker ---------------------------------------------------------------------------


def tracker_with(
    voters: Sequence[int], outgoing: Sequence[int] = (), learners: Sequence[int] = ()
) -> ProgressTracker:
    t = ProgressTracker(256, 0)
    t.config = TrackerConfig(voters=JointConfig.of(voters, outgoing), learners=set(learners))
    for i in {*voters, *outgoing, *learners}:
        t.progress[i] = Progress(next=1, inflights=t.new_inflights(), is_learner=i in learners)
    return t


def test_committed_uses_voters_match_only() -> None:
    t = tracker_with([1, 2, 3], learners=[4])
    for i, m in {1: 10, 2: 7, 3: 3, 4: 100}.items():
        t.progress[i].match = m
    assert t.committed() == 7
    t.progress[3].match = 9
    assert t.committed() == 9


def test_committed_in_joint_config() -> None:
    t = tracker_with([1, 2, 3], outgoing=[3, 4, 5])
    for i, m in {1: 10, 2: 10, 3: 10, 4: 2, 5: 1}.items():
        t.progress[i].match = m
    assert t.committed() == 2


def test_quorum_active() -> None:
    t = tracker_with([1, 2, 3], learners=[4])
    t.progress[1].recent_active = True
    t.progress[4].recent_active = True  # a learner does not count
    assert not t.quorum_active()
    t.progress[3].recent_active = True
    assert t.quorum_active()


def test_votes() -> None:
    t = tracker_with([1, 2, 3, 4, 5], learners=[6])
    t.record_vote(1, True)
    t.record_vote(6, True)
    assert t.tally_votes() == (1, 0, VoteResult.VOTE_PENDING)
    t.record_vote(2, False)
    t.record_vote(2, True)  # the first vote counts
    t.record_vote(3, False)
    assert t.tally_votes() == (1, 2, VoteResult.VOTE_PENDING)
    t.record_vote(4, False)
    assert t.tally_votes() == (1, 3, VoteResult.VOTE_LOST)
    t.reset_votes()
    for i in (1, 2, 3):
        t.record_vote(i, True)
    assert t.tally_votes() == (3, 0, VoteResult.VOTE_WON)


def test_visit_is_in_id_order() -> None:
    t = tracker_with([9, 3, 7, 1, 12, 5, 4, 8], learners=[2])
    seen: list[int] = []
    t.visit(lambda i, _pr: seen.append(i))
    assert seen == [1, 2, 3, 4, 5, 7, 8, 9, 12]


def test_nodes_and_conf_state() -> None:
    t = tracker_with([3, 1], outgoing=[1, 2], learners=[5])
    t.config.learners_next = {2}
    t.config.auto_leave = True
    assert t.voter_nodes() == [1, 2, 3]
    assert t.learner_nodes() == [5]
    assert t.conf_state() == ConfState(
        voters=(1, 3), learners=(5,), voters_outgoing=(1, 2), learners_next=(2,), auto_leave=True
    )
    assert str(t.config) == "voters=(1 3)&&(1 2) learners=(5) learners_next=(2) autoleave"
    assert not t.is_singleton()
    assert tracker_with([1]).is_singleton()
    assert not tracker_with([1], outgoing=[2]).is_singleton()
    assert t.voters is t.config.voters
    assert t.learners == {5}


def test_progress_map_str() -> None:
    t = tracker_with([2, 1], learners=[3])
    for pr in t.progress.values():
        pr.recent_active = True
    assert progress_map_str(t.progress) == (
        "1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1\n3: StateProbe match=0 next=1 learner\n"
    )
