"""Configuration of one raft node, with etcd's defaults and validation."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from petcd.raft.errors import ConfigInvalid
from petcd.raft.types import ReadOnlyOption

if TYPE_CHECKING:
    from petcd.raft.storage import Storage

NO_LIMIT = 2**63 - 1
"""Use as a byte limit to mean "no limit"."""


class Logger(Protocol):
    """What raft logs through; a `logging.Logger` fits."""

    def debug(self, msg: str, *args: object) -> None: ...
    def info(self, msg: str, *args: object) -> None: ...
    def warning(self, msg: str, *args: object) -> None: ...
    def error(self, msg: str, *args: object) -> None: ...


@dataclass(slots=True)
class Config:
    id: int
    storage: Storage
    election_tick: int = 10
    heartbeat_tick: int = 1
    # The last applied index, for restarts: entries up to it are not handed out again.
    applied: int = 0
    max_size_per_msg: int = 1024 * 1024
    max_committed_size_per_ready: int = 0  # 0: same as max_size_per_msg
    max_uncommitted_entries_size: int = 0  # 0: no limit
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 0  # 0: no limit
    check_quorum: bool = False
    pre_vote: bool = False
    read_only_option: ReadOnlyOption = ReadOnlyOption.SAFE
    disable_proposal_forwarding: bool = False
    rand: random.Random = field(default_factory=lambda: random.Random(0))
    logger: Logger = field(default_factory=lambda: logging.getLogger("petcd.raft"))

    def validate(self) -> None:
        """Check the config and fill in derived defaults (as etcd's Config.validate)."""
        if self.id == 0:
            raise ConfigInvalid("cannot use none as id")
        if self.heartbeat_tick <= 0:
            raise ConfigInvalid("heartbeat tick must be greater than 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ConfigInvalid("election tick must be greater than heartbeat tick")
        if self.storage is None:
            raise ConfigInvalid("storage cannot be nil")
        if self.max_uncommitted_entries_size == 0:
            self.max_uncommitted_entries_size = NO_LIMIT
        if self.max_committed_size_per_ready == 0:
            self.max_committed_size_per_ready = self.max_size_per_msg
        if self.max_inflight_msgs <= 0:
            raise ConfigInvalid("max inflight messages must be greater than 0")
        if self.max_inflight_bytes == 0:
            self.max_inflight_bytes = NO_LIMIT
        elif self.max_inflight_bytes < self.max_size_per_msg:
            raise ConfigInvalid("max inflight bytes must be >= max message size")
        if self.read_only_option == ReadOnlyOption.LEASE_BASED and not self.check_quorum:
            raise ConfigInvalid("CheckQuorum must be enabled when ReadOnlyOption is ReadOnlyLeaseBased")
