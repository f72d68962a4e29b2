"""Requests the store takes and results it gives.

The store cannot import ``etcdserverpb`` (layer rule), so requests are *protocols* whose attribute names
and enum values are etcd's (``RangeRequest``, ``PutRequest``, ``DeleteRangeRequest``, ``TxnRequest``,
``RequestOp``, ``Compare``): the server may hand the decoded protobuf messages straight to the store,
and callers without protobuf (the lessor, the simulator, tests) use the frozen dataclasses below, which
satisfy the same protocols. ``range_end`` follows etcd: empty = the single key ``key``, ``b"\\0"`` = every
key from ``key`` on, anything else = ``[key, range_end)``.

Results are dataclasses. Every ``KeyValue`` in a result is the stored, serialized ``mvccpb.KeyValue``
(``bytes``), so the API layer can splice them into a response without decoding and re-encoding them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

# RangeRequest.SortOrder
SORT_NONE = 0
SORT_ASCEND = 1
SORT_DESCEND = 2
# RangeRequest.SortTarget
TARGET_KEY = 0
TARGET_VERSION = 1
TARGET_CREATE = 2
TARGET_MOD = 3
TARGET_VALUE = 4
# Compare.CompareResult
CMP_EQUAL = 0
CMP_GREATER = 1
CMP_LESS = 2
CMP_NOT_EQUAL = 3
# Compare.CompareTarget
CMP_VERSION = 0
CMP_CREATE = 1
CMP_MOD = 2
CMP_VALUE = 3
CMP_LEASE = 4


class RangeRequestLike(Protocol):
    @property
    def key(self) -> bytes: ...
    @property
    def range_end(self) -> bytes: ...
    @property
    def limit(self) -> int: ...
    @property
    def revision(self) -> int: ...
    @property
    def sort_order(self) -> int: ...
    @property
    def sort_target(self) -> int: ...
    @property
    def keys_only(self) -> bool: ...
    @property
    def count_only(self) -> bool: ...
    @property
    def min_mod_revision(self) -> int: ...
    @property
    def max_mod_revision(self) -> int: ...
    @property
    def min_create_revision(self) -> int: ...
    @property
    def max_create_revision(self) -> int: ...


class PutRequestLike(Protocol):
    @property
    def key(self) -> bytes: ...
    @property
    def value(self) -> bytes: ...
    @property
    def lease(self) -> int: ...
    @property
    def prev_kv(self) -> bool: ...
    @property
    def ignore_value(self) -> bool: ...
    @property
    def ignore_lease(self) -> bool: ...


class DeleteRangeRequestLike(Protocol):
    @property
    def key(self) -> bytes: ...
    @property
    def range_end(self) -> bytes: ...
    @property
    def prev_kv(self) -> bool: ...


class CompareLike(Protocol):
    @property
    def result(self) -> int: ...
    @property
    def target(self) -> int: ...
    @property
    def key(self) -> bytes: ...
    @property
    def range_end(self) -> bytes: ...
    @property
    def version(self) -> int: ...
    @property
    def create_revision(self) -> int: ...
    @property
    def mod_revision(self) -> int: ...
    @property
    def value(self) -> bytes: ...
    @property
    def lease(self) -> int: ...


class RequestOpLike(Protocol):
    @property
    def request_range(self) -> RangeRequestLike: ...
    @property
    def request_put(self) -> PutRequestLike: ...
    @property
    def request_delete_range(self) -> DeleteRangeRequestLike: ...
    @property
    def request_txn(self) -> TxnRequestLike: ...
    def WhichOneof(  # noqa: N802 - protobuf's name
        self, oneof_group: Literal["request"]
    ) -> str | None: ...


class TxnRequestLike(Protocol):
    @property
    def compare(self) -> Sequence[CompareLike]: ...
    @property
    def success(self) -> Sequence[RequestOpLike]: ...
    @property
    def failure(self) -> Sequence[RequestOpLike]: ...


# -- plain requests ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RangeRequest:
    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: int = SORT_NONE
    sort_target: int = TARGET_KEY
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


@dataclass(frozen=True, slots=True)
class PutRequest:
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


@dataclass(frozen=True, slots=True)
class DeleteRangeRequest:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    key: bytes
    target: int
    result: int
    version: int = 0
    create_revision: int = 0
    mod_revision: int = 0
    value: bytes = b""
    lease: int = 0
    range_end: bytes = b""


_EMPTY_RANGE = RangeRequest(b"")
_EMPTY_PUT = PutRequest(b"")
_EMPTY_DELETE = DeleteRangeRequest(b"")


@dataclass(frozen=True, slots=True)
class TxnRequest:
    compare: Sequence[Compare] = ()
    success: Sequence[RequestOp] = ()
    failure: Sequence[RequestOp] = ()


@dataclass(frozen=True, slots=True)
class RequestOp:
    """One of the four requests; build with ``RequestOp.of(request)``."""

    kind: Literal["request_range", "request_put", "request_delete_range", "request_txn"]
    request_range: RangeRequest = _EMPTY_RANGE
    request_put: PutRequest = _EMPTY_PUT
    request_delete_range: DeleteRangeRequest = _EMPTY_DELETE
    request_txn: TxnRequest = field(default_factory=TxnRequest)

    @staticmethod
    def of(request: RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest) -> RequestOp:
        if isinstance(request, RangeRequest):
            return RequestOp("request_range", request_range=request)
        if isinstance(request, PutRequest):
            return RequestOp("request_put", request_put=request)
        if isinstance(request, DeleteRangeRequest):
            return RequestOp("request_delete_range", request_delete_range=request)
        return RequestOp("request_txn", request_txn=request)

    def WhichOneof(self, oneof_group: Literal["request"]) -> str | None:  # noqa: N802
        return self.kind


# -- results -------------------------------------------------------------------------------------


@dataclass(slots=True)
class RangeResult:
    kvs: list[bytes]
    count: int
    more: bool
    revision: int  # the store's current revision (etcd's header revision), not the one read at


@dataclass(slots=True)
class PutResult:
    revision: int
    prev_kv: bytes | None = None


@dataclass(slots=True)
class DeleteRangeResult:
    revision: int
    deleted: int
    prev_kvs: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class TxnResult:
    revision: int
    succeeded: bool
    responses: list[RangeResult | PutResult | DeleteRangeResult | TxnResult] = field(default_factory=list)


@dataclass(slots=True)
class CompactResult:
    revision: int


@dataclass(slots=True)
class HashKVResult:
    hash: int
    compact_revision: int
    hash_revision: int
    revision: int  # the current revision (etcd's header revision)
