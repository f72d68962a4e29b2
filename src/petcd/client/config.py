"""Client configuration and endpoint parsing, shared by both transports.

An endpoint is written as etcdctl accepts it: ``host:port``, ``http://host:port`` or
``https://host:port``. Without a scheme, TLS is used when any TLS material is configured
(``--cacert``/``--cert``/``--key``) or the transport is not insecure, as etcdctl does.
"""

from __future__ import annotations


class Endpoint:
    __slots__ = ("host", "port", "text", "tls")

    def __init__(self, host: str, port: int, tls: bool, text: str) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.text = text  # as the user wrote it; etcdctl prints endpoints this way

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Endpoint) and (self.host, self.port, self.tls) == (
            other.host,
            other.port,
            other.tls,
        )

    def __hash__(self) -> int:
        return hash((self.host, self.port, self.tls))

    def __repr__(self) -> str:
        return f"Endpoint({self.text!r})"

    @property
    def grpc_target(self) -> str:
        if ":" in self.host:  # IPv6 literal
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


class TlsConfig:
    __slots__ = ("cacert", "cert", "insecure_skip_verify", "key", "server_name")

    def __init__(
        self,
        cacert: str = "",
        cert: str = "",
        key: str = "",
        insecure_skip_verify: bool = False,
        server_name: str = "",
    ) -> None:
        self.cacert = cacert
        self.cert = cert
        self.key = key
        self.insecure_skip_verify = insecure_skip_verify
        # the name the servers' certificates must carry instead of each endpoint's host (etcdctl
        # sets the --discovery-srv domain here)
        self.server_name = server_name

    @property
    def configured(self) -> bool:
        return bool(self.cacert or self.cert or self.key)


class ClientConfig:
    """Connection settings; the defaults are etcdctl's (``max_*_bytes`` 0 means the client default)."""

    __slots__ = (
        "command_timeout_s",
        "dial_timeout_s",
        "endpoints",
        "insecure_transport",
        "keepalive_time_s",
        "keepalive_timeout_s",
        "max_recv_bytes",
        "max_request_bytes",
        "password",
        "tls",
        "user",
    )

    def __init__(
        self,
        endpoints: list[str] | None = None,
        *,
        dial_timeout_s: float = 2.0,
        command_timeout_s: float = 5.0,
        keepalive_time_s: float = 2.0,
        keepalive_timeout_s: float = 6.0,
        user: str = "",
        password: str = "",
        tls: TlsConfig | None = None,
        insecure_transport: bool = True,
        max_request_bytes: int = 0,
        max_recv_bytes: int = 0,
    ) -> None:
        self.endpoints = endpoints if endpoints is not None else ["127.0.0.1:2379"]
        self.dial_timeout_s = dial_timeout_s
        self.command_timeout_s = command_timeout_s
        self.keepalive_time_s = keepalive_time_s
        self.keepalive_timeout_s = keepalive_timeout_s
        self.user = user
        self.password = password
        self.tls = tls if tls is not None else TlsConfig()
        self.insecure_transport = insecure_transport
        self.max_request_bytes = max_request_bytes  # 0: etcd's client default (2 MiB)
        self.max_recv_bytes = max_recv_bytes  # 0: unlimited (MaxInt32)

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
    if host.endswith(".") and ":" not in host:
        host = host[:-1]  # a fully qualified name (DNS SRV targets are written so) names the same host
    return Endpoint(host=host or "127.0.0.1", port=port, tls=tls, text=text)
