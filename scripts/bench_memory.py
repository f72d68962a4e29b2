"""Memory at scale, petcd next to the reference etcd: RSS after loading N keys (issue 7: 1M keys of
256-byte values, petcd's RSS at most 3x etcd's), and optionally the 1000-watcher figure.

For each server (the reference etcd /usr/bin/etcd, then petcd .venv/bin/etcd once per
``--frontends`` count; one member on 127.0.0.1, free ports, a fresh temporary data dir; started and
stopped by scripts/bench_compare.py's ``cluster``) the script:

1. reads the memory of the member's processes when idle (the member and, with
   ``--frontend-processes``, its front-ends: every process of the session the member leads);
2. loads ``--keys`` distinct keys (8 bytes, 0..N-1 as etcd's benchmark encodes them) with
   ``--val-size`` values through ``petcd-benchmark``: ``put --sequential-keys`` at 1000 clients /
   100 connections (the default; one key per request and per raft entry, as an application would), or
   ``--loader txn``: ``txn-put --txn-ops 100`` (faster; note that etcd keeps up to
   ``--snapshot-count`` raft entries in memory, so 100-put entries inflate its RSS);
3. reads the memory again, then ranges the whole key space keys-only (one request, as
   ``etcdctl get "" --from-key --keys-only`` does; linearizable, and if that fails, which is
   reported, serializable) and reads it a third time;
4. measures the data dir (apparent size and allocated blocks: WAL segments are preallocated).

Memory figures come from ``/proc/<pid>/status`` (VmRSS and its split RssAnon / RssFile / RssShmem)
and ``/proc/<pid>/smaps_rollup`` (PSS, which divides shared pages among the processes mapping them:
front-ends map the same LMDB file, so their RSS sum counts those pages twice and the PSS sum does
not). Both LMDB (petcd) and bbolt (etcd) mmap their data file, so file-backed RSS is part of both
servers' figures. ``--mappings K`` lists the K largest mappings by RSS of each process after the
range (what dominates: the data file, the heap, anonymous arenas, shared libraries).

``--watch`` also runs bench_compare's ``watch`` workload (10 streams x 100 watchers on one key, 100
puts: events/s delivered) on a fresh member of each server, ``--repeat`` times, best kept.

    python scripts/bench_memory.py [--keys 1000000] [--val-size 256] [--frontends 0,2]
                                   [--loader put|txn] [--no-etcd] [--watch] [--json out.json]

Every process is stopped when its turn ends, on errors and on Ctrl-C or SIGTERM too; every
benchmark run has a timeout (``--load-timeout``, ``--timeout``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_compare as bc  # the sibling script, path above

KB = 1024
MB = 1024 * 1024
RANGE_TIMEOUT_S = 600.0
STATUS_FIELDS = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "RssShmem": "shmem"}
ROLLUP_FIELDS = {"Pss": "pss", "Pss_Anon": "pss_anon", "Pss_File": "pss_file"}


@dataclass
class Memory:
    """Bytes of one process, or the sum over a member's processes."""

    rss: int = 0
    anon: int = 0
    file: int = 0
    shmem: int = 0
    pss: int = 0
    pss_anon: int = 0
    pss_file: int = 0
    procs: int = 0

    def __add__(self, other: Memory) -> Memory:
        return Memory(**{k: v + getattr(other, k) for k, v in asdict(self).items()})


