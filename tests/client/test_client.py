"""petcd.client against the reference etcd: both transports, failover, errors, auth."""

from __future__ import annotations

import base64
import subprocess
import time

import pytest
from etcdctl_harness import REF_ETCDCTL, EtcdServer, needs_etcd  # type: ignore[import-not-found]

from petcd.client import Client, ClientConfig, ClientError, DeadlineExceeded, parse_endpoint
from petcd.client.gateway import _dechunk, _parse_response

pytestmark = needs_etcd


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def clients(endpoints: list[str], **kw: object) -> list[Client]:
    return [Client(ClientConfig(endpoints, **kw), t) for t in ("gateway", "grpc")]  # type: ignore[arg-type]


def test_both_transports_return_the_same_dicts(etcd_server: EtcdServer) -> None:
    gw, rpc = clients([etcd_server.endpoint])
    gw.call("Put", {"key": b64(b"same"), "value": b64(b"\x00\xffv")})
    for method, body in (
        ("Range", {"key": b64(b"same")}),
        ("Range", {"key": b64(b"\x00"), "range_end": b64(b"\x00"), "keys_only": True}),
        ("MemberList", {}),
        ("Alarm", {"action": 0}),
        ("LeaseLeases", {}),
    ):
        assert gw.call(method, body) == rpc.call(method, body), method
    status_gw, status_rpc = gw.call("Status"), rpc.call("Status")
    assert status_gw["header"]["member_id"] == status_rpc["header"]["member_id"]
    assert status_gw["version"] == status_rpc["version"]
    # etcd 3.4's gateway has no /v3/maintenance/hashkv: "auto" falls back to gRPC
    with pytest.raises(ClientError):
        gw.call("HashKV", {})
    auto = Client(ClientConfig([etcd_server.endpoint]))
    assert auto.call("HashKV", {})["hash"] == rpc.call("HashKV", {})["hash"]
    assert auto.transport == "grpc"
    auto.close()
    rpc.close()


def test_put_and_read_back_bytes(etcd_server: EtcdServer) -> None:
    for client in clients([etcd_server.endpoint]):
        value = bytes(range(256))
        client.call("Put", {"key": b64(b"bytes"), "value": b64(value)})
        kv = client.call("Range", {"key": b64(b"bytes")})["kvs"][0]
        assert base64.b64decode(kv["value"]) == value
        client.close()


def test_errors_keep_etcds_message_and_code(etcd_server: EtcdServer) -> None:
    for client in clients([etcd_server.endpoint]):
        with pytest.raises(ClientError) as err:
            client.call("Range", {})
        assert err.value.message == "etcdserver: key is not provided"
        assert err.value.code == 3
        with pytest.raises(ClientError) as err:
            client.call("LeaseRevoke", {"ID": "1234"})
        assert err.value.message == "etcdserver: requested lease not found"
        assert err.value.code == 5
        client.close()


def test_failover_skips_a_dead_endpoint(etcd_server: EtcdServer) -> None:
    for client in clients(["127.0.0.1:1", etcd_server.endpoint], dial_timeout_s=2.0):
        assert "header" in client.call("Range", {"key": b64(b"x")})
        client.close()


def test_per_endpoint_calls(etcd_server: EtcdServer) -> None:
    for client in clients(["127.0.0.1:1", etcd_server.endpoint]):
        reply = client.call("Status", {}, parse_endpoint(etcd_server.endpoint))
        assert reply["version"].startswith("3.")
        with pytest.raises(DeadlineExceeded):
            client.call("Status", {}, parse_endpoint("127.0.0.1:1"))
        client.close()


def test_unreachable_is_deadline_exceeded() -> None:
    for client in clients(["127.0.0.1:1"], dial_timeout_s=0.3, command_timeout_s=0.5):
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded) as err:
            client.call("Range", {"key": b64(b"x")})
        assert str(err.value) == "context deadline exceeded"
        assert time.monotonic() - start < 10  # bounded by the timeouts, not a retry loop
        client.close()


