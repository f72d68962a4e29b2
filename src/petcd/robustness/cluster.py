"""A cluster of real etcd processes (petcd's or any etcd binary) on 127.0.0.1, for the harness.

Each member gets free ports: a client port, a private peer port it listens on, and a proxy port
it advertises (see `proxy`). Data dirs live under the run's directory and are never deleted here
(the runner removes the directory after a clean run and keeps it after a failure).

Process control is what the faults need: `kill` (SIGKILL), `stop` (SIGTERM), `pause`/`resume`
(SIGSTOP/SIGCONT), `start` (again, from the same data dir, optionally with extra environment,
e.g. GOFAIL_FAILPOINTS), `replace` (remove the member through the API, wipe its data dir, add it
back under a new ID and start it with --initial-cluster-state existing).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc
from petcd.robustness.proxy import LinkRules, PeerProxy, ProxyLoop

READY_TIMEOUT_S = 30.0
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_http_proxy", 0),
]


# Listening ports come from below the kernel's ephemeral range: a port from bind(("", 0)) is free
# when picked but may be taken, before the member binds it, as the source port of one of the
# cluster's own outgoing connections (seed 9904: "Address already in use" on a peer port).
LISTEN_PORTS_FLOOR = 10_000
EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


def _ephemeral_floor() -> int:
    try:
        with open(EPHEMERAL_RANGE_FILE) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1, below the ephemeral range when it leaves room."""
    socks: list[socket.socket] = []
    ceiling = _ephemeral_floor()
    rng = random.Random()
    try:
        tries = 0
        while len(socks) < n and ceiling - LISTEN_PORTS_FLOOR > 1000 and tries < 50 * n:
            tries += 1
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", rng.randrange(LISTEN_PORTS_FLOOR, ceiling)))
            except OSError:
                s.close()
                continue
            socks.append(s)
        while len(socks) < n:  # no room below the ephemeral range: let the kernel pick
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def is_petcd(binary: str) -> bool:
    """petcd's `etcd` is a Python script; Go's etcd is an ELF binary."""
    try:
        with open(binary, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """The member and every process it started (petcd's front-ends): each member runs in its own
    session, so its process group is its own."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)


def default_binary() -> str:
    """petcd's `etcd` beside this Python (the venv's), else whatever `etcd` is on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "etcd")
    if is_petcd(here):
        return here
    return shutil.which("etcd") or "etcd"


