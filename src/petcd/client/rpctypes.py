"""The error descriptions etcd's client recognises (clientv3's rpctypes ``errStringToError``).

etcd's client turns a failed call whose description is one of these into an ``EtcdError`` that
prints as the bare description (``etcdserver: key not found``); any other gRPC status stays a status
error and prints as Go's ``rpc error: code = <Code> desc = <description>``. Imported only when a call
fails.
"""

from __future__ import annotations

ETCD_ERRORS = frozenset(
    {
        "etcdserver: key is not provided",
        "etcdserver: key not found",
        "etcdserver: value is provided",
        "etcdserver: lease is provided",
        "etcdserver: too many operations in txn request",
        "etcdserver: duplicate key given in txn request",
        "etcdserver: invalid sort option",
        "etcdserver: mvcc: required revision has been compacted",
        "etcdserver: mvcc: required revision is a future revision",
        "etcdserver: mvcc: database space exceeded",
        "etcdserver: requested lease not found",
        "etcdserver: lease already exists",
        "etcdserver: too large lease TTL",
        "etcdserver: member ID already exist",
        "etcdserver: Peer URLs already exists",
        "etcdserver: re-configuration failed due to not enough started members",
        "etcdserver: given member URLs are invalid",
        "etcdserver: member not found",
        "etcdserver: can only promote a learner member",
        "etcdserver: can only promote a learner member which is in sync with leader",
        "etcdserver: too many learner members in cluster",
        "etcdserver: cluster ID mismatch",
        "etcdserver: request is too large",
        "etcdserver: too many requests",
        "etcdserver: root user does not exist",
        "etcdserver: root user does not have root role",
        "etcdserver: user name already exists",
        "etcdserver: user name is empty",
        "etcdserver: user name not found",
        "etcdserver: role name already exists",
        "etcdserver: role name not found",
        "etcdserver: role name is empty",
        "etcdserver: authentication failed, invalid user ID or password",
        "etcdserver: permission denied",
        "etcdserver: role is not granted to the user",
        "etcdserver: permission is not granted to the role",
        "etcdserver: authentication is not enabled",
        "etcdserver: invalid auth token",
        "etcdserver: invalid auth management",
        "etcdserver: revision of auth store is old",
        "etcdserver: no leader",
        "etcdserver: not leader",
        "etcdserver: leader changed",
        "etcdserver: not capable",
        "etcdserver: server stopped",
        "etcdserver: request timed out",
        "etcdserver: request timed out, possibly due to previous leader failure",
        "etcdserver: request timed out, possibly due to connection lost",
        "etcdserver: unhealthy cluster",
        "etcdserver: corrupt cluster",
        "etcdserver: rpc not supported for learner",
        "etcdserver: bad leader transferee",
        "etcdserver: cluster version not found during downgrade",
        "etcdserver: wrong downgrade target version format",
        "etcdserver: invalid downgrade target version",
        "etcdserver: cluster has a downgrade job in progress",
        "etcdserver: no inflight downgrade job",
    }
)

# Go's codes.Code names, by number
CODE_NAMES = (
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
)


def status_text(code: int, desc: str) -> str:
    """What etcdctl prints for a failed call with this gRPC status."""
    if desc in ETCD_ERRORS:
        return desc
    return grpc_error_text(code, desc)


def grpc_error_text(code: int, desc: str) -> str:
    """A gRPC status as grpc-go's error prints it."""
    name = CODE_NAMES[code] if 0 <= code < len(CODE_NAMES) else f"Code({code})"
    return f"rpc error: code = {name} desc = {desc}"
