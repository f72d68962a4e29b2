"""`python -m petcd.robustness`: one or more robustness runs; exit status 1 on any failure."""

from __future__ import annotations

import argparse
import re
import shlex
import sys

from petcd.robustness.cluster import default_binary
from petcd.robustness.faults import ALL_FAULTS, BASIC_FAULTS
from petcd.robustness.runner import RunConfig, run
from petcd.robustness.traffic import PROFILES


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 60s, 2m, 500ms)")
    n = float(m.group(1))
    return {"ms": n / 1000.0, "s": n, "m": n * 60.0, None: n}[m.group(2)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m petcd.robustness", description=__doc__)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seeds", type=int, default=1, help="rounds; every run of a sweep gets the next seed")
    p.add_argument("--duration", type=parse_duration, default=60.0, help="traffic time per run (60s)")
    p.add_argument("--profile", choices=(*PROFILES, "all"), default="etcd")
    p.add_argument(
        "--each-fault", action="store_true", help="one run per fault of --faults (a sweep), not a draw"
    )
    p.add_argument("--members", type=int, choices=(1, 3), default=3)
    p.add_argument(
        "--faults",
        default="basic",
        help=f"comma-separated faults, 'basic', 'all' or 'none' (known: {', '.join(ALL_FAULTS)})",
    )
    p.add_argument("--fault-count", type=int, default=1, help="faults per run, drawn by the seed")
    p.add_argument("--etcd-binary", default="etcd", help="the etcd to test (petcd's, or e.g. /usr/bin/etcd)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--watchers", type=int, default=2)
    p.add_argument(
        "--member-args",
        default="",
        help="extra flags for every member, e.g. '--frontend-processes 2' (petcd's front-end split)",
    )
    p.add_argument("--report-dir", default="", help="where run directories go (default: the temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the run directory even when the run passes")
    args = p.parse_args(argv)
    if args.faults == "basic":
        faults = list(BASIC_FAULTS)
    elif args.faults == "all":
        faults = list(ALL_FAULTS)
    elif args.faults == "none":
        faults = []
    else:
        faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    binary = args.etcd_binary
    if binary == "etcd":
        binary = default_binary()
    failed = 0
    profiles = list(PROFILES) if args.profile == "all" else [args.profile]
    plans = [[f] for f in faults] if args.each_fault else [faults]
    seed = args.seed
    for _ in range(args.seeds):
        for plan in plans:
            for profile in profiles:
                cfg = RunConfig(
                    seed=seed,
                    profile=profile,
                    duration_s=args.duration,
                    members=args.members,
                    faults=plan,
                    fault_count=args.fault_count,
                    binary=binary,
                    clients=args.clients,
                    watchers=args.watchers,
                    report_root=args.report_dir,
                    keep=args.keep,
                    member_args=shlex.split(args.member_args),
                )
                result = run(cfg)
                print(result.summary(), flush=True)
                failed += not result.ok
                seed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
