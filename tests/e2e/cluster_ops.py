"""Cluster operations the e2e tests share, through the reference etcdctl (see test_tutorial)."""

from __future__ import annotations

from test_tutorial import Member, etcdctl


def add_member(endpoint: str, new: Member, learner: bool = False) -> dict[str, str]:
    """`etcdctl member add`; the ETCD_* variables it prints, for `new.start("", etcd_env=...)`."""
    extra = ["--learner"] if learner else []
    printed = etcdctl(endpoint, "member", "add", new.name, f"--peer-urls={new.peer_url}", *extra)
    return {
        k: v.strip('"')
        for k, v in (line.split("=", 1) for line in printed.splitlines() if line.startswith("ETCD_"))
    }


def member_id(endpoint: str, m: Member) -> str:
    """The hex ID `etcdctl member list` shows for `m` (found by its peer URL: started or not)."""
    for row in etcdctl(endpoint, "member", "list").splitlines():
        if row.split(", ")[3] == m.peer_url:
            return row.split(", ")[0]
    raise AssertionError(f"no member with peer URL {m.peer_url} in the list")