def parse_kb_fields(text: str, names: dict[str, str]) -> dict[str, int]:
    """``Name:   123 kB`` lines of /proc status files -> {names[Name]: bytes} for the names asked."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in names:
            out[names[name]] = int(rest.split()[0]) * KB
    return out


def process_memory(pid: int) -> Memory:
    status = Path(f"/proc/{pid}/status").read_text()
    values = parse_kb_fields(status, STATUS_FIELDS)
    with contextlib.suppress(OSError):  # an older kernel: no PSS
        values |= parse_kb_fields(Path(f"/proc/{pid}/smaps_rollup").read_text(), ROLLUP_FIELDS)
    return Memory(**values, procs=1)


def session_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name (field 2) may hold spaces and parentheses: split after its closing one
    return int(stat.rsplit(")", 1)[1].split()[3])


def member_pids(data_dir: Path) -> list[int]:
    """The processes of the member using ``data_dir``: its leader first, then the rest of its session."""
    flag = f"--data-dir={data_dir}".encode()
    leaders, sessions = [], {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            sessions[pid] = session_of(pid)
            if flag in (entry / "cmdline").read_bytes().split(b"\0"):
                leaders.append(pid)
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    if not leaders:
        raise RuntimeError(f"no process runs with {flag.decode()}")
    wanted = {sessions[p] for p in leaders if p in sessions}
    return sorted(leaders) + sorted(p for p, s in sessions.items() if s in wanted and p not in leaders)


def total_memory(pids: Iterable[int]) -> Memory:
    out = Memory()
    for pid in pids:
        try:
            out = out + process_memory(pid)
        except OSError:
            continue
    return out


def mappings(pid: int, top: int) -> list[tuple[str, int, int]]:
    """The ``top`` largest mappings of ``pid`` by RSS, summed per name: (name, rss, pss) bytes."""
    sums: dict[str, list[int]] = {}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if not head:
            continue
        if "-" in head[0] and not head[0].endswith(":"):  # a mapping's header line
            name = head[5] if len(head) > 5 else "[anon]"
            sums.setdefault(name, [0, 0])
        elif head[0] == "Rss:":
            sums[name][0] += int(head[1]) * KB
        elif head[0] == "Pss:":
            sums[name][1] += int(head[1]) * KB
    ranked = sorted(sums.items(), key=lambda kv: kv[1][0], reverse=True)[:top]
    return [(n, r, p) for n, (r, p) in ranked]


def dir_size(path: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of every file under ``path``."""
    apparent = allocated = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.stat(os.path.join(root, f))
            except OSError:
                continue
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


def load_workload(args: argparse.Namespace) -> bc.Workload:
    keys, val_size, loader = args.keys, args.val_size, args.loader
    many = (f"--clients={args.clients}", f"--conns={args.conns}", f"--procs={args.procs}")
    common = (f"--key-space-size={keys}", f"--val-size={val_size}")
    if loader == "txn":
        ops = 100 if keys % 100 == 0 else 1
        cmd = ("txn-put", f"--total={keys // ops}", f"--txn-ops={ops}", *common)
        return bc.Workload("load", (*many, *cmd), "rps", True, "")
    cmd = ("put", f"--total={keys}", "--sequential-keys", *common)
    return bc.Workload("load", (*many, *cmd), "rps", True, "")


