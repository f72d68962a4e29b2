"""Fewer, larger raft messages on one link: coalescing what a member has queued for one peer.

Under load a leader emits many small appends to each follower: every proposal batch it steps, every
acknowledgement that moves its commit index and every acknowledgement that opens the flow-control
window produces an MsgApp, so one Ready can hold a dozen appends to the same follower, each with a
few entries, and the follower answers each with its own MsgAppResp. Every one of those is encoded,
framed, decoded and stepped. Etcd's Go transport shrugs that off; in Python it is a large share of
the cost of a replicated write. The peer transport therefore passes the messages waiting for one
peer, in order, through `coalesce()` before it encodes them. Two rules, each applied only to
neighbours in that sequence (so nothing moves across any other message to the same peer; messages
to different peers travel on different connections and have no order between them anyway):

* **Appends that continue each other merge.** MsgApp `b` right after MsgApp `a`, from the same
  leader in the same term, where `b` starts where `a` ends (`b.index` is `a`'s last index and
  `b.log_term` its term) and `b.commit >= a.commit`, becomes one MsgApp: `a`'s (index, log_term),
  the entries of both, `b`'s commit. A follower whose log matches at `a.index` ends up with the
  same log and commit index as after stepping `a` then `b`, and answers once with the last index
  instead of twice; that answer frees on the leader every inflight slot the two answers would have
  freed. The one difference: a follower that has already committed past `a.index` ignores a stale
  append wholesale (it answers with its commit index), so it drops `b`'s entries with `a`. That is
  what it would do had `b` been lost, which raft tolerates (the leader learns the real index from
  that answer and the next append is rejected and retried from there).
* **Forwarded proposals concatenate.** MsgProps a follower forwards to the leader in a row become
  one MsgProp with all their entries, in order: the leader appends them as one batch, exactly as
  it would append them one message after another (a conf change among them is judged against the
  ones before it either way). A leader that cannot take proposals drops the whole message, which is
  what happens to forwarded proposals that meet it anyway (the proposers time out and retry).
* **Acknowledgements supersede each other.** Accepting MsgAppResps from the same member in the
  same term in a row keep only the largest index: the leader's progress (match, next, inflights,
  commit) after stepping only that one is where stepping them all would have brought it, and a
  probing follower moves to replicating at the higher index directly. Rejections are kept as they
  are, and they break a run (a rejection is judged against the match index the earlier answers
  set).

Merged appends stop growing at `bytes_max` of entry data, so a frame stays bounded. Pure and
deterministic (ring A); the message values are never mutated, new ones are built.
"""

from __future__ import annotations

from collections.abc import Sequence

from petcd.raft.types import Message, MessageType

MSG_APP = MessageType.MSG_APP
MSG_APP_RESP = MessageType.MSG_APP_RESP
MSG_PROP = MessageType.MSG_PROP
COALESCED_BYTES_MAX = 4 * 1024 * 1024


def _continues(a: Message, b: Message) -> bool:
    """Whether append `b` starts where append `a` ends (same leader, term, non-decreasing commit)."""
    if b.from_ != a.from_ or b.term != a.term or b.commit < a.commit:
        return False
    if a.entries:
        last = a.entries[-1]
        return b.index == last.index and b.log_term == last.term
    return b.index == a.index and b.log_term == a.log_term


def _same_proposer(a: Message, b: Message) -> bool:
    return (
        b.from_ == a.from_
        and b.term == a.term
        and (a.index, a.log_term, a.commit) == (b.index, b.log_term, b.commit) == (0, 0, 0)
    )


def _plain(m: Message) -> bool:
    # Only the fields these three kinds use here; a message with anything else is left alone.
    return m.snapshot is None and not m.context and not m.reject and not m.reject_hint


def _data_bytes(m: Message) -> int:
    return sum(len(e.data) for e in m.entries)


def coalesce(messages: Sequence[Message], bytes_max: int = COALESCED_BYTES_MAX) -> list[Message]:
    """The messages for ONE peer, in order, with continuing appends merged, forwarded proposals
    concatenated and acknowledgements superseded by the next one (see the module docstring)."""
    out: list[Message] = []
    size = -1  # entry bytes of out[-1] once it has grown by a merge (-1: not counted yet)
    for m in messages:
        prev = out[-1] if out else None
        if prev is None or prev.type != m.type or prev.to != m.to or not (_plain(m) and _plain(prev)):
            out.append(m)
            size = -1
            continue
        t = m.type
        if t == MSG_APP_RESP:
            if m.from_ == prev.from_ and m.term == prev.term:
                if m.index >= prev.index:
                    out[-1] = m
                continue
        elif (t == MSG_APP and _continues(prev, m)) or (t == MSG_PROP and _same_proposer(prev, m)):
            if size < 0:
                size = _data_bytes(prev)
            add = _data_bytes(m)
            if size + add <= bytes_max:
                # an append keeps where the first one starts and takes the last one's commit
                out[-1] = Message(
                    t,
                    to=m.to,
                    from_=m.from_,
                    term=m.term,
                    log_term=prev.log_term,
                    index=prev.index,
                    entries=prev.entries + m.entries,
                    commit=m.commit,
                )
                size += add
                continue
            out.append(m)
            size = add
            continue
        out.append(m)
        size = -1
    return out
