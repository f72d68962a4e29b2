"""A gRPC KV server that does nothing: the ceiling of the load generator and of grpc.aio itself.

``petcd-benchmark null-server --listen 127.0.0.1:PORT`` serves etcd's ``KV`` service on grpc.aio:
``Put``, ``Range``, ``Txn`` and ``DeleteRange`` decode the request (as any server must) and answer
an empty response with a header, nothing stored. Pointing ``put`` or ``range`` at it measures what
the generator (and a grpc.aio server on this machine) can do at best; a petcd member can never be
faster than this per front-end process. ``--server-procs N`` runs N such servers on the same port
(grpc sets SO_REUSEPORT on Linux, the kernel spreads connections), so the generator can be
measured against more server CPU than one process has.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from typing import Any

import grpc

from petcd import eventloop
from petcd.pb.etcdserverpb import rpc_pb2 as pb

HEADER = pb.ResponseHeader(cluster_id=1, member_id=1, revision=1, raft_term=1)


def _handlers() -> grpc.GenericRpcHandler:
    async def put(_req: pb.PutRequest, _ctx: Any) -> pb.PutResponse:
        return pb.PutResponse(header=HEADER)

    async def range_(_req: pb.RangeRequest, _ctx: Any) -> pb.RangeResponse:
        return pb.RangeResponse(header=HEADER)

    async def txn(_req: pb.TxnRequest, _ctx: Any) -> pb.TxnResponse:
        return pb.TxnResponse(header=HEADER, succeeded=True)

    async def delete_range(_req: pb.DeleteRangeRequest, _ctx: Any) -> pb.DeleteRangeResponse:
        return pb.DeleteRangeResponse(header=HEADER)

    def unary(fn: Any, req: Any, resp: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=req.FromString, response_serializer=resp.SerializeToString
        )

    return grpc.method_handlers_generic_handler(
        "etcdserverpb.KV",
        {
            "Put": unary(put, pb.PutRequest, pb.PutResponse),
            "Range": unary(range_, pb.RangeRequest, pb.RangeResponse),
            "Txn": unary(txn, pb.TxnRequest, pb.TxnResponse),
            "DeleteRange": unary(delete_range, pb.DeleteRangeRequest, pb.DeleteRangeResponse),
        },
    )


async def serve(listen: str, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or forever)."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    server.add_generic_rpc_handlers((_handlers(),))
    if server.add_insecure_port(listen) == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    try:
        if stop is None:
            await server.wait_for_termination()
        else:
            await stop.wait()
    finally:
        await server.stop(grace=None)


def _serve_until_signal(listen: str) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(listen, stop)

    # the event loop petcd's servers run, so that the comparison is of the work, not of the loop
    eventloop.run(main())


def serve_forever(listen: str, procs: int = 1) -> int:
    """The ``null-server`` command: ``procs`` processes serving on ``listen`` until a signal."""
    mp = multiprocessing.get_context("spawn")
    others = [mp.Process(target=_serve_until_signal, args=(listen,), daemon=True) for _ in range(procs - 1)]
    for p in others:
        p.start()
    try:
        _serve_until_signal(listen)
    finally:
        for p in others:
            p.terminate()
            p.join(timeout=5)
    return 0
