"""The `etcd` command: parse and check the configuration, then run a member (petcd.app).

    etcd [flags]            start a member (no flags: single member `default`, data dir
                            `default.etcd`, clients on localhost:2379, peers on localhost:2380)
    etcd --version          etcd's version lines, naming petcd
    etcd --help             the flags, with etcd's defaults

Configuration errors stop the command before anything is written (exit status 1, logged as
etcd does: a JSON line whose `error` field carries etcd's message); flag syntax errors print the
message and a usage hint (exit status 2, as Go's flag package).
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Mapping, Sequence

import petcd
from petcd.etcdmain.config import FLAGS, ConfigError, FlagError, ServerConfig, load
from petcd.etcdmain.logger import ZapLogger, open_outputs
from petcd.version import ETCD_VERSION

__all__ = ["ConfigError", "FlagError", "ServerConfig", "main", "usage", "version_text"]


def version_text() -> str:
    machine = platform.machine()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return (
        f"etcd Version: {ETCD_VERSION}\n"
        f"petcd Version: {petcd.__version__}\n"
        "Git SHA: Not provided\n"
        f"Python Version: {platform.python_version()}\n"
        f"OS/Arch: {sys.platform}/{arch}\n"
    )


def usage() -> str:
    lines = [
        "Usage:",
        "",
        "  etcd [flags]",
        "    Start an etcd server (petcd).",
        "",
        "  etcd --version",
        "    Show the version of etcd.",
        "",
        "  etcd -h | --help",
        "    Show the help information about etcd.",
        "",
        "  etcd --config-file",
        "    Path to the server configuration file. Note that if a configuration file is provided,"
        " other command line flags and environment variables will be ignored.",
        "",
        "Flags (each also read from ETCD_<FLAG> in the environment):",
    ]
    for f in FLAGS.values():
        default = f.default
        if f.name == "data-dir":
            default = "${name}.etcd"
        shown = str(default).lower() if isinstance(default, bool) else f"'{default}'"
        if isinstance(default, int) and not isinstance(default, bool):
            shown = str(default)
        lines.append(f"  --{f.name} {shown}")
        lines.append(f"      {f.help}")
    lines.append("")
    lines.append(
        "Other etcd flags are accepted only at their default value (petcd does not implement them yet)."
    )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        parsed, cfg = load(args, environ)
    except FlagError as e:
        sys.stderr.write(f"{e}\nTry 'etcd --help' for more information.\n")
        return 2
    except ConfigError as e:
        ZapLogger("info").warn("etcdmain/etcd.go:73", "failed to verify flags", error=str(e))
        return 1
    if parsed.show_version:
        sys.stdout.write(version_text())
        return 0
    if parsed.show_help or cfg is None:
        sys.stdout.write(usage())
        return 0
    try:
        outputs = open_outputs(cfg.log_outputs)
    except OSError as e:
        sys.stderr.write(f"cannot open log output: {e}\n")
        return 1
    logger = ZapLogger(cfg.log_level, outputs)
    logger.install()
    try:
        from petcd.app import run  # the composition root: imported only to start a member

        return run(cfg, logger, args)
    finally:
        logger.close()
