"""petcd's etcdctl: etcd's v3 command-line client, same commands, flags, output and exit codes.

Start-up time is a feature here (people run etcdctl in shell loops), so this module imports only
the flag parser; each command's module is imported when that command runs, the common commands
talk through the JSON gateway client (standard library only), and grpc is imported only by the
commands that stream (watch, lease keep-alive, snapshot, lock, elect, ...).

The command table below mirrors etcdctl's: name, flags (pflag syntax, see ``flags``), and the
``module:function`` that runs it. Global flags can also come from ``ETCDCTL_<FLAG>`` environment
variables (a flag given both ways is an error when the command makes a client, as in etcd).
``ETCDCTL_API`` must be unset or 3.

Command lookup is cobra's: exact names, else a unique prefix (etcdctl enables prefix matching);
a word after a command group is an argument and shows the group's help. Help (``-h``/``--help``,
``etcdctl help <command>``, a group without subcommand) and the usage text cobra prints after a
flag error come from ``help``, imported only then; ``--discovery-srv`` lookups live in ``srv``.
"""

from __future__ import annotations

import os
import sys

from petcd.cli.etcdctl.errors import EXIT_ERROR, CtlError
from petcd.cli.etcdctl.flags import (
    BOOL,
    DURATION,
    INT,
    STRING,
    STRINGS,
    Flag,
    FlagSet,
    Parsed,
    UnknownCommand,
    UsageError,
)
from petcd.cli.etcdctl.gofmt import go_quote
from petcd.errors import EtcdError

VERSION = "3.6.0"
API_VERSION = "3.6"

GLOBAL_FLAGS = [
    Flag("endpoints", STRINGS, ["127.0.0.1:2379"], "gRPC endpoints"),
    Flag("debug", BOOL, False, "enable client-side debug logging"),
    Flag("write-out", STRING, "simple", "set the output format (fields, json, protobuf, simple, table)", "w"),
    Flag("hex", BOOL, False, "print byte strings as hex encoded strings"),
    Flag("dial-timeout", DURATION, 2.0, "dial timeout for client connections"),
    Flag("command-timeout", DURATION, 5.0, "timeout for short running command (excluding dial timeout)"),
    Flag("keepalive-time", DURATION, 2.0, "keepalive time for client connections"),
    Flag("keepalive-timeout", DURATION, 6.0, "keepalive timeout for client connections"),
    Flag(
        "max-request-bytes",
        INT,
        0,
        "client-side request send limit in bytes (if 0, it defaults to 2.0 MiB (2 * 1024 * 1024).)",
    ),
    Flag(
        "max-recv-bytes",
        INT,
        0,
        'client-side response receive limit in bytes (if 0, it defaults to "math.MaxInt32")',
    ),
    Flag("insecure-transport", BOOL, True, "disable transport security for client connections"),
    Flag("insecure-discovery", BOOL, True, "accept insecure SRV records describing cluster endpoints"),
    Flag(
        "insecure-skip-tls-verify",
        BOOL,
        False,
        "skip server certificate verification "
        "(CAUTION: this option should be enabled only for testing purposes)",
    ),
    Flag("cert", STRING, "", "identify secure client using this TLS certificate file"),
    Flag("key", STRING, "", "identify secure client using this TLS key file"),
    Flag("cacert", STRING, "", "verify certificates of TLS-enabled secure servers using this CA bundle"),
    # etcdctl 3.7's flag, accepted here but not listed in 3.6's help
    Flag(
        "auth-jwt-token",
        STRING,
        "",
        "JWT token used for authentication (if this option is used, --user and --password should not be set)",
        hidden=True,
    ),
    Flag("user", STRING, "", "username[:password] for authentication (prompt if password is not supplied)"),
    Flag(
        "password",
        STRING,
        "",
        "password for authentication (if this option is used, --user option shouldn't include password)",
    ),
    Flag(
        "discovery-srv", STRING, "", "domain name to query for SRV records describing cluster endpoints", "d"
    ),
    Flag("discovery-srv-name", STRING, "", "service name to query when using DNS discovery"),
]


