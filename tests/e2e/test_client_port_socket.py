"""The client-port mux reaches the member's gRPC server over a unix socket in the member's own
directory (<data-dir>/member/grpc-<pid>.sock): removed on a clean stop, and a stale one left by a
killed member is removed at the next start; nothing is created in $TMPDIR."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
from servers import one_member

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
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    with one_member("petcd", tmp_path, env=env) as address, grpc.insecure_channel(address) as channel:
        rpc_pb2_grpc.KVStub(channel).Put(pb.PutRequest(key=b"k", value=b"v"), timeout=10)
        assert list(tmpdir.iterdir()) == []
    assert list(tmpdir.iterdir()) == []
