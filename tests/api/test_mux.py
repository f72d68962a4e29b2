"""The client-port mux (petcd.gateway.mux): what it splices to the gRPC listener arrives intact, both
ways, under back-pressure; EOF and close propagate; HTTP goes to the gateway with every byte; the
listeners' private gRPC socket is gone after close."""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from fake_facade import FakeFacade

from petcd.api.server import build_grpc_server
from petcd.gateway.http import GatewayServer
from petcd.gateway.listeners import ClientListeners
from petcd.gateway.mux import HTTP2_PREFACE, ClientPortMux
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc as rpc

TIMEOUT_S = 10.0


class _Gateway:
    """Stands in for GatewayServer: records what an HTTP connection carried."""

    def __init__(self) -> None:
        self.seen: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes = b""
    ) -> None:
        data = first + await reader.read()  # up to the client's EOF
        await self.seen.put(data)
        writer.write(b"got %d" % len(data))
        await writer.drain()
        writer.close()


Upstream = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _with_mux(
    tmp_path: Path, upstream: Upstream, unix: bool, body: Callable[[int, _Gateway], Awaitable[None]]
) -> None:
    if unix:
        path = str(tmp_path / "grpc.sock")
        server = await asyncio.start_unix_server(upstream, path)
        target: Any = path
    else:
        server = await asyncio.start_server(upstream, "127.0.0.1", 0)
        target = ("127.0.0.1", server.sockets[0].getsockname()[1])
    gateway = _Gateway()
    mux = ClientPortMux(cast(GatewayServer, gateway), target)
    port = await mux.listen("127.0.0.1", 0)
    try:
        await asyncio.wait_for(body(port, gateway), TIMEOUT_S)
    finally:
        await mux.close()
        server.close()


@pytest.mark.parametrize("unix", [True, False])
def test_splice_carries_a_large_stream_both_ways_with_a_slow_reader(tmp_path: Path, unix: bool) -> None:
    payload = HTTP2_PREFACE + random.Random(7).randbytes(6 * 1024 * 1024)

    async def body(port: int, _gw: _Gateway) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def send() -> None:
            for i in range(0, len(payload), 100_000):
                writer.write(payload[i : i + 100_000])
                await writer.drain()

        sender = asyncio.ensure_future(send())
        got = bytearray()
        while len(got) < len(payload):
            chunk = await reader.read(32768)
            assert chunk, "the splice closed early"
            got += chunk
            if len(got) < 2 * 1024 * 1024:
                await asyncio.sleep(0.001)  # a slow reader first: the mux must hold back, not drop
        await sender
        assert bytes(got) == payload
        writer.close()

    asyncio.run(_with_mux(tmp_path, _echo, unix, body))


def test_client_eof_reaches_upstream_and_upstream_close_reaches_client(tmp_path: Path) -> None:
    seen_eof: asyncio.Queue[bytes] = asyncio.Queue()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await seen_eof.put(await reader.read())  # everything up to EOF
        writer.write(b"bye")
        writer.close()

    async def body(port: int, _gw: _Gateway) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HTTP2_PREFACE + b"tail")
        writer.write_eof()
        assert await seen_eof.get() == HTTP2_PREFACE + b"tail"
        assert await reader.read() == b"bye"  # then EOF: the mux closed the client side
        writer.close()

    asyncio.run(_with_mux(tmp_path, upstream, True, body))


def test_upstream_close_ends_the_client_connection(tmp_path: Path) -> None:
    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(len(HTTP2_PREFACE))
        writer.close()

    async def body(port: int, _gw: _Gateway) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HTTP2_PREFACE)
        assert await reader.read() == b""
        writer.close()

    asyncio.run(_with_mux(tmp_path, upstream, True, body))


@pytest.mark.parametrize("split", [1, 3, 24, 0])
def test_http_gets_every_byte_however_the_first_ones_arrive(tmp_path: Path, split: int) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + b"z" * 100_000

    async def body(port: int, gw: _Gateway) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if split:
            writer.write(request[:split])
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(request[split:])
        writer.write_eof()
        assert await gw.seen.get() == request
        assert await reader.read() == b"got %d" % len(request)
        writer.close()

    asyncio.run(_with_mux(tmp_path, _echo, True, body))


def test_a_preface_prefix_then_http_goes_to_the_gateway(tmp_path: Path) -> None:
    request = b"PRI * HTTP/1.1\r\n\r\n"  # starts like the preface, then differs

    async def body(port: int, gw: _Gateway) -> None:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request[:5])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(request[5:])
        writer.write_eof()
        assert await gw.seen.get() == request
        writer.close()

    asyncio.run(_with_mux(tmp_path, _echo, True, body))


def test_close_ends_spliced_connections(tmp_path: Path) -> None:
    async def main() -> None:
        path = str(tmp_path / "grpc.sock")
        server = await asyncio.start_unix_server(_echo, path)
        mux = ClientPortMux(cast(GatewayServer, _Gateway()), path)
        port = await mux.listen("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HTTP2_PREFACE)
        assert await asyncio.wait_for(reader.readexactly(len(HTTP2_PREFACE)), TIMEOUT_S) == HTTP2_PREFACE
        await asyncio.wait_for(mux.close(), TIMEOUT_S)
        assert await asyncio.wait_for(reader.read(), TIMEOUT_S) == b""
        writer.close()
        server.close()

    asyncio.run(main())


def test_listeners_serve_grpc_through_a_private_socket_removed_on_close() -> None:
    asyncio.run(_serve_one_put_through_listeners(expect_unix=True))


def test_listeners_fall_back_to_a_loopback_port_when_tmpdir_is_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    asyncio.run(_serve_one_put_through_listeners(expect_unix=False))


async def _listeners_on_a_free_port() -> tuple[Any, ClientListeners, int]:
    server, core, _health = build_grpc_server(cast(Any, FakeFacade()))
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    return server, ClientListeners(core, None), port


async def _one_put(port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        resp = await rpc.KVStub(ch).Put(pb.PutRequest(key=b"k", value=b"v"), timeout=TIMEOUT_S)
        assert resp.header.revision >= 1


async def _serve_one_put_through_listeners(expect_unix: bool) -> None:
    server, listeners, port = await _listeners_on_a_free_port()
    await listeners.start(server, [("127.0.0.1", port)], [], True)
    grpc_dir = listeners._grpc_dir
    try:
        assert grpc_dir is not None
        assert os.path.exists(os.path.join(grpc_dir, f"grpc-{os.getpid()}.sock")) == expect_unix
        assert isinstance(listeners.muxes[0].grpc_target, str) == expect_unix
        assert os.stat(grpc_dir).st_mode & 0o077 == 0  # only this user reaches it
        await _one_put(port)
    finally:
        await listeners.close()
        await server.stop(0)
    assert not os.path.exists(grpc_dir)


def test_listeners_put_the_grpc_socket_in_the_given_directory_and_unlink_it() -> None:
    async def main() -> None:
        server, listeners, port = await _listeners_on_a_free_port()
        with tempfile.TemporaryDirectory(prefix="petcd-t-") as d:  # short: a unix socket path
            path = Path(d) / f"grpc-{os.getpid()}.sock"
            path.write_bytes(b"")  # a stale socket file of a killed process with this pid
            await listeners.start(server, [("127.0.0.1", port)], [], True, socket_dir=d)
            try:
                assert listeners.muxes[0].grpc_target == str(path)
                await _one_put(port)
            finally:
                await listeners.close()
                await server.stop(0)
            assert not path.exists()
            assert Path(d).exists()  # the caller's directory stays

    asyncio.run(main())
