"""Start-up benchmark: petcd's etcdctl against the reference etcdctl, end to end, hyperfine-style.

Each command is run N times in a fresh process (after warm-up runs) against one etcd server and
the wall time of each run is measured from fork to exit; the table reports the median (and the
minimum and the 90th percentile) in milliseconds. Without ``--endpoints`` the script starts the
reference etcd on free loopback ports in a temporary data dir and stops it at the end.

    python benchmarks/etcdctl_startup.py [--runs 30] [--endpoints 127.0.0.1:2379] [--ours CMD]

``--ours`` defaults to the ``etcdctl`` console script of this venv if it is petcd's, else to
``python -c 'from petcd.cli.etcdctl import main; main()'``, which is what that script runs
(``python -m`` would add runpy's own start-up). The petcd package is byte-compiled first, as an
installed wheel is (this machine sets PYTHONDONTWRITEBYTECODE, so nothing else would); pass
``--no-compile`` to measure compiling from source on every run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [
    ["put", "bench-key", "bench-value"],
    ["get", "bench-key"],
    ["del", "bench-key"],
    ["member", "list"],
    ["endpoint", "health"],
    ["get", "bench-key", "-w", "json"],
    ["version"],
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_etcd(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port, peer = free_port(), free_port()
    endpoint = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            "/usr/bin/etcd",
            "--data-dir",
            str(tmp / "data"),
            "--listen-client-urls",
            f"http://{endpoint}",
            "--advertise-client-urls",
            f"http://{endpoint}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"default=http://127.0.0.1:{peer}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = subprocess.run(
            ["/usr/bin/etcdctl", "--endpoints", endpoint, "get", "x"], capture_output=True, check=False
        )
        if r.returncode == 0:
            return proc, endpoint
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("etcd did not start")


def default_ours() -> list[str]:
    script = Path(sys.executable).parent / "etcdctl"
    if script.exists() and "petcd" in script.read_text(errors="replace"):
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; sys.argv[0] = 'etcdctl'; from petcd.cli.etcdctl import main; main()",
    ]


def measure(cmd: list[str], runs: int, warmup: int) -> list[float]:
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        took = (time.perf_counter() - start) * 1000
        if r.returncode != 0:
            raise SystemExit(f"{cmd} exited {r.returncode}")
        if i >= warmup:
            times.append(took)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--endpoints", default="")
    ap.add_argument("--ours", default="", help="command line of petcd's etcdctl (space separated)")
    ap.add_argument("--no-compile", action="store_true", help="do not byte-compile petcd first")
    args = ap.parse_args()
    if not args.no_compile:
        import compileall

        import petcd

        compileall.compile_dir(os.path.dirname(petcd.__file__), quiet=1)
    ours = args.ours.split() if args.ours else default_ours()
    tmp = Path(tempfile.mkdtemp(prefix="etcdctl-bench-"))
    proc = None
    try:
        endpoint = args.endpoints
        if not endpoint:
            proc, endpoint = start_etcd(tmp)
        env_note = f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
        print(f"etcdctl start-up, end to end against etcd at {endpoint}: {args.runs} runs each ({env_note})")
        print(f"petcd: `{' '.join(ours)}`; reference: `/usr/bin/etcdctl` (3.4.23)\n")
        print(
            "| command | petcd median ms | petcd min / p90 | etcdctl median ms | etcdctl min / p90 | ratio |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for command in COMMANDS:
            a = measure([*ours, "--endpoints", endpoint, *command], args.runs, args.warmup)
            b = measure(["/usr/bin/etcdctl", "--endpoints", endpoint, *command], args.runs, args.warmup)
            ma, mb = statistics.median(a), statistics.median(b)
            pa = statistics.quantiles(a, n=10)[-1]
            pb = statistics.quantiles(b, n=10)[-1]
            print(
                f"| `{' '.join(command)}` | {ma:.1f} | {min(a):.1f} / {pa:.1f} | {mb:.1f} | "
                f"{min(b):.1f} / {pb:.1f} | {ma / mb:.1f}x |"
            )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
