"""watch, watch-latency, lease-keepalive, k8s, mvcc put and the null server, end to end."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import free_ports

from petcd.benchmark.cli import main
from petcd.benchmark.null_server import serve
from petcd.cli.etcdctl.kv import prefix_end


def test_prefix_end_is_etcds() -> None:
    assert prefix_end(b"abc") == b"abd"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\x00"


@pytest.mark.parametrize("transport", ["h2", "grpc"])
def test_watch_delivers_every_event(petcd_endpoint: str, run_json: Any, transport: str) -> None:
    doc = run_json(
        petcd_endpoint,
        f"--transport={transport}",
        "--clients=2",
        "--conns=2",
        "watch",
        "--streams=3",
        "--watch-per-stream=4",
        "--put-total=10",
        "--key-space-size=3",
        "--sequential-keys",
    )
    create, events = doc["results"]["create"], doc["results"]["events"]
    assert create["count"] == 12
    assert events["kind"] == "rate"
    assert events["errors"] == {}
    # watcher g watches key g % 3; every put lands on one of the three keys, seen by its 4 watchers
    assert events["events"] == 40
    assert events["rps"] > 0


def test_watch_with_two_processes_and_prefixes(petcd_endpoint: str, run_text: Any) -> None:
    out = run_text(
        petcd_endpoint,
        "--clients=2",
        "--procs=2",
        "watch",
        "--streams=2",
        "--watch-per-stream=2",
        "--put-total=5",
        "--prefix",
    )
    assert out.startswith("Watch creation summary:\n\nSummary:")
    assert "Watch events received summary:\n Requests/sec:\t" in out
    assert "missing events" not in out


@pytest.mark.parametrize("transport", ["h2", "grpc"])
def test_watch_latency(petcd_endpoint: str, run_json: Any, transport: str) -> None:
    doc = run_json(
        petcd_endpoint,
        f"--transport={transport}",
        "--clients=3",
        "watch-latency",
        "--total=5",
        "--put-rate=200",
    )
    lat = doc["results"]["watch-latency"]
    assert lat["count"] == 15  # every watcher saw every put
    assert 0 < lat["fastest_s"] <= lat["slowest_s"] < 10


@pytest.mark.parametrize("transport", ["h2", "grpc"])
def test_lease_keepalive(petcd_endpoint: str, run_json: Any, transport: str) -> None:
    doc = run_json(petcd_endpoint, f"--transport={transport}", "--clients=2", "lease-keepalive", "--total=10")
    assert doc["results"]["lease-keepalive"]["count"] == 10
    assert doc["results"]["lease-keepalive"]["errors"] == {}


@pytest.mark.parametrize("transport", ["h2", "grpc"])
def test_k8s_mix(petcd_endpoint: str, run_json: Any, transport: str) -> None:
    doc = run_json(
        petcd_endpoint,
        f"--transport={transport}",
        "--clients=4",
        "k8s",
        "--total=60",
        "--objects=30",
        "--namespaces=3",
        "--page-size=4",
        "--watchers=2",
    )
    res = doc["results"]
    assert res["update"]["count"] + res["get"]["count"] + res["list"]["count"] == 60
    assert all(res[k]["errors"] == {} for k in ("update", "get", "list"))
    # both informers see every successful update
    assert res["events"]["events"] == 2 * res["update"]["count"]


def test_mvcc_put_in_process(tmp_path: Path, run_json: Any) -> None:
    doc = run_json(
        "unused:1", "mvcc", "--batch-limit=7", "put", "--total=50", "--txn-ops=2", f"--data-dir={tmp_path}"
    )
    assert doc["results"]["mvcc put"]["count"] == 50
    assert (tmp_path / "member" / "snap" / "db").exists()


def test_sample_adds_the_per_second_table(petcd_endpoint: str, run_text: Any) -> None:
    out = run_text(petcd_endpoint, "--sample", "range", "k", "--total=5")
    assert "\nSample in one second (unix latency throughput):\nUNIX-SECOND," in out


def test_precise_prints_full_precision(petcd_endpoint: str, run_text: Any) -> None:
    out = run_text(petcd_endpoint, "--precise", "range", "k", "--total=5")
    total_line = next(line for line in out.splitlines() if line.startswith("  Total:"))
    assert len(total_line.split("\t")[1].split(" ")[0].split(".")[1]) > 4


@contextlib.contextmanager
def _null_server() -> Iterator[str]:
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    done = threading.Event()

    def run() -> None:
        try:
            loop.run_until_complete(serve(address, stop))
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not done.is_set() and time.monotonic() < deadline:  # until it listens (or has failed)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        time.sleep(0.05)
    try:
        yield address
    finally:
        loop.call_soon_threadsafe(stop.set)
        done.wait(10)
        thread.join(10)
        loop.close()


def test_null_server_answers_put_range_and_txn(run_json: Any) -> None:
    with _null_server() as address:
        for argv in (["put", "--total=20"], ["range", "k", "--total=20"], ["txn-put", "--total=20"]):
            doc = run_json(address, "--clients=4", *argv)
            (res,) = doc["results"].values()
            assert res["count"] == 20
            assert res["errors"] == {}


def test_unreachable_endpoint_fails_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    (port,) = free_ports(1)
    rc = main(["--endpoints", f"127.0.0.1:{port}", "--dial-timeout=0.5s", "put", "--total=1"])
    assert rc == 1
    assert "benchmark failed" in capsys.readouterr().err


def test_bad_flags_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["range", "k", "--consistency=x"]) == 2
    assert main(["put", "--key-space-size=0"]) == 2
    assert "key-space-size" in capsys.readouterr().err
