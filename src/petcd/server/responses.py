"""MVCC results to etcdserverpb responses, and the small result types of the Node.

Nested responses inside a txn carry a header with only `revision` set, as etcd's applier builds
them; the top-level header gets cluster_id, member_id and raft_term as well (etcd's v3rpc
header.fill).
"""

from __future__ import annotations

from dataclasses import dataclass

from petcd.mvcc.types import DeleteRangeResult, PutResult, RangeResult, TxnResult
from petcd.pb.etcdserverpb import rpc_pb2 as rpc
from petcd.server.membership import Member


@dataclass(frozen=True, slots=True)
class ReadIndexResult:
    """A linearizable read point reached: the local store has applied at least `index`."""

    index: int


def range_response(r: RangeResult, header: rpc.ResponseHeader | None = None) -> rpc.RangeResponse:
    resp = rpc.RangeResponse(more=r.more, count=r.count)
    resp.header.CopyFrom(header) if header is not None else None
    resp.header.revision = r.revision
    for raw in r.kvs:
        resp.kvs.add().MergeFromString(raw)
    return resp


def put_response(r: PutResult, header: rpc.ResponseHeader | None = None) -> rpc.PutResponse:
    resp = rpc.PutResponse()
    if header is not None:
        resp.header.CopyFrom(header)
    resp.header.revision = r.revision
    if r.prev_kv is not None:
        resp.prev_kv.MergeFromString(r.prev_kv)
    return resp


def delete_response(
    r: DeleteRangeResult, header: rpc.ResponseHeader | None = None
) -> rpc.DeleteRangeResponse:
    resp = rpc.DeleteRangeResponse(deleted=r.deleted)
    if header is not None:
        resp.header.CopyFrom(header)
    resp.header.revision = r.revision
    for raw in r.prev_kvs:
        resp.prev_kvs.add().MergeFromString(raw)
    return resp


def txn_response(r: TxnResult, header: rpc.ResponseHeader | None = None) -> rpc.TxnResponse:
    resp = rpc.TxnResponse(succeeded=r.succeeded)
    if header is not None:
        resp.header.CopyFrom(header)
    resp.header.revision = r.revision
    for sub in r.responses:
        op = resp.responses.add()
        if isinstance(sub, RangeResult):
            op.response_range.CopyFrom(range_response(sub))
        elif isinstance(sub, PutResult):
            op.response_put.CopyFrom(put_response(sub))
        elif isinstance(sub, DeleteRangeResult):
            op.response_delete_range.CopyFrom(delete_response(sub))
        else:
            op.response_txn.CopyFrom(txn_response(sub))
    return resp


def member_pb(m: Member) -> rpc.Member:
    return rpc.Member(
        ID=m.id,
        name=m.name,
        peerURLs=list(m.peer_urls),
        clientURLs=list(m.client_urls),
        isLearner=m.is_learner,
    )
