"""A small client for etcd's JSON gateway, on the standard library's sockets alone.

Why it exists: a command-line tool run in loops must start fast, and importing grpc costs more
than the whole budget. The gateway (``POST /v3/...`` on the client URL, proto3 JSON both ways)
carries every unary RPC, so the common etcdctl commands need only ``socket`` and ``json``.
``http.client`` is avoided too: it pulls in the ``email`` package, which costs several
milliseconds, while one ``POST`` with ``Connection: close`` is a dozen lines.

Failover: endpoints are tried in order from the last one that worked; an endpoint that refuses
the connection (or does not accept it within the dial timeout) is skipped. When none can be
reached before the dial timeout runs out, the call fails with ``context deadline exceeded``, as
etcd's client reports it. Errors from the server keep etcd's message and gRPC code (the gateway
sends ``{"error"|"message": ..., "code": N}``).
"""

from __future__ import annotations

import json
import socket
import time

from petcd.client.config import ClientConfig, Endpoint
from petcd.client.errors import UNKNOWN, ClientError, DeadlineExceeded, GatewayUnsupported
from petcd.client.rpc import RPCS

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up time
if TYPE_CHECKING:
    from typing import Any

    JsonDict = dict[str, Any]


class GatewayClient:
    """Unary calls through the JSON gateway, with failover across endpoints."""

    def __init__(self, config: ClientConfig, token: str = "") -> None:
        self.config = config
        self.endpoints: list[Endpoint] = config.parsed_endpoints()
        self.token = token
        self._current = 0  # index of the endpoint that answered last

    @property
    def current_endpoint(self) -> Endpoint:
        return self.endpoints[self._current]

    def authenticate(self, user: str, password: str) -> str:
        reply = self.call("Authenticate", {"name": user, "password": password})
        self.token = str(reply.get("token", ""))
        return self.token

    def call(self, method: str, body: JsonDict, endpoint: Endpoint | None = None) -> JsonDict:
        """Call ``method`` (etcd's RPC name) with a proto3-JSON body; returns the reply dict."""
        path = RPCS[method].path
        payload = json.dumps(body, separators=(",", ":")).encode()
        sock, ep = self._connect(endpoint)
        try:
            status, data = self._exchange(sock, ep, path, payload)
        finally:
            sock.close()
        if status == 200:
            reply: JsonDict = json.loads(data) if data else {}
            return reply
        raise _error_from(status, data, path)

    def _connect(self, only: Endpoint | None) -> tuple[socket.socket, Endpoint]:
        deadline = time.monotonic() + self.config.dial_timeout_s
        order = [only] if only is not None else self._rotation()
        # an endpoint that swallows SYNs must not use up the whole dial timeout on its own
        per_try = max(self.config.dial_timeout_s / len(order), 0.2)
        while True:
            for ep in order:
                left = min(deadline - time.monotonic(), per_try)
                if left <= 0:
                    break
                try:
                    # an ASCII host as bytes skips the idna codec (an import costing ~1 ms)
                    host: str | bytes = ep.host.encode() if ep.host.isascii() else ep.host
                    sock = socket.create_connection((host, ep.port), timeout=left)  # type: ignore[arg-type]
                except OSError:
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if ep.tls:
                    try:
                        sock = self._wrap_tls(sock, ep)
                    except OSError:  # handshake refused: as unreachable, like etcd's balancer
                        sock.close()
                        continue
                if only is None:
                    self._current = self.endpoints.index(ep)
                return sock, ep
            if time.monotonic() >= deadline:
                raise DeadlineExceeded()
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _rotation(self) -> list[Endpoint]:
        n = len(self.endpoints)
        return [self.endpoints[(self._current + i) % n] for i in range(n)]

    def _wrap_tls(self, sock: socket.socket, ep: Endpoint) -> socket.socket:
        import ssl

        tls = self.config.tls
        ctx = ssl.create_default_context(cafile=tls.cacert or None)
        if tls.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if tls.cert:
            ctx.load_cert_chain(tls.cert, tls.key or None)
        return ctx.wrap_socket(sock, server_hostname=tls.server_name or ep.host)

    def _exchange(self, sock: socket.socket, ep: Endpoint, path: str, payload: bytes) -> tuple[int, bytes]:
        sock.settimeout(self.config.command_timeout_s)
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {ep.grpc_target}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            "Connection: close",
        ]
        if self.token:
            head.append(f"Authorization: {self.token}")
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            raw = _read_all(sock)
        except TimeoutError:
            raise DeadlineExceeded() from None
        except ConnectionResetError:
            # a gRPC-only port resets an HTTP/1.1 request: no gateway there, nothing was applied
            raise GatewayUnsupported(path) from None
        except OSError as err:
            if ep.tls:
                # TLS 1.3 reports a refused client certificate only here; etcd's client keeps
                # retrying such a connection until the deadline
                raise DeadlineExceeded() from None
            raise ClientError(f"rpc error: {err}", 14) from None
        if not raw.startswith(b"HTTP/1."):
            raise GatewayUnsupported(path)  # an HTTP/2-only (gRPC) listener, or nothing at all
        return _parse_response(raw)


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _parse_response(raw: bytes) -> tuple[int, bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ClientError("malformed HTTP response from gateway", UNKNOWN)
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise ClientError("malformed HTTP status line from gateway", UNKNOWN) from None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    elif "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return status, body


def _dechunk(body: bytes) -> bytes:
    out = []
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            break
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            break
        out.append(body[eol + 2 : eol + 2 + size])
        pos = eol + 2 + size + 2
    return b"".join(out)


def _error_from(status: int, data: bytes, path: str) -> ClientError:
    try:
        obj = json.loads(data)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        if status in (404, 405, 501):
            return GatewayUnsupported(path)
        return ClientError(data.decode("utf-8", "replace").strip() or f"HTTP {status}", UNKNOWN)
    message = obj.get("message") or obj.get("error") or f"HTTP {status}"
    code = obj.get("code", UNKNOWN)
    code = int(code) if isinstance(code, int) else UNKNOWN
    from petcd.client.rpctypes import status_text

    return ClientError(status_text(code, str(message)), code)
