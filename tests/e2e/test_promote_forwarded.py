"""End to end: `member promote` sent to a follower goes to the leader, the only member that knows
whether the learner is in sync (etcd's promoteMemberHTTP): a learner that never started is refused
with etcd's message through any member, and promoted once it has caught up."""

from __future__ import annotations

from pathlib import Path

from cluster_ops import add_member, member_id
from test_tutorial import (
    Member,
    endpoint_status,
    etcdctl,
    free_ports,
    make_cluster,
    members,  # noqa: F401 - the fixture
    wait_for,
    wait_ready,
)

NOT_IN_SYNC = "can only promote a learner member which is in sync with leader"


def test_promote_through_a_follower_checks_the_learner_on_the_leader(
    tmp_path: Path,
    members: list[Member],  # noqa: F811
) -> None:
    ms, initial = make_cluster(tmp_path, members, 2)
    for m in ms:
        m.start(initial)
    wait_ready(ms)
    for i in range(10):
        assert etcdctl(ms[0].client_url, "put", f"k{i}", "v") == "OK\n"
    leader_id = endpoint_status(ms[0])["leader"]
    (follower,) = [m for m in ms if endpoint_status(m)["header"]["member_id"] != leader_id]  # type: ignore[index]

    client, peer = free_ports(2)
    learner = Member("etcd3", tmp_path, client, peer)
    members.append(learner)
    etcd_env = add_member(follower.client_url, learner, learner=True)
    learner_id = member_id(follower.client_url, learner)

    # not started: far behind the leader, whichever member is asked
    out = etcdctl(follower.client_url, "member", "promote", learner_id, check=False, stderr=True)
    assert NOT_IN_SYNC in out, out

    learner.start("", etcd_env=etcd_env)
    wait_ready([learner])
    last: list[str] = []

    def promoted() -> bool:
        last.append(etcdctl(follower.client_url, "member", "promote", learner_id, check=False, stderr=True))
        if last[-1].startswith(f"Member {learner_id} promoted in cluster "):
            return True
        # an attempt whose answer was lost may still have been applied
        return "can only promote a learner member\n" in last[-1]

    wait_for(promoted, 20.0, f"the learner to be promoted (last answers: {last[-3:]})")
    rows = etcdctl(follower.client_url, "member", "list").splitlines()
    assert len(rows) == 3 and all(r.endswith(", false") for r in rows)
