"""The HTTP side of the client URL: the JSON gateway and /health, /livez, /readyz, /version, /metrics."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
import time
from typing import Any

import grpc
import pytest
from api_served import Served

from petcd.gateway.http import gateway_routes
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc as rpc


def b64(s: bytes) -> str:
    return base64.b64encode(s).decode()


def request(served: Served, method: str, path: str, body: Any = None) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=5)
    try:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        conn.request(method, path, body=data)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def post(served: Served, path: str, body: Any) -> tuple[int, Any]:
    status, _, data = request(served, "POST", path, body)
    return status, json.loads(data)


def test_routes_cover_etcds_paths() -> None:
    routes = gateway_routes()
    for path in (
        "/v3/kv/range",
        "/v3/kv/put",
        "/v3/kv/deleterange",
        "/v3/kv/txn",
        "/v3/kv/compaction",
        "/v3/watch",
        "/v3/lease/grant",
        "/v3/lease/revoke",
        "/v3/kv/lease/revoke",
        "/v3/lease/keepalive",
        "/v3/lease/timetolive",
        "/v3/kv/lease/timetolive",
        "/v3/lease/leases",
        "/v3/cluster/member/list",
        "/v3/maintenance/status",
        "/v3/maintenance/snapshot",
        "/v3/auth/enable",
        "/v3/election/campaign",
        "/v3/lock/lock",
    ):
        assert path in routes, path


def test_put_and_range_in_proto3_json(served: Served) -> None:
    status, put = post(served, "/v3/kv/put", {"key": b64(b"foo"), "value": b64(b"bar")})
    assert status == 200
    assert put == {"header": {"cluster_id": "1152921504606846977", "member_id": "10276657743932975437",
                              "revision": "2", "raft_term": "2"}}  # fmt: skip
    status, got = post(served, "/v3/kv/range", {"key": b64(b"foo"), "unknown_field": 1})
    assert status == 200 and got["count"] == "1"
    assert got["kvs"] == [
        {"key": "Zm9v", "create_revision": "2", "mod_revision": "2", "version": "1", "value": "YmFy"}
    ]
    status, got = post(served, "/v3beta/kv/range", {"key": b64(b"foo"), "count_only": True})
    assert status == 200 and got["count"] == "1" and "kvs" not in got


def test_txn_and_lease_over_json(served: Served) -> None:
    status, grant = post(served, "/v3/lease/grant", {"TTL": "60"})
    assert status == 200 and grant["TTL"] == "60"
    txn = {
        "compare": [{"key": b64(b"t"), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
        "success": [{"request_put": {"key": b64(b"t"), "value": b64(b"1"), "lease": grant["ID"]}}],
    }
    status, resp = post(served, "/v3/kv/txn", txn)
    assert status == 200 and resp["succeeded"] is True
    status, ttl = post(served, "/v3/kv/lease/timetolive", {"ID": grant["ID"], "keys": True})
    assert ttl["keys"] == [b64(b"t")]


def test_errors_as_grpc_gateway(served: Served) -> None:
    status, err = post(served, "/v3/kv/put", {"value": b64(b"x")})
    assert (status, err) == (400, {"code": 3, "message": "etcdserver: key is not provided", "details": []})
    status, err = post(served, "/v3/lease/revoke", {"ID": "5"})
    assert (status, err["code"], err["message"]) == (404, 5, "etcdserver: requested lease not found")
    status, err = post(served, "/v3/auth/status", {})
    assert status == 501 and err["code"] == 12
    status, _, _ = request(served, "GET", "/v3/kv/range")
    assert status == 405
    status, _, _ = request(served, "GET", "/nope")
    assert status == 404
    status, err = post(served, "/v3/kv/range", b"{not json")
    assert status == 400 and err["code"] == 3


def test_health(served: Served) -> None:
    status, ctype, body = request(served, "GET", "/health")
    assert (status, body) == (200, b'{"health":"true","reason":""}')
    assert ctype == "text/plain; charset=utf-8"  # etcd sets none; Go sniffs this
    served.call(lambda: setattr(served.facade, "leader", 0))
    status, _, body = request(served, "GET", "/health")
    assert (status, body) == (503, b'{"health":"false","reason":"RAFT NO LEADER"}\n')
    status, _, body = request(served, "GET", "/health?serializable=true")
    assert status == 200
    served.call(lambda: served.facade.alarms.append(pb.AlarmMember(memberID=1, alarm=pb.NOSPACE)))
    status, _, body = request(served, "GET", "/health?serializable=true")
    assert (status, body) == (503, b'{"health":"false","reason":"ALARM NOSPACE"}\n')
    status, _, body = request(served, "GET", "/health?serializable=true&exclude=NOSPACE")
    assert status == 200
    assert request(served, "POST", "/health", b"")[0] == 405
    metrics = request(served, "GET", "/metrics")[2].decode()
    assert "etcd_server_health_success 3.0" in metrics and "etcd_server_health_failures 2.0" in metrics


def test_livez_readyz(served: Served) -> None:
    assert request(served, "GET", "/livez")[::2] == (200, b"ok\n")
    assert request(served, "GET", "/readyz?verbose")[::2] == (
        200,
        b"[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n",
    )
    assert request(served, "GET", "/livez/serializable_read")[::2] == (200, b"ok\n")
    assert request(served, "GET", "/livez/bogus")[0] == 404
    assert request(served, "GET", "/readyz?verbose&exclude=non_learner&exclude=nothing")[2].count(b"[+]") == 3
    served.call(lambda: served.facade.alarms.append(pb.AlarmMember(memberID=1, alarm=pb.CORRUPT)))
    status, _, body = request(served, "GET", "/readyz")
    assert status == 503
    assert body == (
        b"[-]data_corruption failed: alarm activated: CORRUPT\n[+]serializable_read ok\n"
        b"[+]linearizable_read ok\n[+]non_learner ok\n\n"
    )
    assert request(served, "GET", "/readyz?exclude=data_corruption")[::2] == (200, b"ok\n")
    served.call(lambda: setattr(served.facade, "learner", True))
    assert request(served, "GET", "/readyz/non_learner")[::2] == (
        503,
        b"[-]non_learner failed: not supported for learner\n\n",
    )


def test_version_and_metrics(served: Served) -> None:
    status, _, body = request(served, "GET", "/version")
    assert status == 200 and json.loads(body) == {
        "etcdserver": "3.6.0",
        "etcdcluster": "3.6.0",
        "storage": "3.6.0",
    }
    status, ctype, body = request(served, "GET", "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    text = body.decode()
    for name in (
        "etcd_server_has_leader",
        "etcd_server_leader_changes_seen_total",
        "etcd_server_proposals_committed_total",
        "etcd_server_proposals_applied_total",
        "etcd_server_proposals_pending",
        "etcd_server_proposals_failed_total",
        "etcd_disk_wal_fsync_duration_seconds_bucket",
        "etcd_disk_backend_commit_duration_seconds_bucket",
        "etcd_mvcc_db_total_size_in_bytes",
        "process_resident_memory_bytes",  # etcdctl check datascale reads it
    ):
        assert f"\n{name}" in text, name
    assert "_created" not in text
    served.http.metrics.peer_round_trip_time.labels("abc").observe(0.001)
    text = request(served, "GET", "/metrics")[2].decode()
    assert 'etcd_network_peer_round_trip_time_seconds_count{To="abc"} 1.0' in text


def test_keep_alive_connection_serves_several_requests(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=5)
    try:
        for i in range(3):
            conn.request("POST", "/v3/kv/put", body=json.dumps({"key": b64(b"k"), "value": b64(b"%d" % i)}))
            assert conn.getresponse().read().count(b"revision") == 1
    finally:
        conn.close()


def _read_stream_objects(sock: socket.socket, n: int) -> list[Any]:
    buf = b""
    objs: list[Any] = []
    while len(objs) < n:
        chunk = sock.recv(65536)
        assert chunk, "stream closed early"
        buf += chunk
        _head, sep, rest = buf.partition(b"\r\n\r\n")
        body = rest if sep else b""
        # de-chunk what is there
        objs = []
        pos = 0
        while True:
            eol = body.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(body[pos:eol], 16)
            if size == 0 or len(body) < eol + 2 + size:
                break
            objs.extend(json.loads(line) for line in body[eol + 2 : eol + 2 + size].splitlines() if line)
            pos = eol + 2 + size + 2
    return objs


def test_watch_over_http_streams_results(served: Served) -> None:
    sock = socket.create_connection(("127.0.0.1", served.http_port), timeout=5)
    try:
        body = json.dumps({"create_request": {"key": b64(b"w")}}).encode()
        sock.sendall(
            b"POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        created = _read_stream_objects(sock, 1)
        assert created[0]["result"]["created"] is True
        ch = grpc.insecure_channel(served.target)
        rpc.KVStub(ch).Put(pb.PutRequest(key=b"w", value=b"1"))
        ch.close()
        ev = _next_object(sock)["result"]["events"][0]
        assert ev["kv"]["key"] == b64(b"w") and ev["kv"]["value"] == b64(b"1")
    finally:
        sock.close()
    for _ in range(50):
        if served.call(lambda: len(served.facade.streams)) == 0:
            break
        time.sleep(0.05)
    assert served.call(lambda: len(served.facade.streams)) == 0  # a closed client ends the watch


def _next_object(sock: socket.socket) -> Any:
    """The next chunk of a chunked stream, as one JSON object (the gateway writes one per chunk)."""
    buf = b""
    while True:
        chunk = sock.recv(65536)
        assert chunk
        buf += chunk
        eol = buf.find(b"\r\n")
        if eol >= 0:
            size = int(buf[:eol], 16)
            if len(buf) >= eol + 2 + size:
                return json.loads(buf[eol + 2 : eol + 2 + size])


def test_port_mux_serves_grpc_and_http_on_one_port(served: Served) -> None:
    from petcd.gateway.mux import ClientPortMux

    async def start() -> Any:
        mux = ClientPortMux(served.http, ("127.0.0.1", served.port))
        port = await mux.listen("127.0.0.1", 0)
        return mux, port

    mux, port = asyncio.run_coroutine_threadsafe(start(), served.loop).result(5)
    try:
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        assert rpc.KVStub(ch).Put(pb.PutRequest(key=b"m", value=b"1")).header.revision == 2
        ch.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/health")
        assert conn.getresponse().read() == b'{"health":"true","reason":""}'
        conn.close()
    finally:
        asyncio.run_coroutine_threadsafe(mux.close(), served.loop).result(5)


@pytest.mark.parametrize("path", ["/v3/lease/keepalive"])
def test_keepalive_over_http(served: Served, path: str) -> None:
    status, grant = post(served, "/v3/lease/grant", {"TTL": "30"})
    assert status == 200
    sock = socket.create_connection(("127.0.0.1", served.http_port), timeout=5)
    try:
        body = json.dumps({"ID": grant["ID"]}).encode()
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
        )
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        rest = data.split(b"\r\n\r\n", 1)[1]
        sock2 = rest
        while b"}\n" not in sock2:
            sock2 += sock.recv(65536)
        line = sock2.split(b"\r\n", 1)[1].split(b"\n")[0]
        assert json.loads(line)["result"]["TTL"] == "30"
    finally:
        sock.close()


def test_cors_as_etcds_default(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=5)
    try:
        conn.request("OPTIONS", "/v3/kv/range")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b""
        assert resp.getheader("Access-Control-Allow-Origin") == "*"
        conn.request("POST", "/v3/kv/range", body=json.dumps({"key": b64(b"a")}))
        resp = conn.getresponse()
        resp.read()
        assert resp.getheader("Access-Control-Allow-Methods") == "POST, GET, OPTIONS, PUT, DELETE"
    finally:
        conn.close()


def test_sampled_series_from_other_components() -> None:
    from petcd.gateway.metrics import EtcdMetrics

    m = EtcdMetrics()
    watch = {"watch_stream_total": 2, "slow_watcher_total": 1}
    m.add_sampled("etcd_debugging_mvcc_", lambda: watch)
    m.add_sampled("etcd_debugging_lease_", lambda: {"granted_total": 3}, "counter")
    text = m.render().decode()
    assert (
        "# TYPE etcd_debugging_mvcc_watch_stream_total gauge\netcd_debugging_mvcc_watch_stream_total 2.0"
        in text
    )
    assert "# TYPE etcd_debugging_lease_granted_total counter\netcd_debugging_lease_granted_total 3.0" in text
    watch["slow_watcher_total"] = 7  # read at scrape time
    assert "etcd_debugging_mvcc_slow_watcher_total 7.0" in m.render().decode()


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /v3/kv/range HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"POST /v3/kv/range HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GARBAGE\r\n\r\n",
    ],
)
def test_malformed_requests_get_400(served: Served, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", served.http_port), timeout=5) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")
    assert request(served, "GET", "/livez")[0] == 200  # the server carries on


def _send_chunk(sock: socket.socket, data: bytes) -> None:
    sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))


def test_watch_with_a_chunked_request_stream(served: Served) -> None:
    sock = socket.create_connection(("127.0.0.1", served.http_port), timeout=5)
    try:
        sock.sendall(b"POST /v3/watch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        _send_chunk(sock, json.dumps({"create_request": {"key": b64(b"s")}}).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert _next_object(sock)["result"]["created"] is True
        # a second create, split across chunks: it is a request once its JSON is complete
        second = json.dumps({"create_request": {"key": b64(b"t"), "watch_id": "5"}}).encode()
        _send_chunk(sock, second[:10])
        time.sleep(0.1)
        _send_chunk(sock, second[10:])
        created = _next_object(sock)["result"]
        assert created["created"] is True and created["watch_id"] == "5"
        ch = grpc.insecure_channel(served.target)
        rpc.KVStub(ch).Put(pb.PutRequest(key=b"t", value=b"1"))
        ch.close()
        ev = _next_object(sock)["result"]
        assert ev["watch_id"] == "5" and ev["events"][0]["kv"]["value"] == b64(b"1")
        _send_chunk(sock, json.dumps({"cancel_request": {"watch_id": "5"}}).encode())
        canceled = _next_object(sock)["result"]
        assert canceled["canceled"] is True and canceled["watch_id"] == "5"
        sock.sendall(b"0\r\n\r\n")  # end of the request body: the stream stays open
        time.sleep(0.1)
        assert served.call(lambda: len(served.facade.streams)) == 1
    finally:
        sock.close()
    for _ in range(50):
        if served.call(lambda: len(served.facade.streams)) == 0:
            break
        time.sleep(0.05)
    assert served.call(lambda: len(served.facade.streams)) == 0


def test_gateway_on_a_unix_socket(served: Served, tmp_path: Any) -> None:
    path = str(tmp_path / "client.sock")
    asyncio.run_coroutine_threadsafe(served.http.listen_unix(path), served.loop).result(5)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"\r\n\r\nok\n")
