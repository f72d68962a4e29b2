"""A small HTTP/2 client for unary gRPC calls: the load generator's fast path.

grpcio's Python client spends 100-150 us of CPU on every unary call, as much as the server it
measures, so two processes of it cannot load a server that answers 15-20k requests/s on the same
two cores. Unary gRPC over HTTP/2 is simple enough to speak directly on an asyncio Protocol:

* a call is a HEADERS frame (a header block encoded once per method, every field "never
  indexed", so the server's decoder state never depends on ours) and DATA frames (the 5-byte gRPC
  prefix and the message), ``END_STREAM`` on the last; frames written in one event-loop turn leave
  in one ``write``;
* the answer is HEADERS, DATA, and trailing HEADERS with ``grpc-status``/``grpc-message`` (or only
  trailing HEADERS for an error). HPACK (RFC 7541) is the ``hpack`` package's; a block whose
  decoding left the dynamic table unchanged is cached by its bytes and the table's generation: a
  server repeats the same few blocks, so decoding is a dict lookup once its table has settled;
* flow control: we announce a 2^31-1 stream window and open the connection window as wide, topping
  it up as data arrives, so the server never waits for us; our own sends respect the server's
  connection window and MAX_CONCURRENT_STREAMS (calls wait in a queue) and messages are split by
  its MAX_FRAME_SIZE; a message larger than the server's initial stream window is refused (use
  ``--transport grpc`` for those);
* SETTINGS are acknowledged, PINGs answered, RST_STREAM fails its call, GOAWAY fails every call
  still open and the connection refuses new ones.

Cleartext only (h2c with prior knowledge, as gRPC does); TLS endpoints use grpcio. Calls return the
response message's bytes or raise ``GrpcStatusError`` carrying the status code and message.
"""

from __future__ import annotations

import asyncio
import collections
import struct
from collections.abc import Callable
from urllib.parse import unquote

import hpack

from petcd.client.rpctypes import grpc_error_text

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    range(10)
)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS = 0x1, 0x3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x4, 0x5
MAX_WINDOW = (1 << 31) - 1
DEFAULT_WINDOW = 65535
WINDOW_TOP_UP = 1 << 24  # give the connection window back once this much has arrived
HPACK_CACHE_MAX = 256

UNAVAILABLE, INTERNAL = 14, 13

_U32 = struct.Struct(">I")


