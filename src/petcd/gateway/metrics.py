"""etcd's Prometheus metrics for the main series, as a registry the runtime updates.

Names, types, help texts and buckets follow etcd (etcdserver/metrics.go, wal/metrics.go,
mvcc/backend/metrics.go, mvcc/metrics.go, rafthttp/metrics.go, etcdhttp/metrics.go), so dashboards and
alerts written for etcd read petcd. Each `EtcdMetrics` owns its own CollectorRegistry (several members
may run in one test process); `/metrics` renders it. The runtime sets gauges and observes histograms;
nothing here reads server state.

A member with front-end processes (`--frontend-processes N`, DESIGN.md "Scaling past one core")
-----------------------------------------------------------------------------------------------------
A scrape of the client port lands on one front-end, chosen by the kernel, and a scrape of
`--listen-metrics-urls` on the core; both must show the member, as one exposition with each family
once. Who owns which family:

* the core owns every etcd_server_*, etcd_disk_*, etcd_mvcc_*, etcd_network_* series it measures
  (leader, proposals, WAL fsync, backend commit, db size, peer round trips): front-ends never touch
  theirs, and only the core's are served;
* `MEMBER_WIDE` families are measured in every process and served as one member-wide figure:
  the watch gauges (etcd_debugging_mvcc_*: front-ends serve the member's watches from their own
  watchable stores), /health's and livez/readyz's counters (served by whichever process a probe
  reaches), and process_* (cpu seconds, memory, fds: summed over the core and its front-ends; the
  start time and fd limit are the core's). Counters are summed so that they stay monotonic whichever
  front-end answers the scrape; `etcd_server_healthcheck` (the last check's result) is the minimum,
  so a failing check on any process shows.

Each front-end sends its share (the MEMBER_WIDE families of its registry, as plain tuples: `Family`)
to the core every REPORT_INTERVAL_S (`FrontendMetrics.report()`, petcd.etcdmain.frontend; its
process_* figures are re-read only every PROCESS_REPORT_INTERVAL_S) and with each scrape it answers
(`contribution()`, all fresh); the core keeps the newest one of each front-end
(petcd.runtime.channel) and renders its own registry merged with them (`render()` once
`add_contributions` is wired). A front-end's `/metrics` is that rendering, fetched from the core
(`FrontendMetrics`). So a scrape shows the answering front-end's figures as of the scrape and the
other front-ends' as of at most one report interval before (their process_* figures: at most
PROCESS_REPORT_INTERVAL_S). Without front-ends nothing is merged: the output is the registry's, as
before.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# etcd exposes no *_created series
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# How often a front-end sends its MEMBER_WIDE families to the core (the staleness of the other
# front-ends' figures in a scrape).
REPORT_INTERVAL_S = 0.5
# How often its process_* figures go with the report (the other families go every time).
PROCESS_REPORT_INTERVAL_S = 5.0
# How long a front-end's scrape waits for the core's rendering.
CORE_SCRAPE_TIMEOUT_S = 10.0

# One sample on the wire: (sample name, sorted label pairs, value).
WireSample = tuple[str, tuple[tuple[str, str], ...], float]
# One family on the wire: (family name as collected, type, help, samples).
Family = tuple[str, str, str, tuple[WireSample, ...]]

# How a family measured in every process of a member is served (by its collected name; counters
# are collected without their `_total`): summed, the minimum, or the core's alone.
SUM, MIN, CORE = "sum", "min", "core"
MEMBER_WIDE: dict[str, str] = {
    "process_cpu_seconds": SUM,
    "process_resident_memory_bytes": SUM,
    "process_virtual_memory_bytes": SUM,
    "process_open_fds": SUM,
    "process_start_time_seconds": CORE,
    "process_max_fds": CORE,
    "etcd_server_health_success": SUM,
    "etcd_server_health_failures": SUM,
    "etcd_server_healthchecks": SUM,
    "etcd_server_healthcheck": MIN,
}
# Every family under these prefixes is summed (the watchable stores' sampled gauges).
MEMBER_WIDE_PREFIXES: dict[str, str] = {"etcd_debugging_mvcc_": SUM}


def merge_rule(name: str) -> str | None:
    """How the family `name` is served member-wide; None: the core's family alone (front-ends
    send nothing for it)."""
    rule = MEMBER_WIDE.get(name)
    if rule is not None:
        return rule
    for prefix, prefix_rule in MEMBER_WIDE_PREFIXES.items():
        if name.startswith(prefix):
            return prefix_rule
    return None


def _exponential(start: float, factor: float, count: int) -> list[float]:
    return [start * factor**i for i in range(count)]


class PlainCounter(Collector):
    """A counter whose series has no `_total` suffix (etcd's health counters are named so; the
    client library's Counter always appends it)."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.value = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "counter")
        metric.add_sample(self.name, {}, self.value)
        yield metric


class Sampled(Collector):
    """Series read from another component's counters at scrape time.

    `source()` returns {suffix: value}; each becomes the series `prefix + suffix` of type `kind`
    ("gauge" or "counter", named as given: the suffix carries etcd's own `_total`). The source is called
    on the scraping thread; it should only read plain numbers (e.g. the watchable store's `gauges()` or
    the lessor's granted/revoked/renewed totals), which is safe across threads in CPython.
    """

    def __init__(
        self, prefix: str, source: Callable[[], Mapping[str, float]], kind: str, registry: CollectorRegistry
    ):
        self.prefix = prefix
        self.source = source
        self.kind = kind
        registry.register(self)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the names are only known by sampling

    def collect(self) -> Iterator[Metric]:
        for suffix, value in sorted(self.source().items()):
            name = self.prefix + suffix
            metric = Metric(name, name, self.kind)
            metric.add_sample(name, {}, float(value))
            yield metric


def to_wire(metric: Metric) -> Family:
    samples = tuple((s.name, tuple(sorted(s.labels.items())), float(s.value)) for s in metric.samples)
    return (metric.name, metric.type, metric.documentation, samples)


def from_wire(family: Family) -> Metric:
    name, kind, documentation, samples = family
    metric = Metric(name, documentation, kind)
    for sample_name, labels, value in samples:
        metric.add_sample(sample_name, dict(labels), value)
    return metric


def _combine(rule: str, values: list[float]) -> float:
    return min(values) if rule == MIN else sum(values)


def merge_families(own: Iterable[Metric], reports: Iterable[Iterable[Family]]) -> list[Metric]:
    """The core's families with the front-ends' reports merged in by `merge_rule`: one family per
    name (the core's order, then families only front-ends have), one sample per name and label set."""
    extra: dict[str, list[Family]] = {}
    for report in reports:
        for family in report:
            rule = merge_rule(family[0])
            if rule is not None and rule != CORE:
                extra.setdefault(family[0], []).append(family)
    out: list[Metric] = []
    for metric in own:
        theirs = extra.pop(metric.name, None)
        out.append(metric if theirs is None else _merged(metric, theirs))
    for name, families in extra.items():
        first = families[0]
        out.append(_merged(Metric(name, first[2], first[1]), families))
    return out


def _merged(own: Metric, theirs: list[Family]) -> Metric:
    rule = merge_rule(own.name) or SUM
    values: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
    for s in own.samples:
        values.setdefault((s.name, tuple(sorted(s.labels.items()))), []).append(float(s.value))
    for family in theirs:
        for sample_name, labels, value in family[3]:
            values.setdefault((sample_name, labels), []).append(value)
    merged = Metric(own.name, own.documentation, own.type)
    for (sample_name, labels), vs in values.items():
        merged.add_sample(sample_name, dict(labels), _combine(rule, vs))
    return merged


class _Families:
    """Already collected families, in the shape `generate_latest` reads."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _exposition(source: CollectorRegistry | _Families) -> bytes:
    text = prometheus_client.generate_latest(source)
    # The text format names a counter's HELP/TYPE lines "<name>_total". etcd has counters without
    # the suffix (etcd_server_health_success, ...); their header lines are renamed back to the
    # name their samples carry.
    lines = text.split(b"\n")
    samples = {
        line.split(b" ", 1)[0].split(b"{", 1)[0] for line in lines if line and not line.startswith(b"#")
    }
    out = []
    for line in lines:
        parts = line.split(b" ", 3)
        if len(parts) >= 3 and parts[0] == b"#" and parts[1] in (b"HELP", b"TYPE"):
            name = parts[2]
            if name.endswith(b"_total") and name not in samples and name[:-6] in samples:
                parts[2] = name[:-6]
                line = b" ".join(parts)
        out.append(line)
    return b"\n".join(out)


class MetricsUnavailable(Exception):
    """A front-end could not get the core's rendering (the core is gone or does not answer)."""


class EtcdMetrics:
    """The series named in issue 5, plus /health's success and failure counters."""

    def __init__(self) -> None:
        # The core of a member with front-ends: their newest reports (see the module docstring).
        self._reports: Callable[[], list[list[Family]]] | None = None
        self._sampled: list[Sampled] = []
        r = self.registry = CollectorRegistry(auto_describe=True)
        # process_resident_memory_bytes, process_cpu_seconds_total, ...: the process series Go's
        # client exports and tools read (etcdctl check datascale reads the resident memory).
        self.process = prometheus_client.ProcessCollector(registry=r)
        self.has_leader = Gauge(
            "etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", registry=r
        )
        self.leader_changes = Counter(
            "etcd_server_leader_changes_seen_total", "The number of leader changes seen.", registry=r
        )
        self.proposals_committed = Gauge(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            registry=r,
        )
        self.proposals_applied = Gauge(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            registry=r,
        )
        self.proposals_pending = Gauge(
            "etcd_server_proposals_pending", "The current number of pending proposals to commit.", registry=r
        )
        self.proposals_failed = Counter(
            "etcd_server_proposals_failed_total", "The total number of failed proposals seen.", registry=r
        )
        self.wal_fsync_duration = Histogram(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            buckets=_exponential(0.001, 2, 14),
            registry=r,
        )
        self.backend_commit_duration = Histogram(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            buckets=_exponential(0.001, 2, 14),
            registry=r,
        )
        self.db_total_size = Gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            registry=r,
        )
        self.peer_round_trip_time = Histogram(
            "etcd_network_peer_round_trip_time_seconds",
            "Round-Trip-Time histogram between peers",
            ["To"],
            buckets=_exponential(0.0001, 2, 14),
            registry=r,
        )
        self.health_success = PlainCounter(
            "etcd_server_health_success", "The total number of successful health checks", r
        )
        self.health_failures = PlainCounter(
            "etcd_server_health_failures", "The total number of failed health checks", r
        )

        self.healthcheck = Gauge(
            "etcd_server_healthcheck", "The result of each kind of healthcheck.", ["type", "name"], registry=r
        )
        self.healthchecks = Counter(
            "etcd_server_healthchecks_total",
            "The total number of each kind of healthcheck.",
            ["type", "name", "status"],
            registry=r,
        )

    def add_sampled(
        self, prefix: str, source: Callable[[], Mapping[str, float]], kind: str = "gauge"
    ) -> None:
        """Export another component's numbers, e.g. `add_sampled("etcd_debugging_mvcc_", ws.gauges)`."""
        self._sampled.append(Sampled(prefix, source, kind, self.registry))

    def record_check(self, kind: str, name: str, ok: bool) -> None:
        """One livez/readyz check's result (etcd's recordMetrics)."""
        self.healthcheck.labels(kind, name).set(1.0 if ok else 0.0)
        self.healthchecks.labels(kind, name, "success" if ok else "error").inc()

    def add_contributions(self, reports: Callable[[], list[list[Family]]]) -> None:
        """The core of a member with front-ends: merge their newest reports into every rendering."""
        self._reports = reports

    def contribution(self, *, process: bool = True) -> list[Family]:
        """A front-end's share of the member-wide families, for the core (see the module docstring);
        without the process_* ones when `process` is false (they read /proc: see FrontendMetrics)."""
        collectors: list[Collector] = [
            self.health_success,
            self.health_failures,
            self.healthcheck,
            self.healthchecks,
            *self._sampled,
        ]
        if process:
            collectors.append(self.process)
        return [to_wire(m) for c in collectors for m in c.collect() if merge_rule(m.name) not in (None, CORE)]

    def render(self) -> bytes:
        reports = self._reports() if self._reports is not None else []
        if not reports:
            return _exposition(self.registry)
        return _exposition(_Families(merge_families(self.registry.collect(), reports)))

    async def exposition(self) -> bytes:
        """What `/metrics` serves."""
        return self.render()


