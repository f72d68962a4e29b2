"""A time-ordered queue of lease IDs, used for expiry deadlines and for the checkpoint schedule.

`LeaseExpiredNotifier` keeps at most one live entry per lease: registering a lease again moves
its deadline (etcd's notifier does the same; etcd's checkpoint heap instead collects one entry
per refresh, which petcd avoids by using this queue for both).

Python's heapq cannot re-sort an element in place, so a moved entry is marked dead and a fresh
one pushed; dead entries are dropped when they reach the top, and the heap is rebuilt from the
live entries when dead ones outnumber them (frequent keep-alives would otherwise grow it).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass(order=True, slots=True)
class LeaseWithTime:
    """A lease ID due at `time` (clock seconds): an expiry deadline or a checkpoint time."""

    time: float
    id: int = field(compare=False)
    # False once superseded by a newer entry for the same lease, or removed.
    alive: bool = field(default=True, compare=False)


class LeaseExpiredNotifier:
    """One deadline per lease, earliest first."""

    def __init__(self) -> None:
        self._heap: list[LeaseWithTime] = []
        # Invariant: every value is alive and in _heap; every live entry of _heap is a value.
        self._by_id: dict[int, LeaseWithTime] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def register_or_update(self, lease_id: int, time: float) -> None:
        old = self._by_id.get(lease_id)
        if old is not None:
            old.alive = False
        item = LeaseWithTime(time, lease_id)
        self._by_id[lease_id] = item
        heapq.heappush(self._heap, item)
        if len(self._heap) > 2 * len(self._by_id) + 64:
            self._heap = list(self._by_id.values())
            heapq.heapify(self._heap)

    def poll(self) -> LeaseWithTime | None:
        """The live entry with the earliest deadline, left in place."""
        while self._heap:
            top = self._heap[0]
            if top.alive:
                return top
            heapq.heappop(self._heap)
        return None

    def unregister(self) -> LeaseWithTime:
        """Remove and return the entry `poll` returns; the queue must not be empty."""
        top = self.poll()
        if top is None:
            raise IndexError("unregister from an empty LeaseExpiredNotifier")
        heapq.heappop(self._heap)
        del self._by_id[top.id]
        return top

    def remove(self, lease_id: int) -> None:
        item = self._by_id.pop(lease_id, None)
        if item is not None:
            item.alive = False

    def deadline(self, lease_id: int) -> float | None:
        item = self._by_id.get(lease_id)
        return None if item is None else item.time

    def clear(self) -> None:
        self._heap.clear()
        self._by_id.clear()
