"""scripts/bench_memory.py: its /proc parsing, how it finds a member's processes, and a tiny run."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from types import ModuleType

import pytest
from script_loader import load_script


@pytest.fixture(scope="module")
def bm() -> ModuleType:
    return load_script("bench_memory")


def test_kb_fields_are_bytes_and_only_the_asked_ones(bm: ModuleType) -> None:
    text = (
        "Name:\tetcd\nVmRSS:\t  2048 kB\nRssAnon:\t 1024 kB\nRssFile:\t 1000 kB\nRssShmem:\t24 kB\n"
        "Threads: 9\n"
    )
    assert bm.parse_kb_fields(text, bm.STATUS_FIELDS) == {
        "rss": 2048 * 1024,
        "anon": 1024 * 1024,
        "file": 1000 * 1024,
        "shmem": 24 * 1024,
    }


def test_own_memory_adds_up(bm: ModuleType) -> None:
    m = bm.process_memory(os.getpid())
    assert m.procs == 1 and m.rss > 0
    assert m.anon + m.file + m.shmem == m.rss
    assert 0 < m.pss <= m.rss
    total = m + m
    assert total.rss == 2 * m.rss and total.procs == 2
    top = bm.mappings(os.getpid(), 3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]


def test_member_pids_finds_the_leader_first_and_its_session(bm: ModuleType, tmp_path: Path) -> None:
    flag = f"--data-dir={tmp_path / 'x.etcd'}"
    # sh's $0 is the flag, so it is in the leader's command line; the sleeps are its children
    leader = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait", flag], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        pids = bm.member_pids(tmp_path / "x.etcd")
        while len(pids) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = bm.member_pids(tmp_path / "x.etcd")
        assert pids[0] == leader.pid
        assert len(pids) == 3
        assert all(bm.session_of(p) == leader.pid for p in pids)
    finally:
        os.killpg(leader.pid, 9)
        leader.wait(timeout=10)
    with pytest.raises(RuntimeError):
        bm.member_pids(tmp_path / "nobody.etcd")


def test_dir_size_counts_apparent_and_allocated(bm: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 5000)
    (tmp_path / "sub").mkdir()
    with (tmp_path / "sub" / "sparse").open("wb") as f:
        f.truncate(1 << 20)
    apparent, allocated = bm.dir_size(tmp_path)
    assert apparent == 5000 + (1 << 20)
    assert 5000 <= allocated < (1 << 20)


def test_a_tiny_run_against_petcd(bm: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    argv = ["--keys=300", "--no-etcd", "--frontends=0", "--procs=1", "--clients=10", "--conns=2"]
    rc = bm.main([*argv, "--mappings=2", "--load-timeout=120", f"--json={out}"])
    text = capsys.readouterr().out
    assert rc == 0, text
    (res,) = json.loads(out.read_text())["results"]
    assert res["label"] == "petcd" and not res["error"]
    assert list(res["memory"]) == ["idle", "loaded", "ranged"]
    for m in res["memory"].values():
        assert m["procs"] == 1 and m["rss"] == m["anon"] + m["file"] + m["shmem"] > 0
    assert res["range_keys"] == 300
    assert res["load_rps"] > 0
    assert res["data_dir"][0] >= res["db_bytes"] > 0
    assert len(res["top_mappings"]) == 1
    assert "| petcd | ranged | 1 |" in text
    assert "300 keys in" in text


def test_report_ratios_and_notes(bm: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    mib = 1 << 20
    etcd = bm.Result("etcd 3.4.23", watch=800_000.0)
    etcd.memory["loaded"] = bm.Memory(rss=500 * mib, anon=450 * mib, file=50 * mib, pss=500 * mib, procs=1)
    ours = bm.Result("petcd", watch=100_000.0, range_note="linearizable range failed (x), serializable: ok")
    ours.memory["loaded"] = bm.Memory(rss=600 * mib, anon=60 * mib, file=540 * mib, pss=550 * mib, procs=1)
    ours.db_bytes = 543 * mib
    args = argparse.Namespace(
        no_memory=False, watch=True, watch_puts=100, keys=10, val_size=1, loader="put", clients=1, conns=1
    )
    bm.print_report([etcd, ours], args)
    out = capsys.readouterr().out
    assert "| petcd | loaded | 1 | 600 | 60 | 540 | 0 | 550 | 1.20 | 1.10 |" in out
    assert "| 543 | 100,000 | 0.12 |" in out
    assert "petcd: linearizable range failed (x), serializable: ok" in out
