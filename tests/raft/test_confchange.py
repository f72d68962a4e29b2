"""Membership changes: simple, joint (enter/leave) and restore (etcd's confchange tests).

The scripted scenarios follow etcd's confchange datadriven tests. Each block is a command and
the expected result: the new config and progress map, or the error. As in etcd's test, the
changer's `last_index` grows by one with every command, so `next` of a new member shows in
which command it was added (petcd keeps next >= 1 so that match < next always holds).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petcd.raft.confchange import Changer, ConfChangeError, check_invariants, describe, restore
from petcd.raft.tracker import ProgressTracker, progress_map_str
from petcd.raft.types import ConfChangeSingle, ConfChangeType, ConfState

ADD, REMOVE, UPDATE, LEARNER = (
    ConfChangeType.ADD_NODE,
    ConfChangeType.REMOVE_NODE,
    ConfChangeType.UPDATE_NODE,
    ConfChangeType.ADD_LEARNER_NODE,
)
_TOKEN_TYPES = {"v": ADD, "l": LEARNER, "r": REMOVE, "u": UPDATE}


def parse_changes(tokens: list[str]) -> list[ConfChangeSingle]:
    return [ConfChangeSingle(_TOKEN_TYPES[t[0]], int(t[1:])) for t in tokens]


def run_script(script: str) -> None:
    tracker = ProgressTracker(10)
    changer = Changer(tracker, 0)
    blocks = [b.strip().splitlines() for b in script.strip().split("\n\n")]
    for block in blocks:
        cmd, *args = block[0].split()
        want = "\n".join(block[1:])
        autoleave = "autoleave" in args
        ccs = parse_changes([a for a in args if a != "autoleave"])
        try:
            if cmd == "simple":
                cfg, prs = changer.simple(*ccs)
            elif cmd == "enter-joint":
                cfg, prs = changer.enter_joint(autoleave, *ccs)
            elif cmd == "leave-joint":
                assert not ccs
                cfg, prs = changer.leave_joint()
            else:
                raise AssertionError(f"unknown command {cmd}")
            tracker.config, tracker.progress = cfg, prs
            got = f"{cfg}\n{progress_map_str(prs)}".rstrip("\n")
        except ConfChangeError as e:
            got = str(e)
        finally:
            changer.last_index += 1
        assert got == want, f"after {block[0]!r}"


SIMPLE_SAFETY = """
simple l1
removed all voters

simple v1
voters=(1)
1: StateProbe match=0 next=1

simple v2 l3
voters=(1 2) learners=(3)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=2
3: StateProbe match=0 next=2 learner

simple r1 v5
more than one voter changed without entering joint config

simple r1 r2
removed all voters

simple v3 v4
more than one voter changed without entering joint config

simple l1 v5
more than one voter changed without entering joint config

simple l1 l2
removed all voters

simple l2 l3 l4 l5
voters=(1) learners=(2 3 4 5)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=2 learner
3: StateProbe match=0 next=2 learner
4: StateProbe match=0 next=8 learner
5: StateProbe match=0 next=8 learner

simple r1
removed all voters

simple r2 r3 r4 r5
voters=(1)
1: StateProbe match=0 next=1
"""

SIMPLE_IDEMPOTENCY = """
simple v1
voters=(1)
1: StateProbe match=0 next=1

simple v1
voters=(1)
1: StateProbe match=0 next=1

simple v2
voters=(1 2)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=2

simple l1
voters=(2) learners=(1)
1: StateProbe match=0 next=1 learner
2: StateProbe match=0 next=2

simple l1
voters=(2) learners=(1)
1: StateProbe match=0 next=1 learner
2: StateProbe match=0 next=2

simple r1
voters=(2)
2: StateProbe match=0 next=2

simple r1
voters=(2)
2: StateProbe match=0 next=2

simple v3
voters=(2 3)
2: StateProbe match=0 next=2
3: StateProbe match=0 next=7

simple r3
voters=(2)
2: StateProbe match=0 next=2

simple r3
voters=(2)
2: StateProbe match=0 next=2

