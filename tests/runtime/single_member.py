"""A real single-member Node on its node thread, for the runtime's facade tests (no sockets)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from petcd.backend.memory import MemoryBackend
from petcd.codec.wal import Metadata
from petcd.fs.os_fs import OsFileSystem
from petcd.ids import cluster_id
from petcd.raft.types import Message
from petcd.runtime.facade import RuntimeFacade
from petcd.runtime.log_store import WalLogStore
from petcd.runtime.node_loop import NodeLoop, SystemClock
from petcd.server.node import Node, NodeConfig, initial_members


class NoPeers:
    def send(self, messages: Sequence[Message]) -> None:
        pass

    def send_snapshot(self, message: Message, db: Iterable[bytes]) -> None:
        pass


class SingleMember:
    """Started by the constructor (it waits for leadership); `stop()` ends it."""

    def __init__(self, tmp: Path) -> None:
        members = initial_members({"a": ["http://127.0.0.1:1"]}, "t")
        config = NodeConfig(
            member_id=members[0].id,
            cluster_id=cluster_id([members[0].id]),
            name="a",
            peer_urls=("http://127.0.0.1:1",),
            client_urls=("http://127.0.0.1:2",),
            initial_members=members,
            tick_s=0.01,
        )
        self.store = WalLogStore.open_or_create(
            OsFileSystem(),
            str(tmp / "wal"),
            str(tmp / "snap"),
            Metadata(node_id=config.member_id, cluster_id=config.cluster_id),
        )
        self.backend = MemoryBackend()
        self.loop = NodeLoop(config.tick_s)
        self.node = Node(config, self.store, self.backend, NoPeers(), SystemClock(), self.loop)
        self.loop.start(self.node)
        deadline = time.monotonic() + 10
        while not (self.node.leader_id and self.node.recovered) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.node.leader_id

    def facade(self) -> RuntimeFacade:
        return RuntimeFacade(self.loop, self.node, server_version="3.6.0", request_timeout_s=5.0)

    def stop(self) -> None:
        self.loop.stop()
        self.store.close()
