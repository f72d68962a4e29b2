"""The byte format of conf changes (owned by ring A) and the predicates on them."""

from hypothesis import given
from hypothesis import strategies as st

from petcd.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
)

changes = st.lists(
    st.builds(ConfChangeSingle, st.sampled_from(ConfChangeType), st.integers(0, 2**64 - 1)), max_size=5
)


@given(changes, st.sampled_from(ConfChangeTransition), st.binary(max_size=64))
def test_conf_change_round_trips(chs: list[ConfChangeSingle], tr: ConfChangeTransition, ctx: bytes) -> None:
    cc = ConfChange(tuple(chs), tr, ctx)
    assert ConfChange.decode(cc.encode()) == cc


def test_empty_bytes_decode_to_the_empty_change() -> None:
    assert ConfChange.decode(b"") == ConfChange()


@given(st.binary(min_size=1, max_size=40))
def test_garbage_is_refused_or_round_trips(data: bytes) -> None:
    try:
        cc = ConfChange.decode(data)
    except ValueError:
        return
    assert cc.encode() == data


def test_leave_joint_ignores_the_context() -> None:
    assert ConfChange().leave_joint()
    assert ConfChange(context=b"manual").leave_joint()
    assert not ConfChange(transition=ConfChangeTransition.JOINT_EXPLICIT).leave_joint()
    add = ConfChangeSingle(ConfChangeType.ADD_NODE, 2)
    assert not ConfChange((add,)).leave_joint()


def test_enter_joint() -> None:
    add2 = ConfChangeSingle(ConfChangeType.ADD_NODE, 2)
    add3 = ConfChangeSingle(ConfChangeType.ADD_NODE, 3)
    assert ConfChange((add2,)).enter_joint() == (False, False)
    assert ConfChange((add2, add3)).enter_joint() == (True, True)
    assert ConfChange((add2,), ConfChangeTransition.JOINT_IMPLICIT).enter_joint() == (True, True)
    assert ConfChange((add2,), ConfChangeTransition.JOINT_EXPLICIT).enter_joint() == (True, False)
