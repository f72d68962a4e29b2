"""Help and usage text: petcd's etcdctl against the reference etcdctl 3.4.23, and etcd 3.6's layout.

petcd prints etcdctl 3.6's help (etcd's ``cobrautl`` usage template, cobra 1.8). Against 3.4 every
line is compared after splitting it into its tab-separated cells; the exact bytes are compared where
the layout did not change (the flag blocks, which Go's tabwriter aligns). Differences on purpose,
each from etcd 3.5/3.6's source (etcdctl/ctlv3/ctl.go, pkg/cobrautl/help.go, ctlv3/command/*.go):

* 3.6 indents NAME, USAGE, VERSION, API VERSION, COMMANDS and DESCRIPTION lines with two spaces
  (3.4: a tab) and has one blank line before COMMANDS (3.4: two); versions 3.6.0 / 3.6;
* global flags --max-request-bytes and --max-recv-bytes (3.5);
* commands: 3.6 has ``auth status``, ``downgrade ...`` and its own ``completion [bash|zsh|fish|
  powershell]`` (3.4 had cobra's ``completion bash|fish|...`` subcommands), and no ``migrate``,
  ``snapshot restore``, ``snapshot status`` (moved to etcdutl);
* flags added since 3.4: get --count-only/--min-/--max-(create|mod)-rev, del --range, member list
  --consistency, endpoint hashkv --rev, watch --progress-notify, make-mirror --rev/--max-txn-ops/
  --dest-user/--dest-password; check perf --load's longer usage text; endpoint hashkv --rev's
  "(default: latest revision)" (3.4: "all revisions");
* defrag --data-dir is gone (etcdutl defrag does it);
* text added: txn's DESCRIPTION, snapshot's Examples, completion's DESCRIPTION;
* after a flag error 3.4's main prints ``Error: ...`` a second time; 3.6 only once (cobra's);
* ``lease keep-alive --once``: 3.6's text says "cobrautl.Exits immediately" (a search-and-replace
  slip in etcd's source); petcd keeps 3.4's "exits immediately".
"""

from __future__ import annotations

import os
import subprocess

import pytest
from etcdctl_harness import OURS, REF_ETCDCTL

from petcd.cli.etcdctl import COMMANDS
from petcd.cli.etcdctl.help import suggestions, tabwrite, usage

needs_ref = pytest.mark.skipif(not os.path.exists(REF_ETCDCTL), reason="reference etcdctl not installed")

PATHS = [[]] + [p for name, c in COMMANDS.items() for p in [[name]] + [[name, s] for s in c.subcommands]]
ONLY_IN_36 = {("downgrade",), ("downgrade", "validate"), ("downgrade", "enable"), ("downgrade", "cancel")}
ONLY_IN_36 |= {("auth", "status")}

# (command path) -> {section: (lines only in 3.6, lines only in 3.4)}, lines keyed by their first cell
GLOBAL_36 = {"--max-recv-bytes=0", "--max-request-bytes=0"}
CHANGES: dict[tuple[str, ...], dict[str, tuple[set[str], set[str]]]] = {
    (): {
        "COMMANDS:": (
            {"auth status", "completion", "downgrade cancel", "downgrade enable", "downgrade validate"},
            {"completion bash", "completion fish", "completion powershell", "completion zsh", "migrate"}
            | {"snapshot restore", "snapshot status"},
        ),
        "OPTIONS:": (GLOBAL_36, set()),
    },
    ("get",): {
        "OPTIONS:": (
            {"--count-only[=false]", "--max-create-rev=0", "--max-mod-rev=0", "--min-create-rev=0"}
            | {"--min-mod-rev=0"},
            set(),
        )
    },
    ("del",): {"OPTIONS:": ({"--range[=false]"}, set())},
    ("defrag",): {"OPTIONS:": (set(), {'--data-dir=""'})},
    ("member", "list"): {"OPTIONS:": ({'--consistency="l"'}, set())},
    ("endpoint", "hashkv"): {"OPTIONS:": ({"--rev=0"}, {"--rev=0"})},
    ("watch",): {"OPTIONS:": ({"--progress-notify[=false]"}, set())},
    ("check", "perf"): {"OPTIONS:": ({'--load="s"'}, {'--load="s"'})},
    ("make-mirror",): {
        "OPTIONS:": ({'--dest-password=""', '--dest-user=""', "--max-txn-ops=128", "--rev=0"}, set())
    },
    ("snapshot",): {"COMMANDS:": (set(), {"restore", "status"})},
    ("auth",): {"COMMANDS:": ({"status"}, set())},
}
NEW_SECTIONS = {("txn",): {"DESCRIPTION:"}, ("snapshot",): {"Examples:"}, ("snapshot", "save"): {"Examples:"}}


