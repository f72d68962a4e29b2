"""The robustness checkers on hand-written histories: each is judged correctly.

Histories are written as the harness records them (etcd requests and responses, projected by
`Projector`), so the projection is tested with the checkers: classic stale read, lost update,
a read that is fine only because it overlapped the write, a multi-key txn, a historic list page,
unknown-outcome writes; watch streams with a gap, a duplicate, a split revision, a bookmark below
a delivered event, a missing `created`, a wrong prev_kv; and the unknown verdict when the search
budget runs out.
"""

from __future__ import annotations

import base64

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.mvccpb import kv_pb2
from petcd.robustness.checks import check_final_state, check_leases, check_streams, run_checks
from petcd.robustness.history import History, Operation, Projector
from petcd.robustness.traffic import WatchStream
from petcd.sim.linearizability import KvOp
from petcd.sim.server_checker import Change, FinalHistory, WatchEvent, WatchRecord

A, B, C = b"a", b"b", b"c"
KEYS = [A, B, C]


class Rec:
    """Builds projected ops the way the harness does."""

    def __init__(self) -> None:
        self.projector = Projector(History(), KEYS)
        self.ops: list[KvOp] = []

    def put(self, key: bytes, value: bytes, invoke: int, ret: int | None, rev: int = 0) -> None:
        resp = None if ret is None else pb.PutResponse(header=pb.ResponseHeader(revision=rev))
        self.ops += self.projector.put(pb.PutRequest(key=key, value=value), resp, invoke, ret, 0)

    def get(  # noqa: PLR0917
        self, key: bytes, invoke: int, ret: int, rev: int, value: bytes | None = None, mod: int = 0
    ) -> None:
        kvs = [] if value is None else [kv_pb2.KeyValue(key=key, value=value, mod_revision=mod)]
        resp = pb.RangeResponse(header=pb.ResponseHeader(revision=rev), kvs=kvs)
        self.ops += self.projector.range(pb.RangeRequest(key=key), resp, invoke, ret, 0)

    def cas(  # noqa: PLR0917
        self,
        key: bytes,
        expect: int,
        value: bytes,
        invoke: int,
        ret: int | None,
        ok: bool = True,
        rev: int = 0,
    ) -> None:
        req = pb.TxnRequest(
            compare=[
                pb.Compare(key=key, target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=expect)
            ],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=key, value=value))],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key))],
        )
        resp = None if ret is None else pb.TxnResponse(header=pb.ResponseHeader(revision=rev), succeeded=ok)
        self.ops += self.projector.txn(req, resp, invoke, ret, 0)

    def check(self, *changes: tuple[int, bytes, bytes | None], budget: int = 100_000) -> list[str]:
        final = FinalHistory(Change(r, k, v) for r, k, v in changes)
        out = run_checks(self.ops, [], final, set(KEYS), budget, 0)
        return [v.kind for v in out.violations] + [v.kind for v in out.unknown]


def test_sequential_history_passes() -> None:
    h = Rec()
    h.put(A, b"1", 0, 10, rev=2)
    h.get(A, 20, 30, rev=2, value=b"1", mod=2)
    h.cas(A, 2, b"2", 40, 50, rev=3)
    h.get(A, 60, 70, rev=3, value=b"2", mod=3)
    assert h.check((2, A, b"1"), (3, A, b"2")) == []


def test_classic_stale_read_is_a_violation() -> None:
    h = Rec()
    h.put(A, b"1", 0, 10, rev=2)
    h.get(A, 20, 30, rev=1)  # began after the put was acknowledged, yet sees nothing
    assert "linearizability" in h.check((2, A, b"1"))


def test_overlapping_read_of_the_old_value_passes() -> None:
    h = Rec()
    h.put(A, b"1", 0, 30, rev=2)
    h.get(A, 10, 20, rev=1)  # concurrent with the put: may come first
    assert h.check((2, A, b"1")) == []


def test_lost_update_is_a_violation() -> None:
    h = Rec()
    h.put(A, b"0", 0, 10, rev=2)
    # two compare-and-sets on the same mod_revision both succeed: one update is lost
    h.cas(A, 2, b"x", 20, 40, rev=3)
    h.cas(A, 2, b"y", 25, 45, rev=4)
    assert "linearizability" in h.check((2, A, b"0"), (3, A, b"x"), (4, A, b"y"))


def test_unknown_outcome_write_may_or_may_not_have_happened() -> None:
    took = Rec()
    took.put(A, b"1", 0, None)  # timed out, yet applied
    took.get(A, 50, 60, rev=2, value=b"1", mod=2)
    assert took.check((2, A, b"1")) == []
    lost = Rec()
    lost.put(A, b"1", 0, None)  # timed out, never applied
    lost.get(A, 50, 60, rev=1)
    assert lost.check() == []


