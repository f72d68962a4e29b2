"""The report's numbers and text are etcd's pkg/report on known inputs."""

from __future__ import annotations

import json

import pytest

from petcd.benchmark.report import (
    Formatter,
    compute_stats,
    go_duration,
    go_g,
    histogram,
    percentiles,
    time_series,
    to_json,
)


def test_percentiles_take_the_first_value_at_or_past_each_rank() -> None:
    # etcd's loop fills at most one percentile per index, so small samples shift upwards
    nums = [0.0] * 100
    nums[99] = 1.0
    assert percentiles(nums)[-2] == 1.0  # 99th of 100: the last one
    nums = [0.0] * 1000
    nums[999] = 1.0
    assert percentiles(nums)[-1] == 1.0  # 99.9th of 1000
    ranks = percentiles([float(i) for i in range(1, 101)])
    assert ranks == [11.0, 26.0, 51.0, 76.0, 91.0, 96.0, 100.0, 0.0]


def test_percentiles_of_few_values_leave_the_unreached_ones_zero() -> None:
    assert percentiles([5.0]) == [0.0] * 8  # index 0 is the 0th percentile only
    assert percentiles([1.0, 2.0, 3.0, 4.0]) == [2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert percentiles([]) == [0.0] * 8


def test_stats_of_known_latencies() -> None:
    stats = compute_stats([1.0, 1.0, 1.0, 1.0, 1.0], total_s=5.0, errors={"oops": 1})
    assert (stats.fastest_s, stats.slowest_s, stats.average_s, stats.stddev_s) == (1.0, 1.0, 1.0, 0.0)
    assert stats.rps == 1.0
    stats = compute_stats([3.0, 1.0, 2.0, 4.0], total_s=2.0)
    assert stats.lats == [1.0, 2.0, 3.0, 4.0]
    assert stats.average_s == 2.5
    assert stats.stddev_s == pytest.approx(1.118033988749895)  # population, as etcd
    assert stats.rps == 2.0


def test_histogram_buckets_are_ten_steps_and_the_slowest() -> None:
    stats = compute_stats([0.0, 0.05, 0.1, 0.55, 1.0], total_s=1.0)
    buckets = histogram(stats)
    assert len(buckets) == 11
    assert [b for b, _ in buckets] == pytest.approx([i / 10 for i in range(11)])
    assert [c for _, c in buckets] == [1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    # all equal: every latency in the first bucket
    assert [c for _, c in histogram(compute_stats([2.0] * 3, 1.0))] == [3] + [0] * 10


def test_text_report_is_etcds() -> None:
    stats = compute_stats([0.001, 0.002, 0.003, 0.004], total_s=2.0, errors={"rpc error: x": 2})
    text = Formatter().report(stats)
    assert text.startswith("\nSummary:\n  Total:\t2.0000 secs.\n  Slowest:\t0.0040 secs.\n")
    assert "  Fastest:\t0.0010 secs.\n  Average:\t0.0025 secs.\n  Stddev:\t0.0011 secs.\n" in text
    assert "  Requests/sec:\t2.0000\n\nResponse time histogram:\n  0.0010 [1]\t|" + "∎" * 40 + "\n" in text
    assert (
        "\nLatency distribution:\n  10% in 0.0020 secs.\n  25% in 0.0030 secs.\n  50% in 0.0040 secs.\n\n"
        in text
    )
    assert text.endswith("\nError distribution:\n  [2]\trpc error: x\n")
    precise = Formatter(precise=True).report(stats)
    assert "  Slowest:\t0.004 secs.\n" in precise
    assert "  Requests/sec:\t2\n" in precise


def test_go_g_is_fmts_shortest_g() -> None:
    assert go_g(0.0) == "0"
    assert go_g(2.0) == "2"
    assert go_g(0.0025) == "0.0025"
    assert go_g(99.9) == "99.9"
    assert go_g(18800.123) == "18800.123"
    assert go_g(1234567.5) == "1.2345675e+06"
    assert go_g(0.00001234) == "1.234e-05"
    assert go_g(-1.5) == "-1.5"


def test_go_duration_is_gos() -> None:
    assert go_duration(0) == "0s"
    assert go_duration(0.0015) == "1.5ms"
    assert go_duration(0.000002) == "2µs"
    assert go_duration(1.5) == "1.5s"
    assert go_duration(61.0) == "1m1s"


def test_time_series_groups_by_start_second_and_fills_gaps() -> None:
    points = time_series([100.2, 100.7, 102.1], [0.002, 0.004, 0.001])
    assert [(p.unix_s, p.throughput) for p in points] == [(100, 2), (101, 0), (102, 1)]
    assert points[0].avg_latency_s == pytest.approx(0.003)
    assert points[0].max_latency_s == 0.004
    text = Formatter.time_series(points)
    assert (
        "UNIX-SECOND,MIN-LATENCY-MS,AVG-LATENCY-MS,MAX-LATENCY-MS,AVG-THROUGHPUT\n100,2ms,3ms,4ms,2\n" in text
    )


def test_json_has_the_same_figures() -> None:
    stats = compute_stats([0.001, 0.002, 0.003, 0.004], total_s=2.0)
    doc = json.loads(json.dumps(to_json(stats)))
    assert doc["count"] == 4
    assert doc["rps"] == 2.0
    assert doc["percentiles_s"]["50"] == 0.004
    assert doc["percentiles_s"]["99.9"] == 0.0
    assert sum(b["count"] for b in doc["histogram"]) == 4
