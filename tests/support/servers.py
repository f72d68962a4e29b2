"""Start a one-member etcd (the reference, or petcd) on 127.0.0.1 with free ports, for tests.

`one_member(kind, base_dir)` is a context manager yielding the client address once the member
answers a Range over gRPC; leaving it stops the process (SIGTERM, then SIGKILL), always.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import grpc

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc

# Ports for test servers, shared with the robustness harness: distinct, and from below the kernel's
# ephemeral range, so that no outgoing connection takes one before its server binds it.
from petcd.robustness.cluster import free_ports

__all__ = ["REFERENCE_ETCD", "free_ports", "one_member"]

REFERENCE_ETCD = "/usr/bin/etcd"  # Debian's etcd-server, never petcd's script on PATH
READY_TIMEOUT_S = 30.0


def _command(kind: str) -> list[str]:
    if kind == "reference":
        return [REFERENCE_ETCD]
    if kind == "petcd":
        return [sys.executable, "-m", "petcd"]
    raise ValueError(kind)


@contextlib.contextmanager
def one_member(
    kind: str, base_dir: Path, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[str]:
    client, peer = free_ports(2)
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    base_dir.mkdir(parents=True, exist_ok=True)
    log = (base_dir / f"{kind}.log").open("wb")
    proc = subprocess.Popen(
        [
            *_command(kind),
            "--name",
            "default",
            "--data-dir",
            str(base_dir / f"{kind}.etcd"),
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
            "--initial-cluster",
            f"default={peer_url}",
            *extra_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=None if env is None else dict(env),
    )
    address = f"127.0.0.1:{client}"
    try:
        with grpc.insecure_channel(address) as channel:
            stub = rpc_pb2_grpc.KVStub(channel)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                try:
                    stub.Range(pb.RangeRequest(key=b"x"), timeout=1)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
