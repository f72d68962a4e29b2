"""The peer transport: raft messages and snapshots between members, over TCP (ring C).

Wire format (petcd's own; it need not match Go etcd's rafthttp): every frame is
    length: u32 big-endian (of what follows) | kind: u8 | payload
A connection starts with a handshake. The dialer sends HELLO(cluster_id, from, to, purpose); the
listener checks that the cluster ID is its own, that `to` is itself and that `from` is not a
removed member, and answers OK or REJECT(reason) (then closes). After OK:
* purpose STREAM: the dialer sends MSG frames (one raft message each, petcd.codec.raft), forever,
  and a PING frame every second that the listener echoes as PONG (the peer round-trip metric);
* purpose SNAPSHOT: the dialer sends SNAP_BEGIN (the MsgSnap), SNAP_CHUNK frames (the backend
  stream), SNAP_END; the listener hands message and chunks to the node and answers SNAP_ACK;
* purpose MEMBERS: the listener answers MEMBERS(json) with its cluster ID and member list (a
  member joining with --initial-cluster-state existing learns the cluster this way); no cluster
  check for this purpose, since the joiner does not know the cluster ID yet.

Threads. `send()` is called by the node thread and never blocks: it only queues the message
objects. Each peer has a bounded queue (etcd's stream buffer, 4096 messages) drained by that peer's
sender thread, which keeps one persistent connection and reconnects with backoff (50 ms doubling to
1 s) when the connection breaks. A full queue drops the message and reports the peer unreachable;
so does a broken connection (etcd's ReportUnreachable), which makes raft probe the peer again
instead of streaming into the void. Each snapshot goes over its own connection on its own thread,
so a large db never delays heartbeats; its outcome is reported with `on_snapshot_status(to, ok)`.

Batching, because in Python the per-message costs (encoding, a syscall, a thread hand-off, a raft
step) are what a replicated write pays most for, far more than bytes. The sender takes everything
waiting in its queue at once, passes it through `petcd.raft.coalesce` (continuing appends merge
into one MsgApp, a run of acknowledgements keeps only the last: under load this turns a dozen
messages per Ready into one or two), encodes the result and writes it with one `sendall`. Encoding
happens there and not in `send()`, so the node thread goes on to its fsync meanwhile, and messages
that wait because the link is busy still merge. The reader of an inbound connection receives
whatever has arrived (up to `RECV_BYTES`) with one `recv`, decodes every complete frame in it and
hands the whole burst over in ONE call, `on_messages` (or `on_message` per message when the
runtime does not take batches), so the node thread is woken once per burst, not per message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

from petcd.codec.raft import decode_message, encode_message
from petcd.raft.coalesce import coalesce
from petcd.raft.types import Message

log = logging.getLogger("petcd.runtime.transport")

HELLO, OK, REJECT, MSG, SNAP_BEGIN, SNAP_CHUNK, SNAP_END, SNAP_ACK, MEMBERS, PING, PONG = range(1, 12)
PROBE_INTERVAL_S = 1.0
_PING = struct.Struct(">d")
PURPOSE_STREAM, PURPOSE_SNAPSHOT, PURPOSE_MEMBERS = 1, 2, 3
MAGIC = b"PETCD1"
REMOVED_REASON = "rejected stream from remote peer because it was removed"
_HEADER = struct.Struct(">IB")
_HELLO = struct.Struct(">6sQQQB")
QUEUE_MESSAGES_MAX = 4096
# How many queued messages one write takes at most (the rest go in the next one).
SEND_BATCH_MAX = 1024
# One recv's worth: a burst of frames is read (and handed to the node) at once.
RECV_BYTES = 256 * 1024
FRAME_BYTES_MAX = 64 * 1024 * 1024
SNAPSHOT_CHUNK_BYTES = 1 << 20
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 1.0
DIAL_TIMEOUT_S = 1.0
WRITE_TIMEOUT_S = 5.0


class HandshakeRejected(Exception):
    """The remote member refused the connection (cluster ID mismatch, wrong member, removed)."""


class FrameError(Exception):
    """The peer sent a malformed or oversized frame."""


def read_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly n bytes from a blocking socket (ConnectionError when it closes first)."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    length, kind = _HEADER.unpack(read_exact(sock, _HEADER.size))
    if length < 1 or length - 1 > FRAME_BYTES_MAX:
        raise FrameError(f"frame of {length} bytes")
    return kind, read_exact(sock, length - 1)


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(len(payload) + 1, kind) + payload


def encode_frames(messages: Sequence[Message]) -> bytes:
    """MSG frames for `messages`, in order, as one buffer (one copy of each payload)."""
    parts: list[bytes] = []
    header = _HEADER.pack
    for m in messages:
        payload = encode_message(m)
        parts.append(header(len(payload) + 1, MSG))
        parts.append(payload)
    return b"".join(parts)


class FrameReader:
    """Frames out of a byte stream that arrives in arbitrary pieces: `feed(data)` appends what a
    recv returned, `frames()` takes every complete frame buffered so far."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def frames(self) -> list[tuple[int, bytes]]:
        buf = self._buf
        out: list[tuple[int, bytes]] = []
        pos = 0
        end_buf = len(buf)
        unpack = _HEADER.unpack_from
        while end_buf - pos >= _HEADER.size:
            length, kind = unpack(buf, pos)
            if length < 1 or length - 1 > FRAME_BYTES_MAX:
                raise FrameError(f"frame of {length} bytes")
            end = pos + 4 + length
            if end > end_buf:
                break
            out.append((kind, bytes(buf[pos + _HEADER.size : end])))
            pos = end
        if pos:
            del buf[:pos]
        return out


