"""The numbers behind etcd's proposal and backend-commit metrics, as the Node keeps them:
proposals pending until answered, failed when they time out or the member stops, and one
backend-commit observation per applied batch."""

from __future__ import annotations

from server_harness import Cluster

from petcd.pb.etcdserverpb import rpc_pb2 as rpc
from petcd.server.errors import Stopped, Timeout


def test_pending_and_failed_proposals() -> None:
    c = Cluster(request_timeout_s=1.0)
    leader = c.elect()
    commits: list[float] = []
    leader.observe_backend_commit = commits.append
    rid = leader.put(rpc.PutRequest(key=b"a", value=b"1"))
    assert leader.proposals_pending == 1
    c.ok(rid)
    assert leader.proposals_pending == 0 and leader.proposals_failed == 0
    assert commits and all(d >= 0 for d in commits)  # one observation per applied batch

    # the leader alone: proposals wait, then time out and count as failed
    for i in c.nodes:
        if i != leader.member_id:
            c.net.cut.add(i)
    rids = [leader.put(rpc.PutRequest(key=b"b", value=b"%d" % i)) for i in range(3)]
    read = leader.read_index()  # reads are not proposals
    assert leader.proposals_pending == 3
    for r in rids:
        assert isinstance(c.wait(r, 40), Timeout)
    c.wait(read, 40)
    assert leader.proposals_pending == 0
    assert leader.proposals_failed == 3

    rid = leader.put(rpc.PutRequest(key=b"c", value=b"x"))
    leader.stop()
    assert isinstance(c.sink.results.pop(rid), Stopped)
    assert leader.proposals_failed == 4 and leader.proposals_pending == 0
