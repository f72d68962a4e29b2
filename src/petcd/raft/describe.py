"""One-line text renderings of raft values, in the format of etcd's raft `Describe*` helpers.

Traces, log lines and the text-based scenario tests all speak this format, so that a petcd trace
can be read side by side with one of etcd's `testdata/*.txt` interaction files:

    1->2 MsgApp Term:1 Log:1/3 Commit:4 Entries:[1/4 EntryConfChangeV2 v2 v3]
    Term:1 Vote:1 Commit:4
    Lead:1 State:StateLeader

IDs are printed in hex (`%x`), as etcd does. Entry payloads go through an optional formatter
(default: Go's `%q` quoting of the bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from petcd.raft.types import (
    ConfChange,
    ConfChangeSingle,
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


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


_MSG_NAMES = {t: _camel(t.name) for t in MessageType}  # MSG_APP_RESP -> MsgAppResp
_ENTRY_NAMES = {t: "Entry" + _camel(t.name) for t in EntryType}  # CONF_CHANGE_V2 -> EntryConfChangeV2
_CC_LETTERS = {
    ConfChangeType.ADD_NODE: "v",
    ConfChangeType.ADD_LEARNER_NODE: "l",
    ConfChangeType.REMOVE_NODE: "r",
    ConfChangeType.UPDATE_NODE: "u",
}


def msg_type_name(t: MessageType) -> str:
    """etcd's name of a message type (`MsgApp`, `MsgPreVoteResp`, ...)."""
    return _MSG_NAMES[t]


def entry_type_name(t: EntryType) -> str:
    """etcd's name of an entry type (`EntryNormal`, `EntryConfChangeV2`)."""
    return _ENTRY_NAMES[t]


def go_quote(data: bytes) -> str:
    """Render bytes as Go's `%q` does for a byte slice (printable ASCII kept, the rest escaped)."""
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


def describe_conf_changes(changes: Iterable[ConfChangeSingle]) -> str:
    """etcd's `ConfChangesToString`: `v2 v3 l4 r5` (voter, learner, remove, update)."""
    return " ".join(f"{_CC_LETTERS.get(c.type, 'unknown')}{c.node_id}" for c in changes)


def describe_conf_change(cc: ConfChange) -> str:
    """etcd-io/raft's `DescribeConfChange`: the transition, every change and the context."""
    parts = [f"transition:ConfChangeTransition{_camel(cc.transition.name)}"]
    parts.extend(f"changes:{{type:ConfChange{_camel(c.type.name)} node_id:{c.node_id}}}" for c in cc.changes)
    if cc.context:
        parts.append(f"context:{go_quote(cc.context)}")
    return " ".join(parts)


def describe_hard_state(hs: HardState) -> str:
    vote = f" Vote:{hs.vote:x}" if hs.vote else ""
    return f"Term:{hs.term}{vote} Commit:{hs.commit}"


def describe_soft_state(ss: SoftState) -> str:
    return f"Lead:{ss.lead:x} State:{ss.raft_state!s}"


def _ids(ids: Iterable[int]) -> str:
    return "[" + " ".join(f"{i}" for i in ids) + "]"


def describe_conf_state(cs: ConfState) -> str:
    return (
        f"Voters:{_ids(cs.voters)} VotersOutgoing:{_ids(cs.voters_outgoing)} "
        f"Learners:{_ids(cs.learners)} LearnersNext:{_ids(cs.learners_next)} "
        f"AutoLeave:{'true' if cs.auto_leave else 'false'}"
    )


def describe_snapshot(snap: Snapshot) -> str:
    m = snap.metadata
    return f"Index:{m.index} Term:{m.term} ConfState:{describe_conf_state(m.conf_state)}"


def describe_entry(e: Entry, formatter: EntryFormatter | None = None) -> str:
    if e.type == EntryType.NORMAL:
        formatted = (formatter or go_quote)(e.data)
    else:
        try:
            formatted = describe_conf_changes(ConfChange.decode(e.data).changes)
        except ValueError as err:
            formatted = str(err)
    if formatted:
        formatted = " " + formatted
    return f"{e.term}/{e.index} {entry_type_name(e.type)}{formatted}"


def describe_entries(ents: Iterable[Entry], formatter: EntryFormatter | None = None) -> str:
    return "".join(describe_entry(e, formatter) + "\n" for e in ents)


def describe_message(m: Message, formatter: EntryFormatter | None = None) -> str:
    parts = [f"{m.from_:x}->{m.to:x} {msg_type_name(m.type)} Term:{m.term} Log:{m.log_term}/{m.index}"]
    if m.reject:
        parts.append(f" Rejected (Hint: {m.reject_hint})")
    if m.commit:
        parts.append(f" Commit:{m.commit}")
    if m.entries:
        parts.append(" Entries:[" + ", ".join(describe_entry(e, formatter) for e in m.entries) + "]")
    if m.snapshot is not None and not m.snapshot.is_empty():
        parts.append(f" Snapshot: {describe_snapshot(m.snapshot)}")
    return "".join(parts)


def describe_read_states(rss: Iterable[ReadState]) -> str:
    return "[" + " ".join(f"{{{rs.index} {go_quote(rs.request_ctx)}}}" for rs in rss) + "]"


def describe_ready(rd: Ready, formatter: EntryFormatter | None = None) -> str:
    """Multi-line rendering of a Ready, as etcd's `DescribeReady` (`<empty Ready>` when empty)."""
    lines: list[str] = []
    if rd.soft_state is not None:
        lines.append(describe_soft_state(rd.soft_state) + "\n")
    if not rd.hard_state.is_empty():
        lines.append(f"HardState {describe_hard_state(rd.hard_state)}\n")
    if rd.read_states:
        lines.append(f"ReadStates {describe_read_states(rd.read_states)}\n")
    if rd.entries:
        lines.append("Entries:\n" + describe_entries(rd.entries, formatter))
    if not rd.snapshot.is_empty():
        lines.append(f"Snapshot {describe_snapshot(rd.snapshot)}\n")
    if rd.committed_entries:
        lines.append("CommittedEntries:\n" + describe_entries(rd.committed_entries, formatter))
    if rd.messages:
        lines.append("Messages:\n" + "".join(describe_message(m, formatter) + "\n" for m in rd.messages))
    if not lines:
        return "<empty Ready>"
    return f"Ready MustSync={'true' if rd.must_sync else 'false'}:\n" + "".join(lines)