def url_address(url: str) -> tuple[str, int]:
    u = urlsplit(url)
    return (u.hostname or "localhost"), (u.port if u.port is not None else 2380)


@dataclass(frozen=True, slots=True)
class TransportCallbacks:
    """How the transport reaches the node (each is called from a transport thread)."""

    on_message: Callable[[Message], None]
    on_snapshot: Callable[[Message, Iterable[bytes]], None]
    on_unreachable: Callable[[int], None]
    on_snapshot_status: Callable[[int, bool], None]
    # Every message of one read burst, in order, in one call (one hand-off to the node thread);
    # when None, `on_message` is called for each.
    on_messages: Callable[[Sequence[Message]], None] | None = None
    # Members removed from the cluster may not connect (etcd: "rejected stream from remote peer
    # because it was removed").
    is_removed: Callable[[int], bool] = lambda _id: False
    # The answer to a MEMBERS request: {"cluster_id": int, "members": [...]} (JSON-able).
    members_info: Callable[[], object] = lambda: {}
    # A peer refused us because this member was removed from the cluster (etcd: the member then
    # stops, "the member has been permanently removed from the cluster").
    on_removed: Callable[[], None] = lambda: None
    # Seconds of one probe's round trip to a peer (etcd_network_peer_round_trip_time_seconds).
    on_round_trip: Callable[[int, float], None] = lambda _id, _s: None


def dial(url: str, cluster_id: int, from_id: int, to_id: int, purpose: int) -> socket.socket:
    """Connect to a peer URL and complete the handshake; raises OSError or HandshakeRejected."""
    sock = socket.create_connection(url_address(url), timeout=DIAL_TIMEOUT_S)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(frame(HELLO, _HELLO.pack(MAGIC, cluster_id, from_id, to_id, purpose)))
        kind, payload = read_frame(sock)
        if kind == REJECT:
            raise HandshakeRejected(payload.decode("utf-8", "replace"))
        if kind != OK:
            raise FrameError(f"unexpected frame {kind} in handshake")
        sock.settimeout(WRITE_TIMEOUT_S)
        return sock
    except BaseException:
        sock.close()
        raise


