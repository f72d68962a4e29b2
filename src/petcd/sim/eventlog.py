"""The event log of a simulation run: one line per event (time, node, what happened).

Lines are built only when the log is enabled (sweeps run without one), and verbose-only events
(message drops, ticks of every node, persisted writes) only when `verbose` is set. The log is a
pure function of the seed and the options, which is what the determinism test compares.
"""

from __future__ import annotations

from petcd.sim.scheduler import format_time


class EventLog:
    def __init__(self, *, enabled: bool = True, verbose: bool = False) -> None:
        self.enabled = enabled
        self.verbose = verbose and enabled
        self.lines: list[str] = []

    def add(self, time: int, node: int | None, what: str) -> None:
        if self.enabled:
            who = f"n{node}" if node is not None else "--"
            self.lines.append(f"{format_time(time)} {who:>3} {what}")

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)
