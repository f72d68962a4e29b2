"""One client port for gRPC and HTTP: route each connection by its first bytes.

A gRPC client opens its connection with the HTTP/2 client preface (HTTP2_PREFACE); an HTTP/1.1
client starts with a method name. The mux reads just enough bytes to tell them apart, then
either splices the connection to the gRPC server's own listener (a loopback port only the mux uses) or
hands it, with the bytes already read, to the `GatewayServer`. The splice copies every gRPC byte through
the event loop, so with `--listen-client-http-urls` the runtime should give gRPC the client port
directly and serve HTTP on its own listener instead.

Measured (tests' fake facade, one client, sequential unary Range, mux and gRPC server on one loop):
about 600-730 us per call direct and 750-910 us through the mux, i.e. the splice adds roughly
150-180 us (+25%) per call on this machine, and its CPU is taken from the same event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from petcd.gateway.http import GatewayServer

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
COPY_CHUNK = 256 * 1024


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(COPY_CHUNK):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.write_eof()


class ClientPortMux:
    """Accepts on the client port; gRPC goes to `grpc_target` (host, port), HTTP to `gateway`."""

    def __init__(self, gateway: GatewayServer, grpc_target: tuple[str, int]) -> None:
        self.gateway = gateway
        self.grpc_target = grpc_target
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None = None, *, reuse_port: bool = False
    ) -> int:
        """Accept on host:port. With `ssl_context` (an https client URL) the mux terminates TLS,
        offering ALPN "h2" and "http/1.1", and routes the decrypted bytes the same way; the gRPC
        server then listens in plaintext on its loopback port only. `reuse_port`: front-end
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
                data = await reader.read(len(HTTP2_PREFACE) - len(first))
                if not data:
                    break
                first += data
            if first == HTTP2_PREFACE:
                await self._splice(first, reader, writer)
            elif first:
                await self.gateway.handle_connection(reader, writer, first)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _splice(self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.grpc_target)
        up_writer.write(first)
        try:
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        finally:
            up_writer.close()