def fetch_members(urls: Sequence[str], from_id: int = 0, timeout_s: float = 5.0) -> object:
    """Ask the first reachable peer for its cluster ID and members (a member joining a cluster)."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        for url in urls:
            try:
                sock = dial(url, 0, from_id, 0, PURPOSE_MEMBERS)
            except (OSError, HandshakeRejected, FrameError) as e:
                last = e
                continue
            try:
                kind, payload = read_frame(sock)
                if kind == MEMBERS:
                    return json.loads(payload)
            except (OSError, FrameError, ValueError) as e:
                last = e
            finally:
                sock.close()
        time.sleep(0.1)
    raise ConnectionError(f"could not retrieve cluster information from the given URLs: {last}")


class _Wake:
    """The queue item that only wakes a sender."""


_WAKE = _Wake()


class _Peer:
    """One remote member: a bounded queue and the sender thread keeping one connection to it."""

    def __init__(self, transport: Transport, member_id: int, urls: Sequence[str]) -> None:
        self.transport = transport
        self.member_id = member_id
        self.urls = list(urls)
        # Messages to send; None stops the sender, _WAKE only wakes it (the connection died).
        # A SimpleQueue (C) costs the node thread far less per message than queue.Queue; the
        # bound is checked in enqueue() (only the node thread adds messages).
        self.queue: queue.SimpleQueue[Message | _Wake | None] = queue.SimpleQueue()
        self.active = False  # a connection is up (for the "connected" count of strict reconfig)
        self.active_since = 0.0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"peer-{member_id:x}", daemon=True)
        self._sock: socket.socket | None = None
        self._url_index = 0

    def start(self) -> None:
        self._thread.start()

    def enqueue(self, m: Message) -> bool:
        if self.queue.qsize() >= QUEUE_MESSAGES_MAX:
            return False
        self.queue.put(m)
        return True

    def stop(self, wait: bool = True) -> None:
        """Stop the sender; `wait=False` on the node thread, which must never block on a dial."""
        self._stopped.set()
        self.queue.put(None)
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if wait:
            self._thread.join(timeout=2.0)

    def _connect(self) -> socket.socket:
        url = self.urls[self._url_index % len(self.urls)]
        self._url_index += 1
        t = self.transport
        return dial(url, t.cluster_id, t.member_id, self.member_id, PURPOSE_STREAM)

    def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self._stopped.is_set():
            try:
                sock = self._connect()
            except HandshakeRejected as e:
                self.transport.note_rejected(self.member_id, str(e))
                if str(e).startswith(REMOVED_REASON):
                    self.transport.callbacks.on_removed()
                self._drain_as_unreachable()
                self._stopped.wait(BACKOFF_MAX_S)
                continue
            except (OSError, FrameError):
                self._drain_as_unreachable()
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_MIN_S
            self._sock = sock
            self.active = True
            self.active_since = time.monotonic()
            self.transport.note_active(self.member_id, True)
            try:
                self._stream(sock)
            except (OSError, FrameError):
                pass
            finally:
                self.active = False
                self._sock = None
                sock.close()
                self.transport.note_active(self.member_id, False)
            if not self._stopped.is_set():
                self.transport.callbacks.on_unreachable(self.member_id)

    def _stream(self, sock: socket.socket) -> None:
        # A reader on the same socket notices the peer closing it even while nothing is sent.
        dead = threading.Event()
        watcher = threading.Thread(target=self._watch_close, args=(sock, dead), daemon=True)
        watcher.start()
        next_probe = time.monotonic()
        while not self._stopped.is_set():
            now = time.monotonic()
            if now >= next_probe:
                # etcd's prober: the round trip of a tiny frame the peer echoes on this connection
                next_probe = now + PROBE_INTERVAL_S
                sock.sendall(frame(PING, _PING.pack(time.perf_counter())))
            try:
                item = self.queue.get(timeout=max(0.0, next_probe - now))
            except queue.Empty:
                continue
            batch: list[Message] = []
            stop = False
            taken = 0
            while True:
                if item is None:
                    stop = True
                    break
                if isinstance(item, Message):
                    batch.append(item)
                taken += 1
                if taken >= SEND_BATCH_MAX:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            if dead.is_set() and not stop:
                raise ConnectionError("connection closed by peer")
            if batch:
                sock.sendall(encode_frames(coalesce(batch)))
            if stop:
                return

    def _watch_close(self, sock: socket.socket, dead: threading.Event) -> None:
        # The peer writes nothing but PONG frames on this connection.
        try:
            while True:
                try:
                    kind, payload = read_frame(sock)
                except TimeoutError:
                    continue
                if kind == PONG and len(payload) == _PING.size:
                    (sent,) = _PING.unpack(payload)
                    self.transport.callbacks.on_round_trip(self.member_id, time.perf_counter() - sent)
        except (OSError, FrameError):
            pass
        dead.set()
        # Wake the sender so it notices the dead socket without waiting for the next message.
        if not self._stopped.is_set():
            self.queue.put(_WAKE)

    def _drain_as_unreachable(self) -> None:
        dropped = False
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._stopped.set()
                return
            dropped = True
        if dropped:
            self.transport.callbacks.on_unreachable(self.member_id)


def _file_chunks(f: IO[bytes]) -> Iterator[bytes]:
    """The spooled db, read lazily by whoever installs it; the file goes when it is read out."""
    try:
        while chunk := f.read(SNAPSHOT_CHUNK_BYTES):
            yield chunk
    finally:
        f.close()


class Transport:
    """Peer connections of one member: listeners on its peer URLs, a sender per remote member."""

    def __init__(
        self,
        member_id: int,
        cluster_id: int,
        listen_urls: Sequence[str],
        callbacks: TransportCallbacks,
    ) -> None:
        self.member_id = member_id
        self.cluster_id = cluster_id
        self.listen_urls = list(listen_urls)
        self.callbacks = callbacks
        self._peers: dict[int, _Peer] = {}
        self._lock = threading.Lock()
        self._listeners: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._stopped = threading.Event()
        self.rejections: dict[int, str] = {}
        self.dropped = 0

    # --- lifecycle --------------------------------------------------------------------------

    def listen(self) -> list[tuple[str, int]]:
        """Bind every listen URL (raises OSError if one is taken); returns the bound addresses."""
        bound = []
        for url in self.listen_urls:
            host, port = url_address(url)
            sock = socket.create_server((host, port), reuse_port=False, backlog=128)
            self._listeners.append(sock)
            bound.append(sock.getsockname()[:2])
        return bound

    def start(self) -> None:
        for sock in self._listeners:
            t = threading.Thread(target=self._accept_loop, args=(sock,), name="peer-listener", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stopped.set()
        for sock in self._listeners:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._lock:
            peers = list(self._peers.values())
            self._peers.clear()
            conns = list(self._conns)
        for p in peers:
            p.stop()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(timeout=2.0)

    # --- peers ------------------------------------------------------------------------------

    def set_peers(self, peers: Mapping[int, Sequence[str]]) -> None:
        """The remote members and their peer URLs (self excluded); adds, updates and removes."""
        with self._lock:
            for mid in list(self._peers):
                if mid not in peers:
                    self._peers.pop(mid).stop(wait=False)
            for mid, urls in peers.items():
                if mid == self.member_id or not urls:
                    continue
                p = self._peers.get(mid)
                if p is None:
                    p = _Peer(self, mid, urls)
                    self._peers[mid] = p
                    p.start()
                else:
                    p.urls = list(urls)

    def active_since(self, member: int) -> float | None:
        p = self._peers.get(member)
        return p.active_since if p is not None and p.active else None

    def note_active(self, member: int, up: bool) -> None:
        if up:
            self.rejections.pop(member, None)
            log.info(
                "established TCP streaming connection with remote peer",
                extra={"fields": {"local-member-id": f"{self.member_id:x}", "remote-peer-id": f"{member:x}"}},
            )

    def note_rejected(self, member: int, reason: str) -> None:
        if self.rejections.get(member) != reason:
            self.rejections[member] = reason
            log.error(
                "request sent was ignored by remote peer",
                extra={
                    "fields": {
                        "local-member-id": f"{self.member_id:x}",
                        "remote-peer-id": f"{member:x}",
                        "error": reason,
                    }
                },
            )

    # --- sending (node thread; never blocks) ------------------------------------------------

    def send(self, messages: Sequence[Message]) -> None:
        peers = self._peers
        for m in messages:
            p = peers.get(m.to)
            if p is None:
                continue
            if not p.enqueue(m):
                self.dropped += 1
                self.callbacks.on_unreachable(m.to)

    def send_snapshot(self, message: Message, db: Iterable[bytes]) -> None:
        p = self._peers.get(message.to)
        if p is None:
            self.callbacks.on_snapshot_status(message.to, False)
            return
        urls = list(p.urls)
        t = threading.Thread(
            target=self._send_snapshot, args=(urls, message, db), name=f"snap-{message.to:x}", daemon=True
        )
        t.start()

    def _send_snapshot(self, urls: list[str], message: Message, db: Iterable[bytes]) -> None:
        ok = False
        try:
            sock = dial(urls[0], self.cluster_id, self.member_id, message.to, PURPOSE_SNAPSHOT)
            try:
                sock.settimeout(60.0)
                sock.sendall(frame(SNAP_BEGIN, encode_message(message)))
                for chunk in db:
                    for i in range(0, len(chunk), SNAPSHOT_CHUNK_BYTES):
                        sock.sendall(frame(SNAP_CHUNK, bytes(chunk[i : i + SNAPSHOT_CHUNK_BYTES])))
                sock.sendall(frame(SNAP_END))
                kind, _ = read_frame(sock)
                ok = kind == SNAP_ACK
            finally:
                sock.close()
        except (OSError, HandshakeRejected, FrameError) as e:
            log.warning(
                "failed to send database snapshot",
                extra={"fields": {"remote-peer-id": f"{message.to:x}", "error": str(e)}},
            )
        except Exception:  # the db stream itself failed: report, never kill the thread silently
            log.exception("failed to send database snapshot")
        self.callbacks.on_snapshot_status(message.to, ok)

    # --- receiving --------------------------------------------------------------------------

    def _accept_loop(self, lsock: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), name="peer-reader", daemon=True)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(DIAL_TIMEOUT_S * 5)
            hello = self._handshake(conn)
            if hello is None:
                return
            purpose, from_id = hello
            conn.settimeout(None)
            if purpose == PURPOSE_STREAM:
                self._read_stream(conn, from_id)
            elif purpose == PURPOSE_SNAPSHOT:
                self._read_snapshot(conn)
            elif purpose == PURPOSE_MEMBERS:
                conn.sendall(frame(MEMBERS, json.dumps(self.callbacks.members_info()).encode()))
        except (OSError, FrameError, ValueError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _handshake(self, conn: socket.socket) -> tuple[int, int] | None:
        kind, payload = read_frame(conn)
        if kind != HELLO or len(payload) != _HELLO.size:
            conn.sendall(frame(REJECT, b"bad handshake"))
            return None
        magic, cluster_id, from_id, to_id, purpose = _HELLO.unpack(payload)
        reason = ""
        if magic != MAGIC:
            reason = "incompatible peer protocol"
        elif purpose == PURPOSE_MEMBERS:
            reason = ""
        elif cluster_id != self.cluster_id:
            reason = f"cluster ID mismatch (local={self.cluster_id:x}, remote={cluster_id:x})"
        elif to_id != self.member_id:
            reason = f"member ID mismatch (local={self.member_id:x}, wanted={to_id:x})"
        elif self.callbacks.is_removed(from_id):
            reason = f"{REMOVED_REASON} ({from_id:x})"
        if reason:
            conn.sendall(frame(REJECT, reason.encode()))
            return None
        conn.sendall(frame(OK))
        return int(purpose), int(from_id)

    def _read_stream(self, conn: socket.socket, from_id: int) -> None:
        cb = self.callbacks
        reader = FrameReader()
        while not self._stopped.is_set():
            data = conn.recv(RECV_BYTES)
            if not data:
                raise ConnectionError("connection closed by peer")
            reader.feed(data)
            frames = reader.frames()
            if not frames:
                continue
            if cb.is_removed(from_id):
                return  # closing makes the removed member redial and be refused as removed
            burst: list[Message] = []
            for kind, payload in frames:
                if kind == MSG:
                    burst.append(decode_message(payload))
                elif kind == PING:
                    conn.sendall(frame(PONG, payload))
                else:
                    raise FrameError(f"unexpected frame {kind} on a message stream")
            if not burst:
                continue
            if cb.on_messages is not None:
                cb.on_messages(burst)
            else:
                for m in burst:
                    cb.on_message(m)

    def _read_snapshot(self, conn: socket.socket) -> None:
        kind, payload = read_frame(conn)
        if kind != SNAP_BEGIN:
            raise FrameError(f"unexpected frame {kind} before a snapshot")
        message = decode_message(payload)
        # The db goes to a temporary file, not memory: it may be as large as the backend quota.
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _file_chunks or on error
        try:
            while True:
                kind, payload = read_frame(conn)
                if kind == SNAP_END:
                    break
                if kind != SNAP_CHUNK:
                    raise FrameError(f"unexpected frame {kind} in a snapshot")
                spool.write(payload)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        self.callbacks.on_snapshot(message, _file_chunks(spool))
        conn.sendall(frame(SNAP_ACK))