def test_acknowledged_write_missing_from_the_history_is_lost() -> None:
    h = Rec()
    h.put(A, b"1", 0, 10, rev=2)
    h.put(B, b"2", 20, 30, rev=3)
    assert "lost-write" in h.check((3, B, b"2"))


def test_multi_key_txn_parts_share_a_revision() -> None:
    h = Rec()
    req = pb.TxnRequest(
        success=[
            pb.RequestOp(request_range=pb.RangeRequest(key=C)),
            pb.RequestOp(request_put=pb.PutRequest(key=A, value=b"1")),
            pb.RequestOp(request_put=pb.PutRequest(key=B, value=b"2")),
        ]
    )
    resp = pb.TxnResponse(
        header=pb.ResponseHeader(revision=2),
        succeeded=True,
        responses=[
            pb.ResponseOp(response_range=pb.RangeResponse()),
            pb.ResponseOp(response_put=pb.PutResponse()),
            pb.ResponseOp(response_put=pb.PutResponse()),
        ],
    )
    h.ops += h.projector.txn(req, resp, 0, 10, 0)
    assert sorted((o.kind, o.key, o.revision) for o in h.ops) == [
        ("get", C, 2),
        ("put", A, 2),
        ("put", B, 2),
    ]
    assert h.check((2, A, b"1"), (2, B, b"2")) == []
    # two writes of *different* requests at one revision are still caught
    h.put(C, b"3", 20, 30, rev=2)
    assert "linearizability" in h.check((2, A, b"1"), (2, B, b"2"), (2, C, b"3"))


def test_range_with_limit_projects_only_up_to_its_last_key_and_pages_are_historic() -> None:
    h = Rec()
    h.put(A, b"1", 0, 10, rev=2)
    h.put(C, b"3", 20, 30, rev=3)
    first = pb.RangeResponse(
        header=pb.ResponseHeader(revision=3),
        kvs=[kv_pb2.KeyValue(key=A, value=b"1", mod_revision=2)],
        more=True,
    )
    ops = h.projector.range(pb.RangeRequest(key=b"a", range_end=b"d", limit=1), first, 40, 50, 0)
    assert [(o.kind, o.key) for o in ops] == [("get", A)]
    page = pb.RangeResponse(header=pb.ResponseHeader(revision=4), kvs=[])  # b deleted? no: absent at 3
    paged = h.projector.range(pb.RangeRequest(key=b"a\x00", range_end=b"d", revision=3), page, 60, 70, 0)
    assert {(o.kind, o.key, o.revision) for o in paged} == {("sget", B, 3), ("sget", C, 3)}
    h.ops += ops + paged
    # the page says c is absent at revision 3, but the history has it there
    assert "serializable-read" in h.check((2, A, b"1"), (3, C, b"3"))


def test_budget_exhausted_is_unknown_not_a_pass() -> None:
    h = Rec()
    for i in range(12):  # many concurrent writes of unknown outcome
        h.put(A, f"v{i}".encode(), i, None)
    h.get(A, 100, 110, rev=14, value=b"v11", mod=14)
    changes = [(2 + i, A, f"v{i}".encode()) for i in range(12)]
    result = h.check(*changes, budget=3)
    assert "linearizability-unknown" in result


# ------------------------------------------------------------------------------ watches

HIST = FinalHistory(
    [Change(2, A, b"1"), Change(3, A, b"2"), Change(3, B, b"x"), Change(4, B, None), Change(5, A, b"3")]
)


def stream(*responses: tuple[int, list[WatchEvent]], created: bool = True) -> WatchStream:
    rec = WatchRecord(id=1, member=0, start=A, end=b"\x00", start_rev=2, prev_kv=False)
    rec.responses = list(responses)
    s = WatchStream(rec, created=[created] + [False] * len(responses))
    s.progress = [(i, r) for i, (r, ev) in enumerate(responses) if not ev]
    return s


def ev(rev: int, key: bytes, value: bytes | None) -> WatchEvent:
    return WatchEvent(rev, key, value)


def watch_kinds(s: WatchStream) -> list[str]:
    from petcd.sim.server_checker import check_watches

    return [v.kind for v in check_watches([s.record], HIST, 0) + check_streams([s], 0)]


def test_a_complete_watch_passes_even_with_txn_order_within_a_revision() -> None:
    s = stream(
        (2, [ev(2, A, b"1")]),
        (3, [ev(3, B, b"x"), ev(3, A, b"2")]),  # the txn's order, not the keys'
        (5, [ev(4, B, None), ev(5, A, b"3")]),
        (5, []),  # progress notification
    )
    assert watch_kinds(s) == []


