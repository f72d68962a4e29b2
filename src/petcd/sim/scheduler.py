"""The simulator's clock and event queue.

Simulated time is an integer count of *units*; a raft tick is `UNITS_PER_TICK` units, so that
message delays and disk writes can be shorter than a tick and interleave with ticks. Events are
kept in a heap ordered by (time, sequence number): two events due at the same time run in the
order they were scheduled, which is what makes a run a pure function of its seed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

UNITS_PER_TICK = 10
"""Simulated time units per raft tick."""


def format_time(units: int) -> str:
    """`tick.sub` with a fixed width, so event log lines line up."""
    return f"{units // UNITS_PER_TICK:05d}.{units % UNITS_PER_TICK}"


class Scheduler:
    """A fake clock and a queue of callbacks due at simulated times."""

    def __init__(self) -> None:
        self.now = 0
        # Entries are (time, seq, fn, args); seq is unique, so fn and args are never compared.
        self._queue: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0

    def at(self, time: int, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` at `time` (never in the past: the clock only moves forward)."""
        if time < self.now:
            raise ValueError(f"cannot schedule at {time}, the clock is at {self.now}")
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, fn, args))

    def after(self, delay: int, fn: Callable[..., None], *args: Any) -> None:
        self.at(self.now + delay, fn, *args)

    def pending(self) -> int:
        return len(self._queue)

    def next_time(self) -> int | None:
        return self._queue[0][0] if self._queue else None

    def run_until(self, end: int, stop: Callable[[], bool] | None = None) -> None:
        """Run every event due before `end`, in order; the clock then reads `end`.

        `stop` is polled after each event: when it returns True the run ends early and the clock
        stays at the time of the last event.
        """
        while self._queue and self._queue[0][0] < end:
            time, _, fn, args = heapq.heappop(self._queue)
            self.now = time
            fn(*args)
            if stop is not None and stop():
                return
        self.now = max(self.now, end)
