"""The standard gRPC health service (grpc.health.v1.Health) without the grpcio-health-checking package.

Its two messages are declared here from a FileDescriptorProto (the same names, package and field numbers
as grpc's health.proto), so clients' generated stubs interoperate. The status is SERVING for the
overall service "" while the server runs, and NOT_SERVING once `set_serving(False)` is called (the
runtime does so when it begins to shut down), as etcd sets it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVICE_NAME = "grpc.health.v1.Health"
UNKNOWN, SERVING, NOT_SERVING, SERVICE_UNKNOWN = 0, 1, 2, 3


def _build() -> tuple[Any, Any]:
    f = descriptor_pb2.FileDescriptorProto(
        name="grpc/health/v1/health.proto", package="grpc.health.v1", syntax="proto3"
    )
    req = f.message_type.add(name="HealthCheckRequest")
    req.field.add(
        name="service",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    resp = f.message_type.add(name="HealthCheckResponse")
    enum = resp.enum_type.add(name="ServingStatus")
    for name, number in (("UNKNOWN", 0), ("SERVING", 1), ("NOT_SERVING", 2), ("SERVICE_UNKNOWN", 3)):
        enum.value.add(name=name, number=number)
    resp.field.add(
        name="status",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        type_name=".grpc.health.v1.HealthCheckResponse.ServingStatus",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    request = message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest"))
    response = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse")
    )
    return request, response


HealthCheckRequest, HealthCheckResponse = _build()


class HealthService:
    """Check and Watch for the overall service ""."""

    def __init__(self) -> None:
        self.serving = True
        self._changed = asyncio.Event()

    def set_serving(self, serving: bool) -> None:
        self.serving = serving
        self._changed.set()

    def _status(self, service: str) -> int | None:
        if service != "":
            return None
        return SERVING if self.serving else NOT_SERVING

    async def check(self, request: Any, context: Any) -> Any:
        status = self._status(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return HealthCheckResponse(status=status)

    async def watch(self, request: Any, context: Any) -> AsyncIterator[Any]:
        last: int | None = -1
        while True:
            status = self._status(request.service)
            current = SERVICE_UNKNOWN if status is None else status
            if current != last:
                yield HealthCheckResponse(status=current)
                last = current
            self._changed.clear()
            await self._changed.wait()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Check": grpc.unary_unary_rpc_method_handler(
                    self.check,
                    request_deserializer=HealthCheckRequest.FromString,
                    response_serializer=HealthCheckResponse.SerializeToString,
                ),
                "Watch": grpc.unary_stream_rpc_method_handler(
                    self.watch,
                    request_deserializer=HealthCheckRequest.FromString,
                    response_serializer=HealthCheckResponse.SerializeToString,
                ),
            },
        )
