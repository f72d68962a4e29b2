"""A command-line parser with spf13/pflag's rules, the ones etcdctl users type against.

Why not argparse or click: pflag accepts ``--flag=value`` and ``--flag value``, booleans only as
``--flag`` or ``--flag=false``, global flags before or after the command, ``--`` to end flags
(``watch`` runs the words after it), and reports ``unknown flag: --x`` / ``flag needs an argument``
in its own words; matching that with argparse takes more code than this, and importing click costs
more start-up time than this whole tool may spend (see benchmarks/etcdctl_startup.py).
"""

from __future__ import annotations

from petcd.cli.etcdctl.gofmt import go_quote, parse_go_duration, parse_go_int

BOOL = "bool"
STRING = "string"
INT = "int"
DURATION = "duration"
STRINGS = "strings"  # comma-separated list (StringSlice)

TYPE_CHECKING = False  # typing and dataclasses are not imported at run time: start-up time
if TYPE_CHECKING:
    from typing import Any


class UsageError(Exception):
    """A command line pflag/cobra would reject: etcdctl prints ``Error: <msg>`` and the usage of the
    command it had reached (``path``), and exits 1."""

    def __init__(self, message: str, path: list[str] | None = None) -> None:
        super().__init__(message)
        self.path = path


class UnknownCommand(UsageError):
    """A word that names no command of etcdctl (cobra answers without the usage text)."""


class Flag:
    __slots__ = ("default", "help", "hidden", "kind", "name", "short")

    def __init__(
        self, name: str, kind: str, default: Any, help: str = "", short: str = "", *, hidden: bool = False
    ) -> None:
        self.name = name
        self.kind = kind
        self.default = default
        self.help = help
        self.short = short
        self.hidden = hidden  # accepted, not listed in the help text


class Parsed:
    """The result of parsing: flag values, which were given, positional args."""

    __slots__ = ("args", "changed", "dash_at", "env_conflict", "values")

    def __init__(self) -> None:
        self.env_conflict = ""  # an ETCDCTL_* variable whose flag was also given
        self.values: dict[str, Any] = {}
        self.changed: set[str] = set()
        self.args: list[str] = []
        self.dash_at = -1  # index in args where "--" was seen (cobra's ArgsLenAtDash), -1 if none


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def convert(flag: Flag, text: str) -> Any:
    if flag.kind == BOOL:
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax")
    if flag.kind == INT:
        return parse_go_int(text)
    if flag.kind == DURATION:
        return parse_go_duration(text)
    if flag.kind == STRINGS:
        return [p for p in text.split(",")] if text else []
    return text


def set_value(parsed: Parsed, flag: Flag, text: str, shown: str) -> None:
    try:
        value = convert(flag, text)
    except ValueError as err:
        raise UsageError(f'invalid argument {go_quote(text)} for "{shown}" flag: {err}') from None
    parsed.values[flag.name] = value
    parsed.changed.add(flag.name)


class FlagSet:
    """The flags known at one point of the parse (global plus the current command's)."""

    def __init__(self) -> None:
        self.long: dict[str, Flag] = {}
        self.short: dict[str, Flag] = {}

    def add(self, flags: list[Flag]) -> None:
        for f in flags:
            self.long[f.name] = f
            if f.short:
                self.short[f.short] = f

    def parse_one(self, argv: list[str], i: int, parsed: Parsed) -> int:
        """Consume the flag at argv[i]; return the index after it."""
        tok = argv[i]
        if tok.startswith("--"):
            name, eq, value = tok[2:].partition("=")
            flag = self.long.get(name)
            if flag is None:
                raise UsageError(f"unknown flag: --{name}")
            if eq:
                set_value(parsed, flag, value, f"--{name}")
                return i + 1
            if flag.kind == BOOL:
                set_value(parsed, flag, "true", f"--{name}")
                return i + 1
            if i + 1 >= len(argv):
                raise UsageError(f"flag needs an argument: --{name}")
            set_value(parsed, flag, argv[i + 1], f"--{name}")
            return i + 2
        # shorthand cluster: -w json, -wjson, -w=json, -i
        body = tok[1:]
        j = 0
        while j < len(body):
            ch = body[j]
            flag = self.short.get(ch)
            if flag is None:
                raise UsageError(
                    f"unknown shorthand flag: {go_quote(ch)[1:-1]!r} in -{body}".replace('"', "'")
                )
            rest = body[j + 1 :]
            if flag.kind == BOOL:
                if rest.startswith("="):
                    set_value(parsed, flag, rest[1:], f"-{ch}")
                    return i + 1
                set_value(parsed, flag, "true", f"-{ch}")
                j += 1
                continue
            if rest:
                set_value(parsed, flag, rest[1:] if rest.startswith("=") else rest, f"-{ch}")
                return i + 1
            if i + 1 >= len(argv):
                raise UsageError(f"flag needs an argument: {go_quote(ch)[1:-1]!r} in -{ch}".replace('"', "'"))
            set_value(parsed, flag, argv[i + 1], f"-{ch}")
            return i + 2
        return i + 1


class HelpRequested(Exception):
    """``-h``/``--help`` was given."""
