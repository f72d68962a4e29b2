"""``k8s``: the traffic a Kubernetes API server sends to etcd, in miniature.

Objects are ``/registry/pods/ns-<n>/pod-<i>`` (``--objects`` of them over ``--namespaces``, values
of ``--val-size`` bytes), created before the clock starts by the first process (txns of up to 100
puts). Every process then reads the mod_revision of the objects it owns (object ``i`` belongs to
process ``i % procs``, so processes never race on an object; clients of one process may) and runs
its share of ``--total`` requests, each one of:

* **update** (``--update-ratio``): the API server's GuaranteedUpdate, a txn
  ``if mod_revision(key) == known then put(key, new) else get(key)``; on a conflict the failure
  branch's object gives the new mod_revision and the update is retried, all within one measured
  request (the conflicts are counted in the heading);
* **get** (``--get-ratio``): a linearizable single-key range;
* **list** (``--list-ratio``): a namespace list in pages of ``--page-size`` (the first page a
  linearizable range with ``limit``, the next ones at the first page's revision, from the last key
  returned, until ``more`` is false), measured as one request.

Meanwhile ``--watchers`` watch streams (spread over the processes) watch the whole
``/registry/pods/`` prefix from the revision after the setup, as informers do; once every process
has finished, each watcher waits for the store's last revision, and the events they received are
reported per second (from the start of the mix to the last event).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time

import grpc

from petcd.benchmark.kv import RANGE, TXN
from petcd.benchmark.runner import CALL_ERRORS, ProcContext, RequestError, Series, rpc_error_text, split
from petcd.benchmark.watch import EVENT_WAIT_S, WATCH, open_watch_stream
from petcd.cli.etcdctl.kv import prefix_end
from petcd.pb.etcdserverpb import rpc_pb2 as pb

PREFIX = b"/registry/pods/"
SETUP_BATCH = 100
MAX_UPDATE_TRIES = 100


def object_key(i: int, namespaces: int) -> bytes:
    return PREFIX + b"ns-%d/pod-%d" % (i % namespaces, i)


def namespace_prefix(n: int) -> bytes:
    return PREFIX + b"ns-%d/" % n


async def _setup(ctx: ProcContext, args: argparse.Namespace, value: bytes) -> int:
    """Create every object (first process only); return the revision after the setup."""
    txn = ctx.unary(0, TXN)
    revision = 0
    for lo, hi in split(args.objects, max(1, -(-args.objects // SETUP_BATCH))):
        req = pb.TxnRequest(
            success=[
                pb.RequestOp(request_put=pb.PutRequest(key=object_key(i, args.namespaces), value=value))
                for i in range(lo, hi)
            ]
        )
        revision = pb.TxnResponse.FromString(await txn(req.SerializeToString())).header.revision
    return revision


async def run_k8s(ctx: ProcContext, args: argparse.Namespace) -> dict[str, Series]:
    share = ctx.share
    ratios = (args.update_ratio, args.get_ratio, args.list_ratio)
    if min(ratios) < 0 or sum(ratios) <= 0:
        raise ValueError("--update-ratio, --get-ratio and --list-ratio must be >= 0, not all 0")
    if args.objects < 1 or args.namespaces < 1 or args.page_size < 1:
        raise ValueError("--objects, --namespaces and --page-size must be at least 1")
    value = os.urandom(args.val_size)
    if share.index == 0:
        await _setup(ctx, args, value)
    await ctx.sync()

    mine = list(range(share.index, args.objects, share.procs))
    known: dict[int, int] = await _read_revisions(ctx, args, mine)
    start_rev = await _current_revision(ctx)
    rand = random.Random(args.seed + share.index)

    updates = ctx.series("Guarded updates ({ops} requests, {events} conflicts retried):")
    gets = ctx.series("Gets ({ops} requests):")
    lists = ctx.series("Paged lists ({ops} requests):")
    events = Series(heading="Watch events received summary:\n", kind="rate")
    txn_calls = [ctx.unary(c, TXN) for c in range(share.clients)]
    range_calls = [ctx.unary(c, RANGE) for c in range(share.clients)]

    async def update(c: int) -> None:
        i = rand.choice(mine)
        key = object_key(i, args.namespaces)
        for _ in range(MAX_UPDATE_TRIES):
            req = pb.TxnRequest(
                compare=[
                    pb.Compare(
                        key=key,
                        target=pb.Compare.CompareTarget.MOD,
                        result=pb.Compare.CompareResult.EQUAL,
                        mod_revision=known[i],
                    )
                ],
                success=[pb.RequestOp(request_put=pb.PutRequest(key=key, value=value))],
                failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key))],
            )
            resp = pb.TxnResponse.FromString(await txn_calls[c](req.SerializeToString()))
            if resp.succeeded:
                known[i] = resp.header.revision
                return
            updates.events += 1
            kvs = resp.responses[0].response_range.kvs
            known[i] = kvs[0].mod_revision if kvs else 0
        raise RequestError(f"update of {key!r} conflicted {MAX_UPDATE_TRIES} times")

    async def get(c: int) -> None:
        i = rand.randrange(args.objects)
        await range_calls[c](pb.RangeRequest(key=object_key(i, args.namespaces)).SerializeToString())

    async def list_(c: int) -> None:
        ns = namespace_prefix(rand.randrange(args.namespaces))
        end = prefix_end(ns)
        req = pb.RangeRequest(key=ns, range_end=end, limit=args.page_size)
        while True:
            resp = pb.RangeResponse.FromString(await range_calls[c](req.SerializeToString()))
            if not resp.more or not resp.kvs:
                return
            req = pb.RangeRequest(
                key=resp.kvs[-1].key + b"\x00",
                range_end=end,
                limit=args.page_size,
                revision=resp.header.revision,
            )

    kinds = ((updates, update), (gets, get), (lists, list_))
    weights = list(ratios)
    it = iter(share.indices)
    monotonic = time.monotonic

    async def client(c: int) -> None:
        for _ in it:
            series, op = rand.choices(kinds, weights)[0]
            st = monotonic()
            try:
                await op(c)
            except CALL_ERRORS as err:
                series.errors[rpc_error_text(err)] += 1
                continue
            series.ok(st, monotonic() - st)

    watch_slices = split(args.watchers, share.procs)
    w_lo, w_hi = watch_slices[share.index]
    revs = [start_rev] * (w_hi - w_lo)  # the revision each informer has reached
    last_event = [monotonic()]
    watch_tasks = [
        asyncio.create_task(_informer(ctx, w, w - w_lo, start_rev + 1, events, revs, last_event))
        for w in range(w_lo, w_hi)
    ]
    try:
        await ctx.sync()
        for s in (updates, gets, lists, events):
            s.begin()
        await asyncio.gather(*(client(c) for c in range(share.clients)))
        for s in (updates, gets, lists):
            s.finish()
        await ctx.sync()
        target = await _current_revision(ctx)
        while revs and min(revs) < target and monotonic() - last_event[0] < EVENT_WAIT_S:
            failed = [t for t in watch_tasks if t.done() and t.exception() is not None]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
            await asyncio.sleep(0.02)
        events.end = last_event[0] if events.events else monotonic()
    finally:
        for t in watch_tasks:
            t.cancel()
        await asyncio.gather(*watch_tasks, return_exceptions=True)
    return {"update": updates, "get": gets, "list": lists, "events": events}


async def _informer(  # noqa: PLR0917 - the shared progress it reports into
    ctx: ProcContext,
    w: int,
    slot: int,
    from_rev: int,
    events: Series,
    revs: list[int],
    last_event: list[float],
) -> None:
    """One watch on the whole prefix from ``from_rev``; reports its progress in ``revs[slot]``."""

    def on_response(resp: pb.WatchResponse) -> None:
        if resp.events:
            events.events += len(resp.events)
            last_event[0] = time.monotonic()
            revs[slot] = resp.events[-1].kv.mod_revision

    create = pb.WatchRequest(
        create_request=pb.WatchCreateRequest(
            key=PREFIX, range_end=prefix_end(PREFIX), start_revision=from_rev
        )
    )
    stream = ctx.h2_stream(w, WATCH, lambda raw: on_response(pb.WatchResponse.FromString(raw)))
    if stream is not None:
        try:
            stream.send(create.SerializeToString())
            await stream.closed
        finally:
            stream.cancel()
        return
    call = open_watch_stream(ctx, ctx.channel_for(w))
    await call.write(create)
    while True:
        resp = await call.read()
        if resp is grpc.aio.EOF:
            return
        on_response(resp)


async def _read_revisions(ctx: ProcContext, args: argparse.Namespace, mine: list[int]) -> dict[int, int]:
    call = ctx.unary(0, RANGE)
    known: dict[int, int] = {}
    wanted = set(mine)
    for n in range(args.namespaces):
        ns = namespace_prefix(n)
        resp = pb.RangeResponse.FromString(
            await call(pb.RangeRequest(key=ns, range_end=prefix_end(ns), keys_only=True).SerializeToString())
        )
        for kv in resp.kvs:
            i = int(kv.key.rsplit(b"-", 1)[1])
            if i in wanted:
                known[i] = kv.mod_revision
    return known


async def _current_revision(ctx: ProcContext) -> int:
    call = ctx.unary(0, RANGE)
    resp = pb.RangeResponse.FromString(await call(pb.RangeRequest(key=b"\x00", limit=1).SerializeToString()))
    return int(resp.header.revision)
