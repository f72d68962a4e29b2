"""lock and elect: etcd's client-side concurrency recipes (clientv3/concurrency), from etcdctl.

Both run on a session: a lease kept alive in the background. A contender writes
``<name>/<lease id in hex>`` with the session lease (one txn: create it if absent, else read it);
the holder or leader is the key under ``<name>/`` with the lowest create revision, and a waiter
watches for the deletion of the key created just before its own ("waitDeletes"), so each key has
one waiter and there is no thundering herd. These are the same keys and transactions as etcd's
Go client makes, so petcd's tools and etcd's can contend for the same lock. Only KV, Watch and
Lease RPCs are needed (not the v3lock/v3election services).
"""

from __future__ import annotations

import base64
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

from petcd.cli.etcdctl.context import Context
from petcd.cli.etcdctl.errors import EXIT_BAD_ARGS, EXIT_ERROR, CtlError
from petcd.cli.etcdctl.kv import b64, prefix_end
from petcd.client import Client, ClientError

JsonDict = dict[str, Any]


class Session:
    """A lease with a keep-alive thread; ``done`` is set when the lease is lost."""

    def __init__(self, client: Client, ttl_s: int) -> None:
        self.client = client
        self.lease_id = int(client.call("LeaseGrant", {"TTL": str(ttl_s)})["ID"])
        self.ttl_s = ttl_s
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_alive, daemon=True)
        self._thread.start()

    def _keep_alive(self) -> None:
        from petcd.pb.etcdserverpb import rpc_pb2

        requests: queue.Queue[Any] = queue.Queue()

        def request_iter() -> Iterator[Any]:
            while True:
                item = requests.get()
                if item is None:
                    return
                yield item

        try:
            requests.put(rpc_pb2.LeaseKeepAliveRequest(ID=self.lease_id))
            for resp in self.client.grpc.stream("LeaseKeepAlive", request_iter()):
                if resp.TTL <= 0:  # type: ignore[attr-defined]
                    break
                if self._stop.wait(max(self.ttl_s / 3.0, 0.5)):
                    break
                requests.put(rpc_pb2.LeaseKeepAliveRequest(ID=self.lease_id))
        except ClientError:
            pass
        finally:
            requests.put(None)
            if not self._stop.is_set():
                self.done.set()

    def close(self) -> None:
        self._stop.set()
        try:  # noqa: SIM105
            self.client.call("LeaseRevoke", {"ID": str(self.lease_id)})
        except ClientError:
            pass


def _wait_delete(client: Client, key: str, revision: int, cancel: threading.Event) -> None:
    from google.protobuf import json_format

    from petcd.pb.etcdserverpb import rpc_pb2

    requests: queue.Queue[Any] = queue.Queue()
    create = {"create_request": {"key": key, "start_revision": str(revision)}}
    requests.put(json_format.ParseDict(create, rpc_pb2.WatchRequest()))

    def request_iter() -> Iterator[Any]:
        while True:
            item = requests.get()
            if item is None:
                return
            yield item

    stream = client.grpc.stream("Watch", request_iter())
    finished = threading.Event()

    def stop_on_cancel() -> None:
        while not finished.wait(0.1):
            if cancel.is_set():
                stream.cancel()
                return

    threading.Thread(target=stop_on_cancel, daemon=True).start()
    try:
        for resp in stream:
            if any(ev.type == 1 for ev in resp.events):  # type: ignore[attr-defined]
                return
            if resp.canceled:  # type: ignore[attr-defined]
                return
    except ClientError:
        if not cancel.is_set():
            raise
    finally:
        finished.set()
        requests.put(None)


def _wait_deletes(client: Client, prefix: str, max_create_rev: int, cancel: threading.Event) -> None:
    raw = base64.b64decode(prefix)
    while not cancel.is_set():
        resp = client.call(
            "Range",
            {
                "key": prefix,
                "range_end": b64(prefix_end(raw)),
                "max_create_revision": str(max_create_rev),
                "sort_order": 2,
                "sort_target": 2,
                "limit": "1",
            },
        )
        kvs = resp.get("kvs", [])
        if not kvs:
            return
        _wait_delete(client, kvs[0]["key"], int(resp["header"]["revision"]), cancel)


