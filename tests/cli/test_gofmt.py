# ruff: noqa: E501  (golden tables are wider than the line limit)
"""Go's text formats as etcdctl prints them (values checked against Go's own output)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petcd.cli.etcdctl.gofmt import (
    go_duration,
    go_json,
    go_quote,
    humanize_bytes,
    parse_go_duration,
    render_table,
)
from petcd.cli.etcdctl.kv import argify, go_unquote, prefix_end


@pytest.mark.parametrize(
    ("data", "quoted"),
    [
        (b"foo", '"foo"'),
        (b"", '""'),
        (b'a"b\\c', '"a\\"b\\\\c"'),
        (b"\n\t\r\x07\x08\x0c\x0b", '"\\n\\t\\r\\a\\b\\f\\v"'),
        (b"\x00\x01\x7f", '"\\x00\\x01\\x7f"'),
        (b"\xff\xfe", '"\\xff\\xfe"'),
        ("héllo".encode(), '"héllo"'),
        ("\u2028".encode(), '"\\u2028"'),
        ("\U0001f600".encode(), '"\U0001f600"'),
        (b"\xc3", '"\\xc3"'),
        ("\u00a0".encode(), '"\\u00a0"'),
    ],
)
def test_go_quote(data: bytes, quoted: str) -> None:
    assert go_quote(data) == quoted


@given(st.binary(max_size=40))
def test_go_quote_round_trips_through_go_unquote(data: bytes) -> None:
    import os

    assert os.fsencode(go_unquote(go_quote(data))) == data


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (2_090_000, "2.09ms"),
        (2_091_234, "2.091234ms"),
        (1_000_000_000, "1s"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-1_500_000, "-1.5ms"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2s", 2.0),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("0", 0.0),
        ("1.5s", 1.5),
        ("250us", 0.00025),
    ],
)
def test_parse_go_duration(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "abc", "5x", "s"])
def test_parse_go_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="time: "):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (9, "9 B"),
        (10, "10 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (16384, "16 kB"),
        (20480, "20 kB"),
        (24576, "25 kB"),
        (2_147_483_648, "2.1 GB"),
        (8_589_934_592, "8.6 GB"),
        (6_400_000, "6.4 MB"),
    ],
)
def test_humanize_bytes(size: int, text: str) -> None:
    assert humanize_bytes(size) == text


def test_go_json_escapes_like_encoding_json() -> None:
    assert go_json({"a": "<b>&\u2028\b\f"}) == '{"a":"\\u003cb\\u003e\\u0026\\u2028\\u0008\\u000c"}'
    assert go_json([1, None, True]) == "[1,null,true]"


def test_render_table_member_list_golden() -> None:
    # etcd's README (v3.6) member list table
    table = render_table(
        ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"],
        [
            [
                "8211f1d0f64f3269",
                "started",
                "infra1",
                "http://127.0.0.1:12380",
                "http://127.0.0.1:2379",
                "false",
            ]
        ],
    )
    assert table == (
        "+------------------+---------+--------+------------------------+-----------------------+------------+\n"
        "|        ID        | STATUS  |  NAME  |       PEER ADDRS       |     CLIENT ADDRS      | IS LEARNER |\n"
        "+------------------+---------+--------+------------------------+-----------------------+------------+\n"
        "| 8211f1d0f64f3269 | started | infra1 | http://127.0.0.1:12380 | http://127.0.0.1:2379 |      false |\n"
        "+------------------+---------+--------+------------------------+-----------------------+------------+\n"
    )


def test_render_table_wraps_long_cells_at_spaces() -> None:
    table = render_table(
        ["error"], [["etcdserver: request timed out, possibly due to previous leader failure"]]
    )
    lines = table.splitlines()
    assert all(len(line) == len(lines[0]) for line in lines)
    assert "| etcdserver: request timed out, |" in lines


def test_prefix_end() -> None:
    assert prefix_end(b"abc") == b"abd"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\x00"


def test_argify_quotes() -> None:
    assert argify("put k \"a b\\n\" 'c d'") == ["put", "k", "a b\n", "c d"]


@pytest.mark.parametrize(
    ("text", "base", "signed", "value"),
    [
        ("10", 10, True, 10),
        ("-5", 10, True, -5),
        ("+7", 10, True, 7),
        ("ff", 16, True, 255),
        ("FF", 16, False, 255),
    ],
)
def test_parse_go_int(text: str, base: int, signed: bool, value: int) -> None:
    from petcd.cli.etcdctl.gofmt import parse_go_int

    assert parse_go_int(text, base, signed) == value


@pytest.mark.parametrize(
    ("text", "base", "signed", "message"),
    [
        ("0x10", 16, True, 'strconv.ParseInt: parsing "0x10": invalid syntax'),
        ("1_0", 10, True, 'strconv.ParseInt: parsing "1_0": invalid syntax'),
        (" 1", 10, True, 'strconv.ParseInt: parsing " 1": invalid syntax'),
        ("-1", 16, False, 'strconv.ParseUint: parsing "-1": invalid syntax'),
        ("8000000000000000", 16, True, 'strconv.ParseInt: parsing "8000000000000000": value out of range'),
        ("", 10, True, 'strconv.ParseInt: parsing "": invalid syntax'),
    ],
)
def test_parse_go_int_rejects(text: str, base: int, signed: bool, message: str) -> None:
    from petcd.cli.etcdctl.gofmt import parse_go_int

    with pytest.raises(ValueError) as err:
        parse_go_int(text, base, signed)
    assert str(err.value) == message
