"""The node thread: the one owner of the server Node (ring C).

Everything that touches the Node runs on this thread, taken from one inbox in arrival order:
peer messages (from the transport's reader threads), client requests (from the event loop, via
the facade), transport feedback. The loop:

    wait for inbox items until the next tick is due; run every item waiting (a burst of client
    proposals becomes ONE raft batch, because the Node queues proposals and hands them to raft
    together in the next process_ready: that is the group commit);
    tick when a heartbeat interval has passed (--heartbeat-interval);
    while node.process_ready(): pass

Results come back through the `ResultSink` port: `request(fn)` runs `fn(node)` on this thread,
which returns a request ID, and registers a concurrent Future under it in the same step (the Node
never resolves an ID inside the call that handed it out, so none is missed); `resolve()` completes
it. `submit(fn)` is for calls answered at once. Threads other than the event loop await these
concurrent futures.

The event loop's side uses the cheaper batched path instead (`attach_loop`, then `post_batch`): a
list of `(fn, asyncio future, kind)` collected during one loop iteration crosses in ONE inbox item;
results are collected on the node thread as the Node resolves them and cross back in ONE
`call_soon_threadsafe` per round of Readies, which sets every future of the batch. Per request that
saves a concurrent Future, a self-pipe write and a wake-up of each thread (measured in the commit
that introduced it).

An exception escaping the Node is a broken invariant: the loop logs it and stops, failing every
waiting request, and `on_fatal` lets the process exit rather than serve wrong answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

from petcd.errors import EtcdError
from petcd.ids import id_str
from petcd.raft.types import StateType
from petcd.server.errors import Stopped
from petcd.server.node import Node

log = logging.getLogger("petcd.runtime.node_loop")

T = TypeVar("T")
_BURST_MAX = 4096

# How a batched call is answered: "submit" by fn's return value, "request" by what the Node
# resolves the request ID fn returns with.
CallKind = Literal["submit", "request"]
BatchedCall = tuple[Callable[[Node], Any], "asyncio.Future[Any]", CallKind]


class SystemClock:
    """The Clock port: monotonic seconds."""

    def now_s(self) -> float:
        return time.monotonic()


class NodeLoop:
    """The node thread and its inbox; also the Node's ResultSink."""

    def __init__(self, tick_s: float, on_fatal: Callable[[BaseException], None] | None = None) -> None:
        self.tick_s = tick_s
        self.node: Node | None = None
        self.on_fatal = on_fatal
        self._inbox: queue.SimpleQueue[Callable[[Node], None] | None] = queue.SimpleQueue()
        self._waiters: dict[int, Future[Any]] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.stopped = threading.Event()
        self.fatal: BaseException | None = None
        self._after_ready: list[Callable[[Node], None]] = []
        self._last_state: tuple[int, StateType] | None = None
        # The event loop the batched path answers on, and its answers not yet handed over.
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._async_waiters: dict[int, asyncio.Future[Any]] = {}
        self._completions: list[tuple[asyncio.Future[Any], object]] = []
        # Requests answered by calling a sink on this thread (the front-ends' fast channel).
        self._sink_waiters: dict[int, Callable[[object], None]] = {}

    # --- the ResultSink port (node thread) --------------------------------------------------

    def resolve(self, request_id: int, result: object | EtcdError) -> None:
        sink = self._sink_waiters.pop(request_id, None)
        if sink is not None:
            sink(result)
            return
        afut = self._async_waiters.pop(request_id, None)
        if afut is not None:
            self._completions.append((afut, result))
            return
        fut = self._waiters.pop(request_id, None)
        if fut is None or fut.done():
            return
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)

    # --- from other threads -----------------------------------------------------------------

    def post(self, fn: Callable[[Node], None]) -> None:
        """Run fn(node) on the node thread; fire and forget (peer messages, feedback)."""
        self._inbox.put(fn)

    def submit(self, fn: Callable[[Node], T]) -> Future[T]:
        """Run fn(node) on the node thread; the future holds its return value or exception."""
        fut: Future[T] = Future()

        def run(node: Node) -> None:
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(node))
                except BaseException as e:  # the caller gets it; it is theirs to handle
                    fut.set_exception(e)

        self._enqueue(run, fut)
        return fut

    def request(self, fn: Callable[[Node], int]) -> Future[Any]:
        """Run fn(node), which returns a request ID; the future holds what the Node resolves it with."""
        fut: Future[Any] = Future()

        def run(node: Node) -> None:
            try:
                rid = fn(node)
            except BaseException as e:
                fut.set_exception(e)
                return
            self._waiters[rid] = fut

        self._enqueue(run, fut)
        return fut

    def _enqueue(self, run: Callable[[Node], None], fut: Future[Any]) -> None:
        if self.stopped.is_set() or self._stopping.is_set():
            fut.set_exception(Stopped())
            return
        self._inbox.put(run)

    # --- the event loop's batched path -------------------------------------------------------

    def attach_loop(self, aloop: asyncio.AbstractEventLoop) -> None:
        """The event loop whose futures `post_batch` answers (set before the first batch)."""
        self._aloop = aloop

    def post_batch(self, calls: Sequence[BatchedCall]) -> None:
        """From the event loop: run every call on the node thread; answers come back in batches."""
        if self.stopped.is_set() or self._stopping.is_set():
            for _fn, fut, _kind in calls:
                if not fut.done():
                    fut.set_exception(Stopped())
            return
        self._inbox.put(lambda node: self._run_batch(node, calls))

    def _run_batch(self, node: Node, calls: Sequence[BatchedCall]) -> None:
        for fn, fut, kind in calls:
            try:
                got = fn(node)
            except BaseException as e:  # the caller gets it; it is theirs to handle
                self._completions.append((fut, e))
                continue
            if kind == "request":
                self._async_waiters[got] = fut
            else:
                self._completions.append((fut, got))

    def run_requests(
        self, node: Node, calls: Sequence[tuple[Callable[[Node], int], Callable[[object], None]]]
    ) -> None:
        """On the node thread: start each request; `sink(result)` is called on this thread with
        what the Node resolves it with (or with the exception that refused it)."""
        for fn, sink in calls:
            try:
                rid = fn(node)
            except BaseException as e:  # the caller gets it; it is theirs to handle
                sink(e)
                continue
            self._sink_waiters[rid] = sink

    def _hand_over(self) -> None:
        if not self._completions or self._aloop is None:
            return
        batch, self._completions = self._completions, []
        with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody waits any more
            self._aloop.call_soon_threadsafe(_deliver, batch)

    def every_ready(self, fn: Callable[[Node], None]) -> None:
        """Call fn(node) on the node thread after each round of Readies (state watchers)."""
        self._after_ready.append(fn)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, node: Node) -> None:
        self.node = node
        self._thread = threading.Thread(target=self._run, name="node", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)

    # --- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        node = self.node
        assert node is not None
        try:
            self._loop(node)
        except BaseException as e:
            self.fatal = e
            log.critical("node loop stopped on an unexpected error", exc_info=e)
            if self.on_fatal is not None:
                self.on_fatal(e)
        finally:
            self._stopping.set()
            with contextlib.suppress(Exception):
                node.stop()
            # Whatever is still queued runs against the stopped node, so every caller's future
            # completes (the Node refuses new work once stopped); then the waiters fail.
            while True:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    with contextlib.suppress(Exception):
                        item(node)
            for fut in list(self._waiters.values()):
                if not fut.done():
                    fut.set_exception(Stopped())
            self._waiters.clear()
            for afut in self._async_waiters.values():
                self._completions.append((afut, Stopped()))
            self._async_waiters.clear()
            sinks, self._sink_waiters = self._sink_waiters, {}
            for sink in sinks.values():
                with contextlib.suppress(Exception):
                    sink(Stopped())
            self._hand_over()
            self.stopped.set()

    def _loop(self, node: Node) -> None:
        next_tick = time.monotonic() + self.tick_s
        while not self._stopping.is_set():
            timeout = next_tick - time.monotonic()
            item: Callable[[Node], None] | None = None
            if timeout > 0:
                try:
                    item = self._inbox.get(timeout=timeout)
                except queue.Empty:
                    item = None
            n = 0
            while True:
                if item is not None:
                    item(node)
                    n += 1
                if self._stopping.is_set() or n >= _BURST_MAX:
                    break
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    break
            now = time.monotonic()
            if now >= next_tick:
                node.tick()
                next_tick += self.tick_s
                if next_tick < now:  # fell far behind (a long fsync): do not tick in a burst
                    next_tick = now + self.tick_s
            while node.process_ready():
                pass
            for fn in self._after_ready:
                fn(node)
            self._hand_over()
            self._note_state(node)
            if node.stopped:
                break

    def _note_state(self, node: Node) -> None:
        state = (node.leader_id, node.raft_state)
        if state == self._last_state:
            return
        prev = self._last_state
        self._last_state = state
        lead, _role = state
        me = id_str(node.member_id)
        if lead and (prev is None or prev[0] != lead):
            log.info(f"raft.node: {me} elected leader {id_str(lead)} at term {node.term}")
        elif not lead and prev is not None and prev[0]:
            log.info(f"raft.node: {me} lost leader {id_str(prev[0])} at term {node.term}")


def _deliver(batch: list[tuple[asyncio.Future[Any], object]]) -> None:
    """On the event loop: complete a batch of futures (a caller that gave up has cancelled its own)."""
    for fut, result in batch:
        if fut.done():
            continue
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)
