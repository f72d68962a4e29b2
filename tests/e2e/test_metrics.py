"""End to end: every series issue 5 names is on /metrics with etcd's name and moves with traffic:
has leader, leader changes, proposals committed/applied/pending/failed, WAL fsync and backend
commit durations, db size, peer round-trip time."""

from __future__ import annotations

import signal
import subprocess
import urllib.request
from pathlib import Path

from test_tutorial import (
    ETCDCTL,
    Member,
    endpoint_status,
    etcdctl,
    make_cluster,
    members,  # noqa: F401 - the fixture
    wait_for,
    wait_ready,
)


def scrape(m: Member) -> dict[str, float]:
    with urllib.request.urlopen(f"{m.client_url}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def series(samples: dict[str, float], prefix: str) -> float:
    """The sum over every label set of the series `prefix` (e.g. a histogram's _count)."""
    found = [v for k, v in samples.items() if k == prefix or k.startswith(prefix + "{")]
    assert found, f"no series {prefix}"
    return sum(found)


def test_main_series_move_with_traffic(tmp_path: Path, members: list[Member]) -> None:  # noqa: F811
    ms, initial = make_cluster(tmp_path, members, 2)
    for m in ms:
        m.start(initial)
    wait_ready(ms)
    for i in range(20):
        assert etcdctl(ms[i % 2].client_url, "put", f"k{i}", "v" * 100) == "OK\n"
    leader_id = endpoint_status(ms[0])["leader"]
    (leader,) = [m for m in ms if endpoint_status(m)["header"]["member_id"] == leader_id]  # type: ignore[index]
    (follower,) = [m for m in ms if m is not leader]

    wait_for(
        lambda: "etcd_network_peer_round_trip_time_seconds_count{To=" in str(scrape(leader)),
        10.0,
        "a peer round-trip sample",
    )
    s = scrape(leader)
    assert s["etcd_server_has_leader"] == 1.0
    assert s["etcd_server_leader_changes_seen_total"] >= 1.0
    assert s["etcd_server_proposals_committed_total"] >= 20
    assert s["etcd_server_proposals_applied_total"] >= 20
    assert s["etcd_server_proposals_pending"] == 0.0
    assert s["etcd_server_proposals_failed_total"] == 0.0
    assert series(s, "etcd_disk_wal_fsync_duration_seconds_count") >= 20
    assert series(s, "etcd_disk_backend_commit_duration_seconds_count") >= 20
    assert series(s, "etcd_disk_backend_commit_duration_seconds_sum") > 0
    assert s["etcd_mvcc_db_total_size_in_bytes"] > 0
    assert series(s, "etcd_network_peer_round_trip_time_seconds_count") >= 1

    # the follower dies: the leader loses its quorum, a write waits (pending) and then fails
    follower.stop(signal.SIGKILL)
    subprocess.run(
        [ETCDCTL, "--endpoints", leader.client_url, "--command-timeout=1s", "put", "stuck", "x"],
        capture_output=True,
        env={"ETCDCTL_API": "3"},
        timeout=10,
        check=False,
    )
    s = scrape(leader)
    assert s["etcd_server_proposals_pending"] >= 1.0
    # etcd's request timeout: 5 s + 2 election timeouts
    wait_for(lambda: scrape(leader)["etcd_server_proposals_failed_total"] >= 1.0, 20.0, "a failed proposal")
    s = scrape(leader)
    assert s["etcd_server_proposals_pending"] == 0.0
    assert s["etcd_server_has_leader"] == 0.0
