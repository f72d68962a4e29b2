"""check perf and check datascale: etcdctl's load checks, with etcd's verdicts.

check perf: a fixed-rate write load, then etcd's pass/fail verdict on throughput and latency.

The workloads are etcdctl's (writes/s and concurrent clients, 60 s each); keys are 256 bytes
under ``--prefix`` (a random varint then zeros) with 1 KiB zero values, and the prefix is deleted
afterwards. Requests go over one gRPC channel from a pool of client threads, paced by a
token-bucket limiter of burst 1, like Go's ``rate.Limiter``. ``PETCD_CHECK_PERF_DURATION_S``
shortens the run (tests use it); etcd has no such knob.

check datascale: write the model's number of 1 KiB key-values as fast as the clients go and
report how much the first endpoint's resident memory grew (``process_resident_memory_bytes``
from its ``/metrics``). ``PETCD_CHECK_DATASCALE_LIMIT`` caps the key count for tests.
"""

from __future__ import annotations

import math
import queue
import random
import statistics
import threading
import time
from typing import Any

from petcd.cli.etcdctl.context import Context
from petcd.cli.etcdctl.errors import EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT, CtlError
from petcd.cli.etcdctl.gofmt import go_quote
from petcd.cli.etcdctl.kv import b64, prefix_end
from petcd.client import ClientError, parse_endpoint

ALIASES = {
    "s": "s",
    "small": "s",
    "m": "m",
    "medium": "m",
    "l": "l",
    "large": "l",
    "xl": "xl",
    "xLarge": "xl",
}
# model -> (writes per second, clients, duration in seconds)
LOADS = {"s": (150, 50, 60), "m": (1000, 200, 60), "l": (8000, 500, 60), "xl": (15000, 1000, 60)}
# model -> (key-values, clients); each key and value is 512 bytes
SCALES = {"s": (10_000, 50), "m": (100_000, 200), "l": (1_000_000, 500), "xl": (3_000_000, 1000)}


def _varint(value: int) -> bytes:
    # Go's binary.PutVarint: zig-zag, then base-128 little-endian groups
    ux = (value << 1) ^ (value >> 63)
    out = bytearray()
    while ux >= 0x80:
        out.append((ux & 0x7F) | 0x80)
        ux >>= 7
    out.append(ux)
    return bytes(out)


def _auto_compact_defrag(ctx: Context, rev: int) -> None:
    out = ctx.printer
    if ctx.flag("auto-compact"):
        out.line(f"Compacting with revision {rev}")
        ctx.call("Compact", {"revision": str(rev), "physical": True})
        out.line(f"Compacted with revision {rev}")
    if ctx.flag("auto-defrag"):
        for ep in ctx.endpoints():
            out.line(f"Defragmenting {go_quote(ep)}")
            try:
                ctx.client.call("Defragment", {}, ctx.endpoint(ep))
            except ClientError as err:
                raise CtlError(EXIT_ERROR, err.message) from None
            out.line(f"Defragmented {go_quote(ep)}")


