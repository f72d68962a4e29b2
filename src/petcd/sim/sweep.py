"""Running seeds: one with its event log, or many (optionally in worker processes).

A sweep over worker processes returns the same results as a serial one, since each seed's run
depends on nothing but the seed and the options.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from petcd.sim.cluster import SimResult, Simulation
from petcd.sim.eventlog import EventLog
from petcd.sim.server_cluster import ServerResult, ServerSimulation

DEFAULT_TICKS = 300
DEFAULT_SERVER_TICKS = 200


def run_seed(
    seed: int,
    *,
    ticks: int = DEFAULT_TICKS,
    nodes: int | None = None,
    log: bool = False,
    verbose: bool = False,
    overrides: dict[str, str] | None = None,
) -> SimResult:
    return Simulation(
        seed, ticks=ticks, nodes=nodes, overrides=overrides, log=EventLog(enabled=log, verbose=verbose)
    ).run()


def run_server_seed(
    seed: int,
    *,
    ticks: int = DEFAULT_SERVER_TICKS,
    nodes: int | None = None,
    log: bool = False,
    verbose: bool = False,
    overrides: dict[str, str] | None = None,
) -> ServerResult:
    """One seed of the server simulator (petcd.sim.server_cluster)."""
    return ServerSimulation(
        seed, ticks=ticks, nodes=nodes, overrides=overrides, log=EventLog(enabled=log, verbose=verbose)
    ).run()


def _run_quiet(args: tuple[int, int, int | None, dict[str, str] | None]) -> SimResult:
    seed, ticks, nodes, overrides = args
    return run_seed(seed, ticks=ticks, nodes=nodes, overrides=overrides)


def _run_server_quiet(args: tuple[int, int, int | None, dict[str, str] | None]) -> ServerResult:
    seed, ticks, nodes, overrides = args
    return run_server_seed(seed, ticks=ticks, nodes=nodes, overrides=overrides)


def sweep_server(
    seeds: Iterable[int],
    *,
    ticks: int = DEFAULT_SERVER_TICKS,
    nodes: int | None = None,
    jobs: int = 1,
    overrides: dict[str, str] | None = None,
) -> Iterator[ServerResult]:
    """`sweep` for the server simulator."""
    work = [(s, ticks, nodes, overrides) for s in seeds]
    if jobs <= 1:
        yield from map(_run_server_quiet, work)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_run_server_quiet, work, chunksize=2)


def sweep(
    seeds: Iterable[int],
    *,
    ticks: int = DEFAULT_TICKS,
    nodes: int | None = None,
    jobs: int = 1,
    overrides: dict[str, str] | None = None,
) -> Iterator[SimResult]:
    """Run every seed (without event logs); results come back in seed order."""
    work = [(s, ticks, nodes, overrides) for s in seeds]
    if jobs <= 1:
        yield from map(_run_quiet, work)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_run_quiet, work, chunksize=4)


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """`name=value` strings (knob overrides) as a dict."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"expected name=value, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def parse_seed_range(text: str) -> range:
    """`A-B` (inclusive) or a single seed `A`."""
    lo, sep, hi = text.partition("-")
    start = int(lo)
    end = int(hi) if sep else start
    if end < start:
        raise ValueError(f"empty seed range {text!r}")
    return range(start, end + 1)
