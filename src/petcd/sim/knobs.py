"""The randomized parameters of one simulation run, drawn from its seed.

Each seed picks its own cluster size, fault rates, network delays and raft options, so a sweep
over seeds covers many combinations; `--nodes` (and the tests) may pin some of them. Rates are
per tick; delays are in scheduler units (a tick is `UNITS_PER_TICK` units).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True, slots=True)
class Knobs:
    nodes: int = 3
    election_tick: int = 10
    heartbeat_tick: int = 1
    pre_vote: bool = False
    check_quorum: bool = False
    max_size_per_msg: int = 1024 * 1024
    max_inflight_msgs: int = 256
    max_committed_size_per_ready: int = 0
    max_uncommitted_entries_size: int = 0
    # network
    loss: float = 0.0
    dup: float = 0.0
    delay_min: int = 1
    delay_max: int = 10
    fifo: bool = False
    report_unreachable: bool = False
    # faults
    partition_rate: float = 0.0
    partition_ticks_max: int = 60
    crash_rate: float = 0.0
    down_ticks_max: int = 60
    # disk and state machine
    disk_delay_max: int = 0
    # As etcd's server: a leader sends its messages before its own disk write completes.
    leader_sends_early: bool = False
    kv_sync_prob: float = 1.0
    replay_from_snapshot: bool = False
    compact_every: int = 50
    compact_keep: int = 5
    # clients
    propose_rate: float = 0.3
    read_rate: float = 0.1
    conf_change_rate: float = 0.0
    transfer_rate: float = 0.0
    # Node clocks run at different rates: a node's tick lasts UNITS_PER_TICK +- up to this.
    clock_skew: int = 0
    # Hold a MsgSnap while the node is writing a Ready with committed entries (see cluster.py);
    # off, raft itself must refuse such a snapshot.
    hold_snapshots: bool = False
    # ReadOnlyOption.LEASE_BASED reads (when check_quorum is on). A lease is only as good as its
    # clock assumptions: a read violation with this on (and clock_skew) needs judging by hand.
    lease_reads: bool = False
    keys: int = 4

    @classmethod
    def draw(cls, rand: random.Random, nodes: int | None = None) -> Knobs:
        """Pick every knob from `rand` (always the same number of draws, whatever is pinned)."""
        k = cls(
            nodes=rand.choice((3, 3, 5)),
            election_tick=rand.choice((10, 10, 15)),
            heartbeat_tick=rand.choice((1, 1, 2, 3)),
            pre_vote=rand.random() < 0.5,
            check_quorum=rand.random() < 0.5,
            max_size_per_msg=rand.choice((1, 100, 400, 1024 * 1024)),
            max_inflight_msgs=rand.choice((1, 2, 8, 256)),
            max_committed_size_per_ready=rand.choice((0, 0, 1, 200)),
            loss=rand.choice((0.0, 0.01, 0.05, 0.1, 0.2)),
            dup=rand.choice((0.0, 0.0, 0.02, 0.1)),
            delay_min=1,
            delay_max=rand.choice((2, 5, 10, 20, 40)),
            fifo=rand.random() < 0.3,
            report_unreachable=rand.random() < 0.5,
            partition_rate=rand.choice((0.0, 0.005, 0.01, 0.02)),
            partition_ticks_max=rand.choice((20, 60, 150)),
            crash_rate=rand.choice((0.0, 0.003, 0.008, 0.015)),
            down_ticks_max=rand.choice((10, 50, 150)),
            disk_delay_max=rand.choice((0, 2, 8, 20)),
            kv_sync_prob=rand.choice((0.1, 0.5, 1.0)),
            replay_from_snapshot=rand.random() < 0.5,
            compact_every=rand.choice((8, 20, 60)),
            compact_keep=rand.choice((0, 2, 10)),
            propose_rate=rand.choice((0.1, 0.3, 0.8)),
            read_rate=rand.choice((0.0, 0.1, 0.3)),
            conf_change_rate=rand.choice((0.0, 0.0, 0.01, 0.03)),
            keys=rand.choice((1, 4, 16)),
            leader_sends_early=rand.random() < 0.5,
            max_uncommitted_entries_size=rand.choice((0, 0, 0, 300)),
            transfer_rate=rand.choice((0.0, 0.0, 0.005, 0.02)),
            clock_skew=rand.choice((0, 0, 1, 2)),
            hold_snapshots=rand.random() < 0.3,
            lease_reads=rand.random() < 0.25,
        )
        if k.heartbeat_tick >= k.election_tick:
            k = replace(k, heartbeat_tick=1)
        if nodes is not None:
            k = replace(k, nodes=nodes)
        return k

    def with_overrides(self, overrides: dict[str, str]) -> Knobs:
        """These knobs with some replaced, from `name=value` text (as on the command line)."""
        values: dict[str, object] = {}
        for name, text in overrides.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown knob {name!r}")
            current = getattr(self, name)
            if isinstance(current, bool):
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(f"knob {name} wants true or false, not {text!r}")
                values[name] = text.lower() in ("true", "1")
            elif isinstance(current, int):
                values[name] = int(text)
            else:
                values[name] = float(text)
        return replace(self, **values)  # type: ignore[arg-type]

    def describe(self) -> str:
        return " ".join(f"{name}={value}" for name, value in asdict(self).items())
