"""The tiny key-value state machine every simulated node applies committed entries to.

A command is a put: `{"id": <proposal id>, "k": <key>}`; the value written is the proposal id
itself, so a read names the exact write it observes. Clients may propose the same command more
than once (a retry after a timeout); only its first application takes effect, so `seen` holds
the ids applied so far. `applied` is the raft index of the last applied entry.

`encode` gives the whole state as bytes (the data of raft snapshots and of the state machine's
own durable copy); it is canonical (sorted JSON), so equal states encode equally.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    key: str

    def encode(self) -> bytes:
        return json.dumps({"id": self.id, "k": self.key}, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Command:
        obj = json.loads(data)
        return cls(str(obj["id"]), str(obj["k"]))


@dataclass(slots=True)
class KVStateMachine:
    data: dict[str, str] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    # Invariant: applied is the raft index of the last entry applied (or of the snapshot restored).
    applied: int = 0

    def apply(self, index: int, cmd: Command) -> bool:
        """Apply `cmd` at raft `index`; False when it is a duplicate (a retried proposal)."""
        self.applied = index
        if cmd.id in self.seen:
            return False
        self.seen.add(cmd.id)
        self.data[cmd.key] = cmd.id
        return True

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def encode(self) -> bytes:
        obj = {"applied": self.applied, "data": self.data, "seen": sorted(self.seen)}
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, blob: bytes) -> KVStateMachine:
        if not blob:
            return cls()
        obj = json.loads(blob)
        return cls(
            data={str(k): str(v) for k, v in obj["data"].items()},
            seen={str(s) for s in obj["seen"]},
            applied=int(obj["applied"]),
        )
