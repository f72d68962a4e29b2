"""The front-ends' fast path to the Node: requests served by the node thread itself (ring C).

petcd.runtime.channel carries everything between a front-end process and the core over the core's
event loop. The requests that are one Node request each (put, delete_range, txn, compact, lease
grant and revoke, read_index: the hot path of writes and linearizable reads) take this second
socket instead, which bypasses the core's event loop:

    reader thread (one per front-end): reads a frame, posts ONE item to the node thread's inbox;
    node thread: starts every request of the frame (`NodeLoop.run_requests`); the Node resolves
      each one through a sink that appends the answer to the connection's pending list; after each
      round of Readies (`NodeLoop.every_ready`) the pending answers go to the writer as one batch;
    writer thread: pickles the batch and writes it as one frame.

So a request costs the core no asyncio future, task, callback or thread hand-off of its own: the
node thread does the Node's work and two list appends. Frames are petcd.runtime.channel's (a 4-byte
length and a pickled list), and messages carry protobuf messages as their serialized bytes (the
classes are `FAST_TYPES`'): `(call_id, method, request_bytes)` one way, `("ok", call_id,
response_bytes | read_index)` or `("err", call_id, EtcdError)` the other. There is no deadline here
beyond the Node's own: every request the Node takes is resolved by its deadline, and a connection
that closes fails its front-end's waiting calls.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import pickle
import queue
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from petcd.runtime.channel import DIRECT, FAST_TYPES, RemoteBug, as_error
from petcd.runtime.node_loop import NodeLoop
from petcd.runtime.transport import read_exact
from petcd.server.node import Node
from petcd.server.responses import ReadIndexResult

log = logging.getLogger("petcd.runtime.fast_channel")

_LEN = struct.Struct(">I")


def _refused(method: str) -> Callable[[Node], int]:
    def fail(_n: Node) -> int:
        raise RemoteBug(f"not a fast-path method: {method}")

    return fail


def _request(method: str, payload: bytes) -> Callable[[Node], int]:
    """The Node call for one fast-path message (parsed here, on the reader thread)."""
    make = DIRECT.get(method)
    if make is None:
        return _refused(method)
    req_type = FAST_TYPES[method][0]
    return make() if req_type is None else make(req_type.FromString(payload))


def _wire(answer: tuple[str, int, Any]) -> tuple[str, int, Any]:
    kind, cid, result = answer
    if isinstance(result, Message):
        return kind, cid, result.SerializeToString()
    return answer


class FastChannelServer:
    """Accepts front-ends' fast-path connections; serves them on the node thread."""

    def __init__(self, loop: NodeLoop, path: str) -> None:
        self.loop = loop
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(64)
        self._lock = threading.Lock()
        self._conns: list[_FastConn] = []
        self._closed = False
        loop.every_ready(self._flush_all)
        self._accepter = threading.Thread(target=self._accept_loop, name="fast-channel", daemon=True)
        self._accepter.start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            conn = _FastConn(self, sock)
            with self._lock:
                self._conns.append(conn)
            conn.start()

    def _flush_all(self, _node: Node) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.flush()

    def _forget(self, conn: _FastConn) -> None:
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()
        self._accepter.join(5)


class _FastConn:
    def __init__(self, server: FastChannelServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        # Answers collected on the node thread since the last flush (owned by the node thread).
        self.pending: list[tuple[str, int, Any]] = []
        self._out: queue.SimpleQueue[list[tuple[str, int, Any]] | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read_loop, name="fast-channel-rx", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="fast-channel-tx", daemon=True)
        self._closed = False

    def start(self) -> None:
        self._reader.start()
        self._writer.start()

    def _read_loop(self) -> None:
        loop = self.server.loop
        try:
            while True:
                (n,) = _LEN.unpack(read_exact(self.sock, _LEN.size))
                msgs = pickle.loads(read_exact(self.sock, n))  # our own process (channel module doc)
                calls: list[tuple[Callable[[Node], int], Callable[[object], None]]] = []
                for cid, method, payload in msgs:
                    calls.append((_request(method, payload), functools.partial(self._answer, cid)))
                loop.post(functools.partial(loop.run_requests, calls=calls))
        except (ConnectionError, OSError, EOFError):
            pass
        finally:
            self.close()

    def _answer(self, cid: int, result: object) -> None:
        # node thread
        if isinstance(result, BaseException):
            self.pending.append(("err", cid, as_error(result)))
        elif isinstance(result, ReadIndexResult):
            self.pending.append(("ok", cid, result.index))
        else:
            self.pending.append(("ok", cid, result))

    def flush(self) -> None:
        # node thread, after each round of Readies
        if self.pending:
            batch, self.pending = self.pending, []
            self._out.put(batch)

    def _write_loop(self) -> None:
        try:
            while (batch := self._out.get()) is not None:
                body = pickle.dumps([_wire(a) for a in batch], protocol=pickle.HIGHEST_PROTOCOL)
                self.sock.sendall(_LEN.pack(len(body)) + body)
        except OSError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.server._forget(self)
        self._out.put(None)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
