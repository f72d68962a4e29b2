"""make-mirror: copy a prefix to another cluster, then keep it in sync from the watch stream.

As etcd's mirror syncer: read everything under the prefix at one revision in batches of 1000,
put each key (renamed from ``--prefix`` to ``--dest-prefix``) on the destination, then watch from
the next revision and replay each revision's events as one destination txn (split into txns of at
most ``--max-txn-ops``). The number of keys copied so far is printed every 30 seconds.
"""

from __future__ import annotations

import threading
from typing import Any

from petcd.cli.etcdctl.context import Context
from petcd.cli.etcdctl.errors import EXIT_BAD_ARGS, EXIT_ERROR, CtlError
from petcd.cli.etcdctl.kv import b64, prefix_end
from petcd.client import Client, ClientConfig, ClientError, TlsConfig

JsonDict = dict[str, Any]


def make_mirror(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "make-mirror takes one destination argument")
    prefix = str(ctx.flag("prefix")).encode()
    dest_prefix = str(ctx.flag("dest-prefix")).encode()
    if ctx.flag("no-dest-prefix") and dest_prefix:
        raise CtlError(
            EXIT_BAD_ARGS, "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one"
        )
    if not ctx.flag("no-dest-prefix") and not dest_prefix:
        dest_prefix = prefix
    user, password = str(ctx.flag("dest-user")), str(ctx.flag("dest-password"))
    if user and not password and ":" in user:
        user, password = user.split(":", 1)
    dest_cfg = ClientConfig(
        endpoints=[ctx.args[0]],
        dial_timeout_s=float(ctx.flag("dial-timeout")),
        command_timeout_s=float(ctx.flag("command-timeout")),
        user=user,
        password=password,
        tls=TlsConfig(cacert=ctx.flag("dest-cacert"), cert=ctx.flag("dest-cert"), key=ctx.flag("dest-key")),
        insecure_transport=bool(ctx.flag("dest-insecure-transport")),
    )
    dest = Client(dest_cfg, ctx.client.transport)
    max_ops = max(1, int(ctx.flag("max-txn-ops")))
    total = [0]
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(30):
            ctx.printer.line(str(total[0]))
            ctx.flush()

    threading.Thread(target=report, daemon=True).start()

    def rename(key: bytes) -> bytes:
        return key.replace(prefix, dest_prefix, 1) if prefix else dest_prefix + key

    try:
        _mirror(ctx, dest, prefix, rename, max_ops=max_ops, total=total)
    except ClientError as err:
        raise CtlError(EXIT_ERROR, err.message) from None
    finally:
        stop.set()
    return 0


def _mirror(
    ctx: Context, dest: Client, prefix: bytes, rename: Any, *, max_ops: int, total: list[int]
) -> None:
    import base64

    src = ctx.client
    rev = int(ctx.flag("rev"))
    if rev == 0:
        rev = int(src.call("Range", {"key": b64(b"foo")})["header"]["revision"])
    key, end = (prefix, prefix_end(prefix)) if prefix else (b"\x00", b"\x00")
    while True:
        resp = src.call(
            "Range", {"key": b64(key), "range_end": b64(end), "limit": "1000", "revision": str(rev)}
        )
        kvs = resp.get("kvs", [])
        for kv in kvs:
            body: JsonDict = {"key": b64(rename(base64.b64decode(kv["key"])))}
            if kv.get("value"):
                body["value"] = kv["value"]
            dest.call("Put", body)
            total[0] += 1
        if not resp.get("more") or not kvs:
            break
        key = base64.b64decode(kvs[-1]["key"]) + b"\x00"

    from google.protobuf import json_format

    from petcd.client.grpc_client import to_dict
    from petcd.pb.etcdserverpb import rpc_pb2

    first = prefix if prefix else b"\x00"
    create = {"create_request": {"key": b64(first), "range_end": b64(end), "start_revision": str(rev + 1)}}
    request = json_format.ParseDict(create, rpc_pb2.WatchRequest())
    for msg in src.grpc.stream("Watch", iter([request])):
        wr = to_dict(msg)
        if int(wr.get("compact_revision", 0)):
            raise ClientError("etcdserver: mvcc: required revision has been compacted", 11)
        ops: list[JsonDict] = []
        last_rev = 0
        for ev in wr.get("events", []):
            kv = ev.get("kv", {})
            next_rev = int(kv.get("mod_revision", 0))
            if (last_rev and next_rev > last_rev) or len(ops) >= max_ops:
                dest.call("Txn", {"success": ops})
                ops = []
            last_rev = next_rev
            new_key = b64(rename(base64.b64decode(kv.get("key", ""))))
            if ev.get("type", "PUT") == "DELETE":
                ops.append({"request_delete_range": {"key": new_key}})
            else:
                put: JsonDict = {"key": new_key}
                if kv.get("value"):
                    put["value"] = kv["value"]
                ops.append({"request_put": put})
            total[0] += 1
        if ops:
            dest.call("Txn", {"success": ops})
