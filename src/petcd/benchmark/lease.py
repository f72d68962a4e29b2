"""``lease-keepalive``: each client grants a lease (TTL 100 s), then renews it ``--total`` times.

As etcd's tool does (clientv3's ``KeepAliveOnce``), every renewal opens a LeaseKeepAlive stream,
sends one request, reads one response and cancels the stream, so a renewal's latency includes the
stream's setup (over the h2 client, or grpcio with ``--transport grpc``). A response with TTL <= 0
(the lease is gone) counts as an error. The grants happen before the clock starts.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from petcd.benchmark.runner import ProcContext, RequestError, Series, drive
from petcd.pb.etcdserverpb import rpc_pb2 as pb

GRANT = "/etcdserverpb.Lease/LeaseGrant"
KEEPALIVE = "/etcdserverpb.Lease/LeaseKeepAlive"
TTL_S = 100


async def run_lease_keepalive(ctx: ProcContext, args: argparse.Namespace) -> dict[str, Series]:
    share = ctx.share
    md = ctx.metadata
    grants = [ctx.unary(c, GRANT) for c in range(share.clients)]
    ids = []
    for c in range(share.clients):
        resp = pb.LeaseGrantResponse.FromString(
            await grants[c](pb.LeaseGrantRequest(TTL=TTL_S).SerializeToString())
        )
        ids.append(resp.ID)
    bodies = [pb.LeaseKeepAliveRequest(ID=i).SerializeToString() for i in ids]
    streams = (
        [] if ctx.use_h2 else [ctx.channel_for(c).stream_stream(KEEPALIVE) for c in range(share.clients)]
    )

    loop = asyncio.get_running_loop()

    async def once_h2(c: int) -> bytes | None:
        answer: asyncio.Future[bytes] = loop.create_future()

        def on_message(raw: bytes) -> None:
            if not answer.done():
                answer.set_result(raw)

        stream = ctx.h2_stream(c, KEEPALIVE, on_message)
        assert stream is not None
        try:
            stream.send(bodies[c])
            waits: list[asyncio.Future[Any]] = [answer, stream.closed]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if not answer.done():
                await stream.closed  # raises the stream's error
                return None
            return answer.result()
        finally:
            stream.cancel()

    async def once_grpc(c: int) -> bytes | None:
        stream = streams[c](metadata=md) if md else streams[c]()
        try:
            await stream.write(bodies[c])
            raw = await stream.read()
        finally:
            stream.cancel()
        return raw if isinstance(raw, bytes) else None

    once = once_h2 if ctx.use_h2 else once_grpc

    async def call(c: int, _i: int) -> object:
        raw = await once(c)
        if raw is None or pb.LeaseKeepAliveResponse.FromString(raw).TTL <= 0:
            raise RequestError(f"lease {ids[c]:x} expired or revoked")
        return None

    series = ctx.series()
    await ctx.sync()
    await drive(series, share.clients, share.indices, call, share.rate)
    return {"lease-keepalive": series}
