"""The event loop choice: uvloop by default, asyncio's own with PETCD_EVENT_LOOP=asyncio."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import uvloop
from servers import one_member

from petcd import eventloop
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc


def test_uvloop_unless_asked_for_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.chosen() == "uvloop"
    loop = eventloop.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    monkeypatch.setenv(eventloop.ENV, "asyncio")
    loop = eventloop.new_event_loop()
    try:
        assert not isinstance(loop, uvloop.Loop)
        assert isinstance(loop, asyncio.BaseEventLoop)
    finally:
        loop.close()


def test_run_returns_the_result_on_the_chosen_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    for name, module in (("uvloop", "uvloop"), ("asyncio", "asyncio.unix_events")):
        monkeypatch.setenv(eventloop.ENV, name)
        assert eventloop.run(which()) == module


def test_unknown_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="PETCD_EVENT_LOOP must be one of uvloop, asyncio"):
        eventloop.chosen({eventloop.ENV: "trio"})


def test_etcd_with_an_unknown_loop_stops_before_touching_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "petcd", "--data-dir", str(data)],
        env={**os.environ, eventloop.ENV: "trio"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert b"PETCD_EVENT_LOOP must be one of uvloop, asyncio (got 'trio')" in done.stderr
    assert not data.exists()


@pytest.mark.parametrize("frontends", [0, 1])
def test_a_member_on_asyncio_loop_serves(tmp_path: Path, frontends: int) -> None:
    env = {**os.environ, eventloop.ENV: "asyncio"}
    member = one_member("petcd", tmp_path, ["--frontend-processes", str(frontends)], env=env)
    with member as address, grpc.insecure_channel(address) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        put = kv.Put(pb.PutRequest(key=b"k", value=b"v1"), timeout=10)
        for serializable in (False, True):
            got = kv.Range(pb.RangeRequest(key=b"k", serializable=serializable), timeout=10)
            assert [(x.key, x.value) for x in got.kvs] == [(b"k", b"v1")]
            assert got.header.revision == put.header.revision