class GrpcStatusError(Exception):
    """A call that ended with a non-OK gRPC status (or whose connection failed)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(grpc_error_text(code, message))


# -- HPACK (the hpack package) ------------------------------------------------------------------


class HpackDecoder:
    """RFC 7541 decoding by ``hpack``; a block that leaves the dynamic table alone is cached.

    A server sends the same few header blocks over and over, so once its table has settled a block's
    headers are a dict lookup. A cached block is valid only while the table is as it was when the
    block was decoded: ``generation`` counts the table's changes.
    """

    def __init__(self) -> None:
        self._decoder = hpack.Decoder()
        self.generation = 0
        self._cache: dict[bytes, tuple[int, list[tuple[bytes, bytes]]]] = {}

    @property
    def dynamic(self) -> collections.deque[tuple[bytes, bytes]]:
        """The dynamic table, newest entry first."""
        entries: collections.deque[tuple[bytes, bytes]] = self._decoder.header_table.dynamic_entries
        return entries

    def _table_state(self) -> tuple[int, object, int]:
        # An insertion always puts a new object first; a size update changes maxsize. Holding the
        # first entry keeps its identity from being reused.
        table = self._decoder.header_table
        entries = table.dynamic_entries
        return len(entries), entries[0] if entries else None, table.maxsize

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        hit = self._cache.get(block)
        if hit is not None and hit[0] == self.generation:
            return hit[1]
        before = self._table_state()
        headers = [(bytes(n), bytes(v)) for n, v in self._decoder.decode(block, raw=True)]
        after = self._table_state()
        if after[0] == before[0] and after[1] is before[1] and after[2] == before[2]:
            if len(self._cache) >= HPACK_CACHE_MAX:
                self._cache.clear()
            self._cache[block] = (self.generation, headers)
        else:
            self.generation += 1
        return headers


def request_header_block(authority: str, path: str, metadata: tuple[tuple[str, str], ...] = ()) -> bytes:
    """The HPACK block of a gRPC request, encoded once per method.

    Every field is "never indexed", so the server's decoder table never depends on our blocks and
    the same bytes can be sent on every call.
    """
    fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *metadata,
    ]
    block: bytes = hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in fields])
    return block


def frame(ftype: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return _U32.pack(len(payload) << 8 | ftype) + bytes([flags]) + _U32.pack(stream_id) + payload


# -- the connection -----------------------------------------------------------------------------


class _Stream:
    """A unary call in flight: the response message is collected, then resolves the future."""

    __slots__ = ("data", "future")

    def __init__(self, future: asyncio.Future[bytes]) -> None:
        self.future = future
        self.data = bytearray()

    def deliver(self, payload: bytes) -> None:
        self.data += payload

    def end(self, status: int, message: str) -> None:
        if self.future.done():
            return
        if status == 0:
            data = self.data
            if len(data) < 5 or data[0] != 0:
                self.future.set_exception(
                    GrpcStatusError(INTERNAL, "malformed or compressed response message")
                )
            else:
                self.future.set_result(bytes(data[5:]))
        else:
            self.future.set_exception(GrpcStatusError(status, message))

    def fail(self, err: GrpcStatusError) -> None:
        if not self.future.done():
            self.future.set_exception(err)


class BidiStream:
    """A streaming call: ``send`` messages; each response message goes to ``on_message`` as it
    arrives (called from the protocol, no task per message); ``closed`` resolves at the end."""

    __slots__ = ("_buf", "closed", "conn", "on_message", "sid")

    def __init__(self, conn: Connection, sid: int, on_message: Callable[[bytes], None]) -> None:
        self.conn = conn
        self.sid = sid
        self.on_message = on_message
        self.closed: asyncio.Future[None] = conn.loop.create_future()
        self._buf = bytearray()

    def send(self, message: bytes) -> None:
        self.conn.send_data(self.sid, b"\x00" + _U32.pack(len(message)) + message, end=False)

    def cancel(self) -> None:
        """Reset the stream (CANCEL), as a client does when it stops watching."""
        self.conn.reset(self.sid)
        self.fail(GrpcStatusError(1, "context canceled"))

    def deliver(self, payload: bytes) -> None:
        buf = self._buf
        buf += payload
        pos = 0
        while len(buf) - pos >= 5:
            n = _U32.unpack_from(buf, pos + 1)[0]
            if len(buf) - pos - 5 < n:
                break
            message = bytes(buf[pos + 5 : pos + 5 + n])
            pos += 5 + n
            try:
                self.on_message(message)
            except Exception as err:  # the consumer's failure ends its stream, not the connection
                self.conn.reset(self.sid)
                self.fail(GrpcStatusError(INTERNAL, f"stream consumer failed: {err!r}"))
                buf.clear()
                return
        del buf[:pos]

    def end(self, status: int, message: str) -> None:
        if status == 0:
            if not self.closed.done():
                self.closed.set_result(None)
        else:
            self.fail(GrpcStatusError(status, message))

    def fail(self, err: GrpcStatusError) -> None:
        if not self.closed.done():
            self.closed.set_exception(err)
            self.closed.exception()  # the failure is read by whoever awaits it, or by nobody


class Connection(asyncio.Protocol):
    """One HTTP/2 connection carrying concurrent gRPC calls (unary, and streams)."""

    def __init__(self, authority: str) -> None:
        self.authority = authority
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = self.loop.create_future()  # the server's first SETTINGS
        self.closed_error: GrpcStatusError | None = None
        self.decoder = HpackDecoder()
        self._streams: dict[int, _Stream | BidiStream] = {}
        self._next_id = 1
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._waiting: collections.deque[tuple[bytes, bytes, asyncio.Future[bytes]]] = collections.deque()
        self._send_window = DEFAULT_WINDOW  # the server's connection window for our DATA
        self._stream_window = DEFAULT_WINDOW  # the server's initial window per stream
        self._max_frame = 16384
        self._max_streams = 1 << 31
        self._unacked = 0  # bytes received since the last connection WINDOW_UPDATE
        self._continuing: int | None = None  # stream whose header block continues
        self._block = bytearray()  # the header block being received
        self._block_ends_stream = False

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        settings = struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW)
        transport.write(
            PREFACE
            + frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, _U32.pack(MAX_WINDOW - DEFAULT_WINDOW))
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(GrpcStatusError(UNAVAILABLE, f"connection closed: {exc or 'EOF'}"))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos, n = 0, len(buf)
        try:
            while n - pos >= 9:
                head = _U32.unpack_from(buf, pos)[0]
                length = head >> 8
                end = pos + 9 + length
                if end > n:
                    break
                self._frame(
                    head & 0xFF,
                    buf[pos + 4],
                    _U32.unpack_from(buf, pos + 5)[0] & MAX_WINDOW,
                    bytes(buf[pos + 9 : end]),
                )
                pos = end
        except (ValueError, IndexError) as err:
            self._fail_all(GrpcStatusError(INTERNAL, f"HTTP/2 protocol error: {err}"))
            if self.transport is not None:
                self.transport.close()
            return
        del buf[:pos]

    # -- calls --

    def call(self, block: bytes, message: bytes) -> asyncio.Future[bytes]:
        """Send one unary call (``block`` from ``request_header_block``); a future of the response."""
        fut: asyncio.Future[bytes] = self.loop.create_future()
        if self.closed_error is not None:
            fut.set_exception(self.closed_error)
        elif len(message) + 5 > self._stream_window:
            fut.set_exception(GrpcStatusError(INTERNAL, "message larger than the server's stream window"))
        elif self._waiting or len(self._streams) >= self._max_streams or len(message) + 5 > self._send_window:
            self._waiting.append((block, message, fut))
        else:
            self._start(block, message, fut)
        return fut

    def _start(self, block: bytes, message: bytes, fut: asyncio.Future[bytes]) -> None:
        sid = self._next_id
        self._next_id += 2
        self._streams[sid] = _Stream(fut)
        body = b"\x00" + _U32.pack(len(message)) + message
        self._send_window -= len(body)
        out = self._out
        out.append(frame(HEADERS, END_HEADERS, sid, block))
        m = self._max_frame
        for off in range(0, len(body), m):
            chunk = body[off : off + m]
            out.append(frame(DATA, END_STREAM if off + m >= len(body) else 0, sid, chunk))
        self._schedule_flush()

    def open_stream(self, block: bytes, on_message: Callable[[bytes], None]) -> BidiStream:
        """Start a streaming call (headers only; ``send`` its messages)."""
        if self.closed_error is not None:
            raise self.closed_error
        sid = self._next_id
        self._next_id += 2
        stream = BidiStream(self, sid, on_message)
        self._streams[sid] = stream
        self._out.append(frame(HEADERS, END_HEADERS, sid, block))
        self._schedule_flush()
        return stream

    def reset(self, sid: int) -> None:
        if self._streams.pop(sid, None) is not None:
            self._out.append(frame(RST_STREAM, 0, sid, _U32.pack(0x8)))  # CANCEL
            self._schedule_flush()

    def send_data(self, sid: int, body: bytes, end: bool) -> None:
        # streams send little (watch creates, keep-alives): the connection window is only counted
        self._send_window -= len(body)
        m = self._max_frame
        for off in range(0, len(body), m):
            last = off + m >= len(body)
            self._out.append(frame(DATA, END_STREAM if end and last else 0, sid, body[off : off + m]))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def _pump(self) -> None:
        while self._waiting and len(self._streams) < self._max_streams:
            block, message, fut = self._waiting[0]
            if len(message) + 5 > self._send_window:
                return
            self._waiting.popleft()
            if not fut.done():
                self._start(block, message, fut)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- frames --

    def _frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if self._continuing is not None and ftype != CONTINUATION:
            raise ValueError("expected CONTINUATION")
        if ftype == DATA:
            self._data(flags, sid, payload)
        elif ftype in (HEADERS, CONTINUATION):
            self._headers(ftype, flags, sid, payload)
        elif ftype == SETTINGS:
            if not flags & ACK:
                self._settings(payload)
        elif ftype == WINDOW_UPDATE:
            if sid == 0:
                self._send_window += _U32.unpack_from(payload)[0] & MAX_WINDOW
                self._pump()
        elif ftype == PING:
            if not flags & ACK:
                self._out.append(frame(PING, ACK, 0, payload))
                self._schedule_flush()
        elif ftype == RST_STREAM:
            st = self._streams.pop(sid, None)
            if st is not None:
                code = _U32.unpack_from(payload)[0]
                st.fail(GrpcStatusError(INTERNAL, f"stream reset by the server (code {code})"))
            self._pump()
        elif ftype == GOAWAY:
            last, code = struct.unpack_from(">II", payload)
            debug = payload[8:].decode(errors="replace")
            self._go_away(last & MAX_WINDOW, GrpcStatusError(UNAVAILABLE, f"GOAWAY ({code}) {debug}".strip()))
        # PRIORITY, PUSH_PROMISE (disabled by gRPC servers) and unknown frames are ignored

    def _settings(self, payload: bytes) -> None:
        for off in range(0, len(payload) - 5, 6):
            ident, value = struct.unpack_from(">HI", payload, off)
            if ident == SETTINGS_MAX_CONCURRENT_STREAMS:
                self._max_streams = value
            elif ident == SETTINGS_INITIAL_WINDOW_SIZE:
                self._stream_window = value
            elif ident == SETTINGS_MAX_FRAME_SIZE:
                self._max_frame = value
        self._out.append(frame(SETTINGS, ACK, 0, b""))
        self._schedule_flush()
        if not self.ready.done():
            self.ready.set_result(None)
        self._pump()

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        self._unacked += len(payload)
        if self._unacked >= WINDOW_TOP_UP:
            self._out.append(frame(WINDOW_UPDATE, 0, 0, _U32.pack(self._unacked)))
            self._unacked = 0
            self._schedule_flush()
        st = self._streams.get(sid)
        if st is None:
            return
        if flags & PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        st.deliver(payload)
        if flags & END_STREAM:
            self._finish(sid, [])

    def _headers(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if ftype == HEADERS and flags & (END_HEADERS | PADDED | PRIORITY_FLAG) == END_HEADERS:
            # the usual case: one whole header block in one frame
            headers = self.decoder.decode(payload)
            if flags & END_STREAM and sid in self._streams:
                self._finish(sid, headers)
            return
        if ftype == HEADERS:
            if flags & PADDED:
                payload = payload[1 : len(payload) - payload[0]]
            if flags & PRIORITY_FLAG:
                payload = payload[5:]
            self._block = bytearray(payload)
            self._block_ends_stream = bool(flags & END_STREAM)
        elif sid != self._continuing:
            raise ValueError("CONTINUATION on another stream")
        else:
            self._block += payload
        if not flags & END_HEADERS:
            self._continuing = sid
            return
        self._continuing = None
        headers = self.decoder.decode(bytes(self._block))  # every block: the dynamic table must follow
        if self._block_ends_stream and sid in self._streams:
            self._finish(sid, headers)

    def _finish(self, sid: int, trailers: list[tuple[bytes, bytes]]) -> None:
        st = self._streams.pop(sid)
        self._pump()
        status, message = -1, ""
        for k, v in trailers:
            if k == b"grpc-status":
                status = int(v)
            elif k == b"grpc-message":
                message = unquote(v.decode(errors="replace"))
        if status < 0:
            st.fail(GrpcStatusError(INTERNAL, "response ended without grpc-status"))
        else:
            st.end(status, message)

    def _go_away(self, last_id: int, err: GrpcStatusError) -> None:
        """No new calls; those above ``last_id`` were not processed and fail, the rest may finish."""
        self.closed_error = err
        for sid in [sid for sid in self._streams if sid > last_id]:
            self._streams.pop(sid).fail(err)
        while self._waiting:
            fut = self._waiting.popleft()[2]
            if not fut.done():
                fut.set_exception(err)

    def _fail_all(self, err: GrpcStatusError) -> None:
        self.closed_error = err
        streams, self._streams = self._streams, {}
        for st in streams.values():
            st.fail(err)
        while self._waiting:
            fut = self._waiting.popleft()[2]
            if not fut.done():
                fut.set_exception(err)
        if not self.ready.done():
            self.ready.set_exception(err)
            self.ready.exception()


async def connect(host: str, port: int, timeout_s: float) -> Connection:
    """Open a connection and wait for the server's SETTINGS."""
    loop = asyncio.get_running_loop()
    authority = f"{host}:{port}"
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: Connection(authority), host, port), timeout_s
    )
    await asyncio.wait_for(asyncio.shield(conn.ready), timeout_s)
    return conn


class UnaryCaller:
    """``await caller(message_bytes)`` -> response bytes, for one method on one connection."""

    __slots__ = ("block", "conn")

    def __init__(self, conn: Connection, block: bytes) -> None:
        self.conn = conn
        self.block = block

    def __call__(self, message: bytes) -> asyncio.Future[bytes]:
        return self.conn.call(self.block, message)
