"""A small data-driven test runner in the style of cockroachdb/datadriven.

A scenario file is a sequence of test cases. Each case is a directive line, optional input lines,
a `----` separator and the expected output::

    # comments start with '#'
    add-nodes 3 voters=(1,2,3) index=2
    ----
    ok

    propose-conf-change 1 transition=explicit
    v2 l3
    ----
    ok

The expected output runs until the first blank line. Output that itself contains blank lines is
written between a doubled separator, closed by a doubled separator::

    stabilize
    ----
    ----
    first part

    second part
    ----
    ----

A directive line is a command followed by arguments: `key`, `key=value` or `key=(v1, v2, ...)`.
A line ending in a backslash continues on the next line.

`run_file` runs every case through a handler and collects the differences from the expected
output; with `rewrite=True` it instead writes the actual output back into the file, keeping the
comments, directives and inputs byte for byte.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SEPARATOR = "----"


class ParseError(Exception):
    """The scenario file is malformed (a bug in the test data, not in the code under test)."""


@dataclass(frozen=True, slots=True)
class CmdArg:
    key: str
    vals: tuple[str, ...] = ()

    def __str__(self) -> str:
        if not self.vals:
            return self.key
        if len(self.vals) == 1:
            return f"{self.key}={self.vals[0]}"
        return f"{self.key}=({', '.join(self.vals)})"


@dataclass(slots=True)
class TestData:
    """One case of a scenario file."""

    __test__ = False  # not a pytest test class

    pos: str  # "file:line" of the directive, for messages
    cmd: str
    cmd_args: list[CmdArg]
    input: str
    expected: str
    # Line span (0-based, end exclusive) of the expected-output block including the separator(s),
    # so the rewriter can replace exactly that part of the file.
    out_start: int = 0
    out_end: int = 0

    def has_arg(self, key: str) -> bool:
        return any(a.key == key for a in self.cmd_args)

    def arg(self, key: str) -> CmdArg | None:
        for a in self.cmd_args:
            if a.key == key:
                return a
        return None

    def positional(self) -> list[str]:
        """The arguments that have no value, in order (typically node ids)."""
        return [a.key for a in self.cmd_args if not a.vals]

    def fatal(self, msg: str) -> ParseError:
        return ParseError(f"{self.pos}: {self.cmd}: {msg}")


_ARG_RE = re.compile(r"([^\s=]+)(?:=(\([^)]*\)|\S*))?")


def parse_line(line: str) -> tuple[str, list[CmdArg]]:
    """Split a directive line into its command and arguments."""
    line = line.strip()
    if not line:
        raise ParseError("empty directive")
    parts = line.split(None, 1)
    cmd = parts[0]
    rest = parts[1] if len(parts) > 1 else ""
    args: list[CmdArg] = []
    pos = 0
    while pos < len(rest):
        if rest[pos].isspace():
            pos += 1
            continue
        m = _ARG_RE.match(rest, pos)
        if m is None or m.end() == pos:
            raise ParseError(f"cannot parse argument at {rest[pos:]!r}")
        key, raw = m.group(1), m.group(2)
        if raw is None:
            args.append(CmdArg(key))
        elif raw.startswith("("):
            inner = raw[1:-1]
            vals = tuple(v for v in re.split(r"[,\s]+", inner.strip()) if v)
            args.append(CmdArg(key, vals))
        else:
            args.append(CmdArg(key, (raw,)))
        pos = m.end()
    return cmd, args


def parse(text: str, name: str = "<input>") -> list[TestData]:
    """Parse a whole scenario file."""
    lines = text.split("\n")
    cases: list[TestData] = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        directive = line
        while directive.endswith("\\"):
            i += 1
            if i >= n:
                raise ParseError(f"{name}:{start + 1}: continuation at end of file")
            directive = directive[:-1] + " " + lines[i].strip()
        i += 1
        cmd, args = parse_line(directive)
        input_lines: list[str] = []
        while i < n and lines[i] != SEPARATOR:
            if not lines[i].strip():
                raise ParseError(f"{name}:{start + 1}: {cmd}: blank line before '{SEPARATOR}'")
            input_lines.append(lines[i])
            i += 1
        if i >= n:
            raise ParseError(f"{name}:{start + 1}: {cmd}: missing '{SEPARATOR}'")
        out_start = i
        i += 1
        out_lines: list[str] = []
        if i < n and lines[i] == SEPARATOR:
            # Doubled separator: the output may contain blank lines and ends at a doubled separator.
            i += 1
            while True:
                if i >= n:
                    raise ParseError(f"{name}:{start + 1}: {cmd}: unterminated '{SEPARATOR}' block")
                if lines[i] == SEPARATOR and i + 1 < n and lines[i + 1] == SEPARATOR:
                    i += 2
                    break
                out_lines.append(lines[i])
                i += 1
        else:
            while i < n and lines[i].strip():
                out_lines.append(lines[i])
                i += 1
        cases.append(
            TestData(
                pos=f"{name}:{start + 1}",
                cmd=cmd,
                cmd_args=args,
                input="\n".join(input_lines),
                expected="\n".join(out_lines),
                out_start=out_start,
                out_end=i,
            )
        )
    return cases


def _normalize(output: str) -> str:
    """Strip trailing whitespace on each line and trailing newlines, as the file format does."""
    return "\n".join(line.rstrip() for line in output.rstrip("\n").split("\n"))


def format_output_block(output: str) -> list[str]:
    """The lines of an expected-output block (separator included) that hold `output`."""
    out = _normalize(output)
    body = out.split("\n") if out else [""]
    if any(not line.strip() for line in body) and out:
        return [SEPARATOR, SEPARATOR, *body, SEPARATOR, SEPARATOR]
    return [SEPARATOR, *body]


@dataclass(slots=True)
class Mismatch:
    pos: str
    directive: str
    expected: str
    actual: str

    def __str__(self) -> str:
        diff = "\n".join(
            difflib.unified_diff(
                self.expected.split("\n"),
                self.actual.split("\n"),
                "expected",
                "actual",
                lineterm="",
            )
        )
        return f"{self.pos}: {self.directive}\n{diff}"


@dataclass(slots=True)
class RunResult:
    mismatches: list[Mismatch] = field(default_factory=list)
    rewritten: bool = False
    cases: int = 0


Handler = Callable[[TestData], str]


def run_text(text: str, handler: Handler, name: str = "<input>") -> tuple[RunResult, str]:
    """Run every case of `text`; return the result and the text with actual outputs filled in."""
    cases = parse(text, name)
    lines = text.split("\n")
    result = RunResult(cases=len(cases))
    new_lines: list[str] = []
    last = 0
    for d in cases:
        actual = _normalize(handler(d))
        if actual != _normalize(d.expected):
            directive = " ".join([d.cmd, *(str(a) for a in d.cmd_args)])
            result.mismatches.append(Mismatch(d.pos, directive, _normalize(d.expected), actual))
        new_lines.extend(lines[last : d.out_start])
        new_lines.extend(format_output_block(actual))
        last = d.out_end
    new_lines.extend(lines[last:])
    return result, "\n".join(new_lines)


def run_file(path: Path, handler: Handler, rewrite: bool = False) -> RunResult:
    """Run a scenario file; with `rewrite`, write the actual outputs back into it."""
    text = path.read_text()
    result, new_text = run_text(text, handler, path.name)
    if rewrite and new_text != text:
        path.write_text(new_text)
        result.rewritten = True
    return result