def sections(text: str) -> dict[str, list[str]]:
    """Section header -> its lines, each reduced to its cells (tabs and indentation dropped)."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.split("\n"):
        if line.endswith(":") and not line.startswith((" ", "\t")):
            current = line
            out[current] = []
            continue
        cells = [c.strip() for c in line.split("\t") if c.strip()]
        if cells:
            out.setdefault(current, []).append(" | ".join(cells))
    return out


def key(line: str) -> str:
    return line.split(" | ", maxsplit=1)[0]


def ref_help(path: list[str]) -> str:
    return subprocess.run(
        [REF_ETCDCTL, *path, "--help"], capture_output=True, text=True, check=True, timeout=30
    ).stdout


def ours_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    full_env.update(env or {})
    return subprocess.run(
        [*OURS, *args], capture_output=True, text=True, env=full_env, timeout=30, check=False
    )


def ref_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    return subprocess.run(
        [REF_ETCDCTL, *args], capture_output=True, text=True, env=env, timeout=30, check=False
    )


@needs_ref
@pytest.mark.parametrize(
    "path", [p for p in PATHS if tuple(p) not in ONLY_IN_36 and p != ["completion"]], ids=" ".join
)
def test_help_matches_34_but_for_36_changes(path: list[str]) -> None:
    ref = ref_help(path)
    ours = usage(path)
    ref_s, ours_s = sections(ref), sections(ours)
    changes = CHANGES.get(tuple(path), {})
    for name in set(ref_s) | set(ours_s):
        if name in NEW_SECTIONS.get(tuple(path), set()):
            assert name not in ref_s and name in ours_s
            continue
        added, removed = changes.get(name, (set(), set()))
        if name in ("GLOBAL OPTIONS:",) or (name == "OPTIONS:" and not path):
            added = added | GLOBAL_36
        if name == "VERSION:":
            assert (ref_s[name], ours_s[name]) == (["3.4.23"], ["3.6.0"])
            continue
        if name == "API VERSION:":
            assert (ref_s[name], ours_s[name]) == (["3.4"], ["3.6"])
            continue
        assert [line for line in ours_s.get(name, []) if key(line) not in added] == [
            line for line in ref_s.get(name, []) if key(line) not in removed
        ], name
    # byte for byte where 3.6 kept 3.4's layout: the aligned flag blocks (without 3.5's two new
    # global flags, which are not the widest and so do not move the column)
    ref_blocks = ref.split("\n\n")
    ours_blocks = [
        "\n".join(line for line in block.split("\n") if not line.startswith("      --max-re"))
        for block in ours.split("\n\n")
    ]
    for block in ref_blocks:
        if block.startswith(("OPTIONS:", "GLOBAL OPTIONS:")) and not changes.get(block.split("\n")[0]):
            assert block in ours_blocks
    # 3.6's indentation: the tab of 3.4 became two spaces
    assert ours.split("\n")[1] == "  " + ref.split("\n")[1][1:]
    assert ours.split("\n")[4] == "  " + ref.split("\n")[4][1:]


def test_tabwriter_as_go() -> None:
    # padding 1, tab width 8: cells padded with tabs to a multiple of 8 past the widest cell + 1
    assert tabwrite("a\tb\nccccccc\td\n") == "a\tb\nccccccc\td\n"
    assert tabwrite("a\tb\ncccccccc\td\n") == "a\t\tb\ncccccccc\td\n"
    # a line without a tab ends the block: the lines after it align on their own
    assert tabwrite("a\tb\nno tab\ncccccccc\td\n") == "a\tb\nno tab\ncccccccc\td\n"
    # a line with fewer cells ends the column block; nested columns align within their block
    assert tabwrite("a\tb\tc\nd\neeeeeeeeee\tf\tg\n") == "a\tb\tc\nd\neeeeeeeeee\tf\tg\n"
    assert tabwrite("x\ty\tz\nxx\tyyyyyyyyy\tz\n") == "x\ty\t\tz\nxx\tyyyyyyyyy\tz\n"
    assert tabwrite("\tx\n") == "\tx\n"


def test_36_root_layout() -> None:
    text = usage([])
    assert text.startswith(
        "NAME:\n  etcdctl - A simple command line client for etcd3.\n\nUSAGE:\n  etcdctl [flags]\n\n"
        "VERSION:\n  3.6.0\n\nAPI VERSION:\n  3.6\n\nCOMMANDS:\n  alarm disarm\t\t\tDisarms all alarms\n"
    )
    assert "  help\t\t\t\tHelp about any command\n" in text
    assert "  completion\t\t\tGenerate completion script\n" in text
    assert "auth-jwt-token" not in text  # etcdctl 3.7's flag, not in 3.6's help
    assert text.endswith(
        '  -w, --write-out="simple"\t\t\tset the output format (fields, json, protobuf, simple, table)\n\n'
    )
    assert "\nGLOBAL OPTIONS:" not in text


def test_36_examples_and_description() -> None:
    text = usage(["snapshot", "save"])
    assert (
        "\n\nExamples:\n  # Save snapshot to a given file\n"
        "  etcdctl snapshot save /backup/etcd-snapshot.db\n  \n" in text
    )
    assert text.index("Examples:") < text.index("OPTIONS:")
    completion = usage(["completion"])
    assert "USAGE:\n  etcdctl completion [bash|zsh|fish|powershell]\n" in completion  # no [flags]
    assert "DESCRIPTION:\n  To load completions:\n  \n  Bash:\n" in completion


def test_suggestions_in_registration_order() -> None:
    assert suggestions("gte") == "\n\nDid you mean this?\n\tget\n"
    assert suggestions("e") == "\n\nDid you mean this?\n\tget\n\tdel\n\tendpoint\n\telect\n"
    assert suggestions("zzzzzz") == ""


@needs_ref
@pytest.mark.parametrize(
    ("args", "path"),
    [
        (["get", "--bogus"], ["get"]),
        (["member", "list", "--bogus"], ["member", "list"]),
        (["get", "--limit"], ["get"]),
        (["get", "-x"], ["get"]),
        (["--bogus", "get"], []),  # cobra takes "get" for the value of the unknown flag
    ],
    ids=str,
)
def test_flag_error_prints_usage(args: list[str], path: list[str]) -> None:
    ours, ref = ours_cli(*args), ref_cli(*args)
    assert ours.returncode == ref.returncode == 1
    error = ref.stderr.split("\n")[0]
    # 3.4: error, empty line, error again (3.4's main); 3.6: error, empty line
    assert ref.stderr == f"{error}\n\n{error}\n"
    assert ours.stderr == f"{error}\n\n"
    assert sections(ours.stdout)["USAGE:"] == sections(ref.stdout)["USAGE:"]
    assert ours.stdout == usage(path)


@needs_ref
@pytest.mark.parametrize("word", ["frob", "gte", "e", "m"])
def test_unknown_command(word: str) -> None:
    ours, ref = ours_cli(word), ref_cli(word)
    assert ours.returncode == ref.returncode == 1
    assert ours.stdout == ref.stdout == ""
    # 3.4 repeats the error after cobra's lines; its list also names migrate (gone in 3.6)
    expected = ref.stderr[: ref.stderr.index("Run 'etcdctl --help' for usage.\n") + 32].replace(
        "\tmigrate\n", ""
    )
    assert ours.stderr == expected


@needs_ref
@pytest.mark.parametrize(
    ("args", "path"),
    [
        ([], []),
        (["-h"], []),
        (["help"], []),
        (["help", "get"], ["get"]),
        (["help", "member", "add"], ["member", "add"]),
        (["help", "mem", "frob"], ["member"]),
        (["member"], ["member"]),
        (["member", "frob"], ["member"]),
        (["mem", "lis", "--help"], ["member", "list"]),
        (["get", "k", "-h"], ["get"]),
        (["help", "help"], ["help"]),
    ],
    ids=str,
)
def test_help_paths(args: list[str], path: list[str]) -> None:
    ours, ref = ours_cli(*args), ref_cli(*args)
    assert ours.returncode == ref.returncode == 0
    assert ours.stderr == ref.stderr == ""
    assert ours.stdout == usage(path)
    assert sections(ours.stdout)["NAME:"] == sections(ref.stdout)["NAME:"]


@needs_ref
def test_unknown_help_topic() -> None:
    ours, ref = ours_cli("help", "frob"), ref_cli("help", "frob")
    assert ours.returncode == ref.returncode == 0
    assert ours.stderr == ref.stderr == "Unknown help topic [`frob`]\n"
    assert ours.stdout == usage([])


def test_prefix_matching_runs_the_command() -> None:
    out = ours_cli("vers")
    assert (out.returncode, out.stdout) == (0, "etcdctl version: 3.6.0\nAPI version: 3.6\n")
