"""In-process throughput of the MVCC store on LMDB (no raft, no network, no gRPC).

Loads N keys (100k by default, 1M with --million) in write transactions of --batch puts each (the
server applies one Ready per transaction), then measures, each for about --seconds:

* puts/s in transactions of 1 and of --batch puts (each put its own revision, as in etcd),
* single-key ranges/s at the current revision, and at a past revision,
* 1000-key ranges/s (a prefix range with limit 1000, counting the whole range as etcd does, and
  the same range without the count: ``[start, start+1000 keys)``),
* the time to open the store again (close, reopen the LMDB environment, first range),
* the size of the database per key.

Prints a markdown table. ``--memory`` runs the same on MemoryBackend. ``--etcd`` also loads the same
keys into the reference etcd (/usr/bin/etcd, through gRPC txns of 128 puts) and measures its restart:
from starting the process to the first answered range (etcd rebuilds its in-memory key index then).

    python benchmarks/mvcc_throughput.py [--keys N | --million] [--batch B] [--seconds S] [--memory] [--etcd]
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from petcd.backend import Backend
from petcd.backend.lmdb import LmdbBackend, db_path
from petcd.backend.memory import MemoryBackend
from petcd.mvcc.kvstore import KVStore
from petcd.mvcc.types import PutRequest, RangeRequest

VALUE = b"v" * 100


def key(i: int) -> bytes:
    return b"/registry/pods/default/pod-%08d" % i


def rss_kib() -> dict[str, int]:
    """RssAnon (heap: Python objects) and RssFile (mapped file pages: LMDB's page cache), in KiB."""
    out = {"RssAnon": 0, "RssFile": 0}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in out:
                    out[name] = int(value.split()[0])
    except OSError:
        pass
    return out


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Operations per second of ``fn`` (which returns how many it did), for about ``seconds``."""
    done = 0
    started = time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def etcd_restart_s(n: int, workdir: Path) -> tuple[float, float, float]:
    """Load ``n`` keys into the reference etcd, restart it.

    Returns (load puts/s, seconds to the first range after the restart, seconds per range with limit
    1000 counting the whole prefix, over gRPC on loopback).
    """
    import grpc

    from petcd.pb.etcdserverpb import rpc_pb2 as pb
    from petcd.pb.etcdserverpb import rpc_pb2_grpc

    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    client = f"http://127.0.0.1:{ports[0]}"
    peer = f"http://127.0.0.1:{ports[1]}"
    argv = [
        shutil.which("etcd") or "/usr/bin/etcd",
        "--data-dir",
        str(workdir / "etcd"),
        "--listen-client-urls",
        client,
        "--advertise-client-urls",
        client,
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        f"default={peer}",
        "--quota-backend-bytes",
        str(8 << 30),
    ]

    def start() -> tuple[subprocess.Popen[bytes], float]:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with grpc.insecure_channel(client.removeprefix("http://")) as channel:
            stub = rpc_pb2_grpc.KVStub(channel)
            while True:
                try:
                    stub.Range(pb.RangeRequest(key=key(n // 2)), timeout=1)
                    return proc, time.perf_counter() - started
                except grpc.RpcError:
                    time.sleep(0.01)

    proc, _ = start()
    started = time.perf_counter()
    with grpc.insecure_channel(client.removeprefix("http://")) as channel:
        stub = rpc_pb2_grpc.KVStub(channel)
        for lo in range(0, n, 128):
            ops = [
                pb.RequestOp(request_put=pb.PutRequest(key=key(i), value=VALUE))
                for i in range(lo, min(n, lo + 128))
            ]
            stub.Txn(pb.TxnRequest(success=ops))
    load_rate = n / (time.perf_counter() - started)
    proc.terminate()
    proc.wait()
    proc, restart_s = start()
    with grpc.insecure_channel(client.removeprefix("http://")) as channel:
        stub = rpc_pb2_grpc.KVStub(channel)
        rounds = 0
        started = time.perf_counter()
        while time.perf_counter() - started < 2:
            stub.Range(pb.RangeRequest(key=key(n // 3), range_end=b"/registry/pods0", limit=1000))
            rounds += 1
        counted_s = (time.perf_counter() - started) / rounds
    proc.terminate()
    proc.wait()
    return load_rate, restart_s, counted_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="1,000,000 keys")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--memory", action="store_true", help="MemoryBackend instead of LMDB")
    parser.add_argument("--etcd", action="store_true", help="also measure the reference etcd's restart")
    args = parser.parse_args()
    n = 1_000_000 if args.million else args.keys
    rng = random.Random(1)
    workdir = Path(tempfile.mkdtemp(prefix="petcd-bench-"))
    rows: list[tuple[str, str]] = []
    try:
        backend: Backend = (
            MemoryBackend() if args.memory else LmdbBackend(db_path(workdir), quota_bytes=8 << 30)
        )
        store = KVStore(backend)
        rss_before = rss_kib()

        started = time.perf_counter()
        for lo in range(0, n, args.batch):
            with store.write() as w:
                for i in range(lo, min(n, lo + args.batch)):
                    w.put(PutRequest(key(i), VALUE))
        load_s = time.perf_counter() - started
        rows.append((f"load {n:,} keys (txns of {args.batch})", f"{n / load_s:,.0f} puts/s"))
        loaded_rev = store.current_rev

        def put_single() -> int:
            store.put(PutRequest(key(rng.randrange(n)), VALUE))
            return 1

        def put_batch() -> int:
            with store.write() as w:
                for _ in range(args.batch):
                    w.put(PutRequest(key(rng.randrange(n)), VALUE))
            return args.batch

        rows.append(("put, 1 per txn", f"{rate(put_single, args.seconds):,.0f} puts/s"))
        rows.append((f"put, {args.batch} per txn", f"{rate(put_batch, args.seconds):,.0f} puts/s"))

        def get_one() -> int:
            for _ in range(100):
                store.range(RangeRequest(key(rng.randrange(n))))
            return 100

        def get_one_past() -> int:
            for _ in range(100):
                store.range(RangeRequest(key(rng.randrange(n)), revision=loaded_rev))
            return 100

        def range_1000_counted() -> int:
            lo = rng.randrange(n - 1000)
            r = store.range(RangeRequest(key(lo), b"/registry/pods0", limit=1000))
            assert len(r.kvs) == 1000
            return 1

        def range_1000() -> int:
            lo = rng.randrange(n - 1000)
            r = store.range(RangeRequest(key(lo), key(lo + 1000)))
            assert len(r.kvs) == 1000
            return 1

        rows.append(("range 1 key (current rev)", f"{rate(get_one, args.seconds):,.0f} ranges/s"))
        rows.append(("range 1 key (past rev)", f"{rate(get_one_past, args.seconds):,.0f} ranges/s"))
        rows.append(("range 1000 keys", f"{rate(range_1000, args.seconds):,.1f} ranges/s"))
        rows.append(
            (
                "range limit 1000, count whole prefix",
                f"{rate(range_1000_counted, args.seconds):,.1f} ranges/s",
            )
        )

        size = backend.size_bytes()
        rows.append(
            ("db size / key", f"{size / n:,.0f} B ({size / 2**20:,.0f} MiB, revision {store.current_rev:,})")
        )
        rss_after = rss_kib()
        revisions = store.current_rev - 1
        rows.append(("db size / revision", f"{size / revisions:,.0f} B"))
        for kind, what in (("RssAnon", "heap"), ("RssFile", "mapped LMDB pages")):
            grown = (rss_after[kind] - rss_before[kind]) * 1024
            rows.append((f"resident {what} growth / key ({kind})", f"{grown / n:,.0f} B"))

        if not args.memory:
            backend.close()
            started = time.perf_counter()
            backend = LmdbBackend(db_path(workdir), quota_bytes=8 << 30)
            store = KVStore(backend)
            store.range(RangeRequest(key(n // 2)))
            rows.append(
                (
                    f"open store of {n:,} keys + first range",
                    f"{(time.perf_counter() - started) * 1000:,.1f} ms",
                )
            )
        backend.close()
        if args.etcd:
            load_rate, restart_s, counted_s = etcd_restart_s(n, workdir)
            rows.append((f"etcd 3.4: load {n:,} keys (gRPC txns of 128)", f"{load_rate:,.0f} puts/s"))
            rows.append((f"etcd 3.4: restart with {n:,} keys, to first range", f"{restart_s * 1000:,.0f} ms"))
            rows.append(
                ("etcd 3.4 over gRPC: range limit 1000, count whole prefix", f"{1 / counted_s:,.1f} ranges/s")
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    kind = "MemoryBackend" if args.memory else "LMDB"
    print(f"\n| mvcc on {kind}, {n:,} keys, values {len(VALUE)} B | result |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