class Command:
    __slots__ = ("flags", "name", "short", "subcommands", "target")

    def __init__(
        self,
        name: str,
        target: str = "",
        flags: list[Flag] | None = None,
        subcommands: dict[str, Command] | None = None,
        short: str = "",
    ) -> None:
        self.name = name
        self.target = target  # "module:function" under petcd.cli.etcdctl
        self.flags = flags or []
        self.subcommands = subcommands or {}
        self.short = short


def _c(name: str, target: str, short: str, *flags: Flag) -> Command:
    return Command(name, target, list(flags), short=short)


def _group(name: str, short: str, subs: list[Command], *flags: Flag) -> Command:
    # flags on a group are cobra persistent flags: every subcommand takes them
    for s in subs:
        s.flags = [*flags, *s.flags]
    return Command(name, "", list(flags), {s.name: s for s in subs}, short)


_CLUSTER = Flag("cluster", BOOL, False, "use all endpoints from the cluster member list")

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in [
        _c(
            "get",
            "kv:get_command",
            "Gets the key or a range of keys",
            Flag("consistency", STRING, "l", "Linearizable(l) or Serializable(s)"),
            Flag("order", STRING, "", "Order of results; ASCEND or DESCEND (ASCEND by default)"),
            Flag("sort-by", STRING, "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION"),
            Flag("limit", INT, 0, "Maximum number of results"),
            Flag("prefix", BOOL, False, "Get keys with matching prefix"),
            Flag(
                "from-key",
                BOOL,
                False,
                "Get keys that are greater than or equal to the given key using byte compare",
            ),
            Flag("rev", INT, 0, "Specify the kv revision"),
            Flag("keys-only", BOOL, False, "Get only the keys"),
            Flag("count-only", BOOL, False, "Get only the count"),
            Flag("print-value-only", BOOL, False, 'Only write values when using the "simple" output format'),
            Flag("min-mod-rev", INT, 0, "Minimum modification revision"),
            Flag("max-mod-rev", INT, 0, "Maximum modification revision"),
            Flag("min-create-rev", INT, 0, "Minimum create revision"),
            Flag("max-create-rev", INT, 0, "Maximum create revision"),
        ),
        _c(
            "put",
            "kv:put_command",
            "Puts the given key into the store",
            Flag("lease", STRING, "0", "lease ID (in hexadecimal) to attach to the key"),
            Flag("prev-kv", BOOL, False, "return the previous key-value pair before modification"),
            Flag("ignore-value", BOOL, False, "updates the key using its current value"),
            Flag("ignore-lease", BOOL, False, "updates the key using its current lease"),
        ),
        _c(
            "del",
            "kv:del_command",
            "Removes the specified key or range of keys [key, range_end)",
            Flag("prefix", BOOL, False, "delete keys with matching prefix"),
            Flag("prev-kv", BOOL, False, "return deleted key-value pairs"),
            Flag(
                "from-key",
                BOOL,
                False,
                "delete keys that are greater than or equal to the given key using byte compare",
            ),
            Flag("range", BOOL, False, "delete range of keys"),
        ),
        _c(
            "txn",
            "kv:txn_command",
            "Txn processes all the requests in one transaction",
            Flag("interactive", BOOL, False, "Input transaction in interactive mode", "i"),
        ),
        _c(
            "compaction",
            "kv:compaction_command",
            "Compacts the event history in etcd",
            Flag(
                "physical",
                BOOL,
                False,
                "'true' to wait for compaction to physically remove all old revisions",
            ),
        ),
        _group(
            "member",
            "Membership related commands",
            [
                _c(
                    "add",
                    "cluster:member_add",
                    "Adds a member into the cluster",
                    Flag("peer-urls", STRING, "", "comma separated peer URLs for the new member."),
                    Flag("learner", BOOL, False, "indicates if the new member is raft learner"),
                ),
                _c("remove", "cluster:member_remove", "Removes a member from the cluster"),
                _c(
                    "update",
                    "cluster:member_update",
                    "Updates a member in the cluster",
                    Flag("peer-urls", STRING, "", "comma separated peer URLs for the updated member."),
                ),
                _c(
                    "list",
                    "cluster:member_list",
                    "Lists all members in the cluster",
                    Flag("consistency", STRING, "l", "Linearizable(l) or Serializable(s)"),
                ),
                _c("promote", "cluster:member_promote", "Promotes a non-voting member in the cluster"),
            ],
        ),
        _group(
            "endpoint",
            "Endpoint related commands",
            [
                _c(
                    "health",
                    "cluster:endpoint_health",
                    "Checks the healthiness of endpoints specified in `--endpoints` flag",
                ),
                _c(
                    "status",
                    "cluster:endpoint_status",
                    "Prints out the status of endpoints specified in `--endpoints` flag",
                ),
                _c(
                    "hashkv",
                    "cluster:endpoint_hashkv",
                    "Prints the KV history hash for each endpoint in --endpoints",
                    Flag("rev", INT, 0, "maximum revision to hash (default: latest revision)"),
                ),
            ],
            _CLUSTER,
        ),
        _group(
            "lease",
            "Lease related commands",
            [
                _c("grant", "lease:grant", "Creates leases"),
                _c("revoke", "lease:revoke", "Revokes leases"),
                _c(
                    "timetolive",
                    "lease:timetolive",
                    "Get lease information",
                    Flag("keys", BOOL, False, "Get keys attached to this lease"),
                ),
                _c("list", "lease:list_leases", "List all active leases"),
                _c(
                    "keep-alive",
                    "lease:keep_alive",
                    "Keeps leases alive (renew)",
                    Flag(
                        "once",
                        BOOL,
                        False,
                        "Resets the keep-alive time to its original value and exits immediately",
                    ),
                ),
            ],
        ),
        _c(
            "watch",
            "watch:watch_command",
            "Watches events stream on keys or prefixes",
            Flag("interactive", BOOL, False, "Interactive mode", "i"),
            Flag("prefix", BOOL, False, "Watch on a prefix if prefix is set"),
            Flag("rev", INT, 0, "Revision to start watching"),
            Flag("prev-kv", BOOL, False, "get the previous key-value pair before the event happens"),
            Flag("progress-notify", BOOL, False, "get periodic watch progress notification from server"),
        ),
        _group(
            "alarm",
            "Alarm related commands",
            [
                _c("disarm", "cluster:alarm_disarm", "Disarms all alarms"),
                _c("list", "cluster:alarm_list", "Lists all alarms"),
            ],
        ),
        _c(
            "defrag",
            "cluster:defrag",
            "Defragments the storage of the etcd members with given endpoints",
            _CLUSTER,
        ),
        _group(
            "snapshot",
            "Manages etcd node snapshots",
            [_c("save", "cluster:snapshot_save", "Stores an etcd node backend snapshot to a given file")],
        ),
        _c("move-leader", "cluster:move_leader", "Transfers leadership to another etcd cluster member."),
        _c("version", "misc:version", "Prints the version of etcdctl"),
        _c("lock", "concurrency:lock", "Acquires a named lock", Flag("ttl", INT, 10, "timeout for session")),
        _c(
            "elect",
            "concurrency:elect",
            "Observes and participates in leader election",
            Flag("listen", BOOL, False, "observation mode", "l"),
        ),
        _group(
            "check",
            "commands for checking properties of the etcd cluster",
            [
                _c(
                    "perf",
                    "check:perf",
                    "Check the performance of the etcd cluster",
                    Flag(
                        "load",
                        STRING,
                        "s",
                        "The performance check's workload model. "
                        "Accepted workloads: s(small), m(medium), l(large), xl(xLarge). "
                        "Different workload models use different configurations in terms of number of "
                        "clients and expected throughput.",
                    ),
                    Flag(
                        "prefix",
                        STRING,
                        "/etcdctl-check-perf/",
                        "The prefix for writing the performance check's keys.",
                    ),
                    Flag(
                        "auto-compact",
                        BOOL,
                        False,
                        "Compact storage with last revision after test is finished.",
                    ),
                    Flag("auto-defrag", BOOL, False, "Defragment storage after test is finished."),
                ),
                _c(
                    "datascale",
                    "check:datascale",
                    "Check the memory usage of holding data for different workloads "
                    "on a given server endpoint.",
                    Flag(
                        "load",
                        STRING,
                        "s",
                        "The datascale check's workload model. "
                        "Accepted workloads: s(small), m(medium), l(large), xl(xLarge)",
                    ),
                    Flag(
                        "prefix",
                        STRING,
                        "/etcdctl-check-datascale/",
                        "The prefix for writing the datascale check's keys.",
                    ),
                    Flag(
                        "auto-compact",
                        BOOL,
                        False,
                        "Compact storage with last revision after test is finished.",
                    ),
                    Flag("auto-defrag", BOOL, False, "Defragment storage after test is finished."),
                ),
            ],
        ),
        _c(
            "make-mirror",
            "mirror:make_mirror",
            "Makes a mirror at the destination etcd cluster",
            Flag("prefix", STRING, "", "Key-value prefix to mirror"),
            Flag("rev", INT, 0, "Specify the kv revision to start to mirror"),
            Flag(
                "dest-prefix",
                STRING,
                "",
                "destination prefix to mirror a prefix to a different prefix in the destination cluster",
            ),
            Flag("no-dest-prefix", BOOL, False, "mirror key-values to the root of the destination cluster"),
            Flag(
                "dest-cert",
                STRING,
                "",
                "Identify secure client using this TLS certificate file for the destination cluster",
            ),
            Flag("dest-key", STRING, "", "Identify secure client using this TLS key file"),
            Flag(
                "dest-cacert",
                STRING,
                "",
                "Verify certificates of TLS enabled secure servers using this CA bundle",
            ),
            Flag("dest-insecure-transport", BOOL, True, "Disable transport security for client connections"),
            Flag(
                "dest-user",
                STRING,
                "",
                "Destination username[:password] for authentication (prompt if password is not supplied)",
            ),
            Flag(
                "dest-password",
                STRING,
                "",
                "Destination password for authentication (if this option is used, --user option shouldn't "
                "include password)",
            ),
            Flag(
                "max-txn-ops",
                INT,
                128,
                "Maximum number of operations permitted in a transaction during syncing updates.",
            ),
        ),
        _c("completion", "misc:completion", "Generate completion script"),
        _group(
            "auth",
            "Enable or disable authentication",
            [
                _c("enable", "auth:auth_enable", "Enables authentication"),
                _c("disable", "auth:auth_disable", "Disables authentication"),
                _c("status", "auth:auth_status", "Returns authentication status"),
            ],
        ),
        _group(
            "user",
            "User related commands",
            [
                _c(
                    "add",
                    "auth:user_add",
                    "Adds a new user",
                    Flag(
                        "interactive", BOOL, True, "Read password from stdin instead of interactive terminal"
                    ),
                    Flag("new-user-password", STRING, "", "Supply password from the command line flag"),
                    Flag("no-password", BOOL, False, "Create a user without password (CN based auth only)"),
                ),
                _c("delete", "auth:user_delete", "Deletes a user"),
                _c(
                    "get",
                    "auth:user_get",
                    "Gets detailed information of a user",
                    Flag("detail", BOOL, False, "Show permissions of roles granted to the user"),
                ),
                _c("list", "auth:user_list", "Lists all users"),
                _c(
                    "passwd",
                    "auth:user_passwd",
                    "Changes password of user",
                    Flag(
                        "interactive",
                        BOOL,
                        True,
                        "If true, read password from stdin instead of interactive terminal",
                    ),
                ),
                _c("grant-role", "auth:user_grant_role", "Grants a role to a user"),
                _c("revoke-role", "auth:user_revoke_role", "Revokes a role from a user"),
            ],
        ),
        _group(
            "role",
            "Role related commands",
            [
                _c("add", "auth:role_add", "Adds a new role"),
                _c("delete", "auth:role_delete", "Deletes a role"),
                _c("get", "auth:role_get", "Gets detailed information of a role"),
                _c("list", "auth:role_list", "Lists all roles"),
                _c(
                    "grant-permission",
                    "auth:role_grant_permission",
                    "Grants a key to a role",
                    Flag("prefix", BOOL, False, "grant a prefix permission"),
                    Flag(
                        "from-key",
                        BOOL,
                        False,
                        "grant a permission of keys that are greater than or equal to the given key "
                        "using byte compare",
                    ),
                ),
                _c(
                    "revoke-permission",
                    "auth:role_revoke_permission",
                    "Revokes a key from a role",
                    Flag("prefix", BOOL, False, "revoke a prefix permission"),
                    Flag(
                        "from-key",
                        BOOL,
                        False,
                        "revoke a permission of keys that are greater than or equal to the given key "
                        "using byte compare",
                    ),
                ),
            ],
        ),
        _group(
            "downgrade",
            "Downgrade related commands",
            [
                _c(
                    "validate",
                    "cluster:downgrade_validate",
                    "Validate downgrade capability before starting downgrade",
                ),
                _c("enable", "cluster:downgrade_enable", "Start a downgrade action to cluster"),
                _c("cancel", "cluster:downgrade_cancel", "Cancel the ongoing downgrade action to cluster"),
            ],
        ),
    ]
}


