"""The HTTP/2 fast path's HPACK decoder on RFC 7541's own examples, and its request encoding."""

from __future__ import annotations

import asyncio

import pytest

from petcd.benchmark.h2 import (
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    SETTINGS,
    Connection,
    GrpcStatusError,
    HpackDecoder,
    frame,
    request_header_block,
)


def test_decoder_follows_the_dynamic_table_across_blocks() -> None:
    d = HpackDecoder()
    # RFC 7541 C.3.1 / C.3.2: requests without Huffman, the second reusing the first's entry
    first = d.decode(bytes.fromhex("828684410f7777772e6578616d706c652e636f6d"))
    assert first == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
    ]
    second_block = bytes.fromhex("828684be58086e6f2d6361636865")
    second = d.decode(second_block)
    assert second[-2:] == [(b":authority", b"www.example.com"), (b"cache-control", b"no-cache")]
    assert d.dynamic[0] == (b"cache-control", b"no-cache")
    # a block that only refers to entries leaves the table alone and is then served from the cache
    refs = bytes.fromhex("be")
    assert d.decode(refs) == [(b"cache-control", b"no-cache")]
    generation = d.generation
    assert d.decode(refs) == [(b"cache-control", b"no-cache")]
    assert d.generation == generation
    # ...until the table changes: then the same bytes mean the newest entry again
    d.decode(bytes.fromhex("400161") + b"\x01b")  # literal with indexing: a: b
    assert d.decode(refs) == [(b"a", b"b")]


def test_request_block_round_trips_through_the_decoder() -> None:
    block = request_header_block("127.0.0.1:2379", "/etcdserverpb.KV/Put", (("token", "t0k"),))
    assert HpackDecoder().decode(block) == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/etcdserverpb.KV/Put"),
        (b":authority", b"127.0.0.1:2379"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"token", b"t0k"),
    ]


def _lit(name: bytes, value: bytes) -> bytes:
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def _msg(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_connection_speaks_unary_and_streams_over_frames() -> None:
    async def scenario() -> None:
        conn = Connection("h:1")
        transport = _Transport()
        conn.connection_made(transport)
        assert bytes(transport.sent).startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        conn.data_received(frame(SETTINGS, 0, 0, b""))
        await conn.ready

        ok = conn.call(request_header_block("h:1", "/x"), b"req")
        bad = conn.call(request_header_block("h:1", "/x"), b"req")
        await asyncio.sleep(0)  # the frames leave in one write
        assert b"req" in transport.sent
        ok_trailers = _lit(b"grpc-status", b"0")
        bad_trailers = _lit(b"grpc-status", b"3") + _lit(b"grpc-message", b"no%20key")
        # the response of stream 1 split across reads; stream 3 ends with trailers only
        wire = (
            frame(HEADERS, END_HEADERS, 1, b"\x88")
            + frame(DATA, 0, 1, _msg(b"resp"))
            + frame(HEADERS, END_HEADERS | END_STREAM, 1, ok_trailers)
            + frame(HEADERS, END_HEADERS | END_STREAM, 3, bad_trailers)
        )
        conn.data_received(wire[:7])
        conn.data_received(wire[7:])
        assert await ok == b"resp"
        with pytest.raises(GrpcStatusError, match="code = InvalidArgument desc = no key"):
            await bad

        seen: list[bytes] = []

        def consumer(m: bytes) -> None:
            if m == b"poison":
                raise ValueError("bad message")
            seen.append(m)

        good = conn.open_stream(request_header_block("h:1", "/w"), seen.append)
        failing = conn.open_stream(request_header_block("h:1", "/w"), consumer)
        conn.data_received(frame(DATA, 0, good.sid, _msg(b"a") + _msg(b"b")[:3]))
        conn.data_received(
            frame(DATA, 0, good.sid, _msg(b"b")[3:]) + frame(DATA, 0, failing.sid, _msg(b"poison"))
        )
        assert seen == [b"a", b"b"]
        with pytest.raises(GrpcStatusError, match="stream consumer failed"):
            await failing.closed
        conn.data_received(frame(DATA, 0, good.sid, _msg(b"c")))  # the connection goes on
        assert seen == [b"a", b"b", b"c"]
        conn.data_received(frame(GOAWAY, 0, 0, (0).to_bytes(4, "big") + (0).to_bytes(4, "big")))
        with pytest.raises(GrpcStatusError, match="GOAWAY"):
            await good.closed
        with pytest.raises(GrpcStatusError, match="GOAWAY"):
            await conn.call(request_header_block("h:1", "/x"), b"late")

    asyncio.run(scenario())
