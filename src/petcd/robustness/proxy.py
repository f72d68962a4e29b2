"""A fault-injecting TCP proxy in front of each member's peer listener.

Why a proxy (and not network namespaces): it needs no root, no kernel modules and no cleanup of
global state when a run dies, and it works the same for petcd and for the reference etcd. Every
member listens for peers on a private port and *advertises* its proxy's address, so every raft
message to member X crosses X's proxy.

A partition must cut a *pair* of members in both directions, but X's proxy only sees connections
arriving at X. It tells who is at the other end from the connection's first bytes: petcd's peer
handshake (HELLO: magic, cluster, from, to, purpose) names the dialer; etcd's rafthttp requests carry
an ``X-Server-From`` header (stream GETs, where the dialer *receives* messages, and pipeline and
snapshot POSTs, where it sends them). Either way the connection is between X and that member, so
cutting the pair {X, Y} means: X's proxy refuses connections from Y and Y's proxy from X, and both
drop the ones already open. A connection whose peer cannot be told (etcd's prober) is cut when X is
cut from anyone.

Delay: each chunk is held for `delay_s` (plus jitter) before it is forwarded, per direction, in
order (a slow link, not a reordering one).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

_PETCD_MAGIC = b"PETCD1"
_PETCD_HELLO = struct.Struct(">IB6sQQQB")  # frame header (length, kind) + HELLO payload
_ETCD_FROM = re.compile(rb"\r\nX-Server-From: *([0-9a-fA-F]+)\r\n", re.IGNORECASE)
_PEEK_BYTES_MAX = 8192
_UNKNOWN = -1


@dataclass(slots=True)
class LinkRules:
    """Shared by all proxies: which member pairs are cut, which members' links are slow."""

    cut: set[frozenset[int]] = field(default_factory=set)  # pairs of member IDs
    delay_s: dict[int, float] = field(default_factory=dict)  # member ID -> added latency
    jitter_s: float = 0.0

    def is_cut(self, a: int, b: int) -> bool:
        if b == _UNKNOWN:
            return any(a in pair for pair in self.cut)
        return frozenset((a, b)) in self.cut

    def delay(self, a: int, b: int, rand: random.Random) -> float:
        d = max(self.delay_s.get(a, 0.0), self.delay_s.get(b, 0.0))
        return d + (rand.random() * self.jitter_s if d else 0.0)


def sender_of(head: bytes) -> int | None:
    """The member at the other end, from a connection's first bytes; None: need more bytes;
    _UNKNOWN: cannot be told."""
    tail = head[5:11]
    if _PETCD_MAGIC.startswith(tail) and len(head) > 5:
        if len(head) < _PETCD_HELLO.size:
            return None
        _, _, _, _, from_id, _, _ = _PETCD_HELLO.unpack_from(head)
        return int(from_id)
    m = _ETCD_FROM.search(head)
    if m:
        return int(m.group(1), 16)
    if b"\r\n\r\n" in head or len(head) >= _PEEK_BYTES_MAX:
        return _UNKNOWN
    return None


class PeerProxy:
    """Listens on `listen_port`, forwards to `target_port`, obeying `rules` for member `owner`."""

    def __init__(self, listen_port: int, target_port: int, rules: LinkRules, seed: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.rules = rules
        self.owner = 0  # the member ID behind this proxy (set once known)
        self._rand = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._conns: set[tuple[asyncio.StreamWriter, int]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w, _ in list(self._conns):
            w.close()
        self._conns.clear()

    def enforce(self) -> None:
        """Drop open connections that the rules now cut (called on the loop after a change)."""
        for w, peer in list(self._conns):
            if self.rules.is_cut(self.owner, peer):
                w.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b""
        peer: int | None = None
        try:
            while peer is None:
                chunk = await asyncio.wait_for(reader.read(_PEEK_BYTES_MAX), 10.0)
                if not chunk:
                    writer.close()
                    return
                head += chunk
                peer = sender_of(head)
            if self.rules.is_cut(self.owner, peer):
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except (OSError, TimeoutError):
            writer.close()
            return
        self._conns.add((writer, peer))
        self._conns.add((up_writer, peer))
        try:
            up_writer.write(head)
            await asyncio.gather(
                self._pipe(reader, up_writer, peer),
                self._pipe(up_reader, writer, peer),
            )
        finally:
            self._conns.discard((writer, peer))
            self._conns.discard((up_writer, peer))
            for w in (writer, up_writer):
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: int) -> None:
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk or self.rules.is_cut(self.owner, peer):
                    break
                d = self.rules.delay(self.owner, peer, self._rand)
                if d:
                    await asyncio.sleep(d)
                writer.write(chunk)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


class ProxyLoop:
    """An event loop on its own thread that runs every proxy of a cluster."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="peer-proxies", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], object]) -> None:
        async def run() -> None:
            result = fn()
            if asyncio.iscoroutine(result):
                await result

        asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
