"""Servers for the benchmark's end-to-end tests: one petcd member and one reference etcd per module."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import one_member

from petcd.benchmark.cli import main


@pytest.fixture(scope="module")
def petcd_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with one_member("petcd", tmp_path_factory.mktemp("petcd")) as address:
        yield address


@pytest.fixture(scope="module")
def etcd_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path("/usr/bin/etcd").exists():
        pytest.skip("the reference etcd (/usr/bin/etcd) is not installed")
    with one_member("reference", tmp_path_factory.mktemp("etcd")) as address:
        yield address


RunJson = Callable[..., dict[str, Any]]
RunText = Callable[..., str]


@pytest.fixture
def run_json(capsys: pytest.CaptureFixture[str]) -> RunJson:
    """``run_json(endpoint, *argv)``: petcd-benchmark with ``-w json``; its one JSON document."""

    def run(endpoint: str, *argv: str) -> dict[str, Any]:
        capsys.readouterr()
        rc = main(["--endpoints", endpoint, "-w", "json", *argv])
        captured = capsys.readouterr()
        out = captured.out
        assert rc == 0, (out, captured.err)
        doc: dict[str, Any] = json.loads(out)
        return doc

    return run


@pytest.fixture
def run_text(capsys: pytest.CaptureFixture[str]) -> RunText:
    """``run_text(endpoint, *argv)``: petcd-benchmark's text report."""

    def run(endpoint: str, *argv: str) -> str:
        capsys.readouterr()
        rc = main(["--endpoints", endpoint, *argv])
        out = capsys.readouterr().out
        assert rc == 0, out
        return out

    return run