@dataclass(slots=True)
class Member:
    index: int
    name: str
    client_port: int
    peer_port: int
    proxy_port: int
    data_dir: Path
    log_path: Path
    failpoint_port: int = 0  # GOFAIL_HTTP (petcd only): where failpoints are armed
    member_id: int = 0
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    starts: int = 0
    # The harness killed or stopped it, or armed a crashing failpoint: an exit is no finding.
    exit_expected: bool = False
    exit_reported: bool = False
    env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def advertised_peer_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    def __init__(
        self,
        binary: str,
        size: int,
        base_dir: Path,
        seed: int,
        *,
        snapshot_count: int = 100,
        heartbeat_ms: int = 100,
        election_ms: int = 1000,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.petcd = is_petcd(binary)
        self.base_dir = base_dir
        self.snapshot_count = snapshot_count
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.extra_args = list(extra_args)  # e.g. petcd's --frontend-processes 2
        self.rules = LinkRules()
        self.proxy_loop = ProxyLoop()
        self.members: list[Member] = []
        self.proxies: list[PeerProxy] = []
        self.token = f"robustness-{seed}"
        self.generation = 0  # bumped by each replace: fresh data dirs get a new name
        # all at once, so that they differ
        ports = free_ports(4 * size)
        for i in range(size):
            client, peer, proxy, failpoint = ports[4 * i : 4 * i + 4]
            m = Member(
                index=i,
                name=f"m{i}",
                client_port=client,
                peer_port=peer,
                proxy_port=proxy,
                data_dir=base_dir / f"m{i}.etcd",
                log_path=base_dir / f"m{i}.log",
                failpoint_port=failpoint if self.petcd else 0,
            )
            self.members.append(m)
            p = PeerProxy(proxy, peer, self.rules, seed * 31 + i)
            self.proxies.append(p)
            self.proxy_loop.call(p.start)
        self._channels: dict[int, grpc.Channel] = {}

    # ------------------------------------------------------------------ processes

    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.advertised_peer_url}" for m in self.members)

    def _command(self, m: Member, state: str) -> list[str]:
        client_url = f"http://{m.address}"
        args = [
            self.binary,
            "--name",
            m.name,
            "--data-dir",
            str(m.data_dir),
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
            "--listen-peer-urls",
            f"http://127.0.0.1:{m.peer_port}",
            "--initial-advertise-peer-urls",
            m.advertised_peer_url,
            "--initial-cluster",
            self.initial_cluster(),
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            self.token,
            "--snapshot-count",
            str(self.snapshot_count),
            "--heartbeat-interval",
            str(self.heartbeat_ms),
            "--election-timeout",
            str(self.election_ms),
        ]
        if not self.petcd:  # petcd accepts only the default (10m) for now
            args += ["--experimental-watch-progress-notify-interval", "1s"]
        args += self.extra_args
        if self.petcd:
            args += ["--snapshot-catchup-entries", str(max(10, self.snapshot_count // 2))]
        return args

    def start(self, m: Member, state: str = "new", env: Mapping[str, str] | None = None) -> None:
        assert not m.alive, f"{m.name} is running"
        m.env = dict(env or {})
        m.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = m.log_path.open("ab")
        log.write(f"\n==== start #{m.starts} env={m.env} at {time.time():.3f}\n".encode())
        log.flush()
        m.proc = subprocess.Popen(
            self._command(m, state),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self._failpoint_env(m), **m.env},
            start_new_session=True,
        )
        log.close()
        m.starts += 1
        m.paused = False
        m.exit_expected = False
        m.exit_reported = False

    def _failpoint_env(self, m: Member) -> dict[str, str]:
        return {"GOFAIL_HTTP": f"127.0.0.1:{m.failpoint_port}"} if m.failpoint_port else {}

    def set_failpoint(self, m: Member, name: str, term: str | None) -> bool:
        """Arm (term) or disarm (None) a failpoint of a running petcd member; whether it answered."""
        if not m.failpoint_port:
            return False
        if term is not None and "panic" in term:
            m.exit_expected = True
        req = urllib.request.Request(
            f"http://127.0.0.1:{m.failpoint_port}/{name}",
            data=None if term is None else term.encode(),
            method="DELETE" if term is None else "PUT",
        )
        try:
            with urllib.request.urlopen(req, timeout=3):
                return True
        except OSError:
            return False

    def start_all(self) -> None:
        for m in self.members:
            self.start(m, "new")
        for m in self.members:
            if not self.wait_ready(m):
                raise RuntimeError(f"{m.name} did not start (see {m.log_path})")
        self.learn_ids()

    def wait_ready(self, m: Member, timeout_s: float = READY_TIMEOUT_S) -> bool:
        """Until the member answers a serializable Range (False: it died or timed out)."""
        deadline = time.monotonic() + timeout_s
        stub = rpc_pb2_grpc.KVStub(self.channel(m))
        while time.monotonic() < deadline:
            if not m.alive:
                return False
            try:
                stub.Range(pb.RangeRequest(key=b"health", serializable=True), timeout=1)
                return True
            except grpc.RpcError:
                time.sleep(0.1)
        return False

    def learn_ids(self) -> None:
        for m in self.members:
            if not m.alive:
                continue
            with contextlib.suppress(grpc.RpcError):
                st = rpc_pb2_grpc.MaintenanceStub(self.channel(m)).Status(pb.StatusRequest(), timeout=3)
                m.member_id = st.header.member_id
        for m, p in zip(self.members, self.proxies, strict=True):
            p.owner = m.member_id

    def kill(self, m: Member) -> None:
        if m.proc is None:
            return
        m.exit_expected = True
        if m.paused:
            self.resume(m)
        _signal_group(m.proc, signal.SIGKILL)
        m.proc.wait(timeout=30)

    def stop(self, m: Member, timeout_s: float = 15.0) -> None:
        if m.proc is None or not m.alive:
            return
        m.exit_expected = True
        if m.paused:
            self.resume(m)
        m.proc.terminate()
        try:
            m.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill(m)

    def unexpected_exits(self) -> list[str]:
        """Members whose process ended without the harness asking (each reported once)."""
        out = []
        for m in self.members:
            if m.proc is None or m.exit_expected or m.exit_reported:
                continue
            code = m.proc.poll()
            if code is None:
                continue
            m.exit_reported = True
            tail = m.log_path.read_bytes()[-600:].decode(errors="replace").strip().splitlines()[-3:]
            out.append(f"{m.name} exited with {code} unasked; log ends: {' | '.join(tail)}")
        return out

    def pause(self, m: Member) -> None:
        if m.alive and m.proc is not None:
            _signal_group(m.proc, signal.SIGSTOP)
            m.paused = True

    def resume(self, m: Member) -> None:
        if m.proc is not None and m.paused:
            _signal_group(m.proc, signal.SIGCONT)
            m.paused = False

    def close(self) -> None:
        for m in self.members:
            with contextlib.suppress(Exception):
                self.stop(m, timeout_s=5.0)
            with contextlib.suppress(Exception):
                self.kill(m)
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()
        for p in self.proxies:
            with contextlib.suppress(Exception):
                self.proxy_loop.call(p.stop)
        self.proxy_loop.close()

    # ------------------------------------------------------------------ network

    def set_rules(
        self,
        cut: set[frozenset[int]] | None = None,
        delay_s: dict[int, float] | None = None,
        jitter_s: float = 0.0,
    ) -> None:
        def apply() -> None:
            self.rules.cut = set(cut or ())
            self.rules.delay_s = dict(delay_s or {})
            self.rules.jitter_s = jitter_s
            for p in self.proxies:
                p.enforce()

        self.proxy_loop.call(apply)

    def isolate(self, m: Member) -> None:
        others = [o.member_id for o in self.members if o is not m]
        self.set_rules(cut={frozenset((m.member_id, o)) for o in others})

    def heal(self) -> None:
        self.set_rules()

    # ------------------------------------------------------------------ API helpers

    def channel(self, m: Member) -> grpc.Channel:
        ch = self._channels.get(m.client_port)
        if ch is None:
            ch = grpc.insecure_channel(m.address, options=CHANNEL_OPTIONS)
            self._channels[m.client_port] = ch
        return ch

    def status(self, m: Member, timeout_s: float = 2.0) -> pb.StatusResponse | None:
        if not m.alive or m.paused:
            return None
        try:
            st: pb.StatusResponse = rpc_pb2_grpc.MaintenanceStub(self.channel(m)).Status(
                pb.StatusRequest(), timeout=timeout_s
            )
            return st
        except grpc.RpcError:
            return None

    def leader(self) -> Member | None:
        for m in self.members:
            st = self.status(m)
            if st is not None and st.leader:
                return next((x for x in self.members if x.member_id == st.leader), None)
        return None

    def replace(self, m: Member) -> bool:
        """Remove `m` from the cluster, wipe it, add it back under a new ID and start it."""
        others = [o for o in self.members if o is not m and o.alive and not o.paused]
        if not others:
            return False
        cluster = rpc_pb2_grpc.ClusterStub(self.channel(others[0]))
        m.exit_expected = True  # a removed member stops by itself
        try:
            cluster.MemberRemove(pb.MemberRemoveRequest(ID=m.member_id), timeout=10)
        except grpc.RpcError:
            return False
        self.stop(m, timeout_s=5.0)
        self.kill(m)
        self.generation += 1
        shutil.rmtree(m.data_dir, ignore_errors=True)
        for attempt in range(20):
            target = others[attempt % len(others)]
            try:
                resp = rpc_pb2_grpc.ClusterStub(self.channel(target)).MemberAdd(
                    pb.MemberAddRequest(peerURLs=[m.advertised_peer_url]), timeout=10
                )
                m.member_id = resp.member.ID
                break
            except grpc.RpcError:
                time.sleep(0.5)
        else:
            return False
        self.proxies[m.index].owner = m.member_id
        self.start(m, "existing")
        return self.wait_ready(m, timeout_s=60.0)
