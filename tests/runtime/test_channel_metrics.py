"""The member-wide /metrics over the local channel (petcd.runtime.channel, petcd.gateway.metrics),
in-process over a real single-member Node: two front-ends on one core's channel, each with its
own watch hub; their reports and scrapes reach the core, whose rendering counts every watcher of
the member, and forgets a front-end whose connection closed."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from exposition import parse_exposition
from single_member import SingleMember
from test_frontend import ReadOnlyView

from petcd.gateway.metrics import EtcdMetrics, Family, FrontendMetrics
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.runtime.channel import CoreChannelServer, CoreClient, RemoteBug, runtime_state
from petcd.runtime.frontend_facade import FrontendFacade

WAIT_S = 5.0


class Frontend:
    def __init__(self, client: CoreClient, facade: FrontendFacade) -> None:
        self.client = client
        self.facade = facade

        async def fetch(families: list[Family]) -> bytes:
            body: bytes = await client.call("metrics", families)
            return body

        self.metrics = FrontendMetrics(fetch)
        self.metrics.add_sampled("etcd_debugging_mvcc_", facade.watch_hub.store.gauges)

    async def scrape(self) -> dict[str, float]:
        return parse_exposition((await self.metrics.exposition()).decode())


@asynccontextmanager
async def core_with_frontends(
    member: SingleMember, n: int, *, wired: bool = True
) -> AsyncIterator[tuple[EtcdMetrics, list[Frontend]]]:
    core = member.facade()
    channel = CoreChannelServer(core, runtime_state(core))
    metrics = EtcdMetrics()
    metrics.add_sampled("etcd_debugging_mvcc_", member.node.watchable.gauges)
    metrics.has_leader.set(1.0)  # as the core's updater sets it (petcd.app)
    if wired:  # as petcd.app wires a member with front-ends
        channel.render_metrics = metrics.render
        metrics.add_contributions(channel.reports)
    frontends: list[Frontend] = []
    with tempfile.TemporaryDirectory(prefix="petcd-t-") as d:
        path = str(Path(d) / "core.sock")
        await channel.listen(path)
        try:
            for _ in range(n):
                client = await CoreClient.connect(path, timeout_s=5.0)
                facade = FrontendFacade(client, ReadOnlyView(member.backend), request_timeout_s=5.0)
                frontends.append(Frontend(client, facade))
            yield metrics, frontends
        finally:
            for fe in frontends:
                await fe.facade.watch_hub.stop()
                await fe.client.close()
            await channel.close()
            await core.close()


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


def test_every_front_ends_watchers_are_counted_by_the_core(member: SingleMember) -> None:
    async def go() -> None:
        async with core_with_frontends(member, 2) as (core, (fe1, fe2)):
            streams = [fe1.facade.open_watch_stream() for _ in range(2)] + [fe2.facade.open_watch_stream()]
            for i, s in enumerate(streams):
                for j in range(i + 1):
                    await s.create(pb.WatchCreateRequest(key=b"k%d-%d" % (i, j)))
            # fe2's own figures travel with its scrape; fe1's with its report
            fe1.client.send_report(fe1.metrics.contribution())

            async def counted() -> bool:
                s = await fe2.scrape()
                streams, watchers = (
                    "etcd_debugging_mvcc_watch_stream_total",
                    "etcd_debugging_mvcc_watcher_total",
                )
                return (s[streams], s[watchers]) == (3, 1 + 2 + 3)

            await _until(counted, "the member's 3 streams and 6 watchers")
            # the core's own /metrics (its metrics URLs) counts them too, from the newest reports
            core_view = parse_exposition(core.render().decode())
            assert core_view["etcd_debugging_mvcc_watcher_total"] == 6
            assert core_view["etcd_server_has_leader"] == 1.0  # the core's, not a front-end's 0
            assert (await fe1.scrape())["etcd_server_has_leader"] == 1.0

            # a front-end whose connection closed is no longer counted
            for s in streams[:2]:
                await s.close()
            await fe1.client.close()

            async def forgotten() -> bool:
                return parse_exposition(core.render().decode())["etcd_debugging_mvcc_watcher_total"] == 3

            await _until(forgotten, "fe1's watchers forgotten")
            await streams[2].close()
            assert (await fe2.scrape())["etcd_debugging_mvcc_watcher_total"] == 0

    asyncio.run(go())


def test_a_core_without_the_wiring_refuses_the_call(member: SingleMember) -> None:
    async def go() -> None:
        async with core_with_frontends(member, 1, wired=False) as (_, (fe,)):
            with pytest.raises(RemoteBug):
                await fe.client.call("metrics", [])

    asyncio.run(go())
