"""https client URLs: the gateway over TLS, and one TLS port for gRPC (ALPN h2) and HTTP through the mux."""

from __future__ import annotations

import asyncio
import datetime
import http.client
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import grpc
from api_served import Served
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from petcd.gateway.mux import ClientPortMux
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc as rpc


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "petcd-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "server.crt", tmp_path / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_one_tls_port_for_grpc_and_http(served: Served, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def start() -> tuple[ClientPortMux, int]:
        mux = ClientPortMux(served.http, ("127.0.0.1", served.port))
        return mux, await mux.listen("127.0.0.1", 0, server_ctx)

    mux, port = asyncio.run_coroutine_threadsafe(start(), served.loop).result(5)
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        ch = grpc.secure_channel(f"127.0.0.1:{port}", creds)
        assert rpc.KVStub(ch).Put(pb.PutRequest(key=b"tls", value=b"1"), timeout=5).header.revision == 2
        ch.close()
        client_ctx = ssl.create_default_context(cafile=str(cert))
        conn: Any = http.client.HTTPSConnection("127.0.0.1", port, context=client_ctx, timeout=5)
        conn.request("GET", "/health")
        assert conn.getresponse().read() == b'{"health":"true","reason":""}'
        conn.close()
    finally:
        asyncio.run_coroutine_threadsafe(mux.close(), served.loop).result(5)


def test_gateway_alone_over_tls(served: Served, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    port = asyncio.run_coroutine_threadsafe(
        served.http.listen("127.0.0.1", 0, server_ctx), served.loop
    ).result(5)
    conn: Any = http.client.HTTPSConnection(
        "127.0.0.1", port, context=ssl.create_default_context(cafile=str(cert)), timeout=5
    )
    conn.request("GET", "/version")
    assert conn.getresponse().status == 200
    conn.close()