def test_watch_gap_is_a_violation() -> None:
    s = stream((2, [ev(2, A, b"1")]), (5, [ev(4, B, None), ev(5, A, b"3")]))
    assert watch_kinds(s) == ["watch"]


def test_watch_duplicate_is_a_violation() -> None:
    s = stream((3, [ev(2, A, b"1"), ev(3, A, b"2"), ev(3, B, b"x")]), (3, [ev(3, B, b"x")]))
    assert watch_kinds(s) == ["watch"]


def test_watch_split_revision_is_a_violation() -> None:
    s = stream((3, [ev(2, A, b"1"), ev(3, A, b"2")]), (3, [ev(3, B, b"x")]))
    assert watch_kinds(s) == ["watch"]


def test_watch_bookmark_below_a_delivered_event_is_a_violation() -> None:
    s = stream((3, [ev(2, A, b"1"), ev(3, A, b"2"), ev(3, B, b"x")]), (2, []))
    assert "watch" in watch_kinds(s)


def test_watch_without_created_is_a_violation() -> None:
    s = stream((2, [ev(2, A, b"1")]), created=False)
    assert watch_kinds(s) == ["watch"]


def test_watch_wrong_prev_kv_is_a_violation() -> None:
    s = stream((3, [ev(2, A, b"1"), ev(3, A, b"2"), ev(3, B, b"x")]))
    s.record.prev_kv = True
    s.record.responses[0][1][0].prev = None
    s.record.responses[0][1][1].prev = (b"1", 2)
    s.record.responses[0][1][2].prev = None
    assert watch_kinds(s) == []
    s.record.responses[0][1][1].prev = (b"0", 1)
    assert watch_kinds(s) == ["watch"]


def test_final_state_must_match_the_history() -> None:
    good = {"m0": (5, [(A, b"3", 5)])}
    assert check_final_state(HIST, good, 0) == []
    bad = {"m1": (5, [(A, b"3", 5), (B, b"x", 3)])}  # b was deleted at 4
    assert [v.kind for v in check_final_state(HIST, bad, 0)] == ["final-state"]


# ------------------------------------------------------------------------------ leases


def _lease_ops(revoke_rev: int) -> list[Operation]:
    key = base64.b64encode(b"lease/1").decode()
    put = Operation(
        1, 0, 0, "put", 0, 10, {"key": key, "value": "dg==", "lease": "42"}, {"header": {"revision": "2"}}
    )
    revoke = Operation(
        2, 0, 0, "lease-revoke", 20, 30, {"ID": "42"}, {"header": {"revision": str(revoke_rev)}}
    )
    return [put, revoke]


def test_revoked_lease_keys_must_be_gone_by_the_revoke_revision() -> None:
    gone = FinalHistory([Change(2, b"lease/1", b"v"), Change(3, b"lease/1", None)])
    assert check_leases(_lease_ops(3), gone, 0) == []
    kept = FinalHistory([Change(2, b"lease/1", b"v"), Change(3, A, b"x")])
    assert [v.kind for v in check_leases(_lease_ops(3), kept, 0)] == ["lease"]


def test_watch_response_header_below_its_events_is_a_violation() -> None:
    s = stream((3, [ev(2, A, b"1"), ev(3, A, b"2"), ev(3, B, b"x")]))
    s.headers = [5]  # catching up: the header names the current revision, beyond the events
    assert watch_kinds(s) == []
    s.headers = [2]
    assert watch_kinds(s) == ["watch"]


def test_kubernetes_guarded_delete_projects_to_a_delete_or_a_read() -> None:
    h = Rec()
    req = pb.TxnRequest(
        compare=[pb.Compare(key=A, target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=2)],
        success=[pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=A))],
        failure=[pb.RequestOp(request_range=pb.RangeRequest(key=A))],
    )
    ok = pb.TxnResponse(
        header=pb.ResponseHeader(revision=3),
        succeeded=True,
        responses=[pb.ResponseOp(response_delete_range=pb.DeleteRangeResponse(deleted=1))],
    )
    [d] = h.projector.txn(req, ok, 0, 10, 0)
    assert (d.kind, d.deleted, d.revision) == ("delete", 1, 3)
    kv = kv_pb2.KeyValue(key=A, value=b"new", mod_revision=3)
    failed = pb.TxnResponse(
        header=pb.ResponseHeader(revision=3),
        succeeded=False,
        responses=[pb.ResponseOp(response_range=pb.RangeResponse(kvs=[kv]))],
    )
    [g] = h.projector.txn(req, failed, 0, 10, 0)
    assert (g.kind, g.found, g.found_mod, g.revision) == ("get", b"new", 3, 3)
    [u] = h.projector.txn(req, None, 0, None, 0)
    assert (u.kind, u.known) == ("delete", False)
