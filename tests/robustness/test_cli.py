"""`python -m petcd.robustness`: durations, fault lists, sweeps, and the exit status."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from petcd.robustness import __main__ as cli
from petcd.robustness.faults import ALL_FAULTS, BASIC_FAULTS, applicable, schedule
from petcd.robustness.runner import RunConfig, RunResult


def test_durations() -> None:
    assert cli.parse_duration("60s") == 60.0
    assert cli.parse_duration("2m") == 120.0
    assert cli.parse_duration("500ms") == 0.5
    assert cli.parse_duration("7") == 7.0
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_duration("soon")


def _fake_run(fail_seeds: set[int], seen: list[RunConfig]) -> Callable[[RunConfig], RunResult]:
    def run(cfg: RunConfig) -> RunResult:
        seen.append(cfg)
        bad = [f"linearizability at t=0: seed {cfg.seed}"] if cfg.seed in fail_seeds else []
        return RunResult(cfg, cfg.faults, [], bad, [], 10, 5, 1.0, 0.0)

    return run


def test_exit_status_is_one_on_any_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[RunConfig] = []
    monkeypatch.setattr(cli, "run", _fake_run(set(), seen))
    assert cli.main(["--seed", "3", "--faults", "none", "--etcd-binary", "/bin/true"]) == 0
    assert [(c.seed, c.faults) for c in seen] == [(3, [])]
    seen.clear()
    monkeypatch.setattr(cli, "run", _fake_run({5}, seen))
    argv = ["--seed", "4", "--profile", "all", "--faults", "kill-leader,pause", "--each-fault"]
    assert cli.main([*argv, "--etcd-binary", "/bin/true"]) == 1
    assert [(c.seed, c.profile, c.faults) for c in seen] == [
        (4, "etcd", ["kill-leader"]),
        (5, "kubernetes", ["kill-leader"]),
        (6, "etcd", ["pause"]),
        (7, "kubernetes", ["pause"]),
    ]


def test_schedule_is_drawn_by_the_seed_and_keeps_what_applies() -> None:
    a = schedule(list(ALL_FAULTS), 7, 3, True, 3)
    assert a == schedule(list(ALL_FAULTS), 7, 3, True, 3)
    assert len(a) == 3 and all(f in ALL_FAULTS for f in a)
    ref = schedule(list(ALL_FAULTS), 7, 3, False, 20)
    assert not any(f.startswith("failpoint:") for f in ref)  # the reference binary has no gofail
    one = schedule(list(BASIC_FAULTS), 7, 1, True, 20)
    assert not set(one) & {"partition", "delay", "kill-follower", "member-replace"}
    assert not applicable("failpoint:raftAfterApplySnap", 1, True)
