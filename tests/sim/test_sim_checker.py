"""The checkers, fed hand-made histories: good ones pass, each kind of bad one is caught."""

from __future__ import annotations

from petcd.raft.types import Entry
from petcd.sim.checker import Checker, DictLog


def e(index: int, term: int, data: bytes = b"") -> Entry:
    return Entry(term=term, index=index, data=data or f"{index}@{term}".encode())


def kinds(c: Checker) -> list[str]:
    return [v.kind for v in c.violations]


def test_a_clean_history_passes() -> None:
    c = Checker()
    log = DictLog({1: 1, 2: 1, 3: 2})
    c.on_leader(10, 1, 1, DictLog({1: 1}))
    c.on_append(11, 1, [e(2, 1)], 1)
    c.on_append(12, 2, [e(2, 1)], 1)
    c.on_commit(13, 1, 1, 2)
    for node in (1, 2, 3):
        c.on_apply(14, node, e(1, 1))
        c.on_apply(14, node, e(2, 1))
    c.on_leader(20, 2, 2, log)
    c.on_append(21, 2, [e(3, 2)], 1)
    c.check_log(22, 3, 2, log)
    c.on_ack(23, "w1", "k", 2)
    c.on_read_issued(24, "r1", "k")
    c.on_read_served(30, "r1", 2, 3, 2)
    c.check_final(40, [(1, 2, {"w1"}), (2, 3, {"w1"})])
    assert c.ok, c.violations
    assert c.reads_checked == 1
    assert c.leaders == {1: 1, 2: 2}


def test_two_leaders_in_one_term() -> None:
    c = Checker()
    c.on_leader(1, 1, 3, DictLog({}))
    c.on_leader(2, 1, 3, DictLog({}))  # the same node again is fine
    assert c.ok
    c.on_leader(5, 2, 3, DictLog({}))
    assert kinds(c) == ["election-safety"]
    assert "term 3 has two leaders: 1 and 2" in str(c.violations[0])


def test_log_matching_same_index_and_term_other_data() -> None:
    c = Checker()
    c.on_append(1, 1, [e(5, 2, b"x")], 2)
    c.on_append(2, 2, [e(5, 2, b"y")], 2)
    assert kinds(c) == ["log-matching"]


def test_log_matching_same_entry_other_prefix() -> None:
    c = Checker()
    c.on_append(1, 1, [e(4, 1), e(5, 3)], 1)
    c.on_append(2, 2, [e(5, 3)], 2)  # entry 5@3 follows 4@2 here, 4@1 there
    assert kinds(c) == ["log-matching"]


def test_divergent_applied_entries() -> None:
    c = Checker()
    c.on_apply(1, 1, e(1, 1, b"a"))
    c.on_apply(2, 2, e(1, 1, b"b"))
    assert kinds(c) == ["state-machine-safety"]


def test_divergent_applied_terms() -> None:
    c = Checker()
    c.on_apply(1, 1, e(1, 1))
    c.on_apply(2, 2, e(1, 2))
    assert kinds(c) == ["state-machine-safety"]


def test_applied_out_of_order_or_rolled_back() -> None:
    c = Checker()
    c.on_apply(1, 1, e(1, 1))
    c.on_apply(2, 1, e(3, 1))
    assert kinds(c) == ["apply-order"]
    c = Checker()
    c.on_snapshot(1, 1, 10, 2)
    c.on_snapshot(2, 1, 7, 2)
    assert kinds(c) == ["apply-order"]
    c = Checker()
    c.on_snapshot(1, 1, 10, 2)
    c.on_apply(2, 1, e(11, 2))
    c.on_restart(3, 1, 10, 11, DictLog({11: 2}, snapshot_index=10))
    c.on_apply(4, 1, e(11, 2))  # replay after a restart is fine
    assert c.ok, c.violations


