"""The client-port mux reaches the member's gRPC server over a unix socket in the member's own
directory (<data-dir>/member/grpc-<pid>.sock): removed on a clean stop, and a stale one left by a
killed member is removed at the next start; nothing is created in $TMPDIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
from servers import free_ports, one_member

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc

UNIX_PATH_MAX = 108


def test_mux_socket_lives_in_the_member_dir(tmp_path: Path) -> None:
    member = tmp_path / "petcd.etcd" / "member"
    member.mkdir(parents=True)
    stale = member / "grpc-1.sock"
    stale.write_bytes(b"")  # as a killed member would leave it
    with one_member("petcd", tmp_path) as address, grpc.insecure_channel(address) as channel:
        rpc_pb2_grpc.KVStub(channel).Put(pb.PutRequest(key=b"k", value=b"v"), timeout=10)
        sockets = sorted(p.name for p in member.glob("grpc-*.sock"))
        assert not stale.exists()
        if len(os.fsencode(str(member / "grpc-1234567.sock"))) < UNIX_PATH_MAX:
            assert len(sockets) == 1 and sockets[0] != "grpc-1.sock"
        else:  # too deep for a unix socket: the listeners use a loopback port instead
            assert sockets == []
    assert list(member.glob("grpc-*.sock")) == []


def test_nothing_is_left_in_tmpdir(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    client, peer = free_ports(2)
    data = tmp_path / "d"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "petcd",
            "--name",
            "m",
            "--data-dir",
            str(data),
            "--listen-client-urls",
            f"http://127.0.0.1:{client}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{client}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"m=http://127.0.0.1:{peer}",
        ],
        env={**os.environ, "TMPDIR": str(tmpdir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{client}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            stub = rpc_pb2_grpc.KVStub(channel)
            stub.Put(pb.PutRequest(key=b"k", value=b"v"), timeout=30, wait_for_ready=True)
        assert list(tmpdir.iterdir()) == []
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert list(tmpdir.iterdir()) == []
