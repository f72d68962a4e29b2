"""Tests of the scenario file parser and of the rewrite machinery."""

from __future__ import annotations

from pathlib import Path

import pytest

from .datadriven import CmdArg, ParseError, TestData, parse, parse_line, run_file, run_text

SAMPLE = """\
# A comment.
add-nodes 3 voters=(1,2,3) index=2
----
ok

propose-conf-change 1 transition=explicit
v2 l3
r4
----
INFO proposed

# Output with a blank line inside needs the doubled separator.
stabilize 1 2
----
----
first

second
----
----

deliver-msgs drop=(2, 3) 1 \\
  type=MsgApp
----
no messages
"""


def test_parse_line_forms() -> None:
    cmd, args = parse_line("add-nodes 3 voters=(1,2, 3) learners=() index=2 prevote=true")
    assert cmd == "add-nodes"
    assert args == [
        CmdArg("3"),
        CmdArg("voters", ("1", "2", "3")),
        CmdArg("learners", ()),
        CmdArg("index", ("2",)),
        CmdArg("prevote", ("true",)),
    ]
    assert parse_line("voters-only voters=(1 2 3)")[1] == [CmdArg("voters", ("1", "2", "3"))]
    assert parse_line("campaign")[1] == []


def test_parse_line_rejects_empty() -> None:
    with pytest.raises(ParseError):
        parse_line("   ")


def test_parse_sample() -> None:
    cases = parse(SAMPLE, "sample.txt")
    assert [c.cmd for c in cases] == ["add-nodes", "propose-conf-change", "stabilize", "deliver-msgs"]
    assert cases[0].pos == "sample.txt:2"
    assert cases[0].expected == "ok"
    assert cases[1].input == "v2 l3\nr4"
    assert cases[1].arg("transition") == CmdArg("transition", ("explicit",))
    assert cases[1].expected == "INFO proposed"
    assert cases[2].expected == "first\n\nsecond"
    assert cases[2].positional() == ["1", "2"]
    assert cases[3].cmd_args == [CmdArg("drop", ("2", "3")), CmdArg("1"), CmdArg("type", ("MsgApp",))]
    assert cases[3].expected == "no messages"


@pytest.mark.parametrize(
    "text",
    [
        "campaign 1\n",  # no separator
        "campaign 1\n----\n----\nunterminated\n",
        "campaign 1\n\n----\nok\n",  # blank line between directive and separator
    ],
)
def test_parse_errors(text: str) -> None:
    with pytest.raises(ParseError):
        parse(text)


def _echo(d: TestData) -> str:
    """A handler whose output is its directive, plus the input lines reversed."""
    out = " ".join([d.cmd, *(str(a) for a in d.cmd_args)])
    if d.input:
        out += "\n" + "\n".join(reversed(d.input.split("\n")))
    if d.cmd == "gap":
        out += "\n\nafter gap"
    return out


def test_run_reports_mismatch_and_rewrite_is_fixed_point() -> None:
    text = "# keep me\nhello a=1\n----\nwrong\n\n# and me\ngap\nx\ny\n----\nalso wrong\n"
    result, rewritten = run_text(text, _echo)
    assert result.cases == 2
    assert [m.directive for m in result.mismatches] == ["hello a=1", "gap"]
    assert "-wrong" in str(result.mismatches[0]) and "+hello a=1" in str(result.mismatches[0])
    assert rewritten == (
        "# keep me\nhello a=1\n----\nhello a=1\n\n# and me\ngap\nx\ny\n----\n----\ngap\ny\nx\n\n"
        "after gap\n----\n----\n"
    )
    again, same = run_text(rewritten, _echo)
    assert not again.mismatches
    assert same == rewritten


def test_rewrite_can_shrink_a_doubled_block() -> None:
    text = "hello\n----\n----\nold\n\nblock\n----\n----\n\nhello\n----\nhello\n"
    result, rewritten = run_text(text, _echo)
    assert len(result.mismatches) == 1
    assert rewritten == "hello\n----\nhello\n\nhello\n----\nhello\n"


def test_run_file_rewrites_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text("hello\n----\nbye\n")
    result = run_file(path, _echo)
    assert len(result.mismatches) == 1 and not result.rewritten
    assert path.read_text() == "hello\n----\nbye\n"
    result = run_file(path, _echo, rewrite=True)
    assert result.rewritten
    assert path.read_text() == "hello\n----\nhello\n"
    assert not run_file(path, _echo).mismatches
