"""petcd's own etcdctl against the API: over the JSON gateway (its default transport) and over gRPC."""

from __future__ import annotations

import subprocess
import sys

import pytest
from api_served import Served


def run(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "petcd.cli.etcdctl", "--endpoints", endpoint, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("transport", ["gateway", "grpc"])
def test_put_get_and_errors(served: Served, transport: str) -> None:
    endpoint = f"127.0.0.1:{served.http_port if transport == 'gateway' else served.port}"
    assert run(endpoint, "put", "mykey", "this is awesome").stdout == "OK\n"
    assert run(endpoint, "get", "mykey").stdout == "mykey\nthis is awesome\n"
    bad = run(endpoint, "put", "", "x")
    assert bad.returncode != 0 and bad.stderr.rstrip().endswith("Error: etcdserver: key is not provided")
    members = run(endpoint, "member", "list").stdout
    assert (
        members == "8e9e05c52164694d, started, default, http://localhost:2380, http://localhost:2379, false\n"
    )
