"""The `etcd` command's configuration: flags, `ETCD_*` environment variables, `--config-file`.

Sources, as etcd reads them (etcdmain/config.go, pkg/flags):
* command-line flags in Go's `flag` syntax: `--name x`, `--name=x`, `-name x`; booleans take no
  separate value (`--pre-vote=false`);
* `ETCD_<FLAG>` environment variables (upper case, `-` -> `_`) for every flag not given on the
  command line; a variable that shadows a flag given on the command line is an error, as in etcd;
* `--config-file` (YAML, keys are the flag names): when given, other flags and the environment
  are ignored.

Every etcd 3.5/3.6 flag is known. Those petcd implements are in `FLAGS` with their type and etcd's
default; the others are in `UNIMPLEMENTED` with their default, and are accepted only at that
default value: any other value is refused with a clear error (never silently ignored).

`validate()` then checks the configuration with etcd's messages (embed.Config.Validate and
etcdserver.ServerConfig.Verify*), before anything is written, and resolves the derived values
(data dir `<name>.etcd`, the initial cluster from the name).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml


class ConfigError(Exception):
    """A configuration error: the command prints it and exits with status 1."""


class FlagError(ConfigError):
    """A command-line syntax error (unknown flag, bad value): printed with the usage hint."""


@dataclass(frozen=True, slots=True)
class Flag:
    name: str
    kind: str  # "str", "int", "bool", "urls", "list", "float", "duration" (Go's syntax, kept as text)
    default: Any
    help: str = ""
    choices: tuple[str, ...] = ()


DEFAULT_NAME = "default"
DEFAULT_PEER_URL = "http://localhost:2380"
DEFAULT_CLIENT_URL = "http://localhost:2379"
DEFAULT_INITIAL_CLUSTER = f"{DEFAULT_NAME}={DEFAULT_PEER_URL}"
MAX_ELECTION_MS = 50000

FLAGS: dict[str, Flag] = {
    f.name: f
    for f in (
        Flag("name", "str", DEFAULT_NAME, "Human-readable name for this member."),
        Flag("data-dir", "str", "", "Path to the data directory."),
        Flag("wal-dir", "str", "", "Path to the dedicated wal directory."),
        Flag("snapshot-count", "int", 10000, "Number of committed transactions to trigger a snapshot."),
        Flag(
            "snapshot-catchup-entries",
            "int",
            5000,
            "Number of entries for a slow follower to catch up after compacting the raft storage entries.",
        ),
        Flag(
            "experimental-snapshot-catchup-entries",
            "int",
            5000,
            "Deprecated: use --snapshot-catchup-entries.",
        ),
        Flag(
            "watch-progress-notify-interval",
            "duration",
            "10m0s",
            "Duration of periodic watch progress notifications.",
        ),
        Flag(
            "experimental-watch-progress-notify-interval",
            "duration",
            "10m0s",
            "Deprecated: use --watch-progress-notify-interval.",
        ),
        Flag("heartbeat-interval", "int", 100, "Time (in milliseconds) of a heartbeat interval."),
        Flag("election-timeout", "int", 1000, "Time (in milliseconds) for an election to timeout."),
        Flag("listen-peer-urls", "urls", DEFAULT_PEER_URL, "List of URLs to listen on for peer traffic."),
        Flag(
            "listen-client-urls",
            "urls",
            DEFAULT_CLIENT_URL,
            "List of URLs to listen on for client grpc traffic and http as long as"
            " --listen-client-http-urls is not specified.",
        ),
        Flag(
            "listen-client-http-urls", "urls", "", "List of URLs to listen on for http only client traffic."
        ),
        Flag("max-snapshots", "int", 5, "Maximum number of snapshot files to retain (0 is unlimited)."),
        Flag("max-wals", "int", 5, "Maximum number of wal files to retain (0 is unlimited)."),
        Flag(
            "quota-backend-bytes",
            "int",
            0,
            "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).",
        ),
        Flag("max-txn-ops", "int", 128, "Maximum number of operations permitted in a transaction."),
        Flag(
            "max-request-bytes",
            "int",
            1572864,
            "Maximum client request size in bytes the server will accept.",
        ),
        Flag(
            "initial-advertise-peer-urls",
            "urls",
            DEFAULT_PEER_URL,
            "List of this member's peer URLs to advertise to the rest of the cluster.",
        ),
        Flag(
            "initial-cluster",
            "str",
            DEFAULT_INITIAL_CLUSTER,
            "Initial cluster configuration for bootstrapping.",
        ),
        Flag(
            "initial-cluster-state",
            "str",
            "new",
            "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding new"
            " member to an existing cluster).",
            ("new", "existing"),
        ),
        Flag(
            "initial-cluster-token",
            "str",
            "etcd-cluster",
            "Initial cluster token for the etcd cluster during bootstrap.",
        ),
        Flag(
            "advertise-client-urls",
            "urls",
            DEFAULT_CLIENT_URL,
            "List of this member's client URLs to advertise to the public.",
        ),
        Flag(
            "strict-reconfig-check",
            "bool",
            True,
            "Reject reconfiguration requests that would cause quorum loss.",
        ),
        Flag(
            "pre-vote",
            "bool",
            True,
            "Enable the raft Pre-Vote algorithm to prevent disruption when a node"
            " that has been partitioned away rejoins the cluster.",
        ),
        Flag(
            "auto-compaction-mode",
            "str",
            "periodic",
            "Interpret 'auto-compaction-retention' one of: periodic|revision.",
        ),
        Flag(
            "auto-compaction-retention",
            "str",
            "0",
            "Auto compaction retention for mvcc key value store. 0 means disable auto compaction.",
        ),
        Flag(
            "listen-metrics-urls",
            "urls",
            "",
            "List of URLs to listen on for the metrics and health endpoints.",
        ),
        Flag("logger", "str", "zap", "Currently only supports 'zap' for structured logging.", ("zap",)),
        Flag(
            "log-outputs",
            "list",
            "default",
            "Specify 'stdout' or 'stderr' to skip journald logging even when"
            " running under systemd, or list of comma separated output targets.",
        ),
        Flag(
            "log-level",
            "str",
            "info",
            "Configures log level. Only supports debug, info, warn, error, panic, or fatal.",
            ("debug", "info", "warn", "error", "panic", "fatal"),
        ),
        Flag(
            "log-format",
            "str",
            "json",
            "Configures log format. Only supports json (console: not yet).",
            ("json",),
        ),
        Flag("unsafe-no-fsync", "bool", False, "Disables fsync, unsafe, will cause data loss."),
        Flag("force-new-cluster", "bool", False, "Force to create a new one member cluster."),
        Flag("enable-grpc-gateway", "bool", True, "Enable GRPC gateway."),
        Flag(
            "frontend-processes",
            "int",
            0,
            "petcd only (not an etcd flag): serve the client URLs from this many front-end processes"
            " sharing each port (SO_REUSEPORT); they read from the backend themselves and forward"
            " writes, leases and watches to the member's process. 0 serves clients in the member's"
            " own process.",
        ),
        Flag("config-file", "str", "", "Path to the server configuration file."),
    )
}

# etcd's other flags, with their defaults: accepted only at the default value.
UNIMPLEMENTED: dict[str, Any] = {
    "initial-election-tick-advance": True,
    "memory-mlock": False,
    "experimental-memory-mlock": False,
    "backend-bbolt-freelist-type": "map",
    "backend-batch-interval": "",
    "backend-batch-limit": 0,
    "max-concurrent-streams": "",
    "grpc-keepalive-min-time": "5s",
    "grpc-keepalive-interval": "2h0m0s",
    "grpc-keepalive-timeout": "20s",
    "socket-reuse-port": False,
    "socket-reuse-address": False,
    "raft-read-timeout": "5s",
    "raft-write-timeout": "5s",
    "feature-gates": "",
    "discovery": "",
    "discovery-token": "",
    "discovery-endpoints": "",
    "discovery-dial-timeout": "2s",
    "discovery-request-timeout": "5s",
    "discovery-keepalive-time": "2s",
    "discovery-keepalive-timeout": "6s",
    "discovery-insecure-transport": True,
    "discovery-insecure-skip-tls-verify": False,
    "discovery-cert": "",
    "discovery-key": "",
    "discovery-cacert": "",
    "discovery-user": "",
    "discovery-password": "",
    "discovery-fallback": "exit",
    "discovery-proxy": "",
    "discovery-srv": "",
    "discovery-srv-name": "",
    "v2-deprecation": "write-only",
    "max-learners": 1,
    "cert-file": "",
    "key-file": "",
    "trusted-ca-file": "",
    "client-crl-file": "",
    "client-cert-auth": False,
    "client-cert-file": "",
    "client-key-file": "",
    "client-cert-allowed-hostname": "",
    "auto-tls": False,
    "peer-auto-tls": False,
    "self-signed-cert-validity": 1,
    "peer-cert-file": "",
    "peer-key-file": "",
    "peer-trusted-ca-file": "",
    "peer-crl-file": "",
    "peer-client-cert-auth": False,
    "peer-client-cert-file": "",
    "peer-client-key-file": "",
    "peer-cert-allowed-cn": "",
    "peer-cert-allowed-hostname": "",
    "peer-skip-client-san-verification": False,
    "experimental-peer-skip-client-san-verification": False,
    "cipher-suites": "",
    "cors": "*",
    "host-whitelist": "*",
    "tls-min-version": "TLS1.2",
    "tls-max-version": "",
    "auth-token": "simple",
    "bcrypt-cost": 10,
    "auth-token-ttl": 300,
    "enable-pprof": False,
    "metrics": "basic",
    "enable-log-rotation": False,
    "log-rotation-config-json": "",
    "warning-unary-request-duration": "300ms",
    "experimental-warning-unary-request-duration": "300ms",
    "warning-apply-duration": "100ms",
    "experimental-warning-apply-duration": "100ms",
    "enable-distributed-tracing": False,
    "experimental-enable-distributed-tracing": False,
    "distributed-tracing-address": "localhost:4317",
    "distributed-tracing-service-name": "etcd",
    "distributed-tracing-instance-id": "",
    "distributed-tracing-sampling-rate": 0,
    "experimental-initial-corrupt-check": False,
    "experimental-corrupt-check-time": "0s",
    "corrupt-check-time": "0s",
    "experimental-compact-hash-check-enabled": False,
    "experimental-compact-hash-check-time": "1m0s",
    "compact-hash-check-time": "1m0s",
    "experimental-enable-lease-checkpoint": False,
    "experimental-enable-lease-checkpoint-persist": False,
    "experimental-compaction-batch-limit": 1000,
    "compaction-batch-limit": 1000,
    "experimental-compaction-sleep-interval": "10ms",
    "compaction-sleep-interval": "10ms",
    "experimental-downgrade-check-time": "5s",
    "downgrade-check-time": "5s",
    "experimental-bootstrap-defrag-threshold-megabytes": 0,
    "bootstrap-defrag-threshold-megabytes": 0,
    "experimental-txn-mode-write-with-shared-buffer": True,
    "experimental-stop-grpc-service-on-defrag": False,
    "experimental-enable-v2v3": "",
    "enable-v2": False,
    "proxy": "off",
    "proxy-failure-wait": 5000,
    "proxy-refresh-interval": 30000,
    "proxy-dial-timeout": 1000,
    "proxy-write-timeout": 5000,
    "proxy-read-timeout": 0,
}


def env_name(flag: str) -> str:
    return "ETCD_" + flag.upper().replace("-", "_")


# --------------------------------------------------------------------------------------------
# Parsing


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _parse_bool(name: str, text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FlagError(f'invalid boolean value "{text}" for -{name}: parse error')


def _convert(name: str, kind: str, value: object) -> Any:
    """A flag value from its text (command line, environment) or a YAML scalar."""
    if kind == "bool":
        if isinstance(value, bool):
            return value
        return _parse_bool(name, str(value))
    if kind == "int":
        if isinstance(value, bool):
            raise FlagError(f'invalid value "{value}" for flag -{name}: parse error')
        if isinstance(value, int):
            return value
        try:
            return int(str(value), 0)
        except ValueError:
            raise FlagError(f'invalid value "{value}" for flag -{name}: parse error') from None
    if kind == "duration":
        text = str(value)
        try:
            parse_go_duration(text)
        except ValueError:
            raise FlagError(f'invalid value "{value}" for flag -{name}: parse error') from None
        return text
    if kind == "list":
        if isinstance(value, list):
            return [str(v) for v in value]
        return [s for s in str(value).split(",") if s]
    if kind == "urls":
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)
    return "" if value is None else str(value)


def _same_as_default(value: object, default: object) -> bool:
    if isinstance(default, bool):
        try:
            return _convert("", "bool", value) is default
        except FlagError:
            return False
    return str(value) == str(default)


@dataclass(slots=True)
class ParsedArgs:
    """The raw values, by flag name, and which flags were set explicitly."""

    values: dict[str, Any]
    explicit: set[str]
    show_version: bool = False
    show_help: bool = False
    warnings: list[str] = field(default_factory=list)


def _go_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _refuse_unimplemented(name: str, value: object, source: str) -> None:
    default = UNIMPLEMENTED[name]
    if not _same_as_default(value, default):
        raise ConfigError(
            f"{source} {name}={value!s}: petcd does not implement this etcd flag yet"
            f" (only its default {_go_value(default)!r} is accepted)"
        )


def _split_argv(argv: Sequence[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Go's flag syntax -> [(name, value or None)], positional rest."""
    out: list[tuple[str, str | None]] = []
    i = 0
    args = list(argv)
    while i < len(args):
        a = args[i]
        if a == "--":
            return out, args[i + 1 :]
        if not a.startswith("-") or a == "-":
            return out, args[i:]
        body = a[2:] if a.startswith("--") else a[1:]
        if not body or body.startswith("-") or body.startswith("="):
            raise FlagError(f"bad flag syntax: {a}")
        name, eq, val = body.partition("=")
        if eq:
            out.append((name, val))
            i += 1
            continue
        kind = FLAGS[name].kind if name in FLAGS else None
        if name in ("version", "h", "help") or isinstance(UNIMPLEMENTED.get(name), bool):
            kind = "bool"
        if kind == "bool" or (kind is None and name not in UNIMPLEMENTED):
            out.append((name, None))
            i += 1
            continue
        if i + 1 >= len(args):
            raise FlagError(f"flag needs an argument: -{name}")
        out.append((name, args[i + 1]))
        i += 2
    return out, []