def test_leader_missing_a_committed_entry() -> None:
    c = Checker()
    c.on_append(1, 1, [e(1, 1), e(2, 1)], None)
    c.on_commit(2, 1, 1, 2)  # node 1 at term 1 knows 2 is committed
    c.on_apply(3, 1, e(1, 1))
    c.on_apply(3, 1, e(2, 1))
    c.on_leader(10, 3, 2, DictLog({1: 1}))  # leader of term 2 lacks entry 2
    assert kinds(c) == ["leader-completeness"]


def test_leader_completeness_respects_the_commit_term_bound() -> None:
    c = Checker()
    # Index 2 is first known committed by a node at term 4: a leader of term 3 may lack it.
    c.on_commit(1, 2, 4, 2)
    c.on_apply(2, 2, e(1, 1))
    c.on_apply(2, 2, e(2, 2))
    c.on_leader(3, 1, 3, DictLog({1: 1}))
    assert c.ok
    c.on_leader(4, 1, 4, DictLog({1: 1, 2: 2}))
    c.on_leader(5, 2, 5, DictLog({1: 1}))
    assert kinds(c) == ["leader-completeness"]


def test_entries_in_a_snapshot_count_as_present() -> None:
    c = Checker()
    c.on_commit(1, 1, 1, 5)
    for i in range(1, 6):
        c.on_apply(2, 1, e(i, 1))
    c.on_leader(3, 2, 2, DictLog({5: 1}, snapshot_index=4))
    assert c.ok


def test_lost_committed_entry() -> None:
    # Entry 5@2 was committed and acknowledged; later a node's log (up to its commit) has 5@3.
    c = Checker()
    c.on_commit(1, 1, 2, 5)
    for i in range(1, 6):
        c.on_apply(2, 1, e(i, 2, f"cmd{i}".encode()))
    c.on_ack(3, "w5", "k", 5)
    c.on_restart(10, 2, 0, 5, DictLog({1: 2, 2: 2, 3: 2, 4: 2, 5: 3}))
    assert kinds(c) == ["durability"]


def test_lost_committed_index_and_lost_acked_write_at_the_end() -> None:
    c = Checker()
    for i in range(1, 6):
        c.on_apply(1, 1, e(i, 1))
    c.on_ack(2, "w4", "k", 4)
    c.check_final(10, [(1, 5, {"w4"}), (2, 3, set())])
    assert kinds(c) == ["durability"]
    assert "ends at applied index 3" in str(c.violations[0])
    c = Checker()
    for i in range(1, 6):
        c.on_apply(1, 1, e(i, 1))
    c.on_ack(2, "w4", "k", 4)
    c.check_final(10, [(1, 5, set())])
    assert kinds(c) == ["durability"]
    assert "lost acknowledged writes w4" in str(c.violations[0])


def test_stale_read() -> None:
    c = Checker()
    c.on_ack(1, "w1", "a", 7)
    c.on_read_issued(2, "r1", "a")
    c.on_read_served(5, "r1", 6, 9, 7)  # read index below an acknowledged write
    assert kinds(c) == ["read"]
    c = Checker()
    c.on_ack(1, "w1", "a", 7)
    c.on_ack(1, "w2", "b", 8)
    c.on_read_issued(2, "r1", "a")
    c.on_read_served(5, "r1", 8, 9, 3)  # saw an older write of "a" than the acknowledged one
    assert kinds(c) == ["read"]


def test_reads_racing_writes_are_fine() -> None:
    c = Checker()
    c.on_read_issued(1, "r1", "a")
    c.on_ack(2, "w1", "a", 7)  # acknowledged after the read was issued: either answer is right
    c.on_read_served(5, "r1", 5, 6, 0)
    c.forget_read("r2")
    assert c.ok


def test_members_at_one_index_must_hold_one_state() -> None:
    c = Checker()
    c.check_states(1, [(1, 5, b"a"), (2, 5, b"a"), (3, 4, b"b")])
    assert c.ok
    c.check_states(2, [(1, 5, b"a"), (2, 5, b"x")])
    assert kinds(c) == ["state-machine-safety"]
