"""petcd's etcdutl: etcd's offline administration tool, working on snapshot files and data dirs.

Commands (etcdutl 3.6's, same flags, output and exit codes):

    snapshot restore <file>  build a new member's data dir from a snapshot (petcd.cli.etcdutl.snapshot)
    snapshot status <file>   hash, revision, total keys, total size and version of a snapshot
    defrag --data-dir <dir>  compact the backend of a data dir no member is running on
    hashkv <path>            the KV history hash (etcd's HashKV) of a data dir, a backend or a snapshot
    version                  etcdutl's and the API's version
    completion <shell>       a completion script for bash, zsh, fish or powershell

The global flag ``-w/--write-out`` picks simple, json, table or fields; a format a command has no
printer for exits 4 with ``Error: <format> not supported as output format``. Errors go to stderr
as ``Error: <message>`` with etcd's exit codes (1 error, 4 bad feature, 128 bad arguments). Flags
are parsed with etcdctl's pflag rules (``petcd.cli.etcdctl.flags``); log lines (restore) go to
stderr in zap's console format, as etcdutl's logger writes them.
"""

from __future__ import annotations

import os
import sys
import time

from petcd.cli.etcdctl.errors import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR, CtlError
from petcd.cli.etcdctl.flags import BOOL, INT, STRING, Flag, FlagSet, Parsed, UnknownCommand, UsageError
from petcd.cli.etcdctl.gofmt import go_quote
from petcd.version import API_VERSION, ETCD_VERSION

GLOBAL_FLAGS = [
    Flag("write-out", STRING, "simple", "set the output format (fields, json, protobuf, simple, table)", "w"),
]

_RESTORE_FLAGS = [
    Flag("data-dir", STRING, "", "Path to the output data directory"),
    Flag("wal-dir", STRING, "", "Path to the WAL directory (use --data-dir if none given)"),
    Flag(
        "initial-cluster",
        STRING,
        "default=http://localhost:2380",
        "Initial cluster configuration for restore bootstrap",
    ),
    Flag(
        "initial-cluster-token",
        STRING,
        "etcd-cluster",
        "Initial cluster token for the etcd cluster during restore bootstrap",
    ),
    Flag(
        "initial-advertise-peer-urls",
        STRING,
        "http://localhost:2380",
        "List of this member's peer URLs to advertise to the rest of the cluster",
    ),
    Flag("name", STRING, "default", "Human-readable name for this member"),
    Flag(
        "skip-hash-check",
        BOOL,
        False,
        "Ignore snapshot integrity hash value (required if copied from data directory)",
    ),
    Flag(
        "initial-memory-map-size",
        INT,
        10 * 1024 * 1024 * 1024,  # etcd's backend.InitialMmapSize (petcd's backend does not map memory)
        "Initial memory map size of the database in bytes. It uses the default value if not defined or "
        "defined to 0",
    ),
    Flag("bump-revision", INT, 0, "How much to increase the latest revision after restore"),
    Flag(
        "mark-compacted",
        BOOL,
        False,
        "Mark the latest revision after restore as the point of scheduled compaction (required if "
        "--bump-revision > 0, disallowed otherwise)",
    ),
]

# command path -> (handler name in this module, flags)
COMMANDS: dict[tuple[str, ...], tuple[str, list[Flag]]] = {
    ("snapshot", "restore"): ("_snapshot_restore", _RESTORE_FLAGS),
    ("snapshot", "status"): ("_snapshot_status", []),
    ("defrag",): (
        "_defrag",
        [Flag("data-dir", STRING, "", "Required. Defragments a data directory not in use by etcd.")],
    ),
    ("hashkv",): (
        "_hashkv",
        [Flag("rev", INT, 0, "maximum revision to hash (default: latest revision)")],
    ),
    ("version",): ("_version", []),
    ("completion",): ("_completion", []),
}
_GROUPS = {"snapshot": "Manages etcd node snapshots"}
_HELP_FLAG = Flag("help", BOOL, False, "", "h")

_FORMATS = ("simple", "json", "table", "fields", "protobuf")


class Invocation:
    __slots__ = ("args", "changed", "path", "values")

    def __init__(self, path: tuple[str, ...], parsed: Parsed) -> None:
        self.path = path
        self.values = parsed.values
        self.changed = parsed.changed
        self.args = parsed.args


def _find_next(path: tuple[str, ...], word: str) -> str | None:
    """cobra's lookup with prefix matching (etcdutl turns it on): exact name, else a unique prefix."""
    names = [p[len(path)] for p in COMMANDS if len(p) > len(path) and p[: len(path)] == path]
    if not path:
        names.append("help")
    if word in names:
        return word
    matches = sorted({n for n in names if n.startswith(word)})
    return matches[0] if len(matches) == 1 else None


