"""MemberPromote is decided by the leader alone (it knows whether the learner is in sync): a
follower answers NotLeader naming the leader, for the runtime to forward the request there."""

from __future__ import annotations

import pytest
from server_harness import Cluster

from petcd.pb.etcdserverpb import rpc_pb2 as rpc
from petcd.server.errors import LearnerNotReady, MemberNotLearner, NotLeader


def test_promote_on_a_follower_names_the_leader() -> None:
    c = Cluster()
    leader = c.elect()
    added = c.ok(leader.member_add(["http://n4:2380"], is_learner=True))
    assert isinstance(added, rpc.MemberAddResponse)
    c.run(2)
    follower = next(n for n in c.nodes.values() if not n.is_leader)
    with pytest.raises(NotLeader) as err:
        follower.member_promote(added.member.ID)
    assert err.value.leader == leader.member_id
    with pytest.raises(MemberNotLearner):  # what the follower can tell alone, it tells
        follower.member_promote(leader.member_id)
    with pytest.raises(LearnerNotReady):  # never started: far behind
        leader.member_promote(added.member.ID)
