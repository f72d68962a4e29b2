"""The one table from petcd's errors to gRPC statuses, with etcd's exact strings (etcd's rpctypes).

Every expected failure the server reports is a `petcd.errors.EtcdError` whose message is etcd's text
byte for byte (clients such as clientv3 and etcdctl compare strings, `rpctypes.ErrorDesc`). The gRPC
code depends only on that text, so the table is keyed by message: the API layer needs no import of the
layers that define the subclasses (lease, membership, auth), and an error class added later is mapped
as soon as its message is in the table. A message that is not in the table goes out as UNKNOWN with
the text unchanged, which is what etcd does with an unmapped error.
"""

from __future__ import annotations

import grpc

from petcd.errors import EtcdError

_C = grpc.StatusCode

# etcd's message -> gRPC code (rpctypes/error.go, 3.6 codes).
ERROR_CODES: dict[str, grpc.StatusCode] = {
    # InvalidArgument
    "etcdserver: key is not provided": _C.INVALID_ARGUMENT,
    "etcdserver: key not found": _C.INVALID_ARGUMENT,
    "etcdserver: value is provided": _C.INVALID_ARGUMENT,
    "etcdserver: lease is provided": _C.INVALID_ARGUMENT,
    "etcdserver: too many operations in txn request": _C.INVALID_ARGUMENT,
    "etcdserver: duplicate key given in txn request": _C.INVALID_ARGUMENT,
    "etcdserver: invalid client api version": _C.INVALID_ARGUMENT,
    "etcdserver: invalid sort option": _C.INVALID_ARGUMENT,
    "etcdserver: given member URLs are invalid": _C.INVALID_ARGUMENT,
    "etcdserver: request is too large": _C.INVALID_ARGUMENT,
    "etcdserver: user name is empty": _C.INVALID_ARGUMENT,
    "etcdserver: role name is empty": _C.INVALID_ARGUMENT,
    "etcdserver: authentication failed, invalid user ID or password": _C.INVALID_ARGUMENT,
    "etcdserver: permission not given": _C.INVALID_ARGUMENT,
    "etcdserver: invalid auth management": _C.INVALID_ARGUMENT,
    "etcdserver: revision of auth store is old": _C.INVALID_ARGUMENT,
    "etcdserver: wrong downgrade target version format": _C.INVALID_ARGUMENT,
    "etcdserver: invalid downgrade target version": _C.INVALID_ARGUMENT,
    # OutOfRange
    "etcdserver: mvcc: required revision has been compacted": _C.OUT_OF_RANGE,
    "etcdserver: mvcc: required revision is a future revision": _C.OUT_OF_RANGE,
    "etcdserver: too large lease TTL": _C.OUT_OF_RANGE,
    # ResourceExhausted
    "etcdserver: mvcc: database space exceeded": _C.RESOURCE_EXHAUSTED,
    "etcdserver: too many requests": _C.RESOURCE_EXHAUSTED,
    # NotFound
    "etcdserver: requested lease not found": _C.NOT_FOUND,
    "etcdserver: member not found": _C.NOT_FOUND,
    # FailedPrecondition
    "etcdserver: lease already exists": _C.FAILED_PRECONDITION,
    "etcdserver: member ID already exist": _C.FAILED_PRECONDITION,
    "etcdserver: Peer URLs already exists": _C.FAILED_PRECONDITION,
    "etcdserver: re-configuration failed due to not enough started members": _C.FAILED_PRECONDITION,
    "etcdserver: can only promote a learner member": _C.FAILED_PRECONDITION,
    "etcdserver: can only promote a learner member which is in sync with leader": _C.FAILED_PRECONDITION,
    "etcdserver: too many learner members in cluster": _C.FAILED_PRECONDITION,
    "etcdserver: cluster ID mismatch": _C.FAILED_PRECONDITION,
    "etcdserver: root user does not exist": _C.FAILED_PRECONDITION,
    "etcdserver: root user does not have root role": _C.FAILED_PRECONDITION,
    "etcdserver: user name already exists": _C.FAILED_PRECONDITION,
    "etcdserver: user name not found": _C.FAILED_PRECONDITION,
    "etcdserver: role name already exists": _C.FAILED_PRECONDITION,
    "etcdserver: role name not found": _C.FAILED_PRECONDITION,
    "etcdserver: role is not granted to the user": _C.FAILED_PRECONDITION,
    "etcdserver: permission is not granted to the role": _C.FAILED_PRECONDITION,
    "etcdserver: authentication is not enabled": _C.FAILED_PRECONDITION,
    "etcdserver: not leader": _C.FAILED_PRECONDITION,
    "etcdserver: not capable": _C.FAILED_PRECONDITION,
    "etcdserver: rpc not supported for learner": _C.FAILED_PRECONDITION,
    "etcdserver: bad leader transferee": _C.FAILED_PRECONDITION,
    "etcdserver: cluster version not found during downgrade": _C.FAILED_PRECONDITION,
    "etcdserver: cluster has a downgrade job in progress": _C.FAILED_PRECONDITION,
    "etcdserver: no inflight downgrade job": _C.FAILED_PRECONDITION,
    # PermissionDenied / Unauthenticated
    "etcdserver: permission denied": _C.PERMISSION_DENIED,
    "etcdserver: invalid auth token": _C.UNAUTHENTICATED,
    # Unavailable
    "etcdserver: no leader": _C.UNAVAILABLE,
    "etcdserver: leader changed": _C.UNAVAILABLE,
    "etcdserver: server stopped": _C.UNAVAILABLE,
    "etcdserver: request timed out": _C.UNAVAILABLE,
    "etcdserver: request timed out, possibly due to previous leader failure": _C.UNAVAILABLE,
    "etcdserver: request timed out, possibly due to connection lost": _C.UNAVAILABLE,
    "etcdserver: request timed out, waiting for the applied index took too long": _C.UNAVAILABLE,
    "etcdserver: request timed out, leader transfer took too long": _C.UNAVAILABLE,
    "etcdserver: unhealthy cluster": _C.UNAVAILABLE,
    # DataLoss
    "etcdserver: corrupt cluster": _C.DATA_LOSS,
    # Canceled / DeadlineExceeded
    "etcdserver: request canceled": _C.CANCELLED,
    "etcdserver: context deadline exceeded": _C.DEADLINE_EXCEEDED,
}

