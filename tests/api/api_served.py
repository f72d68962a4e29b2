"""A fake-facade member served over real gRPC (and the HTTP gateway) on 127.0.0.1, in its own thread.

Its own module (not conftest.py), so that tests import it by a name no other test folder uses.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from fake_facade import FakeFacade

from petcd.api.server import build_grpc_server

T = TypeVar("T")


class Served:
    """A running server: its loop thread, facade, gRPC port (and gateway port when started)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.facade = FakeFacade()
        self.port = 0
        self.http_port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.health: Any = None
        self.core: Any = None
        self.http: Any = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        from petcd.gateway.http import GatewayServer

        server, core, health = build_grpc_server(self.facade)
        self.core, self.health = core, health
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self.http = GatewayServer(core)
        self.http_port = await self.http.listen("127.0.0.1", 0)
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await self.http.close()
        await server.stop(0)

    def start(self) -> None:
        self.thread.start()
        assert self._ready.wait(10)

    def call(self, fn: Callable[[], T]) -> T:
        """Run fn on the server's loop (facade state belongs to it)."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def stop(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        self.loop.close()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"
