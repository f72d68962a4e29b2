"""etcd's v3 API over gRPC (sync grpcio), with failover across endpoints.

One channel per endpoint, opened on first use. A unary call goes to the endpoint that answered
last; when the transport itself fails (UNAVAILABLE without an ``etcdserver:`` description, i.e.
the connection could not be made or broke), the call moves on to the next endpoint, round the
list until the dial timeout is spent, which is how etcd's client balancer behaves from the
caller's side. Server errors keep etcd's description string and code.

Calls take and return proto3-JSON dicts (see ``petcd.client.rpc``) so both transports are
interchangeable; ``call_pb``/``stream`` give the protobuf messages for the streaming commands.
Keepalive follows etcdctl's flags, but, as grpc-go does, never pings more often than every 10 s
(etcd's server would close a connection that pings too eagerly).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from petcd.client.config import ClientConfig, Endpoint
from petcd.client.errors import ClientError, DeadlineExceeded
from petcd.client.rpc import RPCS

JsonDict = dict[str, Any]

_KEEPALIVE_MIN_S = 10.0


def message_class(method: str, which: str) -> type[Message]:
    """The protobuf class of ``method``'s request (``which="request"``) or response."""
    rpc = RPCS[method]
    module = importlib.import_module(f"petcd.pb.{rpc.pb_module}")
    cls: type[Message] = getattr(module, rpc.request if which == "request" else rpc.response)
    return cls


def to_dict(msg: Message) -> JsonDict:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def from_dict(method: str, body: JsonDict) -> Message:
    return json_format.ParseDict(body, message_class(method, "request")(), ignore_unknown_fields=True)


def _is_transport_failure(err: grpc.RpcError) -> bool:
    code = err.code()
    details = err.details() or ""
    return bool(code == grpc.StatusCode.UNAVAILABLE and not details.startswith("etcdserver:"))


def map_error(err: grpc.RpcError) -> ClientError:
    code = err.code()
    details = err.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded()
    if code == grpc.StatusCode.CANCELLED and not details:
        return ClientError("context canceled", 1)
    from petcd.client.rpctypes import status_text

    return ClientError(status_text(int(code.value[0]), details), int(code.value[0]))


