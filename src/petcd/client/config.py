"""Client configuration and endpoint parsing, shared by both transports.

An endpoint is written as etcdctl accepts it: ``host:port``, ``http://host:port`` or
``https://host:port``. Without a scheme, TLS is used when any TLS material is configured
(``--cacert``/``--cert``/``--key``) or the transport is not insecure, as etcdctl does.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Endpoint:
    host: str
    port: int
    tls: bool
    text: str  # as the user wrote it; etcdctl prints endpoints this way

    @property
    def grpc_target(self) -> str:
        if ":" in self.host:  # IPv6 literal
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(slots=True)
class TlsConfig:
    cacert: str = ""
    cert: str = ""
    key: str = ""
    insecure_skip_verify: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.cacert or self.cert or self.key)


@dataclass(slots=True)
class ClientConfig:
    endpoints: list[str] = field(default_factory=lambda: ["127.0.0.1:2379"])
    dial_timeout_s: float = 2.0
    command_timeout_s: float = 5.0
    keepalive_time_s: float = 2.0
    keepalive_timeout_s: float = 6.0
    user: str = ""
    password: str = ""
    tls: TlsConfig = field(default_factory=TlsConfig)
    insecure_transport: bool = True
    max_request_bytes: int = 0  # 0: etcd's client default (2 MiB)
    max_recv_bytes: int = 0  # 0: unlimited (MaxInt32)

    def parsed_endpoints(self) -> list[Endpoint]:
        return [parse_endpoint(e, self.tls.configured or not self.insecure_transport) for e in self.endpoints]


def parse_endpoint(text: str, default_tls: bool = False) -> Endpoint:
    rest = text
    tls = default_tls
    if "://" in text:
        scheme, rest = text.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported endpoint scheme {scheme!r} in {text!r}")
        tls = scheme == "https"
    rest = rest.rstrip("/")
    if rest.startswith("["):
        host, _, port_text = rest[1:].partition("]:")
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep:
            host, port_text = rest, "2379"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"invalid endpoint {text!r}") from None
    return Endpoint(host=host or "127.0.0.1", port=port, tls=tls, text=text)
