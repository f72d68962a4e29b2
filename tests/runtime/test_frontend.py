"""Front-ends (petcd.runtime.channel, petcd.runtime.frontend_facade) over a real single-member Node.

The whole facade contract (tests/api/facade_contract.py) runs against the in-process RuntimeFacade and
against a FrontendFacade that reaches the same core over the local channel (a unix socket), reading
from a read-only view of the core's backend, as a front-end process reads LMDB (the multi-process
LMDB case is in tests/e2e/test_frontends.py). Plus what the front-end adds: the shared read-index
round, batching on the channel, and failing calls once the core is gone.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from petcd.backend.memory import MemoryBackend
from petcd.errors import EtcdError
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.runtime.channel import CoreChannelServer, CoreClient, runtime_state
from petcd.runtime.fast_channel import FastChannelServer
from petcd.runtime.frontend_facade import FrontendFacade

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "api"))
from facade_contract import CHECKS, Check
from single_member import SingleMember


class ReadOnlyView:
    """The core's backend as a front-end sees it: reads only (the Backend port's read side)."""

    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend
        self.read_txn = backend.read_txn
        self.snapshot = backend.snapshot

    @property
    def read_only(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


@asynccontextmanager
async def frontend(
    member: SingleMember, fast_path: bool = True
) -> AsyncIterator[tuple[FrontendFacade, CoreChannelServer]]:
    core = member.facade()
    channel = CoreChannelServer(core, runtime_state(core))
    # unix socket paths are short (108 bytes): not under pytest's deep tmp_path
    with tempfile.TemporaryDirectory(prefix="petcd-t-") as d:
        path = str(Path(d) / "core.sock")
        await channel.listen(path)
        fast = FastChannelServer(member.loop, path + ".fast") if fast_path else None
        client = await CoreClient.connect(path, timeout_s=5.0, fast_path=path + ".fast" if fast else None)
        try:
            yield FrontendFacade(client, ReadOnlyView(member.backend), request_timeout_s=5.0), channel
        finally:
            await client.close()
            await channel.close()
            if fast is not None:
                fast.close()
            await core.close()


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_runtime_facade_keeps_the_contract(member: SingleMember, check: Check) -> None:
    async def go() -> None:
        core = member.facade()
        try:
            await check(core)
        finally:
            await core.close()

    asyncio.run(go())


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "channel-only"])
@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_frontend_facade_keeps_the_contract(member: SingleMember, check: Check, fast_path: bool) -> None:
    async def go() -> None:
        async with frontend(member, fast_path) as (fe, _):
            await check(fe)

    asyncio.run(go())


def test_concurrent_writes_and_reads_through_the_channel(member: SingleMember) -> None:
    async def go() -> None:
        async with frontend(member) as (fe, _):
            puts = await asyncio.gather(
                *(fe.put(pb.PutRequest(key=b"k%03d" % i, value=b"v%d" % i)) for i in range(200))
            )
            revs = sorted(p.header.revision for p in puts)
            assert revs == list(range(revs[0], revs[0] + 200))
            # every linearizable read issued after a write completed sees it
            reads = await asyncio.gather(*(fe.range(pb.RangeRequest(key=b"k%03d" % i)) for i in range(200)))
            assert [r.kvs[0].value for r in reads] == [b"v%d" % i for i in range(200)]
            assert all(r.header.revision >= revs[-1] for r in reads)
            wide = await fe.range(pb.RangeRequest(key=b"k", range_end=b"l", serializable=True, limit=5))
            assert wide.count == 200 and len(wide.kvs) == 5 and wide.more

    asyncio.run(go())


def test_waiting_linearizable_reads_share_read_index_rounds(member: SingleMember) -> None:
    async def go() -> None:
        async with frontend(member) as (fe, _):
            await fe.put(pb.PutRequest(key=b"a", value=b"1"))
            rounds = 0
            call = fe.client.call

            async def counting(method: str, *args: Any) -> Any:
                nonlocal rounds
                rounds += method == "read_index"
                return await call(method, *args)

            fe.client.call = counting  # type: ignore[method-assign]
            got = await asyncio.gather(*(fe.range(pb.RangeRequest(key=b"a")) for _ in range(100)))
            assert all(r.kvs[0].value == b"1" for r in got)
            # the first round carries the reads of one loop iteration; at most one more follows
            assert 1 <= rounds <= 2

    asyncio.run(go())


def test_a_read_after_a_write_from_another_front_end_sees_it(member: SingleMember) -> None:
    async def go() -> None:
        async with frontend(member) as (fe1, _), frontend(member) as (fe2, _):
            for i in range(20):
                w = await fe1.put(pb.PutRequest(key=b"x", value=b"%d" % i))
                r = await fe2.range(pb.RangeRequest(key=b"x"))
                assert r.kvs[0].value == b"%d" % i and r.header.revision >= w.header.revision

    asyncio.run(go())


def test_calls_fail_once_the_core_is_gone(member: SingleMember) -> None:
    async def go() -> None:
        async with frontend(member) as (fe, channel):
            await channel.close()
            await asyncio.wait_for(fe.client.closed.wait(), 5)
            with pytest.raises(EtcdError):
                await fe.put(pb.PutRequest(key=b"a", value=b"1"))
            with pytest.raises(EtcdError):
                await fe.range(pb.RangeRequest(key=b"a"))

    asyncio.run(go())


class OddError(EtcdError):
    message = "etcdserver: odd"

    def __init__(self) -> None:  # no message argument: unpickling would fail
        super().__init__()


def test_errors_cross_the_channel_by_message() -> None:
    from petcd.runtime.channel import RemoteBug, as_error
    from petcd.server.errors import NotLeader

    assert str(as_error(OddError())) == "etcdserver: odd"
    nl = as_error(NotLeader(7))
    assert isinstance(nl, NotLeader) and nl.leader == 7
    assert isinstance(as_error(ValueError("x")), RemoteBug)
