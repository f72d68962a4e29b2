"""The client-facing listeners of one serving process: gRPC, the HTTP gateway, and the port mux.

Used alike by a single-process member (petcd.app) and by each front-end process
(petcd.etcdmain.frontend), so both serve the client URLs the same way, as etcd does:

* `--listen-client-urls` without `--listen-client-http-urls` (and the gateway enabled): each client
  port is a `ClientPortMux`; gRPC connections are spliced to the gRPC server's own unix socket (in
  the private directory the caller gives, e.g. a front-end's, else in a 0700 directory made for it
  and removed by `close()`; a loopback port if the path is too long for a unix socket), HTTP/1.1
  goes to a `GatewayServer`;
* with `--listen-client-http-urls` (or the gateway disabled): the gRPC server listens on the client
  ports itself, and HTTP gets its own listeners;
* `serve_http` adds plain HTTP listeners (the HTTP client URLs, the metrics URLs).

`reuse_port=True` binds with SO_REUSEPORT (front-end processes sharing a member's ports); the gRPC
server must then have been built with `reuse_port=True` too (petcd.api.server.build_grpc_server).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Sequence
from typing import Any

from petcd.api.core import ApiCore
from petcd.gateway.http import GatewayServer
from petcd.gateway.metrics import EtcdMetrics
from petcd.gateway.mux import ClientPortMux, GrpcTarget

Address = tuple[str, int]
UNIX_PATH_MAX = 108  # sun_path, with its terminating NUL


def grpc_address(host: str, port: int) -> str:
    """host:port as grpc's add_insecure_port wants it (IPv6 literals in brackets)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    with contextlib.suppress(OSError):
        socket.inet_pton(socket.AF_INET6, host)
        return f"[{host}]:{port}"
    return f"{host}:{port}"


class ClientListeners:
    """The listeners started for a gRPC server and its ApiCore; `close()` stops the non-gRPC ones."""

    def __init__(self, core: ApiCore, metrics: EtcdMetrics | None) -> None:
        self.core = core
        self.metrics = metrics
        self.muxes: list[ClientPortMux] = []
        self.gateways: list[GatewayServer] = []
        self._grpc_dir: str | None = None  # a private directory made for the gRPC socket (removed)
        self._grpc_socket: str | None = None  # the gRPC server's unix socket (unlinked on close)

    async def start(
        self,
        server: Any,
        client: Sequence[Address],
        client_http: Sequence[Address],
        enable_gateway: bool,
        *,
        reuse_port: bool = False,
        socket_dir: str | None = None,
    ) -> None:
        """Serve the client addresses (and the HTTP-only ones); starts the gRPC server.

        `socket_dir`: a private directory that outlives this process's listeners (a front-end's, which
        its core removes) for the mux's gRPC socket; without it a directory is made and removed here."""
        mux = bool(client) and enable_gateway and not client_http
        if mux:
            target = self._grpc_target(server, socket_dir)
        else:
            for host, port in client:
                server.add_insecure_port(grpc_address(host, port))
        await server.start()
        if mux:
            for host, port in client:
                gw = GatewayServer(self.core, self.metrics)
                self.gateways.append(gw)
                m = ClientPortMux(gw, target)
                await m.listen(host, port, reuse_port=reuse_port)
                self.muxes.append(m)
        await self.serve_http(client_http, reuse_port=reuse_port)

    def _grpc_target(self, server: Any, socket_dir: str | None) -> GrpcTarget:
        """The gRPC server's private listener behind the mux: a unix socket in a private directory,
        or a loopback port when the directory's path is too long for a unix socket."""
        if socket_dir is None:
            socket_dir = self._grpc_dir = tempfile.mkdtemp(prefix="petcd-grpc-")
        path = os.path.join(socket_dir, f"grpc-{os.getpid()}.sock")
        if len(os.fsencode(path)) < UNIX_PATH_MAX:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # left by a process of this pid that was killed
            if not server.add_insecure_port(f"unix:{path}"):
                raise OSError(f"cannot listen on unix:{path}")
            self._grpc_socket = path
            return path
        return ("127.0.0.1", server.add_insecure_port("127.0.0.1:0"))

    async def serve_http(self, addresses: Sequence[Address], *, reuse_port: bool = False) -> None:
        for host, port in addresses:
            gw = GatewayServer(self.core, self.metrics)
            self.gateways.append(gw)
            await gw.listen(host, port, reuse_port=reuse_port)

    async def close(self) -> None:
        for m in self.muxes:
            with contextlib.suppress(Exception):
                await m.close()
        for gw in self.gateways:
            with contextlib.suppress(Exception):
                await gw.close()
        if self._grpc_socket is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._grpc_socket)
        if self._grpc_dir is not None:
            shutil.rmtree(self._grpc_dir, ignore_errors=True)
