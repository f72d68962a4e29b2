"""Endpoint discovery by DNS SRV records (``--discovery-srv``), as etcdctl's client/pkg/srv does it.

For a domain D and an optional service name N, etcdctl asks for two SRV record sets:
``_etcd-client-ssl[-N]._tcp.D`` (each target becomes ``https://target:port``) and then
``_etcd-client[-N]._tcp.D`` (``http://target:port``). Targets keep their trailing dot, as Go's
resolver returns them. The lookup fails only when both queries fail (``dns lookup errors: <a> and
<b>``); with ``--insecure-discovery=false`` the ``http://`` endpoints are dropped with a notice on
stderr; when nothing is found the ``--endpoints`` flag is used.

The query is a plain DNS request over UDP written here with the standard library (no resolver
package is installed, and this path must not slow down the commands that do not use it). The
server is the first ``nameserver`` of /etc/resolv.conf, or ``PETCD_DNS_SERVER=host:port``, which
exists for the tests (they run a small DNS server on loopback) and is not an etcd setting. A
truncated UDP answer is retried over TCP. Records are ordered as RFC 2782 and Go order them: by
priority, and within a priority by a weighted random draw.
"""

from __future__ import annotations

import random
import socket
import struct

SRV = 33
IN = 1
NOERROR, NXDOMAIN = 0, 3


class DnsError(Exception):
    """A failed lookup, worded as Go's ``*net.DNSError``: ``lookup <name> on <server>: <reason>``."""


class SrvRecord:
    __slots__ = ("port", "priority", "target", "weight")

    def __init__(self, priority: int, weight: int, port: int, target: str) -> None:
        self.priority = priority
        self.weight = weight
        self.port = port
        self.target = target


def srv_service(service: str, service_name: str, scheme: str) -> str:
    """etcd's ``GetSRVService``: ``etcd-client`` -> ``etcd-client-ssl`` for https, then ``-<name>``."""
    if scheme == "https":
        service += "-ssl"
    return f"{service}-{service_name}" if service_name else service


def nameserver(environ: dict[str, str]) -> tuple[str, int]:
    override = environ.get("PETCD_DNS_SERVER", "")
    if override:
        host, _, port = override.rpartition(":")
        return host.strip("[]"), int(port)
    try:
        with open("/etc/resolv.conf", encoding="utf-8") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    return fields[1], 53
    except OSError:
        pass
    return "127.0.0.1", 53  # Go's default when resolv.conf names none


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if label else b""
        if not raw or len(raw) > 63:
            raise DnsError(f"lookup {name}: invalid domain name")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def _read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """A possibly compressed name at ``pos``: (name with trailing dot, position after it)."""
    labels: list[str] = []
    end = -1
    for _ in range(128):  # bounds a malicious pointer loop
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if end < 0:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        if length == 0:
            return ".".join(labels) + ".", (end if end >= 0 else pos + 1)
        labels.append(msg[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    raise ValueError("name compression loop")


def parse_srv_answer(msg: bytes, query_id: int) -> tuple[int, list[SrvRecord], bool]:
    """(rcode, SRV records of the answer section, truncated) of a DNS response."""
    ident, flags, qdcount, ancount = struct.unpack(">HHHH", msg[:8])
    if ident != query_id or not flags & 0x8000:
        raise ValueError("not an answer to our query")
    pos = 12
    for _ in range(qdcount):
        _, pos = _read_name(msg, pos)
        pos += 4
    records = []
    for _ in range(ancount):
        _, pos = _read_name(msg, pos)
        rtype, rclass, _ttl, rdlength = struct.unpack(">HHIH", msg[pos : pos + 10])
        pos += 10
        if rtype == SRV and rclass == IN:
            priority, weight, port = struct.unpack(">HHH", msg[pos : pos + 6])
            target, _ = _read_name(msg, pos + 6)
            records.append(SrvRecord(priority, weight, port, target))
        pos += rdlength
    return flags & 0x000F, records, bool(flags & 0x0200)


def _exchange(query: bytes, server: tuple[str, int], timeout: float, tcp: bool) -> bytes:
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    if tcp:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(server)
            s.sendall(struct.pack(">H", len(query)) + query)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
                chunk = s.recv(65535)
                if not chunk:
                    break
                data += chunk
            return data[2:]
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(query, server)
        data, _ = s.recvfrom(65535)
        return data


def lookup_srv(
    service: str, domain: str, environ: dict[str, str], timeout: float = 5.0, attempts: int = 2
) -> list[SrvRecord]:
    """Go's ``net.LookupSRV(service, "tcp", domain)``: the records of ``_service._tcp.domain``."""
    name = f"_{service}._tcp.{domain}"
    server = nameserver(environ)
    where = f"{server[0]}:{server[1]}" if ":" not in server[0] else f"[{server[0]}]:{server[1]}"
    query_id = random.getrandbits(16)
    query = (
        struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
        + _encode_name(name)
        + struct.pack(">HH", SRV, IN)
    )
    last = "i/o timeout"
    for _ in range(attempts):
        try:
            answer = _exchange(query, server, timeout, tcp=False)
            rcode, records, truncated = parse_srv_answer(answer, query_id)
            if truncated:
                rcode, records, _ = parse_srv_answer(_exchange(query, server, timeout, tcp=True), query_id)
        except TimeoutError:
            continue
        except (OSError, ValueError, struct.error, IndexError) as err:
            last = str(err) if isinstance(err, OSError) else "cannot unmarshal DNS message"
            continue
        if rcode == NXDOMAIN or (rcode == NOERROR and not records):
            raise DnsError(f"lookup {name} on {where}: no such host")
        if rcode != NOERROR:
            raise DnsError(f"lookup {name} on {where}: server misbehaving")
        return _order(records)
    raise DnsError(f"lookup {name} on {where}: {last}")


def _order(records: list[SrvRecord]) -> list[SrvRecord]:
    """RFC 2782 order: ascending priority; within one, a draw weighted by the records' weights."""
    out: list[SrvRecord] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        while group:
            total = sum(r.weight for r in group)
            pick = 0
            if total:
                n = random.randrange(total)
                acc = 0
                for pick, r in enumerate(group):  # noqa: B007 (pick is the answer)
                    acc += r.weight
                    if acc > n:
                        break
            out.append(group.pop(pick))
    return out


def discover_endpoints(
    domain: str, service_name: str, insecure: bool, environ: dict[str, str], warn: list[str]
) -> list[str]:
    """etcdctl's ``endpointsFromFlagValue``: the client URLs found under ``domain``.

    Raises DnsError when neither record set can be looked up; notices go to ``warn``.
    """
    endpoints: list[str] = []
    errors: list[str] = []
    for scheme in ("https", "http"):
        try:
            records = lookup_srv(srv_service("etcd-client", service_name, scheme), domain, environ)
        except DnsError as err:
            errors.append(str(err))
            continue
        endpoints += [f"{scheme}://{_join_host_port(r.target, r.port)}" for r in records]
    if len(errors) == 2:
        raise DnsError(f"dns lookup errors: {errors[0]} and {errors[1]}")
    if insecure:
        return endpoints
    kept = []
    for ep in endpoints:
        if ep.startswith("http://"):
            warn.append(f'ignoring discovered insecure endpoint "{ep}"')
            continue
        kept.append(ep)
    return kept


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
