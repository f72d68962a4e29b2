"""Quorum math: committed index and vote results of majority and joint configs.

Table cases follow etcd's quorum datadriven tests; the Hypothesis properties check the
definitions directly (sorted-position committed index, monotonicity, joint = min of both halves,
vote results against plain counting).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petcd.raft.quorum import INFINITE_INDEX, JointConfig, MajorityConfig, VoteResult, index_str

PENDING, LOST, WON = VoteResult.VOTE_PENDING, VoteResult.VOTE_LOST, VoteResult.VOTE_WON


def voters_in_order(cfg: tuple[int, ...], cfgj: tuple[int, ...]) -> list[int]:
    """The voter IDs as the table columns list them: cfg first, then new IDs of cfgj."""
    out: list[int] = []
    for i in (*cfg, *cfgj):
        if i not in out:
            out.append(i)
    return out


def acked_from(cfg: tuple[int, ...], cfgj: tuple[int, ...], idxs: str) -> Callable[[int], int | None]:
    """'12,5,_' -> an AckedIndexer ('_' = unknown)."""
    vals = idxs.split(",") if idxs else []
    ids = voters_in_order(cfg, cfgj)
    assert len(vals) == len(ids)
    m = {i: int(v) for i, v in zip(ids, vals, strict=True) if v != "_"}
    return m.get


def votes_from(cfg: tuple[int, ...], cfgj: tuple[int, ...], votes: str) -> dict[int, bool]:
    vals = votes.split(",") if votes else []
    ids = voters_in_order(cfg, cfgj)
    assert len(vals) == len(ids)
    return {i: v == "y" for i, v in zip(ids, vals, strict=True) if v != "_"}


@pytest.mark.parametrize(
    ("cfg", "votes", "want"),
    [
        ((), "", WON),  # nobody to object
        ((1,), "_", PENDING),
        ((1,), "n", LOST),
        ((123,), "y", WON),
        ((4, 8), "_,_", PENDING),
        ((4, 8), "n,_", LOST),
        ((4, 8), "y,_", PENDING),
        ((4, 8), "n,y", LOST),
        ((4, 8), "y,y", WON),
        ((2, 4, 7), "_,_,_", PENDING),
        ((2, 4, 7), "n,_,_", PENDING),
        ((2, 4, 7), "y,_,_", PENDING),
        ((2, 4, 7), "n,n,_", LOST),
        ((2, 4, 7), "y,n,_", PENDING),
        ((2, 4, 7), "y,y,_", WON),
        ((2, 4, 7), "y,y,n", WON),
        ((2, 4, 7), "n,y,n", LOST),
        ((1, 2, 3, 4, 5, 6, 7), "y,y,n,y,_,_,_", PENDING),
        ((1, 2, 3, 4, 5, 6, 7), "_,y,y,_,n,y,n", PENDING),
        ((1, 2, 3, 4, 5, 6, 7), "y,y,n,y,_,n,y", WON),
        ((1, 2, 3, 4, 5, 6, 7), "y,y,_,n,y,n,n", PENDING),
        ((1, 2, 3, 4, 5, 6, 7), "y,y,n,y,n,n,n", LOST),
    ],
)
def test_majority_vote(cfg: tuple[int, ...], votes: str, want: VoteResult) -> None:
    c = MajorityConfig(cfg)
    assert c.vote_result(votes_from(cfg, (), votes)) == want
    # A joint config with an empty outgoing half, or with itself, decides the same.
    assert JointConfig.of(cfg).vote_result(votes_from(cfg, (), votes)) == want
    assert JointConfig.of(cfg, cfg).vote_result(votes_from(cfg, (), votes)) == want


@pytest.mark.parametrize(
    ("cfg", "cfgj", "votes", "want"),
    [
        ((), (), "", WON),
        ((1,), (), "_", PENDING),
        ((1,), (), "y", WON),
        ((1,), (), "n", LOST),
        ((1,), (2,), "_,_", PENDING),
        ((1,), (2,), "y,_", PENDING),
        ((1,), (2,), "y,y", WON),
        ((1,), (2,), "y,n", LOST),
        ((1,), (2,), "n,_", LOST),
        ((1,), (2,), "n,y", LOST),
        ((1, 2), (3, 4), "y,y,_,_", PENDING),
        ((1, 2), (3, 4), "y,y,n,_", LOST),
        ((1, 2), (3, 4), "y,y,y,n", LOST),
        ((1, 2), (3, 4), "y,y,y,y", WON),
        ((1, 2), (2, 3), "_,n,_", LOST),
        ((1, 2), (2, 3), "y,y,_", PENDING),
        ((1, 2), (2, 3), "y,y,n", LOST),
        ((1, 2), (2, 3), "y,y,y", WON),
        ((1, 2, 3), (2, 3, 4), "_,n,_,_", PENDING),
        ((1, 2, 3), (2, 3, 4), "_,n,n,_", LOST),
        ((1, 2, 3), (2, 3, 4), "_,y,y,_", WON),
        ((1, 2, 3), (2, 3, 4), "y,y,n,_", PENDING),
        ((1, 2, 3), (2, 3, 4), "y,y,n,n", LOST),
        ((1, 2, 3), (2, 3, 4), "y,y,n,y", WON),
    ],
)
def test_joint_vote(cfg: tuple[int, ...], cfgj: tuple[int, ...], votes: str, want: VoteResult) -> None:
    v = votes_from(cfg, cfgj, votes)
    assert JointConfig.of(cfg, cfgj).vote_result(v) == want
    assert JointConfig.of(cfgj, cfg).vote_result(v) == want  # symmetric


@pytest.mark.parametrize(
    ("cfg", "idxs", "want"),
    [
        ((1,), "_", 0),
        ((1,), "12", 12),
        ((1, 2), "_,_", 0),
        ((1, 2), "12,_", 0),
        ((1, 2), "12,5", 5),
        ((1, 2, 3), "12,_,_", 0),
        ((1, 2, 3), "12,5,_", 5),
        ((1, 2, 3), "12,5,6", 6),
        ((1, 2, 3), "12,5,4", 5),
        ((1, 2, 3), "5,5,_", 5),
        ((1, 2, 3), "5,5,12", 5),
        ((1, 2, 3), "100,101,103", 101),
        ((1, 2, 3, 4, 5), "101,104,103,103,_", 103),
        ((1, 2, 3, 4, 5), "101,102,103,103,_", 102),
    ],
)
def test_majority_committed(cfg: tuple[int, ...], idxs: str, want: int) -> None:
    acked = acked_from(cfg, (), idxs)
    assert MajorityConfig(cfg).committed_index(acked) == want
    assert JointConfig.of(cfg).committed_index(acked) == want
    assert JointConfig.of(cfg, cfg).committed_index(acked) == want


def test_empty_config_commits_everything() -> None:
    assert MajorityConfig().committed_index(lambda _: None) == INFINITE_INDEX
    assert index_str(INFINITE_INDEX) == "∞"
    assert JointConfig().committed_index(lambda _: None) == INFINITE_INDEX


@pytest.mark.parametrize(
    ("cfg", "cfgj", "idxs", "want"),
    [
        ((1,), (2,), "_,_", 0),
        ((1,), (2,), "12,_", 0),
        ((1,), (2,), "12,10", 10),
        ((1,), (1,), "12", 12),
        ((1, 2), (3, 4), "10,12,11,_", 0),
        ((1, 2), (3, 4), "10,12,11,13", 10),
        ((1, 2, 3), (3, 4, 5), "20,30,25,15,_", 15),
        ((1, 2, 3), (3, 4, 5), "20,30,25,15,26", 25),
        ((1, 2, 3), (), "100,101,99", 100),
    ],
)
def test_joint_committed(cfg: tuple[int, ...], cfgj: tuple[int, ...], idxs: str, want: int) -> None:
    acked = acked_from(cfg, cfgj, idxs)
    assert JointConfig.of(cfg, cfgj).committed_index(acked) == want
    assert JointConfig.of(cfgj, cfg).committed_index(acked) == want


def test_describe_majority() -> None:
    c = MajorityConfig([1, 2, 3])
    assert c.describe(acked_from((1, 2, 3), (), "12,5,_")) == (
        "       idx\nxx>     12    (id=1)\nx>       5    (id=2)\n?        0    (id=3)\n"
    )
    # Equal indexes share the rank of the first of them.
    assert c.describe(acked_from((1, 2, 3), (), "5,5,12")) == (
        "       idx\n>        5    (id=1)\n>        5    (id=2)\nxx>     12    (id=3)\n"
    )
    assert MajorityConfig().describe(lambda _: None) == "<empty majority quorum>"


def test_describe_joint_uses_all_ids() -> None:
    j = JointConfig.of([1], [2])
    assert (
        j.describe(acked_from((1,), (2,), "12,_")) == "      idx\nx>     12    (id=1)\n?       0    (id=2)\n"
    )


def test_strings() -> None:
    assert str(MajorityConfig([3, 1, 2])) == "(1 2 3)"
    assert str(MajorityConfig()) == "()"
    assert str(JointConfig.of([1, 2], [3])) == "(1 2)&&(3)"
    assert str(JointConfig.of([1, 2])) == "(1 2)"
    assert str(VoteResult.VOTE_WON) == "VoteWon"
    assert JointConfig.of([1], [2]).ids() == {1, 2}
    assert MajorityConfig([3, 1]).slice() == [1, 3]


# -- properties --------------------------------------------------------------------------------

ids_st = st.sets(st.integers(min_value=1, max_value=12), max_size=9)
acks_st = st.dictionaries(st.integers(min_value=1, max_value=12), st.integers(min_value=1, max_value=50))


@given(ids=ids_st, acks=acks_st)
def test_committed_is_the_quorum_position_of_the_sorted_acks(ids: set[int], acks: dict[int, int]) -> None:
    c = MajorityConfig(ids)
    got = c.committed_index(acks.get)
    if not ids:
        assert got == INFINITE_INDEX
        return
    srt = sorted(acks.get(i, 0) for i in ids)
    q = len(ids) // 2 + 1
    assert got == srt[len(ids) - q]
    # A majority acknowledged it, and no larger value has a majority.
    assert sum(1 for i in ids if acks.get(i, 0) >= got) >= q
    assert sum(1 for i in ids if acks.get(i, 0) > got) < q


@given(ids=ids_st, acks=acks_st, bumps=acks_st)
def test_committed_is_monotone_in_the_acks(
    ids: set[int], acks: dict[int, int], bumps: dict[int, int]
) -> None:
    grown = dict(acks)
    for i, b in bumps.items():
        grown[i] = grown.get(i, 0) + b
    c = MajorityConfig(ids)
    assert c.committed_index(grown.get) >= c.committed_index(acks.get)
    j = JointConfig.of(ids, set(bumps))
    assert j.committed_index(grown.get) >= j.committed_index(acks.get)


@given(a=ids_st, b=ids_st, acks=acks_st)
def test_joint_committed_is_the_min_of_both_halves(a: set[int], b: set[int], acks: dict[int, int]) -> None:
    j = JointConfig.of(a, b)
    want = min(MajorityConfig(a).committed_index(acks.get), MajorityConfig(b).committed_index(acks.get))
    assert j.committed_index(acks.get) == want


votes_st = st.dictionaries(st.integers(min_value=1, max_value=12), st.booleans())


def _counted(ids: set[int], votes: dict[int, bool]) -> VoteResult:
    yes = sum(1 for i in ids if votes.get(i) is True)
    no = sum(1 for i in ids if votes.get(i) is False)
    q = len(ids) // 2 + 1
    if not ids or yes >= q:
        return WON
    if no > len(ids) - q:
        return LOST
    return PENDING


@given(ids=ids_st, votes=votes_st)
def test_vote_result_agrees_with_counting(ids: set[int], votes: dict[int, bool]) -> None:
    assert MajorityConfig(ids).vote_result(votes) == _counted(ids, votes)


@given(a=ids_st, b=ids_st, votes=votes_st)
def test_joint_vote_needs_both_halves(a: set[int], b: set[int], votes: dict[int, bool]) -> None:
    ra, rb = _counted(a, votes), _counted(b, votes)
    got = JointConfig.of(a, b).vote_result(votes)
    if ra == WON and rb == WON:
        assert got == WON
    elif LOST in (ra, rb):
        assert got == LOST
    else:
        assert got == PENDING


@given(ids=ids_st, votes=votes_st, more=votes_st)
def test_vote_result_is_final_once_decided(
    ids: set[int], votes: dict[int, bool], more: dict[int, bool]
) -> None:
    """Votes that arrive later (without changing cast ones) never change a decided election."""
    c = MajorityConfig(ids)
    r = c.vote_result(votes)
    later = {**more, **votes}
    if r != PENDING:
        assert c.vote_result(later) == r
