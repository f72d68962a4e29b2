"""Errors a client call can end in, carrying etcd's exact message.

Both transports (gRPC and the JSON gateway) reduce a failed call to one ``ClientError`` whose
``message`` is the server's description string (``etcdserver: ...``), so callers compare strings as
etcd's own clients do (``rpctypes.ErrorDesc``). ``code`` is the gRPC status code number (the gateway
sends the same number in its error body). Failures to reach any endpoint become
``context deadline exceeded`` with code DEADLINE_EXCEEDED, which is what etcd's client reports.
"""

from __future__ import annotations

from petcd.errors import EtcdError

# gRPC status code numbers (grpc.StatusCode values), kept here so the gateway path needs no grpc.
OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
UNAVAILABLE = 14
UNAUTHENTICATED = 16


class ClientError(EtcdError):
    """A call failed; ``message`` is etcd's description string, ``code`` the gRPC code."""

    def __init__(self, message: str, code: int = UNKNOWN) -> None:
        super().__init__(message)
        self.code = code


class DeadlineExceeded(ClientError):
    """No endpoint answered in time (etcd's client says ``context deadline exceeded``)."""

    def __init__(self, message: str = "context deadline exceeded") -> None:
        super().__init__(message, DEADLINE_EXCEEDED)


class GatewayUnsupported(ClientError):
    """The endpoint has no JSON gateway for this path (HTTP 404/405): use gRPC instead."""

    def __init__(self, path: str) -> None:
        super().__init__(f"gateway does not serve {path}", UNIMPLEMENTED)