class FrontendMetrics(EtcdMetrics):
    """A front-end's registry: its own measurements (health checks, watch gauges, process), which it
    contributes, and a `/metrics` that is the core's rendering of the whole member."""

    def __init__(
        self,
        fetch: Callable[[list[Family]], Awaitable[bytes]],
        timeout_s: float = CORE_SCRAPE_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self._fetch = fetch  # sends this front-end's fresh contribution, returns the core's rendering
        self.timeout_s = timeout_s
        # The process_* families of the last report that read them, and when (monotonic seconds).
        self._process_families: list[Family] = []
        self._process_read_at = -PROCESS_REPORT_INTERVAL_S

    def report(self) -> list[Family]:
        """The periodic report: the contribution, with process_* families read at most every
        PROCESS_REPORT_INTERVAL_S (reading them lists /proc/self/fd: about 19 ms with 10k open
        connections, on the event loop) and repeated from the last reading in between."""
        now = time.monotonic()
        if now - self._process_read_at >= PROCESS_REPORT_INTERVAL_S:
            self._process_read_at = now
            self._process_families = [
                to_wire(m) for m in self.process.collect() if merge_rule(m.name) != CORE
            ]
        return [*self.contribution(process=False), *self._process_families]

    async def exposition(self) -> bytes:
        try:
            return await asyncio.wait_for(self._fetch(self.contribution()), self.timeout_s)
        except Exception as e:  # the channel closed, a timeout, a failure on the core: no rendering
            raise MetricsUnavailable(f"the core's metrics: {type(e).__name__}: {e}") from e
