"""etcdctl over TLS: --cacert/--cert/--key against a reference etcd serving https with client auth."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcdctl_harness import OURS, PETCD_SERVER, REF_ETCDCTL, SERVER, FakeDns, free_ports, needs_etcd, run

# petcd's own server does not serve TLS yet (it refuses https:// listen URLs)
pytestmark = [
    needs_etcd,
    pytest.mark.skipif(PETCD_SERVER, reason="petcd's server does not serve TLS yet"),
]


def _write_certs(base: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def save_key(k: ec.EllipticCurvePrivateKey, name: str) -> None:
        pem = k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (base / name).write_bytes(pem)

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "petcd test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (base / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name in ("server", "client"):
        k = key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.DNSName("localhost"),
                        # etcdctl checks the name of the --discovery-srv domain on discovered servers
                        x509.DNSName("example.test"),
                    ]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        (base / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        save_key(k, f"{name}-key.pem")


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    base = tmp_path_factory.mktemp("etcd-tls")
    _write_certs(base)
    port, peer = free_ports(2)
    endpoint = f"127.0.0.1:{port}"
    log = open(base / "etcd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            *SERVER,
            "--data-dir", str(base / "data"),
            "--listen-client-urls", f"https://{endpoint}",
            "--advertise-client-urls", f"https://{endpoint}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer}",
            "--cert-file", str(base / "server.pem"),
            "--key-file", str(base / "server-key.pem"),
            "--trusted-ca-file", str(base / "ca.pem"),
            "--client-cert-auth",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        ctx = ssl.create_default_context(cafile=str(base / "ca.pem"))
        ctx.load_cert_chain(str(base / "client.pem"), str(base / "client-key.pem"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw,
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
                ):
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if b'"health":"true"' in s.recv(4096):
                        break
            except OSError:
                pass
            time.sleep(0.1)
        yield endpoint, base
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def test_tls_with_client_certificate(tls_etcd: tuple[str, Path]) -> None:
    endpoint, base = tls_etcd
    tls = [
        "--cacert",
        str(base / "ca.pem"),
        "--cert",
        str(base / "client.pem"),
        "--key",
        str(base / "client-key.pem"),
    ]
    assert run(OURS, ["--endpoints", endpoint, *tls, "put", "secure", "v"]).out == b"OK\n"
    assert run(OURS, ["--endpoints", f"https://{endpoint}", *tls, "get", "secure"]).out == b"secure\nv\n"
    # a gRPC path too (snapshot streams over gRPC)
    r = run(OURS, ["--endpoints", endpoint, *tls, "snapshot", "save", str(base / "s.db")])
    assert r.rc == 0, r.err
    # without a client certificate the server refuses
    refused = run(
        OURS, ["--endpoints", endpoint, "--cacert", str(base / "ca.pem"), "--dial-timeout", "1s", "get", "x"]
    )
    assert (refused.rc, refused.err) == (1, b"Error: context deadline exceeded\n")


def _tls(base: Path, ca: bool = True) -> list[str]:
    flags = ["--cert", str(base / "client.pem"), "--key", str(base / "client-key.pem")]
    return [*flags, "--cacert", str(base / "ca.pem")] if ca else flags


def test_tls_same_as_the_reference(tls_etcd: tuple[str, Path]) -> None:
    endpoint, base = tls_etcd
    for args in (
        ["put", "same", "v"],
        ["get", "same", "-w", "fields"],
        ["endpoint", "hashkv", "-w", "json"],
        ["member", "list"],
    ):
        ours = run(OURS, ["--endpoints", endpoint, *_tls(base), *args])
        ref = run([REF_ETCDCTL], ["--endpoints", endpoint, *_tls(base), *args])
        assert (ours.rc, ours.out) == (ref.rc, ref.out), args
    # without the CA the server's certificate is refused, unless verification is skipped
    args = ["--endpoints", endpoint, *_tls(base, ca=False), "--dial-timeout", "1s", "get", "same"]
    ours, ref = run(OURS, args), run([REF_ETCDCTL], args)
    assert ours.rc == ref.rc == 1
    assert ours.error_lines[-1] == ref.error_lines[-1] == b"Error: context deadline exceeded"
    ours = run(OURS, [*args, "--insecure-skip-tls-verify"])
    ref = run([REF_ETCDCTL], [*args, "--insecure-skip-tls-verify"])
    assert (ours.rc, ours.out) == (ref.rc, ref.out) == (0, b"same\nv\n")


def test_discovery_srv_over_tls(tls_etcd: tuple[str, Path]) -> None:
    # an _etcd-client-ssl record gives an https endpoint whose certificate must name the domain
    endpoint, base = tls_etcd
    port = int(endpoint.rsplit(":", 1)[1])
    dns = FakeDns({"_etcd-client-ssl._tcp.example.test": [(0, 0, port, "localhost.")]})
    try:
        env = {"PETCD_DNS_SERVER": dns.address}
        r = run(OURS, ["-d", "example.test", *_tls(base), "put", "srv-tls", "v"], env=env)
        assert (r.rc, r.out, r.err) == (0, b"OK\n", b"")
        r = run(OURS, ["-d", "example.test", *_tls(base), "snapshot", "save", str(base / "srv.db")], env=env)
        assert r.rc == 0, r.err  # the gRPC path checks the same name
        # secure discovery keeps https endpoints
        r = run(
            OURS, ["-d", "example.test", "--insecure-discovery=false", *_tls(base), "get", "srv-tls"], env=env
        )
        assert (r.rc, r.out, r.err) == (0, b"srv-tls\nv\n", b"")
    finally:
        dns.stop()
