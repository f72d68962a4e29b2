"""One client port for gRPC and HTTP: route each connection by its first bytes.

A gRPC client opens its connection with the HTTP/2 client preface (HTTP2_PREFACE); an HTTP/1.1
client starts with a method name. The mux reads what the client sent first, enough to tell them
apart, then either splices the connection to the gRPC server's own listener (a private unix socket,
or a loopback port, that only the mux uses) or hands it, with the bytes already read, to the
`GatewayServer`. With `--listen-client-http-urls` the runtime gives gRPC the client port directly
and serves HTTP on its own listener instead (petcd.gateway.listeners).

The splice is the hot path of every gRPC request on the default configuration, and its CPU is taken
from the event loop that also runs the gRPC handlers, so it is kept to the least asyncio allows: once
a connection is known to be gRPC, the client transport and the upstream transport get a `_Splice`
protocol each, whose `data_received` writes the bytes straight into the other transport (no
StreamReader, no coroutine wake-up, no drain per chunk). Back-pressure uses the transports' own flow
control: when one side's write buffer passes its high-water mark (`pause_writing`), the other side
stops reading until it drains. The upstream is a unix socket when the caller gives a path: the
kernel's loopback TCP path (segments, ACKs, the receiver's softirq run inside our `send`) costs
several times what a unix socket write does.

An EOF from one side is passed on as a half-close (`write_eof`); once both sides have sent theirs, or
when the side to pass it to cannot half-close (TLS), both close after what is buffered is written.
TLS (an https client URL) is terminated here; the same splice then runs on the decrypted stream.

Measured with the mux alone in its own process in front of a do-nothing grpc.aio server (CPU per put,
medians of 3; 1000 clients on 100 connections / 1 client): the StreamReader/drain copy to a loopback
TCP port cost 100 / 93 us in the mux and made the gRPC server spend 307 / 370 us (direct: 262 / 327);
the `_Splice` protocols to a unix socket cost 50 / 57 us in the mux and the server 260 / 330 us.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import cast

from petcd.gateway.http import GatewayServer

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# a read that takes everything the StreamReader holds (read(n) returns at most what is buffered)
_ALL_BUFFERED = 1 << 30

# Where gRPC connections go: a unix socket path, or (host, port)
GrpcTarget = str | tuple[str, int]


class _Splice(asyncio.Protocol):
    """One side of a spliced connection: what this transport receives is written to `peer`."""

    def __init__(self, peer: asyncio.Transport) -> None:
        self.peer = peer
        self.partner: _Splice | None = None  # the protocol of the other direction
        self.eof = False  # this transport's reader sent EOF
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.peer.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        if (self.partner is not None and self.partner.eof) or not self.peer.can_write_eof():
            self.peer.close()  # flushes what is buffered, then closes
            return False  # and this transport closes too
        self.peer.write_eof()  # a half-close goes through; the other direction goes on
        return True

    def pause_writing(self) -> None:
        # this transport's write buffer is full: stop reading what fills it
        self.peer.pause_reading()

    def resume_writing(self) -> None:
        self.peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer.close()
        if not self.closed.done():
            self.closed.set_result(None)


class ClientPortMux:
    """Accepts on the client port; gRPC goes to `grpc_target`, HTTP to `gateway`.

    `grpc_target` is a unix socket path (what petcd.gateway.listeners uses) or (host, port)."""

    def __init__(self, gateway: GatewayServer, grpc_target: GrpcTarget) -> None:
        self.gateway = gateway
        self.grpc_target = grpc_target
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None = None, *, reuse_port: bool = False
    ) -> int:
        """Accept on host:port. With `ssl_context` (an https client URL) the mux terminates TLS,
        offering ALPN "h2" and "http/1.1", and routes the decrypted bytes the same way; the gRPC
        server then listens in plaintext on its private socket only. `reuse_port`: front-end
        processes of one member share the port (SO_REUSEPORT; the kernel spreads connections)."""
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2", "http/1.1"])
        self._server = await asyncio.start_server(
            self._accept, host, port, ssl=ssl_context, reuse_port=reuse_port or None
        )
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            first = b""
            while len(first) < len(HTTP2_PREFACE) and HTTP2_PREFACE.startswith(first):
                data = await reader.read(_ALL_BUFFERED)
                if not data:
                    break
                first += data
            if first.startswith(HTTP2_PREFACE):
                # nothing is awaited between the read that emptied the reader and this hand-over,
                # so no byte can be left behind in the StreamReader
                await self._splice(first, writer.transport)
            elif first:
                await self.gateway.handle_connection(reader, writer, first)
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _splice(self, first: bytes, base: asyncio.BaseTransport) -> None:
        # a read/write transport (uvloop's are not asyncio.Transport subclasses: no isinstance)
        client = cast(asyncio.Transport, base)
        client.pause_reading()
        aloop = asyncio.get_running_loop()
        target = self.grpc_target
        upstream_side = _Splice(client)
        if isinstance(target, str):
            upstream, _ = await aloop.create_unix_connection(lambda: upstream_side, target)
        else:
            upstream, _ = await aloop.create_connection(lambda: upstream_side, *target)
        client_side = _Splice(upstream)
        client_side.partner, upstream_side.partner = upstream_side, client_side
        client.set_protocol(client_side)
        try:
            if client.is_closing():
                return
            upstream.write(first)
            client.resume_reading()
            await asyncio.wait(
                {client_side.closed, upstream_side.closed}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            upstream.close()
            with contextlib.suppress(Exception):
                client.close()
