"""What the clients did: every request with its invoke and return times and its answer.

An `Operation` is one request as a client saw it: the request and the response as proto3 JSON
(for the report's history.jsonl), the member it went to, and its *projection* on single keys
(`KvOp`s of petcd.sim.linearizability), which is what the checkers work on:

* a Range over several keys is a read of every key of the traffic's key universe in that range
  (with a limit and `more`, only up to the last key returned); at an explicit revision it is a
  *historic* read ("sget": it must equal the history at that revision); serializable too;
* a Txn guarded by one key's mod_revision that puts that key (etcd's compare-and-set, Kubernetes'
  optimistic update and create) is a "cas";
* any other Txn is its parts (get, put, delete), all at the Txn's revision, sharing a `group` so
  the cross-key checks know they are one revision;
* a write that failed in any way (timeout, connection lost, leader changed, ...) has an unknown
  outcome: `ret=None`, it may or may not have taken effect; a read that failed is dropped.

Projecting on keys is sound (every linearization of the whole history induces one of each key's
projection), so a key that has none is a real violation. Keys written with a lease are left out of
the linearizability search (the server deletes them on expiry or revoke, at revisions no client
op accounts for) but are still checked by the watch, HashKV and lost-write checks.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.mvccpb import kv_pb2
from petcd.sim.linearizability import KvOp

_UNKNOWN_WRITE_KINDS = ("put", "cas", "delete")


def to_json(msg: Message | None) -> dict[str, Any] | None:
    if msg is None:
        return None
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


@dataclass(slots=True)
class Operation:
    id: int
    client: int
    member: int
    kind: str
    invoke_us: int
    return_us: int | None = None  # None: no answer (unknown outcome for a write)
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    error: str = ""
    kv_ops: list[KvOp] = field(default_factory=list)

    def to_line(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "client": self.client,
                "member": self.member,
                "kind": self.kind,
                "invoke_us": self.invoke_us,
                "return_us": self.return_us,
                "request": self.request,
                "response": self.response,
                "error": self.error,
            },
            sort_keys=True,
        )


class History:
    """Thread-safe list of operations; ids are unique across the run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._kv_ids = itertools.count(1)
        self._groups = itertools.count(1)
        self.operations: list[Operation] = []

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def next_group(self) -> int:
        with self._lock:
            return next(self._groups)

    def next_kv_id(self) -> int:
        with self._lock:
            return next(self._kv_ids)

    def add(self, op: Operation) -> None:
        with self._lock:
            self.operations.append(op)

    def kv_ops(self) -> list[KvOp]:
        with self._lock:
            return [k for o in self.operations for k in o.kv_ops]


# ------------------------------------------------------------------------------ projections


def _kv_of(kvs: Iterable[kv_pb2.KeyValue], key: bytes) -> kv_pb2.KeyValue | None:
    return next((kv for kv in kvs if kv.key == key), None)


def in_range(key: bytes, start: bytes, end: bytes) -> bool:
    if not end:
        return key == start
    if end == b"\x00":
        return key >= start
    return start <= key < end


