"""Load generation: processes, asyncio tasks, connections; results merged in the parent.

One Python process can issue only so many gRPC calls a second, so the load comes from ``--procs``
processes. The parent splits ``--clients``, ``--conns``, the workload's ``--total`` and ``--rate``
into contiguous shares (``Share``), starts one process per share (``spawn``: nothing of grpc is
inherited), and waits. Each process opens its share of the connections, runs its share of the
clients as asyncio tasks (client ``c`` uses connection ``c % conns``, as etcd's tool does), and
then waits at a barrier, so no process measures while another is still connecting. After the
barrier each process measures with ``time.monotonic`` (CLOCK_MONOTONIC, one clock for every process
on the machine), so the parent can merge: the run's total time is from the earliest start to the
latest end of any process, and the latencies and error counts are concatenated. Each process also
reports the CPU time it spent after connecting: the generator's own cost per request.

With ``--procs 1`` (the default) everything runs in the calling process.

Connections are ``petcd.benchmark.h2`` connections (``--transport h2``, the default on cleartext:
about a third of grpcio's client CPU per call) or grpcio channels (``--transport grpc``, and always
for TLS; one TCP connection per channel: channels use a local subchannel pool, else grpc would share
one connection among identical channels). Either way calls send and receive bytes: the generator
encodes what it must and decodes only what it reads, to stay cheap next to the server it measures.

A workload is an ``async def run(ctx: ProcContext, args) -> dict[str, Series]`` in one of the
modules of this package, named in ``WORKLOADS`` by ``module:function`` and imported in the child.
``drive`` is the closed loop most workloads use: ``clients`` tasks take the next request index
from a shared iterator, wait for the rate limiter, call, and record the latency or the error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import math
import multiprocessing
import os
import queue
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from petcd.benchmark import h2
from petcd.benchmark.report import Stats, compute_stats
from petcd.client.config import parse_endpoint
from petcd.client.rpctypes import grpc_error_text

BARRIER_TIMEOUT_S = 120.0

WORKLOADS: dict[str, str] = {
    "put": "petcd.benchmark.kv:run_put",
    "range": "petcd.benchmark.kv:run_range",
    "txn-put": "petcd.benchmark.kv:run_txn_put",
    "txn-mixed": "petcd.benchmark.kv:run_txn_mixed",
    "k8s": "petcd.benchmark.k8s:run_k8s",
    "watch": "petcd.benchmark.watch:run_watch",
    "watch-latency": "petcd.benchmark.watch:run_watch_latency",
    "lease-keepalive": "petcd.benchmark.lease:run_lease_keepalive",
}


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """The flags every workload shares (etcd's persistent flags, plus ``procs``)."""

    endpoints: tuple[str, ...] = ("127.0.0.1:2379",)
    clients: int = 1
    conns: int = 1
    procs: int = 1
    precise: bool = False
    sample: bool = False
    output: str = "text"
    dial_timeout_s: float = 10.0
    cacert: str = ""
    cert: str = ""
    key: str = ""
    user: str = ""
    transport: str = "h2"  # unary calls: "h2" (petcd's own HTTP/2 client) or "grpc" (grpcio)


@dataclass(frozen=True, slots=True)
class Share:
    """What one load process does: its clients and connections, its slice of the request indices."""

    index: int
    procs: int
    clients: int
    conns: int
    conn_offset: int
    lo: int  # Invariant: lo <= hi; this process issues requests lo..hi-1 of the run
    hi: int
    rate: float  # requests/s for this process, 0 for no limit

    @property
    def indices(self) -> range:
        return range(self.lo, self.hi)


@dataclass(slots=True)
class Series:
    """The measurements of one operation in one process (merged across processes in the parent)."""

    heading: str = ""
    kind: str = "full"  # "full": etcd's whole report; "rate": events/s only; "note": the heading only
    lats: array[float] = field(default_factory=lambda: array("d"))
    starts: array[float] | None = None  # unix start times, with --sample
    errors: Counter[str] = field(default_factory=Counter)
    events: int = 0  # for "rate" series: how many things were counted
    start: float = math.inf  # time.monotonic() when measuring began
    end: float = -math.inf

    def begin(self) -> None:
        self.start = min(self.start, time.monotonic())

    def finish(self) -> None:
        self.end = max(self.end, time.monotonic())

    def ok(self, started: float, latency_s: float) -> None:
        self.lats.append(latency_s)
        if self.starts is not None:
            self.starts.append(time.time() - (time.monotonic() - started))

    def merge(self, other: Series) -> None:
        self.heading = self.heading or other.heading
        self.lats.extend(other.lats)
        if self.starts is not None and other.starts is not None:
            self.starts.extend(other.starts)
        self.errors.update(other.errors)
        self.events += other.events
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)

    def stats(self) -> Stats:
        total_s = self.end - self.start if self.end > self.start else 0.0
        if self.kind == "rate":
            stats = compute_stats([], total_s, self.errors)
            stats.rps = self.events / total_s if total_s > 0 else 0.0
            return stats
        sample = self.starts is not None
        return compute_stats(
            self.lats,
            total_s,
            self.errors,
            sample_starts=self.starts if sample else None,
            sample_lats=self.lats if sample else None,
        )


