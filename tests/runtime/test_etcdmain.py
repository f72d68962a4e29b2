"""The `etcd` command's configuration: flags, environment, config file, etcd's validation messages."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from petcd.etcdmain import main, version_text
from petcd.etcdmain.config import ConfigError, FlagError, load, parse_retention
from petcd.etcdmain.logger import ZapLogger


def cfg_of(*argv: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    _, cfg = load(list(argv), env or {})
    assert cfg is not None
    return cfg


def error_of(*argv: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as exc:
        load(list(argv), env or {})
    return str(exc.value)


def test_defaults_are_etcds() -> None:
    cfg = cfg_of()
    assert cfg.name == "default"
    assert cfg.data_dir == "default.etcd"
    assert cfg.listen_client_urls == ("http://localhost:2379",)
    assert cfg.listen_peer_urls == ("http://localhost:2380",)
    assert cfg.advertise_client_urls == ("http://localhost:2379",)
    assert cfg.initial_cluster == {"default": ("http://localhost:2380",)}
    assert cfg.initial_cluster_state == "new"
    assert cfg.initial_cluster_token == "etcd-cluster"
    assert (cfg.heartbeat_ms, cfg.election_ms, cfg.election_ticks) == (100, 1000, 10)
    assert cfg.snapshot_count == 10000
    assert cfg.max_txn_ops == 128
    assert cfg.max_request_bytes == 1572864
    assert cfg.strict_reconfig_check and cfg.pre_vote
    assert (cfg.max_snapshots, cfg.max_wals) == (5, 5)


def test_name_alone_sets_data_dir_and_initial_cluster() -> None:
    cfg = cfg_of("--name", "infra0")
    assert cfg.data_dir == "infra0.etcd"
    assert cfg.initial_cluster == {"infra0": ("http://localhost:2380",)}


def test_go_flag_syntax_forms() -> None:
    cfg = cfg_of("-name=a", "--data-dir", "/x", "--pre-vote=false", "--strict-reconfig-check")
    assert cfg.name == "a" and cfg.data_dir == "/x"
    assert cfg.pre_vote is False and cfg.strict_reconfig_check is True


def test_environment_variables() -> None:
    cfg = cfg_of(env={"ETCD_NAME": "e1", "ETCD_SNAPSHOT_COUNT": "42", "ETCD_PRE_VOTE": "false"})
    assert cfg.name == "e1" and cfg.snapshot_count == 42 and cfg.pre_vote is False


def test_environment_shadowed_by_flag_is_an_error() -> None:
    msg = error_of("--name", "x", env={"ETCD_NAME": "y"})
    assert msg.startswith('conflicting environment variable "ETCD_NAME" is shadowed')


def test_config_file_yaml(tmp_path: Path) -> None:
    f = tmp_path / "etcd.yaml"
    f.write_text(
        "name: infra1\n"
        "data-dir: /var/lib/x\n"
        "listen-client-urls: http://127.0.0.1:4001\n"
        "advertise-client-urls: http://127.0.0.1:4001\n"
        "heartbeat-interval: 50\n"
        "election-timeout: 500\n"
        "log-outputs: [stderr]\n"
    )
    cfg = cfg_of("--config-file", str(f), env={"ETCD_NAME": "ignored"})
    assert cfg.name == "infra1" and cfg.data_dir == "/var/lib/x"
    assert cfg.listen_client_urls == ("http://127.0.0.1:4001",)
    assert (cfg.heartbeat_ms, cfg.election_ms) == (50, 500)
    assert cfg.log_outputs == ("stderr",)


def test_config_file_refuses_unimplemented_values(tmp_path: Path) -> None:
    f = tmp_path / "etcd.yaml"
    f.write_text("client-cert-auth: true\n")
    assert "does not implement" in error_of("--config-file", str(f))
    f.write_text("client-cert-auth: false\n")
    cfg_of("--config-file", str(f))


def test_advertise_client_urls_required() -> None:
    msg = error_of("--listen-client-urls", "http://127.0.0.1:2379")
    assert msg == "--advertise-client-urls is required when --listen-client-urls is set explicitly"


def test_initial_cluster_missing_from_advertise_urls() -> None:
    msg = error_of("--initial-advertise-peer-urls", "http://127.0.0.1:31380")
    assert msg == (
        "--initial-cluster has default=http://localhost:2380 but missing from "
        '--initial-advertise-peer-urls=http://127.0.0.1:31380 (resolved urls: "http://127.0.0.1:31380" != '
        '"http://localhost:2380")'
    )


def test_advertise_url_missing_from_initial_cluster() -> None:
    msg = error_of(
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:1,http://127.0.0.1:2",
        "--initial-cluster",
        "default=http://127.0.0.1:1",
    )
    assert msg == (
        "--initial-advertise-peer-urls has http://127.0.0.1:2 but missing from "
        "--initial-cluster=default=http://127.0.0.1:1,default=http://127.0.0.1:2"
    )


def test_name_not_in_initial_cluster() -> None:
    msg = error_of("--name", "x", "--initial-cluster", "a=http://127.0.0.1:1")
    assert msg == 'couldn\'t find local name "x" in the initial cluster configuration'


def test_duplicate_url_in_initial_cluster() -> None:
    msg = error_of("--name", "a", "--initial-cluster", "a=http://127.0.0.1:1,b=http://127.0.0.1:1")
    assert msg.endswith("has duplicate url")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://127.0.0.1:1", "URL scheme must be http, https, unix, or unixs: ftp://127.0.0.1:1"),
        ("http://127.0.0.1", 'URL address does not have the form "host:port": http://127.0.0.1'),
        ("http://127.0.0.1:1/x", "URL must not contain a path: http://127.0.0.1:1/x"),
        ("http://example.com:1", "expected IP in URL for binding (http://example.com:1)"),
    ],
)
def test_bad_listen_urls(url: str, expected: str) -> None:
    assert error_of("--listen-peer-urls", url) == expected


def test_timing_checks() -> None:
    assert error_of("--heartbeat-interval", "0") == "--heartbeat-interval must be >0 (set to 0ms)"
    assert error_of("--heartbeat-interval", "300") == (
        "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"
    )
    assert error_of("--election-timeout", "60000").startswith("--election-timeout[60000ms] is too long")


def test_cluster_state_values() -> None:
    with pytest.raises(FlagError, match="valid values are: new, existing"):
        load(["--initial-cluster-state", "old"], {})
    assert cfg_of("--initial-cluster-state", "existing").initial_cluster_state == "existing"


def test_unknown_and_unimplemented_flags() -> None:
    with pytest.raises(FlagError, match="flag provided but not defined: -bogus"):
        load(["--bogus"], {})
    assert "does not implement" in error_of("--client-cert-auth")
    assert "does not implement" in error_of("--discovery", "https://discovery.etcd.io/x")
    cfg_of("--client-cert-auth=false", "--auth-token", "simple")  # defaults are fine


def test_positional_argument_refused() -> None:
    with pytest.raises(FlagError, match="'foo' is not a valid flag"):
        load(["foo"], {})


def test_retention_units() -> None:
    assert parse_retention("periodic", "1") == 3600.0
    assert parse_retention("periodic", "5m") == 300.0
    assert parse_retention("periodic", "1h30m") == 5400.0
    assert parse_retention("revision", "1000") == 1000.0
    with pytest.raises(ConfigError):
        parse_retention("revision", "5m")


def test_version_names_etcd_and_petcd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"], {}) == 0
    out = capsys.readouterr().out
    assert out == version_text()
    assert out.startswith("etcd Version: 3.")
    assert "petcd Version: " in out


def test_config_error_exit_status_and_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--name", "x", "--initial-cluster", "a=http://127.0.0.1:1"], {}) == 1
    line = json.loads(capsys.readouterr().err.strip())
    assert line["level"] == "warn" and line["msg"] == "failed to verify flags"
    assert "couldn't find local name" in line["error"]
    assert {"ts", "caller"} <= line.keys()


def test_logger_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "log"
    with out.open("w") as fh:
        lg = ZapLogger("info", [fh])
        lg.debug("x/y.go:1", "hidden")
        lg.info("etcdserver/server.go:1", "became leader at term", term=2, local_member_id="8e9e05c52164694d")
    (line,) = out.read_text().splitlines()
    rec = json.loads(line)
    assert list(rec)[:4] == ["level", "ts", "caller", "msg"]
    assert rec["msg"] == "became leader at term" and rec["term"] == 2
    assert rec["local-member-id"] == "8e9e05c52164694d"
    assert rec["ts"].endswith("Z") and rec["ts"][10] == "T"


def test_logged_exception_carries_its_stacktrace(tmp_path: Path) -> None:
    out = tmp_path / "log"
    with out.open("w") as fh:
        lg = ZapLogger("info", [fh])
        lg.install("petcd.test-stacktrace")

        def failing_apply() -> None:
            raise RuntimeError("boom")

        try:
            failing_apply()
        except RuntimeError:
            logging.getLogger("petcd.test-stacktrace").critical("node loop stopped", exc_info=True)
    (line,) = out.read_text().splitlines()
    rec = json.loads(line)
    assert rec["msg"] == "node loop stopped" and rec["error"] == "boom"
    assert "failing_apply" in rec["stacktrace"] and rec["stacktrace"].endswith("RuntimeError: boom")


def test_python_dash_m_petcd_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "petcd", "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith("etcd Version: ")


def test_unsupported_logger_and_format_refused() -> None:
    assert "does not implement" in error_of("--log-format", "console")
    assert "does not implement" in error_of("--logger", "capnslog")
    cfg_of("--logger", "zap", "--log-format", "json")


def test_watch_progress_notify_interval_flags() -> None:
    assert cfg_of().watch_progress_notify_interval_s == 600.0
    assert cfg_of("--watch-progress-notify-interval=100ms").watch_progress_notify_interval_s == 0.1
    assert (
        cfg_of("--experimental-watch-progress-notify-interval", "1m30s").watch_progress_notify_interval_s
        == 90.0
    )
    env = {"ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL": "2s"}
    assert cfg_of(env=env).watch_progress_notify_interval_s == 2.0
    # the new name wins over the deprecated one; etcd keeps the default for a zero or negative value
    both = ("--experimental-watch-progress-notify-interval=5s", "--watch-progress-notify-interval=3s")
    assert cfg_of(*both).watch_progress_notify_interval_s == 3.0
    assert cfg_of("--watch-progress-notify-interval=0").watch_progress_notify_interval_s == 600.0
    assert cfg_of("--watch-progress-notify-interval=-1s").watch_progress_notify_interval_s == 600.0
    # Go's flag package, as the reference etcd prints it
    assert error_of("--experimental-watch-progress-notify-interval=abc") == (
        'invalid value "abc" for flag -experimental-watch-progress-notify-interval: parse error'
    )
    assert error_of("--watch-progress-notify-interval", "10") == (
        'invalid value "10" for flag -watch-progress-notify-interval: parse error'
    )
