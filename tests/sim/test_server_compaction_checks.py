"""The server simulator's checks that compaction and membership changes need: the history recorded
as members apply (agreement, no gap, equal to what a member still holds) and watches cancelled by
compaction. Hand-made inputs: good ones pass, bad ones are named."""

from __future__ import annotations

from petcd.pb.mvccpb import kv_pb2 as mvccpb
from petcd.sim.server_checker import (
    Change,
    FinalHistory,
    HistoryRecorder,
    RevisionWatch,
    WatchEvent,
    WatchRecord,
    check_member_history,
    check_watches,
)


def put_ev(key: bytes, value: bytes, rev: int, lease: int = 0) -> mvccpb.Event:
    return mvccpb.Event(
        type=mvccpb.Event.PUT, kv=mvccpb.KeyValue(key=key, value=value, mod_revision=rev, lease=lease)
    )


def del_ev(key: bytes, rev: int) -> mvccpb.Event:
    return mvccpb.Event(type=mvccpb.Event.DELETE, kv=mvccpb.KeyValue(key=key, mod_revision=rev))


def test_members_agreeing_on_every_revision_give_the_final_history() -> None:
    rec = HistoryRecorder()
    rec.record(0, 1, 2, [put_ev(b"a", b"1", 2)])
    rec.record(1, 2, 2, [put_ev(b"a", b"1", 2)])  # another member, same revision: agrees
    rec.record(2, 1, 3, [put_ev(b"b", b"2", 3, lease=7), del_ev(b"a", 3)])
    final, problems = rec.final(3, 9)
    assert problems == []
    assert final.changes == [Change(2, b"a", b"1"), Change(3, b"a", None), Change(3, b"b", b"2", 7)]


def test_members_applying_different_changes_at_one_revision_is_a_violation() -> None:
    rec = HistoryRecorder()
    rec.record(0, 1, 2, [put_ev(b"a", b"1", 2)])
    rec.record(5, 3, 2, [put_ev(b"a", b"other", 2)])
    _, problems = rec.final(2, 9)
    assert [v.kind for v in problems] == ["state-machine"]
    assert "m3" in problems[0].detail


def test_a_revision_no_member_applied_is_a_gap() -> None:
    rec = HistoryRecorder()
    rec.record(0, 1, 2, [put_ev(b"a", b"1", 2)])
    rec.record(0, 1, 4, [put_ev(b"a", b"3", 4)])
    _, problems = rec.final(4, 9)
    assert [v.kind for v in problems] == ["history-gap"]
    assert "[3]" in problems[0].detail


def test_a_member_holding_other_changes_than_the_recorded_history() -> None:
    final = FinalHistory([Change(2, b"a", b"1"), Change(3, b"a", b"2"), Change(4, b"b", b"x")])
    held = [Change(3, b"a", b"2"), Change(4, b"b", b"x")]
    assert check_member_history(1, held, final, (3, 4), 0) == []  # revision 2 compacted away
    wrong = [Change(3, b"a", b"2"), Change(4, b"b", b"y")]
    assert [v.kind for v in check_member_history(1, wrong, final, (3, 4), 0)] == ["history"]
    assert [v.kind for v in check_member_history(1, held[:1], final, (3, 4), 0)] == ["history"]


FINAL = FinalHistory(
    [Change(2, b"k0", b"a"), Change(3, b"k1", b"b"), Change(4, b"k0", b"c"), Change(5, b"k1", None)]
)


def cancelled_watch(
    start_rev: int, compact_revision: int, *responses: tuple[int, list[WatchEvent]]
) -> WatchRecord:
    w = WatchRecord(1, 1, b"k", b"l", start_rev, False)
    w.responses = list(responses)
    w.canceled = "compacted"
    w.compact_revision = compact_revision
    return w


def test_a_watch_cancelled_by_compaction_must_have_been_behind_it() -> None:
    ok = cancelled_watch(2, 4)  # needed revision 2 < 4: cancelled, as etcd
    assert check_watches([ok], FINAL, 0, {4}) == []
    caught_up = cancelled_watch(2, 4, (3, [WatchEvent(2, b"k0", b"a"), WatchEvent(3, b"k1", b"b")]))
    # it needed revision 4, not below the compaction at 4: etcd would not cancel it
    assert [v.kind for v in check_watches([caught_up], FINAL, 0, {4})] == ["watch"]
    never = cancelled_watch(2, 3)
    assert "never compacted to" in check_watches([never], FINAL, 0, {4})[0].detail


def test_prev_kv_and_tombstones_removed_by_compaction_may_be_missing() -> None:
    w = WatchRecord(1, 1, b"k", b"l", 4, True)
    w.responses = [(5, [WatchEvent(4, b"k0", b"c", None), WatchEvent(5, b"k1", None, (b"b", 3))])]
    assert [v.kind for v in check_watches([w], FINAL, 0, {4})] == ["watch"]  # prev_kv of k0 missing
    w.compacted_seen = 4  # revision 3 was gone when the event was read: etcd sends no prev_kv
    assert check_watches([w], FINAL, 0, {4}) == []

    # a watch from revision 5 after a compaction at 5: the delete there went with the compaction
    gone = WatchRecord(1, 1, b"k", b"l", 5, False)
    gone.responses = [(5, [])]
    assert [v.kind for v in check_watches([gone], FINAL, 0, {5})] == ["watch"]
    gone.compacted_seen = 5
    assert check_watches([gone], FINAL, 0, {5}) == []


def test_a_reused_slot_starts_its_revisions_anew() -> None:
    rw = RevisionWatch()
    rw.observe(0, 4, 30)
    rw.forget(4)
    rw.observe(1, 4, 1)  # a new member on an empty disk
    assert rw.violations == []
    rw.observe(2, 4, 0)
    assert [v.kind for v in rw.violations] == ["revision-back"]
