"""etcdctl's help and usage text, as etcd 3.6 prints it (cobra 1.8 driven by etcd's own template).

Imported only when help is shown or a command line is rejected, so none of this costs the common
commands any start-up time. Three pieces reproduce etcd's bytes:

* the usage template of etcd's ``cobrautl.UsageFunc``: NAME, USAGE, VERSION (root only), API
  VERSION and COMMANDS (commands with subcommands), Examples, DESCRIPTION (the ``Long`` text),
  OPTIONS (the command's own flags plus ``-h``) and GLOBAL OPTIONS (flags inherited from parents),
  each line indented by two spaces;
* the flag lines of etcd's ``etcdFlagUsages``: ``  -w, --write-out="simple"<TAB>usage``, strings
  quoted Go-style, booleans as ``--flag[=false]``, flags sorted by name;
* Go's ``text/tabwriter`` (min width 0, tab width 8, padding 1, tabs as padding) that etcd pipes
  all of it through, which aligns the COMMANDS and flag columns with tabs.

The ``Use``/``Long``/``Example`` strings of each command are etcd's (the short descriptions and flag
usages live in the command table of ``petcd.cli.etcdctl``). cobra's own behaviour around them is
here too: the ``help`` command, prefix matching of command names, and the "Did you mean this?"
suggestions after an unknown command.
"""

from __future__ import annotations

import sys

from petcd.cli.etcdctl import API_VERSION, COMMANDS, GLOBAL_FLAGS, HELP_COMMAND, VERSION, Command, find_next
from petcd.cli.etcdctl.flags import BOOL, DURATION, STRING, STRINGS, Flag
from petcd.cli.etcdctl.gofmt import go_duration, go_quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from petcd.cli.etcdctl.context import Context

INDENT = "  "

_SNAPSHOT_EXAMPLE = "\n".join(
    INDENT + line
    for line in [
        "# Save snapshot to a given file",
        "etcdctl snapshot save /backup/etcd-snapshot.db",
        "",
        "# Get snapshot from given address and save it to file",
        "etcdctl snapshot save --endpoints=127.0.0.1:3000 /backup/etcd-snapshot.db",
        "",
        "# Get snapshot from given address with certificates",
        "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/etcd/ca.crt --cert=/etc/etcd/etcd.crt "
        "--key=/etc/etcd/etcd.key snapshot save /backup/etcd-snapshot.db",
        "",
        "# Get snapshot wih certain user and password",
        "etcdctl --user=root --password=password123 snapshot save /backup/etcd-snapshot.db",
        "",
        "# Get snapshot from given address with timeout",
        "etcdctl --endpoints=https://127.0.0.1:2379 --dial-timeout=20s snapshot save "
        "/backup/etcd-snapshot.db",
        "",
        "# Save snapshot with desirable time format",
        "etcdctl snapshot save /mnt/backup/etcd/backup_$(date +%Y%m%d_%H%M%S).db",
    ]
)