simple r4
voters=(2)
2: StateProbe match=0 next=2
"""

SIMPLE_PROMOTE_DEMOTE = """
simple v1
voters=(1)
1: StateProbe match=0 next=1

simple v2
voters=(1 2)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1

simple v3
voters=(1 2 3)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1
3: StateProbe match=0 next=2

simple l1 v1
voters=(1 2 3)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1
3: StateProbe match=0 next=2

simple l2
voters=(1 3) learners=(2)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1 learner
3: StateProbe match=0 next=2

simple v2 l2
voters=(1 3) learners=(2)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1 learner
3: StateProbe match=0 next=2

simple v2
voters=(1 2 3)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1
3: StateProbe match=0 next=2
"""

UPDATE_AND_ZERO = """
simple v1 r0 v0 l0
voters=(1)
1: StateProbe match=0 next=1

simple v2 u1
voters=(1 2)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1

simple u1 u2 u3 u1 u2 u3
voters=(1 2)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1
"""

JOINT_SAFETY = """
leave-joint
can't leave a non-joint config

enter-joint
can't make a zero-voter config joint

enter-joint v1
can't make a zero-voter config joint

simple v1
voters=(1)
1: StateProbe match=0 next=3

leave-joint
can't leave a non-joint config

enter-joint
voters=(1)&&(1)
1: StateProbe match=0 next=3

enter-joint
config is already joint

leave-joint
voters=(1)
1: StateProbe match=0 next=3

leave-joint
can't leave a non-joint config

enter-joint r1 v2 v3 l4
voters=(2 3)&&(1) learners=(4)
1: StateProbe match=0 next=3
2: StateProbe match=0 next=9
3: StateProbe match=0 next=9
4: StateProbe match=0 next=9 learner

enter-joint
config is already joint

enter-joint v12
config is already joint

simple l15
can't apply simple config change in joint config

leave-joint
voters=(2 3) learners=(4)
2: StateProbe match=0 next=9
3: StateProbe match=0 next=9
4: StateProbe match=0 next=9 learner

simple l9
voters=(2 3) learners=(4 9)
2: StateProbe match=0 next=9
3: StateProbe match=0 next=9
4: StateProbe match=0 next=9 learner
9: StateProbe match=0 next=14 learner
"""

JOINT_AUTOLEAVE = """
simple v1
voters=(1)
1: StateProbe match=0 next=1

enter-joint autoleave v2 v3
voters=(1 2 3)&&(1) autoleave
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1
3: StateProbe match=0 next=1

enter-joint
config is already joint

leave-joint
voters=(1 2 3)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1
3: StateProbe match=0 next=1
"""

JOINT_IDEMPOTENCY = """
simple v1
voters=(1)
1: StateProbe match=0 next=1

enter-joint r1 r2 r9 v2 v3 v4 v2 v3 v4 l2 l2 r4 r4 l1 l1
voters=(3)&&(1) learners=(2) learners_next=(1)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1 learner
3: StateProbe match=0 next=1

leave-joint
voters=(3) learners=(1 2)
1: StateProbe match=0 next=1 learner
2: StateProbe match=0 next=1 learner
3: StateProbe match=0 next=1
"""

# A voter demoted in a joint config waits in learners_next, keeping its progress (see next=1).
JOINT_LEARNERS_NEXT = """
simple v1
voters=(1)
1: StateProbe match=0 next=1

enter-joint v2 l1
voters=(2)&&(1) learners_next=(1)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1

leave-joint
voters=(2) learners=(1)
1: StateProbe match=0 next=1 learner
2: StateProbe match=0 next=1
"""

# Promoting back during the joint phase takes the member out of learners_next again; removing
# an outgoing voter keeps its progress until the joint config is left.
JOINT_PROMOTE_AND_REMOVE = """
simple v1
voters=(1)
1: StateProbe match=0 next=1

simple v2
voters=(1 2)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1

enter-joint l1 r2 v3 v1
voters=(1 3)&&(1 2)
1: StateProbe match=0 next=1
2: StateProbe match=0 next=1
3: StateProbe match=0 next=2