def parse_command_line(argv: list[str]) -> Invocation:
    """pflag/cobra parsing of etcdutl's command line; the path may name a group or nothing (help)."""
    fs = FlagSet()
    fs.add([*GLOBAL_FLAGS, _HELP_FLAG])
    parsed = Parsed()
    path: tuple[str, ...] = ()
    i = 0
    try:
        while i < len(argv):
            tok = argv[i]
            if tok == "--":
                parsed.args.extend(argv[i + 1 :])
                break
            if tok.startswith("-") and len(tok) > 1:
                i = fs.parse_one(argv, i, parsed)
                continue
            if path not in COMMANDS and path != ("help",) and not parsed.args:
                name = _find_next(path, tok)
                if name is None and not path:
                    raise UnknownCommand(tok)
                if name is not None:
                    path = (*path, name)
                    if path in COMMANDS:
                        fs.add(COMMANDS[path][1])
                    i += 1
                    continue
            parsed.args.append(tok)
            i += 1
    except UsageError as err:
        if err.path is None:
            err.path = list(path)
        raise
    for f in [*GLOBAL_FLAGS, *COMMANDS.get(path, ("", []))[1]]:
        parsed.values.setdefault(f.name, f.default)
    return Invocation(path, parsed)


def _usage_error(message: str, path: tuple[str, ...]) -> int:
    """cobra's answer to a rejected command line: the error, the usage (cobra's default usage
    function writes it to stderr), then etcdutl's main prints the error once more."""
    from petcd.cli.etcdutl.help import usage

    sys.stderr.write(f"Error: {message}\n{usage(path)}\nError: {message}\n")
    return EXIT_ERROR


def run(argv: list[str]) -> int:
    try:
        inv = parse_command_line(argv)
    except UnknownCommand as err:
        from petcd.cli.etcdutl.help import suggestions

        error = f'unknown command {go_quote(str(err))} for "etcdutl"{suggestions(str(err))}'
        sys.stderr.write(f"Error: {error}\nRun 'etcdutl --help' for usage.\nError: {error}\n")
        return EXIT_ERROR
    except UsageError as err:
        return _usage_error(str(err), tuple(err.path or ()))
    if inv.values.get("help") or (inv.path not in COMMANDS and inv.path != ("help",)):
        from petcd.cli.etcdutl.help import usage

        sys.stdout.write(usage(inv.path))
        return 0
    if inv.path == ("help",):
        from petcd.cli.etcdutl.help import help_command

        return help_command(inv)
    # cobra's checks before the command runs: arguments, then required flags
    if inv.path == ("hashkv",) and len(inv.args) != 1:
        return _usage_error(f"accepts 1 arg(s), received {len(inv.args)}", inv.path)
    if inv.path == ("defrag",) and "data-dir" not in inv.changed:
        return _usage_error('required flag(s) "data-dir" not set', inv.path)
    handler = globals()[COMMANDS[inv.path][0]]
    try:
        code: int = handler(inv)
    except CtlError as err:
        sys.stdout.flush()
        sys.stderr.write(f"Error: {err.message}\n")
        return err.code
    except BrokenPipeError:
        return EXIT_ERROR
    return code


def main() -> None:
    code = run(sys.argv[1:])
    try:  # noqa: SIM105 - contextlib is not worth importing at start-up
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.exit(code)


# -- output ----------------------------------------------------------------------------------------


def _format(inv: Invocation) -> str:
    fmt = str(inv.values["write-out"])
    if fmt not in _FORMATS:
        raise CtlError(EXIT_BAD_FEATURE, "unsupported output format")
    if fmt == "protobuf":
        raise CtlError(EXIT_BAD_FEATURE, "protobuf not supported as output format")
    return fmt


def _print_table(fmt: str, header: list[str], row: list[str], fields: list[tuple[str, object]]) -> None:
    from petcd.cli.etcdctl.gofmt import go_json, render_table

    if fmt == "simple":
        print(", ".join(row))
    elif fmt == "table":
        sys.stdout.write(render_table(header, [row]))
    elif fmt == "json":
        print(go_json(dict(fields)))


def _log(caller: str, msg: str, **fields: object) -> None:
    """One line of zap's console encoder, as etcdutl's logger writes to stderr."""
    import json

    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    line = f"{ts}\tinfo\t{caller}\t{msg}"
    if fields:
        line += "\t" + json.dumps(fields, separators=(", ", ": "))
    sys.stderr.write(line + "\n")


# -- commands --------------------------------------------------------------------------------------