class RequestError(Exception):
    """A request that the server answered, but not as it must (counted as an error, like an RPC's)."""


# what a call may raise that counts as a failed request rather than a broken run
CALL_ERRORS = (grpc.RpcError, h2.GrpcStatusError, RequestError)


def rpc_error_text(err: BaseException) -> str:
    """An RPC error as grpc-go prints it, so error distributions read like etcd's tool."""
    if not isinstance(err, grpc.RpcError):
        return str(err)
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    return grpc_error_text(code.value[0], details)


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """``range(n)`` cut into ``parts`` contiguous (lo, hi) slices whose sizes differ by at most 1."""
    base, extra = divmod(n, parts)
    out, lo = [], 0
    for p in range(parts):
        hi = lo + base + (1 if p < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def make_shares(opts: GlobalOptions, total: int, rate: float) -> list[Share]:
    """Shares for ``opts.procs`` processes (fewer when there are fewer clients than processes)."""
    procs = max(1, min(opts.procs, opts.clients))
    conns = max(opts.conns, procs)
    shares = []
    client_slices = split(opts.clients, procs)
    conn_slices = split(conns, procs)
    total_slices = split(total, procs)
    for p in range(procs):
        c_lo, c_hi = client_slices[p]
        n_lo, n_hi = conn_slices[p]
        t_lo, t_hi = total_slices[p]
        shares.append(
            Share(
                index=p,
                procs=procs,
                clients=c_hi - c_lo,
                conns=n_hi - n_lo,
                conn_offset=n_lo,
                lo=t_lo,
                hi=t_hi,
                rate=rate / procs if rate > 0 else 0.0,
            )
        )
    return shares


class RateLimiter:
    """A token bucket of depth 1 (golang.org/x/time/rate with burst 1): one request per 1/rate s."""

    def __init__(self, rate: float) -> None:
        self.interval_s = 1.0 / rate
        self.next_at = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        at = max(now, self.next_at)
        self.next_at = at + self.interval_s
        if at > now:
            await asyncio.sleep(at - now)


class ProcContext:
    """One load process's view: its share, its connections, the barrier shared with its siblings.

    Unary calls (``unary``) go over ``h2`` connections (``petcd.benchmark.h2``), or over grpcio
    channels with ``--transport grpc`` or TLS; streams (watch, lease keep-alive) always use grpcio
    channels (``channel_for``), opened on first use. Client ``c`` uses connection ``c % conns``.
    """

    def __init__(self, opts: GlobalOptions, share: Share, barrier: Any = None) -> None:
        self.opts = opts
        self.share = share
        self._barrier = barrier
        self._channels: list[grpc.aio.Channel] = []
        self._h2: list[h2.Connection] = []
        self._blocks: dict[tuple[int, str], bytes] = {}
        self.metadata: tuple[tuple[str, str], ...] | None = None

    def series(self, heading: str = "", kind: str = "full") -> Series:
        """A new Series, recording start times when ``--sample`` asks for the per-second table."""
        return Series(heading=heading, kind=kind, starts=array("d") if self.opts.sample else None)

    @property
    def use_h2(self) -> bool:
        return (
            self.opts.transport == "h2"
            and not self.opts.cacert
            and not any(parse_endpoint(e).tls for e in self.opts.endpoints)
        )

    def _endpoint(self, global_index: int) -> tuple[str, bool]:
        endpoints = self.opts.endpoints
        ep = parse_endpoint(endpoints[global_index % len(endpoints)], bool(self.opts.cacert))
        return f"{ep.host}:{ep.port}", ep.tls

    def channel_for(self, client: int) -> grpc.aio.Channel:
        """The grpcio channel of ``client`` (for streams, and unary calls with ``--transport grpc``)."""
        if not self._channels:
            self._channels = [self._open_channel(self.share.conn_offset + j) for j in range(self.share.conns)]
        return self._channels[client % len(self._channels)]

    def _open_channel(self, global_index: int) -> grpc.aio.Channel:
        target, tls = self._endpoint(global_index)
        options = [
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_receive_message_length", -1),
            ("grpc.max_send_message_length", -1),
        ]
        if tls:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(self.opts.cacert),
                private_key=_read(self.opts.key),
                certificate_chain=_read(self.opts.cert),
            )
            return grpc.aio.secure_channel(target, creds, options=options)
        return grpc.aio.insecure_channel(target, options=options)

    async def connect(self) -> None:
        """Open this share's connections and wait until each is connected."""
        timeout_s = self.opts.dial_timeout_s
        if self.use_h2:
            targets = [self._endpoint(self.share.conn_offset + j)[0] for j in range(self.share.conns)]
            opening = [h2.connect(*_host_port(t), timeout_s) for t in targets]
            results = await asyncio.gather(*opening, return_exceptions=True)
            self._h2 = [r for r in results if isinstance(r, h2.Connection)]
            failed = [r for r in results if not isinstance(r, h2.Connection)]
            if failed:
                raise ConnectionError(f"cannot connect to {targets[0]}: {failed[0]!r}")
        else:
            channels = [self.channel_for(c) for c in range(self.share.conns)]
            await asyncio.wait_for(asyncio.gather(*(ch.channel_ready() for ch in channels)), timeout_s)
        if self.opts.user:
            await self._authenticate()

    async def _authenticate(self) -> None:
        from petcd.pb.etcdserverpb import rpc_pb2 as pb

        name, _, password = self.opts.user.partition(":")
        call = self.channel_for(0).unary_unary(
            "/etcdserverpb.Auth/Authenticate",
            request_serializer=pb.AuthenticateRequest.SerializeToString,
            response_deserializer=pb.AuthenticateResponse.FromString,
        )
        resp = await call(pb.AuthenticateRequest(name=name, password=password))
        self.metadata = (("token", resp.token),)

    def unary(self, client: int, method: str) -> Callable[[bytes], Awaitable[bytes]]:
        """A bytes-in, bytes-out caller of ``method`` (e.g. ``/etcdserverpb.KV/Put``) for ``client``."""
        if self._h2:
            j = client % len(self._h2)
            return h2.UnaryCaller(self._h2[j], self._block(j, method))
        mc = self.channel_for(client).unary_unary(method)
        md = self.metadata
        if md is None:
            return mc  # type: ignore[no-any-return]

        def call(req: bytes) -> Awaitable[bytes]:
            return mc(req, metadata=md)  # type: ignore[no-any-return]

        return call

    def h2_stream(
        self, client: int, method: str, on_message: Callable[[bytes], None]
    ) -> h2.BidiStream | None:
        """A streaming call of ``method`` on ``client``'s h2 connection (None: use grpcio)."""
        if not self._h2:
            return None
        j = client % len(self._h2)
        return self._h2[j].open_stream(self._block(j, method), on_message)

    def _block(self, j: int, method: str) -> bytes:
        block = self._blocks.get((j, method))
        if block is None:
            block = h2.request_header_block(self._h2[j].authority, method, self.metadata or ())
            self._blocks[(j, method)] = block
        return block

    async def sync(self) -> None:
        """Wait until every load process reaches this point (no-op in a single process)."""
        if self._barrier is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._barrier.wait, BARRIER_TIMEOUT_S)

    async def close(self) -> None:
        for conn in self._h2:
            conn.close()
        for ch in self._channels:
            await ch.close()


