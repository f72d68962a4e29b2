"""A membership change that raft cannot take at once (a leader transfer in progress) is offered
again at each Ready, as proposals are, instead of failing the caller with raft's ProposalDropped."""

from __future__ import annotations

from server_harness import Cluster

from petcd.pb.etcdserverpb import rpc_pb2 as rpc


def test_member_add_during_a_leader_transfer_completes_afterwards() -> None:
    c = Cluster()
    leader = c.elect()
    target = next(i for i in c.nodes if i != leader.member_id)
    c.net.cut.add(target)  # the transfer cannot finish at once: raft drops proposals meanwhile
    leader.move_leader(target)
    leader.process_ready()
    assert leader.raw.raft.lead_transferee == target
    rid = leader.member_add(["http://n4:2380"], is_learner=True)  # used to raise ProposalDropped
    c.net.cut.discard(target)
    resp = c.ok(rid, 200)
    assert isinstance(resp, rpc.MemberAddResponse)
    assert any(m.peerURLs == ["http://n4:2380"] and m.isLearner for m in resp.members)
    assert all(
        any(m.peer_urls == ("http://n4:2380",) for m in n.members.sorted_members()) for n in c.nodes.values()
    )


def test_a_change_never_taken_times_out() -> None:
    c = Cluster(request_timeout_s=1.0)
    leader = c.elect()
    for i in [i for i in c.nodes if i != leader.member_id]:
        c.stop(i)
    c.run(25)  # check-quorum: the leader steps down, nobody leads
    assert leader.leader_id == 0
    rid = leader.member_add(["http://n4:2380"], is_learner=True)
    result = c.wait(rid, 40)
    assert type(result).__name__ == "Timeout"
    assert leader._conf_changes == []  # not offered to raft after its request timed out