@dataclass(slots=True)
class Projector:
    """Turns requests and responses into KvOps over `universe` (the keys checked)."""

    history: History
    universe: Sequence[bytes]

    def _op(self, kind: str, key: bytes, invoke: int, ret: int | None, member: int, **kw: Any) -> KvOp:
        return KvOp(
            id=self.history.next_kv_id(), kind=kind, key=key, invoke=invoke, ret=ret, member=member, **kw
        )

    def range(
        self, req: pb.RangeRequest, resp: pb.RangeResponse | None, invoke: int, ret: int, member: int
    ) -> list[KvOp]:
        if resp is None:
            return []
        if req.count_only or req.keys_only:
            return []
        historic = req.revision > 0 or req.serializable
        revision = req.revision if req.revision > 0 else resp.header.revision
        keys = [k for k in self.universe if in_range(k, req.key, req.range_end)]
        if resp.more and resp.kvs:
            last = resp.kvs[-1].key
            keys = [k for k in keys if k <= last]
        out = []
        for k in keys:
            kv = _kv_of(resp.kvs, k)
            out.append(
                self._op(
                    "sget" if historic else "get",
                    k,
                    invoke,
                    ret,
                    member,
                    revision=revision,
                    found=kv.value if kv is not None else None,
                    found_mod=kv.mod_revision if kv is not None else 0,
                )
            )
        return out

    def put(
        self, req: pb.PutRequest, resp: pb.PutResponse | None, invoke: int, ret: int | None, member: int
    ) -> list[KvOp]:
        if resp is None:
            return [self._op("put", req.key, invoke, None, member, value=req.value)]
        return [self._op("put", req.key, invoke, ret, member, value=req.value, revision=resp.header.revision)]

    def delete(
        self,
        req: pb.DeleteRangeRequest,
        resp: pb.DeleteRangeResponse | None,
        invoke: int,
        ret: int | None,
        member: int,
    ) -> list[KvOp]:
        if req.range_end or req.key not in self.universe:
            return []
        if resp is None:
            return [self._op("delete", req.key, invoke, None, member)]
        return [
            self._op(
                "delete", req.key, invoke, ret, member, deleted=resp.deleted, revision=resp.header.revision
            )
        ]

    def txn(
        self, req: pb.TxnRequest, resp: pb.TxnResponse | None, invoke: int, ret: int | None, member: int
    ) -> list[KvOp]:
        cas = _as_cas(req)
        if cas is not None:
            key, expect, value = cas
            if key not in self.universe:
                return []
            if resp is None:
                return [self._op("cas", key, invoke, None, member, value=value, expect_mod=expect)]
            return [
                self._op(
                    "cas",
                    key,
                    invoke,
                    ret,
                    member,
                    value=value,
                    expect_mod=expect,
                    succeeded=resp.succeeded,
                    revision=resp.header.revision,
                )
            ]
        guarded = _as_guarded_delete(req)
        if guarded is not None:
            # Kubernetes' delete: the compare is not modelled, what happened is: a delete at
            # the txn's revision, or (compare failed) a read of the key there.
            if resp is None:
                return [self._op("delete", guarded, invoke, None, member)]
            if resp.succeeded:
                d = resp.responses[0].response_delete_range
                return [
                    self._op(
                        "delete",
                        guarded,
                        invoke,
                        ret,
                        member,
                        deleted=d.deleted,
                        revision=resp.header.revision,
                    )
                ]
            if ret is None:
                return []
            rr = _with_header(resp.responses[0].response_range, resp)
            return self.range(pb.RangeRequest(key=guarded), rr, invoke, ret, member)
        if req.compare:
            return []  # other guarded txns are not projected (none in the profiles)
        group = self.history.next_group()
        out: list[KvOp] = []
        for i, rop in enumerate(req.success):
            which = rop.WhichOneof("request")
            r = None if resp is None else resp.responses[i]
            if which == "request_range":
                if r is None or ret is None:
                    continue
                for o in self.range(
                    rop.request_range, _with_header(r.response_range, resp), invoke, ret, member
                ):
                    o.group = group
                    out.append(o)
            elif which == "request_put":
                for o in self.put(
                    rop.request_put,
                    None if r is None else _with_header(r.response_put, resp),
                    invoke,
                    ret,
                    member,
                ):
                    o.group = group
                    out.append(o)
            elif which == "request_delete_range":
                rr = None if r is None else _with_header(r.response_delete_range, resp)
                for o in self.delete(rop.request_delete_range, rr, invoke, ret, member):
                    o.group = group
                    out.append(o)
        return out


def _with_header(msg: Any, resp: pb.TxnResponse | None) -> Any:
    """A txn's inner responses carry no header of their own: give them the txn's."""
    if resp is not None:
        msg.header.CopyFrom(resp.header)
    return msg


def _mod_guard(req: pb.TxnRequest) -> tuple[pb.Compare, pb.RequestOp] | None:
    """(the compare, the one success op) when `req` is guarded by one key's mod_revision."""
    if len(req.compare) != 1 or len(req.success) != 1:
        return None
    c = req.compare[0]
    if c.target != pb.Compare.MOD or c.result != pb.Compare.EQUAL or c.range_end:
        return None
    return c, req.success[0]


def _as_cas(req: pb.TxnRequest) -> tuple[bytes, int, bytes] | None:
    """(key, expected mod_revision, value) when `req` is a compare-and-set on one key."""
    guard = _mod_guard(req)
    if guard is None:
        return None
    c, op = guard
    if op.WhichOneof("request") != "request_put" or op.request_put.key != c.key:
        return None
    return c.key, c.mod_revision, op.request_put.value


def _as_guarded_delete(req: pb.TxnRequest) -> bytes | None:
    """The key, when `req` deletes one key if its mod_revision is as expected, else reads it."""
    guard = _mod_guard(req)
    if guard is None or len(req.failure) != 1:
        return None
    c, op = guard
    other = req.failure[0]
    delete, read = op.request_delete_range, other.request_range
    if (
        op.WhichOneof("request") != "request_delete_range"
        or other.WhichOneof("request") != "request_range"
        or (delete.key, delete.range_end, read.key, read.range_end) != (c.key, b"", c.key, b"")
    ):
        return None
    return c.key


def write_history(path: str, operations: Sequence[Operation]) -> None:
    with open(path, "w") as f:
        for o in sorted(operations, key=lambda o: o.invoke_us):
            f.write(o.to_line() + "\n")
