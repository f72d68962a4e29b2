"""petcd's client for etcd's v3 API: the JSON gateway for quick unary calls, gRPC for the rest.

``Client`` is what etcdctl talks through. Unary calls go through the JSON gateway by default
(standard library only, so a short-lived process never pays for importing grpc); when the
endpoint has no gateway, or ``transport="grpc"`` is asked for, they go over gRPC, which is imported
only then. Streams (watch, lease keep-alive, snapshot, observe) are always gRPC. Both paths take
and return the same proto3-JSON dicts (``petcd.client.rpc``) and raise ``ClientError`` with
etcd's message. With a user configured, the first call authenticates and every later call carries
the token (the ``Authorization`` header on the gateway, ``token`` metadata on gRPC).
"""

from __future__ import annotations

from petcd.client.config import ClientConfig, Endpoint, TlsConfig, parse_endpoint
from petcd.client.errors import ClientError, DeadlineExceeded, GatewayUnsupported
from petcd.client.gateway import GatewayClient

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from petcd.client.grpc_client import GrpcClient

    JsonDict = dict[str, Any]

__all__ = [
    "Client",
    "ClientConfig",
    "ClientError",
    "DeadlineExceeded",
    "Endpoint",
    "TlsConfig",
    "parse_endpoint",
]


TRANSPORTS = ("auto", "gateway", "grpc")


class Client:
    """etcd's v3 API on a list of endpoints, with failover and optional authentication."""

    def __init__(self, config: ClientConfig, transport: str = "auto") -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}")
        self.config = config
        self.transport = transport
        self.endpoints = config.parsed_endpoints()
        self._gateway = GatewayClient(config)
        self._grpc: GrpcClient | None = None
        self._token: str | None = None if config.user else ""

    @property
    def grpc(self) -> GrpcClient:
        if self._grpc is None:
            from petcd.client.grpc_client import GrpcClient

            self._grpc = GrpcClient(self.config, self._ensure_token())
        return self._grpc

    def close(self) -> None:
        if self._grpc is not None:
            self._grpc.close()

    def authenticate(self) -> str:
        """Get the token now (it is otherwise fetched before the first call); returns it."""
        return self._ensure_token()

    def use_token(self, token: str) -> None:
        """Authenticate with a token obtained elsewhere (etcdctl's ``--auth-jwt-token``)."""
        self._token = token
        self._gateway.token = token
        if self._grpc is not None:
            self._grpc.token = token

    def _ensure_token(self) -> str:
        if self._token is None:
            self._token = ""  # the Authenticate call itself goes without a token
            body = {"name": self.config.user, "password": self.config.password}
            reply = self._unary("Authenticate", body, None)
            self._token = str(reply.get("token", ""))
            self._gateway.token = self._token
            if self._grpc is not None:
                self._grpc.token = self._token
        return self._token

    def call(self, method: str, body: JsonDict | None = None, endpoint: Endpoint | None = None) -> JsonDict:
        """Call etcd's unary RPC ``method`` with a proto3-JSON body."""
        self._ensure_token()
        return self._unary(method, body or {}, endpoint)

    def _unary(self, method: str, body: JsonDict, endpoint: Endpoint | None) -> JsonDict:
        if self.transport != "grpc":
            try:
                return self._gateway.call(method, body, endpoint)
            except GatewayUnsupported:
                if self.transport == "gateway":
                    raise
                self.transport = "grpc"
        return self.grpc.call(method, body, endpoint)
