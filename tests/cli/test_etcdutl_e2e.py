"""The issue's proof for etcdutl: snapshot a running petcd, restore it into a new 3-member cluster.

A one-member petcd (`python -m petcd`, 127.0.0.1, free ports, temporary data dir) gets keys; a
snapshot is saved with petcd's etcdctl and with the reference etcdctl 3.4.23 (which checks the
sha256 trailer's placement, see backend/snapshot.py); `etcdutl snapshot status` and `hashkv` of
the file agree with what the server reports; the file is restored into three new data dirs with
`etcdutl snapshot restore`, the three members start, and through etcdctl every key is there on
every member and `member list` shows the three. Every process started here is stopped here.
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
KEYS = {f"/proof/key{i:02d}": f"value-{i}" for i in range(25)}


def wait_for(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    env["ETCDCTL_API"] = "3"
    return env


class Member:
    def __init__(self, name: str, base: Path) -> None:
        client, peer = free_ports(2)
        self.name = name
        self.data_dir = base / f"{name}.etcd"
        self.client_url = f"http://127.0.0.1:{client}"
        self.peer_url = f"http://127.0.0.1:{peer}"
        self.log_path = base / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, initial_cluster: str) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "petcd",
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
                    "--initial-cluster-token",
                    "restored",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_env(),
            )

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log_path.read_text()}")
        return "ready to serve client requests" in self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


@pytest.fixture
def members() -> Iterator[list[Member]]:
    started: list[Member] = []
    yield started
    for m in started:
        m.stop()


def ctl(endpoint: str, *args: str, ours: bool = False) -> str:
    cmd = [sys.executable, "-m", "petcd.cli.etcdctl"] if ours else [ETCDCTL]
    out = subprocess.run(
        [*cmd, "--endpoints", endpoint, "--command-timeout=10s", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(),
        check=False,
    )
    assert out.returncode == 0, f"{cmd} {args}: {out.stderr}"
    return out.stdout


def etcdutl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "petcd.cli.etcdutl", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out


@pytest.mark.parametrize("saver", ["petcd-etcdctl", "reference-etcdctl"])
def test_snapshot_save_status_restore_three_members(
    tmp_path: Path, members: list[Member], saver: str
) -> None:
    source = Member("src", tmp_path)
    members.append(source)
    source.start(f"src={source.peer_url}")
    wait_for(source.ready, READY_TIMEOUT_S, "the source member")
    for k, v in KEYS.items():
        ctl(source.client_url, "put", k, v)
    ctl(source.client_url, "del", "/proof/key24")  # a tombstone in the history
    want = {k: v for k, v in KEYS.items() if k != "/proof/key24"}

    snap = tmp_path / "snapshot.db"
    out = ctl(source.client_url, "snapshot", "save", str(snap), ours=saver == "petcd-etcdctl")
    assert f"Snapshot saved at {snap}" in out
    size = snap.stat().st_size
    assert (size - 32) % 512 == 0  # what the reference etcdctl checks before accepting it

    # status and hashkv of the file agree with the running server
    server = json.loads(ctl(source.client_url, "endpoint", "hashkv", "-w", "json"))[0]["HashKV"]
    status = json.loads(etcdutl("snapshot", "status", str(snap), "-w", "json", cwd=tmp_path).stdout)
    assert status["revision"] == int(server["header"]["revision"]) == len(KEYS) + 2
    assert status["totalSize"] == size - 32
    assert status["version"] == "3.6.0"
    file_hash = json.loads(etcdutl("hashkv", str(snap), "-w", "json", cwd=tmp_path).stdout)
    assert file_hash["hash"] == server["hash"]
    assert file_hash["hashRevision"] == status["revision"]
    source.stop()

    # restore into three new data dirs (names relative to the working dir, as an operator types them)
    new = [Member(f"m{i}", tmp_path) for i in range(3)]
    cluster = ",".join(f"{m.name}={m.peer_url}" for m in new)
    bump = saver == "reference-etcdctl"  # one of the two runs also moves the revision on
    for m in new:
        extra = ["--bump-revision", "1000", "--mark-compacted"] if bump else []
        etcdutl(
            "snapshot",
            "restore",
            str(snap),
            "--name",
            m.name,
            "--initial-cluster",
            cluster,
            "--initial-cluster-token",
            "restored",
            "--initial-advertise-peer-urls",
            m.peer_url,
            *extra,
            cwd=tmp_path,
        )
        assert m.data_dir.is_dir()  # the default --data-dir: <name>.etcd
    for m in new:
        members.append(m)
        m.start(cluster)
    for m in new:
        wait_for(m.ready, READY_TIMEOUT_S, f"restored member {m.name}")

    for m in new:
        got = json.loads(ctl(m.client_url, "get", "/proof/", "--prefix", "-w", "json"))
        kvs = {_b64(kv["key"]): _b64(kv["value"]) for kv in got.get("kvs", [])}
        assert kvs == want, m.name
        rev = int(got["header"]["revision"])
        assert rev == status["revision"] + (1000 if bump else 0)
        listed = json.loads(ctl(m.client_url, "member", "list", "-w", "json"))["members"]
        assert sorted(x["name"] for x in listed) == ["m0", "m1", "m2"]
        assert sorted(x["peerURLs"][0] for x in listed) == sorted(x.peer_url for x in new)
    # the restored cluster takes writes: the revision goes on from the snapshot's (or the bumped one)
    out = ctl(new[0].client_url, "put", "/proof/after", "x", "-w", "json")
    assert int(json.loads(out)["header"]["revision"]) == rev + 1
    assert ctl(new[2].client_url, "get", "/proof/after", "--print-value-only") == "x\n"
    # a restored member restarts from its own data dir like any other
    new[0].stop()
    ready_before = new[0].log_path.read_text().count("ready to serve client requests")
    new[0].start(cluster)
    wait_for(
        lambda: (
            new[0].ready()
            and new[0].log_path.read_text().count("ready to serve client requests") > ready_before
        ),
        READY_TIMEOUT_S,
        "the restarted member",
    )
    got = json.loads(ctl(new[0].client_url, "get", "/proof/", "--prefix", "-w", "json"))
    assert len(got["kvs"]) == len(want) + 1
    if bump:
        compacted = subprocess.run(
            [ETCDCTL, "--endpoints", new[1].client_url, "get", "/proof/key00", "--rev", "5"],
            capture_output=True,
            text=True,
            timeout=30,
            env=_env(),
            check=False,
        )
        assert compacted.returncode != 0
        assert "required revision has been compacted" in compacted.stderr


def _b64(text: str) -> str:
    import base64

    return base64.b64decode(text).decode()