def _snapshot_status(inv: Invocation) -> int:
    if len(inv.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "snapshot status requires exactly one argument")
    path = inv.args[0]
    fmt = _format(inv)
    from petcd.cli.etcdctl.gofmt import humanize_bytes
    from petcd.cli.etcdutl.snapshot import SnapshotError, status

    if os.path.isdir(path):
        raise CtlError(EXIT_ERROR, f"expected file path, got directory: {path}")
    try:
        st = status(path)
    except SnapshotError as e:
        raise CtlError(EXIT_ERROR, str(e)) from None
    if fmt == "fields":
        print('"Hash" :', st.hash)
        print('"Revision" :', st.revision)
        print('"Keys" :', st.total_key)
        print('"Size" :', st.total_size)
        print('"Version" :', st.version)
        return 0
    _print_table(
        fmt,
        ["hash", "revision", "total keys", "total size", "version"],
        [f"{st.hash:x}", str(st.revision), str(st.total_key), humanize_bytes(st.total_size), st.version],
        [
            ("hash", st.hash),
            ("revision", st.revision),
            ("totalKey", st.total_key),
            ("totalSize", st.total_size),
            ("version", st.version),
        ],
    )
    return 0


def _snapshot_restore(inv: Invocation) -> int:
    if len(inv.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "snapshot restore requires exactly one argument")
    v = inv.values
    bump = int(v["bump-revision"])
    if bump < 0:
        raise CtlError(EXIT_ERROR, f'invalid argument "{bump}" for "--bump-revision" flag')
    if (bump == 0 and v["mark-compacted"]) or (bump > 0 and not v["mark-compacted"]):
        raise CtlError(EXIT_BAD_ARGS, "--mark-compacted required if --revision-bump > 0")
    from petcd.cli.etcdutl.cluster import ClusterError, new_cluster
    from petcd.cli.etcdutl.snapshot import RestoreConfig, SnapshotError, restore

    name = str(v["name"])
    try:
        cluster = new_cluster(
            name,
            str(v["initial-cluster"]),
            str(v["initial-cluster-token"]),
            str(v["initial-advertise-peer-urls"]),
        )
    except ClusterError as e:
        raise CtlError(EXIT_ERROR, str(e)) from None
    cfg = RestoreConfig(
        snapshot_path=inv.args[0],
        name=name,
        data_dir=str(v["data-dir"]) or f"{name}.etcd",
        wal_dir=str(v["wal-dir"]),
        cluster=cluster,
        skip_hash_check=bool(v["skip-hash-check"]),
        revision_bump=bump,
        mark_compacted=bool(v["mark-compacted"]),
    )
    try:
        restore(cfg, _log)
    except (SnapshotError, OSError) as e:
        raise CtlError(EXIT_ERROR, str(e)) from None
    return 0


def _defrag(inv: Invocation) -> int:
    data_dir = str(inv.values["data-dir"])
    from petcd.cli.etcdutl.datadir import DataDirError, defrag

    try:
        defrag(data_dir)
    except (DataDirError, OSError) as e:
        raise CtlError(EXIT_ERROR, f"Failed to defragment etcd data[{data_dir}] ({e})") from None
    return 0


def _hashkv(inv: Invocation) -> int:
    fmt = _format(inv)
    from petcd.cli.etcdutl.datadir import DataDirError, hash_kv

    try:
        h = hash_kv(inv.args[0], int(inv.values["rev"]))
    except (DataDirError, OSError) as e:
        raise CtlError(EXIT_ERROR, str(e)) from None
    if fmt == "fields":
        print('"Hash" :', h.hash)
        print('"Hash revision" :', h.hash_revision)
        print('"Compact revision" :', h.compact_revision)
        return 0
    _print_table(
        fmt,
        ["hash", "hash revision", "compact revision"],
        [str(h.hash), str(h.hash_revision), str(h.compact_revision)],
        [("hash", h.hash), ("hashRevision", h.hash_revision), ("compactRevision", h.compact_revision)],
    )
    return 0


def _completion(inv: Invocation) -> int:
    from petcd.cli.etcdctl.misc import completion_script

    top = sorted({p[0] for p in COMMANDS} | {"help"})
    subs = {"snapshot": sorted(p[1] for p in COMMANDS if p[0] == "snapshot")}
    flags = sorted("--" + f.name for f in GLOBAL_FLAGS)
    try:
        script = completion_script("etcdutl", list(inv.args), (top, subs, flags))
    except UsageError as err:
        return _usage_error(str(err), inv.path)
    sys.stdout.write(script)
    return 0


def _version(inv: Invocation) -> int:
    print("etcdutl version:", ETCD_VERSION)
    print("API version:", API_VERSION)
    return 0