def parse_args(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> ParsedArgs:
    """Flags, then the environment (or the config file), into raw values. Raises ConfigError."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {name: f.default for name, f in FLAGS.items()}
    explicit: set[str] = set()
    parsed = ParsedArgs(values, explicit)
    pairs, rest = _split_argv(argv)
    if rest:
        raise FlagError(f"'{rest[0]}' is not a valid flag")
    for name, raw in pairs:
        if name == "version":
            parsed.show_version = raw is None or _parse_bool(name, raw)
            continue
        if name in ("h", "help"):
            parsed.show_help = True
            continue
        if name in UNIMPLEMENTED:
            _refuse_unimplemented(name, "true" if raw is None else raw, "flag")
            continue
        if name not in FLAGS:
            raise FlagError(f"flag provided but not defined: -{name}")
        f = FLAGS[name]
        if raw is None:
            raw = "true"
        values[name] = _convert(name, f.kind, raw)
        explicit.add(name)
    if parsed.show_version or parsed.show_help:
        return parsed
    if values["config-file"] or env.get("ETCD_CONFIG_FILE"):
        path = values["config-file"] or env["ETCD_CONFIG_FILE"]
        return _from_config_file(path, parsed)
    _from_environment(env, parsed)
    return parsed


def _from_environment(env: Mapping[str, str], parsed: ParsedArgs) -> None:
    known = {env_name(n): n for n in FLAGS} | {env_name(n): n for n in UNIMPLEMENTED}
    for var in sorted(env):
        if not var.startswith("ETCD_"):
            continue
        name = known.get(var)
        if name is None:
            if var not in ("ETCD_UNSUPPORTED_ARCH", "ETCDCTL_API"):
                parsed.warnings.append(f"unrecognized environment variable {var}={env[var]}")
            continue
        if name in parsed.explicit:
            raise ConfigError(
                f'conflicting environment variable "{var}" is shadowed by corresponding command-line flag'
                " (either unset environment variable or disable flag)"
            )
        if name in UNIMPLEMENTED:
            _refuse_unimplemented(name, env[var], "environment variable")
            continue
        f = FLAGS[name]
        parsed.values[name] = _convert(name, f.kind, env[var])
        parsed.explicit.add(name)


def _from_config_file(path: str, parsed: ParsedArgs) -> ParsedArgs:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as e:
        raise ConfigError(f"open {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"error unmarshaling YAML in {path}: {e}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"error unmarshaling YAML in {path}: not a mapping")
    values: dict[str, Any] = {name: f.default for name, f in FLAGS.items()}
    values["config-file"] = path
    out = ParsedArgs(values, set(), warnings=list(parsed.warnings))
    if len(parsed.explicit) > 1:
        out.warnings.append("config file provided; ignoring command-line flags and environment variables")
    for key, value in doc.items():
        name = str(key)
        if name in UNIMPLEMENTED:
            if value is not None:
                _refuse_unimplemented(name, value, "config file key")
            continue
        if name not in FLAGS:
            raise ConfigError(f"config file {path}: unknown key {name!r}")
        if value is None:
            continue
        values[name] = _convert(name, FLAGS[name].kind, value)
        out.explicit.add(name)
    return out


# --------------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The validated configuration the composition root starts a member from."""

    name: str
    data_dir: str
    wal_dir: str
    listen_peer_urls: tuple[str, ...]
    listen_client_urls: tuple[str, ...]
    listen_client_http_urls: tuple[str, ...]
    listen_metrics_urls: tuple[str, ...]
    initial_advertise_peer_urls: tuple[str, ...]
    advertise_client_urls: tuple[str, ...]
    # name -> peer URLs, from --initial-cluster (resolved from the name when left at its default)
    initial_cluster: dict[str, tuple[str, ...]]
    initial_cluster_state: str
    initial_cluster_token: str
    heartbeat_ms: int
    election_ms: int
    snapshot_count: int
    snapshot_catchup_entries: int
    max_snapshots: int
    max_wals: int
    quota_backend_bytes: int
    max_txn_ops: int
    max_request_bytes: int
    auto_compaction_mode: str
    auto_compaction_retention_s: float  # periodic: seconds; revision: revisions
    strict_reconfig_check: bool
    pre_vote: bool
    log_level: str
    log_outputs: tuple[str, ...]
    unsafe_no_fsync: bool
    force_new_cluster: bool
    enable_grpc_gateway: bool
    config_file: str
    warnings: tuple[str, ...] = ()
    # petcd only: client-serving front-end processes (0: the member's own process serves clients)
    frontend_processes: int = 0
    # --watch-progress-notify-interval (or its experimental- name): seconds between the periodic
    # progress notifications to watchers created with progress_notify
    watch_progress_notify_interval_s: float = 600.0

    @property
    def election_ticks(self) -> int:
        return self.election_ms // self.heartbeat_ms

    @property
    def is_new_cluster(self) -> bool:
        return self.initial_cluster_state == "new"


def parse_urls(text: str) -> tuple[str, ...]:
    """etcd's types.NewURLs: comma-separated absolute URLs, http/https, host:port, no path."""
    out: list[str] = []
    for raw in text.split(","):
        s = raw.strip()
        if not s:
            continue
        try:
            u = urlsplit(s)
        except ValueError as e:
            raise ConfigError(f'parse "{s}": {e}') from None
        if u.scheme not in ("http", "https", "unix", "unixs"):
            raise ConfigError(f"URL scheme must be http, https, unix, or unixs: {s}")
        if u.scheme in ("unix", "unixs", "https"):
            raise ConfigError(
                f"URL scheme {u.scheme} is not supported by petcd yet (TLS and unix sockets): {s}"
            )
        if not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]/]+):[0-9]+", u.netloc):
            raise ConfigError(f'URL address does not have the form "host:port": {s}')
        if u.path not in ("", "/"):
            raise ConfigError(f"URL must not contain a path: {s}")
        out.append(s.rstrip("/"))
    return tuple(sorted(out))


