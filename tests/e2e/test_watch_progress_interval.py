"""--experimental-watch-progress-notify-interval, on the reference etcd 3.4.23 and on petcd.

A watcher created with progress_notify gets, every interval in which it got no event, a response
with no events whose header names the current revision; a watcher created without it gets none.
Both servers run as one-member servers on 127.0.0.1 with a 200 ms interval (etcd's robustness
tests use such short intervals). The window is bounded: at most WINDOW_S seconds of responses.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from servers import REFERENCE_ETCD, one_member

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc

WINDOW_S = 3.0
INTERVAL_FLAG = "--experimental-watch-progress-notify-interval=200ms"

KINDS = [
    pytest.param(
        "reference",
        marks=pytest.mark.skipif(not os.path.exists(REFERENCE_ETCD), reason="reference etcd not installed"),
    ),
    "petcd",
]


class Watch:
    """One watch stream; its responses land in a queue until close()."""

    def __init__(self, channel: grpc.Channel, create: pb.WatchCreateRequest) -> None:
        self.responses: queue.Queue[pb.WatchResponse] = queue.Queue()
        self._done = threading.Event()
        self._call = rpc_pb2_grpc.WatchStub(channel).Watch(self._requests(create))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _requests(self, create: pb.WatchCreateRequest) -> Iterator[pb.WatchRequest]:
        yield pb.WatchRequest(create_request=create)
        self._done.wait(WINDOW_S * 4)

    def _read(self) -> None:
        try:
            for resp in self._call:
                self.responses.put(resp)
        except grpc.RpcError:
            pass

    def collect(self, seconds: float) -> list[pb.WatchResponse]:
        out: list[pb.WatchResponse] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.responses.get(timeout=left))
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        self._done.set()
        self._call.cancel()
        self._reader.join(5)


def is_progress(resp: pb.WatchResponse) -> bool:
    return not resp.events and not resp.created and not resp.canceled


@pytest.mark.parametrize("kind", KINDS)
def test_progress_notifications_at_the_configured_interval(kind: str, tmp_path: Path) -> None:
    with one_member(kind, tmp_path, [INTERVAL_FLAG]) as address, grpc.insecure_channel(address) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        rev = kv.Put(pb.PutRequest(key=b"a", value=b"1"), timeout=10).header.revision
        notified = Watch(channel, pb.WatchCreateRequest(key=b"a", progress_notify=True))
        silent = Watch(channel, pb.WatchCreateRequest(key=b"a"))
        try:
            got = notified.collect(WINDOW_S)
            quiet = silent.collect(0.5)
            assert got and got[0].created
            progress = [r for r in got[1:] if is_progress(r)]
            # about WINDOW_S / 0.2 of them; the default interval (10 minutes) would give none
            assert len(progress) >= 3, [str(r) for r in got]
            assert all(r.header.revision == rev for r in progress)
            assert quiet and quiet[0].created
            assert not [r for r in quiet[1:] if is_progress(r)]

            # an event is delivered as such; the notifications that follow name its revision
            rev2 = kv.Put(pb.PutRequest(key=b"a", value=b"2"), timeout=10).header.revision
            after = notified.collect(1.5)
            events = [r for r in after if r.events]
            assert [e.kv.mod_revision for r in events for e in r.events] == [rev2]
            later = [r for r in after if is_progress(r) and r.header.revision == rev2]
            assert later, [str(r) for r in after]
            silent_after = silent.collect(0.5)
            assert [e.kv.mod_revision for r in silent_after for e in r.events] == [rev2]
            assert not [r for r in silent_after if is_progress(r)]
        finally:
            notified.close()
            silent.close()


def test_front_end_processes_send_them_too(tmp_path: Path) -> None:
    args = [INTERVAL_FLAG, "--frontend-processes=1"]
    with one_member("petcd", tmp_path, args) as address, grpc.insecure_channel(address) as channel:
        rev = (
            rpc_pb2_grpc.KVStub(channel).Put(pb.PutRequest(key=b"f", value=b"1"), timeout=10).header.revision
        )
        notified = Watch(channel, pb.WatchCreateRequest(key=b"f", progress_notify=True))
        try:
            got = notified.collect(WINDOW_S)
        finally:
            notified.close()
    progress = [r for r in got if is_progress(r)]
    assert len(progress) >= 3, [str(r) for r in got]
    assert all(r.header.revision == rev for r in progress)


def test_petcd_takes_the_new_flag_name_and_clamps_short_intervals(tmp_path: Path) -> None:
    args = ["--watch-progress-notify-interval=10ms"]
    with one_member("petcd", tmp_path, args) as address, grpc.insecure_channel(address) as channel:
        notified = Watch(channel, pb.WatchCreateRequest(key=b"k", progress_notify=True))
        try:
            got = notified.collect(1.0)
        finally:
            notified.close()
    progress = [r for r in got if is_progress(r)]
    assert progress, [str(r) for r in got]
    # clamped to etcd's minimum of 100 ms: at most about 10 in a second, never 100
    assert len(progress) <= 15
    log = (tmp_path / "petcd.log").read_text()
    assert "adjusting watch progress notify interval to minimum period" in log