# command path -> (Use, Long, Example); commands missing here use their bare name and no text
USE: dict[str, tuple[str, str, str]] = {
    "get": ("get [options] <key> [range_end]", "", ""),
    "put": (
        "put [options] <key> <value> (<value> can also be given from stdin)",
        """
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
""",
        "",
    ),
    "del": ("del [options] <key> [range_end]", "", ""),
    "txn": (
        "txn [options]",
        """\
Txn reads multiple etcd requests from standard input and applies them as a single atomic transaction.

A transaction consists of three components:
1) a list of conditions,
2) a list of requests to apply if all the conditions are true,
3) a list of requests to apply if any condition is false.

Example interactive stdin usage:

---
etcdctl txn -i
# compares:
mod("key1") > "0"

# success requests (get, put, delete):
put key1 "overwrote-key1"

# failure requests (get, put, delete):
put key1 "created-key1"
put key2 "some extra key"
---

Refer to https://github.com/etcd-io/etcd/blob/main/etcdctl/README.md#txn-options.""",
        "",
    ),
    "compaction": ("compaction [options] <revision>", "", ""),
    "alarm": ("alarm <subcommand>", "", ""),
    "endpoint": ("endpoint <subcommand>", "", ""),
    "endpoint status": (
        "status",
        "When --write-out is set to simple, this command prints out comma-separated status lists for each "
        "endpoint.\nThe items in the lists are endpoint, ID, version, db size, is leader, is learner, raft "
        "term, raft index, raft applied index, errors.\n",
        "",
    ),
    "move-leader": ("move-leader <transferee-member-id>", "", ""),
    "watch": ("watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]", "", ""),
    "lease": ("lease <subcommand>", "", ""),
    "lease grant": ("grant <ttl>", "", ""),
    "lease revoke": ("revoke <leaseID>", "", ""),
    "lease timetolive": ("timetolive <leaseID> [options]", "", ""),
    "lease keep-alive": ("keep-alive [options] <leaseID>", "", ""),
    "member": ("member <subcommand>", "", ""),
    "member add": ("add <memberName> [options]", "", ""),
    "member remove": ("remove <memberID>", "", ""),
    "member update": ("update <memberID> [options]", "", ""),
    "member list": (
        "list",
        "When --write-out is set to simple, this command prints out comma-separated member lists for each "
        "endpoint.\nThe items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.\n",
        "",
    ),
    "member promote": (
        "promote <memberID>",
        "Promotes a non-voting learner member to a voting one in the cluster.\n",
        "",
    ),
    "snapshot": ("snapshot <subcommand>", "", _SNAPSHOT_EXAMPLE),
    "snapshot save": ("save <filename>", "", _SNAPSHOT_EXAMPLE),
    "make-mirror": ("make-mirror [options] <destination>", "", ""),
    "lock": ("lock <lockname> [exec-command arg1 arg2 ...]", "", ""),
    "elect": ("elect <election-name> [proposal]", "", ""),
    "auth": ("auth <enable or disable>", "", ""),
    "user": ("user <subcommand>", "", ""),
    "user add": ("add <user name or user:password> [options]", "", ""),
    "user delete": ("delete <user name>", "", ""),
    "user get": ("get <user name> [options]", "", ""),
    "user passwd": ("passwd <user name> [options]", "", ""),
    "user grant-role": ("grant-role <user name> <role name>", "", ""),
    "user revoke-role": ("revoke-role <user name> <role name>", "", ""),
    "role": ("role <subcommand>", "", ""),
    "role add": ("add <role name>", "", ""),
    "role delete": ("delete <role name>", "", ""),
    "role get": ("get <role name>", "", ""),
    "role grant-permission": (
        "grant-permission [options] <role name> <permission type> <key> [endkey]",
        "",
        "",
    ),
    "role revoke-permission": ("revoke-permission <role name> <key> [endkey]", "", ""),
    "check": ("check <subcommand>", "", ""),
    "check perf": ("perf [options]", "", ""),
    "check datascale": (
        "datascale [options]",
        "If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first "
        "endpoint will be used.",
        "",
    ),
    "completion": (
        "completion [bash|zsh|fish|powershell]",
        """To load completions:

Bash:

  $ source <(etcdctl completion bash)

  # To load completions for each session, execute once:
  # Linux:
  $ etcdctl completion bash > /etc/bash_completion.d/etcdctl
  # macOS:
  $ etcdctl completion bash > /usr/local/etc/bash_completion.d/etcdctl

Zsh:

  # If shell completion is not already enabled in your environment,
  # you will need to enable it.  You can execute the following once:

  $ echo "autoload -U compinit; compinit" >> ~/.zshrc

  # To load completions for each session, execute once:
  $ etcdctl completion zsh > "${fpath[1]}/_etcdctl"

  # You will need to start a new shell for this setup to take effect.

fish:

  $ etcdctl completion fish | source

  # To load completions for each session, execute once:
  $ etcdctl completion fish > ~/.config/fish/completions/etcdctl.fish

PowerShell:

  PS> etcdctl completion powershell | Out-String | Invoke-Expression

  # To load completions for every new session, run:
  PS> etcdctl completion powershell > etcdctl.ps1
  # and source this file from your PowerShell profile.
""",
        "",
    ),
    "downgrade": ("downgrade <TARGET_VERSION>", "", ""),
    "downgrade validate": ("validate <TARGET_VERSION>", "", ""),
    "downgrade enable": ("enable <TARGET_VERSION>", "", ""),
    "help": (
        "help [command]",
        "Help provides help for any command in the application.\n"
        "Simply type etcdctl help [path to command] for full details.",
        "",
    ),
}

