"""Cluster membership: the members, kept in the backend and changed only by applying raft entries.

etcd keeps the member list in its backend (bucket `members`: hex member ID -> the member as JSON,
`members_removed`: hex ID -> "removed") and the cluster version in bucket `cluster`
(`clusterVersion`). petcd does the same, so that a backend snapshot sent to a lagging follower
carries the membership with it, and a restart needs nothing else.

Changes come from two kinds of entries, applied on every member in log order:

* raft configuration changes (ConfChange entries) whose `context` is the member as JSON plus an
  optional `requestID` (the proposer's request, to resolve it) and `isPromote`: add (voter or
  learner), remove, update of the peer URLs, promotion of a learner;
* `ClusterMemberAttrSetRequest` (a member publishing its name and client URLs after start) and
  `ClusterVersionSetRequest` (normal entries).

A change is validated twice, as etcd does: before it is proposed (with the strict-reconfig
checks, which need the leader's view of who is alive) and when it is applied (only what every
member can decide from the applied state: ID exists, peer URLs unique, at most one learner...). A
change refused at apply time is a no-op on every member.

`MemberStore` holds the applied list in memory (`members`) and writes every change into the
backend write transaction it is given: the apply transaction of the batch the entry is in, so
membership and `consistent_index` always agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from petcd.backend import Backend, ReadTxn, WriteTxn
from petcd.ids import id_str, parse_id
from petcd.server.errors import (
    MemberExists,
    MemberIdRemoved,
    MemberNotFound,
    MemberNotLearner,
    PeerUrlExists,
    TooManyLearners,
)

MEMBERS_BUCKET = "members"
MEMBERS_REMOVED_BUCKET = "members_removed"
CLUSTER_BUCKET = "cluster"
CLUSTER_VERSION_KEY = b"clusterVersion"
MAX_LEARNERS = 1


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    peer_urls: tuple[str, ...] = ()
    name: str = ""
    client_urls: tuple[str, ...] = ()
    is_learner: bool = False

    @property
    def is_started(self) -> bool:
        """etcd's IsStarted: the member has published its name."""
        return bool(self.name)

    def to_json(self) -> dict[str, object]:
        d: dict[str, object] = {"id": self.id, "peerURLs": list(self.peer_urls)}
        if self.is_learner:
            d["isLearner"] = True
        if self.name:
            d["name"] = self.name
        if self.client_urls:
            d["clientURLs"] = list(self.client_urls)
        return d

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Member:
        def strs(v: object) -> tuple[str, ...]:
            return tuple(str(x) for x in v) if isinstance(v, list) else ()

        raw_id = d.get("id", 0)
        return cls(
            id=int(raw_id) if isinstance(raw_id, int | str) else 0,
            peer_urls=strs(d.get("peerURLs")),
            name=str(d.get("name", "")),
            client_urls=strs(d.get("clientURLs")),
            is_learner=bool(d.get("isLearner", False)),
        )

    @classmethod
    def decode(cls, data: bytes) -> Member:
        return cls.from_json(json.loads(data))


