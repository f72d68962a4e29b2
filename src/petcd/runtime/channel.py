"""The local channel between a member's core and its front-end processes (ring C).

DESIGN.md, "Scaling past one core": with `--frontend-processes N` the member's core (raft, WAL,
apply, leases, peers) runs in the `etcd` process and N front-end processes serve the client port. A
front-end answers ranges and serves watches from its own read-only handle on the backend
(petcd.runtime.frontend_watch) and sends everything else here, over one unix stream socket per
front-end.

Wire format: frames of a 4-byte big-endian length and a pickled list of messages. Every message
queued during one event-loop iteration goes out in ONE frame (`FrameWriter`), so a burst of client
requests costs one write and one read per side, not one per request. Pickle is safe here because both
ends are this program and the socket lives in a private (0700) directory only this user can reach;
protobuf messages pickle as their serialized bytes.

Messages, front-end -> core:
    ("call", call_id, method, args)        a facade method (`RuntimeFacade.<method>(*args)`), or
                                           "read_index" (the read index, once the core applied it)
    ("ready", pid)                         the front-end listens on the client port
    ("report", families)                   its share of the member-wide metrics, every
                                           REPORT_INTERVAL_S (petcd.gateway.metrics); the core
                                           keeps the newest of each connection
    ("call", call_id, "metrics", (families,))
                                           a scrape of the front-end's /metrics: the core takes
                                           `families` as its newest report and answers with the
                                           member's exposition (`render_metrics`, bytes)
core -> front-end:
    ("ok", call_id, result) / ("err", call_id, EtcdError)
    ("state", FrontendState)               header fields, leader, learner, versions (on change)
    ("rev", revision)                      the backend's revision advanced (committed): wakes the
                                           front-end's watchers, which then read the backend
The "rev" notices are coalesced: the KVStore calls its revision listener once per applied batch
(never per event), and a notice still waiting for the event loop absorbs the next ones.
An exception that is not an EtcdError is a bug on the core: it crosses as `RemoteBug` (UNKNOWN to
the client). When either side closes the socket the other gives up: a front-end fails its waiting calls and
stops serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from petcd.errors import EtcdError
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.runtime.facade import RuntimeFacade
from petcd.server.node import Node
from petcd.server.responses import ReadIndexResult

log = logging.getLogger("petcd.runtime.channel")

_LEN = struct.Struct(">I")
STATE_POLL_S = 0.02

# The facade methods a front-end may call on the core (everything but local reads and watches).
FORWARDED = frozenset(
    {
        "range",
        "put",
        "delete_range",
        "txn",
        "compact",
        "lease_grant",
        "lease_revoke",
        "lease_keep_alive",
        "lease_time_to_live",
        "lease_leases",
        "member_add",
        "member_remove",
        "member_update",
        "member_list",
        "member_promote",
        "alarm",
        "status",
        "defragment",
        "hash",
        "hash_kv",
        "move_leader",
    }
)

# Calls that are one Node request each: answered from a callback on the Node's future, with no
# task per call (the hot path of writes and linearizable reads from front-ends).
DIRECT: dict[str, Callable[..., Callable[[Node], int]]] = {
    "put": lambda req: lambda n: n.put(req),
    "delete_range": lambda req: lambda n: n.delete_range(req),
    "txn": lambda req: lambda n: n.txn(req),
    "compact": lambda req: lambda n: n.compact(req),
    "lease_grant": lambda req: lambda n: n.lease_grant(req),
    "lease_revoke": lambda req: lambda n: n.lease_revoke(req),
    "read_index": lambda: lambda n: n.read_index(),
}

# The fast path's message types (petcd.runtime.fast_channel): request and response cross it as
# their serialized bytes, parsed with these classes (None: no argument / an int result). Pickling a
# protobuf message costs a Python-level __reduce__ and __setstate__ on every message; these are the
# C parser's and serializer's calls alone.
FAST_TYPES: dict[str, tuple[type[Message] | None, type[Message] | None]] = {
    "put": (pb.PutRequest, pb.PutResponse),
    "delete_range": (pb.DeleteRangeRequest, pb.DeleteRangeResponse),
    "txn": (pb.TxnRequest, pb.TxnResponse),
    "compact": (pb.CompactionRequest, pb.CompactionResponse),
    "lease_grant": (pb.LeaseGrantRequest, pb.LeaseGrantResponse),
    "lease_revoke": (pb.LeaseRevokeRequest, pb.LeaseRevokeResponse),
    "read_index": (None, None),
}
assert FAST_TYPES.keys() == DIRECT.keys()


class RemoteBug(Exception):
    """The core failed a forwarded call with something other than an EtcdError (a bug there)."""


class ChannelClosed(EtcdError):
    message = "etcdserver: server stopped"


@dataclass(frozen=True, slots=True)
class FrontendState:
    """What a front-end needs to fill headers and answer the interceptor checks."""

    cluster_id: int
    member_id: int
    raft_term: int
    leader_id: int
    is_learner: bool
    server_version: str
    cluster_version: str


async def read_frame(reader: asyncio.StreamReader) -> list[Any]:
    head = await reader.readexactly(_LEN.size)
    (n,) = _LEN.unpack(head)
    body = await reader.readexactly(n)
    msgs: list[Any] = pickle.loads(body)  # our own process at the other end (module doc)
    return msgs


class FrameWriter:
    """Queues messages; everything queued in one event-loop iteration is written as one frame."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending: list[Any] = []
        self._aloop = asyncio.get_running_loop()
        self.closed = False

    def send(self, msg: Any) -> None:
        if self.closed:
            return
        if not self._pending:
            self._aloop.call_soon(self._flush)
        self._pending.append(msg)

    def _flush(self) -> None:
        msgs, self._pending = self._pending, []
        if not msgs or self.closed:
            return
        body = pickle.dumps(msgs, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._writer.write(_LEN.pack(len(body)) + body)
        except (ConnectionError, RuntimeError):
            self.closed = True

    def close(self) -> None:
        self._flush()
        self.closed = True
        with contextlib.suppress(Exception):
            self._writer.close()


def as_error(e: BaseException) -> BaseException:
    """What crosses for a failed call: the EtcdError itself when it survives a pickle round trip
    (an error class whose constructor takes other arguments may not), else its message."""
    if isinstance(e, EtcdError):
        try:
            back = pickle.loads(pickle.dumps(e))
        except Exception:
            return EtcdError(str(e))
        return e if str(back) == str(e) else EtcdError(str(e))
    return RemoteBug(f"{type(e).__name__}: {e}")


# ================================================================================ core side


class CoreChannelServer:
    """On the core's event loop: serves front-end connections over the RuntimeFacade."""

    def __init__(self, facade: RuntimeFacade, state: Callable[[], FrontendState]) -> None:
        self.facade = facade
        self._state = state
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[_CoreConn] = set()
        self.ready: asyncio.Queue[int] = asyncio.Queue()
        self.disconnected: asyncio.Event = asyncio.Event()
        self._aloop: asyncio.AbstractEventLoop | None = None
        # The newest committed revision the node thread reported, and whether a notice is on its way.
        self._revision = 0
        self._revision_queued = False
        # The member's /metrics exposition, with the front-ends' reports merged (set by the member).
        self.render_metrics: Callable[[], bytes] | None = None

    def reports(self) -> list[Any]:
        """The newest metrics report of each connected front-end (petcd.gateway.metrics)."""
        return [c.report for c in self._conns if c.report is not None]

    async def listen(self, path: str) -> None:
        self._aloop = asyncio.get_running_loop()
        self.facade.node.kv.add_revision_listener(self._on_revision)
        self._server = await asyncio.start_unix_server(self._serve, path)

    def _on_revision(self, revision: int) -> None:
        # On the node thread, once per applied batch: hand the newest revision to the event loop.
        self._revision = revision
        if not self._revision_queued and self._aloop is not None:
            self._revision_queued = True
            with contextlib.suppress(RuntimeError):  # the event loop is closing
                self._aloop.call_soon_threadsafe(self._send_revision)

    def _send_revision(self) -> None:
        self._revision_queued = False
        for c in self._conns:
            c.out.send(("rev", self._revision))

    async def close(self) -> None:
        self.facade.node.kv.remove_revision_listener(self._on_revision)
        if self._server is not None:
            self._server.close()
        for c in list(self._conns):
            await c.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _CoreConn(self, writer)
        self._conns.add(conn)
        try:
            await conn.run(reader)
        finally:
            self._conns.discard(conn)
            await conn.close()
            self.disconnected.set()


class _CoreConn:
    def __init__(self, server: CoreChannelServer, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.facade = server.facade
        self.out = FrameWriter(writer)
        self.tasks: set[asyncio.Task[None]] = set()
        self._last_state: FrontendState | None = None
        self.report: Any = None  # the front-end's newest metrics report

    def _spawn(self, coro: Any) -> None:
        t: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def run(self, reader: asyncio.StreamReader) -> None:
        self._spawn(self._push_state())
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                for msg in await read_frame(reader):
                    self._dispatch(msg)

    def _dispatch(self, msg: Any) -> None:
        kind = msg[0]
        if kind == "call":
            _, cid, method, args = msg
            direct = DIRECT.get(method)
            if direct is not None:
                fut = self.facade.request_future(direct(*args))
                fut.add_done_callback(functools.partial(self._reply, cid))
            else:
                self._spawn(self._call(cid, method, args))
        elif kind == "ready":
            self.server.ready.put_nowait(int(msg[1]))
        elif kind == "report":
            self.report = msg[1]

    def _reply(self, cid: int, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            self.out.send(("err", cid, ChannelClosed()))
            return
        exc = fut.exception()
        if exc is not None:
            self.out.send(("err", cid, as_error(exc)))
            return
        result = fut.result()
        self.out.send(("ok", cid, result.index if isinstance(result, ReadIndexResult) else result))

    async def _call(self, cid: int, method: str, args: tuple[Any, ...]) -> None:
        try:
            if method in FORWARDED:
                result = await getattr(self.facade, method)(*args)
            elif method == "metrics" and self.server.render_metrics is not None:
                self.report = args[0]
                result = self.server.render_metrics()
            else:
                raise RemoteBug(f"no such method on the core: {method}")
        except BaseException as e:  # every failure goes back to the caller
            if isinstance(e, asyncio.CancelledError):
                raise
            self.out.send(("err", cid, as_error(e)))
            return
        self.out.send(("ok", cid, result))

    async def _push_state(self) -> None:
        while not self.out.closed:
            state = self.server._state()
            if state != self._last_state:
                self._last_state = state
                self.out.send(("state", state))
            await asyncio.sleep(STATE_POLL_S)

    async def close(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.out.close()


def runtime_state(facade: RuntimeFacade) -> Callable[[], FrontendState]:
    """The core's FrontendState, read from the Node (plain attribute reads, as `header()` does)."""

    def state() -> FrontendState:
        h = facade.header()
        server_version, cluster_version = facade.version_info()
        return FrontendState(
            cluster_id=h.cluster_id,
            member_id=h.member_id,
            raft_term=h.raft_term,
            leader_id=facade.leader_id(),
            is_learner=facade.is_learner(),
            server_version=server_version,
            cluster_version=cluster_version,
        )

    return state


# ================================================================================ front-end side


class CoreClient:
    """A front-end's connection to its core."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self.out = FrameWriter(writer)
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self.state: FrontendState | None = None
        # Called with each "rev" notice (the front-end's watch hub, petcd.runtime.frontend_watch).
        self.on_revision: Callable[[int], None] | None = None
        self._have_state = asyncio.Event()
        self.closed = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())
        self._fast_out: FrameWriter | None = None
        self._fast_task: asyncio.Future[None] | None = None

    @classmethod
    async def connect(cls, path: str, timeout_s: float = 30.0, fast_path: str | None = None) -> CoreClient:
        """Connect to the core's channel (and its fast path, petcd.runtime.fast_channel, when given)."""
        reader, writer = await _open_unix(path, timeout_s)
        client = cls(reader, writer)
        if fast_path is not None:
            fast_reader, fast_writer = await _open_unix(fast_path, timeout_s)
            client._fast_out = FrameWriter(fast_writer)
            client._fast_task = asyncio.ensure_future(client._run_fast(fast_reader))
        await asyncio.wait_for(client._have_state.wait(), timeout_s)
        return client

    async def _run_fast(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                for msg in await read_frame(reader):
                    self._dispatch(msg)
        # the fast path is gone: so is the core (or it stops); fail everything as the channel does
        self._task.cancel()

    async def _run(self) -> None:
        try:
            while True:
                for msg in await read_frame(self._reader):
                    self._dispatch(msg)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.out.closed = True
            if self._fast_out is not None:
                self._fast_out.closed = True
            for fut in self._calls.values():
                if not fut.done():
                    fut.set_exception(ChannelClosed())
            self._calls.clear()
            self.closed.set()

    def _dispatch(self, msg: Any) -> None:
        kind = msg[0]
        if kind in {"ok", "err"}:
            fut = self._calls.pop(msg[1], None)
            if fut is None or fut.done():
                return
            if kind == "ok":
                fut.set_result(msg[2])
            else:
                fut.set_exception(msg[2])
        elif kind == "rev":
            if self.on_revision is not None:
                self.on_revision(msg[1])
        elif kind == "state":
            self.state = msg[1]
            self._have_state.set()

    def _future(self) -> tuple[int, asyncio.Future[Any]]:
        if self.out.closed or (self._fast_out is not None and self._fast_out.closed):
            raise ChannelClosed()
        cid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[cid] = fut
        return cid, fut

    async def call(self, method: str, *args: Any) -> Any:
        cid, fut = self._future()
        types = FAST_TYPES.get(method) if self._fast_out is not None else None
        if types is None:
            self.out.send(("call", cid, method, args))
        else:
            assert self._fast_out is not None
            self._fast_out.send((cid, method, args[0].SerializeToString() if args else b""))
        try:
            result = await fut
        finally:
            self._calls.pop(cid, None)
        if types is not None and types[1] is not None:
            return types[1].FromString(result)
        return result

    def send_ready(self, pid: int) -> None:
        self.out.send(("ready", pid))

    def send_report(self, families: Any) -> None:
        """This front-end's share of the member-wide metrics (petcd.gateway.metrics)."""
        self.out.send(("report", families))

    async def close(self) -> None:
        self.out.close()
        if self._fast_out is not None:
            self._fast_out.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._fast_task is not None:
            self._fast_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fast_task


async def _open_unix(path: str, timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await asyncio.open_unix_connection(path)
        except (FileNotFoundError, ConnectionRefusedError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