HELP_COMMAND = Command("help", "help:help_command", short="Help about any command")
HELP_FLAG = Flag("help", BOOL, False, "", "h")  # cobra gives every command -h/--help


class Invocation:
    """What the command line asked for: the command reached (``path``) and the parsed flags."""

    __slots__ = ("command", "parsed", "path")

    def __init__(self, path: list[str], command: Command | None, parsed: Parsed) -> None:
        self.path = path
        self.command = command  # None: etcdctl itself
        self.parsed = parsed

    @property
    def wants_help(self) -> bool:
        """-h/--help, or a command that only groups others (cobra shows its help)."""
        return bool(self.parsed.values.get("help")) or self.command is None or not self.command.target


def find_next(table: dict[str, Command], word: str, root: bool) -> Command | None:
    """cobra's lookup with etcdctl's ``EnablePrefixMatching``: the exact name, else a unique prefix."""
    cmd = table.get(word)
    if cmd is not None:
        return cmd
    if root and word == "help":
        return HELP_COMMAND
    names = [*table, "help"] if root else list(table)
    matches = [n for n in names if n.startswith(word)]
    if len(matches) != 1:
        return None
    return HELP_COMMAND if matches[0] == "help" and root else table[matches[0]]


def parse_command_line(argv: list[str], environ: dict[str, str]) -> Invocation:
    """Parse argv (without the program name) as cobra and pflag would."""
    fs = FlagSet()
    fs.add([*GLOBAL_FLAGS, HELP_FLAG])
    parsed = Parsed()
    node: Command | None = None
    path: list[str] = []
    i = 0
    try:
        while i < len(argv):
            tok = argv[i]
            if tok == "--":
                parsed.dash_at = len(parsed.args)
                parsed.args.extend(argv[i + 1 :])
                break
            if tok.startswith("-") and len(tok) > 1:
                i = fs.parse_one(argv, i, parsed)
                continue
            if node is None or (node.subcommands and not parsed.args):
                table = COMMANDS if node is None else node.subcommands
                found = find_next(table, tok, node is None)
                if found is None and node is None:
                    raise UnknownCommand(tok)
                if found is not None:
                    node = found
                    path.append(found.name)
                    fs.add(node.flags)
                    i += 1
                    continue
                # an unknown word after a group is an argument: cobra then shows the group's help
            parsed.args.append(tok)
            i += 1
    except UsageError as err:
        if err.path is None:
            err.path = path
        raise
    for f in [*GLOBAL_FLAGS, *(node.flags if node is not None else [])]:
        parsed.values.setdefault(f.name, f.default)
    _apply_env(parsed, environ)
    return Invocation(path, node, parsed)


