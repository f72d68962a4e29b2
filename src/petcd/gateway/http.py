"""The HTTP side of the client URL: etcd's JSON gateway and its health, version and metrics endpoints.

Theory of operation
-------------------
`GatewayServer` is a small HTTP/1.1 server on asyncio streams (no web framework: the surface is a
dozen routes, and its cost per request is what etcd's gateway clients pay). Routes:

* `POST /v3/...` (and `/v3beta/...`, rewritten as etcd does): the JSON gateway. The routing table is
  built from the services' descriptors and petcd's `http_post` method option, so every RPC's paths come
  from the protos. A unary call parses the body as proto3 JSON (unknown fields ignored), dispatches
  through `ApiCore.unary` (the same checks and errors as gRPC) and answers proto3 JSON with etcd's
  gateway conventions: snake_case field names, int64 as strings, bytes as base64, defaults omitted.
  Errors are grpc-gateway v2 bodies `{"code":N,"message":"...","details":[]}` with grpc-gateway's HTTP
  status for the code. Streaming RPCs (watch, lease keep-alive, snapshot, observe) answer with a
  chunked body of newline-separated `{"result":{...}}` objects until the client goes away; the request
  body may hold several JSON request objects back to back, and a chunked request body is read as it
  arrives, so a client can keep sending (watch create/cancel/progress) on the same stream.
* `GET /health`: etcd's `{"health":"true","reason":""}` (503 with the reason when unhealthy), with
  `?exclude=<ALARM>` and `?serializable=true`; `/livez`, `/readyz` and their per-check subpaths in
  etcd 3.6's text format; `/version`; `/metrics` (Prometheus text from `EtcdMetrics`; in a front-end
  process, the member's, rendered by its core: petcd.gateway.metrics; 503 when the core does not
  answer).

Sharing the port with gRPC: grpcio's server owns its listening socket and cannot hand HTTP/1.1
connections over, so the two share a port only through a front that routes each connection by its
first bytes (`ClientPortMux`: the HTTP/2 client preface goes to the gRPC server's own listener, anything
else is served here in-process). With `--listen-client-http-urls`, as in etcd, the gateway listens on
its own URL and gRPC keeps the client port to itself with no extra hop; the mux costs one copy of
every gRPC byte through the event loop, which is why the runtime should prefer a separate HTTP URL
when gRPC throughput matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message

from petcd.api import errors as api_errors
from petcd.api.core import ApiCore
from petcd.api.server import SERVICES, StreamHandlers, method_path, storage_version
from petcd.errors import EtcdError
from petcd.gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from petcd.gateway.metrics import EtcdMetrics, MetricsUnavailable
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.gateway import http_pb2

MAX_HEADER_LINES = 100
TEXT = "text/plain; charset=utf-8"
# etcd's default --cors "*": every response allows any origin, and OPTIONS answers 200 with no body
CORS_HEADERS = (
    "Access-Control-Allow-Headers: accept, content-type, authorization\r\n"
    "Access-Control-Allow-Methods: POST, GET, OPTIONS, PUT, DELETE\r\n"
    "Access-Control-Allow-Origin: *\r\n"
)
MAX_BODY_BYTES = 64 * 1024 * 1024

# grpc-gateway's HTTPStatusFromCode
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    499: "Client Closed Request",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class Route:
    path: str  # gRPC method path
    request: type[Message]
    client_streaming: bool
    server_streaming: bool


def gateway_routes() -> dict[str, Route]:
    """HTTP path -> RPC, from the `petcd.gateway.http_post` option of every method."""
    routes: dict[str, Route] = {}
    for service in SERVICES:
        for method in service.methods:
            paths = method.GetOptions().Extensions[http_pb2.http_post]
            route = Route(
                method_path(method),
                message_factory.GetMessageClass(method.input_type),
                method.client_streaming,
                method.server_streaming,
            )
            for p in paths:
                routes[p] = route
    return routes


def to_json(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return out


def error_body(code: grpc.StatusCode, message: str) -> dict[str, Any]:
    return {"code": code.value[0], "message": message, "details": []}


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


class HttpError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _decode_objects(body: bytes) -> list[Any]:
    """The JSON values in `body`, back to back or newline-separated (a streaming request body)."""
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    out: list[Any] = []
    i = 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            return out
        obj, i = decoder.raw_decode(text, i)
        out.append(obj)


class GatewayServer:
    """HTTP/1.1 on asyncio streams over one ApiCore (see the module docstring)."""

    def __init__(self, core: ApiCore, metrics: EtcdMetrics | None = None) -> None:
        self.core = core
        self.facade = core.facade
        self.metrics = metrics or EtcdMetrics()
        self.routes = gateway_routes()
        self.streams = StreamHandlers(core)
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    # -- listening -----------------------------------------------------------------------------------

    async def listen(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None = None, *, reuse_port: bool = False
    ) -> int:
        """Serve on host:port (0 picks a free port), over TLS when `ssl_context` is given (an https
        client URL); returns the bound port. `reuse_port`: shared by a member's front-end processes."""
        server = await asyncio.start_server(
            self.handle_connection, host, port, ssl=ssl_context, reuse_port=reuse_port or None
        )
        self._servers.append(server)
        sock = server.sockets[0]
        bound: int = sock.getsockname()[1]
        return bound

    async def listen_unix(self, path: str, ssl_context: ssl.SSLContext | None = None) -> None:
        """Serve on a unix socket (etcd's unix:// and unixs:// client URLs)."""
        self._servers.append(await asyncio.start_unix_server(self.handle_connection, path, ssl=ssl_context))

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes = b""
    ) -> None:
        """One HTTP/1.1 connection (`first` holds bytes a port mux already read)."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if first:
                reader = _prefixed(reader, first)
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except (ValueError, UnicodeError):
            # a malformed request (bad length, chunk size, overlong line): answer once, then hang up
            with contextlib.suppress(ConnectionError):
                await self._write(writer, Response(400, b"400 Bad Request\n", TEXT), False)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    # -- HTTP/1.1 ------------------------------------------------------------------------------------

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False
        try:
            method, target, version = line.decode("latin-1").split()
        except ValueError:
            await self._write(writer, Response(400, b"bad request line\n", "text/plain"), False)
            return False
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            h = await reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        path, _, query = target.partition("?")
        if path.startswith("/v3beta/"):
            path = "/v3/" + path[len("/v3beta/") :]
        route = self.routes.get(path)
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        if route is not None and route.server_streaming and method == "POST" and chunked:
            await self._stream(route, None, reader, writer)
            return False
        body = await self._read_body(reader, headers)
        if method == "OPTIONS":
            await self._write(writer, Response(200, b"", "text/plain; charset=utf-8"), keep_alive)
            return keep_alive
        if route is not None and route.server_streaming:
            if method != "POST":
                await self._write(writer, Response(405, b"Method Not Allowed\n", "text/plain"), keep_alive)
                return keep_alive
            await self._stream(route, body, reader, writer)
            return False
        resp = await self._dispatch(method, path, query, body, route)
        await self._write(writer, resp, keep_alive)
        return keep_alive

    async def _read_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "content-length" in headers:
            n = int(headers["content-length"])
            if n > MAX_BODY_BYTES:
                raise ConnectionError("body too large")
            return await reader.readexactly(n)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(await reader.readexactly(size))
                await reader.readline()
        return b""

    async def _write(self, writer: asyncio.StreamWriter, resp: Response, keep_alive: bool) -> None:
        head = (
            f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Status')}\r\n"
            f"{CORS_HEADERS}"
            f"Content-Type: {resp.content_type}\r\n"
            f"Content-Length: {len(resp.body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + resp.body)
        await writer.drain()

    # -- dispatch ------------------------------------------------------------------------------------

    async def _dispatch(
        self, method: str, path: str, query: str, body: bytes, route: Route | None
    ) -> Response:
        if route is not None:
            if method != "POST":
                return Response(405, b"Method Not Allowed\n", "text/plain")
            return await self._unary(route, body)
        handler = self._plain_routes().get(path)
        if handler is None:
            for prefix in ("/livez/", "/readyz/"):
                if path.startswith(prefix):
                    handler = self._probe_handler(prefix.strip("/"), path[len(prefix) :])
        if handler is None:
            return Response(404, b"404 page not found\n", "text/plain; charset=utf-8")
        if method != "GET":
            return Response(405, b"Method Not Allowed\n", "text/plain")
        return await handler(parse_qs(query, keep_blank_values=True))

    def _plain_routes(self) -> dict[str, Callable[[dict[str, list[str]]], Awaitable[Response]] | None]:
        return {
            "/health": self.health,
            "/livez": self._probe_handler("livez", ""),
            "/readyz": self._probe_handler("readyz", ""),
            "/version": self.version,
            "/metrics": self.render_metrics,
        }

    async def _unary(self, route: Route, body: bytes) -> Response:
        try:
            req = route.request()
            if body.strip():
                json_format.Parse(body, req, ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError, ValueError) as err:
            code = grpc.StatusCode.INVALID_ARGUMENT
            return Response(400, json.dumps(error_body(code, str(err))).encode())
        impl = self.core.unary.get(route.path)
        if impl is None:
            code = grpc.StatusCode.UNIMPLEMENTED
            name = route.path.rsplit("/", 1)
            message = f"unknown method {name[1]} for service {name[0].strip('/')}"
            return Response(501, json.dumps(error_body(code, message)).encode())
        try:
            self.core.guard(route.path, req)
            resp = await impl(req)
        except EtcdError as err:
            code, message = api_errors.status_of(err)
            return Response(HTTP_STATUS[code], json.dumps(error_body(code, message)).encode())
        return Response(200, json.dumps(to_json(resp), separators=(",", ":")).encode())

    async def _stream(
        self, route: Route, body: bytes | None, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """A streaming RPC. `body` is the whole request body, or None for a chunked body that is read
        as it arrives: each JSON object in it is one request on the stream (grpc-gateway's decoder),
        so a client can keep sending watch create/cancel requests. The end of the body half-closes
        the stream (watches stay); the connection's end cancels it."""
        requests: asyncio.Queue[Message | None] = asyncio.Queue()
        if body is not None:
            try:
                objs = _decode_objects(body) or [{}]
                for o in objs:
                    requests.put_nowait(json_format.ParseDict(o, route.request(), ignore_unknown_fields=True))
            except (json_format.ParseError, UnicodeDecodeError, ValueError) as err:
                code = grpc.StatusCode.INVALID_ARGUMENT
                await self._write(
                    writer, Response(400, json.dumps(error_body(code, str(err))).encode()), False
                )
                return
            requests.put_nowait(None)
        head = (
            f"HTTP/1.1 200 OK\r\n{CORS_HEADERS}Content-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode())
        bad_request: list[str] = []

        async def feed() -> None:
            """Reads the chunked body into `requests`, then waits for the client to hang up."""
            if body is None:
                buf = ""
                async for data in _chunks(reader):
                    buf += data.decode("utf-8")
                    objs, buf = _complete_objects(buf)
                    for o in objs:
                        try:
                            requests.put_nowait(
                                json_format.ParseDict(o, route.request(), ignore_unknown_fields=True)
                            )
                        except json_format.ParseError as err:
                            bad_request.append(str(err))
                            requests.put_nowait(None)
                            return
                if buf.strip():
                    bad_request.append("unexpected end of JSON input")
                requests.put_nowait(None)
            while await reader.read(65536):
                pass

        async def request_stream() -> AsyncIterator[Any]:
            while (r := await requests.get()) is not None:
                yield r
            if bad_request:
                raise _BadRequest(bad_request[0])

        feed_task = asyncio.create_task(feed())
        responses: AsyncIterator[Any] | None = None

        async def pump() -> None:
            nonlocal responses
            try:
                self.core.guard(route.path, None, stream=True)
                if route.client_streaming:
                    responses = self._stream_source(route, None, request_stream())
                else:
                    first = await requests.get()
                    responses = self._stream_source(route, first or route.request(), request_stream())
                async for msg in responses:
                    _write_chunk(writer, json.dumps({"result": to_json(msg)}).encode() + b"\n")
                    await writer.drain()
            except EtcdError as err:
                if isinstance(err, _BadRequest):
                    code, message = grpc.StatusCode.INVALID_ARGUMENT, str(err)
                else:
                    code, message = api_errors.status_of(err)
                _write_chunk(writer, json.dumps({"error": error_body(code, message)}).encode() + b"\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()

        # the stream lasts until the source ends or the client goes away (feed returns on EOF)
        pump_task = asyncio.create_task(pump())
        try:
            await asyncio.wait({pump_task, feed_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (pump_task, feed_task):
                t.cancel()
            await asyncio.gather(pump_task, feed_task, return_exceptions=True)
            aclose = getattr(responses, "aclose", None)
            if aclose is not None:
                await aclose()

    def _stream_source(self, route: Route, first: Any, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        s = self.streams
        if route.path == "/etcdserverpb.Watch/Watch":
            return s.watch(requests)
        if route.path == "/etcdserverpb.Lease/LeaseKeepAlive":
            return s.lease_keep_alive(requests)
        if route.path == "/etcdserverpb.Maintenance/Snapshot":
            return s.snapshot(first)
        return s.observe(first)

    # -- health, version, metrics --------------------------------------------------------------------

    async def check_health(self, excluded: set[str], serializable: bool) -> tuple[bool, str]:
        """etcd's checkHealth: alarms (not excluded), leader (unless serializable), then a range."""
        try:
            alarms = await self.facade.alarm(pb.AlarmRequest(action=pb.AlarmRequest.GET))
        except EtcdError as err:
            return False, f"ALARM ERROR:{err}"
        for a in alarms.alarms:
            name = pb.AlarmType.Name(a.alarm)
            if name in excluded:
                continue
            return False, {"NOSPACE": "ALARM NOSPACE", "CORRUPT": "ALARM CORRUPT"}.get(name, "ALARM UNKNOWN")
        if not serializable and self.facade.leader_id() == 0:
            return False, "RAFT NO LEADER"
        try:
            await self.facade.range(
                pb.RangeRequest(key=b"health", keys_only=True, limit=1, serializable=serializable)
            )
        except EtcdError as err:
            return False, f"RANGE ERROR:{err}"
        return True, ""

    async def health(self, query: dict[str, list[str]]) -> Response:
        excluded = set(query.get("exclude", []))
        serializable = query.get("serializable", [""])[-1] == "true"
        ok, reason = await self.check_health(excluded, serializable)
        (self.metrics.health_success if ok else self.metrics.health_failures).inc()
        body = json.dumps({"health": "true" if ok else "false", "reason": reason}, separators=(",", ":"))
        # etcd writes the JSON without a content type (Go sniffs text/plain); a failure goes through
        # http.Error, which adds a newline
        return Response(200, body.encode(), TEXT) if ok else Response(503, body.encode() + b"\n", TEXT)

    async def _probe(self, check: str) -> str | None:
        """One livez/readyz check (etcd 3.6's etcdhttp checks): None when it passes, else the error."""
        if check in ("serializable_read", "linearizable_read"):
            try:
                await self.facade.range(
                    pb.RangeRequest(
                        key=b"health", keys_only=True, limit=1, serializable=check == "serializable_read"
                    )
                )
            except EtcdError as err:
                return str(err)
        elif check == "data_corruption":
            alarms = await self.facade.alarm(pb.AlarmRequest(action=pb.AlarmRequest.GET))
            if any(a.alarm == pb.CORRUPT for a in alarms.alarms):
                return "alarm activated: CORRUPT"
        elif check == "non_learner" and self.facade.is_learner():
            return "not supported for learner"
        return None

    PROBES: dict[str, tuple[str, ...]] = {
        "livez": ("serializable_read",),
        "readyz": ("data_corruption", "serializable_read", "linearizable_read", "non_learner"),
    }

    def _probe_handler(
        self, kind: str, only: str
    ) -> Callable[[dict[str, list[str]]], Awaitable[Response]] | None:
        """etcd's health handler: excluded checks are skipped silently; on success "ok\\n" (after the
        per-check lines with ?verbose); on failure 503 with every check's line, as Go's http.Error."""
        if only and only not in self.PROBES[kind]:
            return None

        async def run(query: dict[str, list[str]]) -> Response:
            excluded = set(query.get("exclude", [])) if not only else set()
            lines: list[str] = []
            failed = False
            for check in (only,) if only else self.PROBES[kind]:
                if check in excluded:
                    continue
                err = await self._probe(check)
                self.metrics.record_check(kind, check, err is None)
                if err is None:
                    lines.append(f"[+]{check} ok\n")
                else:
                    failed = True
                    lines.append(f"[-]{check} failed: {err}\n")
            reason = "".join(lines)
            if failed:
                return Response(503, (reason + "\n").encode(), TEXT)
            text = (reason if "verbose" in query else "") + "ok\n"
            return Response(200, text.encode(), TEXT)

        return run

    async def version(self, query: dict[str, list[str]]) -> Response:
        server, cluster = self.facade.version_info()
        doc = {"etcdserver": server, "etcdcluster": cluster}
        if server.startswith("3.6"):
            doc["storage"] = storage_version(server, cluster) or "not_decided"
        return Response(200, json.dumps(doc, separators=(",", ":")).encode())

    async def render_metrics(self, query: dict[str, list[str]]) -> Response:
        try:
            body = await self.metrics.exposition()
        except MetricsUnavailable as err:  # a front-end whose core does not answer
            return Response(503, f"{err}\n".encode(), TEXT)
        return Response(200, body, METRICS_CONTENT_TYPE)


class _BadRequest(EtcdError):
    """A streaming request body that is not proto3 JSON (answered as InvalidArgument)."""


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The payloads of a chunked request body, as they arrive."""
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return
        data = await reader.readexactly(size)
        await reader.readline()
        yield data


def _complete_objects(buf: str) -> tuple[list[Any], str]:
    """The JSON values complete at the front of `buf`, and the rest (an object still arriving)."""
    decoder = json.JSONDecoder()
    out: list[Any] = []
    i = 0
    while True:
        while i < len(buf) and buf[i] in " \t\r\n":
            i += 1
        if i >= len(buf):
            return out, ""
        try:
            obj, i = decoder.raw_decode(buf, i)
        except json.JSONDecodeError:
            return out, buf[i:]
        out.append(obj)


def _write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))


def _prefixed(reader: asyncio.StreamReader, first: bytes) -> asyncio.StreamReader:
    """A reader that yields `first` before what `reader` still holds."""
    out = asyncio.StreamReader()
    out.feed_data(first)

    async def copy() -> None:
        try:
            while data := await reader.read(65536):
                out.feed_data(data)
        finally:
            out.feed_eof()

    task = asyncio.ensure_future(copy())
    out._petcd_copy = task  # type: ignore[attr-defined]  # keep the copier alive with the reader
    return out
