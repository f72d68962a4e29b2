"""etcdutl's help and usage text, as etcdutl 3.6 prints it: cobra 1.8's default templates.

Unlike etcdctl, etcdutl keeps cobra's own usage template (it only makes ``--help`` print the usage),
so its text is cobra's "Usage: / Available Commands: / Flags: / Global Flags:" layout with pflag's
``FlagUsages`` lines: ``  -w, --write-out string   usage (default "simple")``, the type name after
the flag (none for booleans), the usage column aligned with spaces, and ``(default ...)`` for a
default that is not the type's zero value. Imported only on help and usage errors.
"""

from __future__ import annotations

from petcd.cli.etcdctl.flags import BOOL, INT, STRING, Flag
from petcd.cli.etcdctl.gofmt import go_quote
from petcd.cli.etcdctl.help import levenshtein

TYPE_CHECKING = False
if TYPE_CHECKING:
    from petcd.cli.etcdutl import Invocation

# command path -> (Use, Short, Long); groups have no handler
USE: dict[tuple[str, ...], tuple[str, str, str]] = {
    (): ("etcdutl", "An administrative command line tool for etcd3.", ""),
    ("defrag",): ("defrag", "Defragments the storage of the etcd", ""),
    ("snapshot",): ("snapshot <subcommand>", "Manages etcd node snapshots", ""),
    ("snapshot", "restore"): (
        "restore <filename> --data-dir {output dir} [options]",
        "Restores an etcd member snapshot to an etcd directory",
        "",
    ),
    ("snapshot", "status"): (
        "status <filename>",
        "Gets backend snapshot status of a given file",
        "When --write-out is set to simple, this command prints out comma-separated status lists for each "
        "endpoint.\nThe items in the lists are hash, revision, total keys, total size.\n",
    ),
    ("hashkv",): ("hashkv <filename>", "Prints the KV history hash of a given file", ""),
    ("version",): ("version", "Prints the version of etcdutl", ""),
    ("completion",): ("completion [bash|zsh|fish|powershell]", "Generate completion script", ""),
    ("help",): ("help [command]", "Help about any command", ""),
}
# the order etcdutl registers its commands (cobra suggests in this order)
REGISTRATION_ORDER = ["defrag", "snapshot", "hashkv", "version", "completion"]
# pflag type names shown after a flag (``Value.Type()``, int64/uint64 shown as int/uint)
TYPE_NAMES = {("restore", "bump-revision"): "uint", ("restore", "initial-memory-map-size"): "uint"}


def _children(path: tuple[str, ...]) -> list[str]:
    from petcd.cli.etcdutl import COMMANDS

    names = {p[len(path)] for p in USE if len(p) == len(path) + 1 and p[: len(path)] == path}
    if not path:
        names |= {p[0] for p in COMMANDS}
    return sorted(names)


def flag_usages(flags: list[Flag], command: str) -> str:
    """pflag's ``FlagUsages``: sorted by name, usage column aligned two spaces past the longest."""
    rows = []
    for f in sorted(flags, key=lambda f: f.name):
        head = f"  -{f.short}, --{f.name}" if f.short else f"      --{f.name}"
        if f.kind != BOOL:
            head += " " + TYPE_NAMES.get((command, f.name), "string" if f.kind == STRING else "int")
        text = f.help
        if f.kind == STRING and f.default:
            text += f" (default {go_quote(str(f.default))})"
        elif f.kind == INT and f.default:
            text += f" (default {f.default})"
        elif f.kind == BOOL and f.default:
            text += " (default true)"
        rows.append((head, text))
    width = max(len(h) for h, _ in rows)
    return "".join(f"{h}{' ' * (width - len(h))}   {t}\n" for h, t in rows)


def usage(path: tuple[str, ...]) -> str:
    """cobra's default usage text for the etcdutl command at ``path``."""
    from petcd.cli.etcdutl import COMMANDS, GLOBAL_FLAGS

    use, _, _ = USE[path]
    command_path = " ".join(("etcdutl", *path))
    runnable = path in COMMANDS or path == ("help",)
    children = [] if path == ("help",) else _children(path)
    local: list[Flag] = [] if path else list(GLOBAL_FLAGS)
    if path in COMMANDS:
        local += COMMANDS[path][1]
    local.append(Flag("help", BOOL, False, f"help for {path[-1] if path else 'etcdutl'}", "h"))

    text = "Usage:"
    if runnable:
        use_line = " ".join(("etcdutl", *path[:-1], use)) if path else use
        if "[flags]" not in use_line and path != ("completion",):  # DisableFlagsInUseLine
            use_line += " [flags]"
        text += f"\n  {use_line}"
    if children:
        text += f"\n  {command_path} [command]"
    if children:
        text += "\n\nAvailable Commands:"
        width = max(11, *(len(c) for c in children))
        for name in children:
            text += f"\n  {name.ljust(width)} {USE[(*path, name)][1]}"
    text += "\n\nFlags:\n" + flag_usages(local, path[-1] if path else "").rstrip()
    if path:
        text += "\n\nGlobal Flags:\n" + flag_usages(list(GLOBAL_FLAGS), "").rstrip()
    if children:
        text += f'\n\nUse "{command_path} [command] --help" for more information about a command.'
    return text + "\n"


def suggestions(word: str) -> str:
    found = [n for n in REGISTRATION_ORDER if levenshtein(word, n) <= 2 or n.startswith(word.lower())]
    return "\n\nDid you mean this?\n" + "".join(f"\t{n}\n" for n in found) if found else ""


def help_command(inv: Invocation) -> int:
    """``etcdutl help [command]``."""
    import sys

    from petcd.cli.etcdutl import _find_next

    path: tuple[str, ...] = ()
    for word in inv.args:
        if not _children(path):
            break
        name = _find_next(path, word)
        if name is None:
            if not path:
                # cobra's default usage function writes the root's usage to stderr here
                topic = " ".join(f"`{a}`" for a in inv.args)
                sys.stderr.write(f"Unknown help topic [{topic}]\n{usage(())}")
                return 0
            break
        path = (*path, name)
        if name == "help":
            break
    sys.stdout.write(usage(path))
    return 0
