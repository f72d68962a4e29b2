"""``petcd-benchmark``: etcd's benchmark tool (tools/benchmark) for petcd and any etcd.

    petcd-benchmark [global flags] COMMAND [flags]

Global flags are etcd's (``--endpoints --clients --conns --precise --sample --cacert --cert --key
--user --dial-timeout --target-leader``) plus ``--procs N`` (load processes; see ``runner``), ``--transport
h2|grpc`` (petcd's own HTTP/2 client, or grpcio) and ``--output text|json`` (``-w``): ``json``
prints one JSON object instead of etcd's text report, with the generator's CPU per request. Like
cobra's persistent flags they may stand before or after the command name.

Commands: ``put``, ``range KEY [END]``, ``txn-put``, ``txn-mixed KEY [END]``, ``watch``,
``watch-latency``, ``lease-keepalive``, ``mvcc put`` (in-process, no network), ``k8s`` (a
Kubernetes-like mix), and ``null-server`` (petcd's own: a do-nothing gRPC KV server, to measure
the generator's ceiling).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from collections.abc import Callable, Sequence
from typing import Any

from petcd.benchmark.report import Formatter, to_json
from petcd.benchmark.runner import (
    CALL_ERRORS,
    GlobalOptions,
    LoadError,
    RunResult,
    leader_endpoint,
    run_workload,
)


def _duration_s(text: str) -> float:
    """A Go duration (``10s``, ``500ms``, ``1m``) or plain seconds."""
    units = (("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    for suffix, scale in units:
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def _global_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    def d(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    g = parser.add_argument_group("global flags")
    g.add_argument("--endpoints", action="append", default=d(None), help="gRPC endpoints (comma separated)")
    g.add_argument("--clients", type=int, default=d(1), help="Total number of gRPC clients")
    g.add_argument("--conns", type=int, default=d(1), help="Total number of gRPC connections")
    g.add_argument(
        "--procs", type=int, default=d(1), help="load generator processes (petcd; clients/conns split)"
    )
    g.add_argument(
        "--precise", action="store_true", default=d(False), help="use full floating point precision"
    )
    g.add_argument(
        "--sample", action="store_true", default=d(False), help="'true' to sample requests for every second"
    )
    g.add_argument(
        "--output",
        "-w",
        choices=("text", "json"),
        default=d("text"),
        help="report format (json for machines)",
    )
    g.add_argument("--dial-timeout", type=_duration_s, default=d(10.0), help="dial timeout (e.g. 10s)")
    g.add_argument("--cacert", default=d(""), help="verify certificates of TLS servers using this CA bundle")
    g.add_argument("--cert", default=d(""), help="identify the TLS client using this certificate file")
    g.add_argument("--key", dest="tls_key", default=d(""), help="identify the TLS client using this key file")
    g.add_argument("--user", default=d(""), help="username:password for authentication")
    g.add_argument(
        "--target-leader", action="store_true", default=d(False), help="connect only to the leader node"
    )
    g.add_argument(
        "--transport",
        choices=("h2", "grpc"),
        default=d("h2"),
        help="unary calls over petcd's own HTTP/2 client (h2, ~3x cheaper) or grpcio (TLS: always grpcio)",
    )


def _rate_total(p: argparse.ArgumentParser, total: int, what: str) -> None:
    p.add_argument("--total", type=int, default=total, help=f"Total number of {what}")
    p.add_argument("--rate", type=int, default=0, help=f"Maximum {what} per second (0 is no limit)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="petcd-benchmark",
        description="A low-level benchmark tool for etcd3 (etcd's tools/benchmark, in petcd).",
    )
    _global_flags(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help_text: str, parent: Any = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, parents=[common])
        return p

    p = cmd("put", "Benchmark put")
    _rate_total(p, 10000, "puts")
    p.add_argument("--key-size", type=int, default=8, help="Key size of put request")
    p.add_argument("--val-size", type=int, default=8, help="Value size of put request")
    p.add_argument("--key-space-size", type=int, default=1, help="Maximum possible keys")
    p.add_argument("--sequential-keys", action="store_true", help="Use sequential keys")
    p.add_argument(
        "--compact-interval", type=_duration_s, default=0.0, help="Interval to compact database (e.g. 5m)"
    )
    p.add_argument(
        "--compact-index-delta", type=int, default=1000, help="Delta between current and compact revision"
    )
    p.add_argument("--check-hashkv", action="store_true", help="'true' to check hashkv")

    p = cmd("range", "Benchmark range")
    p.add_argument("key")
    p.add_argument("end", nargs="?", default="")
    _rate_total(p, 10000, "range requests")
    p.add_argument("--consistency", default="l", help="Linearizable(l) or Serializable(s)")
    p.add_argument("--limit", type=int, default=0, help="Maximum number of results to return from range")
    p.add_argument("--count-only", action="store_true", help="Only returns the count of keys")

    p = cmd("txn-put", "Benchmark txn-put")
    _rate_total(p, 10000, "txn requests")
    p.add_argument("--key-size", type=int, default=8, help="Key size of txn put")
    p.add_argument("--val-size", type=int, default=8, help="Value size of txn put")
    p.add_argument("--key-space-size", type=int, default=1, help="Maximum possible keys")
    p.add_argument("--txn-ops", type=int, default=1, help="Number of puts per txn")

    p = cmd("txn-mixed", "Benchmark a mixed load of txn-put & txn-range.")
    p.add_argument("key", nargs="?", default="")
    p.add_argument("end", nargs="?", default="")
    _rate_total(p, 10000, "txn requests")
    p.add_argument("--key-size", type=int, default=8, help="Key size of mixed txn")
    p.add_argument("--val-size", type=int, default=8, help="Value size of mixed txn")
    p.add_argument("--end-key", default="", help="Read operation range end key (reads scan every key)")
    p.add_argument("--limit", type=int, default=1000, help="Read operation range result limit")
    p.add_argument("--key-space-size", type=int, default=1, help="Maximum possible keys")
    p.add_argument("--consistency", default="l", help="Linearizable(l) or Serializable(s)")
    p.add_argument("--rw-ratio", type=float, default=1.0, help="Read/write ops ratio")

    p = cmd("watch", "Benchmark watch")
    p.add_argument("--streams", type=int, default=10, help="Total watch streams")
    p.add_argument("--watch-per-stream", type=int, default=100, help="Total watchers per stream")
    p.add_argument("--prefix", action="store_true", help="Watch a prefix instead of a single key")
    p.add_argument("--put-rate", type=int, default=0, help="Number of keys to put per second (0: no limit)")
    p.add_argument("--put-total", type=int, default=1000, help="Number of put requests")
    p.add_argument("--key-size", type=int, default=32, help="Key size of watch request")
    p.add_argument("--key-space-size", type=int, default=1, help="Maximum possible keys")
    p.add_argument("--sequential-keys", action="store_true", help="Use sequential keys")

    p = cmd("watch-latency", "Benchmark watch latency")
    p.add_argument("--total", type=int, default=10000, help="Total number of put requests")
    p.add_argument("--put-rate", type=int, default=100, help="Number of keys to put per second")
    p.add_argument("--key-size", type=int, default=32, help="Key size of watch response")
    p.add_argument("--val-size", type=int, default=32, help="Value size of watch response")

    p = cmd("lease-keepalive", "Benchmark lease keepalive")
    p.add_argument("--total", type=int, default=10000, help="Total number of lease keepalive requests")

    p = cmd("k8s", "Benchmark a Kubernetes-like mix (guarded updates, paged lists, watches)")
    _rate_total(p, 10000, "requests")
    p.add_argument("--objects", type=int, default=1000, help="objects created before the run")
    p.add_argument("--namespaces", type=int, default=10, help="namespaces the objects are spread over")
    p.add_argument("--val-size", type=int, default=1024, help="object size in bytes")
    p.add_argument("--page-size", type=int, default=500, help="list page size (limit)")
    p.add_argument("--update-ratio", type=float, default=0.6, help="share of guarded updates")
    p.add_argument("--get-ratio", type=float, default=0.3, help="share of single-object gets")
    p.add_argument("--list-ratio", type=float, default=0.1, help="share of paged namespace lists")
    p.add_argument("--watchers", type=int, default=10, help="watch streams on the resource prefix")

    mvcc = cmd("mvcc", "Benchmark mvcc (in-process, no network)")
    mvcc.add_argument("--batch-interval", type=int, default=100, help="Interval of batching (milliseconds)")
    mvcc.add_argument("--batch-limit", type=int, default=10000, help="A limit of batched transaction")
    mvcc_sub = mvcc.add_subparsers(dest="mvcc_command", required=True, metavar="COMMAND")
    p = cmd("put", "Benchmark put with the mvcc store", mvcc_sub)
    p.add_argument("--total", type=int, default=100, help="a total number of keys to put")
    p.add_argument("--key-size", type=int, default=64, help="a size of key (Byte)")
    p.add_argument("--val-size", "--value-size", type=int, default=128, help="a size of value (Byte)")
    p.add_argument("--txn-ops", type=int, default=1, help="a number of keys to put per transaction")
    p.add_argument("--data-dir", default="", help="where to create the store (default: a temp dir)")

    p = cmd("null-server", "(petcd) a do-nothing gRPC KV server, for the generator's own ceiling")
    p.add_argument("--listen", default="127.0.0.1:2379", help="host:port to serve on")
    p.add_argument("--server-procs", type=int, default=1, help="server processes (SO_REUSEPORT)")
    return parser


def global_options(args: argparse.Namespace) -> GlobalOptions:
    endpoints: list[str] = []
    for item in args.endpoints or ["127.0.0.1:2379"]:
        endpoints.extend(e.strip() for e in item.split(",") if e.strip())
    return GlobalOptions(
        endpoints=tuple(endpoints),
        clients=args.clients,
        conns=args.conns,
        procs=args.procs,
        precise=args.precise,
        sample=args.sample,
        output=args.output,
        dial_timeout_s=args.dial_timeout,
        cacert=args.cacert,
        cert=args.cert,
        key=args.tls_key,
        user=args.user,
        transport=args.transport,
    )


def _validate(args: argparse.Namespace, opts: GlobalOptions) -> str | None:
    if opts.clients < 1 or opts.conns < 1 or opts.procs < 1:
        return "--clients, --conns and --procs must be at least 1"
    if getattr(args, "key_space_size", 1) <= 0:
        return f"expected positive --key-space-size, got ({args.key_space_size})"
    if getattr(args, "consistency", "l") not in ("l", "s"):
        return "--consistency must be l (linearizable) or s (serializable)"
    return None


def _preamble(args: argparse.Namespace) -> str:
    if args.command in ("range", "txn-mixed"):
        return "bench with " + ("serializable" if args.consistency == "s" else "linearizable") + " range"
    return ""


def print_results(
    command: str, opts: GlobalOptions, result: RunResult, preamble: str = "", out: Any = None
) -> None:
    """etcd's text report of every series (or, with ``-w json``, one JSON object)."""
    out = out or sys.stdout
    series = result.series
    if opts.output == "json":
        requests = sum(len(s.lats) + sum(s.errors.values()) for s in series.values() if s.kind == "full")
        doc = {
            "command": command,
            "endpoints": list(opts.endpoints),
            "clients": opts.clients,
            "conns": opts.conns,
            "procs": opts.procs,
            "transport": opts.transport,
            # CPU the load processes spent (after connecting): the generator's cost per request
            "load_cpu_s": result.load_cpu_s,
            "load_cpu_us_per_request": 1e6 * result.load_cpu_s / max(1, requests),
            "results": {
                name: {"kind": s.kind, "events": s.events, **to_json(s.stats())}
                for name, s in series.items()
                if s.kind != "note"
            },
            "notes": [s.heading for s in series.values() if s.kind == "note"],
        }
        out.write(json.dumps(doc) + "\n")
        return
    fmt = Formatter(opts.precise)
    if preamble:
        out.write(preamble + "\n")
    for s in series.values():
        stats = s.stats()
        out.write(s.heading.format(ops=len(s.lats) + sum(s.errors.values()), events=s.events))
        if s.kind == "note":
            continue
        out.write((fmt.rate(stats) if s.kind == "rate" else fmt.report(stats)) + "\n")


