"""Building the gRPC server: every etcd service over one facade.

Theory of operation
-------------------
The services are registered as generic handlers built from the proto service descriptors, so each
method's request and response types come from the descriptors (no hand-kept list to drift). A method
is served by:

* `ApiCore.unary[path]` for unary RPCs (KV, Lease, Cluster, Maintenance, Election, Lock);
* the stream handlers here for Watch, LeaseKeepAlive, Snapshot and Observe;
* otherwise UNIMPLEMENTED, with grpc-go's text for a method the server does not have: the whole Auth
  service until auth lands, and Maintenance.Downgrade (etcd 3.4 has no such RPC).

Every `EtcdError` becomes the status from petcd.api.errors; the interceptor checks of `ApiCore.guard`
run first for every call, and a stream whose client sent `hasleader` metadata is ended with "etcdserver:
no leader" once MAX_NO_LEADER_COUNT election timeouts pass without a leader (etcd's monitorLeader).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from petcd.api import errors as e
from petcd.api.core import MAX_NO_LEADER_COUNT, ApiCore, ApiOptions, requires_leader
from petcd.api.health import HealthService
from petcd.api.watch import watch_stream
from petcd.errors import EtcdError
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.v3electionpb import v3election_pb2 as epb
from petcd.pb.v3lockpb import v3lock_pb2 as lpb
from petcd.server.facade import EtcdFacade

SNAPSHOT_CHUNK = 32 * 1024  # etcd's maintenance server sends 32 KiB blobs

SERVICES: tuple[ServiceDescriptor, ...] = (
    pb.DESCRIPTOR.services_by_name["KV"],
    pb.DESCRIPTOR.services_by_name["Watch"],
    pb.DESCRIPTOR.services_by_name["Lease"],
    pb.DESCRIPTOR.services_by_name["Cluster"],
    pb.DESCRIPTOR.services_by_name["Maintenance"],
    pb.DESCRIPTOR.services_by_name["Auth"],
    epb.DESCRIPTOR.services_by_name["Election"],
    lpb.DESCRIPTOR.services_by_name["Lock"],
)


def method_path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def unimplemented_message(method: MethodDescriptor) -> str:
    return f"unknown method {method.name} for service {method.containing_service.full_name}"


async def _abort(context: Any, err: EtcdError) -> None:
    code, message = e.status_of(err)
    await context.abort(code, message)


def _metadata(context: Any) -> Any:
    # grpc.aio gives (key, value) pairs; used as they come (this runs on every call)
    return context.invocation_metadata() or ()


def storage_version(server_version: str, cluster_version: str) -> str:
    """etcd 3.6's storage version ("3.6.0"; "" before 3.6 or while the cluster version is undecided)."""
    if not server_version.startswith("3.6") or cluster_version in ("", "not_decided"):
        return ""
    major, minor = cluster_version.split(".")[:2]
    return f"{major}.{minor}.0"


class StreamHandlers:
    """The streaming RPCs."""

    def __init__(self, core: ApiCore) -> None:
        self.core = core
        self.facade = core.facade

    def watch(
        self, requests: AsyncIterator[pb.WatchRequest], require_leader: bool = False
    ) -> AsyncIterator[pb.WatchResponse]:
        return watch_stream(self.core, requests, require_leader)

    async def lease_keep_alive(
        self, requests: AsyncIterator[pb.LeaseKeepAliveRequest]
    ) -> AsyncIterator[pb.LeaseKeepAliveResponse]:
        async for req in requests:
            try:
                resp = await self.facade.lease_keep_alive(req)
            except EtcdError as err:
                if str(err) != e.LEASE_NOT_FOUND:
                    raise
                # etcd answers a renew of an unknown lease with TTL 0, not an error
                resp = pb.LeaseKeepAliveResponse(header=self.facade.header(), ID=req.ID, TTL=0)
            yield resp

    async def snapshot(self, req: pb.SnapshotRequest) -> AsyncIterator[pb.SnapshotResponse]:
        source = await self.facade.snapshot()
        total, sent = source.size, 0
        # etcd 3.6 tells the client which storage version wrote the snapshot; no header, as etcd
        server_version, cluster_version = self.facade.version_info()
        version = storage_version(server_version, cluster_version)
        digest = hashlib.sha256()
        buf = bytearray()
        async for chunk in source.chunks():
            buf += chunk
            while len(buf) >= SNAPSHOT_CHUNK:
                blob = bytes(buf[:SNAPSHOT_CHUNK])
                del buf[:SNAPSHOT_CHUNK]
                sent += len(blob)
                digest.update(blob)
                yield pb.SnapshotResponse(remaining_bytes=max(total - sent, 0), blob=blob, version=version)
        if buf:
            blob = bytes(buf)
            sent += len(blob)
            digest.update(blob)
            yield pb.SnapshotResponse(remaining_bytes=max(total - sent, 0), blob=blob, version=version)
        # the trailer: sha256 of everything sent, which etcdctl checks and stores with the snapshot
        yield pb.SnapshotResponse(remaining_bytes=0, blob=digest.digest(), version=version)

    def observe(self, req: epb.LeaderRequest) -> AsyncIterator[epb.LeaderResponse]:
        return self.core.recipes.observe(req)