def _apply_env(parsed: Parsed, environ: dict[str, str]) -> None:
    from petcd.cli.etcdctl.flags import set_value

    for f in GLOBAL_FLAGS:
        key = "ETCDCTL_" + f.name.upper().replace("-", "_")
        value = environ.get(key, "")
        if value and f.name in parsed.changed:
            # etcd's pkg/flags refuses the ambiguity rather than silently picking one; like etcd it
            # says so only when the command makes a client (see Context.client)
            parsed.env_conflict = key
        elif value:
            try:  # noqa: SIM105 (contextlib is not worth importing at start-up)
                set_value(parsed, f, value, f"--{f.name}")
            except UsageError:
                pass  # etcd ignores an environment value its flag cannot parse (keeps the default)


def _print_usage_error(err: UsageError) -> int:
    from petcd.cli.etcdctl import help as cobra_help

    if isinstance(err, UnknownCommand):
        word = str(err)
        sys.stderr.write(
            f'Error: unknown command {go_quote(word)} for "etcdctl"{cobra_help.suggestions(word)}\n'
            "Run 'etcdctl --help' for usage.\n"
        )
        return EXIT_ERROR
    # cobra prints the error, then the usage (etcd's usage function writes it to stdout), then an
    # empty line on stderr (the empty string etcd's usage function hands back to cobra)
    sys.stderr.write(f"Error: {err}\n")
    sys.stderr.flush()
    sys.stdout.write(cobra_help.usage(err.path or []))
    sys.stdout.flush()
    sys.stderr.write("\n")
    return EXIT_ERROR


