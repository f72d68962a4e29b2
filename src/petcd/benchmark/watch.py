"""Watch workloads: ``watch`` (creation latency, then events delivered per second) and
``watch-latency`` (put-to-event latency).

``watch`` (etcd's): ``--streams`` gRPC watch streams (stream ``s`` on connection ``s % conns``),
each carrying ``--watch-per-stream`` watchers; watcher ``g`` (its global number) watches key
``g % --key-space-size`` of a key list every process derives from the same seed (etcd's varint
keys of ``--key-size`` bytes, random or, with ``--sequential-keys``, 0, 1, 2, ...), or with
``--prefix`` that key as a prefix. Phase one measures each watcher's creation (create request sent
to ``created`` response) and prints "Watch creation summary". Then, once every process has its
watchers, the first process puts ``--put-total`` values (``--put-rate`` per second, 0 for no
limit, from ``--clients`` concurrent clients), keys again from the shared seed, while every
process counts the events its watchers receive; each process knows how many events its watchers
must see, so it stops when they have all arrived (or after ``EVENT_WAIT_S`` of silence). The
"Watch events received summary" is etcd's rate-only report: events / (first put to last event).

``watch-latency``: each of ``--clients`` clients opens a watch on one key; the first process puts
``--total`` values at ``--put-rate``, each value starting with the put's send time (``CLOCK_MONOTONIC``,
shared by every process on the machine), so a watcher in any process computes the latency of each
event it receives: from the put being sent to the event arriving (etcd's tool starts the clock when
the put returns, which can come after the event; measuring from the send keeps every latency
positive and includes the write's commit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import struct
import time
from collections.abc import Callable
from typing import Any

import grpc

from petcd.benchmark.kv import PUT, put_request_bytes, value_field_bytes, varint_key
from petcd.benchmark.runner import ProcContext, RateLimiter, Series, drive
from petcd.cli.etcdctl.kv import prefix_end
from petcd.pb.etcdserverpb import rpc_pb2 as pb

WATCH = "/etcdserverpb.Watch/Watch"
EVENT_WAIT_S = 10.0  # give up on missing events after this long without one


def watch_keys(args: argparse.Namespace) -> list[bytes]:
    """etcd's watch key list, the same in every process (derived from ``args.seed``)."""
    rand = random.Random(args.seed)
    n = args.key_space_size
    return [varint_key(i if args.sequential_keys else rand.randrange(n), args.key_size) for i in range(n)]


def put_keys(args: argparse.Namespace, keys: list[bytes]) -> list[bytes]:
    rand = random.Random(args.seed + 1)
    return [keys[rand.randrange(len(keys))] for _ in range(args.put_total)]


def open_watch_stream(ctx: ProcContext, channel: grpc.aio.Channel) -> Any:
    mc = channel.stream_stream(
        WATCH,
        request_serializer=pb.WatchRequest.SerializeToString,
        response_deserializer=pb.WatchResponse.FromString,
    )
    return mc(metadata=ctx.metadata) if ctx.metadata else mc()


def _create(key: bytes, end: bytes = b"") -> pb.WatchRequest:
    return pb.WatchRequest(create_request=pb.WatchCreateRequest(key=key, range_end=end))


async def run_watch(ctx: ProcContext, args: argparse.Namespace) -> dict[str, Series]:
    share = ctx.share
    keys = watch_keys(args)
    puts = put_keys(args, keys)
    wps = args.watch_per_stream
    creation = ctx.series("Watch creation summary:\n")
    events = Series(heading="Watch events received summary:\n", kind="rate")

    # what each of this process's watchers watches, and so how many events they must receive
    watched: list[tuple[bytes, bytes]] = []
    for s in share.indices:
        for w in range(wps):
            key = keys[(s * wps + w) % len(keys)]
            watched.append((key, prefix_end(key) if args.prefix else b""))
    expected = sum(_matches(k, e, puts) for k, e in watched)

    received = 0
    last_event = [time.monotonic()]
    all_in = asyncio.Event()
    if expected == 0:
        all_in.set()

    def handler(mine: int, sent: list[float], ready: asyncio.Event) -> Callable[[pb.WatchResponse], None]:
        created = 0
        if not mine:
            ready.set()

        def on_response(resp: pb.WatchResponse) -> None:
            nonlocal created, received
            now = time.monotonic()
            if resp.created:
                creation.ok(sent[created], now - sent[created])
                created += 1
                if created == mine:
                    ready.set()
            if resp.events:
                received += len(resp.events)
                last_event[0] = now
                if received >= expected:
                    all_in.set()

        return on_response

    async def stream_task(s_local: int, ready: asyncio.Event) -> None:
        s = share.lo + s_local
        mine = watched[s_local * wps : (s_local + 1) * wps]
        sent: list[float] = []
        on_response = handler(len(mine), sent, ready)
        stream = ctx.h2_stream(s, WATCH, lambda raw: on_response(pb.WatchResponse.FromString(raw)))
        if stream is not None:
            try:
                for key, end in mine:
                    sent.append(time.monotonic())
                    stream.send(_create(key, end).SerializeToString())
                await stream.closed
            finally:
                stream.cancel()
            return
        call = open_watch_stream(ctx, ctx.channel_for(s))
        for key, end in mine:
            sent.append(time.monotonic())
            await call.write(_create(key, end))
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                return
            on_response(resp)

    readies = [asyncio.Event() for _ in share.indices]
    await ctx.sync()
    creation.begin()
    tasks = [asyncio.create_task(stream_task(i, r)) for i, r in enumerate(readies)]
    try:
        await _wait_all(readies, tasks)
        creation.finish()
        await ctx.sync()
        events.begin()
        if share.index == 0:
            await _put_all(ctx, args, puts)
        await _wait_events(all_in, last_event, tasks)
        events.end = last_event[0]
        events.events = received
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if received < expected:
        events.errors[f"missing events: received {received} of {expected}"] += 1
    return {"create": creation, "events": events}