def range_keys_only(endpoint: str, serializable: bool = False) -> tuple[int, float]:
    """One keys-only range over the whole key space (``etcdctl get "" --from-key --keys-only``)."""
    import grpc

    from petcd.pb.etcdserverpb import rpc_pb2 as pb
    from petcd.pb.etcdserverpb import rpc_pb2_grpc

    options = [("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(endpoint, options=options) as ch:
        started = time.monotonic()
        resp = rpc_pb2_grpc.KVStub(ch).Range(
            pb.RangeRequest(key=b"\0", range_end=b"\0", keys_only=True, serializable=serializable),
            timeout=RANGE_TIMEOUT_S,
        )
        return len(resp.kvs), time.monotonic() - started


@dataclass
class Result:
    """One server's figures: memory at each phase, the data dir, the load and the range."""

    label: str
    pids: int = 0
    memory: dict[str, Memory] = field(default_factory=dict)  # phase -> sum over the member's processes
    per_process: list[Memory] = field(default_factory=list)  # after the range
    top_mappings: dict[int, list[tuple[str, int, int]]] = field(default_factory=dict)
    data_dir: tuple[int, int] = (0, 0)
    db_bytes: int = 0  # the backend's data file (member/snap/db: bbolt or LMDB)
    load_s: float | None = None
    load_rps: float | None = None
    range_keys: int = 0
    range_s: float | None = None
    range_note: str = ""
    watch: float | None = None
    error: str = ""


def measure_memory(v: bc.Variant, args: argparse.Namespace, base: Path) -> Result:
    res = Result(v.label)
    run_dir = base / v.label.replace(" ", "_")
    run_dir.mkdir()
    data_dir = run_dir / f"{v.kind}-m1.etcd"
    with bc.cluster(v.kind, 1, run_dir, list(v.args)) as eps:
        pids = _settled_pids(data_dir, 1 + v.frontends)
        res.pids = len(pids)
        res.memory["idle"] = total_memory(pids)
        w = load_workload(args)
        started = time.monotonic()
        doc = bc.run_benchmark(eps, w, args.load_timeout)
        res.load_s = time.monotonic() - started
        if doc is None:
            res.error = "load failed or timed out"
            return res
        (load,) = doc["results"].values()
        res.load_rps = float(load["rps"])
        if load.get("errors"):
            res.error = f"load errors: {load['errors']}"
        pids = member_pids(data_dir)
        res.memory["loaded"] = total_memory(pids)
        try:
            res.range_keys, res.range_s = range_keys_only(eps[0])
        except Exception as err:  # reported; the memory is still worth reading
            res.range_note = f"linearizable range failed ({_rpc_text(err)}), serializable: "
            try:
                res.range_keys, res.range_s = range_keys_only(eps[0], serializable=True)
                res.range_note += "ok"
            except Exception as again:
                res.error = f"range failed: {_rpc_text(again)}"
        res.memory["ranged"] = total_memory(pids)
        res.per_process = [process_memory(p) for p in pids]
        if args.mappings:
            res.top_mappings = {p: mappings(p, args.mappings) for p in pids}
        res.data_dir = dir_size(data_dir)
        with contextlib.suppress(OSError):
            res.db_bytes = (data_dir / "member" / "snap" / "db").stat().st_size
    return res


def _rpc_text(err: Exception) -> str:
    details = getattr(err, "details", None)
    return str(details() if callable(details) else err)[:200]


def _settled_pids(data_dir: Path, expected: int) -> list[int]:
    """The member's processes, once its front-ends (if any) have started (10 s at most)."""
    deadline = time.monotonic() + 10.0
    while True:
        pids = member_pids(data_dir)
        if len(pids) >= expected or time.monotonic() > deadline:
            return pids
        time.sleep(0.2)


def measure_watch(v: bc.Variant, args: argparse.Namespace, base: Path) -> float | None:
    (w,) = (w for w in bc.workloads(1, 1, args.watch_puts, args.procs) if w.name == "watch")
    run_dir = base / f"watch-{v.label.replace(' ', '_')}"
    run_dir.mkdir()
    with bc.cluster(v.kind, 1, run_dir, list(v.args)) as eps:
        return bc.best_of(args.repeat, eps, w, args.timeout)[1]


def mib(n: int) -> str:
    return f"{n / MB:,.0f}"


def print_report(results: list[Result], args: argparse.Namespace) -> None:
    if not args.no_memory:
        print_memory(results, args)
    head = ["server", "load", "load rate", "range keys-only", "data dir (apparent/allocated MiB)", "db file"]
    if args.watch:
        head += [f"watch events/s ({args.watch_puts} puts)", "watch/etcd"]
    ref_watch = results[0].watch if results and results[0].label.startswith("etcd") else None
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        cells = [
            r.label,
            "-" if r.load_s is None else f"{r.load_s:.0f} s",
            "-" if r.load_rps is None else f"{r.load_rps:,.0f} req/s",
            "-" if r.range_s is None else f"{r.range_keys:,} keys in {r.range_s:.2f} s",
            f"{mib(r.data_dir[0])} / {mib(r.data_dir[1])}",
            mib(r.db_bytes),
        ]
        if args.watch:
            cells += ["failed" if r.watch is None else f"{r.watch:,.0f}", bc.ratio(r.watch, ref_watch)]
        print("| " + " | ".join(cells) + " |")
    for r in results:
        if r.range_note:
            print(f"{r.label}: {r.range_note}")
        if r.error:
            print(f"{r.label}: {r.error}")
        for i, (pid, maps) in enumerate(r.top_mappings.items()):
            role = "member" if i == 0 else "front-end"
            print(f"{r.label} {role} (pid {pid}), largest mappings (RSS/PSS MiB):")
            for name, rss, pss in maps:
                print(f"    {mib(rss):>6} {mib(pss):>6}  {name}")


def print_memory(results: list[Result], args: argparse.Namespace) -> None:
    ref = results[0] if results and results[0].label.startswith("etcd") else None
    print(
        f"\n{args.keys:,} keys of {args.val_size} bytes, loaded with {args.loader} "
        f"({args.clients} clients, {args.conns} conns); memory in MiB, summed over the member's processes."
    )
    head = ["server", "phase", "procs", "RSS", "anon", "file", "shmem", "PSS", "RSS/etcd", "PSS/etcd"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        for phase, m in r.memory.items():
            base = ref.memory.get(phase) if ref is not None else None
            cells = [r.label, phase, str(m.procs), mib(m.rss), mib(m.anon), mib(m.file), mib(m.shmem)]
            cells += [mib(m.pss), _ratio(m.rss, base, "rss"), _ratio(m.pss, base, "pss")]
            print("| " + " | ".join(cells) + " |")
    print()


def _ratio(ours: int, base: Memory | None, name: str) -> str:
    return "-" if base is None else str(bc.ratio(ours, getattr(base, name)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=1_000_000, help="distinct keys to load")
    parser.add_argument("--val-size", type=int, default=256, help="value bytes")
    parser.add_argument(
        "--loader", choices=("put", "txn"), default="put", help="put per key, or txn-put x100"
    )
    parser.add_argument("--frontends", default="0,2", help="petcd front-end process counts, e.g. 0,2")
    parser.add_argument("--petcd-args", default="", help="extra (petcd-only) flags")
    parser.add_argument("--no-etcd", action="store_true", help="petcd only (no reference etcd)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs (with --watch)")
    parser.add_argument("--procs", type=int, default=2, help="petcd-benchmark load processes")
    parser.add_argument("--clients", type=int, default=1000, help="load clients")
    parser.add_argument("--conns", type=int, default=100, help="load connections")
    parser.add_argument("--load-timeout", type=float, default=1800.0, help="seconds for the load")
    parser.add_argument("--mappings", type=int, default=0, help="list each process's K largest mappings")
    parser.add_argument("--watch", action="store_true", help="also run the 1000-watcher workload")
    parser.add_argument("--watch-puts", type=int, default=100, help="puts of the watch workload")
    parser.add_argument("--repeat", type=int, default=1, help="watch runs per server, the best kept")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per watch run")
    parser.add_argument("--json", default="", help="also write every figure to this file")
    args = parser.parse_args(argv)

    servers = bc.variants([int(f) for f in args.frontends.split(",") if f.strip()], args.petcd_args.split())
    if args.no_etcd:
        servers = servers[1:]
    elif not bc.REFERENCE.exists():
        print(f"the reference etcd is missing: {bc.REFERENCE}", file=sys.stderr)
        return 1

    load_before = os.getloadavg()
    signal.signal(signal.SIGTERM, bc._interrupt)  # the default would skip the finally blocks
    results: list[Result] = []
    watch_loads: list[tuple[float, ...]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            base = Path(tmp)
            for v in servers:
                print(f"{v.label}", file=sys.stderr)
                r = Result(v.label) if args.no_memory else measure_memory(v, args, base)
                if args.watch:
                    r.watch = measure_watch(v, args, base)
                    watch_loads.append(os.getloadavg())
                print(f"    {progress(r)}", file=sys.stderr)
                results.append(r)
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    load_after = os.getloadavg()

    print(f"\nMachine: {bc.machine()}")
    print(f"Load average before: {_loads(load_before)}; after: {_loads(load_after)}")
    if watch_loads:
        print("Load average after each watch run: " + "; ".join(_loads(x) for x in watch_loads))
    print_report(results, args)
    if args.json:
        doc: dict[str, Any] = {
            "machine": bc.machine(),
            "load": [load_before, load_after],
            "args": vars(args),
            "results": [asdict(r) for r in results],
        }
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0 if all(not r.error for r in results) else 1


def progress(r: Result) -> str:
    mem = ", ".join(f"{phase} RSS {mib(m.rss)} MiB" for phase, m in r.memory.items())
    load = "" if r.load_s is None else f"load {r.load_s:.0f} s, "
    watch = "" if r.watch is None else f", watch {r.watch:,.0f} events/s"
    return f"{load}{mem}{watch}{' ERROR ' + r.error if r.error else ''}"


def _loads(avg: tuple[float, ...]) -> str:
    return "/".join(f"{x:.2f}" for x in avg)


if __name__ == "__main__":
    sys.exit(main())