def run(argv: list[str], environ: dict[str, str]) -> int:
    api = environ.get("ETCDCTL_API", "")
    if api not in ("", "3"):
        sys.stderr.write(f"unsupported API version: {api}\n")
        return EXIT_ERROR
    try:
        inv = parse_command_line(argv, environ)
    except UsageError as err:
        return _print_usage_error(err)
    if inv.wants_help:
        from petcd.cli.etcdctl import help as cobra_help

        sys.stdout.write(cobra_help.usage(inv.path))
        return 0
    from petcd.cli.etcdctl.context import Context

    ctx = Context(inv, environ)
    assert inv.command is not None
    try:
        module_name, func_name = inv.command.target.split(":")
        module = __import__(f"petcd.cli.etcdctl.{module_name}", fromlist=[func_name])
        code: int = getattr(module, func_name)(ctx)
    except UsageError as err:  # an argument cobra's argument checks would refuse
        ctx.flush()
        if err.path is None:
            err.path = inv.path
        return _print_usage_error(err)
    except CtlError as err:
        ctx.flush()
        sys.stderr.write(f"Error: {err.message}\n")
        return err.code
    except EtcdError as err:  # a client error no command turned into its own message
        ctx.flush()
        sys.stderr.write(f"Error: {err.message}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        ctx.flush()
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    finally:
        ctx.close()
    ctx.flush()
    return code


def main() -> None:
    code = run(sys.argv[1:], dict(os.environ))
    try:  # noqa: SIM105 (contextlib is not worth importing at start-up)
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.exit(code)