def _matches(key: bytes, end: bytes, puts: list[bytes]) -> int:
    if not end:
        return sum(1 for p in puts if p == key)
    return sum(1 for p in puts if key <= p < end)


async def _wait_all(readies: list[asyncio.Event], tasks: list[asyncio.Task[None]]) -> None:
    waiter: asyncio.Future[Any] = asyncio.gather(*(r.wait() for r in readies))
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        if t in done and t.exception() is not None:
            waiter.cancel()
            raise t.exception()  # type: ignore[misc]
    await waiter


async def _wait_events(
    all_in: asyncio.Event, last_event: list[float], tasks: list[asyncio.Task[None]]
) -> None:
    while not all_in.is_set():
        failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        if time.monotonic() - last_event[0] > EVENT_WAIT_S:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 0.2)


async def _put_all(ctx: ProcContext, args: argparse.Namespace, puts: list[bytes]) -> None:
    value_field = value_field_bytes(b"data")
    n = max(1, min(ctx.share.clients, len(puts)))
    callers = [ctx.unary(c, PUT) for c in range(n)]

    async def call(c: int, i: int) -> object:
        return await callers[c](put_request_bytes(puts[i], value_field))

    ignored = Series()
    await drive(ignored, n, range(len(puts)), call, float(args.put_rate))
    if ignored.errors:
        raise ConnectionError(f"puts failed: {dict(ignored.errors)}")


# -- watch-latency ------------------------------------------------------------------------------

_STAMP = struct.Struct("<d")


async def run_watch_latency(ctx: ProcContext, args: argparse.Namespace) -> dict[str, Series]:
    share = ctx.share
    if args.val_size < _STAMP.size:
        raise ValueError(f"watch-latency needs --val-size >= {_STAMP.size} (the value carries the send time)")
    key = random.Random(args.seed).randbytes(args.key_size)
    latency = ctx.series()
    total = args.total

    async def watcher(c: int, ready: asyncio.Event) -> None:
        seen = 0
        all_seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_response(resp: pb.WatchResponse) -> None:
            nonlocal seen
            if resp.created:
                ready.set()
            now = time.monotonic()
            for ev in resp.events:
                (sent,) = _STAMP.unpack_from(ev.kv.value)
                latency.ok(sent, now - sent)
                seen += 1
            if seen >= total and not all_seen.done():
                all_seen.set_result(None)

        stream = ctx.h2_stream(c, WATCH, lambda raw: on_response(pb.WatchResponse.FromString(raw)))
        if stream is not None:
            try:
                stream.send(_create(key).SerializeToString())
                await asyncio.wait([all_seen, stream.closed], return_when=asyncio.FIRST_COMPLETED)
                if stream.closed.done() and not all_seen.done():
                    await stream.closed  # raises the stream's error
                    raise ConnectionError("watch stream closed")
            finally:
                stream.cancel()
            return
        call = open_watch_stream(ctx, ctx.channel_for(c))
        await call.write(_create(key))
        while seen < total:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                raise ConnectionError("watch stream closed")
            on_response(resp)

    clients = share.clients
    readies = [asyncio.Event() for _ in range(clients)]
    tasks = [asyncio.create_task(watcher(c, r)) for c, r in enumerate(readies)]
    try:
        await _wait_all(readies, tasks)
        await ctx.sync()
        latency.begin()
        if share.index == 0:
            await _timed_puts(ctx, args, key)
        waiter = asyncio.gather(*tasks)
        await asyncio.wait_for(waiter, EVENT_WAIT_S + total / max(args.put_rate, 1))
        latency.finish()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"watch-latency": latency}


async def _timed_puts(ctx: ProcContext, args: argparse.Namespace, key: bytes) -> None:
    put = ctx.unary(0, PUT)
    pad = bytes(args.val_size - _STAMP.size)
    limiter = RateLimiter(args.put_rate) if args.put_rate > 0 else None
    for _ in range(args.total):
        if limiter is not None:
            await limiter.wait()
        stamp = _STAMP.pack(time.monotonic())
        await put(put_request_bytes(key, value_field_bytes(stamp + pad)))
