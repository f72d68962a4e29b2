"""Snapshots of a raft node's state for the application (etcd's status.go).

`BasicStatus` is cheap (no copies of the progress map) and is what a server polls often;
`Status` adds deep copies of the leader's per-follower progress and of the active membership
configuration, so the caller may keep it without seeing later changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from petcd.raft.types import NONE, HardState, SoftState, StateType

if TYPE_CHECKING:
    from petcd.raft.raft import Raft
    from petcd.raft.tracker import Progress, TrackerConfig


@dataclass(slots=True)
class BasicStatus:
    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    lead_transferee: int = NONE

    @property
    def term(self) -> int:
        return self.hard_state.term

    @property
    def vote(self) -> int:
        return self.hard_state.vote

    @property
    def commit(self) -> int:
        return self.hard_state.commit

    @property
    def lead(self) -> int:
        return self.soft_state.lead


@dataclass(slots=True)
class Status:
    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    lead_transferee: int
    config: TrackerConfig
    # Filled only on the leader: the replication progress of every member, by ID.
    progress: dict[int, Progress] = field(default_factory=dict)

    @property
    def term(self) -> int:
        return self.hard_state.term

    @property
    def vote(self) -> int:
        return self.hard_state.vote

    @property
    def commit(self) -> int:
        return self.hard_state.commit

    @property
    def lead(self) -> int:
        return self.soft_state.lead

    def basic(self) -> BasicStatus:
        return BasicStatus(self.id, self.hard_state, self.soft_state, self.applied, self.lead_transferee)

    def to_json(self) -> str:
        """The JSON etcd's `Status.MarshalJSON` writes (IDs in hex, as strings)."""
        progress = ",".join(
            f'"{pid:x}":{{"match":{pr.match},"next":{pr.next},"state":"{pr.state}"}}'
            for pid, pr in sorted(self.progress.items())
        )
        return (
            f'{{"id":"{self.id:x}","term":{self.term},"vote":"{self.vote:x}","commit":{self.commit},'
            f'"lead":"{self.lead:x}","raftState":"{self.soft_state.raft_state!s}","applied":{self.applied},'
            f'"progress":{{{progress}}},"leadtransferee":"{self.lead_transferee:x}"}}'
        )

    def __str__(self) -> str:
        return self.to_json()


def get_basic_status(r: Raft) -> BasicStatus:
    return BasicStatus(
        id=r.id,
        hard_state=r.hard_state(),
        soft_state=r.soft_state(),
        applied=r.raft_log.applied,
        lead_transferee=r.lead_transferee,
    )


def get_status(r: Raft) -> Status:
    basic = get_basic_status(r)
    progress: dict[int, Progress] = {}
    if basic.soft_state.raft_state == StateType.LEADER:
        progress = {pid: pr.clone() for pid, pr in r.trk.progress.items()}
    return Status(
        id=basic.id,
        hard_state=basic.hard_state,
        soft_state=basic.soft_state,
        applied=basic.applied,
        lead_transferee=basic.lead_transferee,
        config=r.trk.config.clone(),
        progress=progress,
    )
