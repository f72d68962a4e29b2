"""The benchmark's report: etcd's pkg/report, same numbers, same text.

A run produces, per measured operation, the latencies of the requests that succeeded, a count of
each error message, and the wall time the whole run took (``total_s``: from the moment every load
process was connected and released to the last answer). From those:

* **Summary**: total, slowest, fastest, average, population standard deviation (seconds) and
  requests/s = successes / total.
* **Response time histogram**: 11 buckets, 10 equal steps from the fastest to the slowest latency
  plus the slowest itself; each latency counts in the first bucket it is ``<=``; bars scale to 40
  ``∎`` for the fullest bucket.
* **Latency distribution**: for each of 10, 25, 50, 75, 90, 95, 99, 99.9 %, the first sorted
  latency at index ``i`` with ``100 * i / n >= p`` (etcd's rule, not an interpolation); a
  percentile that comes out 0 is not printed, as in etcd.
* with ``--sample``, a per-second table (unix second, min/avg/max latency, requests that started
  in that second), etcd's "Sample in one second" CSV.

Numbers print as ``%4.4f`` or, with ``--precise``, as Go's ``%g`` (shortest round-trip form).
``to_json`` gives the same figures for machines, in seconds, with the raw percentiles and buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

PERCENTILES: tuple[float, ...] = (10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9)
BAR_CHAR = "∎"
HISTOGRAM_BUCKETS = 10
BAR_WIDTH = 40


@dataclass(frozen=True, slots=True)
class DataPoint:
    """One second of a ``--sample`` run."""

    unix_s: int
    min_latency_s: float
    avg_latency_s: float
    max_latency_s: float
    throughput: int


@dataclass(slots=True)
class Stats:
    """The figures of one measured operation."""

    lats: list[float]  # Invariant: sorted ascending, successes only
    total_s: float
    errors: dict[str, int] = field(default_factory=dict)
    average_s: float = 0.0
    fastest_s: float = 0.0
    slowest_s: float = 0.0
    stddev_s: float = 0.0
    rps: float = 0.0
    time_series: list[DataPoint] | None = None


def compute_stats(
    lats: Iterable[float],
    total_s: float,
    errors: Mapping[str, int] | None = None,
    sample_starts: Sequence[float] | None = None,
    sample_lats: Sequence[float] | None = None,
) -> Stats:
    """Stats of successful latencies ``lats`` over a run of ``total_s`` seconds.

    ``sample_starts`` (unix seconds at which each request started) with ``sample_lats`` (the same
    requests' latencies, in the same order) turn on the per-second table.
    """
    ordered = sorted(lats)
    stats = Stats(lats=ordered, total_s=total_s, errors=dict(errors or {}))
    n = len(ordered)
    if n:
        stats.average_s = math.fsum(ordered) / n
        stats.stddev_s = math.sqrt(math.fsum((x - stats.average_s) ** 2 for x in ordered) / n)
        stats.fastest_s = ordered[0]
        stats.slowest_s = ordered[-1]
    stats.rps = n / total_s if total_s > 0 else 0.0
    if sample_starts is not None and sample_lats is not None:
        stats.time_series = time_series(sample_starts, sample_lats)
    return stats


def percentiles(ordered: Sequence[float]) -> list[float]:
    """etcd's percentiles of sorted latencies: the first value at or past each percentile."""
    data = [0.0] * len(PERCENTILES)
    j = 0
    n = len(ordered)
    for i in range(n):
        if j >= len(PERCENTILES):
            break
        if i * 100.0 / n >= PERCENTILES[j]:
            data[j] = ordered[i]
            j += 1
    return data


def histogram(stats: Stats) -> list[tuple[float, int]]:
    """(upper bound, count) of etcd's 11 latency buckets."""
    step = (stats.slowest_s - stats.fastest_s) / HISTOGRAM_BUCKETS
    bounds = [stats.fastest_s + step * i for i in range(HISTOGRAM_BUCKETS)] + [stats.slowest_s]
    counts = [0] * len(bounds)
    b = 0
    for lat in stats.lats:
        # the last bound is the slowest latency itself, so every latency finds a bucket
        while lat > bounds[b] and b < len(bounds) - 1:
            b += 1
        counts[b] += 1
    return list(zip(bounds, counts, strict=True))


def time_series(starts: Sequence[float], lats: Sequence[float]) -> list[DataPoint]:
    """etcd's per-second samples: requests grouped by the unix second they started in."""
    seconds: dict[int, list[float]] = {}
    for st, lat in zip(starts, lats, strict=True):
        seconds.setdefault(int(st), []).append(lat)
    if not seconds:
        return []
    for s in range(min(seconds), max(seconds)):
        seconds.setdefault(s, [])
    points = []
    for s in sorted(seconds):
        ls = seconds[s]
        nonzero = [x for x in ls if x != 0.0]
        points.append(
            DataPoint(
                unix_s=s,
                min_latency_s=min(nonzero) if nonzero else 0.0,
                avg_latency_s=sum(ls) / len(ls) if ls else 0.0,
                max_latency_s=max(ls) if ls else 0.0,
                throughput=len(ls),
            )
        )
    return points


# -- Go's formatting ---------------------------------------------------------------------------


def go_g(x: float) -> str:
    """Go's ``%g`` for a float64: the shortest digits that round-trip, exponent form when the
    decimal exponent is < -4 or >= 6 (fmt's rule for %g at shortest precision)."""
    if x == 0:
        return "0"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if math.isnan(x):
        return "NaN"
    sign, digit_tuple, exp = Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exp, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exp  # position of the decimal point relative to the digits
    dec_exp = point - 1
    prefix = "-" if sign else ""
    if dec_exp < -4 or dec_exp >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mant}e{'-' if dec_exp < 0 else '+'}{abs(dec_exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{prefix}{digits}{'0' * (point - len(digits))}"
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` for a duration given in seconds (rounded to nanoseconds)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    neg, ns = ns < 0, abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if ns < size * 1000:
                text = _fraction(ns, size) + unit
                break
    else:
        h, rest = divmod(ns, 3_600_000_000_000)
        m, rest = divmod(rest, 60_000_000_000)
        text = _fraction(rest, 1_000_000_000) + "s"
        if h or m:
            text = f"{m}m{text}"
        if h:
            text = f"{h}h{text}"
    return ("-" if neg else "") + text


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    width = len(str(unit)) - 1
    return f"{whole}.{str(frac).rjust(width, '0').rstrip('0')}"


class Formatter:
    """etcd's report text, with ``%4.4f`` or (``precise``) Go's ``%g`` numbers."""

    def __init__(self, precise: bool = False) -> None:
        self.precise = precise

    def num(self, x: float) -> str:
        return go_g(x) if self.precise else f"{x:4.4f}"

    def secs(self, x: float) -> str:
        return f"{self.num(x)} secs"

    def report(self, stats: Stats) -> str:
        """The text of etcd's ``report.String()``: summary, histogram, percentiles, errors."""
        s = ""
        if stats.lats:
            s += "\nSummary:\n"
            s += f"  Total:\t{self.secs(stats.total_s)}.\n"
            s += f"  Slowest:\t{self.secs(stats.slowest_s)}.\n"
            s += f"  Fastest:\t{self.secs(stats.fastest_s)}.\n"
            s += f"  Average:\t{self.secs(stats.average_s)}.\n"
            s += f"  Stddev:\t{self.secs(stats.stddev_s)}.\n"
            s += f"  Requests/sec:\t{self.num(stats.rps)}\n"
            s += self.histogram(stats)
            s += self.latencies(stats)
            if stats.time_series is not None:
                s += self.time_series(stats.time_series) + "\n"
        if stats.errors:
            s += "\nError distribution:\n"
            for err, num in sorted(stats.errors.items(), key=lambda kv: -kv[1]):
                s += f"  [{num}]\t{err}\n"
        return s

    def rate(self, stats: Stats) -> str:
        """etcd's rate-only report (watch events received)."""
        return f" Requests/sec:\t{self.num(stats.rps)}\n"

    def histogram(self, stats: Stats) -> str:
        buckets = histogram(stats)
        top = max(c for _, c in buckets)
        s = "\nResponse time histogram:\n"
        for bound, count in buckets:
            bar = BAR_CHAR * (count * BAR_WIDTH // top if top else 0)
            s += f"  {self.num(bound)} [{count}]\t|{bar}\n"
        return s

    def latencies(self, stats: Stats) -> str:
        s = "\nLatency distribution:\n"
        for p, v in zip(PERCENTILES, percentiles(stats.lats), strict=True):
            if v > 0:
                s += f"  {go_g(p)}% in {self.secs(v)}.\n"
        return s

    @staticmethod
    def time_series(points: Sequence[DataPoint]) -> str:
        rows = ["UNIX-SECOND,MIN-LATENCY-MS,AVG-LATENCY-MS,MAX-LATENCY-MS,AVG-THROUGHPUT"]
        for p in points:
            rows.append(
                f"{p.unix_s},{go_duration(p.min_latency_s)},{go_duration(p.avg_latency_s)},"
                f"{go_duration(p.max_latency_s)},{p.throughput}"
            )
        return "\nSample in one second (unix latency throughput):\n" + "\n".join(rows) + "\n"


def to_json(stats: Stats) -> dict[str, Any]:
    """The figures of ``stats`` as plain JSON values (seconds, requests/s, counts)."""
    out: dict[str, Any] = {
        "count": len(stats.lats),
        "errors": dict(stats.errors),
        "total_s": stats.total_s,
        "slowest_s": stats.slowest_s,
        "fastest_s": stats.fastest_s,
        "average_s": stats.average_s,
        "stddev_s": stats.stddev_s,
        "rps": stats.rps,
        "percentiles_s": {go_g(p): v for p, v in zip(PERCENTILES, percentiles(stats.lats), strict=True)},
        "histogram": [{"le_s": b, "count": c} for b, c in histogram(stats)] if stats.lats else [],
    }
    if stats.time_series is not None:
        out["time_series"] = [
            {
                "unix_s": p.unix_s,
                "min_latency_s": p.min_latency_s,
                "avg_latency_s": p.avg_latency_s,
                "max_latency_s": p.max_latency_s,
                "throughput": p.throughput,
            }
            for p in stats.time_series
        ]
    return out
