"""scripts/bench_compare.py: its figures and ratios, and that its servers always stop."""

from __future__ import annotations

import socket
from pathlib import Path
from types import ModuleType

import pytest
from script_loader import load_script


@pytest.fixture(scope="module")
def bc() -> ModuleType:
    return load_script("bench_compare")


def _doc(results: dict[str, dict[str, object]], cpu_s: float = 1.0) -> dict[str, object]:
    return {"results": results, "load_cpu_s": cpu_s}


def test_figures_ratios_and_generator_cores(bc: ModuleType) -> None:
    put, put1, watch = (w for w in bc.workloads(100, 10, 5, 2) if w.name in ("put-1000", "put-1", "watch"))
    res = {"count": 10, "rps": 2000.0, "total_s": 4.0, "percentiles_s": {"50": 0.002}}
    assert bc.figure(put, _doc({"put": res})) == 2000.0
    assert bc.figure(put1, _doc({"put": res})) == 0.002
    events = {"count": 0, "rps": 5e4, "total_s": 2.0, "percentiles_s": {}}
    assert bc.figure(watch, _doc({"create": res, "events": events})) == 5e4
    assert bc.figure(put, None) is None
    assert bc.figure(put, _doc({"put": {**res, "count": 0}})) is None
    assert bc.generator_cores(_doc({"put": res}, cpu_s=2.0)) == 0.5
    assert bc.ratio(1.0, 4.0) == "0.25"
    assert bc.ratio(None, 4.0) == "-"
    assert bc.fmt(put1, 0.00123) == "1.23 ms"
    assert bc.fmt(put, 18800.4) == "18,800/s"


def test_variants_add_the_frontend_flag(bc: ModuleType) -> None:
    etcd, petcd, fe2 = bc.variants([0, 2], ["--x"])
    assert etcd.kind == "etcd" and etcd.args == ()
    assert petcd.args == ("--x",)
    assert fe2.args == ("--x", "--frontend-processes=2") and fe2.frontends == 2


def _serving(endpoint: str) -> bool:
    host, _, port = endpoint.rpartition(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def _processes_using(path: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(path).encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.mark.skipif(not Path("/usr/bin/etcd").exists(), reason="needs the reference etcd")
def test_cluster_members_are_stopped_even_on_error(bc: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), bc.cluster("etcd", 1, tmp_path, []) as endpoints:
        assert _serving(endpoints[0])
        assert _processes_using(tmp_path)
        raise RuntimeError("boom")
    assert not _serving(endpoints[0])
    assert _processes_using(tmp_path) == []
