"""End to end: `etcd --force-new-cluster` turns one member of a stopped 3-member cluster into a
one-member cluster that keeps every acknowledged key, takes writes and new members (etcd's
disaster recovery: "restart a member with --force-new-cluster, then add members back")."""

from __future__ import annotations

import signal
from pathlib import Path

from cluster_ops import add_member
from test_tutorial import (
    Member,
    etcdctl,
    free_ports,
    make_cluster,
    members,  # noqa: F401 - the fixture
    wait_for,
    wait_ready,
)


def test_force_new_cluster_after_losing_the_cluster(tmp_path: Path, members: list[Member]) -> None:  # noqa: F811
    ms, initial = make_cluster(tmp_path, members, 3)
    for m in ms:
        m.start(initial)
    wait_ready(ms)
    for i in range(30):
        assert etcdctl(ms[i % 3].client_url, "put", f"k{i:02d}", f"v{i}") == "OK\n"
    for m in ms:
        m.stop(signal.SIGKILL)

    survivor = ms[1]
    survivor.extra = ("--force-new-cluster",)
    survivor.start(initial)
    wait_ready([survivor], count=2)
    log = survivor.log_text()
    assert "forcing restart member" in log
    assert "removed member" in log
    url = survivor.client_url
    out = etcdctl(url, "get", "k", "--prefix").splitlines()
    assert out == [x for i in range(30) for x in (f"k{i:02d}", f"v{i}")]
    rows = etcdctl(url, "member", "list").splitlines()
    assert [r.split(", ")[1:] for r in rows] == [
        ["started", survivor.name, survivor.peer_url, survivor.client_url, "false"]
    ]
    assert etcdctl(url, "put", "after", "force") == "OK\n"

    # add a brand-new member (empty data dir): it joins and gets every key
    client, peer = free_ports(2)
    new = Member("etcd4", tmp_path, client, peer)
    members.append(new)
    etcd_env = add_member(url, new)
    assert etcd_env["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    new.start("", etcd_env=etcd_env)
    wait_ready([new])
    wait_for(
        lambda: etcdctl(new.client_url, "get", "after", "--consistency=s", check=False) == "after\nforce\n",
        15.0,
        "the new member to catch up",
    )
    assert etcdctl(new.client_url, "get", "k29", "--consistency=s") == "k29\nv29\n"
    rows = etcdctl(url, "member", "list").splitlines()
    assert sorted(r.split(", ")[2] for r in rows) == [survivor.name, new.name]

    # the survivor restarted without the flag is still the same two-member cluster
    survivor.stop()
    survivor.extra = ()
    survivor.start(initial)
    wait_ready([survivor], count=3)
    assert etcdctl(new.client_url, "put", "both", "up") == "OK\n"
    wait_for(
        lambda: etcdctl(url, "get", "both", "--consistency=s", check=False) == "both\nup\n",
        15.0,
        "the restarted survivor to serve",
    )

    # an old member restarted on its old data is told it was removed, and goes; the cluster stays
    old = ms[0]
    old.start(initial)
    assert old.proc is not None
    old.proc.wait(30)
    assert "the member has been permanently removed from the cluster" in old.log_text()
    assert etcdctl(url, "put", "still", "fine") == "OK\n"
    rows = etcdctl(url, "member", "list").splitlines()
    assert sorted(r.split(", ")[2] for r in rows) == [survivor.name, new.name]