def host_port(url: str) -> tuple[str, int]:
    u = urlsplit(url)
    host = u.hostname or ""
    return host, int(u.port or 0)


def _check_bind_urls(urls: Sequence[str]) -> None:
    for url in urls:
        host, _ = host_port(url)
        if host == "localhost":
            continue
        if host == "":
            raise ConfigError(f"unexpected empty host ({url})")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"expected IP in URL for binding ({url})") from None


def parse_initial_cluster(text: str) -> dict[str, tuple[str, ...]]:
    """`name=url,name=url` -> name -> sorted URLs (etcd's types.NewURLsMap)."""
    out: dict[str, list[str]] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, eq, url = part.partition("=")
        if not eq:
            raise ConfigError(f"{part} is not a valid initial cluster member (want name=url)")
        out.setdefault(name, []).extend(parse_urls(url))
    return {name: tuple(sorted(urls)) for name, urls in out.items()}


def urls_map_string(m: Mapping[str, Sequence[str]]) -> str:
    """etcd's URLsMap.String(): name=url pairs, sorted."""
    return ",".join(sorted(f"{name}={u}" for name, urls in m.items() for u in urls))


def parse_retention(mode: str, text: str) -> float:
    """--auto-compaction-retention: revision mode -> a count; periodic -> seconds (hours if bare)."""
    text = text.strip()
    if mode == "revision":
        try:
            return float(int(text))
        except ValueError:
            raise ConfigError(
                f'invalid auto-compaction-retention "{text}" (revision mode: an integer)'
            ) from None
    try:
        return float(int(text)) * 3600.0
    except ValueError:
        pass
    try:
        return parse_go_duration(text)
    except ValueError:
        raise ConfigError(f'time: invalid duration "{text}"') from None


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds: "1m30s", "100ms", "-1.5h", "0"; ValueError otherwise."""
    body = text[1:] if text[:1] in "+-" else text
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    total = 0.0
    pos = 0
    for m in _DURATION_PART.finditer(body):
        if m.start() != pos or m.group(1) in ("", "."):
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total


def validate(parsed: ParsedArgs) -> ServerConfig:
    """etcd's checks, in etcd's order, with etcd's messages; nothing is written."""
    v = parsed.values
    explicit = parsed.explicit
    name: str = v["name"]
    lpurls = parse_urls(v["listen-peer-urls"])
    lcurls = parse_urls(v["listen-client-urls"])
    lchurls = parse_urls(v["listen-client-http-urls"])
    lmurls = parse_urls(v["listen-metrics-urls"])
    apurls = parse_urls(v["initial-advertise-peer-urls"])
    acurls = parse_urls(v["advertise-client-urls"])
    if "listen-client-urls" in explicit and "advertise-client-urls" not in explicit:
        raise ConfigError("--advertise-client-urls is required when --listen-client-urls is set explicitly")
    for urls in (lpurls, lcurls, lchurls, lmurls):
        _check_bind_urls(urls)
    if not lpurls:
        raise ConfigError("--listen-peer-urls must not be empty")
    if not lcurls:
        raise ConfigError("--listen-client-urls must not be empty")
    state = v["initial-cluster-state"]
    if state not in ("new", "existing"):
        raise FlagError(
            f'invalid value "{state}" for flag -initial-cluster-state: valid values are: new, existing'
        )
    for key in ("logger", "log-format"):
        if v[key] not in FLAGS[key].choices:
            raise ConfigError(
                f"--{key}={v[key]}: petcd does not implement it yet"
                f" (supported: {', '.join(FLAGS[key].choices)})"
            )
    tick_ms: int = v["heartbeat-interval"]
    election_ms: int = v["election-timeout"]
    if tick_ms <= 0:
        raise ConfigError(f"--heartbeat-interval must be >0 (set to {tick_ms}ms)")
    if election_ms <= 0:
        raise ConfigError(f"--election-timeout must be >0 (set to {election_ms}ms)")
    if 5 * tick_ms > election_ms:
        raise ConfigError(
            f"--election-timeout[{election_ms}ms] should be at least as 5 times as"
            f" --heartbeat-interval[{tick_ms}ms]"
        )
    if election_ms > MAX_ELECTION_MS:
        raise ConfigError(
            f"--election-timeout[{election_ms}ms] is too long, and should be set less than"
            f" {MAX_ELECTION_MS}ms"
        )
    mode = v["auto-compaction-mode"]
    if mode not in ("periodic", "revision"):
        raise ConfigError(f'unknown auto-compaction-mode "{mode}"')
    retention = parse_retention(mode, v["auto-compaction-retention"])
    for key in ("snapshot-count", "max-txn-ops", "max-request-bytes", "snapshot-catchup-entries"):
        if v[key] <= 0:
            raise ConfigError(f"--{key} must be >0 (set to {v[key]})")
    for key in ("max-snapshots", "max-wals", "quota-backend-bytes"):
        if v[key] < 0:
            raise ConfigError(f"--{key} must be >=0 (set to {v[key]})")
    # etcd: when only the name is given, the initial cluster is that name at the advertised URLs.
    initial_text: str = v["initial-cluster"]
    if name != DEFAULT_NAME and initial_text == DEFAULT_INITIAL_CLUSTER and "initial-cluster" not in explicit:
        initial_text = ",".join(f"{name}={u}" for u in apurls)
    initial = parse_initial_cluster(initial_text)
    seen: set[str] = set()
    for urls in initial.values():
        for u in urls:
            if u in seen:
                raise ConfigError(f"initial cluster {urls_map_string(initial)} has duplicate url")
            seen.add(u)
    if name not in initial:
        raise ConfigError(f'couldn\'t find local name "{name}" in the initial cluster configuration')
    if state == "new":
        _check_advertise_matches_cluster(name, apurls, initial)
    data_dir: str = v["data-dir"] or f"{name}.etcd"
    raw_outputs = v["log-outputs"]
    if isinstance(raw_outputs, str):
        raw_outputs = [o for o in raw_outputs.split(",") if o]
    outputs = tuple(raw_outputs) or ("default",)
    return ServerConfig(
        name=name,
        data_dir=data_dir,
        wal_dir=v["wal-dir"],
        listen_peer_urls=lpurls,
        listen_client_urls=lcurls,
        listen_client_http_urls=lchurls,
        listen_metrics_urls=lmurls,
        initial_advertise_peer_urls=apurls,
        advertise_client_urls=acurls,
        initial_cluster=initial,
        initial_cluster_state=state,
        initial_cluster_token=v["initial-cluster-token"],
        heartbeat_ms=tick_ms,
        election_ms=election_ms,
        snapshot_count=v["snapshot-count"],
        snapshot_catchup_entries=(
            v["snapshot-catchup-entries"]
            if "snapshot-catchup-entries" in explicit
            else v["experimental-snapshot-catchup-entries"]
        ),
        max_snapshots=v["max-snapshots"],
        max_wals=v["max-wals"],
        quota_backend_bytes=v["quota-backend-bytes"],
        max_txn_ops=v["max-txn-ops"],
        max_request_bytes=v["max-request-bytes"],
        auto_compaction_mode=mode,
        auto_compaction_retention_s=retention,
        strict_reconfig_check=v["strict-reconfig-check"],
        pre_vote=v["pre-vote"],
        log_level=v["log-level"]
        if v["log-level"] in FLAGS["log-level"].choices
        else _bad_level(v["log-level"]),
        log_outputs=outputs,
        unsafe_no_fsync=v["unsafe-no-fsync"],
        force_new_cluster=v["force-new-cluster"],
        enable_grpc_gateway=v["enable-grpc-gateway"],
        frontend_processes=v["frontend-processes"]
        if v["frontend-processes"] >= 0
        else _bad_frontends(v["frontend-processes"]),
        config_file=v["config-file"],
        warnings=tuple(parsed.warnings),
        watch_progress_notify_interval_s=_progress_interval(v, explicit),
    )