NO_FLAGS_IN_USE_LINE = {"completion"}  # cobra's DisableFlagsInUseLine

# the order etcdctl registers its commands (cobra suggests in this order); help comes last
REGISTRATION_ORDER = [
    "get",
    "put",
    "del",
    "txn",
    "compaction",
    "alarm",
    "defrag",
    "endpoint",
    "move-leader",
    "watch",
    "version",
    "lease",
    "member",
    "snapshot",
    "make-mirror",
    "lock",
    "elect",
    "auth",
    "user",
    "role",
    "check",
    "completion",
    "downgrade",
]


# ---- Go's text/tabwriter -------------------------------------------------------------------------


def tabwrite(text: str, tabwidth: int = 8, padding: int = 1) -> str:
    """``text`` through a Go ``tabwriter.Writer`` set up as ``Init(w, 0, tabwidth, padding, '\\t', 0)``.

    Cells end at a tab; the text after a line's last tab is no cell. Consecutive lines that have a
    cell in column c form a block whose cells are padded (with tabs, to a multiple of the tab
    width) to the block's widest cell plus the padding; nested columns recurse within the block.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def pad(textw: int, cellw: int) -> None:
        cellw = (cellw + tabwidth - 1) // tabwidth * tabwidth
        out.append("\t" * ((cellw - textw + tabwidth - 1) // tabwidth))

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            for j, cell in enumerate(lines[i]):
                out.append(cell)
                if j < len(widths):
                    pad(len(cell), widths[j])
            if i + 1 < len(lines):
                out.append("\n")

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = 0
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "".join(out)


# ---- the template ----------------------------------------------------------------------------------


def _default_text(flag: Flag) -> str:
    if flag.kind == BOOL:
        return "true" if flag.default else "false"
    if flag.kind == DURATION:
        return go_duration(round(flag.default * 1e9))
    if flag.kind == STRINGS:
        return "[" + ",".join(flag.default) + "]"
    return str(flag.default)


def flag_usages(flags: list[Flag]) -> str:
    """etcd's ``etcdFlagUsages``: one line per flag, sorted by name, cells split by a tab."""
    out = []
    for f in sorted(flags, key=lambda f: f.name):
        if f.hidden:
            continue
        head = f"  -{f.short}, --{f.name}" if f.short else f"      --{f.name}"
        value = go_quote(f.default) if f.kind == STRING else _default_text(f)
        if f.kind == BOOL:  # pflag's NoOptDefVal: a boolean may stand alone
            head += f"[={value}]"
        else:
            head += f"={value}"
        out.append(f"{head}\t{f.help}\n")
    return "".join(out)


def _node(path: list[str]) -> Command | None:
    if path == ["help"]:
        return HELP_COMMAND
    table = COMMANDS
    node: Command | None = None
    for name in path:
        node = table.get(name)
        if node is None:
            return None
        table = node.subcommands
    return node


def _sub_commands(node_table: dict[str, Command], prefix: list[str], root: bool) -> list[tuple[str, Command]]:
    """cobra's depth-first walk of the subcommands, sorted by name; names relative to the start."""
    entries = dict(node_table)
    if root:
        entries["help"] = HELP_COMMAND
    out: list[tuple[str, Command]] = []
    for name in sorted(entries):
        cmd = entries[name]
        out.append((" ".join([*prefix, name]), cmd))
        out.extend(_sub_commands(cmd.subcommands, [*prefix, name], False))
    return out


