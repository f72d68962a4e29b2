"""Request checks made before a request reaches the server, as etcd's v3rpc does (key.go, member.go).

Each check raises `EtcdError` with etcd's message; the servicer turns it into the gRPC status from the
error table. Checks that need the store (a put with ignore_value on a missing key) belong to the server.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from petcd.api import errors as e
from petcd.errors import EtcdError
from petcd.pb.etcdserverpb import rpc_pb2 as pb

DEFAULT_MAX_TXN_OPS = 128  # etcd's --max-txn-ops


def check_range(r: pb.RangeRequest) -> None:
    if not r.key:
        raise EtcdError(e.EMPTY_KEY)


def check_put(r: pb.PutRequest) -> None:
    if not r.key:
        raise EtcdError(e.EMPTY_KEY)
    if r.ignore_value and r.value:
        raise EtcdError(e.VALUE_PROVIDED)
    if r.ignore_lease and r.lease != 0:
        raise EtcdError(e.LEASE_PROVIDED)


def check_delete(r: pb.DeleteRangeRequest) -> None:
    if not r.key:
        raise EtcdError(e.EMPTY_KEY)


def check_txn(r: pb.TxnRequest, max_txn_ops: int = DEFAULT_MAX_TXN_OPS) -> None:
    """etcd's checkTxnRequest followed (at the top level only, as etcd) by checkIntervals."""
    _check_txn_ops(r, max_txn_ops)
    _check_intervals(list(r.success))
    _check_intervals(list(r.failure))


def _check_txn_ops(r: pb.TxnRequest, max_txn_ops: int) -> None:
    opc = max(len(r.compare), len(r.success), len(r.failure))
    if opc > max_txn_ops:
        raise EtcdError(e.TOO_MANY_OPS)
    for c in r.compare:
        if not c.key:
            raise EtcdError(e.EMPTY_KEY)
    # etcd hands nested txns the remaining budget (max - opc), so nesting shrinks what each level may hold
    for op in (*r.success, *r.failure):
        _check_op(op, max_txn_ops - opc)


def _check_op(op: pb.RequestOp, max_txn_ops: int) -> None:
    kind = op.WhichOneof("request")
    if kind == "request_range":
        check_range(op.request_range)
    elif kind == "request_put":
        check_put(op.request_put)
    elif kind == "request_delete_range":
        check_delete(op.request_delete_range)
    elif kind == "request_txn":
        _check_txn_ops(op.request_txn, max_txn_ops)
    else:
        raise EtcdError(e.KEY_NOT_FOUND)  # an empty op: etcd answers "key not found"


class _Deletes:
    """Delete intervals of one branch: single keys and [key, end) ranges.

    Ends compare as plain bytes, as etcd's interval tree does here: a "from key on" delete (end
    b"\\x00") forms an empty interval and so never conflicts, which is etcd's behaviour too.
    """

    def __init__(self) -> None:
        self.spans: list[tuple[bytes, bytes | None]] = []

    def add(self, key: bytes, end: bytes) -> None:
        self.spans.append((key, end if end else None))

    def hits(self, k: bytes) -> bool:
        for key, end in self.spans:
            if end is None:
                if k == key:
                    return True
            elif key <= k < end:
                return True
        return False


def _check_intervals(ops: list[pb.RequestOp]) -> tuple[set[bytes], _Deletes]:
    """etcd's checkIntervals: no key is put twice, or both put and deleted, on one execution path."""
    dels = _Deletes()
    for op in ops:
        if op.WhichOneof("request") == "request_delete_range":
            d = op.request_delete_range
            dels.add(d.key, d.range_end)
    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        puts_then, dels_then = _check_intervals(list(op.request_txn.success))
        puts_else, dels_else = _check_intervals(list(op.request_txn.failure))
        for k in puts_then:
            if k in puts or dels.hits(k):
                raise EtcdError(e.DUPLICATE_KEY)
            puts.add(k)
        for k in puts_else:
            # then and else exclude each other: a key put in both branches is fine
            if (k in puts and k not in puts_then) or dels.hits(k):
                raise EtcdError(e.DUPLICATE_KEY)
            puts.add(k)
        dels.spans.extend(dels_then.spans)
        dels.spans.extend(dels_else.spans)
    for op in ops:
        if op.WhichOneof("request") != "request_put":
            continue
        k = op.request_put.key
        if k in puts or dels.hits(k):
            raise EtcdError(e.DUPLICATE_KEY)
        puts.add(k)
    return puts, dels


def check_peer_urls(urls: list[str]) -> None:
    """etcd's types.NewURLs: each URL has scheme http/https/unix(s), a host:port, no path."""
    if not urls:
        raise EtcdError(e.MEMBER_BAD_URLS)
    for u in urls:
        try:
            parts = urlsplit(u.strip())
            port = parts.port
        except ValueError:
            raise EtcdError(e.MEMBER_BAD_URLS) from None
        if parts.scheme not in ("http", "https", "unix", "unixs"):
            raise EtcdError(e.MEMBER_BAD_URLS)
        if parts.scheme in ("http", "https") and (not parts.hostname or port is None):
            raise EtcdError(e.MEMBER_BAD_URLS)
        if parts.path not in ("", "/"):
            raise EtcdError(e.MEMBER_BAD_URLS)
