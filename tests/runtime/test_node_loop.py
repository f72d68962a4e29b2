"""The node thread: ticks, inbox order, request futures resolved through the ResultSink, stop."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any, cast

import pytest

from petcd.raft.types import StateType
from petcd.runtime.node_loop import NodeLoop
from petcd.server.errors import Stopped
from petcd.server.node import Node


class FakeNode:
    """Just what the loop touches; requests resolve at the next process_ready, as the Node's do."""

    def __init__(self, loop: NodeLoop) -> None:
        self.loop = loop
        self.ticks = 0
        self.readies = 0
        self.leader_id = 1
        self.raft_state = StateType.LEADER
        self.member_id = 1
        self.term = 2
        self.stopped = False
        self.thread: threading.Thread | None = None
        self._next = 0
        self._pending: list[tuple[int, object]] = []
        self.calls: list[str] = []

    def tick(self) -> None:
        self.ticks += 1

    def process_ready(self) -> bool:
        self.thread = threading.current_thread()
        self.readies += 1
        pending, self._pending = self._pending, []
        for rid, result in pending:
            self.loop.resolve(rid, result)
        return False

    def put(self, value: object) -> int:
        self._next += 1
        self._pending.append((self._next, value))
        self.calls.append("put")
        return self._next

    def hang(self) -> int:
        self._next += 1
        return self._next  # never resolved

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def running() -> Any:
    loop = NodeLoop(tick_s=0.01)
    node = FakeNode(loop)
    loop.start(cast(Node, node))
    yield loop, node
    loop.stop()


def fake(n: Node) -> FakeNode:
    return cast(FakeNode, n)


def test_ticks_on_the_node_thread(running: Any) -> None:
    _loop, node = running
    time.sleep(0.2)
    assert 5 <= node.ticks <= 30
    assert node.thread is not None and node.thread.name == "node"


def test_submit_and_request(running: Any) -> None:
    loop, _node = running
    assert loop.submit(lambda n: fake(n).member_id + 1).result(2) == 2
    futs = [loop.request(lambda n, i=i: fake(n).put(f"r{i}")) for i in range(100)]
    assert [f.result(2) for f in futs] == [f"r{i}" for i in range(100)]


def test_exceptions_reach_the_caller(running: Any) -> None:
    loop, _ = running

    def boom(_n: Node) -> int:
        raise ValueError("refused before raft")

    with pytest.raises(ValueError, match="refused before raft"):
        loop.request(boom).result(2)
    with pytest.raises(ZeroDivisionError):
        loop.submit(lambda _n: 1 // 0).result(2)


def test_stop_fails_waiting_requests() -> None:
    loop = NodeLoop(tick_s=0.01)
    node = FakeNode(loop)
    loop.start(cast(Node, node))
    fut: Future[Any] = loop.request(lambda n: fake(n).hang())
    time.sleep(0.05)
    loop.stop()
    with pytest.raises(Stopped):
        fut.result(2)
    assert node.stopped
    with pytest.raises(Stopped):
        loop.submit(lambda n: 1).result(2)


def test_a_broken_invariant_stops_the_loop() -> None:
    seen: list[BaseException] = []
    loop = NodeLoop(tick_s=0.01, on_fatal=seen.append)
    node = FakeNode(loop)

    def broken() -> None:
        raise AssertionError("invariant")

    node.tick = broken  # type: ignore[method-assign]
    loop.start(cast(Node, node))
    assert loop.stopped.wait(2)
    assert isinstance(loop.fatal, AssertionError) and seen == [loop.fatal]
