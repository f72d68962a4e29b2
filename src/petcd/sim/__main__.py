"""Command line of the simulator.

python -m petcd.sim --seed N [--ticks T] [--nodes 3|5] [--set KNOB=VALUE]... [--verbose]
    replay one seed: print its event log and its verdict (exit 1 on a violation)
python -m petcd.sim --seeds A-B [--jobs J] [--ticks T] [--nodes 3|5]
    sweep seeds A..B: print a summary, exit 1 naming every failing seed and its violation
python -m petcd.sim --server (--seed N | --seeds A-B) [...]
    the same with whole server Nodes (petcd.sim.server_cluster; knobs of ServerKnobs)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator

from petcd.sim.cluster import SimResult
from petcd.sim.knobs import Knobs
from petcd.sim.server_cluster import ServerKnobs, ServerResult
from petcd.sim.sweep import (
    DEFAULT_SERVER_TICKS,
    DEFAULT_TICKS,
    parse_overrides,
    parse_seed_range,
    run_seed,
    run_server_seed,
    sweep,
    sweep_server,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m petcd.sim", description="deterministic raft cluster simulator"
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="replay one seed and print its event log")
    which.add_argument("--seeds", type=parse_seed_range, help="sweep a range of seeds, A-B inclusive")
    parser.add_argument("--ticks", type=int, default=None, help="ticks of the chaos phase")
    parser.add_argument("--server", action="store_true", help="simulate whole server Nodes, not bare raft")
    parser.add_argument(
        "--nodes", type=int, choices=(3, 5), help="cluster size (default: drawn from the seed)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every drop, disk write and raft log line")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for a sweep")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="override a knob drawn from the seed (repeatable), e.g. --set crash_rate=0.03",
    )
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
        if args.server:
            ServerKnobs().with_overrides(overrides)
        else:
            Knobs().with_overrides(overrides)
    except ValueError as e:
        parser.error(str(e))
    if args.ticks is None:
        args.ticks = DEFAULT_SERVER_TICKS if args.server else DEFAULT_TICKS
    if args.server:
        # The Nodes' and raft's own log lines would drown the event log.
        for name in ("petcd.raft", "petcd.server"):
            logging.getLogger(name).addHandler(logging.NullHandler())
            logging.getLogger(name).propagate = False

    if args.seed is not None:
        run_one = run_server_seed if args.server else run_seed
        result = run_one(
            args.seed, ticks=args.ticks, nodes=args.nodes, log=True, verbose=args.verbose, overrides=overrides
        )
        out = sys.stdout
        for line in result.log:
            out.write(line + "\n")
        out.write(result.summary() + "\n")
        return 0 if result.ok else 1

    started = time.monotonic()
    failed = []
    count = 0
    totals: dict[str, int] = {}
    results: Iterator[SimResult | ServerResult] = (
        sweep_server(args.seeds, ticks=args.ticks, nodes=args.nodes, jobs=args.jobs, overrides=overrides)
        if args.server
        else sweep(args.seeds, ticks=args.ticks, nodes=args.nodes, jobs=args.jobs, overrides=overrides)
    )
    for result in results:
        count += 1
        for name, value in result.stats.items():
            totals[name] = totals.get(name, 0) + value
        if args.verbose or not result.ok:
            print(result.summary(), flush=True)
        if not result.ok:
            failed.append(result)
    elapsed = time.monotonic() - started
    print("totals: " + " ".join(f"{name}={value}" for name, value in totals.items()))
    print(f"{count} seeds, {count - len(failed)} passed, {len(failed)} failed in {elapsed:.1f}s")
    for result in failed:
        print(f"FAILED seed {result.seed}: {result.violations[0]}")
    return 1 if failed else 0


def _main_for_shell() -> int:
    try:
        return main()
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as shell tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(_main_for_shell())
