"""The parts of the simulator that need no raft: clock and event queue, network model, KV."""

from __future__ import annotations

import random

import pytest

from petcd.sim.kv import Command, KVStateMachine
from petcd.sim.network import Network
from petcd.sim.scheduler import UNITS_PER_TICK, Scheduler, format_time


def test_events_run_in_time_order_then_in_scheduling_order() -> None:
    s = Scheduler()
    seen: list[str] = []
    s.at(5, seen.append, "c")
    s.at(1, seen.append, "a")
    s.at(5, seen.append, "d")
    s.at(3, seen.append, "b")
    s.run_until(100)
    assert seen == ["a", "b", "c", "d"]
    assert s.now == 100


def test_events_scheduled_while_running_and_end_bound() -> None:
    s = Scheduler()
    seen: list[int] = []

    def tick(n: int) -> None:
        seen.append(s.now)
        if n:
            s.after(10, tick, n - 1)

    s.at(0, tick, 5)
    s.run_until(25)
    assert seen == [0, 10, 20]
    assert s.next_time() == 30
    s.run_until(1000)
    assert seen == [0, 10, 20, 30, 40, 50]


def test_cannot_schedule_in_the_past_and_stop_ends_early() -> None:
    s = Scheduler()
    s.run_until(10)
    with pytest.raises(ValueError):
        s.at(5, print)
    count = [0]

    def bump() -> None:
        count[0] += 1
        s.after(1, bump)

    s.after(0, bump)
    s.run_until(1000, stop=lambda: count[0] >= 7)
    assert count[0] == 7
    assert s.now == 16


def test_format_time() -> None:
    assert format_time(3 * UNITS_PER_TICK + 4) == "00003.4"


def test_network_delivers_within_delay_bounds_without_faults() -> None:
    net = Network(random.Random(1), delay_min=2, delay_max=7)
    for now in range(100):
        plan = net.plan(now, 1, 2)
        assert plan.dropped is None
        assert len(plan.deliveries) == 1
        assert now + 2 <= plan.deliveries[0] <= now + 7


def test_network_loss_and_duplication_rates() -> None:
    net = Network(random.Random(2), loss=0.3, dup=0.2, delay_min=1, delay_max=3)
    plans = [net.plan(0, 1, 2) for _ in range(5000)]
    lost = sum(1 for p in plans if p.dropped == "loss")
    dups = sum(1 for p in plans if len(p.deliveries) == 2)
    assert 1300 < lost < 1700
    assert 0.15 * 3500 < dups < 0.25 * 3500


def test_network_reorders_unless_fifo() -> None:
    def order(fifo: bool) -> list[int]:
        net = Network(random.Random(3), delay_min=1, delay_max=50, fifo=fifo)
        times = [net.plan(i, 1, 2).deliveries[0] for i in range(200)]
        return times

    loose = order(False)
    assert loose != sorted(loose)
    strict = order(True)
    assert strict == sorted(strict)


def test_symmetric_and_asymmetric_partitions_and_heal() -> None:
    net = Network(random.Random(4))
    net.partition([[1, 2], [3]])
    assert net.plan(0, 1, 3).dropped == "partition"
    assert net.plan(0, 3, 2).dropped == "partition"
    assert net.plan(0, 1, 2).dropped is None
    net.heal()
    net.isolate(2, [1, 2, 3], inbound=True, outbound=False)  # 2 is deaf, not mute
    assert net.plan(0, 1, 2).dropped == "partition"
    assert net.plan(0, 2, 1).dropped is None
    net.heal()
    net.cut_link(3, 1)
    assert net.blocked(3, 1)
    assert not net.blocked(1, 3)
    assert net.describe_cut() == "3->1"
    net.heal()
    assert net.describe_cut() == "none"
    assert all(net.plan(0, a, b).dropped is None for a in (1, 2, 3) for b in (1, 2, 3) if a != b)


def test_network_is_deterministic_per_seed() -> None:
    def run(seed: int) -> list[object]:
        net = Network(random.Random(seed), loss=0.1, dup=0.1, delay_min=1, delay_max=20)
        return [(p.dropped, tuple(p.deliveries)) for p in (net.plan(i, 1, 2) for i in range(300))]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_kv_applies_once_per_id_and_round_trips() -> None:
    kv = KVStateMachine()
    assert kv.apply(2, Command("w1", "a"))
    assert kv.apply(3, Command("w2", "a"))
    assert not kv.apply(4, Command("w1", "a"))  # a retried proposal is a no-op
    assert kv.get("a") == "w2"
    assert kv.applied == 4
    blob = kv.encode()
    back = KVStateMachine.decode(blob)
    assert back == kv
    assert back.encode() == blob
    assert KVStateMachine.decode(b"") == KVStateMachine()
    assert Command.decode(Command("w9", "k3").encode()) == Command("w9", "k3")


def test_knobs_are_drawn_per_seed_and_can_be_overridden() -> None:
    from petcd.sim.knobs import Knobs
    from petcd.sim.sweep import parse_overrides

    a = Knobs.draw(random.Random(1))
    assert a == Knobs.draw(random.Random(1))
    assert {Knobs.draw(random.Random(s)).nodes for s in range(50)} == {3, 5}
    assert Knobs.draw(random.Random(1), nodes=5).nodes == 5
    b = a.with_overrides(parse_overrides(["crash_rate=0.5", "pre_vote=true", "keys = 7"]))
    assert (b.crash_rate, b.pre_vote, b.keys) == (0.5, True, 7)
    assert b.with_overrides({"pre_vote": "0"}).pre_vote is False
    with pytest.raises(ValueError):
        a.with_overrides({"no_such_knob": "1"})
    with pytest.raises(ValueError):
        a.with_overrides({"pre_vote": "maybe"})
    with pytest.raises(ValueError):
        parse_overrides(["crash_rate"])