def _unary_handler(core: ApiCore, path: str, impl: Callable[[Any], Any]) -> Callable[..., Any]:
    async def handle(request: Any, context: Any) -> Any:
        try:
            core.guard(path, request, _metadata(context))
            return await impl(request)
        except EtcdError as err:
            await _abort(context, err)

    return handle


WATCH = "/etcdserverpb.Watch/Watch"


async def leader_guarded(core: ApiCore, source: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """`source`, ended with "etcdserver: no leader" once MAX_NO_LEADER_COUNT checks one election
    timeout apart found no leader (etcd's monitorLeader, for streams whose client asked for a leader)."""
    lost = asyncio.Event()

    async def monitor() -> None:
        leaderless = 0
        while leaderless < MAX_NO_LEADER_COUNT:
            await asyncio.sleep(core.options.election_timeout_s)
            leaderless = leaderless + 1 if core.facade.leader_id() == 0 else 0
        lost.set()

    monitor_task = asyncio.create_task(monitor())
    lost_task = asyncio.create_task(lost.wait())
    it = aiter(source)
    try:
        while True:
            step = asyncio.ensure_future(anext(it))
            done, _ = await asyncio.wait({step, lost_task}, return_when=asyncio.FIRST_COMPLETED)
            if step not in done:
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)
                raise EtcdError(e.NO_LEADER)
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        monitor_task.cancel()
        lost_task.cancel()
        await asyncio.gather(monitor_task, lost_task, return_exceptions=True)
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def _stream_handler(core: ApiCore, path: str, impl: Callable[..., AsyncIterator[Any]]) -> Callable[..., Any]:
    async def handle(request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            metadata = _metadata(context)
            core.guard(path, None, metadata, stream=True)
            if not requires_leader(metadata):
                source = impl(request)
            elif path == WATCH:
                source = impl(request, True)  # the watch session merges the leader check into its queue
            else:
                source = leader_guarded(core, impl(request))
            async for resp in source:
                yield resp
        except EtcdError as err:
            await _abort(context, err)

    return handle


def _unimplemented(method: MethodDescriptor) -> Callable[..., Any]:
    message = unimplemented_message(method)
    if method.server_streaming:

        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)
            yield None  # pragma: no cover - abort raises

        return stream

    async def unary(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

    return unary


def service_handlers(core: ApiCore) -> list[grpc.GenericRpcHandler]:
    streams = StreamHandlers(core)
    stream_impls: dict[str, Callable[..., AsyncIterator[Any]]] = {
        "/etcdserverpb.Watch/Watch": streams.watch,
        "/etcdserverpb.Lease/LeaseKeepAlive": streams.lease_keep_alive,
        "/etcdserverpb.Maintenance/Snapshot": streams.snapshot,
        "/v3electionpb.Election/Observe": streams.observe,
    }
    handlers: list[grpc.GenericRpcHandler] = []
    for service in SERVICES:
        methods: dict[str, Any] = {}
        for method in service.methods:
            path = method_path(method)
            req_cls = message_factory.GetMessageClass(method.input_type)
            resp_cls = message_factory.GetMessageClass(method.output_type)
            codec = {
                "request_deserializer": req_cls.FromString,
                "response_serializer": resp_cls.SerializeToString,
            }
            kind = (method.client_streaming, method.server_streaming)
            if path in core.unary:
                fn = _unary_handler(core, path, core.unary[path])
            elif path in stream_impls:
                fn = _stream_handler(core, path, stream_impls[path])
            else:
                fn = _unimplemented(method)
            if kind == (False, False):
                methods[method.name] = grpc.unary_unary_rpc_method_handler(fn, **codec)
            elif kind == (False, True):
                methods[method.name] = grpc.unary_stream_rpc_method_handler(fn, **codec)
            elif kind == (True, False):
                methods[method.name] = grpc.stream_unary_rpc_method_handler(fn, **codec)
            else:
                methods[method.name] = grpc.stream_stream_rpc_method_handler(fn, **codec)
        handlers.append(grpc.method_handlers_generic_handler(service.full_name, methods))
    return handlers


# etcd's client-facing gRPC limits: requests up to --max-request-bytes plus gRPC overhead, responses unbounded
GRPC_OVERHEAD_BYTES = 512 * 1024


def build_grpc_server(
    facade: EtcdFacade,
    options: ApiOptions | None = None,
    *,
    health: HealthService | None = None,
    extra_options: list[tuple[str, Any]] | None = None,
    reuse_port: bool = False,
) -> tuple[Any, ApiCore, HealthService]:
    """A grpc.aio.Server with every service over `facade`; the caller adds ports and starts it.

    Returns (server, core, health): the core is what the HTTP gateway dispatches through, the health
    service is what the runtime flips to NOT_SERVING on shutdown.
    """
    core = ApiCore(facade, options)
    health = health or HealthService()
    grpc_options: list[tuple[str, Any]] = [
        # grpcio sets SO_REUSEPORT by default, so a second member on the same port would bind
        # silently beside the first; etcd fails with "address already in use". Front-end processes
        # that share a member's port on purpose (DESIGN.md, scaling) pass reuse_port=True.
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_receive_message_length", core.options.max_request_bytes + GRPC_OVERHEAD_BYTES),
        ("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.max_concurrent_streams", 2**31 - 1),
    ]
    grpc_options += extra_options or []
    server = grpc.aio.server(options=grpc_options)
    server.add_generic_rpc_handlers((*service_handlers(core), health.handler()))
    return server, core, health
