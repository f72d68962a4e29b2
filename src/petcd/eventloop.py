"""The event loop petcd's server processes run: uvloop's, or asyncio's own on request.

uvloop (libuv under asyncio's API) runs the same code with less interpreter work per callback,
transport read and thread wake-up. Measured on the 2-core VM of the README (alternating runs, 1
member, single process, 1000 clients on 100 connections, 40,000 puts of 256 bytes): 1,292-1,555
puts/s and 770-814 us of server CPU per put with asyncio's loop, 1,947-2,062 puts/s and 580-590 us
with uvloop; one client: p50 1.39-1.59 ms against 1.17-1.37 ms.

``PETCD_EVENT_LOOP=asyncio`` selects asyncio's loop instead (for comparisons and debugging); the
front-end processes a member starts inherit the choice with its environment.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import uvloop

ENV = "PETCD_EVENT_LOOP"
CHOICES = ("uvloop", "asyncio")

_T = TypeVar("_T")


def chosen(environ: Mapping[str, str] | None = None) -> str:
    """The loop ``environ`` (default: this process's) asks for; ValueError for an unknown name."""
    name = (os.environ if environ is None else environ).get(ENV, "") or CHOICES[0]
    if name not in CHOICES:
        raise ValueError(f"{ENV} must be one of {', '.join(CHOICES)} (got {name!r})")
    return name


def new_event_loop() -> asyncio.AbstractEventLoop:
    if chosen() == "uvloop":
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` on the chosen loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
