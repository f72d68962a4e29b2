"""etcd's Prometheus metrics for the main series, as a registry the runtime updates.

Names, types, help texts and buckets follow etcd (etcdserver/metrics.go, wal/metrics.go,
mvcc/backend/metrics.go, mvcc/metrics.go, rafthttp/metrics.go, etcdhttp/metrics.go), so dashboards and
alerts written for etcd read petcd. Each `EtcdMetrics` owns its own CollectorRegistry (several members
may run in one test process); `/metrics` renders it. The runtime sets gauges and observes histograms;
nothing here reads server state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# etcd exposes no *_created series
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST


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


class EtcdMetrics:
    """The series named in issue 5, plus /health's success and failure counters."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        # process_resident_memory_bytes, process_cpu_seconds_total, ...: the process series Go's
        # client exports and tools read (etcdctl check datascale reads the resident memory).
        prometheus_client.ProcessCollector(registry=r)
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
        Sampled(prefix, source, kind, self.registry)

    def record_check(self, kind: str, name: str, ok: bool) -> None:
        """One livez/readyz check's result (etcd's recordMetrics)."""
        self.healthcheck.labels(kind, name).set(1.0 if ok else 0.0)
        self.healthchecks.labels(kind, name, "success" if ok else "error").inc()

    def render(self) -> bytes:
        text = prometheus_client.generate_latest(self.registry)
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