def perf(ctx: Context) -> int:
    load = str(ctx.flag("load"))
    if load not in ALIASES:
        raise CtlError(EXIT_BAD_FEATURE, f"unknown load option {load}")
    limit, clients, default_s = LOADS[ALIASES[load]]
    duration_s = float(ctx.environ.get("PETCD_CHECK_PERF_DURATION_S", default_s))
    prefix = str(ctx.flag("prefix")).encode()
    client = ctx.client
    try:
        existing = client.call(
            "Range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix)), "limit": "1"}
        )
    except ClientError as err:
        raise CtlError(EXIT_ERROR, err.message) from None
    if existing.get("kvs"):
        p = prefix.decode()
        raise CtlError(
            EXIT_INVALID_INPUT, f"prefix {go_quote(p)} has keys. Delete with 'etcdctl del --prefix {p}' first"
        )

    from petcd.pb.etcdserverpb import rpc_pb2

    grpc = client.grpc
    value = bytes(1024)
    requests: queue.Queue[Any] = queue.Queue(maxsize=clients)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def worker() -> None:
        while True:
            req = requests.get()
            if req is None:
                return
            start = time.monotonic()
            err = None
            try:
                grpc.call_pb("Put", req)
            except ClientError as e:
                err = e.message
            took = time.monotonic() - start
            with lock:
                if err is None:
                    latencies.append(took)
                else:
                    errors[err] = errors.get(err, 0) + 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    rng = random.Random()
    began = time.monotonic()
    deadline = began + duration_s
    interval = 1.0 / limit
    next_at = began
    while True:
        now = time.monotonic()
        if next_at > now:
            time.sleep(next_at - now)
        if time.monotonic() >= deadline:
            break
        next_at += interval
        key = prefix + _varint(rng.randrange(2**63 - 1)).ljust(256, b"\x00")
        requests.put(rpc_pb2.PutRequest(key=key, value=value))
    for _ in threads:
        requests.put(None)
    for t in threads:
        t.join()
    total_s = time.monotonic() - began

    try:
        resp = client.call("DeleteRange", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
    except ClientError as err:
        raise CtlError(EXIT_ERROR, err.message) from None
    out = ctx.printer
    _auto_compact_defrag(ctx, int(resp["header"]["revision"]))

    ok = True
    if errors:
        out.line("FAIL: too many errors")
        for msg, n in errors.items():
            out.line(f"FAIL: ERROR({msg}) -> {n}")
        ok = False
    rps = len(latencies) / total_s if total_s > 0 else 0.0
    if rps / limit <= 0.9:
        out.line(f"FAIL: Throughput too low: {int(rps) + 1} writes/s")
        ok = False
    else:
        out.line(f"PASS: Throughput is {int(rps) + 1} writes/s")
    slowest = max(latencies, default=0.0)
    if slowest > 0.5:
        out.line(f"Slowest request took too long: {slowest:f}s")
        ok = False
    else:
        out.line(f"PASS: Slowest request took {slowest:f}s")
    stddev = statistics.pstdev(latencies) if len(latencies) > 1 else 0.0
    if math.isnan(stddev) or stddev > 0.1:
        out.line(f"Stddev too high: {stddev:f}s")
        ok = False
    else:
        out.line(f"PASS: Stddev is {stddev:f}s")
    out.line("PASS" if ok else "FAIL")
    return 0 if ok else EXIT_ERROR


def _resident_memory_bytes(ctx: Context, endpoint: str) -> float:
    """process_resident_memory_bytes from the endpoint's /metrics (0.0 if it cannot be read)."""
    import socket

    ep = parse_endpoint(endpoint)
    try:
        with socket.create_connection((ep.host, ep.port), timeout=float(ctx.flag("dial-timeout"))) as sock:
            sock.settimeout(float(ctx.flag("command-timeout")))
            sock.sendall(
                f"GET /metrics HTTP/1.1\r\nHost: {ep.grpc_target}\r\nConnection: close\r\n\r\n".encode()
            )
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
    except OSError as err:
        ctx.printer.line(f"fetch error: {err}")
        return 0.0
    from petcd.client.gateway import _parse_response

    _, body = _parse_response(b"".join(chunks))
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("process_resident_memory_bytes"):
            try:
                return float(line.split()[-1])
            except ValueError:
                return 0.0
    ctx.printer.line("could not find: process_resident_memory_bytes")
    return 0.0


def datascale(ctx: Context) -> int:
    load = str(ctx.flag("load"))
    if load not in ALIASES:
        raise CtlError(EXIT_BAD_FEATURE, f"unknown load option {load}")
    limit, clients = SCALES[ALIASES[load]]
    limit = min(limit, int(ctx.environ.get("PETCD_CHECK_DATASCALE_LIMIT", limit)))
    prefix = str(ctx.flag("prefix")).encode()
    client = ctx.client
    out = ctx.printer
    try:
        existing = client.call(
            "Range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix)), "limit": "1"}
        )
    except ClientError as err:
        raise CtlError(EXIT_ERROR, err.message) from None
    if existing.get("kvs"):
        p = prefix.decode()
        raise CtlError(
            EXIT_INVALID_INPUT, f"prefix {go_quote(p)} has keys. Delete with etcdctl del --prefix {p} first"
        )
    endpoint = str(ctx.endpoints()[0])
    before = _resident_memory_bytes(ctx, endpoint)
    if before == 0:
        out.line("FAIL: Could not read process_resident_memory_bytes before the put operations.")
        return EXIT_ERROR
    out.line(
        f"Start data scale check for work load [{limit} key-value pairs, 1024 bytes per key-value, "
        f"{clients} concurrent clients]."
    )
    ctx.flush()
    from petcd.pb.etcdserverpb import rpc_pb2

    grpc = client.grpc
    value = bytes(512)
    requests: queue.Queue[Any] = queue.Queue(maxsize=clients)
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def worker() -> None:
        while (req := requests.get()) is not None:
            try:
                grpc.call_pb("Put", req)
            except ClientError as e:
                with lock:
                    errors[e.message] = errors.get(e.message, 0) + 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    rng = random.Random()
    for _ in range(limit):
        key = prefix + _varint(rng.randrange(2**63 - 1)).ljust(512, b"\x00")
        requests.put(rpc_pb2.PutRequest(key=key, value=value))
    for _ in threads:
        requests.put(None)
    for t in threads:
        t.join()
    after = _resident_memory_bytes(ctx, endpoint)
    if after == 0:
        out.line("FAIL: Could not read process_resident_memory_bytes after the put operations.")
        return EXIT_ERROR
    try:
        resp = client.call("DeleteRange", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
    except ClientError as err:
        raise CtlError(EXIT_ERROR, err.message) from None
    _auto_compact_defrag(ctx, int(resp["header"]["revision"]))
    if errors:
        out.line("FAIL: too many errors")
        for msg, n in errors.items():
            out.line(f"FAIL: ERROR({msg}) -> {n}")
        return EXIT_ERROR
    used_mb = (after - before) / (1024 * 1024)
    out.line(f"PASS: Approximate system memory used : {used_mb:.2f} MB.")
    return 0
