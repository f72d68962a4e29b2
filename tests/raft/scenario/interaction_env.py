"""An interaction environment that drives raft RawNodes step by step, for scenario scripts.

Modelled on etcd's rafttest.InteractionEnv. The env owns N nodes (ids 1..N), each a RawNode over a
MemoryStorage, and one in-flight message queue. Nothing happens on its own: a script says which node
ticks, campaigns or proposes, when a node handles its Ready (persist, queue the outgoing messages,
apply committed entries, advance) and when messages are delivered or dropped. Every raft log line
(captured per node through the config's logger) and every Ready is written to the trace, which the
script compares with its expected output.

Partitions are a property of the env's network: `cut a b` and `isolate n` make messages between
the nodes be dropped at delivery (shown as `dropped: ...`), `heal` restores the network.

The applied state machine is an "appender": each node's history is a list of snapshots, one per
applied entry, whose data is the concatenation of all applied normal entries. Storage.snapshot()
returns the newest one, so a leader sends a follower everything it has applied.

Directives (ids are node ids, 1-based; "..." means any number):

    add-nodes N [voters=(..)] [learners=(..)] [index=I] [content=S] [prevote=B] [checkquorum=B]
              [read-only=safe|lease-based] [inflight=N] [max-size-per-msg=N]
              [max-uncommitted-size=N] [max-committed-size-per-ready=N]
              [disable-proposal-forwarding=B] [election-tick=N]
                                  N new nodes; with voters/learners/index they start from a
                                  snapshot at index I (term 1), else empty. election 3, heartbeat 1.
    campaign ID | propose ID DATA | read-index ID CTX
    propose-conf-change ID [v1=B] [transition=auto|implicit|explicit]   (input: "v2 l3 r4 u5")
    transfer-leadership from=ID to=ID
    tick ID N | tick-heartbeat ID | tick-election ID | set-randomized-election-timeout ID timeout=N
    process-ready ID...              handle one Ready per node
    deliver-msgs [type=MsgX] ID... [drop=(ID,..)]   deliver (or drop) queued messages to the nodes
    stabilize [ID...] [log-level=L] Ready and delivery until nothing changes
    cut A B [one-way] | isolate ID | heal [A [B]]      partitions, applied at delivery
    report-unreachable ID PEER | report-snapshot ID PEER status=finish|failure
    compact ID INDEX                 snapshot the applied state at INDEX and compact the log
    snapshot-unavailable ID true|false
    restart ID                       crash and restart from storage (unhandled Ready state is lost)
    log-level debug|info|warn|error|none
    status ID | raft-state | raft-log ID | messages [ID...]
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from petcd.raft import describe
from petcd.raft.config import NO_LIMIT, Config
from petcd.raft.errors import RaftError, RaftPanic, SnapshotTemporarilyUnavailable
from petcd.raft.rawnode import RawNode
from petcd.raft.storage import MemoryStorage
from petcd.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    EntryType,
    Message,
    MessageType,
    ReadOnlyOption,
    Ready,
    Snapshot,
    SnapshotMetadata,
    SnapshotStatus,
)

from .datadriven import CmdArg, ParseError, TestData

_CC_TYPE_BY_LETTER = {
    "v": ConfChangeType.ADD_NODE,
    "l": ConfChangeType.ADD_LEARNER_NODE,
    "r": ConfChangeType.REMOVE_NODE,
    "u": ConfChangeType.UPDATE_NODE,
}
_MSG_TYPE_BY_NAME = {describe.msg_type_name(t): t for t in MessageType}

LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL", "NONE")
DEBUG, INFO, WARN, ERROR, FATAL, NONE_LEVEL = range(6)


class Output:
    """The trace being built for the current directive, with a log level filter.

    At level NONE nothing is written (setup steps stay quiet); errors from directives are
    still reported by the env.
    """

    def __init__(self) -> None:
        self.level = DEBUG  # as etcd's env: everything unless a script says otherwise
        self._stack: list[list[str]] = [[]]

    def reset(self) -> None:
        self._stack = [[]]

    def write(self, text: str) -> None:
        if self.level < NONE_LEVEL:
            self._stack[-1].append(text)

    def log(self, level: int, msg: str, args: tuple[object, ...]) -> None:
        if self.level <= level:
            text = msg % args if args else msg
            self._stack[-1].append(f"{LEVELS[level]} {text.rstrip(chr(10))}\n")

    def push(self) -> None:
        self._stack.append([])

    def pop_indented(self, indent: str = "  ") -> None:
        text = "".join(self._stack.pop())
        self._stack[-1].extend(indent + line + "\n" for line in text.splitlines())

    def text(self) -> str:
        return "".join(self._stack[0])


class CaptureLogger:
    """The raft logger of every node: its lines go into the trace."""

    def __init__(self, out: Output) -> None:
        self._out = out

    def debug(self, msg: str, *args: object) -> None:
        self._out.log(DEBUG, msg, args)

    def info(self, msg: str, *args: object) -> None:
        self._out.log(INFO, msg, args)

    def warning(self, msg: str, *args: object) -> None:
        self._out.log(WARN, msg, args)

    def error(self, msg: str, *args: object) -> None:
        self._out.log(ERROR, msg, args)

    def critical(self, msg: str, *args: object) -> None:
        self._out.log(FATAL, msg, args)


class EnvStorage(MemoryStorage):
    """MemoryStorage whose snapshot() is the node's newest applied state (as etcd's env does)."""

    def __init__(self, history: list[Snapshot]) -> None:
        super().__init__()
        self._history = history
        # Set by `snapshot-unavailable`: snapshot() fails as a storage still building one does.
        self.snapshot_unavailable = False

    def snapshot(self) -> Snapshot:
        if self.snapshot_unavailable:
            raise SnapshotTemporarilyUnavailable()
        return self._history[-1]

    def stored_snapshot(self) -> Snapshot:
        """The snapshot the storage itself holds (what a restarted node starts from)."""
        return MemoryStorage.snapshot(self)


@dataclass
class Node:
    rawnode: RawNode
    storage: EnvStorage
    config: Config
    history: list[Snapshot] = field(default_factory=list)


class EnvError(Exception):
    """An error to print in the trace (a refused operation, not a broken script)."""


def _as_bool(arg: CmdArg) -> bool:
    v = arg.vals[0].lower() if arg.vals else "true"
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ParseError(f"{arg.key}: not a boolean: {v}")


def _as_int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise ParseError(f"not an integer: {s!r}") from None


class InteractionEnv:
    def __init__(self, on_config: Callable[[Config], None] | None = None) -> None:
        self.nodes: list[Node] = []
        self.messages: list[Message] = []
        self.output = Output()
        self.on_config = on_config
        # (from, to) pairs whose messages are dropped at delivery.
        self.cuts: set[tuple[int, int]] = set()

    # ----------------------------------------------------------------------------- dispatch

    def handle(self, d: TestData) -> str:
        self.output.reset()
        handler = self._HANDLERS.get(d.cmd)
        if handler is None:
            raise d.fatal("unknown command")
        try:
            handler(self, d)
        except ParseError as e:
            raise d.fatal(str(e)) from e
        except (EnvError, RaftError) as e:
            return self._with_error(str(e))
        except RaftPanic as e:
            return self._with_error(f"PANIC: {e}")
        text = self.output.text()
        return text if text else "ok"

    def _with_error(self, err: str) -> str:
        text = self.output.text()
        if self.output.level == NONE_LEVEL:
            return err
        return text + err

    # ----------------------------------------------------------------------------- helpers

    def _node(self, node_id: int) -> Node:
        if not 1 <= node_id <= len(self.nodes):
            raise EnvError(f"node {node_id} does not exist")
        return self.nodes[node_id - 1]

    def _ids(self, d: TestData) -> list[int]:
        return [_as_int(k) for k in d.positional()]

    def _first_id(self, d: TestData) -> int:
        ids = self._ids(d)
        if not ids:
            raise d.fatal("expected a node id")
        return ids[0]

    def _can_talk(self, frm: int, to: int) -> bool:
        return (frm, to) not in self.cuts

    # ----------------------------------------------------------------------------- nodes

    def _handle_add_nodes(self, d: TestData) -> None:
        ids = d.positional()
        if not ids:
            raise d.fatal("expected the number of nodes")
        n = _as_int(ids[0])
        voters: list[int] = []
        learners: list[int] = []
        index = 0
        content = b""
        opts: dict[str, object] = {}
        for arg in d.cmd_args[1:]:
            if arg.key == "voters":
                voters.extend(_as_int(v) for v in arg.vals)
            elif arg.key == "learners":
                learners.extend(_as_int(v) for v in arg.vals)
            elif arg.key == "index":
                index = _as_int(arg.vals[0])
            elif arg.key == "content":
                content = arg.vals[0].encode()
            elif arg.key == "prevote":
                opts["pre_vote"] = _as_bool(arg)
            elif arg.key == "checkquorum":
                opts["check_quorum"] = _as_bool(arg)
            elif arg.key == "inflight":
                opts["max_inflight_msgs"] = _as_int(arg.vals[0])
            elif arg.key == "max-size-per-msg":
                opts["max_size_per_msg"] = _as_int(arg.vals[0])
            elif arg.key == "max-uncommitted-size":
                opts["max_uncommitted_entries_size"] = _as_int(arg.vals[0])
            elif arg.key == "max-committed-size-per-ready":
                opts["max_committed_size_per_ready"] = _as_int(arg.vals[0])
            elif arg.key == "disable-proposal-forwarding":
                opts["disable_proposal_forwarding"] = _as_bool(arg)
            elif arg.key == "election-tick":
                opts["election_tick"] = _as_int(arg.vals[0])
            elif arg.key == "read-only":
                val = arg.vals[0]
                if val == "safe":
                    opts["read_only_option"] = ReadOnlyOption.SAFE
                elif val == "lease-based":
                    opts["read_only_option"] = ReadOnlyOption.LEASE_BASED
                else:
                    raise ParseError(f"invalid read-only option {val!r}")
            else:
                raise ParseError(f"unknown argument {arg.key}")
        snap = Snapshot()
        if voters or learners or index or content:
            if index <= 1:
                raise EnvError("index must be specified as > 1 due to bootstrap")
            snap = Snapshot(
                data=content,
                metadata=SnapshotMetadata(
                    conf_state=ConfState(voters=tuple(voters), learners=tuple(learners)),
                    index=index,
                    term=1,
                ),
            )
        self.add_nodes(n, snap, opts)

    def add_nodes(self, n: int, snap: Snapshot, opts: dict[str, object]) -> None:
        for _ in range(n):
            node_id = len(self.nodes) + 1
            history = [snap]
            storage = EnvStorage(history)
            if not snap.is_empty():
                storage.apply_snapshot(snap)
                if storage.first_index() != snap.metadata.index + 1:
                    raise EnvError(
                        f"failed to establish first index {snap.metadata.index + 1}; "
                        f"got {storage.first_index()}"
                    )
            cfg = Config(
                id=node_id,
                storage=storage,
                election_tick=3,
                heartbeat_tick=1,
                applied=snap.metadata.index,
                max_size_per_msg=NO_LIMIT,
                max_inflight_msgs=2**31 - 1,
                rand=random.Random(node_id),
                logger=CaptureLogger(self.output),
            )
            for key, value in opts.items():
                setattr(cfg, key, value)
            if self.on_config is not None:
                self.on_config(cfg)
            rn = RawNode(cfg)
            self.nodes.append(Node(rn, storage, cfg, history))

    # ----------------------------------------------------------------------------- driving

    def _handle_campaign(self, d: TestData) -> None:
        self._node(self._first_id(d)).rawnode.campaign()

    def _handle_propose(self, d: TestData) -> None:
        keys = d.positional()
        if len(keys) < 2:
            raise d.fatal("usage: propose <id> <data>")
        self._node(_as_int(keys[0])).rawnode.propose(keys[1].encode())

    def _handle_propose_conf_change(self, d: TestData) -> None:
        node_id = self._first_id(d)
        v1 = False
        transition = ConfChangeTransition.AUTO
        for arg in d.cmd_args[1:]:
            if arg.key == "v1":
                v1 = _as_bool(arg)
            elif arg.key == "transition":
                transition = {
                    "auto": ConfChangeTransition.AUTO,
                    "implicit": ConfChangeTransition.JOINT_IMPLICIT,
                    "explicit": ConfChangeTransition.JOINT_EXPLICIT,
                }[arg.vals[0]]
            else:
                raise ParseError(f"unknown argument {arg.key}")
        changes = []
        for tok in d.input.split():
            letter, rest = tok[0], tok[1:]
            if letter not in _CC_TYPE_BY_LETTER:
                raise ParseError(f"unknown conf change {tok!r}")
            changes.append(ConfChangeSingle(_CC_TYPE_BY_LETTER[letter], _as_int(rest)))
        if v1 and (len(changes) != 1 or transition != ConfChangeTransition.AUTO):
            raise EnvError("v1 conf change can only have one operation and no transition")
        self._node(node_id).rawnode.propose_conf_change(ConfChange(tuple(changes), transition))

    def _tick(self, node_id: int, n: int) -> None:
        rn = self._node(node_id).rawnode
        for _ in range(n):
            rn.tick()

    def _handle_tick_heartbeat(self, d: TestData) -> None:
        node_id = self._first_id(d)
        self._tick(node_id, self._node(node_id).config.heartbeat_tick)

    def _handle_tick_election(self, d: TestData) -> None:
        node_id = self._first_id(d)
        self._tick(node_id, self._node(node_id).config.election_tick)

    def _handle_tick(self, d: TestData) -> None:
        ids = self._ids(d)
        if len(ids) != 2:
            raise d.fatal("usage: tick <id> <count>")
        self._tick(ids[0], ids[1])

    def _handle_set_randomized_election_timeout(self, d: TestData) -> None:
        node = self._node(self._first_id(d))
        arg = d.arg("timeout")
        if arg is None:
            raise d.fatal("usage: set-randomized-election-timeout <id> timeout=<ticks>")
        raft = node.rawnode.raft
        raft.randomized_election_timeout = _as_int(arg.vals[0])

    def _handle_transfer_leadership(self, d: TestData) -> None:
        frm, to = d.arg("from"), d.arg("to")
        if frm is None or to is None:
            raise d.fatal("usage: transfer-leadership from=<id> to=<id>")
        self._node(_as_int(frm.vals[0])).rawnode.transfer_leader(_as_int(to.vals[0]))

    def _handle_read_index(self, d: TestData) -> None:
        keys = d.positional()
        if len(keys) < 2:
            raise d.fatal("usage: read-index <id> <context>")
        self._node(_as_int(keys[0])).rawnode.read_index(keys[1].encode())

    def _handle_report_unreachable(self, d: TestData) -> None:
        ids = self._ids(d)
        if len(ids) != 2:
            raise d.fatal("usage: report-unreachable <reporter> <unreachable>")
        self._node(ids[0]).rawnode.report_unreachable(ids[1])

    def _handle_report_snapshot(self, d: TestData) -> None:
        ids = self._ids(d)
        arg = d.arg("status")
        if len(ids) != 2 or arg is None:
            raise d.fatal("usage: report-snapshot <leader> <follower> status=finish|failure")
        status = {"finish": SnapshotStatus.FINISH, "failure": SnapshotStatus.FAILURE}[arg.vals[0]]
        self._node(ids[0]).rawnode.report_snapshot(ids[1], status)

    def _handle_compact(self, d: TestData) -> None:
        ids = self._ids(d)
        if len(ids) != 2:
            raise d.fatal("usage: compact <id> <index>")
        node = self._node(ids[0])
        # Record the applied state at the compaction point as the storage's snapshot (as a
        # server does before it compacts), so that a restarted node can start from it.
        for snap in node.history:
            if snap.metadata.index == ids[1] and ids[1] > node.storage.stored_snapshot().metadata.index:
                node.storage.create_snapshot(ids[1], snap.metadata.conf_state, snap.data)
                break
        node.storage.compact(ids[1])
        self.raft_log(ids[0])

    def _handle_snapshot_unavailable(self, d: TestData) -> None:
        keys = d.positional()
        if len(keys) != 2:
            raise d.fatal("usage: snapshot-unavailable <id> true|false")
        self._node(_as_int(keys[0])).storage.snapshot_unavailable = _as_bool(CmdArg("x", (keys[1],)))

    def _handle_restart(self, d: TestData) -> None:
        """Crash and restart a node: what it had not handed out in a Ready is lost.

        The new RawNode starts from the storage (hard state, snapshot, entries) with `applied`
        at the storage's snapshot, as etcd's server does; the entries after it are applied again,
        so the node's applied history is cut back to the snapshot first.
        """
        node_id = self._first_id(d)
        node = self._node(node_id)
        snap_index = node.storage.stored_snapshot().metadata.index
        keep = [h for h in node.history if h.metadata.index <= snap_index]
        node.history[:] = keep or node.history[:1]
        node.config = dataclasses.replace(node.config, applied=snap_index)
        node.rawnode = RawNode(node.config)

    # ----------------------------------------------------------------------------- Ready

    def _handle_process_ready(self, d: TestData) -> None:
        for node_id in self._ids(d):
            if len(self._ids(d)) > 1:
                self.output.write(f"> {node_id} handling Ready\n")
                self.output.push()
                self.process_ready(node_id)
                self.output.pop_indented()
            else:
                self.process_ready(node_id)

    def process_ready(self, node_id: int) -> None:
        node = self._node(node_id)
        rn, s = node.rawnode, node.storage
        rd: Ready = rn.ready()
        self.output.write(describe.describe_ready(rd).rstrip("\n") + "\n")
        if not rd.snapshot.is_empty():
            s.apply_snapshot(rd.snapshot)
            node.history.append(rd.snapshot)
        if rd.entries:
            s.append(list(rd.entries))
        if not rd.hard_state.is_empty():
            s.set_hard_state(rd.hard_state)
        self.messages.extend(rd.messages)
        for ent in rd.committed_entries:
            last = node.history[-1]
            cs = last.metadata.conf_state
            update = b""
            if ent.type in (EntryType.CONF_CHANGE, EntryType.CONF_CHANGE_V2):
                cc = ConfChange.decode(ent.data)
                cs = rn.apply_conf_change(cc)
                update = cc.context
            else:
                update = ent.data
            node.history.append(
                Snapshot(
                    data=last.data + update,
                    metadata=SnapshotMetadata(conf_state=cs, index=ent.index, term=ent.term),
                )
            )
        rn.advance(rd)

    # ----------------------------------------------------------------------------- network

    def _split(self, to: int, type_name: str | None) -> list[Message]:
        mine: list[Message] = []
        rest: list[Message] = []
        for m in self.messages:
            if m.to == to and (type_name is None or describe.msg_type_name(m.type) == type_name):
                mine.append(m)
            else:
                rest.append(m)
        self.messages = rest
        return mine

    def deliver_msgs(self, to: int, drop: bool = False, type_name: str | None = None) -> int:
        msgs = self._split(to, type_name)
        for m in msgs:
            desc = describe.describe_message(m)
            if drop or not self._can_talk(m.from_, m.to):
                self.output.write(f"dropped: {desc}\n")
                continue
            self.output.write(desc + "\n")
            try:
                self._node(m.to).rawnode.step(m)
            except RaftError as e:
                self.output.write(f"{e}\n")
        return len(msgs)

    def _handle_deliver_msgs(self, d: TestData) -> None:
        type_arg = d.arg("type")
        type_name = type_arg.vals[0] if type_arg is not None else None
        if type_name is not None and type_name not in _MSG_TYPE_BY_NAME:
            raise ParseError(f"unknown message type {type_name}")
        n = 0
        for arg in d.cmd_args:
            if not arg.vals:
                n += self.deliver_msgs(_as_int(arg.key), type_name=type_name)
            elif arg.key == "drop":
                for v in arg.vals:
                    n += self.deliver_msgs(_as_int(v), drop=True, type_name=type_name)
            elif arg.key != "type":
                raise ParseError(f"unknown argument {arg.key}")
        if n == 0:
            self.output.write("no messages\n")

    def _handle_stabilize(self, d: TestData) -> None:
        ids = self._ids(d) or [i + 1 for i in range(len(self.nodes))]
        level_arg = d.arg("log-level")
        if level_arg is None:
            self.stabilize(ids)
            return
        # `stabilize log-level=none`: run quietly (or more verbosely) just this once.
        saved = self.output.level
        self.output.level = self._level_index(level_arg.vals[0])
        try:
            self.stabilize(ids)
        finally:
            self.output.level = saved

    def stabilize(self, ids: list[int]) -> None:
        while True:
            done = True
            for node_id in ids:
                if self._node(node_id).rawnode.has_ready():
                    done = False
                    self.output.write(f"> {node_id} handling Ready\n")
                    self.output.push()
                    self.process_ready(node_id)
                    self.output.pop_indented()
            for node_id in ids:
                if any(m.to == node_id for m in self.messages):
                    done = False
                    self.output.write(f"> {node_id} receiving messages\n")
                    self.output.push()
                    self.deliver_msgs(node_id)
                    self.output.pop_indented()
            if done:
                return

    def _handle_cut(self, d: TestData) -> None:
        """`cut a b`: no messages between a and b; `cut a b one-way`: none from a to b."""
        ids = [_as_int(k) for k in d.positional() if k != "one-way"]
        if len(ids) != 2 or ids[0] == ids[1]:
            raise d.fatal("usage: cut <id> <id> [one-way]")
        a, b = ids
        self.cuts.add((a, b))
        if not d.has_arg("one-way"):
            self.cuts.add((b, a))

    def _handle_isolate(self, d: TestData) -> None:
        node_id = self._first_id(d)
        for other in range(1, len(self.nodes) + 1):
            if other != node_id:
                self.cuts.update({(node_id, other), (other, node_id)})

    def _handle_heal(self, d: TestData) -> None:
        """`heal`: the whole network; `heal a`: all of a's links; `heal a b`: the link a-b."""
        ids = self._ids(d)
        if not ids:
            self.cuts.clear()
        elif len(ids) == 1:
            self.cuts = {c for c in self.cuts if ids[0] not in c}
        else:
            self.cuts -= {(ids[0], ids[1]), (ids[1], ids[0])}

    # ----------------------------------------------------------------------------- inspection

    def _handle_log_level(self, d: TestData) -> None:
        self.output.level = self._level_index(self._positional_str(d))

    @staticmethod
    def _level_index(name: str) -> int:
        if name.upper() not in LEVELS:
            raise EnvError(f"log levels must be either of {list(LEVELS)}")
        return LEVELS.index(name.upper())

    @staticmethod
    def _positional_str(d: TestData) -> str:
        keys = d.positional()
        if not keys:
            raise d.fatal("missing argument")
        return keys[0]

    def raft_log(self, node_id: int) -> None:
        s = self._node(node_id).storage
        fi, li = s.first_index(), s.last_index()
        if li < fi:
            self.output.write(f"log is empty: first index={fi}, last index={li}\n")
            return
        self.output.write(describe.describe_entries(s.entries(fi, li + 1, NO_LIMIT)))

    def _handle_raft_log(self, d: TestData) -> None:
        self.raft_log(self._first_id(d))

    def _handle_status(self, d: TestData) -> None:
        st = self._node(self._first_id(d)).rawnode.status()
        hs, ss = st.hard_state, st.soft_state
        line = (
            f"{st.id}: {ss.raft_state} Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit} "
            f"Lead:{ss.lead} Applied:{st.applied}"
        )
        if st.lead_transferee:
            line += f" LeadTransferee:{st.lead_transferee}"
        self.output.write(line + "\n")
        for pid in sorted(st.progress):
            self.output.write(f"  {pid}: {st.progress[pid]}\n")

    def _handle_raft_state(self, d: TestData) -> None:
        for node in self.nodes:
            st = node.rawnode.status()
            voters = st.config.voters.ids()
            role = "(Voter)" if st.id in voters else "(Non-Voter)"
            self.output.write(
                f"{st.id}: {st.soft_state.raft_state} {role} Term:{st.hard_state.term} "
                f"Lead:{st.soft_state.lead}\n"
            )

    def _handle_messages(self, d: TestData) -> None:
        """Print the in-flight messages (all, or those to the given nodes)."""
        ids = set(self._ids(d))
        msgs = [m for m in self.messages if not ids or m.to in ids]
        if not msgs:
            self.output.write("no messages\n")
        for m in msgs:
            self.output.write(describe.describe_message(m) + "\n")

    _HANDLERS: dict[str, Callable[[InteractionEnv, TestData], None]] = {
        "add-nodes": _handle_add_nodes,
        "campaign": _handle_campaign,
        "propose": _handle_propose,
        "propose-conf-change": _handle_propose_conf_change,
        "tick": _handle_tick,
        "tick-heartbeat": _handle_tick_heartbeat,
        "tick-election": _handle_tick_election,
        "set-randomized-election-timeout": _handle_set_randomized_election_timeout,
        "transfer-leadership": _handle_transfer_leadership,
        "read-index": _handle_read_index,
        "report-unreachable": _handle_report_unreachable,
        "report-snapshot": _handle_report_snapshot,
        "compact": _handle_compact,
        "snapshot-unavailable": _handle_snapshot_unavailable,
        "restart": _handle_restart,
        "process-ready": _handle_process_ready,
        "deliver-msgs": _handle_deliver_msgs,
        "stabilize": _handle_stabilize,
        "cut": _handle_cut,
        "isolate": _handle_isolate,
        "heal": _handle_heal,
        "log-level": _handle_log_level,
        "raft-log": _handle_raft_log,
        "status": _handle_status,
        "raft-state": _handle_raft_state,
        "messages": _handle_messages,
    }
