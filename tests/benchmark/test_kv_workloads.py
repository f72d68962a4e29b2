"""put, range, txn-put and txn-mixed run end to end against a petcd member (and the reference etcd)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from servers import free_ports

from petcd.benchmark.cli import main
from petcd.benchmark.kv import human_bytes, varint_key
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc


def _keys(endpoint: str, key: bytes, end: bytes) -> list[bytes]:
    with grpc.insecure_channel(endpoint) as ch:
        resp = rpc_pb2_grpc.KVStub(ch).Range(pb.RangeRequest(key=key, range_end=end, keys_only=True))
    return [kv.key for kv in resp.kvs]


def test_varint_keys_are_gos_putvarint() -> None:
    assert varint_key(0, 8) == bytes(8)
    assert varint_key(1, 4) == b"\x02\x00\x00\x00"
    assert varint_key(64, 4) == b"\x80\x01\x00\x00"
    with pytest.raises(ValueError, match="too small"):
        varint_key(1 << 20, 2)


def test_put_text_report(petcd_endpoint: str, run_text: Any) -> None:
    out = run_text(petcd_endpoint, "--clients", "4", "put", "--total", "40", "--key-space-size", "7")
    assert "\nSummary:\n  Total:\t" in out
    assert "Requests/sec:\t" in out
    assert "\nResponse time histogram:\n" in out
    assert "\nLatency distribution:\n" in out
    assert "Error distribution" not in out


def test_put_sequential_keys_cover_the_key_space(petcd_endpoint: str, run_json: Any) -> None:
    doc = run_json(
        petcd_endpoint,
        "--clients=3",
        "--conns=2",
        "put",
        "--total=30",
        "--key-size=3",
        "--key-space-size=10",
        "--sequential-keys",
        "--val-size=16",
    )
    put = doc["results"]["put"]
    assert put["count"] == 30
    assert put["errors"] == {}
    assert put["rps"] > 0
    assert put["fastest_s"] <= put["percentiles_s"]["50"] <= put["slowest_s"]
    # keys 0..9: zigzag varints 0x00..0x12, zero-padded to 3 bytes
    three_byte_keys = [k for k in _keys(petcd_endpoint, bytes(3), b"\x13") if len(k) == 3]
    assert three_byte_keys == [varint_key(n, 3) for n in range(10)]


def test_range_with_two_processes_merges_their_results(petcd_endpoint: str, run_json: Any) -> None:
    doc = run_json(petcd_endpoint, "--clients=4", "--conns=2", "--procs=2", "range", "foo", "--total=40")
    assert doc["procs"] == 2
    assert doc["results"]["range"]["count"] == 40


def test_range_serializable_prints_etcds_preamble(petcd_endpoint: str, run_text: Any) -> None:
    out = run_text(petcd_endpoint, "range", "a", "b", "--consistency", "s", "--total", "10")
    assert out.startswith("bench with serializable range\n\nSummary:")


def test_errors_are_counted_not_fatal(petcd_endpoint: str, run_json: Any) -> None:
    doc = run_json(petcd_endpoint, "txn-put", "--total=5", "--txn-ops=2", "--key-space-size=2")
    assert doc["results"]["txn-put"]["count"] == 5
    # a txn that puts the same key twice is refused by etcd and petcd alike: counted, not fatal
    doc = run_json(petcd_endpoint, "txn-put", "--total=4", "--txn-ops=2", "--key-space-size=3")
    assert doc["results"]["txn-put"]["count"] == 4  # keys (2i, 2i+1) mod 3 never repeat within a txn
    # --key-space-size below --txn-ops is refused before any request
    assert main(["--endpoints", petcd_endpoint, "txn-put", "--total=5", "--txn-ops=2"]) == 1


def test_txn_mixed_reports_reads_and_writes(petcd_endpoint: str, run_json: Any, run_text: Any) -> None:
    out = run_text(petcd_endpoint, "--clients=2", "txn-mixed", "--total=40", "--key-space-size=5")
    assert "bench with linearizable range\nTotal Read Ops: " in out
    assert "\nDetails:\nSummary:" in out
    assert "Total Write Ops: " in out
    doc = run_json(petcd_endpoint, "txn-mixed", "--total=20", "--rw-ratio=0", "--consistency=s")
    assert doc["results"]["write"]["count"] == 20
    assert doc["results"]["read"]["count"] == 0


@pytest.mark.parametrize("transport", ["h2", "grpc"])
def test_put_and_range_against_the_reference_etcd(etcd_endpoint: str, run_json: Any, transport: str) -> None:
    via = f"--transport={transport}"
    doc = run_json(etcd_endpoint, via, "--clients=4", "put", "--total=20", "--val-size=256")
    assert doc["results"]["put"]["count"] == 20
    doc = run_json(etcd_endpoint, via, "--clients=4", "range", "x", "--total=20", "--consistency=s")
    assert doc["results"]["range"]["count"] == 20
    # a server's error comes through either transport with etcd's text, counted per message
    doc = run_json(etcd_endpoint, via, "range", "", "--total=3")
    assert doc["results"]["range"]["count"] == 0
    assert doc["results"]["range"]["errors"] == {
        "rpc error: code = InvalidArgument desc = etcdserver: key is not provided": 3
    }


def test_put_over_grpcio(petcd_endpoint: str, run_json: Any) -> None:
    doc = run_json(petcd_endpoint, "--transport=grpc", "--clients=3", "put", "--total=9")
    assert doc["transport"] == "grpc"
    assert doc["results"]["put"]["count"] == 9


def test_put_compacts_and_checks_hashkv(petcd_endpoint: str, run_json: Any) -> None:
    doc = run_json(
        petcd_endpoint,
        "put",
        "--total=100",
        "--rate=100",
        "--compact-interval=50ms",
        "--compact-index-delta=5",
        "--check-hashkv",
    )
    assert doc["results"]["put"]["count"] == 100
    (note,) = doc["notes"]
    assert note.startswith("HashKV Summary:\n\tHashKV: ")
    assert f"\tEndpoint: {petcd_endpoint}\n" in note
    with grpc.insecure_channel(petcd_endpoint) as ch, pytest.raises(grpc.RpcError, match="compacted"):
        rpc_pb2_grpc.KVStub(ch).Range(pb.RangeRequest(key=b"x", revision=2))


def test_human_bytes_is_go_humanizes() -> None:
    assert [human_bytes(n) for n in (5, 999, 1000, 4_300_000, 82_854_982)] == [
        "5 B",
        "999 B",
        "1.0 kB",
        "4.3 MB",
        "83 MB",
    ]


def test_target_leader_picks_the_leader(petcd_endpoint: str, run_json: Any) -> None:
    (dead,) = free_ports(1)
    doc = run_json(
        f"127.0.0.1:{dead},{petcd_endpoint}",
        "--target-leader",
        "--dial-timeout=1s",
        "range",
        "k",
        "--total=3",
    )
    assert doc["endpoints"] == [petcd_endpoint]
    assert doc["results"]["range"]["count"] == 3
