"""petcd next to the reference etcd, same machine, same run: a table of petcd/etcd ratios.

For each cluster size (1 member, then 3 members on this machine) the script starts the reference
etcd (/usr/bin/etcd), runs every workload with ``petcd-benchmark`` (``-w json``), stops it, then does
the same with petcd (.venv/bin/etcd) started with the same flags (127.0.0.1, free ports, a fresh
temporary data dir each time). It also measures a do-nothing grpc.aio KV server
(``petcd-benchmark null-server``) with the same put and range workloads: the ceiling of one Python
gRPC process, which no petcd front-end process can pass (and the floor of put-1's latency).

Workloads (issue 7's targets):

    put-1000    put --clients=1000 --conns=100 --val-size=256       requests/s, higher is better
    range-s     range --consistency=s at 1000 clients/100 conns     requests/s
    range-l     range --consistency=l at 1000 clients/100 conns     requests/s
    put-1       put --clients=1 --conns=1 --val-size=256            p50 latency, lower is better
    watch       watch: 10 streams x 100 watchers, 100 puts          events/s delivered

``--repeat N`` runs every figure N times and keeps the best one: on a shared machine other work
only ever slows a run down.

Every process the script starts runs in its own session and is stopped (SIGTERM, then SIGKILL
to its whole process group) when its turn ends, on errors and on Ctrl-C too. Every benchmark run
has a timeout; a run that fails or times out shows as ``failed`` and the table goes on.

    python scripts/bench_compare.py [--quick] [--members 1,3] [--procs 2] [--total N]
                                    [--frontends 0,1,2,4] [--petcd-args "..."] [--json out.json]

``--quick`` uses small totals (a smoke test, about a minute); the defaults take a few minutes.
``--frontends`` runs petcd once per front-end process count (``--frontend-processes``; 0 serves
clients in the member's process) and prints a column and a ratio for each: the scaling table.
The do-nothing server's table compares petcd per front-end process. ``--petcd-args`` adds other
petcd-only flags to petcd's command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "support"))
from servers import free_ports  # type: ignore[import-not-found]  # noqa: E402 - tests' helper, path above

VENV_BIN = Path(sys.executable).parent
PETCD = VENV_BIN / "etcd"
BENCHMARK = [sys.executable, "-m", "petcd.benchmark"]
REFERENCE = Path("/usr/bin/etcd")
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Workload:
    name: str
    argv: tuple[str, ...]  # global flags, then the command and its flags ({total} filled in)
    metric: str  # "rps", "p50" or "events"
    higher_is_better: bool
    target: str  # issue 7's floor for the ratio


def workloads(total: int, latency_total: int, watch_puts: int, procs: int) -> list[Workload]:
    many = ("--clients=1000", "--conns=100", f"--procs={procs}")
    return [
        Workload(
            "put-1000",
            (*many, "put", f"--total={total}", "--val-size=256"),
            "rps",
            True,
            ">= 0.25 (goal 0.5)",
        ),
        Workload(
            "range-s",
            (*many, "range", "foo", "--consistency=s", f"--total={total}"),
            "rps",
            True,
            ">= 0.4 (goal 0.5)",
        ),
        Workload(
            "range-l",
            (*many, "range", "foo", "--consistency=l", f"--total={total}"),
            "rps",
            True,
            ">= 0.3 (goal 0.5)",
        ),
        Workload(
            "put-1",
            ("--clients=1", "--conns=1", "put", f"--total={latency_total}", "--val-size=256"),
            "p50",
            False,
            "<= 2 (latency)",
        ),
        Workload(
            "watch",
            (
                "--clients=10",
                "--conns=10",
                f"--procs={procs}",
                "watch",
                "--streams=10",
                "--watch-per-stream=100",
                f"--put-total={watch_puts}",
            ),
            "events",
            True,
            "(etcd ~660k ev/s)",
        ),
    ]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's group (it runs in its own session), then SIGKILL what is left."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # children it may have left behind
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _ready(endpoints: list[str], deadline: float, procs: list[subprocess.Popen[bytes]]) -> None:
    """Wait until every member answers a linearizable range (a leader exists, all caught up)."""
    import grpc

    from petcd.pb.etcdserverpb import rpc_pb2 as pb
    from petcd.pb.etcdserverpb import rpc_pb2_grpc

    for ep in endpoints:
        with grpc.insecure_channel(ep) as ch:
            stub = rpc_pb2_grpc.KVStub(ch)
            while True:
                try:
                    stub.Range(pb.RangeRequest(key=b"ready"), timeout=2)
                    break
                except grpc.RpcError:
                    dead = [p for p in procs if p.poll() is not None]
                    if dead:
                        raise RuntimeError(f"a member exited with code {dead[0].returncode}") from None
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{ep} not ready after {READY_TIMEOUT_S} s") from None
                    time.sleep(0.2)


@contextlib.contextmanager
def cluster(kind: str, members: int, base: Path, extra: list[str]) -> Iterator[list[str]]:
    """``members`` members of ``kind`` ("etcd" or "petcd") on 127.0.0.1; yields client endpoints."""
    ports = free_ports(2 * members)
    names = [f"m{i + 1}" for i in range(members)]
    peers = [f"http://127.0.0.1:{ports[2 * i + 1]}" for i in range(members)]
    clients = [f"http://127.0.0.1:{ports[2 * i]}" for i in range(members)]
    initial = ",".join(f"{n}={p}" for n, p in zip(names, peers, strict=True))
    binary = str(REFERENCE if kind == "etcd" else PETCD)
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for i in range(members):
            log = (base / f"{kind}-{names[i]}.log").open("wb")
            logs.append(log)
            cmd = [
                binary,
                f"--name={names[i]}",
                f"--data-dir={base / f'{kind}-{names[i]}.etcd'}",
                f"--listen-client-urls={clients[i]}",
                f"--advertise-client-urls={clients[i]}",
                f"--listen-peer-urls={peers[i]}",
                f"--initial-advertise-peer-urls={peers[i]}",
                f"--initial-cluster={initial}",
                "--initial-cluster-state=new",
                "--initial-cluster-token=bench-compare",
                *(extra if kind == "petcd" else []),
            ]
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        endpoints = [c.removeprefix("http://") for c in clients]
        _ready(endpoints, time.monotonic() + READY_TIMEOUT_S, procs)
        yield endpoints
    finally:
        for p in procs:
            stop(p)
        for log in logs:
            log.close()


@contextlib.contextmanager
def null_server(base: Path) -> Iterator[list[str]]:
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    log = (base / "null-server.log").open("wb")
    proc = subprocess.Popen(
        [*BENCHMARK, "null-server", f"--listen={address}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _ready([address], time.monotonic() + READY_TIMEOUT_S, [proc])
        yield [address]
    finally:
        stop(proc)
        log.close()


def run_benchmark(endpoints: list[str], w: Workload, timeout_s: float) -> dict[str, Any] | None:
    cmd = [*BENCHMARK, f"--endpoints={','.join(endpoints)}", "-w", "json", *w.argv]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        print(f"    {w.name}: timed out after {timeout_s:.0f} s", file=sys.stderr)
        return None
    finally:
        stop(proc)
    if proc.returncode != 0:
        print(f"    {w.name}: failed: {err.decode(errors='replace').strip()[-500:]}", file=sys.stderr)
        return None
    doc: dict[str, Any] = json.loads(out)
    return doc


def figure(w: Workload, doc: dict[str, Any] | None) -> float | None:
    if doc is None:
        return None
    results = doc["results"]
    if w.metric == "events":
        return float(results["events"]["rps"])
    (res,) = results.values()
    if res["count"] == 0:
        return None
    if w.metric == "p50":
        return float(res["percentiles_s"]["50"])
    return float(res["rps"])


def generator_cores(doc: dict[str, Any] | None) -> float | None:
    """How many cores the load processes kept busy (their CPU time over the run's wall time)."""
    if doc is None:
        return None
    wall = max((r["total_s"] for r in doc["results"].values()), default=0.0)
    return float(doc["load_cpu_s"]) / wall if wall > 0 else None


def fmt(w: Workload, value: float | None) -> str:
    if value is None:
        return "failed"
    if w.metric == "p50":
        return f"{value * 1000:.2f} ms"
    return f"{value:,.0f}/s"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}"


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} cores ({cpu}), {system}"


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@dataclass(frozen=True)
class Variant:
    """One server under test: the reference etcd, or petcd with some front-end processes."""

    label: str
    kind: str  # "etcd" or "petcd"
    args: tuple[str, ...] = ()
    frontends: int = 0  # petcd's --frontend-processes (0: clients served in the member's process)


