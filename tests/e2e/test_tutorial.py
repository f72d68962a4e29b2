"""End to end: real `etcd` (petcd) processes on 127.0.0.1, driven by the reference etcdctl 3.4.23.

Every member runs as `python -m petcd` with free ports and a temporary data dir; every process a
test starts is stopped by it (SIGTERM, then SIGKILL), and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers import free_ports

ETCDCTL = "/usr/bin/etcdctl"  # the reference etcdctl (Debian etcd-client), never petcd on PATH
pytestmark = pytest.mark.skipif(not os.path.exists(ETCDCTL), reason="reference etcdctl not installed")

READY_TIMEOUT_S = 30.0


def wait_for(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


class Member:
    def __init__(self, name: str, base: Path, client_port: int, peer_port: int) -> None:
        self.name = name
        self.data_dir = base / f"{name}.etcd"
        self.client_url = f"http://127.0.0.1:{client_port}"
        self.peer_url = f"http://127.0.0.1:{peer_port}"
        self.log_path = base / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra: tuple[str, ...] = ()

    def args(self, initial_cluster: str, state: str = "new", extra: tuple[str, ...] = ()) -> list[str]:
        return [
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            self.client_url,
            "--advertise-client-urls",
            self.client_url,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--initial-cluster",
            initial_cluster,
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            "tkn",
            *extra,
        ]

    def start(self, initial_cluster: str, state: str = "new", etcd_env: dict[str, str] | None = None) -> None:
        """Start with flags; with `etcd_env`, the ETCD_* variables name the member instead (as
        `etcdctl member add` prints them) and only the listen/advertise URLs are flags."""
        assert self.proc is None or self.proc.poll() is not None
        log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        args = self.args(initial_cluster, state, self.extra)
        if etcd_env is not None:
            env.update(etcd_env)
            args = [
                "--data-dir",
                str(self.data_dir),
                "--listen-client-urls",
                self.client_url,
                "--advertise-client-urls",
                self.client_url,
                "--listen-peer-urls",
                self.peer_url,
                *self.extra,
            ]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "petcd", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ready_count(self) -> int:
        return self.log_text().count("ready to serve client requests")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        return p.returncode


def etcdctl(
    endpoints: str, *args: str, timeout_s: float = 20.0, check: bool = True, stderr: bool = False
) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    env["ETCDCTL_API"] = "3"
    out = subprocess.run(
        [ETCDCTL, "--endpoints", endpoints, "--command-timeout=5s", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        check=False,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)} failed ({out.returncode}): {out.stdout}{out.stderr}")
    return out.stdout + (out.stderr if stderr else "")


@pytest.fixture
def members(tmp_path: Path) -> Iterator[list[Member]]:
    started: list[Member] = []
    yield started
    for m in started:
        m.stop()
    for m in started:
        if m.proc is not None and m.proc.returncode not in (0, None, -signal.SIGKILL):
            print(f"--- {m.name} log (exit {m.proc.returncode}) ---\n{m.log_text()[-4000:]}")


def make_cluster(tmp_path: Path, members: list[Member], n: int) -> tuple[list[Member], str]:
    ports = free_ports(2 * n)
    ms = [Member(f"etcd{i + 1}", tmp_path, ports[2 * i], ports[2 * i + 1]) for i in range(n)]
    members.extend(ms)
    initial = ",".join(f"{m.name}={m.peer_url}" for m in ms)
    return ms, initial


def wait_ready(ms: list[Member], count: int = 1) -> None:
    for m in ms:
        wait_for(
            lambda m=m: m.ready_count() >= count or (m.proc is not None and m.proc.poll() is not None),  # type: ignore[misc]
            READY_TIMEOUT_S,
            f"{m.name} ready",
        )
        assert m.proc is not None and m.proc.poll() is None, f"{m.name} exited:\n{m.log_text()[-3000:]}"


def endpoint_status(m: Member) -> dict[str, object]:
    out = etcdctl(m.client_url, "endpoint", "status", "-w", "json")
    rows: list[dict[str, object]] = json.loads(out)
    status = rows[0]["Status"]
    assert isinstance(status, dict)
    return status


def test_single_member_tutorial(tmp_path: Path, members: list[Member]) -> None:
    (m,), initial = make_cluster(tmp_path, members, 1)
    m.start(initial)
    wait_ready([m])
    assert etcdctl(m.client_url, "put", "mykey", "this is awesome") == "OK\n"
    assert etcdctl(m.client_url, "get", "mykey") == "mykey\nthis is awesome\n"
    log = [json.loads(line) for line in m.log_text().splitlines() if line.startswith("{")]
    msgs = {rec["msg"] for rec in log}
    assert {"ready to serve client requests", "published local member to cluster through raft"} <= msgs
    assert any("became leader at term" in s for s in msgs)
    assert all({"level", "ts", "caller", "msg"} <= rec.keys() for rec in log)
    assert m.stop() == 0  # SIGTERM: a clean shutdown
    assert "received signal; shutting down" in m.log_text()


def test_three_member_tutorial_and_leader_failure(tmp_path: Path, members: list[Member]) -> None:
    ms, initial = make_cluster(tmp_path, members, 3)
    for m in ms:
        m.start(initial)
    wait_ready(ms)
    endpoints = ",".join(m.client_url for m in ms)
    listing = etcdctl(ms[0].client_url, "member", "list").splitlines()
    assert len(listing) == 3
    for m in ms:
        (row,) = [r for r in listing if f", {m.name}, " in r]
        ident, status, name, peer, client, learner = row.split(", ")
        assert (status, name, peer, client, learner) == ("started", m.name, m.peer_url, m.client_url, "false")
        int(ident, 16)

    # writes on any member, reads from every member
    assert etcdctl(ms[1].client_url, "put", "foo", "bar") == "OK\n"
    for m in ms:
        assert etcdctl(m.client_url, "get", "foo") == "foo\nbar\n"

    # kill -9 the leader: the others elect a new one and take writes
    leader_id = endpoint_status(ms[0])["leader"]
    (leader,) = [m for m in ms if endpoint_status(m)["header"]["member_id"] == leader_id]  # type: ignore[index]
    leader.stop(signal.SIGKILL)
    rest = [m for m in ms if m is not leader]
    t0 = time.monotonic()
    rest_eps = ",".join(m.client_url for m in rest)
    wait_for(
        lambda: (
            subprocess.run(
                [ETCDCTL, "--endpoints", rest_eps, "--command-timeout=2s", "put", "after", "failover"],
                capture_output=True,
                env={"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")},
                timeout=10,
                check=False,
            ).returncode
            == 0
        ),
        15.0,
        "a write after the leader died",
    )
    assert time.monotonic() - t0 < 15.0
    new_leader = endpoint_status(rest[0])["leader"]
    assert new_leader not in (0, leader_id)

    # the old leader restarts and catches up; HashKV agrees on all three
    leader.start(initial)
    wait_ready([leader], count=2)
    wait_for(
        lambda: (
            etcdctl(leader.client_url, "get", "after", "--consistency=s", check=False) == "after\nfailover\n"
        ),
        15.0,
        "the restarted member to catch up",
    )
    rev = int(endpoint_status(rest[0])["header"]["revision"])  # type: ignore[index]

    def hashes() -> set[int]:
        out = json.loads(etcdctl(endpoints, "endpoint", "hashkv", "--rev", str(rev), "-w", "json"))
        return {int(r["HashKV"]["hash"]) for r in out}

    wait_for(lambda: len(hashes()) == 1, 10.0, "HashKV to agree")


def test_cluster_restart_keeps_acknowledged_writes(tmp_path: Path, members: list[Member]) -> None:
    ms, initial = make_cluster(tmp_path, members, 3)
    for m in ms:
        m.start(initial)
    wait_ready(ms)
    endpoints = ",".join(m.client_url for m in ms)
    for i in range(20):
        assert etcdctl(ms[i % 3].client_url, "put", f"k{i:02d}", f"v{i}") == "OK\n"
    rev_before = int(endpoint_status(ms[0])["header"]["revision"])  # type: ignore[index]
    # the leader stops cleanly and hands leadership over first; then a hard stop of the others:
    # only what the WAL holds survives
    leader_id = endpoint_status(ms[0])["leader"]
    (leader,) = [m for m in ms if endpoint_status(m)["header"]["member_id"] == leader_id]  # type: ignore[index]
    assert leader.stop() == 0
    assert "leadership transfer finished" in leader.log_text()
    for m in ms:
        m.stop(signal.SIGKILL)
    for m in ms:
        m.start(initial)
    wait_ready(ms, count=2)
    wait_for(
        lambda: etcdctl(endpoints, "endpoint", "health", check=False, stderr=True).count("is healthy") == 3,
        20.0,
        "the restarted cluster to be healthy",
    )
    out = etcdctl(ms[2].client_url, "get", "k", "--prefix").splitlines()
    assert out == [x for i in range(20) for x in (f"k{i:02d}", f"v{i}")]
    assert int(endpoint_status(ms[1])["header"]["revision"]) >= rev_before  # type: ignore[index]


def _join_second(tmp_path: Path, members: list[Member], learner: bool) -> tuple[Member, Member]:
    ms, _ = make_cluster(tmp_path, members, 2)
    first, second = ms
    first.start(f"{first.name}={first.peer_url}")
    wait_ready([first])
    assert etcdctl(first.client_url, "put", "before", "join") == "OK\n"
    extra = ["--learner"] if learner else []
    out = etcdctl(first.client_url, "member", "add", second.name, f"--peer-urls={second.peer_url}", *extra)
    assert 'ETCD_INITIAL_CLUSTER_STATE="existing"' in out
    assert f'ETCD_NAME="{second.name}"' in out
    # the tutorial's way: export what `member add` printed, then start the new member
    printed = dict(
        line.split("=", 1) for line in out.splitlines() if line.startswith("ETCD_") and "=" in line
    )
    etcd_env = {k: v.strip('"') for k, v in printed.items()}
    assert etcd_env["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    second.start("", etcd_env=etcd_env)
    wait_ready([second])
    wait_for(
        lambda: (
            etcdctl(second.client_url, "get", "before", "--consistency=s", check=False) == "before\njoin\n"
        ),
        15.0,
        "the new member to catch up",
    )
    return first, second


def test_member_add_then_join_existing_cluster(tmp_path: Path, members: list[Member]) -> None:
    first, second = _join_second(tmp_path, members, learner=False)
    rows = sorted(etcdctl(first.client_url, "member", "list").splitlines(), key=lambda r: r.split(", ")[2])
    assert [r.split(", ")[1:] for r in rows] == [
        ["started", m.name, m.peer_url, m.client_url, "false"] for m in (first, second)
    ]
    assert etcdctl(second.client_url, "put", "after", "join") == "OK\n"
    assert etcdctl(first.client_url, "get", "after") == "after\njoin\n"


def test_learner_join_and_promote(tmp_path: Path, members: list[Member]) -> None:
    first, second = _join_second(tmp_path, members, learner=True)
    (row,) = [
        r for r in etcdctl(first.client_url, "member", "list").splitlines() if f", {second.name}, " in r
    ]
    assert row.endswith(", true")
    learner_id = row.split(", ")[0]
    # the leader promotes only a learner it sees in sync ("can only promote a learner member which
    # is in sync with leader" until then), as etcd
    last: list[str] = []

    def promoted() -> bool:
        last.append(etcdctl(first.client_url, "member", "promote", learner_id, check=False, stderr=True))
        if last[-1].startswith(f"Member {learner_id} promoted in cluster "):
            return True
        # an attempt whose answer was lost (client deadline) may still have been applied
        return (
            "can only promote a learner member\n" in last[-1]
            and etcdctl(first.client_url, "member", "list").count(", false") == 2
        )

    try:
        wait_for(promoted, 15.0, "the learner to be promoted")
    except AssertionError:
        raise AssertionError(f"promote kept failing: {last}") from None
    (row,) = [
        r for r in etcdctl(first.client_url, "member", "list").splitlines() if f", {second.name}, " in r
    ]
    assert row.endswith(", false")
    assert etcdctl(second.client_url, "put", "after", "promote") == "OK\n"


def test_defaults_data_dir_and_name(tmp_path: Path) -> None:
    client, peer = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    url = f"http://127.0.0.1:{client}"
    log_path = tmp_path / "default.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "petcd",
                "--listen-client-urls",
                url,
                "--advertise-client-urls",
                url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer}",
            ],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for(lambda: "ready to serve client requests" in log_path.read_text(), READY_TIMEOUT_S, "ready")
        assert (tmp_path / "default.etcd" / "member" / "wal").is_dir()
        assert (tmp_path / "default.etcd" / "member" / "snap").is_dir()
        row = etcdctl(url, "member", "list").strip()
        assert row.split(", ")[1:] == ["started", "default", "http://localhost:2380", url, "false"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_config_errors_write_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    out = subprocess.run(
        [sys.executable, "-m", "petcd", "--name", "x", "--initial-cluster", "y=http://127.0.0.1:1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert out.returncode == 1
    assert 'couldn\'t find local name \\"x\\" in the initial cluster configuration' in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_data_dir_of_another_cluster_is_refused(tmp_path: Path, members: list[Member]) -> None:
    (m,), initial = make_cluster(tmp_path, members, 1)
    m.start(initial)
    wait_ready([m])
    assert m.stop() == 0
    other = Member("other", tmp_path, *free_ports(2))
    other.data_dir = m.data_dir  # same dir, another member of another cluster
    members.append(other)
    other.start(f"other={other.peer_url}")
    assert other.proc is not None
    assert other.proc.wait(30) == 1
    assert "belongs to member" in other.log_text()


def test_lagging_member_catches_up_from_a_snapshot(tmp_path: Path, members: list[Member]) -> None:
    ms, initial = make_cluster(tmp_path, members, 3)
    for m in ms:
        m.extra = ("--snapshot-count", "20", "--snapshot-catchup-entries", "5")
        m.start(initial)
    wait_ready(ms)
    lagging = ms[2]
    lagging.stop()
    for i in range(60):
        assert etcdctl(ms[i % 2].client_url, "put", f"s{i:02d}", f"v{i}") == "OK\n"
    lagging.start(initial)
    wait_ready([lagging], count=2)
    want = "".join(f"s{i:02d}\nv{i}\n" for i in range(60))
    wait_for(
        lambda: etcdctl(lagging.client_url, "get", "s", "--prefix", "--consistency=s", check=False) == want,
        20.0,
        "the lagging member to catch up",
    )
    log = lagging.log_text()
    assert "applied incoming snapshot" in log or "applying snapshot" in log
    rev = int(endpoint_status(ms[0])["header"]["revision"])  # type: ignore[index]
    endpoints = ",".join(m.client_url for m in ms)
    out = json.loads(etcdctl(endpoints, "endpoint", "hashkv", "--rev", str(rev), "-w", "json"))
    assert len({int(r["HashKV"]["hash"]) for r in out}) == 1


def test_watch_and_leases_through_followers(tmp_path: Path, members: list[Member]) -> None:
    ms, initial = make_cluster(tmp_path, members, 3)
    for m in ms:
        m.start(initial)
    wait_ready(ms)
    leader_id = endpoint_status(ms[0])["leader"]
    followers = [m for m in ms if endpoint_status(m)["header"]["member_id"] != leader_id]  # type: ignore[index]
    f1, f2 = followers[0], followers[1]

    env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
    watch_out = tmp_path / "watch.out"
    with watch_out.open("wb") as sink:
        watcher = subprocess.Popen(
            [ETCDCTL, "--endpoints", f1.client_url, "watch", "foo"], stdout=sink, env=env
        )
    try:
        time.sleep(1.0)  # the watch is set up before the write
        assert etcdctl(f2.client_url, "put", "foo", "bar") == "OK\n"
        wait_for(lambda: watch_out.read_text() == "PUT\nfoo\nbar\n", 10.0, "the watch event")
    finally:
        watcher.kill()
        watcher.wait(10)

    out = etcdctl(f1.client_url, "lease", "grant", "60")
    lease_id = out.split()[1]
    assert out == f"lease {lease_id} granted with TTL(60s)\n"
    assert etcdctl(f2.client_url, "put", "leased", "v", f"--lease={lease_id}") == "OK\n"
    assert etcdctl(f1.client_url, "lease", "keep-alive", "--once", lease_id) == (
        f"lease {lease_id} keepalived with TTL(60)\n"
    )
    ttl = etcdctl(f2.client_url, "lease", "timetolive", lease_id, "--keys")
    assert (
        ttl.startswith(f"lease {lease_id} granted with TTL(60s), remaining(")
        and "attached keys([leased])" in ttl
    )
    assert etcdctl(f1.client_url, "lease", "revoke", lease_id) == f"lease {lease_id} revoked\n"
    assert etcdctl(f2.client_url, "get", "leased") == ""


def test_cluster_token_mismatch_is_reported(tmp_path: Path, members: list[Member]) -> None:
    ms, initial = make_cluster(tmp_path, members, 2)
    ms[0].start(initial)
    ms[1].extra = ("--initial-cluster-token", "another-token")  # the later flag wins, as in Go
    ms[1].start(initial)
    wait_for(lambda: "cluster ID mismatch" in ms[0].log_text(), 15.0, "the mismatch to be reported")
    assert "request sent was ignored by remote peer" in ms[0].log_text()
    assert ms[0].ready_count() == 0 and ms[1].ready_count() == 0


def test_http_and_metrics_listeners(tmp_path: Path, members: list[Member]) -> None:
    import urllib.request

    (m,), initial = make_cluster(tmp_path, members, 1)
    http_port, metrics_port = free_ports(2)
    http_url = f"http://127.0.0.1:{http_port}"
    metrics_url = f"http://127.0.0.1:{metrics_port}"
    m.extra = ("--listen-client-http-urls", http_url, "--listen-metrics-urls", metrics_url)
    m.start(initial)
    wait_ready([m])
    assert etcdctl(m.client_url, "put", "k", "v") == "OK\n"  # gRPC on the client URL
    with urllib.request.urlopen(f"{http_url}/version", timeout=10) as r:
        version = json.loads(r.read())
    assert version["etcdserver"].startswith("3.") and version["etcdcluster"].startswith("3.")
    req = urllib.request.Request(
        f"{http_url}/v3/kv/range", data=json.dumps({"key": "aw=="}).encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        body = json.loads(r.read())
    assert body["kvs"][0]["value"] == "dg=="
    with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert "etcd_server_has_leader 1.0" in metrics
    assert "etcd_server_leader_changes_seen_total 1.0" in metrics
    fsyncs = [
        line for line in metrics.splitlines() if line.startswith("etcd_disk_wal_fsync_duration_seconds_count")
    ]
    assert fsyncs and float(fsyncs[0].split()[1]) > 0
    with urllib.request.urlopen(f"{metrics_url}/health", timeout=10) as r:
        assert json.loads(r.read())["health"] == "true"


def test_member_remove_stops_the_removed_member(tmp_path: Path, members: list[Member]) -> None:
    ms, initial = make_cluster(tmp_path, members, 3)
    for m in ms:
        m.start(initial)
    wait_ready(ms)
    gone = ms[2]
    gone_id = next(
        r.split(", ")[0] for r in etcdctl(ms[0].client_url, "member", "list").splitlines() if gone.name in r
    )
    out = etcdctl(ms[0].client_url, "member", "remove", gone_id)
    # etcdctl prints `Member %16x removed ...`: space-padded to 16 columns
    assert out.startswith(f"Member {int(gone_id, 16):16x} removed from cluster ")
    assert gone.proc is not None
    gone.proc.wait(20)
    assert "the member has been permanently removed from the cluster" in gone.log_text()
    rows = etcdctl(ms[1].client_url, "member", "list").splitlines()
    assert sorted(r.split(", ")[2] for r in rows) == [ms[0].name, ms[1].name]
    # the removed member may have been the leader: the others may need an election first
    wait_for(
        lambda: etcdctl(ms[1].client_url, "put", "after", "remove", check=False) == "OK\n",
        15.0,
        "a write after the removal",
    )


def test_second_process_on_a_data_dir_is_refused(tmp_path: Path, members: list[Member]) -> None:
    (m,), initial = make_cluster(tmp_path, members, 1)
    m.start(initial)
    wait_ready([m])
    twin = Member(m.name, tmp_path / "twin", *free_ports(2))
    (tmp_path / "twin").mkdir()
    twin.data_dir = m.data_dir
    members.append(twin)
    twin.start(f"{m.name}={twin.peer_url}")
    assert twin.proc is not None and twin.proc.wait(30) == 1
    assert "is in use by another etcd process" in twin.log_text()
    assert etcdctl(m.client_url, "put", "still", "here") == "OK\n"


def test_config_file(tmp_path: Path) -> None:
    client, peer = free_ports(2)
    cfg = tmp_path / "etcd.conf.yml"
    cfg.write_text(
        "name: cfg1\n"
        f"data-dir: {tmp_path / 'cfg1.etcd'}\n"
        f"listen-client-urls: http://127.0.0.1:{client}\n"
        f"advertise-client-urls: http://127.0.0.1:{client}\n"
        f"listen-peer-urls: http://127.0.0.1:{peer}\n"
        f"initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
        f"initial-cluster: cfg1=http://127.0.0.1:{peer}\n"
        "initial-cluster-token: from-yaml\n"
        "heartbeat-interval: 50\n"
        "election-timeout: 500\n"
        "log-level: info\n"
    )
    log_path = tmp_path / "cfg1.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "petcd", "--config-file", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for(lambda: "ready to serve client requests" in log_path.read_text(), READY_TIMEOUT_S, "ready")
        url = f"http://127.0.0.1:{client}"
        assert etcdctl(url, "put", "from", "yaml") == "OK\n"
        assert etcdctl(url, "member", "list").split(", ")[2] == "cfg1"
        assert '"election-timeout":"500ms"' in log_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0


def test_peer_round_trip_metric(tmp_path: Path, members: list[Member]) -> None:
    import urllib.request

    ms, initial = make_cluster(tmp_path, members, 2)
    for m in ms:
        m.start(initial)
    wait_ready(ms)

    def probed() -> bool:
        with urllib.request.urlopen(f"{ms[0].client_url}/metrics", timeout=10) as r:
            text = r.read().decode()
        return "etcd_network_peer_round_trip_time_seconds_count{To=" in text

    wait_for(probed, 10.0, "a peer round-trip sample")
