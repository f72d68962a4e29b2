"""Seeded random etcd KV requests and a normal form of their responses, for differential tests.

`Gen(seed)` makes puts (prev_kv, ignore_value), delete ranges (prev_kv), ranges (single key, ranges,
from-key, limit, sort order and target, keys/count only, min/max mod/create revision, past,
compacted and future revisions) and txns (compares on every target, with range_end, nested txns,
duplicate keys) as etcdserverpb messages. `response_form` turns any KV response into plain tuples
so two servers' answers compare with `==`.
"""

from __future__ import annotations

import random
from typing import Any

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.mvccpb.kv_pb2 import KeyValue

KEYS = [b"a", b"ab", b"b", b"b\x00", b"c", b"d", b"foo", b"foo1"]
ENDS = [b"", b"", b"\x00", b"b", b"c", b"e", b"fop", b"a"]


def kvs(items: Any) -> list[tuple[bytes, bytes, int, int, int, int]]:
    out = []
    for item in items:
        kv = KeyValue.FromString(item) if isinstance(item, bytes) else item
        out.append((kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease))
    return out


def response_form(resp: Any, nested: bool = False) -> Any:
    rev = resp.header.revision
    if isinstance(resp, pb.RangeResponse):
        return ("range", rev, kvs(resp.kvs), resp.count, resp.more)
    if isinstance(resp, pb.PutResponse):
        return ("put", rev, kvs([resp.prev_kv] if resp.HasField("prev_kv") else []))
    if isinstance(resp, pb.DeleteRangeResponse):
        return ("delete", rev, resp.deleted, kvs(resp.prev_kvs))
    if isinstance(resp, pb.TxnResponse):
        inner = [response_form(getattr(r, r.WhichOneof("response")), nested=True) for r in resp.responses]
        return ("txn", rev, resp.succeeded, inner)
    raise AssertionError(resp)


def strip_nested_revisions(form: Any, top: bool = True) -> Any:
    """etcd leaves the header of a nested txn response empty; compare only the top one's revision."""
    if form[0] != "txn":
        return form
    kind, rev, ok, inner = form
    return (kind, rev if top else None, ok, [strip_nested_revisions(r, False) for r in inner])


class Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.rev = 1

    def key(self) -> bytes:
        return self.r.choice(KEYS)

    def range_req(self) -> pb.RangeRequest:
        r = self.r
        req = pb.RangeRequest(key=self.key(), range_end=r.choice(ENDS))
        if r.random() < 0.3:
            req.limit = r.choice([1, 2, 3])
        if r.random() < 0.3:
            req.sort_order = r.choice([0, 1, 2])
            req.sort_target = r.choice([0, 1, 2, 3, 4])
        if r.random() < 0.2:
            req.revision = r.randint(1, self.rev + 1)
        req.keys_only = r.random() < 0.1
        req.count_only = r.random() < 0.1
        if r.random() < 0.2:
            setattr(
                req,
                r.choice(
                    ["min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"]
                ),
                r.randint(1, self.rev),
            )
        return req

    def put_req(self) -> pb.PutRequest:
        r = self.r
        req = pb.PutRequest(key=self.key(), value=r.randbytes(r.randint(0, 3)), prev_kv=r.random() < 0.5)
        if r.random() < 0.1:
            req.ignore_value = True
            req.value = b""
        return req

    def delete_req(self) -> pb.DeleteRangeRequest:
        return pb.DeleteRangeRequest(
            key=self.key(), range_end=self.r.choice(ENDS), prev_kv=self.r.random() < 0.5
        )

    def compare(self) -> pb.Compare:
        r = self.r
        c = pb.Compare(key=self.key(), result=r.choice([0, 1, 2, 3]), target=r.choice([0, 1, 2, 3, 4]))
        if r.random() < 0.3:
            c.range_end = r.choice(ENDS)
        if c.target == pb.Compare.VALUE:
            c.value = r.randbytes(r.randint(0, 2))
        elif c.target == pb.Compare.VERSION:
            c.version = r.randint(0, 3)
        elif c.target == pb.Compare.CREATE:
            c.create_revision = r.randint(0, self.rev)
        elif c.target == pb.Compare.MOD:
            c.mod_revision = r.randint(0, self.rev)
        else:
            c.lease = 0
        return c

    def ops(self, depth: int) -> list[pb.RequestOp]:
        out = []
        for _ in range(self.r.randint(0, 3)):
            kind = self.r.random()
            if kind < 0.3:
                out.append(pb.RequestOp(request_range=self.range_req()))
            elif kind < 0.6:
                out.append(pb.RequestOp(request_put=self.put_req()))
            elif kind < 0.85 or depth > 0:
                out.append(pb.RequestOp(request_delete_range=self.delete_req()))
            else:
                out.append(pb.RequestOp(request_txn=self.txn_req(depth + 1)))
        return out

    def txn_req(self, depth: int = 0) -> pb.TxnRequest:
        return pb.TxnRequest(
            compare=[self.compare() for _ in range(self.r.randint(0, 2))],
            success=self.ops(depth),
            failure=self.ops(depth),
        )