def usage(path: list[str]) -> str:
    """The usage text etcdctl 3.6 prints for the command at ``path`` ([] is etcdctl itself)."""
    node = _node(path) if path else None
    if path and node is None:
        raise KeyError(" ".join(path))
    key = " ".join(path)
    use, long, example = USE.get(key, (path[-1] if path else "etcdctl", "", ""))
    name = path[-1] if path else "etcdctl"
    help_flag = Flag("help", BOOL, False, f"help for {name}", "h")
    if node is not None:
        parent = _node(path[:-1]) if len(path) > 1 else None
        inherited = [*GLOBAL_FLAGS, *(parent.flags if parent is not None else [])]
        local = [f for f in node.flags if f not in inherited] + [help_flag]
        short = node.short
        use_line = "etcdctl " + " ".join([*path[:-1], use])
    else:
        inherited = []
        local = [*GLOBAL_FLAGS, help_flag]
        short = "A simple command line client for etcd3."
        use_line = use
    if key not in NO_FLAGS_IN_USE_LINE and "[flags]" not in use_line:
        use_line += " [flags]"
    subs = node.subcommands if node is not None else COMMANDS

    text = f"NAME:\n{INDENT}{' '.join(path) or name} - {short}\n\nUSAGE:\n{INDENT}{use_line}\n"
    if not path:
        text += f"\nVERSION:\n{INDENT}{VERSION}\n"
    if subs:
        text += f"\nAPI VERSION:\n{INDENT}{API_VERSION}\n"
    if example:
        text += f"\nExamples:\n{example}\n"
    if subs:
        text += "\nCOMMANDS:\n"
        for cmd_name, cmd in _sub_commands(subs, [], not path):
            if cmd.target:  # cobra lists runnable commands only
                text += f"{INDENT}{cmd_name}\t{cmd.short}\n"
    if long:
        text += "\nDESCRIPTION:\n"
        for line in long.strip("\n\t ").split("\n"):
            text += f"{INDENT}{line}\n"
    text += "\nOPTIONS:\n" + flag_usages(local)
    if path:
        text += "\nGLOBAL OPTIONS:\n" + flag_usages(inherited)
    return tabwrite(text + "\n")


# ---- cobra's suggestions and help command -------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    a, b = a.lower(), b.lower()
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def suggestions(word: str) -> str:
    """The "Did you mean this?" block cobra appends to an unknown command's error."""
    found = [
        name
        for name in REGISTRATION_ORDER
        if levenshtein(word, name) <= 2 or name.lower().startswith(word.lower())
    ]
    if not found:
        return ""
    return "\n\nDid you mean this?\n" + "".join(f"\t{name}\n" for name in found)


def help_topic(args: list[str]) -> list[str] | None:
    """The command ``etcdctl help <args>`` shows (cobra's ``Find``); None for an unknown topic."""
    path: list[str] = []
    table = COMMANDS
    for word in args:
        if not table:
            break  # the rest are arguments of a command without subcommands
        cmd = find_next(table, word, not path)
        if cmd is None:
            # an unknown word after a group is an argument (cobra shows the group), at the root
            # it is an unknown command
            return path or None
        path.append(cmd.name)
        if cmd is HELP_COMMAND:
            break
        table = cmd.subcommands
    return path


def help_command(ctx: Context) -> int:
    """``etcdctl help [command]``: that command's help; an unknown one gets etcdctl's usage."""
    path = help_topic(list(ctx.args))
    if path is None:
        topic = " ".join(f"`{a}`" for a in ctx.args)
        sys.stderr.write(f"Unknown help topic [{topic}]\n")
        sys.stderr.flush()
        path = []
    ctx.out.write(usage(path).encode())
    return 0
