"""Differential: the same requests to the reference etcd 3.4.23 and to a petcd server give the same answers.

Both run as real one-member servers on 127.0.0.1. A seeded generator (tests/support/kv_requests.py)
sends puts, delete ranges, ranges, txns (nested, with every compare target) and compactions, as the
same etcdserverpb messages over gRPC, to both. Revisions, kvs, counts, `more`, prev_kvs, txn
branches and error strings must be equal; member and cluster IDs differ by nature and are not
compared. A watch on each server, created before the first write, must deliver the same events.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from kv_requests import Gen, kvs, response_form, strip_nested_revisions
from servers import REFERENCE_ETCD, one_member

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc

pytestmark = pytest.mark.skipif(not os.path.exists(REFERENCE_ETCD), reason="reference etcd not installed")

STEPS = 200
TIMEOUT_S = 10.0


def call(fn: Any, req: Any, form: Any = response_form) -> Any:
    try:
        return ("ok", strip_nested_revisions(form(fn(req, timeout=TIMEOUT_S))))
    except grpc.RpcError as e:
        return ("error", e.code(), e.details())


def revision_of(resp: pb.CompactionResponse) -> Any:
    return ("compact", resp.header.revision)


class Watch:
    """Every event of a watch on the whole key space, collected on a thread.

    It starts at the current revision, so it is synced at once: a watch from a past revision sits
    in etcd's unsynced group for up to 100 ms, where a compaction cancels it, by timing alone.
    """

    def __init__(self, channel: grpc.Channel) -> None:
        self.events: list[tuple[int, tuple[Any, ...]]] = []
        self._stop = threading.Event()
        self.created = threading.Event()
        self._stub = rpc_pb2_grpc.WatchStub(channel)
        self._call = self._stub.Watch(self._requests())
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _requests(self) -> Iterator[pb.WatchRequest]:
        yield pb.WatchRequest(
            create_request=pb.WatchCreateRequest(key=b"\x00", range_end=b"\x00", prev_kv=True)
        )
        self._stop.wait(60)

    def _collect(self) -> None:
        try:
            for resp in self._call:
                if resp.created:
                    self.created.set()
                if resp.canceled:
                    self.events.append((-1, (resp.compact_revision, resp.cancel_reason)))
                for ev in resp.events:
                    prev = kvs([ev.prev_kv]) if ev.HasField("prev_kv") else []
                    self.events.append((ev.type, (*kvs([ev.kv])[0], *prev)))
        except grpc.RpcError:
            pass

    def wait_for(self, n: int, timeout_s: float) -> None:
        deadline = threading.Event()
        for _ in range(int(timeout_s * 10)):
            if len(self.events) >= n:
                return
            deadline.wait(0.1)

    def close(self) -> None:
        self._stop.set()
        self._call.cancel()
        self._thread.join(timeout=5)


@pytest.mark.parametrize("seed", [11, 12])
def test_petcd_answers_as_the_reference_etcd(tmp_path: Path, seed: int) -> None:
    with (
        one_member("reference", tmp_path / "ref") as ref_addr,
        one_member("petcd", tmp_path / "petcd") as our_addr,
        grpc.insecure_channel(ref_addr) as ref_ch,
        grpc.insecure_channel(our_addr) as our_ch,
    ):
        ref, ours = rpc_pb2_grpc.KVStub(ref_ch), rpc_pb2_grpc.KVStub(our_ch)
        ref_watch, our_watch = Watch(ref_ch), Watch(our_ch)
        try:
            # the watches must exist before the first write, or a compaction may overtake them
            assert ref_watch.created.wait(TIMEOUT_S) and our_watch.created.wait(TIMEOUT_S)
            gen = Gen(seed)
            compacted = 0
            for step in range(STEPS):
                roll = gen.r.random()
                if roll < 0.3:
                    req: Any = gen.put_req()
                    a, b = call(ref.Put, req), call(ours.Put, req)
                elif roll < 0.45:
                    req = gen.delete_req()
                    a, b = call(ref.DeleteRange, req), call(ours.DeleteRange, req)
                elif roll < 0.7:
                    req = gen.range_req()
                    a, b = call(ref.Range, req), call(ours.Range, req)
                elif roll < 0.97:
                    req = gen.txn_req()
                    a, b = call(ref.Txn, req), call(ours.Txn, req)
                else:
                    req = pb.CompactionRequest(revision=gen.r.randint(max(compacted, 1), gen.rev + 1))
                    a, b = call(ref.Compact, req, revision_of), call(ours.Compact, req, revision_of)
                    if a[0] == "ok":
                        compacted = req.revision
                assert a == b, (step, req)
                gen.rev = ref.Range(pb.RangeRequest(key=b"x"), timeout=TIMEOUT_S).header.revision
            final = ref.Range(pb.RangeRequest(key=b"\x00", range_end=b"\x00"), timeout=TIMEOUT_S)
            assert response_form(final) == response_form(
                ours.Range(pb.RangeRequest(key=b"\x00", range_end=b"\x00"), timeout=TIMEOUT_S)
            )
            expected = final.header.revision - 1  # every revision after the first is one event or more
            ref_watch.wait_for(expected, 20)
            our_watch.wait_for(len(ref_watch.events), 20)
            assert our_watch.events == ref_watch.events
        finally:
            ref_watch.close()
            our_watch.close()