def variants(frontends: list[int], extra: list[str]) -> list[Variant]:
    out = [Variant("etcd 3.4.23", "etcd")]
    for n in frontends:
        if n == 0:
            out.append(Variant("petcd", "petcd", tuple(extra)))
        else:
            out.append(Variant(f"petcd fe={n}", "petcd", (*extra, f"--frontend-processes={n}"), n))
    return out


def measure(
    args: argparse.Namespace,
    loads: list[Workload],
    servers: list[Variant],
    sizes: list[int],
    timeout_s: float,
) -> dict[str, dict[str, float | None]]:
    """Every workload on every server and cluster size: figures[f"{members} {workload}"][label]."""
    figures: dict[str, dict[str, float | None]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        base = Path(tmp)
        if not args.no_null:
            print("null server (do-nothing grpc.aio KV, 1 process)", file=sys.stderr)
            with null_server(base) as eps:
                for w in null_loads(loads):
                    figures.setdefault(f"null {w.name}", {})["null"] = best_of(
                        args.repeat, eps, w, timeout_s
                    )[1]
        for n in sizes:
            for v in servers:
                print(f"{v.label}, {n} member(s)", file=sys.stderr)
                run_dir = base / f"{v.label.replace(' ', '_')}-{n}"
                run_dir.mkdir()
                with cluster(v.kind, n, run_dir, list(v.args)) as eps:
                    for w in loads:
                        doc, value = best_of(args.repeat, eps, w, timeout_s)
                        row = figures.setdefault(f"{n} {w.name}", {})
                        row[v.label] = value
                        row[f"{v.label} generator cores"] = generator_cores(doc)
                        print(f"    {w.name}: {fmt(w, value)}", file=sys.stderr)
    return figures


def best_of(
    repeat: int, endpoints: list[str], w: Workload, timeout_s: float
) -> tuple[dict[str, Any] | None, float | None]:
    """Run ``w`` ``repeat`` times; the best run (other work on a shared machine only slows runs down)."""
    best: tuple[dict[str, Any] | None, float | None] = (None, None)
    for _ in range(max(1, repeat)):
        doc = run_benchmark(endpoints, w, timeout_s)
        value = figure(w, doc)
        if value is not None and (
            best[1] is None or (value > best[1] if w.higher_is_better else value < best[1])
        ):
            best = (doc, value)
    return best


def null_loads(loads: list[Workload]) -> list[Workload]:
    return [w for w in loads if w.name in ("put-1000", "range-s", "put-1")]


def print_tables(
    figures: dict[str, dict[str, float | None]],
    loads: list[Workload],
    servers: list[Variant],
    sizes: list[int],
) -> None:
    etcd, ours = servers[0], servers[1:]
    head = ["members", "workload", etcd.label]
    for v in ours:
        head += [v.label, f"{v.label}/etcd"]
    head += ["target", "generator cores, per server"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for n in sizes:
        for w in loads:
            row = figures.get(f"{n} {w.name}", {})
            cells = [str(n), w.name, fmt(w, row.get(etcd.label))]
            for v in ours:
                cells += [fmt(w, row.get(v.label)), ratio(row.get(v.label), row.get(etcd.label))]
            cells += [w.target, "/".join(_cores(row.get(f"{v.label} generator cores")) for v in servers)]
            print("| " + " | ".join(cells) + " |")


def print_null_table(
    figures: dict[str, dict[str, float | None]], loads: list[Workload], ours: list[Variant]
) -> None:
    """petcd (1 member) next to the do-nothing server, per front-end process."""
    print()
    head = ["workload", "do-nothing grpc.aio server"]
    for v in ours:
        head += [f"{v.label}, 1 member", "per front end / null"]
    head.append("target")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for w in null_loads(loads):
        null = figures.get(f"null {w.name}", {}).get("null")
        cells = [w.name, fmt(w, null)]
        for v in ours:
            value = figures.get(f"1 {w.name}", {}).get(v.label)
            per_frontend = value / max(1, v.frontends) if value is not None and w.metric != "p50" else value
            cells += [fmt(w, value), ratio(per_frontend, null)]
        cells.append("(latency floor)" if w.metric == "p50" else ">= 0.8 per front end")
        print("| " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small totals: a smoke test")
    parser.add_argument("--members", default="1,3", help="cluster sizes, comma separated")
    parser.add_argument(
        "--procs", type=int, default=2, help="petcd-benchmark load processes for 1000 clients"
    )
    parser.add_argument("--total", type=int, default=0, help="requests per throughput run")
    parser.add_argument("--petcd-args", default="", help="extra (petcd-only) flags for petcd members")
    parser.add_argument(
        "--frontends", default="0", help="petcd front-end process counts to compare, e.g. 0,1,2,4"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure, the best one kept")
    parser.add_argument("--no-null", action="store_true", help="skip the do-nothing server")
    parser.add_argument("--json", default="", help="also write every figure to this file")
    parser.add_argument("--timeout", type=float, default=0, help="seconds per benchmark run")
    args = parser.parse_args()

    total = args.total or (2000 if args.quick else 10000)
    latency_total = 200 if args.quick else 1000
    watch_puts = 20 if args.quick else 100
    timeout_s = args.timeout or (120.0 if args.quick else 300.0)
    loads = workloads(total, latency_total, watch_puts, args.procs)
    extra = shlex.split(args.petcd_args)
    servers = variants([int(f) for f in args.frontends.split(",") if f.strip()], extra)
    sizes = [int(m) for m in args.members.split(",") if m.strip()]
    if not REFERENCE.exists():
        print(f"the reference etcd is missing: {REFERENCE}", file=sys.stderr)
        return 1

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    # the default SIGTERM would skip the finally blocks that stop the servers
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        figures = measure(args, loads, servers, sizes, timeout_s)
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()[0]

    print(f"\nMachine: {machine()}; {args.procs} benchmark process(es) on the same cores.")
    print(f"Load average (1 min) before/after: {load_before:.1f}/{load_after:.1f} (other work may share it).")
    print(
        f"Totals: {total} requests per throughput run, {latency_total} for put-1, best of {args.repeat} "
        f"run(s); the whole compare took {elapsed:.0f} s."
    )
    if extra:
        print(f"petcd flags added: {' '.join(extra)}")
    print()
    print_tables(figures, loads, servers, sizes)
    if not args.no_null:
        print_null_table(figures, loads, servers[1:])
    if args.json:
        doc = {"machine": machine(), "load": [load_before, load_after], "figures": figures}
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
