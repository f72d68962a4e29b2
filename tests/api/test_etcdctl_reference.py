"""The reference etcdctl 3.4.23 against the API over a fake facade prints what it prints for etcd."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from api_served import Served
from fake_facade import MEMBER_ID

ETCDCTL = "/usr/bin/etcdctl"
pytestmark = pytest.mark.skipif(shutil.which(ETCDCTL) is None, reason="reference etcdctl not installed")


def ctl(served: Served, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ETCDCTL_API="3")
    return subprocess.run(
        [ETCDCTL, "--endpoints", served.target, "--dial-timeout", "3s", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
        input=stdin,
    )


def out(served: Served, *args: str, stdin: str | None = None) -> str:
    r = ctl(served, *args, stdin=stdin)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_put_get_del(served: Served) -> None:
    assert out(served, "put", "mykey", "this is awesome") == "OK\n"
    assert out(served, "get", "mykey") == "mykey\nthis is awesome\n"
    assert out(served, "put", "mykey", "v2", "--prev-kv") == "OK\nmykey\nthis is awesome\n"
    doc = json.loads(out(served, "get", "mykey", "-w", "json"))
    assert doc["header"]["revision"] == 3 and doc["header"]["member_id"] == MEMBER_ID
    assert doc["kvs"][0]["version"] == 2 and doc["count"] == 1
    assert out(served, "get", "mykey", "--rev", "2") == "mykey\nthis is awesome\n"
    assert out(served, "del", "mykey") == "1\n"
    assert out(served, "get", "mykey") == ""


def test_errors_print_etcd_strings(served: Served) -> None:
    out(served, "put", "k", "v")
    out(served, "compaction", "2")
    r = ctl(served, "get", "k", "--rev", "1")
    assert r.returncode != 0
    assert r.stderr.rstrip().endswith("Error: etcdserver: mvcc: required revision has been compacted")
    r = ctl(served, "put", "k", "v", "--ignore-lease", "--lease", "5")
    assert r.stderr.rstrip().endswith("Error: etcdserver: lease is provided")


def test_txn(served: Served) -> None:
    stdin = 'mod("k") = "0"\n\nput k v\nget k\n\nput k other\n\n'
    assert out(served, "txn", stdin=stdin) == "SUCCESS\n\nOK\n\nk\nv\n"
    assert out(served, "txn", stdin=stdin) == "FAILURE\n\nOK\n"


def test_lease_commands(served: Served) -> None:
    granted = out(served, "lease", "grant", "100")
    lease_hex = granted.split()[1]
    assert granted == f"lease {lease_hex} granted with TTL(100s)\n"
    assert out(served, "put", "lk", "v", "--lease", lease_hex) == "OK\n"
    assert out(served, "lease", "list") == f"found 1 leases\n{lease_hex}\n"
    ttl = out(served, "lease", "timetolive", lease_hex, "--keys")
    assert ttl == f"lease {lease_hex} granted with TTL(100s), remaining(100s), attached keys([lk])\n"
    assert (
        out(served, "lease", "keep-alive", "--once", lease_hex)
        == f"lease {lease_hex} keepalived with TTL(100)\n"
    )
    assert out(served, "lease", "revoke", lease_hex) == f"lease {lease_hex} revoked\n"
    assert out(served, "get", "lk") == ""
    r = ctl(served, "lease", "revoke", lease_hex)
    assert r.stderr.rstrip().endswith("Error: failed to revoke lease (etcdserver: requested lease not found)")


def test_member_list_and_endpoint_status(served: Served) -> None:
    assert out(served, "member", "list") == (
        "8e9e05c52164694d, started, default, http://localhost:2380, http://localhost:2379, false\n"
    )
    status = out(served, "endpoint", "status")
    assert status == f"{served.target}, 8e9e05c52164694d, 3.6.0, 102 kB, true, false, 2, 4, 4, \n"
    r = ctl(served, "endpoint", "health")
    health = r.stdout + r.stderr  # etcdctl 3.4 prints the verdict on stderr
    assert r.returncode == 0 and health.startswith(
        f"{served.target} is healthy: successfully committed proposal: took = "
    )
    assert out(served, "alarm", "list") == ""


def test_snapshot_save(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "snap.db"
    r = ctl(served, "snapshot", "save", str(path))
    assert r.returncode == 0, r.stderr
    assert f"Snapshot saved at {path}" in r.stdout
    data = path.read_bytes()
    # etcdctl checked the sha256 trailer and keeps it at the end of the file, as with etcd
    assert data == served.facade.db + hashlib.sha256(served.facade.db).digest()


def test_watch_prints_events(served: Served) -> None:
    env = dict(os.environ, ETCDCTL_API="3")
    proc = subprocess.Popen(
        [ETCDCTL, "--endpoints", served.target, "watch", "w", "--prefix"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        time.sleep(0.5)
        out(served, "put", "w1", "one")
        out(served, "del", "w1")
        lines = [proc.stdout.readline() for _ in range(5)] if proc.stdout else []
        assert lines == ["PUT\n", "w1\n", "one\n", "DELETE\n", "w1\n"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_lock_runs_the_command_holding_the_lock(served: Served) -> None:
    # etcdctl lock runs a command while holding the lock (v3lock via the client's concurrency package)
    assert out(served, "lock", "mylock", "echo", "held") == "held\n"


def test_elect_campaigns_and_a_second_candidate_waits(served: Served) -> None:
    env = dict(os.environ, ETCDCTL_API="3")
    cmd = [ETCDCTL, "--endpoints", served.target, "elect", "myelection"]
    first = subprocess.Popen(
        [*cmd, "one"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    second = None
    try:
        assert first.stdout is not None
        key = first.stdout.readline()
        assert key.startswith("myelection/") and first.stdout.readline() == "one\n"
        second = subprocess.Popen(
            [*cmd, "two"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        time.sleep(0.5)
        assert (
            second.poll() is None
            and out(served, "get", "--prefix", "myelection/", "--keys-only").count("\n") == 4
        )
        first.send_signal(signal.SIGINT)  # resigns: the second one leads
        first.wait(5)
        assert second.stdout is not None
        assert second.stdout.readline().startswith("myelection/") and second.stdout.readline() == "two\n"
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def test_member_add_prints_the_env_block(served: Served) -> None:
    added = out(served, "member", "add", "m2", "--peer-urls", "http://127.0.0.1:12380")
    assert added.endswith(
        'ETCD_NAME="m2"\nETCD_INITIAL_CLUSTER="default=http://localhost:2380,m2=http://127.0.0.1:12380"\n'
        'ETCD_INITIAL_ADVERTISE_PEER_URLS="http://127.0.0.1:12380"\nETCD_INITIAL_CLUSTER_STATE="existing"\n'
    )
