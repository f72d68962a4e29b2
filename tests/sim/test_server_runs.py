"""Whole server-mode simulation runs: determinism, the seed corpus, regression seeds, a CLI run,
and an injected server bug that the checkers must catch."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from petcd.mvcc import watchable_store
from petcd.mvcc.watcher import Event
from petcd.server.node import Node
from petcd.sim.__main__ import main
from petcd.sim.eventlog import EventLog
from petcd.sim.server_cluster import ServerSimulation
from petcd.sim.sweep import run_server_seed, sweep_server

HERE = Path(__file__).resolve().parent
CORPUS = range(100, 160)
CORPUS_TICKS = 200
CORPUS_OVERRIDES: dict[str, str] = {}
# The knobs added after a seed was recorded, off: it replays as it did then.
BEFORE_CHURN = {"member_rate": "0", "compact_rate": "0", "keepalive_rate": "0"}
# The server's fix for a member's revision going back after a power cut, turned off (a75832f synced
# the backend per applied batch; now the WAL names the commit durably before entries are applied).
NO_DURABLE_COMMIT = {"durable_commit_before_apply": "false", **BEFORE_CHURN}


def logged(seed: int, **kw: object) -> list[str]:
    return ServerSimulation(seed, log=EventLog(enabled=True, verbose=True), **kw).run().log  # type: ignore[arg-type]


def test_same_seed_gives_the_same_event_log() -> None:
    a = logged(5, overrides=CORPUS_OVERRIDES)
    b = logged(5, overrides=CORPUS_OVERRIDES)
    assert a == b
    assert len(a) > 100
    assert any("invoke" in line for line in a) and any("return" in line for line in a)
    assert logged(6) != a


def test_same_seed_gives_the_same_event_log_across_processes() -> None:
    def run(hash_seed: str) -> bytes:
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-m", "petcd.sim", "--server", "--seed", "33"],
            env=env,
            capture_output=True,
            check=True,
        )
        return out.stdout

    a = run("1")
    b = run("2")
    assert a == b
    assert b"power cut" in a or b"partition" in a


def test_seed_corpus_passes() -> None:
    results = list(sweep_server(CORPUS, ticks=CORPUS_TICKS, jobs=2, overrides=CORPUS_OVERRIDES))
    failures = [r.summary() for r in results if not r.ok]
    assert not failures, "\n".join(failures)
    # The corpus exercises what the checkers look at.
    total = {k: sum(r.stats[k] for r in results) for k in results[0].stats}
    assert total["crashes"] > 20 and total["partitions"] > 20
    assert total["acked"] > 1000 and total["reads"] > 500 and total["unknown"] > 50
    assert total["watch_events"] > 1000 and total["leases"] > 20 and total["snapshots_sent"] > 5
    # membership changes (added, promoted, removed, re-added), compaction, keep-alives
    assert total["member_changes"] > 20 and total["members_left"] > 10 and total["re_adds"] > 3
    assert total["compactions"] > 100 and total["watches_compacted"] > 5 and total["keepalives"] > 100


def _regression_seeds() -> Iterator[object]:
    for raw in (HERE / "regression_server_seeds.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        opts = dict(tok.split("=", 1) for tok in line[1:])
        ticks = int(opts.pop("ticks", CORPUS_TICKS))
        nodes = int(opts["nodes"]) if "nodes" in opts else None
        opts.pop("nodes", None)
        xfail = opts.pop("xfail", None)
        params = (int(line[0]), ticks, nodes, opts)
        if xfail:
            yield pytest.param(*params, marks=pytest.mark.xfail(reason=xfail, strict=False))
        else:
            yield params


@pytest.mark.parametrize(("seed", "ticks", "nodes", "overrides"), list(_regression_seeds()))
def test_regression_seed(seed: int, ticks: int, nodes: int | None, overrides: dict[str, str]) -> None:
    result = run_server_seed(seed, ticks=ticks, nodes=nodes, overrides=overrides)
    assert result.ok, result.summary()


def test_revision_back_is_caught_without_the_servers_backend_sync() -> None:
    # Seed 17 found the bug; with the fix off seed 24 fails again, naming member and revisions.
    assert run_server_seed(24, overrides=BEFORE_CHURN).ok
    result = run_server_seed(24, log=True, overrides=NO_DURABLE_COMMIT)
    assert result.violations[0].kind == "revision-back"
    assert "m4 at revision 25 after 26" in result.violations[0].detail


def test_cli_server_seed_and_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--server", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "server seed 3: ok" in out and "final: revision" in out
    assert main(["--server", "--seeds", "3-4"]) == 0
    assert "2 seeds, 2 passed" in capsys.readouterr().out
    off = [x for name, value in NO_DURABLE_COMMIT.items() for x in ("--set", f"{name}={value}")]
    assert main(["--server", "--seed", "24", *off]) == 1
    with pytest.raises(SystemExit):
        main(["--server", "--seed", "1", "--set", "no_such_knob=1"])


def test_stale_linearizable_reads_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # An injected server bug: linearizable reads served locally, without a ReadIndex.
    def local_read(self: Node, req: object) -> int:
        resp = self.range(req)  # type: ignore[arg-type]
        rid: int = self._ids.next()
        self._track(rid)
        self._immediate.append((rid, resp))
        return rid

    monkeypatch.setattr(Node, "linearizable_range", local_read)
    kinds = [
        r.violations[0].kind if r.violations else "ok"
        for r in (
            run_server_seed(s, overrides={**CORPUS_OVERRIDES, "read_rate": "0.6"}) for s in range(100, 110)
        )
    ]
    assert kinds.count("linearizability") >= 5, kinds


def test_watch_bugs_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # Injected watch bugs: prev_kv never filled in; unsynced watchers never catching up.
    def first_kinds() -> list[str]:
        return [
            r.violations[0].kind if r.violations else "ok"
            for r in (
                run_server_seed(s, overrides={**CORPUS_OVERRIDES, "watch_rate": "0.05"})
                for s in range(100, 105)
            )
        ]

    assert first_kinds() == ["ok"] * 5
    with monkeypatch.context() as m:
        m.setattr(watchable_store._PrevKvCache, "with_prev", lambda self, ev: Event(ev.type, ev.kv, None))
        assert first_kinds() == ["watch"] * 5
    monkeypatch.setattr(watchable_store.WatchableStore, "sync_watchers", lambda self: 0)
    assert first_kinds() == ["watch"] * 5


# Membership changes, compaction and lease keep-alives, all frequent.
CHURN = {"member_rate": "0.05", "compact_rate": "0.1", "keepalive_rate": "0.2"}


def test_churn_runs_are_deterministic() -> None:
    a = logged(1004, overrides=CHURN)
    assert a == logged(1004, overrides=CHURN)
    text = "\n".join(a)
    assert "new member" in text and "leaves the cluster" in text and "invoke compact" in text


def test_compaction_cancelling_without_its_revision_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # An injected watch bug: a watcher behind the compaction is cancelled without compact_revision.
    def cancel(self: watchable_store.WatchableStore, w: object, compact: int, current: int) -> None:
        original(self, w, 0, current)

    original = watchable_store.WatchableStore._cancel_compacted
    monkeypatch.setattr(watchable_store.WatchableStore, "_cancel_compacted", cancel)
    results = [run_server_seed(s, overrides={**CHURN, "watch_rate": "0.05"}) for s in range(1000, 1006)]
    kinds = [r.violations[0].kind if r.violations else "ok" for r in results]
    assert kinds.count("watch") >= 3, kinds
