"""The simulated network between raft nodes.

A message handed to the network is planned at send time: it is dropped (its link is cut by a
partition, or it is lost at random), or it gets one delivery time (now + a random delay), or
two (duplicated). Random delays reorder messages; with `fifo` set, deliveries on one directed
link keep their send order, as over one TCP stream. Partitions are sets of cut *directed* links,
so asymmetric partitions (A hears B, B does not hear A) are expressible; `heal` restores all.

The network does not hold messages itself: the caller schedules the deliveries. A crashed
node's in-flight messages are discarded by the caller (it compares incarnations at delivery).
All randomness comes from the `random.Random` handed in.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Plan:
    """What happens to one sent message."""

    deliveries: list[int] = field(default_factory=list)
    """Absolute delivery times, one per copy (empty: dropped)."""
    dropped: str | None = None
    """Why it was dropped ("partition", "loss"), when it was."""


class Network:
    def __init__(
        self,
        rand: random.Random,
        *,
        loss: float = 0.0,
        dup: float = 0.0,
        delay_min: int = 1,
        delay_max: int = 1,
        fifo: bool = False,
    ) -> None:
        if not 0 < delay_min <= delay_max:
            raise ValueError("delays must satisfy 0 < delay_min <= delay_max")
        self.rand = rand
        self.loss = loss
        self.dup = dup
        self.delay_min = delay_min
        self.delay_max = delay_max
        self.fifo = fifo
        # Invariant: a (frm, to) pair in `cut` drops every message from frm to to.
        self.cut: set[tuple[int, int]] = set()
        self._last_delivery: dict[tuple[int, int], int] = {}

    # -- partitions ---------------------------------------------------------------------------

    def blocked(self, frm: int, to: int) -> bool:
        return (frm, to) in self.cut

    def cut_link(self, frm: int, to: int) -> None:
        """Cut one direction only (an asymmetric partition)."""
        self.cut.add((frm, to))

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Cut every link between nodes of different groups, both ways."""
        group_list = [sorted(g) for g in groups]
        for i, a in enumerate(group_list):
            for b in group_list[i + 1 :]:
                for x in a:
                    for y in b:
                        self.cut.add((x, y))
                        self.cut.add((y, x))

    def isolate(
        self, node: int, others: Iterable[int], *, inbound: bool = True, outbound: bool = True
    ) -> None:
        for o in others:
            if o == node:
                continue
            if inbound:
                self.cut.add((o, node))
            if outbound:
                self.cut.add((node, o))

    def heal(self) -> None:
        self.cut.clear()

    def describe_cut(self) -> str:
        return " ".join(f"{a}->{b}" for a, b in sorted(self.cut)) or "none"

    # -- sending ------------------------------------------------------------------------------

    def plan(self, now: int, frm: int, to: int) -> Plan:
        """Decide the fate of one message sent at `now` from `frm` to `to`."""
        if (frm, to) in self.cut:
            return Plan(dropped="partition")
        rand = self.rand
        if self.loss and rand.random() < self.loss:
            return Plan(dropped="loss")
        copies = 2 if self.dup and rand.random() < self.dup else 1
        plan = Plan()
        for _ in range(copies):
            t = now + rand.randint(self.delay_min, self.delay_max)
            if self.fifo:
                t = max(t, self._last_delivery.get((frm, to), 0))
                self._last_delivery[(frm, to)] = t
            plan.deliveries.append(t)
        return plan
