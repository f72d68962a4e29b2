"""lease grant, revoke, timetolive, list and keep-alive.

Keep-alive runs over gRPC's LeaseKeepAlive stream (the one command here that needs a stream):
like etcd's client it renews every third of the TTL, prints each renewal, and stops with
``lease ... expired or revoked.`` when the server answers with TTL <= 0.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from petcd.cli.etcdctl.context import Context
from petcd.cli.etcdctl.errors import EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, EXIT_ERROR, CtlError
from petcd.cli.etcdctl.gofmt import parse_go_int
from petcd.client import ClientError

JsonDict = dict[str, Any]


def lease_from_arg(text: str) -> int:
    try:
        return parse_go_int(text, 16)
    except ValueError as err:
        raise CtlError(EXIT_BAD_ARGS, f"bad lease ID arg ({err}), expecting ID in Hex") from None


def grant(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "lease grant command needs TTL argument")
    text = ctx.args[0]
    try:
        ttl = parse_go_int(text)
    except ValueError as err:
        raise CtlError(EXIT_BAD_ARGS, f"bad TTL ({err})") from None
    printer = ctx.printer
    resp = ctx.call("LeaseGrant", {"TTL": str(ttl)}, fail="failed to grant lease (%s)")
    printer.grant(resp)
    return 0


def revoke(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "lease revoke command needs 1 argument")
    lease_id = lease_from_arg(ctx.args[0])
    printer = ctx.printer
    resp = ctx.call("LeaseRevoke", {"ID": str(lease_id)}, fail="failed to revoke lease (%s)")
    printer.revoke(lease_id, resp)
    return 0


def timetolive(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "lease timetolive command needs lease ID as argument")
    lease_id = lease_from_arg(ctx.args[0])
    keys = bool(ctx.flag("keys"))
    body: JsonDict = {"ID": str(lease_id)}
    if keys:
        body["keys"] = True
    printer = ctx.printer
    try:
        resp = ctx.client.call("LeaseTimeToLive", body)
    except ClientError as err:
        raise CtlError(EXIT_BAD_CONNECTION, err.message) from None
    printer.time_to_live(resp, keys)
    return 0


def list_leases(ctx: Context) -> int:
    printer = ctx.printer
    try:
        resp = ctx.client.call("LeaseLeases", {})
    except ClientError as err:
        raise CtlError(EXIT_BAD_CONNECTION, err.message) from None
    printer.leases(resp)
    return 0


def keep_alive(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "lease keep-alive command needs lease ID as argument")
    lease_id = lease_from_arg(ctx.args[0])
    printer = ctx.printer
    from google.protobuf.message import Message

    from petcd.client.grpc_client import to_dict
    from petcd.pb.etcdserverpb import rpc_pb2

    grpc = ctx.client.grpc
    requests: queue.Queue[Message | None] = queue.Queue()
    stop = threading.Event()

    def request_iter() -> Iterator[Message]:
        while True:
            item = requests.get()
            if item is None:
                return
            yield item

    requests.put(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
    try:
        responses = grpc.stream("LeaseKeepAlive", request_iter())
        for msg in responses:
            resp = to_dict(msg)
            ttl = int(resp.get("TTL", 0))
            if ttl <= 0:
                if ctx.flag("once"):
                    raise CtlError(EXIT_BAD_CONNECTION, "etcdserver: requested lease not found")
                break
            printer.keep_alive(resp)
            ctx.flush()
            if ctx.flag("once"):
                return 0
            if stop.wait(max(ttl / 3.0, 0.5)):
                break
            requests.put(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
    except ClientError as err:
        raise CtlError(EXIT_BAD_CONNECTION if ctx.flag("once") else EXIT_ERROR, err.message) from None
    finally:
        requests.put(None)
    if printer.fmt == "simple":
        printer.line(f"lease {lease_id:016x} expired or revoked.")
    return 0