def _progress_interval(v: Mapping[str, Any], explicit: set[str]) -> float:
    """etcd keeps its default (10m) unless the interval set is positive; the new name wins."""
    name = "watch-progress-notify-interval"
    if name not in explicit and f"experimental-{name}" in explicit:
        name = f"experimental-{name}"
    seconds = parse_go_duration(v[name])
    return seconds if seconds > 0 else parse_go_duration(FLAGS[name].default)


def _bad_frontends(n: int) -> int:
    raise ConfigError(f"--frontend-processes must be 0 or more, got {n}")


def _bad_level(level: str) -> str:
    raise ConfigError(f'unrecognized level: "{level}"')


def _check_advertise_matches_cluster(
    name: str, apurls: Sequence[str], initial: Mapping[str, Sequence[str]]
) -> None:
    """etcd's advertiseMatchesCluster: the name's URLs in --initial-cluster are the advertised ones."""
    init_urls = sorted(initial[name])
    ap = sorted(apurls)
    if init_urls == ap:
        return
    err = f'resolved urls: "{",".join(ap)}" != "{",".join(init_urls)}"'
    missing = [u for u in init_urls if u not in ap]
    if missing:
        mstr = ",".join(f"{name}={u}" for u in missing)
        raise ConfigError(
            f"--initial-cluster has {mstr} but missing from"
            f" --initial-advertise-peer-urls={','.join(apurls)} ({err})"
        )
    extra = [u for u in ap if u not in init_urls]
    raise ConfigError(
        f"--initial-advertise-peer-urls has {','.join(extra)} but missing from"
        f" --initial-cluster={urls_map_string({name: apurls})}"
    )


def load(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> tuple[ParsedArgs, ServerConfig | None]:
    """Parse and validate; the ServerConfig is None when --version or --help was asked for."""
    parsed = parse_args(argv, environ)
    if parsed.show_version or parsed.show_help:
        return parsed, None
    return parsed, validate(parsed)
