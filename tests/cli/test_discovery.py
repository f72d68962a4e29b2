"""--discovery-srv: etcdctl finds its endpoints in DNS SRV records.

The tests run a small DNS server on a free loopback UDP port and point petcd's etcdctl at it with
``PETCD_DNS_SERVER`` (a test-only setting; etcdctl otherwise asks the first nameserver of
/etc/resolv.conf). The reference etcdctl cannot be pointed at such a server (Go's resolver only
reads resolv.conf), so these tests check etcd's rules from its source (client/pkg/srv): records
``_etcd-client-ssl[-name]._tcp.<domain>`` give https endpoints, ``_etcd-client[-name]._tcp.<domain>``
http ones; failing both is an error; ``--insecure-discovery=false`` drops http endpoints.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from etcdctl_harness import OURS, EtcdServer, FakeDns, dns_name, needs_etcd, run

from petcd.cli.etcdctl.srv import SrvRecord, _order, parse_srv_answer, srv_service


@pytest.fixture
def dns() -> Iterator[FakeDns]:
    server = FakeDns({})
    try:
        yield server
    finally:
        server.stop()


def test_service_names() -> None:
    assert srv_service("etcd-client", "", "https") == "etcd-client-ssl"
    assert srv_service("etcd-client", "", "http") == "etcd-client"
    assert srv_service("etcd-client", "prod", "https") == "etcd-client-ssl-prod"
    assert srv_service("etcd-client", "prod", "http") == "etcd-client-prod"


def test_parse_answer_with_compressed_names() -> None:
    question = dns_name("_etcd-client._tcp.example.test") + struct.pack(">HH", 33, 1)
    # the target "m1" + a pointer to "example.test" inside the question (offset 12 + 13 + 5)
    target = b"\x02m1\xc0\x1e"
    rdata = struct.pack(">HHH", 10, 5, 2379) + target
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 33, 1, 60, len(rdata)) + rdata
    msg = struct.pack(">HHHHHH", 7, 0x8180, 1, 1, 0, 0) + question + answer
    rcode, records, truncated = parse_srv_answer(msg, 7)
    assert (rcode, truncated) == (0, False)
    assert [(r.priority, r.weight, r.port, r.target) for r in records] == [(10, 5, 2379, "m1.example.test.")]
    with pytest.raises(ValueError):
        parse_srv_answer(msg, 8)  # an answer to another query


def test_order_by_priority_then_weight() -> None:
    recs = [
        SrvRecord(20, 0, 3, "c."),
        SrvRecord(10, 0, 1, "a."),
        SrvRecord(10, 0, 2, "b."),
        SrvRecord(5, 9, 4, "d."),
    ]
    ordered = _order(recs)
    assert ordered[0].target == "d."
    assert {r.target for r in ordered[1:3]} == {"a.", "b."}
    assert ordered[3].target == "c."


@needs_etcd
def test_discovered_endpoints_are_used(etcd_server: EtcdServer, dns: FakeDns) -> None:
    port = etcd_server.port
    dns.zone["_etcd-client._tcp.example.test"] = [(0, 0, port, "localhost.")]
    env = {"PETCD_DNS_SERVER": dns.address}
    r = run(OURS, ["--discovery-srv", "example.test", "put", "srv-key", "v"], env=env)
    assert (r.rc, r.out, r.err) == (0, b"OK\n", b"")
    assert dns.questions == ["_etcd-client-ssl._tcp.example.test", "_etcd-client._tcp.example.test"]
    # -d is the short form; the endpoint is printed as discovered (Go keeps the target's final dot)
    r = run(OURS, ["-d", "example.test", "endpoint", "health", "-w", "json"], env=env)
    assert r.rc == 0, r.err
    assert f'"endpoint":"http://localhost.:{port}","health":true'.encode() in r.out
    # the discovered endpoints replace --endpoints
    r = run(OURS, ["-d", "example.test", "--endpoints", "127.0.0.1:1", "get", "srv-key"], env=env)
    assert (r.rc, r.out) == (0, b"srv-key\nv\n")


@needs_etcd
def test_service_name_and_insecure_discovery(etcd_server: EtcdServer, dns: FakeDns) -> None:
    port = etcd_server.port
    dns.zone["_etcd-client-prod._tcp.example.test"] = [(0, 0, port, "localhost.")]
    env = {"PETCD_DNS_SERVER": dns.address}
    args = ["-d", "example.test", "--discovery-srv-name", "prod", "--dial-timeout", "1s"]
    r = run(OURS, [*args, "get", "nothing"], env=env)
    assert (r.rc, r.err) == (0, b"")
    assert dns.questions[-2:] == [
        "_etcd-client-ssl-prod._tcp.example.test",
        "_etcd-client-prod._tcp.example.test",
    ]
    # secure discovery drops http endpoints, and with none left --endpoints is used
    r = run(
        OURS,
        [*args, "--insecure-discovery=false", "--endpoints", etcd_server.endpoint, "get", "nothing"],
        env=env,
    )
    assert r.rc == 0
    assert r.err == f'ignoring discovered insecure endpoint "http://localhost.:{port}"\n'.encode()


def test_lookup_failure(dns: FakeDns) -> None:
    r = run(OURS, ["-d", "nowhere.test", "get", "k"], env={"PETCD_DNS_SERVER": dns.address})
    assert r.rc == 1
    assert r.out == b""
    assert (
        r.err
        == (
            f"Error: dns lookup errors: lookup _etcd-client-ssl._tcp.nowhere.test on {dns.address}: "
            f"no such host and lookup _etcd-client._tcp.nowhere.test on {dns.address}: no such host\n"
        ).encode()
    )
