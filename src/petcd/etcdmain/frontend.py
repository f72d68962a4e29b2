"""A front-end process of a member (petcd only: `etcd --frontend-processes N`).

DESIGN.md, "Scaling past one core". The member's `etcd` process (the core) starts N of these with
`python -m petcd.etcdmain.frontend SPEC_JSON` once it is ready to serve clients. Each one:

* connects to the core's local channel (a unix socket in a private directory; petcd.runtime.channel),
* opens the member's backend read-only (LMDB readers in many processes),
* serves the client URLs with the same gRPC services and HTTP gateway as a single-process member,
  over a `FrontendFacade`, binding with SO_REUSEPORT so that the N processes share each port and
  the kernel spreads the connections among them,
* answers `/metrics` with the member's exposition, rendered by the core, and sends the core its own
  share (watch gauges, health-check counters, process figures) every REPORT_INTERVAL_S
  (petcd.gateway.metrics says which process owns which family),
* tells the core it is ready, and serves until SIGTERM (the core's stop) or until the channel
  closes (the core is gone). SIGINT is ignored: a Ctrl-C reaches the whole process group, and the
  core stops its front-ends itself.

The spec (JSON): socket, db, quota_bytes, listen_client_urls, listen_client_http_urls,
enable_grpc_gateway, max_txn_ops, max_request_bytes, election_timeout_s, request_timeout_s,
watch_progress_notify_interval_s (the core's `--watch-progress-notify-interval`, as clamped for the
Node), fast_socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from petcd import eventloop
from petcd.api.core import ApiOptions
from petcd.api.server import build_grpc_server
from petcd.backend.lmdb import LmdbBackend
from petcd.etcdmain.config import host_port
from petcd.gateway.listeners import UNIX_PATH_MAX, ClientListeners
from petcd.gateway.metrics import REPORT_INTERVAL_S, Family, FrontendMetrics
from petcd.mvcc.watchable_store import PROGRESS_NOTIFY_INTERVAL_S
from petcd.runtime.channel import CoreChannelServer, CoreClient, runtime_state
from petcd.runtime.facade import RuntimeFacade
from petcd.runtime.fast_channel import FastChannelServer
from petcd.runtime.frontend_facade import FrontendFacade

log = logging.getLogger("petcd.frontend")

SUPERVISE_INTERVAL_S = 0.5
MAX_RESTARTS = 5  # front-end restarts allowed within RESTART_WINDOW_S before the member gives up
RESTART_WINDOW_S = 60.0
_SOCKETS_DIR = "frontend-sockets"


@dataclass(frozen=True)
class FrontendSpec:
    socket: str
    db: str
    quota_bytes: int
    listen_client_urls: tuple[str, ...]
    listen_client_http_urls: tuple[str, ...] = ()
    enable_grpc_gateway: bool = True
    max_txn_ops: int = 128
    max_request_bytes: int = 1536 * 1024
    election_timeout_s: float = 1.0
    request_timeout_s: float = 7.0
    fast_socket: str = ""  # petcd.runtime.fast_channel's socket ("": everything on `socket`)
    watch_progress_notify_interval_s: float = PROGRESS_NOTIFY_INTERVAL_S

    def to_json(self) -> str:
        d: dict[str, Any] = dict(self.__dict__)
        d["listen_client_urls"] = list(self.listen_client_urls)
        d["listen_client_http_urls"] = list(self.listen_client_http_urls)
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> FrontendSpec:
        d = json.loads(text)
        d["listen_client_urls"] = tuple(d["listen_client_urls"])
        d["listen_client_http_urls"] = tuple(d.get("listen_client_http_urls", ()))
        return cls(**d)


def command(spec: FrontendSpec) -> list[str]:
    """The command line that starts one front-end process."""
    return [sys.executable, "-m", "petcd.etcdmain.frontend", spec.to_json()]


class FrontendPool:
    """The core's side: the channel server and the N front-end processes (started, replaced when
    one stops, stopped)."""

    def __init__(
        self, facade: RuntimeFacade, spec: FrontendSpec, n: int, socket_dir: str | None = None
    ) -> None:
        self.facade = facade
        self.n = n
        # The channel's sockets: in `socket_dir` (the member's directory, kept to this process by
        # the data-dir lock: nothing is left in $TMPDIR by a killed member) when the paths fit in
        # a unix socket address, else in a fresh 0700 directory (only this user reaches them).
        if socket_dir is None or len(os.path.join(socket_dir, _SOCKETS_DIR, "fast.sock")) >= UNIX_PATH_MAX:
            self._dir = tempfile.mkdtemp(prefix="petcd-fe-")
        else:
            self._dir = os.path.join(socket_dir, _SOCKETS_DIR)
            shutil.rmtree(self._dir, ignore_errors=True)  # a killed member's stale sockets
            os.mkdir(self._dir, 0o700)
        self.spec = replace(
            spec,
            socket=os.path.join(self._dir, "core.sock"),
            fast_socket=os.path.join(self._dir, "fast.sock"),
        )
        self.channel = CoreChannelServer(facade, runtime_state(facade))
        self.fast: FastChannelServer | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self._restarts: list[float] = []  # monotonic times of the recent restarts

    async def start(self, timeout_s: float = 60.0) -> None:
        """Start every front-end; returns once each one listens on the client URLs."""
        await self.channel.listen(self.spec.socket)
        self.fast = FastChannelServer(self.facade.loop, self.spec.fast_socket)
        for _ in range(self.n):
            self.procs.append(subprocess.Popen(command(self.spec)))
        ready: set[int] = set()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(ready) < self.n:
            if self.exited() is not None:
                raise RuntimeError(f"front-end process exited with status {self.exited()} while starting")
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise RuntimeError("front-end processes did not start in time")
            with contextlib.suppress(TimeoutError):
                ready.add(await asyncio.wait_for(self.channel.ready.get(), min(left, 0.5)))

    def exited(self) -> int | None:
        """The exit status of a front-end that stopped, None while all run."""
        for p in self.procs:
            code = p.poll()
            if code is not None:
                return code
        return None

    async def supervise(self, on_restart: Callable[[int, int], None] | None = None) -> int:
        """Replace every front-end process that stops (its clients reconnect and find another
        process on the port); `on_restart(pid, status)` hears of each. Returns a status when front-ends
        crash in a loop (more than MAX_RESTARTS within RESTART_WINDOW_S): the member cannot serve
        as asked and should stop rather than spin."""
        while True:
            await asyncio.sleep(SUPERVISE_INTERVAL_S)
            for i, p in enumerate(self.procs):
                code = p.poll()
                if code is None:
                    continue
                now = time.monotonic()
                self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_S]
                if len(self._restarts) >= MAX_RESTARTS:
                    return code
                self._restarts.append(now)
                if on_restart is not None:
                    on_restart(p.pid, code)
                self.procs[i] = subprocess.Popen(command(self.spec))
            # Ready notices of replacements: nobody waits for them (the port is served meanwhile).
            while not self.channel.ready.empty():
                self.channel.ready.get_nowait()

    async def stop(self, timeout_s: float = 5.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + timeout_s
        for p in self.procs:
            while p.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if p.poll() is None:
                p.kill()
                p.wait()
        await self.channel.close()
        if self.fast is not None:
            self.fast.close()
        shutil.rmtree(self._dir, ignore_errors=True)


async def serve(spec: FrontendSpec) -> int:
    client = await CoreClient.connect(spec.socket, fast_path=spec.fast_socket or None)
    backend = LmdbBackend(spec.db, spec.quota_bytes, read_only=True)
    facade = FrontendFacade(
        client,
        backend,
        request_timeout_s=spec.request_timeout_s,
        progress_notify_interval_s=spec.watch_progress_notify_interval_s,
    )
    options = ApiOptions(
        max_txn_ops=spec.max_txn_ops,
        max_request_bytes=spec.max_request_bytes,
        election_timeout_s=spec.election_timeout_s,
    )
    server, core, health = build_grpc_server(facade, options, reuse_port=True)

    async def core_exposition(families: list[Family]) -> bytes:
        body: bytes = await client.call("metrics", families)
        return body

    metrics = FrontendMetrics(core_exposition)
    metrics.add_sampled("etcd_debugging_mvcc_", facade.watch_hub.store.gauges)
    listeners = ClientListeners(core, metrics)
    reporter: asyncio.Future[None] | None = None
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        await listeners.start(
            server,
            [host_port(u) for u in spec.listen_client_urls],
            [host_port(u) for u in spec.listen_client_http_urls],
            spec.enable_grpc_gateway,
            reuse_port=True,
            # the core's private directory (removed by the core), not one more in $TMPDIR
            socket_dir=os.path.dirname(spec.socket),
        )
        health.set_serving(True)
        client.send_ready(os.getpid())
        reporter = asyncio.ensure_future(_report_metrics(client, metrics))
        closed = asyncio.ensure_future(client.closed.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({closed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        stopped.cancel()
        return 0 if stop.is_set() else 1
    finally:
        if reporter is not None:
            reporter.cancel()
        health.set_serving(False)
        await listeners.close()
        await server.stop(0.5)
        await client.close()
        backend.close()


async def _report_metrics(client: CoreClient, metrics: FrontendMetrics) -> None:
    """Send the core this process's share of the member-wide metrics, every REPORT_INTERVAL_S: a
    scrape answered by another front-end or by the core then counts this one's watchers. Pushed,
    not asked for at scrape time, so that a scrape costs one round trip to the core whatever the
    number of front-ends, and a busy front-end cannot hold a scrape up (a report is about 1.4 kB and
    0.1 ms of collection; the process figures in it, 0.3 ms and more with many connections, are
    read every PROCESS_REPORT_INTERVAL_S)."""
    while not client.out.closed:
        client.send_report(metrics.report())
        await asyncio.sleep(REPORT_INTERVAL_S)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m petcd.etcdmain.frontend SPEC_JSON (started by etcd --frontend-processes)")
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return eventloop.run(serve(FrontendSpec.from_json(args[0])))


if __name__ == "__main__":
    sys.exit(main())
