"""KV workloads: put, range, txn-put, txn-mixed (etcd's tools/benchmark, same requests).

Keys are etcd's: a ``--key-size`` byte buffer, zero-filled, that starts with the zigzag varint of
the key number (Go's ``binary.PutVarint``), the number random in ``[0, --key-space-size)`` or, with
``--sequential-keys``, the request index modulo the key space. So the default key space of 1 puts
the same all-zero key again and again, as etcd's tool does. Values are ``--val-size`` random bytes
chosen once per process.

The hot requests are encoded by hand (a PutRequest is two length-delimited fields) or once for the
whole run (a range), so the load processes spend their CPU in gRPC, not in protobuf.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable

from petcd.benchmark.report import go_duration
from petcd.benchmark.runner import CALL_ERRORS, ProcContext, Series, drive, rpc_error_text
from petcd.pb.etcdserverpb import rpc_pb2 as pb

PUT = "/etcdserverpb.KV/Put"
RANGE = "/etcdserverpb.KV/Range"
TXN = "/etcdserverpb.KV/Txn"
COMPACT = "/etcdserverpb.KV/Compact"
HASHKV = "/etcdserverpb.Maintenance/HashKV"
STATUS = "/etcdserverpb.Maintenance/Status"


def uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def varint_key(n: int, size: int) -> bytes:
    """Go's ``binary.PutVarint(make([]byte, size), n)``: zigzag varint, zero padded to ``size``."""
    enc = uvarint((n << 1) ^ (n >> 63))
    if len(enc) > size:
        raise ValueError(f"--key-size {size} is too small for key number {n}")
    return enc + bytes(size - len(enc))


def put_request_bytes(key: bytes, value_field: bytes) -> bytes:
    """A PutRequest{key, value} encoded; ``value_field`` is ``value_field_bytes(value)``."""
    return b"\x0a" + uvarint(len(key)) + key + value_field


def value_field_bytes(value: bytes) -> bytes:
    return b"\x12" + uvarint(len(value)) + value if value else b""


class KeyChooser:
    """etcd's key choice: random in the key space, or the request index modulo it."""

    def __init__(self, key_size: int, key_space: int, sequential: bool, seed: int) -> None:
        if key_space <= 0:
            raise ValueError(f"expected positive --key-space-size, got ({key_space})")
        varint_key(key_space - 1, key_size)  # fail early when the keys do not fit
        self.key_size = key_size
        self.key_space = key_space
        self.sequential = sequential
        self.rand = random.Random(seed)

    def key(self, i: int) -> bytes:
        n = i % self.key_space if self.sequential else self.rand.randrange(self.key_space)
        return varint_key(n, self.key_size)


def consistency_serializable(consistency: str) -> bool:
    if consistency not in ("l", "s"):
        raise ValueError(f"--consistency must be l or s, got {consistency!r}")
    return consistency == "s"


async def run_put(ctx: ProcContext, args: argparse.Namespace) -> dict[str, Series]:
    share = ctx.share
    keys = KeyChooser(args.key_size, args.key_space_size, args.sequential_keys, seed=share.index)
    value_field = value_field_bytes(os.urandom(args.val_size))
    puts = [ctx.unary(c, PUT) for c in range(share.clients)]

    key_field = b"\x0a" + uvarint(args.key_size)  # every key has --key-size bytes

    async def call(c: int, i: int) -> object:
        return await puts[c](key_field + keys.key(i) + value_field)

    compactor = None
    if args.compact_interval > 0 and share.index == 0:
        compactor = asyncio.create_task(_compact_every(ctx, args.compact_interval, args.compact_index_delta))
    try:
        out = await _closed_loop(ctx, "put", call)
    finally:
        if compactor is not None:
            compactor.cancel()
            await asyncio.gather(compactor, return_exceptions=True)
    if args.check_hashkv:
        await ctx.sync()  # every process has finished putting
        if share.index == 0:
            out["hashkv"] = Series(heading=await _hashkv_summary(ctx), kind="note")
    return out


async def _compact_every(ctx: ProcContext, interval_s: float, delta: int) -> None:
    """etcd's --compact-interval: compact at (current revision - delta) every interval."""
    get, compact = ctx.unary(0, RANGE), ctx.unary(0, COMPACT)
    while True:
        await asyncio.sleep(interval_s)
        try:
            raw = await get(pb.RangeRequest(key=b"foo").SerializeToString())
            rev = pb.RangeResponse.FromString(raw).header.revision
            if rev - delta > 0:
                await compact(pb.CompactionRequest(revision=rev - delta).SerializeToString())
        except CALL_ERRORS as err:  # e.g. nothing new to compact since the last time: try again later
            print(f"compaction failed: {rpc_error_text(err)}", file=sys.stderr)


