"""Properties of the index-key encoding (petcd.mvcc.keys)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from petcd.mvcc import keys

# keys near the short/long boundary, with zeros where the cut happens
_alphabet = st.sampled_from([b"\x00", b"\x01", b"L", b"\xff"])
_tail = st.lists(_alphabet, max_size=6).map(b"".join)
key_st = st.one_of(
    st.binary(min_size=1, max_size=8),
    st.tuples(st.integers(430, 445), _tail).map(lambda t: b"L" * t[0] + t[1]),
    st.tuples(st.integers(215, 222), _tail).map(lambda t: b"\x00" * t[0] + t[1]),
)


def group(k: bytes) -> bytes | None:
    return None if keys.is_short(k) else keys.group_prefix(k)


@settings(max_examples=400)
@given(key_st, key_st)
def test_ikeys_sort_like_keys_except_inside_a_group(a: bytes, b: bytes) -> None:
    ia, ib = keys.ikey(a), keys.ikey(b)
    assert len(ia) + keys.INV_REV_BYTES <= 511 and len(ib) + keys.INV_REV_BYTES <= 511
    assert (ia == ib) == (a == b)
    if a != b and not (group(a) is not None and group(a) == group(b)):
        assert (ia < ib) == (a < b)
    # prefix-free, so appending revisions never reorders two keys
    if ia != ib:
        assert not ia.startswith(ib) and not ib.startswith(ia)
    assert keys.is_group_ikey(ia) == (group(a) is not None)


@settings(max_examples=400)
@given(key_st, key_st)
def test_range_bounds_cover_exactly_the_candidates(start: bytes, k: bytes) -> None:
    entry = keys.ikey(k) + keys.inv_rev_bytes(5, 0)
    if k >= start:
        assert entry >= keys.lower_bound(start)
    if k < start:
        # only members of start's own group may fall inside (they are filtered by full key)
        assert entry < keys.lower_bound(start) or group(k) == group(start) is not None
    if k < start:  # as an end bound: every key below it is inside
        assert entry < keys.upper_bound(start)
    elif entry < keys.upper_bound(start):
        assert group(k) == group(start) is not None


@given(st.integers(1, 2**40), st.integers(0, 2**20), st.integers(1, 2**40))
def test_revision_encodings(main: int, sub: int, at: int) -> None:
    assert keys.parse_rev(keys.rev_bytes(main, sub)) == (main, sub)
    inv = keys.inv_rev_bytes(main, sub)
    assert keys.parse_inv_rev(b"ik" + inv) == (main, sub)
    tomb = keys.inv_rev_bytes(main, sub, tombstone=True)
    assert keys.parse_inv_rev(tomb) == (main, sub)
    assert keys.is_tombstone(b"ik" + tomb) and not keys.is_tombstone(b"ik" + inv)
    # newer first: a later change in the same revision sorts before an earlier one, whatever the kinds
    later = keys.inv_rev_bytes(main, sub + 1, tombstone=False)
    assert later < tomb and keys.inv_rev_bytes(main, sub + 1, tombstone=True) < inv
    # seeking to at_or_before(at) lands on versions with main <= at
    assert (inv >= keys.at_or_before(at)) == (main <= at)
    assert (inv[:8] >= keys.inv_main_bytes(at)) == (main <= at)
    assert inv < keys.AFTER_ALL_VERSIONS


_padded = st.tuples(
    st.binary(max_size=30),
    st.integers(0, 500),
    st.binary(max_size=300),
    st.sampled_from([b"\x00", b"\x00\x01"]),
).map(lambda t: t[0] + t[3] * t[1] + t[2])


@settings(max_examples=400)
@given(st.one_of(key_st, _padded))
def test_a_long_keys_group_is_its_longest_prefix_that_fits(k: bytes) -> None:
    """The group prefix is the escaped form of the longest prefix of the key that fits in SHORT_MAX
    bytes: checked against a walk over every prefix length (keys padded with zeros, like etcdctl
    check perf's 256-byte keys, escape to twice their length)."""
    if keys.is_short(k):
        return
    n = max(i for i in range(len(k) + 1) if len(k[:i].replace(b"\x00", b"\x00\x01")) <= keys.SHORT_MAX)
    assert keys.group_prefix(k) == k[:n].replace(b"\x00", b"\x00\x01") + keys.GROUP_MARK
