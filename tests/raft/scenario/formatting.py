"""One-line descriptions of raft values for scenario traces, in etcd's DescribeX format.

The traces read like etcd's raft testdata (`1->2 MsgApp Term:1 Log:1/3 Commit:3 Entries:[...]`),
so a scenario can be checked line by line against the Go implementation's behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from petcd.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Ready,
    Snapshot,
    SoftState,
)

EntryFormatter = Callable[[bytes], str]

_MSG_NAMES = {
    MessageType.MSG_HUP: "MsgHup",
    MessageType.MSG_BEAT: "MsgBeat",
    MessageType.MSG_PROP: "MsgProp",
    MessageType.MSG_APP: "MsgApp",
    MessageType.MSG_APP_RESP: "MsgAppResp",
    MessageType.MSG_VOTE: "MsgVote",
    MessageType.MSG_VOTE_RESP: "MsgVoteResp",
    MessageType.MSG_SNAP: "MsgSnap",
    MessageType.MSG_HEARTBEAT: "MsgHeartbeat",
    MessageType.MSG_HEARTBEAT_RESP: "MsgHeartbeatResp",
    MessageType.MSG_UNREACHABLE: "MsgUnreachable",
    MessageType.MSG_SNAP_STATUS: "MsgSnapStatus",
    MessageType.MSG_CHECK_QUORUM: "MsgCheckQuorum",
    MessageType.MSG_TRANSFER_LEADER: "MsgTransferLeader",
    MessageType.MSG_TIMEOUT_NOW: "MsgTimeoutNow",
    MessageType.MSG_READ_INDEX: "MsgReadIndex",
    MessageType.MSG_READ_INDEX_RESP: "MsgReadIndexResp",
    MessageType.MSG_PRE_VOTE: "MsgPreVote",
    MessageType.MSG_PRE_VOTE_RESP: "MsgPreVoteResp",
}
MSG_TYPE_BY_NAME = {name: t for t, name in _MSG_NAMES.items()}

_ENTRY_NAMES = {
    EntryType.NORMAL: "EntryNormal",
    EntryType.CONF_CHANGE: "EntryConfChange",
    EntryType.CONF_CHANGE_V2: "EntryConfChangeV2",
}

_CC_LETTERS = {
    ConfChangeType.ADD_NODE: "v",
    ConfChangeType.ADD_LEARNER_NODE: "l",
    ConfChangeType.REMOVE_NODE: "r",
    ConfChangeType.UPDATE_NODE: "u",
}
CC_TYPE_BY_LETTER = {letter: t for t, letter in _CC_LETTERS.items()}


def msg_type_name(t: MessageType) -> str:
    return _MSG_NAMES[t]


def go_quote(data: bytes) -> str:
    """Quote bytes as Go's %q does for a []byte (printable ASCII kept, the rest escaped)."""
    out = ['"']
    for b in data:
        c = chr(b)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append(f"\\x{b:02x}")
    out.append('"')
    return "".join(out)


def conf_changes_to_string(cc: ConfChange) -> str:
    return " ".join(f"{_CC_LETTERS[c.type]}{c.node_id}" for c in cc.changes)


def describe_entry(e: Entry, fmt: EntryFormatter = go_quote) -> str:
    if e.type == EntryType.NORMAL:
        formatted = fmt(e.data)
    else:
        try:
            formatted = conf_changes_to_string(ConfChange.decode(e.data))
        except ValueError as err:
            formatted = str(err)
    if formatted:
        formatted = " " + formatted
    return f"{e.term}/{e.index} {_ENTRY_NAMES[e.type]}{formatted}"


def describe_entries(ents: Iterable[Entry], fmt: EntryFormatter = go_quote) -> str:
    return "".join(describe_entry(e, fmt) + "\n" for e in ents)


def _ids(ids: Iterable[int]) -> str:
    return "[" + " ".join(str(i) for i in ids) + "]"


def describe_conf_state(cs: ConfState) -> str:
    return (
        f"Voters:{_ids(cs.voters)} VotersOutgoing:{_ids(cs.voters_outgoing)} "
        f"Learners:{_ids(cs.learners)} LearnersNext:{_ids(cs.learners_next)} "
        f"AutoLeave:{'true' if cs.auto_leave else 'false'}"
    )


def describe_snapshot(snap: Snapshot) -> str:
    m = snap.metadata
    return f"Index:{m.index} Term:{m.term} ConfState:{describe_conf_state(m.conf_state)}"


def describe_hard_state(hs: HardState) -> str:
    vote = f" Vote:{hs.vote}" if hs.vote else ""
    return f"Term:{hs.term}{vote} Commit:{hs.commit}"


def describe_soft_state(ss: SoftState) -> str:
    return f"Lead:{ss.lead} State:{ss.raft_state}"


def describe_read_state(rs: ReadState) -> str:
    return f"Index:{rs.index} RequestCtx:{go_quote(rs.request_ctx)}"


def describe_message(m: Message, fmt: EntryFormatter = go_quote) -> str:
    parts = [f"{m.from_:x}->{m.to:x} {_MSG_NAMES[m.type]} Term:{m.term} Log:{m.log_term}/{m.index}"]
    if m.reject:
        parts.append(f" Rejected (Hint: {m.reject_hint})")
    if m.commit:
        parts.append(f" Commit:{m.commit}")
    if m.entries:
        parts.append(" Entries:[" + ", ".join(describe_entry(e, fmt) for e in m.entries) + "]")
    if m.snapshot is not None and not m.snapshot.is_empty():
        parts.append(f" Snapshot: {describe_snapshot(m.snapshot)}")
    if m.context and m.type in (MessageType.MSG_READ_INDEX, MessageType.MSG_READ_INDEX_RESP):
        # etcd's DescribeMessage omits the context; a ReadIndex trace is unreadable without it.
        parts.append(f" Context:{go_quote(m.context)}")
    return "".join(parts)


def describe_ready(rd: Ready, fmt: EntryFormatter = go_quote) -> str:
    lines: list[str] = []
    if rd.soft_state is not None:
        lines.append(describe_soft_state(rd.soft_state))
    if not rd.hard_state.is_empty():
        lines.append(f"HardState {describe_hard_state(rd.hard_state)}")
    if rd.read_states:
        lines.append("ReadStates:")
        lines.extend(describe_read_state(rs) for rs in rd.read_states)
    if rd.entries:
        lines.append("Entries:")
        lines.extend(describe_entry(e, fmt) for e in rd.entries)
    if not rd.snapshot.is_empty():
        lines.append(f"Snapshot {describe_snapshot(rd.snapshot)}")
    if rd.committed_entries:
        lines.append("CommittedEntries:")
        lines.extend(describe_entry(e, fmt) for e in rd.committed_entries)
    if rd.messages:
        lines.append("Messages:")
        lines.extend(describe_message(m, fmt) for m in rd.messages)
    if not lines:
        return "<empty Ready>\n"
    must_sync = "true" if rd.must_sync else "false"
    return f"Ready MustSync={must_sync}:\n" + "".join(line + "\n" for line in lines)
