"""/metrics of a member with front-end processes (`etcd --frontend-processes 2`), end to end.

A scrape of the client port lands on whichever front-end the kernel picks; it must show the
member as the core measures it (leader, WAL fsync, db size, ...), parse as one Prometheus
exposition with each family once, and count the watchers of every front-end, as the core's own
`--listen-metrics-urls` does. Watch streams are opened on connections picked by the front-end that
serves them (test_frontend_watch.Frontends), so the member-wide figure is known to include a
front-end other than the one answering the scrape.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from exposition import parse_exposition
from test_frontend_watch import Frontends, Stream, _streams
from test_frontends import member_with_frontends

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc
from support.servers import free_ports

SCRAPES = 8
POLL_S = 10.0  # a watcher shows within one report interval (0.5 s); generous for loaded machines


def scrape(address: str) -> dict[str, float]:
    """The samples at http://address/metrics (checked to parse with each family once)."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=15) as r:
        assert r.status == 200
        return parse_exposition(r.read().decode())


def check_member_series(samples: dict[str, float], puts: int) -> None:
    assert samples["etcd_server_has_leader"] == 1.0
    assert samples["etcd_server_leader_changes_seen_total"] >= 1.0
    assert samples["etcd_server_proposals_committed_total"] >= puts
    assert samples["etcd_server_proposals_applied_total"] >= puts
    assert samples["etcd_disk_wal_fsync_duration_seconds_count"] >= puts
    assert samples["etcd_disk_backend_commit_duration_seconds_count"] > 0
    assert samples["etcd_mvcc_db_total_size_in_bytes"] > 0
    assert samples["process_cpu_seconds_total"] > 0
    assert samples["process_resident_memory_bytes"] > 0
    for gauge in ("watch_stream_total", "watcher_total", "slow_watcher_total", "pending_events_total"):
        assert f"etcd_debugging_mvcc_{gauge}" in samples


def wait_for_watchers(addresses: list[str], streams: int, watchers: int) -> None:
    """Every address shows the member's watch figures, SCRAPES scrapes in a row each (each scrape on
    the client port is a new connection: a front-end picked by the kernel)."""
    deadline = time.monotonic() + POLL_S
    last: tuple[float, float] = (-1.0, -1.0)
    for address in addresses:
        in_a_row = 0
        while in_a_row < SCRAPES:
            s = scrape(address)
            last = (s["etcd_debugging_mvcc_watch_stream_total"], s["etcd_debugging_mvcc_watcher_total"])
            in_a_row = in_a_row + 1 if last == (streams, watchers) else 0
            assert time.monotonic() < deadline, f"{address}: {last} != {(streams, watchers)}"
            if in_a_row == 0:
                time.sleep(0.05)


def test_client_port_metrics_are_the_members(tmp_path: Path) -> None:
    (metrics_port,) = free_ports(1)
    core_address = f"127.0.0.1:{metrics_port}"
    with (
        member_with_frontends(tmp_path, 2, ["--listen-metrics-urls", f"http://{core_address}"]) as m,
        m.channel() as ch,
    ):
        kv = rpc_pb2_grpc.KVStub(ch)
        puts = 20
        for i in range(puts):
            kv.Put(pb.PutRequest(key=b"m%d" % i, value=b"v" * 100), timeout=10)
        # /health on the client port counts on the answering front-end; it shows member-wide
        for _ in range(3):
            with urllib.request.urlopen(f"http://{m.address}/health", timeout=10) as r:
                assert r.status == 200
        started = time.monotonic()
        for _ in range(SCRAPES):
            s = scrape(m.address)
            check_member_series(s, puts)
            assert "etcd_server_health_success_total" in s
        per_scrape_ms = (time.monotonic() - started) / SCRAPES * 1000
        # the health checks of every front-end, summed (the others' within one report interval)
        deadline = time.monotonic() + POLL_S
        while scrape(m.address)["etcd_server_health_success_total"] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        core = scrape(core_address)
        check_member_series(core, puts)
        assert core["etcd_server_health_success_total"] >= 3
        print(f"client-port scrape with 2 front-ends: {per_scrape_ms:.1f} ms")


def test_watch_gauges_count_every_front_ends_watchers(tmp_path: Path) -> None:
    (metrics_port,) = free_ports(1)
    core_address = f"127.0.0.1:{metrics_port}"
    with member_with_frontends(tmp_path, 2, ["--listen-metrics-urls", f"http://{core_address}"]) as m:
        fe = Frontends(m)
        addresses = [m.address, core_address]
        try:
            a, b = fe.pids
            wait_for_watchers(addresses, 0, 0)
            on_a = Stream(fe.channel(a))
            on_b = [Stream(fe.channel(b)), Stream(fe.channel(b, 1))]
            with _streams(on_a, *on_b):
                ids = [on_a.create(key=b"a%d" % i).watch_id for i in range(2)]
                for i, s in enumerate(on_b):
                    for j in range(3):
                        s.create(key=b"b%d-%d" % (i, j))
                wait_for_watchers(addresses, 3, 2 + 3 + 3)
                on_a.cancel(ids[0])
                wait_for_watchers(addresses, 3, 1 + 3 + 3)
                on_b[0].close()
                wait_for_watchers(addresses, 2, 1 + 3)
            wait_for_watchers(addresses, 0, 0)
        finally:
            fe.close()


def test_single_process_metrics_parse_and_count_watchers(tmp_path: Path) -> None:
    """Without front-ends the core's registry is served as it is: its own watchers, its own health
    checks, no merging."""
    with member_with_frontends(tmp_path, 0) as m, m.channel() as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(5):
            kv.Put(pb.PutRequest(key=b"s%d" % i, value=b"v"), timeout=10)
        with urllib.request.urlopen(f"http://{m.address}/health", timeout=10) as r:
            assert r.status == 200
        s = scrape(m.address)
        check_member_series(s, 5)
        assert s["etcd_server_health_success_total"] == 1
        stream = Stream(m.channel())
        with _streams(stream):
            stream.create(key=b"x1")
            stream.create(key=b"x2")
            wait_for_watchers([m.address], 1, 2)
        wait_for_watchers([m.address], 0, 0)
