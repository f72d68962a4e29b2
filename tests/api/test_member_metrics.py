"""The member-wide /metrics of a member with front-end processes (petcd.gateway.metrics): how the
core merges the front-ends' reports into its registry, and how a front-end's gateway serves the
core's rendering (503 when the core does not answer). The processes themselves: tests/e2e."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import pytest
from exposition import parse_exposition
from fake_facade import FakeFacade
from prometheus_client.metrics_core import Metric

from petcd.api.server import build_grpc_server
from petcd.gateway.http import GatewayServer
from petcd.gateway.metrics import (
    EtcdMetrics,
    Family,
    FrontendMetrics,
    MetricsUnavailable,
    merge_rule,
)


def frontend(watchers: int, health_ok: int, readyz_ok: bool) -> EtcdMetrics:
    m = EtcdMetrics()
    gauges = {"watch_stream_total": 1, "watcher_total": watchers, "slow_watcher_total": 0}
    m.add_sampled("etcd_debugging_mvcc_", lambda: gauges)
    m.health_success.inc(health_ok)
    m.record_check("readyz", "linearizable_read", readyz_ok)
    m.has_leader.set(0.0)  # never the member's figure: a front-end does not measure it
    return m


def test_rules_name_who_owns_each_family() -> None:
    assert merge_rule("etcd_server_has_leader") is None
    assert merge_rule("etcd_disk_wal_fsync_duration_seconds") is None
    assert merge_rule("etcd_debugging_mvcc_watcher_total") == "sum"
    assert merge_rule("etcd_server_health_success") == "sum"
    assert merge_rule("etcd_server_healthcheck") == "min"
    assert merge_rule("process_start_time_seconds") == "core"
    # a front-end sends only the member-wide families it measures
    sent = {f[0] for f in frontend(1, 1, True).contribution()}
    assert "etcd_server_has_leader" not in sent and "process_start_time_seconds" not in sent
    assert {"etcd_debugging_mvcc_watcher_total", "etcd_server_health_success", "process_cpu_seconds"} <= sent


def test_core_renders_the_member_with_every_report_merged() -> None:
    core = EtcdMetrics()
    core.add_sampled("etcd_debugging_mvcc_", lambda: {"watch_stream_total": 0, "watcher_total": 2})
    core.has_leader.set(1.0)
    core.wal_fsync_duration.observe(0.002)
    core.health_success.inc()
    fe1, fe2 = frontend(3, 2, True), frontend(4, 5, False)
    reports: list[list[Family]] = [fe1.contribution(), fe2.contribution()]
    core.add_contributions(lambda: reports)
    text = core.render().decode()
    s = parse_exposition(text)
    assert s["etcd_server_has_leader"] == 1.0  # the core's alone
    assert s["etcd_disk_wal_fsync_duration_seconds_count"] == 1.0
    assert s["etcd_debugging_mvcc_watcher_total"] == 2 + 3 + 4
    assert s["etcd_debugging_mvcc_watch_stream_total"] == 0 + 1 + 1
    # a family only front-ends have (the core never sampled a slow watcher) is still served once
    assert s["etcd_debugging_mvcc_slow_watcher_total"] == 0
    assert s["etcd_server_health_success_total"] == 1 + 2 + 5
    assert s['etcd_server_healthcheck{name="linearizable_read",type="readyz"}'] == 0.0  # one failed
    assert s['etcd_server_healthchecks_total{name="linearizable_read",status="success",type="readyz"}'] == 1
    assert s['etcd_server_healthchecks_total{name="linearizable_read",status="error",type="readyz"}'] == 1
    own = parse_exposition(EtcdMetrics().render().decode())
    assert s["process_start_time_seconds"] == own["process_start_time_seconds"]  # the core's
    assert s["process_resident_memory_bytes"] > own["process_resident_memory_bytes"]  # three processes
    reports.clear()  # no front-end: the core's registry as it is
    assert parse_exposition(core.render().decode())["etcd_debugging_mvcc_watcher_total"] == 2


def test_without_front_ends_the_rendering_is_the_registrys() -> None:
    m = EtcdMetrics()
    m.add_sampled("etcd_debugging_mvcc_", lambda: {"watcher_total": 1})
    before = m.render()
    m.add_contributions(list)
    after = m.render()

    # the process figures move between two renderings; everything else is byte for byte the same
    def steady(text: bytes) -> list[bytes]:
        return [ln for ln in text.split(b"\n") if not ln.startswith(b"process_")]

    assert steady(before) == steady(after)
    parse_exposition(after.decode())


def _gateway(fetch: Callable[[list[Family]], Awaitable[bytes]]) -> tuple[GatewayServer, FrontendMetrics]:
    _, core, _ = build_grpc_server(FakeFacade())
    metrics = FrontendMetrics(fetch, timeout_s=0.2)
    return GatewayServer(core, metrics), metrics


def test_a_front_ends_metrics_are_the_cores_rendering() -> None:
    sent: list[list[Family]] = []

    async def fetch(families: list[Family]) -> bytes:
        sent.append(families)
        return b"etcd_server_has_leader 1.0\n"

    async def main() -> None:
        gw, _ = _gateway(fetch)
        await gw._dispatch("GET", "/health", "", b"", None)
        resp = await gw._dispatch("GET", "/metrics", "", b"", None)
        assert resp.status == 200 and resp.body == b"etcd_server_has_leader 1.0\n"
        # the scrape carried this front-end's fresh figures (its health check just now)
        (families,) = sent
        (success,) = [f for f in families if f[0] == "etcd_server_health_success"]
        assert success[3][0][2] == 1.0

    asyncio.run(main())


@pytest.mark.parametrize("failure", ["closed", "timeout"])
def test_a_front_end_whose_core_does_not_answer_says_so(failure: str) -> None:
    async def fetch(families: list[Family]) -> bytes:
        if failure == "timeout":
            await asyncio.sleep(10)
        raise ConnectionError("channel closed")

    async def main() -> None:
        gw, metrics = _gateway(fetch)
        with pytest.raises(MetricsUnavailable):
            await metrics.exposition()
        resp = await gw._dispatch("GET", "/metrics", "", b"", None)
        assert resp.status == 503

    asyncio.run(main())


def test_the_periodic_report_reads_the_process_figures_seldom(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fetch(families: list[Family]) -> bytes:
        return b""

    m = FrontendMetrics(fetch)
    reads = 0
    collect = m.process.collect

    def counting() -> Iterable[Metric]:
        nonlocal reads
        reads += 1
        return collect()

    monkeypatch.setattr(m.process, "collect", counting)
    first = m.report()
    m.health_success.inc()
    second = m.report()
    assert reads == 1  # within PROCESS_REPORT_INTERVAL_S: the last reading again
    assert [f for f in first if f[0].startswith("process_")] == [
        f for f in second if f[0].startswith("process_")
    ]
    assert {f[0]: f[3] for f in second}["etcd_server_health_success"][0][2] == 1.0  # the rest is fresh
    assert "process_cpu_seconds" in {f[0] for f in m.contribution()} and reads == 2  # a scrape: all fresh