def _host_port(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


async def drive(
    series: Series,
    clients: int,
    indices: Iterable[int],
    call: Callable[[int, int], Awaitable[object]],
    rate: float = 0.0,
) -> None:
    """The closed loop: ``clients`` tasks each ``await call(client, index)`` for the next index."""
    it = iter(indices)
    limiter = RateLimiter(rate) if rate > 0 else None
    monotonic = time.monotonic

    async def client(c: int) -> None:
        for i in it:  # one iterator shared by all tasks: each index is taken once
            if limiter is not None:
                await limiter.wait()
            st = monotonic()
            try:
                await call(c, i)
            except CALL_ERRORS as err:
                series.errors[rpc_error_text(err)] += 1
                continue
            series.ok(st, monotonic() - st)

    series.begin()
    await asyncio.gather(*(client(c) for c in range(clients)))
    series.finish()


def _resolve(name: str) -> Callable[[ProcContext, argparse.Namespace], Awaitable[dict[str, Series]]]:
    module, _, func = WORKLOADS[name].partition(":")
    fn: Callable[[ProcContext, argparse.Namespace], Awaitable[dict[str, Series]]] = getattr(
        importlib.import_module(module), func
    )
    return fn


@dataclass(slots=True)
class RunResult:
    """A run's merged series, and the CPU time its load processes spent (after connecting)."""

    series: dict[str, Series]
    load_cpu_s: float = 0.0


def cpu_s() -> float:
    """User + system CPU time of this process so far."""
    t = os.times()
    return t.user + t.system


async def _run_share(
    name: str, opts: GlobalOptions, share: Share, args: argparse.Namespace, barrier: Any
) -> RunResult:
    ctx = ProcContext(opts, share, barrier)
    try:
        await ctx.connect()
        cpu_before = cpu_s()
        series = await _resolve(name)(ctx, args)
        return RunResult(series, cpu_s() - cpu_before)
    finally:
        await ctx.close()


def _child(  # noqa: PLR0917 - a Process target takes positional arguments
    name: str,
    opts: GlobalOptions,
    share: Share,
    args: argparse.Namespace,
    barrier: Any,
    results: Any,
) -> None:
    try:
        out = asyncio.run(_run_share(name, opts, share, args, barrier))
        results.put((share.index, out, None))
    except BaseException:
        if barrier is not None:
            barrier.abort()  # siblings waiting at the barrier give up instead of hanging
        results.put((share.index, None, traceback.format_exc()))


class LoadError(RuntimeError):
    """A load process failed; the message carries its traceback."""


async def _find_leader(opts: GlobalOptions) -> str:
    from petcd.pb.etcdserverpb import rpc_pb2 as pb

    for endpoint in opts.endpoints:
        one = dataclasses.replace(opts, endpoints=(endpoint,))
        ctx = ProcContext(
            one, Share(index=0, procs=1, clients=1, conns=1, conn_offset=0, lo=0, hi=0, rate=0.0)
        )
        try:
            await ctx.connect()
            status = pb.StatusResponse.FromString(await ctx.unary(0, "/etcdserverpb.Maintenance/Status")(b""))
        except (*CALL_ERRORS, OSError, TimeoutError):
            continue
        finally:
            await ctx.close()
        if status.leader and status.leader == status.header.member_id:
            return endpoint
    raise LoadError("no endpoint is the leader (--target-leader)")


def leader_endpoint(opts: GlobalOptions) -> str:
    """The endpoint whose member is the raft leader (etcd's --target-leader)."""
    return asyncio.run(_find_leader(opts))


def merge(parts: Sequence[RunResult]) -> RunResult:
    merged: dict[str, Series] = {}
    for part in parts:
        for key, s in part.series.items():
            if key not in merged:
                merged[key] = Series(
                    heading=s.heading, kind=s.kind, starts=array("d") if s.starts is not None else None
                )
            merged[key].merge(s)
    return RunResult(merged, sum(p.load_cpu_s for p in parts))


def run_workload(
    name: str, opts: GlobalOptions, args: argparse.Namespace, total: int, rate: float = 0.0
) -> RunResult:
    """Run workload ``name`` over ``opts.procs`` processes and return its merged series."""
    shares = make_shares(opts, total, rate)
    if len(shares) == 1:
        return asyncio.run(_run_share(name, opts, shares[0], args, None))
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(len(shares))
    results = mp.Queue()
    procs = [
        mp.Process(target=_child, args=(name, opts, s, args, barrier, results), daemon=True) for s in shares
    ]
    outs: dict[int, RunResult] = {}
    try:
        for p in procs:
            p.start()
        while len(outs) < len(procs):
            try:
                index, out, error = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise LoadError(f"a load process exited with code {dead[0].exitcode}") from None
                continue
            if error is not None:
                raise LoadError(f"load process {index} failed:\n{error}")
            outs[index] = out
    finally:
        for p in procs:
            if p.is_alive():
                p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        results.close()
    return merge([outs[i] for i in sorted(outs)])