def _total_and_rate(args: argparse.Namespace) -> tuple[int, float]:
    if args.command == "watch":
        # each process runs its share of the streams; the puts come from the first process
        return args.streams, 0.0
    if args.command == "watch-latency":
        return args.total, 0.0
    return args.total, float(getattr(args, "rate", 0) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # one seed for the whole run, so every load process derives the same keys
    args.seed = random.SystemRandom().randrange(1 << 31)
    opts = global_options(args)
    error = _validate(args, opts)
    if error:
        print(error, file=sys.stderr)
        return 2
    handler: Callable[[], RunResult]
    if args.command == "null-server":
        from petcd.benchmark.null_server import serve_forever

        return serve_forever(args.listen, args.server_procs)
    if args.command == "mvcc":
        from petcd.benchmark.mvcc_put import run_mvcc_put

        def handler() -> RunResult:
            return run_mvcc_put(args)

        name = "mvcc put"
    else:
        total, rate = _total_and_rate(args)
        if args.target_leader:
            try:
                opts = dataclasses.replace(opts, endpoints=(leader_endpoint(opts),))
            except LoadError as err:
                print(f"benchmark failed: {err}", file=sys.stderr)
                return 1

        def handler() -> RunResult:
            return run_workload(args.command, opts, args, total, rate)

        name = args.command
    try:
        result = handler()
    except (LoadError, ValueError, TimeoutError, OSError, *CALL_ERRORS) as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print_results(name, opts, result, _preamble(args))
    return 0