# Server-side messages etcd replaces on the way out (toGRPCErrorMap): a removed member is "not found".
RENAMED: dict[str, str] = {
    "membership: ID removed": "etcdserver: member not found",
    "membership: ID not found": "etcdserver: member not found",
}

# Messages the API raises itself (no server-side class carries them).
EMPTY_KEY = "etcdserver: key is not provided"
KEY_NOT_FOUND = "etcdserver: key not found"
VALUE_PROVIDED = "etcdserver: value is provided"
LEASE_PROVIDED = "etcdserver: lease is provided"
TOO_MANY_OPS = "etcdserver: too many operations in txn request"
DUPLICATE_KEY = "etcdserver: duplicate key given in txn request"
MEMBER_BAD_URLS = "etcdserver: given member URLs are invalid"
NO_LEADER = "etcdserver: no leader"
NOT_SUPPORTED_FOR_LEARNER = "etcdserver: rpc not supported for learner"
LEASE_NOT_FOUND = "etcdserver: requested lease not found"


def status_of(err: EtcdError) -> tuple[grpc.StatusCode, str]:
    """The gRPC status etcd would send for `err`: (code, message)."""
    message = err.message
    message = RENAMED.get(message, message)
    return ERROR_CODES.get(message, grpc.StatusCode.UNKNOWN), message


def api_error(message: str) -> EtcdError:
    """An EtcdError carrying one of the API's own messages (validation failures)."""
    return EtcdError(message)