class GrpcClient:
    """Unary and streaming calls on etcd's gRPC services."""

    def __init__(self, config: ClientConfig, token: str = "") -> None:
        self.config = config
        self.endpoints: list[Endpoint] = config.parsed_endpoints()
        self.token = token
        self._channels: dict[int, grpc.Channel] = {}
        self._current = 0
        self._polled_at = 0.0  # when a connectivity watch last ended (see close)

    @property
    def current_endpoint(self) -> Endpoint:
        return self.endpoints[self._current]

    def close(self) -> None:
        # grpc's connectivity-polling thread notices an ended watch within 0.2 s; closing the
        # channel before that makes it raise in its thread, so let it finish first.
        wait = self._polled_at + 0.25 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def _channel(self, index: int) -> grpc.Channel:
        ch = self._channels.get(index)
        if ch is None:
            ch = self._open(self.endpoints[index])
            self._channels[index] = ch
        return ch

    def _open(self, ep: Endpoint) -> grpc.Channel:
        cfg = self.config
        options: list[tuple[str, Any]] = [
            ("grpc.keepalive_time_ms", int(max(cfg.keepalive_time_s, _KEEPALIVE_MIN_S) * 1000)),
            ("grpc.keepalive_timeout_ms", int(cfg.keepalive_timeout_s * 1000)),
            ("grpc.max_send_message_length", cfg.max_request_bytes or 2 * 1024 * 1024),
            ("grpc.max_receive_message_length", cfg.max_recv_bytes or 2**31 - 1),
            ("grpc.enable_http_proxy", 0),
        ]
        if not ep.tls:
            return grpc.insecure_channel(ep.grpc_target, options=options)
        tls = cfg.tls
        root = _read(tls.cacert) if tls.cacert else None
        key = _read(tls.key) if tls.key else None
        cert = _read(tls.cert) if tls.cert else None
        creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=cert)
        if tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
        return grpc.secure_channel(ep.grpc_target, creds, options=options)

    def _metadata(self, require_leader: bool = False) -> list[tuple[str, str]] | None:
        md = [("token", self.token)] if self.token else []
        if require_leader:
            # clientv3.WithRequireLeader: the server ends the stream when it loses its leader
            md.append(("hasleader", "true"))
        return md or None

    def _method_path(self, method: str) -> str:
        rpc = RPCS[method]
        return f"/{rpc.service}/{rpc.method}"

    def authenticate(self, user: str, password: str) -> str:
        reply = self.call("Authenticate", {"name": user, "password": password})
        self.token = str(reply.get("token", ""))
        return self.token

    def call(self, method: str, body: JsonDict, endpoint: Endpoint | None = None) -> JsonDict:
        return to_dict(self.call_pb(method, from_dict(method, body), endpoint))

    def call_pb(self, method: str, request: Message, endpoint: Endpoint | None = None) -> Message:
        resp_cls = message_class(method, "response")
        deadline = time.monotonic() + self.config.command_timeout_s
        dial_deadline = time.monotonic() + self.config.dial_timeout_s
        indexes = [self.endpoints.index(endpoint)] if endpoint is not None else None
        while True:
            order = indexes or [(self._current + i) % len(self.endpoints) for i in range(len(self.endpoints))]
            for index in order:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineExceeded()
                stub = self._channel(index).unary_unary(
                    self._method_path(method),
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=resp_cls.FromString,
                )
                try:
                    reply: Message = stub(request, timeout=left, metadata=self._metadata())
                except grpc.RpcError as err:
                    if _is_transport_failure(err):
                        continue
                    raise map_error(err) from None
                if endpoint is None:
                    self._current = index
                return reply
            if time.monotonic() >= min(deadline, dial_deadline):
                raise DeadlineExceeded()
            time.sleep(0.05)

    def _ready_channel(self) -> grpc.Channel:
        """The first endpoint (from the current one) whose connection comes up within the dial timeout."""
        deadline = time.monotonic() + self.config.dial_timeout_s
        n = len(self.endpoints)
        while time.monotonic() < deadline:
            for i in range(n):
                index = (self._current + i) % n
                left = min(deadline - time.monotonic(), max(0.2, self.config.dial_timeout_s / n))
                if left <= 0:
                    break
                ch = self._channel(index)
                future = grpc.channel_ready_future(ch)
                try:
                    future.result(timeout=left)
                except grpc.FutureTimeoutError:
                    future.cancel()
                    continue
                finally:
                    self._polled_at = time.monotonic()
                self._current = index
                return ch
        raise DeadlineExceeded()

    def stream(
        self,
        method: str,
        requests: Iterable[Message],
        timeout_s: float | None = None,
        require_leader: bool = True,
    ) -> StreamCall:
        """A bidirectional stream (Watch, LeaseKeepAlive) on the first endpoint that is up."""
        resp_cls = message_class(method, "response")
        call = self._ready_channel().stream_stream(
            self._method_path(method),
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=resp_cls.FromString,
        )
        return StreamCall(call(iter(requests), timeout=timeout_s, metadata=self._metadata(require_leader)))

    def server_stream(self, method: str, request: Message, timeout_s: float | None = None) -> StreamCall:
        """A server stream (Snapshot, Observe) on the first endpoint that is up."""
        resp_cls = message_class(method, "response")
        call = self._ready_channel().unary_stream(
            self._method_path(method),
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=resp_cls.FromString,
        )
        return StreamCall(call(request, timeout=timeout_s, metadata=self._metadata()))


class StreamCall:
    """The responses of a streaming call; ``cancel()`` (from any thread) ends it."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> Iterator[Message]:
        try:
            yield from self._call
        except grpc.RpcError as err:
            raise map_error(err) from None
        finally:
            self._call.cancel()

    def cancel(self) -> None:
        self._call.cancel()


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
