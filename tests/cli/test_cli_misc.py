"""etcdctl behaviour beyond single request/reply commands: API version, start-up imports,
streaming commands (lease keep-alive, lock, elect, watch progress), check perf and make-mirror."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest
from etcdctl_harness import OURS, REF_ETCDCTL, EtcdServer, Pair, needs_etcd, run

pytestmark = needs_etcd


def test_api_2_is_refused() -> None:
    r = run(OURS, ["get", "foo"], env={"ETCDCTL_API": "2"})
    assert r.rc == 1
    assert r.err == b"unsupported API version: 2\n"
    assert r.out == b""


def test_version() -> None:
    r = run(OURS, ["version"])
    assert r.rc == 0
    assert r.out == b"etcdctl version: 3.6.0\nAPI version: 3.6\n"


def test_help_and_no_command() -> None:
    for args in ([], ["--help"], ["get", "-h"]):
        r = run(OURS, args)
        assert r.rc == 0
        assert b"etcdctl" in r.out


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_completion(shell: str) -> None:
    r = run(OURS, ["completion", shell])
    assert r.rc == 0
    assert b"etcdctl" in r.out and b"member" in r.out
    if shell == "bash":
        check = subprocess.run(["bash", "-n"], input=r.out, capture_output=True, check=False)
        assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_etcdutl_completion(shell: str) -> None:
    r = run([sys.executable, "-m", "petcd.cli.etcdutl"], ["completion", shell])
    assert r.rc == 0
    assert b"etcdutl" in r.out and b"snapshot" in r.out and b"etcdctl" not in r.out
    if shell == "bash":
        check = subprocess.run(["bash", "-n"], input=r.out, capture_output=True, check=False)
        assert check.returncode == 0, check.stderr


def test_completion_needs_a_shell() -> None:
    # cobra's argument checks: a usage error (exit 1, message, then the usage text)
    r = run(OURS, ["completion", "tcsh"])
    assert (r.rc, r.err) == (1, b'Error: invalid argument "tcsh" for "etcdctl completion"\n\n')
    assert r.out.startswith(b"NAME:\n  completion - Generate completion script\n")
    r = run(OURS, ["completion"])
    assert (r.rc, r.err) == (1, b"Error: accepts 1 arg(s), received 0\n\n")


@pytest.mark.parametrize(
    "args",
    [
        ["put", "k", "v"],
        ["get", "k"],
        ["del", "k"],
        ["member", "list"],
        ["endpoint", "health"],
        ["get", "k", "-w", "json"],
    ],
)
def test_common_commands_do_not_import_grpc(etcd_server: EtcdServer, args: list[str]) -> None:
    code = "import sys; sys.argv[0] = 'etcdctl'; from petcd.cli.etcdctl import main; main()"
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, "--endpoints", etcd_server.endpoint, *args],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.decode().splitlines() if "|" in line}
    heavy = {m for m in imported if m.split(".")[0] in ("grpc", "google", "dataclasses", "typing", "click")}
    assert not heavy
    # help text and DNS discovery are built only when asked for
    assert not imported & {"petcd.cli.etcdctl.help", "petcd.cli.etcdctl.srv", "petcd.client.rpctypes"}


def _read_lines(proc: subprocess.Popen[bytes], lines: int, wait_s: float) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    out = b""
    deadline = time.monotonic() + wait_s
    while out.count(b"\n") < lines and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
    return out


def _start(cmd: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.kill()
    rc = proc.wait(10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return rc


def test_lease_keep_alive_until_revoked(etcd_server: EtcdServer) -> None:
    ep = ["--endpoints", etcd_server.endpoint]
    # a TTL the keep-alive process surely starts within, even on a loaded machine (it renews
    # every TTL/3 seconds)
    granted = run(OURS, [*ep, "lease", "grant", "9"])
    lease = granted.out.split()[1].decode()
    proc = _start([*OURS, *ep, "lease", "keep-alive", lease])
    try:
        out = _read_lines(proc, 2, 20)
        assert out == f"lease {lease} keepalived with TTL(9)\n".encode() * 2
        assert run([REF_ETCDCTL], [*ep, "lease", "revoke", lease]).rc == 0
        out = _read_lines(proc, 1, 10)
        assert out.endswith(f"lease {lease} expired or revoked.\n".encode())
        assert proc.wait(10) == 0
    finally:
        _finish(proc)


def test_lock_is_shared_with_the_reference_etcdctl(etcd_server: EtcdServer) -> None:
    ep = ["--endpoints", etcd_server.endpoint]
    ours = _start([*OURS, *ep, "lock", "mutex1"])
    ref = None
    try:
        held = _read_lines(ours, 2, 15)
        assert re.fullmatch(rb"mutex1/[0-9a-f]+\n\n", held), held
        ref = _start([REF_ETCDCTL, *ep, "lock", "mutex1"])
        assert _read_lines(ref, 1, 1.5) == b""  # waits for ours
        ours.send_signal(signal.SIGINT)
        assert ours.wait(10) == 0
        assert re.fullmatch(rb"mutex1/[0-9a-f]+\n\n", _read_lines(ref, 2, 10))
        # and the other way round: ours waits for the reference
        ours2 = _start([*OURS, *ep, "lock", "mutex1"])
        try:
            assert _read_lines(ours2, 1, 1.5) == b""
            ref.send_signal(signal.SIGINT)
            assert re.fullmatch(rb"mutex1/[0-9a-f]+\n\n", _read_lines(ours2, 2, 10))
        finally:
            _finish(ours2)
    finally:
        _finish(ours)
        if ref is not None:
            _finish(ref)


def test_lock_runs_a_command(etcd_server: EtcdServer) -> None:
    r = run(
        OURS,
        [
            "--endpoints",
            etcd_server.endpoint,
            "lock",
            "m2",
            "--",
            "sh",
            "-c",
            "echo $ETCD_LOCK_KEY $ETCD_LOCK_REV",
        ],
    )
    assert r.rc == 0
    assert re.fullmatch(rb"m2/[0-9a-f]+ \d+\n", r.out)


def test_elect_and_observe(etcd_server: EtcdServer) -> None:
    ep = ["--endpoints", etcd_server.endpoint]
    leader = _start([*OURS, *ep, "elect", "el", "first"])
    observer = _start([REF_ETCDCTL, *ep, "elect", "-l", "el"])
    follower = None
    try:
        assert re.fullmatch(rb"el/[0-9a-f]+\nfirst\n", _read_lines(leader, 2, 15))
        assert re.fullmatch(rb"el/[0-9a-f]+\nfirst\n", _read_lines(observer, 2, 15))
        follower = _start([*OURS, *ep, "elect", "el", "second"])
        assert _read_lines(follower, 1, 1.5) == b""
        leader.send_signal(signal.SIGINT)
        assert re.fullmatch(rb"el/[0-9a-f]+\nsecond\n", _read_lines(follower, 2, 10))
        assert re.fullmatch(rb"el/[0-9a-f]+\nsecond\n", _read_lines(observer, 2, 10))
    finally:
        for p in (leader, observer, follower):
            if p is not None:
                _finish(p)
    assert run(OURS, [*ep, "elect", "el"]).rc == 128
    assert run(OURS, [*ep, "elect", "-l", "el", "x"]).rc == 128


def test_watch_progress_request(etcd_pair: Pair) -> None:
    outs = []
    for cmd, server in ((OURS, etcd_pair.ours_server), (REF_ETCDCTL, etcd_pair.ref_server)):
        argv = cmd if isinstance(cmd, list) else [cmd]
        p = subprocess.Popen(
            [*argv, "--endpoints", server.endpoint, "watch", "-i"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert p.stdin is not None
        p.stdin.write(b"watch progress-key\n")
        p.stdin.flush()
        time.sleep(1.0)
        p.stdin.write(b"progress\n")
        p.stdin.flush()
        outs.append(_read_lines(p, 1, 10))
        p.stdin.close()
        _finish(p)
    assert outs[0] == outs[1]
    assert outs[0].startswith(b"progress notify: ")


def test_check_perf_short_run(etcd_server: EtcdServer) -> None:
    ep = ["--endpoints", etcd_server.endpoint]
    r = run(OURS, [*ep, "check", "perf"], env={"PETCD_CHECK_PERF_DURATION_S": "2"})
    lines = r.out.decode().splitlines()
    assert re.fullmatch(r"(PASS|FAIL): Throughput (is|too low:) \d+ writes/s", lines[0])
    assert lines[-1] in ("PASS", "FAIL")
    assert r.rc == (0 if lines[-1] == "PASS" else 1)
    # the prefix is cleaned up afterwards
    assert run(
        OURS, [*ep, "get", "/etcdctl-check-perf/", "--prefix", "--count-only", "-w", "fields"]
    ).out.endswith(b'"Count" : 0\n')
    bad = run(OURS, [*ep, "check", "perf", "--load", "huge"])
    assert (bad.rc, bad.err) == (4, b"Error: unknown load option huge\n")


def test_check_datascale_short_run(etcd_server: EtcdServer) -> None:
    ep = ["--endpoints", etcd_server.endpoint]
    r = run(OURS, [*ep, "check", "datascale", "--auto-compact"], env={"PETCD_CHECK_DATASCALE_LIMIT": "500"})
    assert r.rc == 0, r.err
    lines = r.out.decode().splitlines()
    assert lines[0] == (
        "Start data scale check for work load [500 key-value pairs, 1024 bytes per key-value, "
        "50 concurrent clients]."
    )
    assert re.fullmatch(r"Compacting with revision \d+", lines[1])
    assert re.fullmatch(r"PASS: Approximate system memory used : -?\d+\.\d\d MB\.", lines[-1])
    count = run(OURS, [*ep, "get", "/etcdctl-check-datascale/", "--prefix", "--count-only", "-w", "fields"])
    assert count.out.endswith(b'"Count" : 0\n')


def test_make_mirror(etcd_pair: Pair) -> None:
    src, dst = etcd_pair.ours_server.endpoint, etcd_pair.ref_server.endpoint
    run(OURS, ["--endpoints", src, "put", "mirror/a", "1"])
    run(OURS, ["--endpoints", src, "put", "mirror/b", "2"])
    proc = _start(
        [*OURS, "--endpoints", src, "make-mirror", "--prefix", "mirror/", "--dest-prefix", "copy/", dst]
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = run([REF_ETCDCTL], ["--endpoints", dst, "get", "copy/", "--prefix"]).out
            if got == b"copy/a\n1\ncopy/b\n2\n":
                break
            time.sleep(0.2)
        assert got == b"copy/a\n1\ncopy/b\n2\n"
        run(OURS, ["--endpoints", src, "put", "mirror/c", "3"])
        run(OURS, ["--endpoints", src, "del", "mirror/a"])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = run([REF_ETCDCTL], ["--endpoints", dst, "get", "copy/", "--prefix"]).out
            if got == b"copy/b\n2\ncopy/c\n3\n":
                break
            time.sleep(0.2)
        assert got == b"copy/b\n2\ncopy/c\n3\n"
    finally:
        _finish(proc)
    # keep both servers identical for other tests in the module
    run([REF_ETCDCTL], ["--endpoints", dst, "del", "copy/", "--prefix"])


def test_snapshot_needs_one_endpoint(etcd_server: EtcdServer, tmp_path: pytest.TempPathFactory) -> None:
    r = run(
        OURS, ["--endpoints", f"{etcd_server.endpoint},127.0.0.1:1", "snapshot", "save", f"{tmp_path}/x.db"]
    )
    assert r.rc == 5
    assert r.err.startswith(b"Error: snapshot must be requested to one selected node, not multiple")
