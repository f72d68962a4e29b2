"""Helpers for etcdctl tests: reference etcd servers on loopback, and runners for both etcdctls.

``etcd_pair`` starts two reference etcd 3.4 servers that are indistinguishable from a client's
point of view: same name, same cluster token and the same *advertised* peer and client URLs (they
listen on different free ports). Member and cluster IDs are derived from those, so the two report
identical IDs, and the same commands applied to both give identical revisions. Our etcdctl talks
to one, the reference etcdctl to the other, and their outputs can be compared byte for byte.
Every process started here is stopped here.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import free_ports

ETCD = "/usr/bin/etcd"
REF_ETCDCTL = "/usr/bin/etcdctl"
OURS = [sys.executable, "-m", "petcd.cli.etcdctl"]
# The server the tests start: the reference etcd by default; PETCD_CLI_TEST_SERVER=petcd runs
# petcd's own server (`python -m petcd`, same flags) so the same tests check both tools against it.
PETCD_SERVER = os.environ.get("PETCD_CLI_TEST_SERVER") == "petcd"
SERVER = [sys.executable, "-m", "petcd"] if PETCD_SERVER else [ETCD]

needs_etcd = pytest.mark.skipif(
    not (os.path.exists(ETCD) and os.path.exists(REF_ETCDCTL)), reason="reference etcd/etcdctl not installed"
)


@dataclass
class Result:
    rc: int
    out: bytes
    err: bytes

    @property
    def error_lines(self) -> list[bytes]:
        # etcd 3.4's client also logs JSON warnings on stderr; compare only etcdctl's own lines
        return [line for line in self.err.splitlines() if not line.startswith(b'{"level"')]


def run(cmd: list[str], args: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> Result:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    full_env.update(env or {})
    p = subprocess.run([*cmd, *args], input=stdin, capture_output=True, env=full_env, timeout=60, check=False)
    return Result(p.returncode, p.stdout, p.stderr)


class EtcdServer:
    def __init__(self, base: Path, name: str, advertise_peer: str, advertise_client: str) -> None:
        self.port, self.peer_port = free_ports(2)
        self.endpoint = f"127.0.0.1:{self.port}"
        self.data = base / name
        self.log = open(base / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [
                *SERVER,
                "--name",
                "default",
                "--data-dir",
                str(self.data),
                "--listen-client-urls",
                f"http://{self.endpoint}",
                "--advertise-client-urls",
                advertise_client or f"http://{self.endpoint}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{self.peer_port}",
                "--initial-advertise-peer-urls",
                advertise_peer or f"http://127.0.0.1:{self.peer_port}",
                "--initial-cluster",
                f"default={advertise_peer or f'http://127.0.0.1:{self.peer_port}'}",
                "--initial-cluster-token",
                "petcd-test",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = s.recv(4096)
                if b'"health":"true"' in data:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("etcd did not become healthy")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@dataclass
class Pair:
    ours_server: EtcdServer
    ref_server: EtcdServer

    def ours(self, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> Result:
        return run(OURS, ["--endpoints", self.ours_server.endpoint, *args], stdin, env)

    def ref(self, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> Result:
        return run([REF_ETCDCTL], ["--endpoints", self.ref_server.endpoint, *args], stdin, env)

    def both(
        self, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
    ) -> tuple[Result, Result]:
        return self.ours(*args, stdin=stdin, env=env), self.ref(*args, stdin=stdin, env=env)


@pytest.fixture(scope="module")
def etcd_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if not os.path.exists(ETCD):
        pytest.skip("reference etcd not installed")
    base = tmp_path_factory.mktemp("etcd-pair")
    peer = f"http://127.0.0.1:{free_ports(1)[0]}"
    client = "http://127.0.0.1:2379"
    a = EtcdServer(base, "a", peer, client)
    try:
        b = EtcdServer(base, "b", peer, client)
    except Exception:
        a.stop()
        raise
    try:
        yield Pair(a, b)
    finally:
        a.stop()
        b.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    if not os.path.exists(ETCD):
        pytest.skip("reference etcd not installed")
    base = tmp_path_factory.mktemp("etcd-one")
    server = EtcdServer(base, "one", "", "")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- a DNS server for --discovery-srv (etcdctl is pointed at it with PETCD_DNS_SERVER) ---------------


def dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\x00"


class FakeDns:
    """Answers SRV questions from ``zone`` (name -> [(priority, weight, port, target)]); other
    names get NXDOMAIN. Answers compress the target's domain with a pointer, as real servers do."""

    def __init__(self, zone: dict[str, list[tuple[int, int, int, str]]]) -> None:
        self.zone = zone
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.questions: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            ident = struct.unpack(">H", data[:2])[0]
            pos, labels = 12, []
            while data[pos]:
                labels.append(data[pos + 1 : pos + 1 + data[pos]].decode())
                pos += 1 + data[pos]
            question = data[12 : pos + 5]
            name = ".".join(labels)
            self.questions.append(name)
            records = self.zone.get(name)
            rcode = 0 if records is not None else 3
            answers = b""
            for priority, weight, port, target in records or []:
                rdata = struct.pack(">HHH", priority, weight, port) + dns_name(target)
                answers += b"\xc0\x0c" + struct.pack(">HHIH", 33, 1, 60, len(rdata)) + rdata
            header = struct.pack(">HHHHHH", ident, 0x8180 | rcode, 1, len(records or []), 0, 0)
            self.sock.sendto(header + question + answers, peer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