def _contend(
    client: Client, session: Session, name: str, value: bytes, cancel: threading.Event
) -> tuple[str, int]:
    """Write our key under ``name/`` and wait until it is the oldest; (key as base64, revision)."""
    prefix = name.encode() + b"/"
    key = b64(prefix + f"{session.lease_id:x}".encode())
    put: JsonDict = {"key": key, "lease": str(session.lease_id)}
    if value:
        put["value"] = b64(value)
    txn = {
        "compare": [{"key": key, "target": 1, "result": 0, "create_revision": "0"}],
        "success": [{"request_put": put}],
        "failure": [{"request_range": {"key": key}}],
    }
    resp = client.call("Txn", txn)
    my_rev = int(resp["header"]["revision"])
    if not resp.get("succeeded"):
        kv = resp["responses"][0]["response_range"]["kvs"][0]
        my_rev = int(kv["create_revision"])
        if value and base64.b64decode(kv.get("value", "")) != value:
            client.call("Put", put)
    _wait_deletes(client, b64(prefix), my_rev - 1, cancel)
    return key, my_rev


def _on_signal(event: threading.Event) -> None:
    def handler(signum: int, frame: Any) -> None:
        event.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def lock(ctx: Context) -> int:
    if not ctx.args:
        raise CtlError(EXIT_BAD_ARGS, "lock takes a lock name argument and an optional command to execute")
    printer = ctx.printer
    client = ctx.client
    stop = threading.Event()
    _on_signal(stop)
    try:
        session = Session(client, int(ctx.flag("ttl")))
        key, _ = _contend(client, session, ctx.args[0], b"", stop)
        if stop.is_set():
            session.close()
            return 0
        command = ctx.args[1:]
        if command:
            rev = int(client.call("Range", {"key": key})["header"]["revision"])
            env = dict(os.environ)
            env["ETCD_LOCK_KEY"] = base64.b64decode(key).decode("utf-8", "surrogateescape")
            env["ETCD_LOCK_REV"] = str(rev)
            ctx.flush()
            result = subprocess.run(command, env=env, check=False)
            client.call("DeleteRange", {"key": key})
            session.close()
            if result.returncode != 0:
                raise CtlError(EXIT_ERROR, f"exit status {result.returncode}")
            return 0
        resp = client.call("Range", {"key": key})
        if not resp.get("kvs"):
            raise CtlError(EXIT_ERROR, "lock lost on init")
        printer.get(resp)
        ctx.flush()
        while not stop.wait(0.2):
            if session.done.is_set():
                raise CtlError(EXIT_ERROR, "session expired")
        client.call("DeleteRange", {"key": key})
        session.close()
    except ClientError as err:
        raise CtlError(EXIT_ERROR, err.message) from None
    return 0


def elect(ctx: Context) -> int:
    args = ctx.args
    if len(args) not in (1, 2):
        raise CtlError(
            EXIT_BAD_ARGS, "elect takes one election name argument and an optional proposal argument"
        )
    listen = bool(ctx.flag("listen"))
    if len(args) == 1 and not listen:
        raise CtlError(EXIT_BAD_ARGS, "no proposal argument but -l not set")
    if len(args) == 2 and listen:
        raise CtlError(EXIT_BAD_ARGS, "proposal given but -l is set")
    printer = ctx.printer
    client = ctx.client
    stop = threading.Event()
    _on_signal(stop)
    try:
        if listen:
            return _observe(ctx, client, args[0], stop)
        session = Session(client, 60)
        key, _ = _contend(client, session, args[0], os.fsencode(args[1]), stop)
        if stop.is_set():
            session.close()
            return 0
        printer.get(client.call("Range", {"key": key}))
        ctx.flush()
        while not stop.wait(0.2):
            if session.done.is_set():
                raise CtlError(EXIT_ERROR, "elect: session expired")
        client.call("DeleteRange", {"key": key})
        session.close()
    except ClientError as err:
        raise CtlError(EXIT_ERROR, err.message) from None
    return 0


def _observe(ctx: Context, client: Client, name: str, stop: threading.Event) -> int:
    """Print the leader's key and value each time the leadership or the proposal changes."""
    prefix = name.encode() + b"/"
    first = {
        "key": b64(prefix),
        "range_end": b64(prefix_end(prefix)),
        "sort_target": 2,
        "sort_order": 1,
        "limit": "1",
    }
    last_printed: tuple[str, str] | None = None
    while not stop.is_set():
        resp = client.call("Range", first)
        kvs = resp.get("kvs", [])
        if kvs:
            kv = kvs[0]
            current = (kv["key"], kv.get("value", ""))
            if current != last_printed:
                ctx.printer.get({"header": resp["header"], "kvs": [kv], "count": "1"})
                ctx.flush()
                last_printed = current
        stop.wait(0.2)
    return 0