leave-joint
voters=(1 3)
1: StateProbe match=0 next=1
3: StateProbe match=0 next=2
"""


@pytest.mark.parametrize(
    "script",
    [
        SIMPLE_SAFETY,
        SIMPLE_IDEMPOTENCY,
        SIMPLE_PROMOTE_DEMOTE,
        UPDATE_AND_ZERO,
        JOINT_SAFETY,
        JOINT_AUTOLEAVE,
        JOINT_IDEMPOTENCY,
        JOINT_LEARNERS_NEXT,
        JOINT_PROMOTE_AND_REMOVE,
    ],
    ids=[
        "simple_safety",
        "simple_idempotency",
        "simple_promote_demote",
        "update_and_zero",
        "joint_safety",
        "joint_autoleave",
        "joint_idempotency",
        "joint_learners_next",
        "joint_promote_and_remove",
    ],
)
def test_scripts(script: str) -> None:
    run_script(script)


def test_describe() -> None:
    assert describe(*parse_changes(["v1", "r2", "l3", "u4"])) == (
        "ConfChangeAddNode(1) ConfChangeRemoveNode(2) ConfChangeAddLearnerNode(3) ConfChangeUpdateNode(4)"
    )


def test_changer_does_not_touch_the_tracker() -> None:
    tracker = ProgressTracker(10)
    cfg, prs = Changer(tracker, 5).simple(ConfChangeSingle(ADD, 1))
    assert tracker.progress == {}
    assert not tracker.config.voters.incoming
    tracker.config, tracker.progress = cfg, prs
    cfg2, prs2 = Changer(tracker, 6).enter_joint(
        False, ConfChangeSingle(LEARNER, 1), ConfChangeSingle(ADD, 2)
    )
    prs2[1].match = 42
    assert tracker.progress[1].match == 0
    assert prs2[1] is not tracker.progress[1]
    assert str(tracker.config) == "voters=(1)"
    assert str(cfg2) == "voters=(2)&&(1) learners_next=(1)"


def test_new_members_are_active_and_probe_from_last_index() -> None:
    tracker = ProgressTracker(7, 1000)
    _, prs = Changer(tracker, 12).simple(ConfChangeSingle(ADD, 1))
    pr = prs[1]
    assert (pr.match, pr.next, pr.recent_active) == (0, 12, True)
    assert (pr.inflights.size, pr.inflights.max_bytes) == (7, 1000)


# -- restore -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cs",
    [
        ConfState(),  # empty: restore of an empty state gives an empty config
        ConfState(voters=(1, 2, 3)),
        ConfState(voters=(1, 2, 3), learners=(4,)),
        ConfState(voters=(8, 2, 5), learners=(1, 9)),
        ConfState(voters=(1, 2, 3), learners=(5,), voters_outgoing=(1, 2, 4, 6), learners_next=(4,)),
        ConfState(voters=(1, 2, 3), learners=(5,), voters_outgoing=(1, 2, 4, 6), auto_leave=True),
        ConfState(voters=(3,), voters_outgoing=(3,)),
    ],
)
def test_restore_round_trips(cs: ConfState) -> None:
    base = ProgressTracker(20)
    cfg, prs = restore(Changer(base, 10), cs)
    t = ProgressTracker(20)
    t.config, t.progress = cfg, prs
    assert t.conf_state().equivalent(cs)
    assert set(prs) == set(cs.voters) | set(cs.learners) | set(cs.voters_outgoing) | set(cs.learners_next)
    assert base.progress == {}  # the changer's tracker is left alone


def test_restore_rejects_inconsistent_conf_states() -> None:
    with pytest.raises(ConfChangeError, match="removed all voters"):
        # An ID both voter and learner: the learner change demotes the only voter.
        restore(Changer(ProgressTracker(20), 1), ConfState(voters=(1,), learners=(1,)))
    with pytest.raises(ConfChangeError, match="removed all voters"):
        restore(Changer(ProgressTracker(20), 1), ConfState(learners=(2,)))


# -- properties --------------------------------------------------------------------------------

node_ids = st.integers(min_value=1, max_value=6)
single_change = st.builds(ConfChangeSingle, st.sampled_from([ADD, REMOVE, LEARNER, UPDATE]), node_ids)
change_lists = st.lists(single_change, min_size=0, max_size=3)


def assert_consistent(t: ProgressTracker) -> None:
    c = t.config
    check_invariants(c, t.progress)
    assert not (c.voters.incoming & c.learners)
    assert not (c.voters.outgoing & c.learners)
    assert set(t.progress) == c.voters.ids() | c.learners | c.learners_next
    for i, pr in t.progress.items():
        assert pr.is_learner == (i in c.learners)
        assert pr.match < pr.next


def model_simple(
    voters: set[int], learners: set[int], ccs: list[ConfChangeSingle]
) -> tuple[set[int], set[int]]:
    v, ln = set(voters), set(learners)
    for cc in ccs:
        if cc.type == ADD:
            v.add(cc.node_id)
            ln.discard(cc.node_id)
        elif cc.type == LEARNER:
            v.discard(cc.node_id)
            ln.add(cc.node_id)
        elif cc.type == REMOVE:
            v.discard(cc.node_id)
            ln.discard(cc.node_id)
    return v, ln


def restored(t: ProgressTracker) -> ProgressTracker:
    r = ProgressTracker(t.max_inflight)
    r.config, r.progress = restore(Changer(ProgressTracker(t.max_inflight), 1), t.conf_state())
    return r


@settings(max_examples=200, deadline=None)
@given(st.lists(change_lists, min_size=1, max_size=12))
def test_random_simple_changes_keep_invariants(steps: list[list[ConfChangeSingle]]) -> None:
    t = ProgressTracker(10)
    t.config, t.progress = Changer(t, 1).simple(ConfChangeSingle(ADD, 1))
    for k, ccs in enumerate(steps):
        before = (t.config.clone(), {i: str(pr) for i, pr in t.progress.items()})
        want_v, want_l = model_simple(set(t.config.voters.incoming), t.config.learners, ccs)
        try:
            cfg, prs = Changer(t, k + 2).simple(*ccs)
        except ConfChangeError as e:
            # Refused exactly when it would empty the voters or change more than one voter ...
            if not want_v:
                assert str(e) == "removed all voters"
            else:
                assert len(want_v ^ t.config.voters.incoming) > 1
                assert str(e) == "more than one voter changed without entering joint config"
            # ... and a refused change leaves everything as it was.
            assert (t.config, {i: str(pr) for i, pr in t.progress.items()}) == before
            continue
        assert want_v and len(want_v ^ t.config.voters.incoming) <= 1
        t.config, t.progress = cfg, prs
        assert set(t.config.voters.incoming) == want_v
        assert t.config.learners == want_l
        assert not t.config.voters.outgoing
        assert_consistent(t)
        # The configuration survives a trip through ConfState (a snapshot or a restart).
        r = restored(t)
        assert r.config == t.config
        assert set(r.progress) == set(t.progress)


ops = st.tuples(st.sampled_from(["simple", "enter", "leave"]), change_lists, st.booleans())


@settings(max_examples=200, deadline=None)
@given(st.lists(ops, min_size=1, max_size=12))
def test_random_joint_changes_keep_invariants(steps: list[tuple[str, list[ConfChangeSingle], bool]]) -> None:
    t = ProgressTracker(10)
    t.config, t.progress = Changer(t, 1).simple(ConfChangeSingle(ADD, 1))
    for k, (kind, ccs, auto_leave) in enumerate(steps):
        chg = Changer(t, k + 2)
        try:
            if kind == "simple":
                cfg, prs = chg.simple(*ccs)
            elif kind == "enter":
                cfg, prs = chg.enter_joint(auto_leave, *ccs)
                assert cfg.voters.outgoing == t.config.voters.incoming
                assert cfg.auto_leave == auto_leave
            else:
                was_joint = bool(t.config.voters.outgoing)
                learners_next = set(t.config.learners_next)
                cfg, prs = chg.leave_joint()
                assert was_joint
                assert learners_next <= cfg.learners
                assert not cfg.auto_leave
        except ConfChangeError:
            continue
        t.config, t.progress = cfg, prs
        assert_consistent(t)
        assert t.config.voters.incoming
        r = restored(t)
        assert r.config == t.config
        assert set(r.progress) == set(t.progress)
