"""Many watchers of one key, across several streams, on a real member: each watcher gets exactly
the events it asked for (prev_kv or not), in the same shape as etcd 3.4.23 sends them.

A member converts each change into its wire form once for all the watchers that share it (the
runtime's event cache); this checks that sharing never leaks one watcher's shape into another's.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from servers import one_member
from watch_stream import Stream

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc as rpc

STREAMS = 3
WAIT_S = 10.0


def _fan_out(address: str) -> list[dict[int, list[tuple[int, bytes, bytes, bool]]]]:
    """Per stream: watch ID -> (type, value, prev value, has prev_kv) of every event it got."""
    channel = grpc.insecure_channel(address)
    streams = [Stream(channel) for _ in range(STREAMS)]
    try:
        kv = rpc.KVStub(channel)
        kv.Put(pb.PutRequest(key=b"s", value=b"v0"), timeout=WAIT_S)
        for s in streams:
            s.create(key=b"s", prev_kv=True)
            s.create(key=b"s")
            s.create(key=b"s", range_end=b"t", prev_kv=True)
            s.create(key=b"s", filters=[pb.WatchCreateRequest.NOPUT])
            assert all(s.recv(WAIT_S).created for _ in range(4))
        kv.Put(pb.PutRequest(key=b"s", value=b"v1"), timeout=WAIT_S)
        kv.Txn(
            pb.TxnRequest(
                success=[
                    pb.RequestOp(request_put=pb.PutRequest(key=b"s", value=b"v2")),
                    pb.RequestOp(request_put=pb.PutRequest(key=b"s0", value=b"w")),
                ]
            ),
            timeout=WAIT_S,
        )
        kv.DeleteRange(pb.DeleteRangeRequest(key=b"s", range_end=b"t"), timeout=WAIT_S)
        member = kv.Range(pb.RangeRequest(key=b"s"), timeout=WAIT_S).header
        out = []
        for s in streams:
            got: dict[int, list[tuple[int, bytes, bytes, bool]]] = {0: [], 1: [], 2: [], 3: []}
            # watchers 0 and 1: 3 revisions; watcher 2: 3; watcher 3 (no puts): the delete only
            for _ in range(3 + 3 + 3 + 1):
                r = s.recv(WAIT_S)
                # every response says which member sent it, in which term, at its events' revision
                assert (r.header.cluster_id, r.header.member_id, r.header.raft_term) == (
                    member.cluster_id,
                    member.member_id,
                    member.raft_term,
                )
                assert all(e.kv.mod_revision == r.header.revision for e in r.events)
                got[r.watch_id].extend(
                    (e.type, e.kv.value, e.prev_kv.value, e.HasField("prev_kv")) for e in r.events
                )
            out.append(got)
        return out
    finally:
        for s in streams:
            s.close()
        channel.close()


@pytest.mark.parametrize("frontends", [0, 2])
def test_watchers_of_one_key_each_get_their_own_shape(tmp_path: Path, frontends: int) -> None:
    extra = ("--frontend-processes", str(frontends)) if frontends else ()
    with one_member("reference", tmp_path / "ref") as ref_address:
        want = _fan_out(ref_address)
    with one_member("petcd", tmp_path / "petcd", extra) as address:
        got = _fan_out(address)
    assert got == want
    assert want[0][1] and not any(has_prev for *_, has_prev in want[0][1])
    assert all(has_prev for *_, has_prev in want[0][0])