async def _hashkv_summary(ctx: ProcContext) -> str:
    """etcd's --check-hashkv report: the first endpoint's HashKV, how long it took, the db size."""
    st = time.monotonic()
    hashkv = pb.HashKVResponse.FromString(await ctx.unary(0, HASHKV)(b""))
    took_s = time.monotonic() - st
    status = pb.StatusResponse.FromString(await ctx.unary(0, STATUS)(b""))
    return (
        f"HashKV Summary:\n\tHashKV: {hashkv.hash}\n\tEndpoint: {ctx.opts.endpoints[0]}\n"
        f"\tTime taken to get hashkv: {go_duration(took_s)}\n\tDB size: {human_bytes(status.dbSize)}\n"
    )


def human_bytes(n: int) -> str:
    """go-humanize's Bytes (SI units): 1.2 MB, 912 kB, 18 B."""
    if n < 10:
        return f"{n} B"
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    e = min(math.floor(math.log(n, 1000)), len(units) - 1)
    value = math.floor(n / 1000**e * 10 + 0.5) / 10
    return f"{value:.0f} {units[e]}" if value >= 10 else f"{value:.1f} {units[e]}"


def range_request(args: argparse.Namespace) -> pb.RangeRequest:
    req = pb.RangeRequest(key=args.key.encode(), serializable=consistency_serializable(args.consistency))
    if args.end:
        req.range_end = args.end.encode()
    if getattr(args, "limit", 0):
        req.limit = args.limit
    if getattr(args, "count_only", False):
        req.count_only = True
    return req


async def run_range(ctx: ProcContext, args: argparse.Namespace) -> dict[str, Series]:
    share = ctx.share
    body = range_request(args).SerializeToString()
    ranges = [ctx.unary(c, RANGE) for c in range(share.clients)]

    async def call(c: int, _i: int) -> object:
        return await ranges[c](body)

    return await _closed_loop(ctx, "range", call)


async def run_txn_put(ctx: ProcContext, args: argparse.Namespace) -> dict[str, Series]:
    share = ctx.share
    if args.key_space_size < args.txn_ops:
        raise ValueError("--key-space-size must be at least --txn-ops (a txn may not put a key twice)")
    value = os.urandom(args.val_size)
    KeyChooser(args.key_size, args.key_space_size, True, 0)  # validates the sizes
    txns = [ctx.unary(c, TXN) for c in range(share.clients)]
    ops = args.txn_ops

    def request(i: int) -> bytes:
        return pb.TxnRequest(
            success=[
                pb.RequestOp(
                    request_put=pb.PutRequest(
                        key=varint_key((i * ops + j) % args.key_space_size, args.key_size), value=value
                    )
                )
                for j in range(ops)
            ]
        ).SerializeToString()

    async def call(c: int, i: int) -> object:
        return await txns[c](request(i))

    return await _closed_loop(ctx, "txn-put", call)


async def run_txn_mixed(ctx: ProcContext, args: argparse.Namespace) -> dict[str, Series]:
    share = ctx.share
    keys = KeyChooser(args.key_size, args.key_space_size, True, seed=share.index)
    value_field = value_field_bytes(os.urandom(args.val_size))
    rand = random.Random(share.index)
    # etcd's read: a prefix range from the empty key (every key) with a limit, inside a txn
    read = pb.RangeRequest(
        key=b"\x00",
        range_end=b"\x00",
        limit=args.limit,
        serializable=consistency_serializable(args.consistency),
    )
    read_body = pb.TxnRequest(success=[pb.RequestOp(request_range=read)]).SerializeToString()
    txns = [ctx.unary(c, TXN) for c in range(share.clients)]
    read_share = args.rw_ratio / (1 + args.rw_ratio)
    reads = ctx.series("Total Read Ops: {ops}\nDetails:")
    writes = ctx.series("Total Write Ops: {ops}\nDetails:")
    monotonic = time.monotonic

    async def call(c: int, i: int) -> object:
        # the two kinds are recorded in their own series, so time them here
        if rand.random() < read_share:
            target, body = reads, read_body
        else:
            put = put_request_bytes(keys.key(i), value_field)
            target, body = writes, _txn_of_put(put)
        st = monotonic()
        try:
            await txns[c](body)
        except CALL_ERRORS as err:
            target.errors[rpc_error_text(err)] += 1
            return None
        target.ok(st, monotonic() - st)
        return None

    ignored = Series()
    await ctx.sync()
    reads.begin()
    writes.begin()
    await drive(ignored, share.clients, share.indices, call, share.rate)
    reads.finish()
    writes.finish()
    return {"read": reads, "write": writes}


def _txn_of_put(put: bytes) -> bytes:
    """TxnRequest{success: [RequestOp{request_put: put}]} around an encoded PutRequest."""
    op = b"\x12" + uvarint(len(put)) + put  # RequestOp.request_put is field 2
    return b"\x12" + uvarint(len(op)) + op  # TxnRequest.success is field 2


async def _closed_loop(
    ctx: ProcContext, name: str, call: Callable[[int, int], Awaitable[object]]
) -> dict[str, Series]:
    """Wait for the sibling processes, then run this share's clients through ``drive``."""
    share = ctx.share
    series = ctx.series()
    await ctx.sync()
    await drive(series, share.clients, share.indices, call, share.rate)
    return {name: series}