def test_streams_over_grpc(etcd_server: EtcdServer) -> None:
    from petcd.pb.etcdserverpb import rpc_pb2

    client = Client(ClientConfig([etcd_server.endpoint]))
    client.call("Put", {"key": b64(b"streamed"), "value": b64(b"1")})
    rev = int(client.call("Range", {"key": b64(b"streamed")})["header"]["revision"])
    create = rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(key=b"streamed", start_revision=rev)
    )
    stream = client.grpc.stream("Watch", iter([create]))
    seen: list[bytes] = []
    for resp in stream:
        seen.extend(ev.kv.value for ev in resp.events)  # type: ignore[attr-defined]
        if seen:
            stream.cancel()
            break
    assert seen == [b"1"]
    chunks = list(client.grpc.server_stream("Snapshot", rpc_pb2.SnapshotRequest()))
    assert sum(len(c.blob) for c in chunks) > 0  # type: ignore[attr-defined, misc]
    client.close()


def test_authentication_token(etcd_server: EtcdServer) -> None:
    ep = ["--endpoints", etcd_server.endpoint]

    def ctl(*args: str) -> None:
        subprocess.run([REF_ETCDCTL, *ep, *args], check=True, capture_output=True, timeout=30)

    ctl("user", "add", "root:rootpw")
    ctl("user", "add", "alice:alicepw")
    ctl("role", "add", "r")
    ctl("role", "grant-permission", "r", "readwrite", "a/", "--prefix")
    ctl("user", "grant-role", "alice", "r")
    ctl("auth", "enable")
    try:
        for transport in ("gateway", "grpc"):
            alice = Client(ClientConfig(ep[1:], user="alice", password="alicepw"), transport)
            alice.call("Put", {"key": b64(b"a/1"), "value": b64(b"v")})
            with pytest.raises(ClientError) as err:
                alice.call("Put", {"key": b64(b"b/1"), "value": b64(b"v")})
            assert err.value.message == "etcdserver: permission denied"
            alice.close()
            wrong = Client(ClientConfig(ep[1:], user="alice", password="nope"), transport)
            with pytest.raises(ClientError) as err:
                wrong.call("Range", {"key": b64(b"a/1")})
            assert err.value.message == "etcdserver: authentication failed, invalid user ID or password"
            anonymous = Client(ClientConfig(ep[1:]), transport)
            with pytest.raises(ClientError) as err:
                anonymous.call("Range", {"key": b64(b"a/1")})
            assert err.value.message == "etcdserver: user name is empty"
    finally:
        ctl("--user", "root:rootpw", "auth", "disable")


def test_endpoint_parsing() -> None:
    assert parse_endpoint("127.0.0.1:2379").grpc_target == "127.0.0.1:2379"
    ep = parse_endpoint("https://example.com:2379")
    assert (ep.host, ep.port, ep.tls) == ("example.com", 2379, True)
    assert parse_endpoint("http://[::1]:2379").grpc_target == "[::1]:2379"
    assert parse_endpoint("localhost").port == 2379
    assert parse_endpoint("127.0.0.1:2379", default_tls=True).tls
    with pytest.raises(ValueError):
        parse_endpoint("unix://x")
    with pytest.raises(ValueError):
        parse_endpoint("host:port")


def test_http_response_parsing() -> None:
    body = b'{"a":1}'
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n" + body
    assert _parse_response(raw) == (200, body)
    chunked = b'HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n'
    assert _parse_response(chunked) == (503, b'{"a":1}')
    assert _dechunk(b"0\r\n\r\n") == b""


def test_auto_falls_back_to_grpc_without_a_gateway() -> None:
    """A gRPC-only server (no JSON gateway on the port): unary calls go over gRPC instead."""
    from concurrent import futures

    import grpc

    from petcd.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    class KV(rpc_pb2_grpc.KVServicer):
        def Range(self, request: rpc_pb2.RangeRequest, context: object) -> rpc_pb2.RangeResponse:  # noqa: N802
            return rpc_pb2.RangeResponse(header=rpc_pb2.ResponseHeader(revision=42), count=7)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    rpc_pb2_grpc.add_KVServicer_to_server(KV(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        client = Client(ClientConfig([f"127.0.0.1:{port}"]))
        assert client.call("Range", {"key": b64(b"k")}) == {"header": {"revision": "42"}, "count": "7"}
        assert client.transport == "grpc"
        client.close()
    finally:
        server.stop(0)
