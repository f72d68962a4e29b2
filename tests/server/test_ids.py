"""etcd's ID derivations (values checked against etcd 3.4's defaults and idutil's layout)."""

from __future__ import annotations

from petcd.ids import RequestIdGenerator, cluster_id, id_str, member_id, parse_id


def test_default_single_member_ids_match_etcd() -> None:
    # `etcd` with no flags: member 8e9e05c52164694d in cluster cdf818194e3a8c32.
    m = member_id(["http://localhost:2380"], "etcd-cluster")
    assert id_str(m) == "8e9e05c52164694d"
    assert id_str(cluster_id([m])) == "cdf818194e3a8c32"
    assert parse_id("8e9e05c52164694d") == m


def test_member_id_ignores_url_order_and_uses_the_token_and_time() -> None:
    a = member_id(["http://b:2380", "http://a:2380"], "tok")
    assert a == member_id(["http://a:2380", "http://b:2380"], "tok")
    assert a != member_id(["http://a:2380", "http://b:2380"], "other")
    assert member_id(["http://a:2380"], "tok", 1700000000) != member_id(["http://a:2380"], "tok", 1700000001)


def test_cluster_id_ignores_member_order() -> None:
    assert cluster_id([3, 1, 2]) == cluster_id([1, 2, 3]) != cluster_id([1, 2])


def test_request_ids_are_member_prefixed_and_increasing() -> None:
    g = RequestIdGenerator(0xABCD1234, now_ms=0x12_3456_7890)
    first, second = g.next(), g.next()
    assert first >> 48 == 0x1234  # the member ID's low 16 bits
    assert (first >> 8) & ((1 << 40) - 1) == 0x12_3456_7890
    assert first & 0xFF == 1
    assert second == first + 1
    other = RequestIdGenerator(0x5678, now_ms=0x12_3456_7890)
    assert other.next() != first
