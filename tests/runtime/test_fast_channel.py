"""The fast path's wire (petcd.runtime.fast_channel) against a real single-member Node: a frame of
several calls, each request as its serialized bytes, is answered with serialized responses (or the read
index, or an error), and a method that is not on the fast path is refused without ending the connection."""

from __future__ import annotations

import pickle
import socket
import struct
import tempfile
from pathlib import Path
from typing import Any

from single_member import SingleMember

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.runtime.channel import RemoteBug
from petcd.runtime.fast_channel import FastChannelServer
from petcd.runtime.transport import read_exact

_LEN = struct.Struct(">I")


def _send(sock: socket.socket, msgs: list[Any]) -> None:
    body = pickle.dumps(msgs)
    sock.sendall(_LEN.pack(len(body)) + body)


def _answers(sock: socket.socket, n: int) -> dict[int, tuple[str, Any]]:
    got: dict[int, tuple[str, Any]] = {}
    while len(got) < n:
        (size,) = _LEN.unpack(read_exact(sock, _LEN.size))
        for kind, cid, result in pickle.loads(read_exact(sock, size)):
            got[cid] = (kind, result)
    return got


def test_a_frame_of_calls_is_answered_with_serialized_responses(member: SingleMember) -> None:
    with tempfile.TemporaryDirectory(prefix="petcd-t-") as d:
        path = str(Path(d) / "fast.sock")
        server = FastChannelServer(member.loop, path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        try:
            sock.connect(path)
            put = pb.PutRequest(key=b"k", value=b"v")
            txn = pb.TxnRequest(success=[pb.RequestOp(request_range=pb.RangeRequest(key=b"k"))])
            _send(
                sock,
                [
                    (1, "put", put.SerializeToString()),
                    (2, "read_index", b""),
                    (3, "status", b""),
                    (4, "lease_revoke", pb.LeaseRevokeRequest(ID=12345).SerializeToString()),
                ],
            )
            got = _answers(sock, 4)
            assert got[1][0] == "ok"
            rev = pb.PutResponse.FromString(got[1][1]).header.revision
            assert rev >= 2
            assert got[2][0] == "ok" and isinstance(got[2][1], int) and got[2][1] > 0
            assert got[3][0] == "err" and isinstance(got[3][1], RemoteBug)
            assert got[4][0] == "err" and str(got[4][1]) == "etcdserver: requested lease not found"
            # the connection still serves after a refused method
            _send(sock, [(5, "txn", txn.SerializeToString())])
            resp = pb.TxnResponse.FromString(_answers(sock, 1)[5][1])
            assert resp.succeeded
            assert resp.responses[0].response_range.kvs[0].value == b"v"
            assert resp.header.revision == rev
        finally:
            sock.close()
            server.close()