@dataclass(frozen=True, slots=True)
class ConfChangeContext:
    """What a membership ConfChange carries in its context."""

    member: Member
    request_id: int = 0
    is_promote: bool = False

    def encode(self) -> bytes:
        d = self.member.to_json()
        if self.request_id:
            d["requestID"] = self.request_id
        if self.is_promote:
            d["isPromote"] = True
        return json.dumps(d, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> ConfChangeContext:
        d = json.loads(data) if data else {}
        rid = d.get("requestID", 0)
        return cls(
            Member.from_json(d), int(rid) if isinstance(rid, int) else 0, bool(d.get("isPromote", False))
        )


@dataclass(slots=True)
class MemberStore:
    """The applied member list (see the module docstring)."""

    members: dict[int, Member] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)
    cluster_version: str = ""

    # -- loading --------------------------------------------------------------------------------

    @classmethod
    def load(cls, backend: Backend) -> MemberStore:
        with backend.read_txn() as txn:
            return cls.read(txn)

    @classmethod
    def read(cls, txn: ReadTxn) -> MemberStore:
        store = cls()
        for _, v in txn.range(MEMBERS_BUCKET, b"\x00", None):
            m = Member.decode(v)
            store.members[m.id] = m
        for k, _ in txn.range(MEMBERS_REMOVED_BUCKET, b"\x00", None):
            store.removed.add(parse_id(k.decode()))
        ver = txn.get(CLUSTER_BUCKET, CLUSTER_VERSION_KEY)
        store.cluster_version = ver.decode() if ver else ""
        return store

    # -- queries --------------------------------------------------------------------------------

    def sorted_members(self) -> list[Member]:
        return [self.members[i] for i in sorted(self.members)]

    def voting_members(self) -> list[Member]:
        return [m for m in self.sorted_members() if not m.is_learner]

    def get(self, member_id: int) -> Member | None:
        return self.members.get(member_id)

    def peer_urls_in_use(self, except_id: int = 0) -> set[str]:
        return {u for m in self.members.values() if m.id != except_id for u in m.peer_urls}

    # -- validation (etcd's ValidateConfigurationChange) -----------------------------------------

    def validate_add(self, m: Member) -> None:
        if m.id in self.removed:
            raise MemberIdRemoved()
        if m.id in self.members:
            raise MemberExists()
        if self.peer_urls_in_use() & set(m.peer_urls):
            raise PeerUrlExists()
        if m.is_learner and sum(1 for x in self.members.values() if x.is_learner) + 1 > MAX_LEARNERS:
            raise TooManyLearners()

    def validate_promote(self, member_id: int) -> None:
        if member_id in self.removed:
            raise MemberIdRemoved()
        m = self.members.get(member_id)
        if m is None:
            raise MemberNotFound()
        if not m.is_learner:
            raise MemberNotLearner()

    def validate_remove(self, member_id: int) -> None:
        if member_id in self.removed:
            raise MemberIdRemoved()
        if member_id not in self.members:
            raise MemberNotFound()

    def validate_update(self, m: Member) -> None:
        if m.id in self.removed:
            raise MemberIdRemoved()
        if m.id not in self.members:
            raise MemberNotFound()
        if self.peer_urls_in_use(except_id=m.id) & set(m.peer_urls):
            raise PeerUrlExists()

    # -- strict reconfiguration checks (etcd's IsReadyTo*) ---------------------------------------

    def ready_to_add_voter(self) -> bool:
        voters = self.voting_members()
        n_members = len(voters) + 1
        n_started = sum(1 for m in voters if m.is_started)
        if n_started == 1 and n_members == 2:
            return True
        return n_started >= n_members // 2 + 1

    def ready_to_remove_voter(self, member_id: int) -> bool:
        others = [m for m in self.voting_members() if m.id != member_id]
        return sum(1 for m in others if m.is_started) >= len(others) // 2 + 1

    def ready_to_promote(self) -> bool:
        """Whether promoting a learner keeps a started quorum (etcd's IsReadyToPromoteMember).

        The learner counts toward the future quorum and as started: it is running, since it is
        asking to be promoted.
        """
        voters = self.voting_members()
        n_members = len(voters) + 1
        n_started = sum(1 for m in voters if m.is_started) + 1
        return n_started >= n_members // 2 + 1

    # -- applied changes (inside the apply transaction) ------------------------------------------

    def _save(self, txn: WriteTxn | None, m: Member) -> None:
        self.members[m.id] = m
        if txn is not None:
            txn.put(MEMBERS_BUCKET, id_str(m.id).encode(), m.encode())

    def add(self, txn: WriteTxn | None, m: Member) -> None:
        self._save(txn, m)

    def remove(self, txn: WriteTxn | None, member_id: int) -> None:
        self.members.pop(member_id, None)
        self.removed.add(member_id)
        if txn is not None:
            key = id_str(member_id).encode()
            txn.delete(MEMBERS_BUCKET, key)
            txn.put(MEMBERS_REMOVED_BUCKET, key, b"removed")

    def update_raft_attrs(self, txn: WriteTxn | None, member_id: int, peer_urls: Iterable[str]) -> None:
        m = self.members.get(member_id)
        if m is not None:
            self._save(txn, replace(m, peer_urls=tuple(peer_urls)))

    def promote(self, txn: WriteTxn | None, member_id: int) -> None:
        m = self.members.get(member_id)
        if m is not None:
            self._save(txn, replace(m, is_learner=False))

    def set_attrs(self, txn: WriteTxn | None, member_id: int, name: str, client_urls: Iterable[str]) -> bool:
        """A member's published name and client URLs; False if the member is unknown (removed)."""
        m = self.members.get(member_id)
        if m is None:
            return False
        self._save(txn, replace(m, name=name, client_urls=tuple(client_urls)))
        return True

    def set_cluster_version(self, txn: WriteTxn | None, version: str) -> None:
        self.cluster_version = version
        if txn is not None:
            txn.put(CLUSTER_BUCKET, CLUSTER_VERSION_KEY, version.encode())
