"""Membership changes: from one `TrackerConfig` (and progress map) to the next.

Raft changes membership in one of two ways:

* **simple**: at most one voter is added or removed at a time (learners may change freely).
  Any majority of the old voters then overlaps any majority of the new ones, so the change
  is safe in one step.
* **joint consensus**: `enter_joint` makes the current voters the *outgoing* config and applies
  the changes to the *incoming* one; until `leave_joint`, every decision needs a majority of
  both. A voter being demoted to learner stays an outgoing voter meanwhile and is parked in
  `learners_next`; it becomes a learner when the joint config is left.

`Changer` never mutates the tracker it is given: each operation works on copies and returns the
new (config, progress) for the caller to install, or raises `ConfChangeError` with etcd's
message, leaving everything as it was. New members start with a progress whose `next` is the
leader's last index (`last_index`), probing from there.

`restore` rebuilds a configuration from a `ConfState` (a snapshot, or a restart) by replaying it
as a series of changes from an empty config, so that the same code and invariant checks apply.
"""

from __future__ import annotations

from collections.abc import Callable

from petcd.raft.errors import RaftError
from petcd.raft.tracker import Progress, ProgressMap, ProgressTracker, TrackerConfig
from petcd.raft.types import ConfChangeSingle, ConfChangeType, ConfState


class ConfChangeError(RaftError):
    """A configuration change that cannot be applied (etcd's messages)."""


Result = tuple[TrackerConfig, ProgressMap]

_CHANGE_NAMES = {
    ConfChangeType.ADD_NODE: "ConfChangeAddNode",
    ConfChangeType.REMOVE_NODE: "ConfChangeRemoveNode",
    ConfChangeType.UPDATE_NODE: "ConfChangeUpdateNode",
    ConfChangeType.ADD_LEARNER_NODE: "ConfChangeAddLearnerNode",
}


def describe(*ccs: ConfChangeSingle) -> str:
    """'ConfChangeAddNode(1) ConfChangeRemoveNode(2)', as etcd's confchange.Describe."""
    return " ".join(f"{_CHANGE_NAMES.get(cc.type, str(int(cc.type)))}({cc.node_id})" for cc in ccs)


class Changer:
    def __init__(self, tracker: ProgressTracker, last_index: int) -> None:
        self.tracker = tracker
        self.last_index = last_index

    # -- the three operations ------------------------------------------------------------------

    def enter_joint(self, auto_leave: bool, *ccs: ConfChangeSingle) -> Result:
        """Enter a joint config: the current voters become the outgoing half, `ccs` shape the
        incoming half. With `auto_leave`, raft leaves the joint config on its own."""
        cfg, prs = self._check_and_copy()
        if _joint(cfg):
            raise ConfChangeError("config is already joint")
        if not cfg.voters.incoming:
            # A joint config with an empty side would commit on the other side alone.
            raise ConfChangeError("can't make a zero-voter config joint")
        cfg.voters.outgoing = cfg.voters.incoming.copy()
        self._apply(cfg, prs, ccs)
        cfg.auto_leave = auto_leave
        return _check_and_return(cfg, prs)

    def leave_joint(self) -> Result:
        """Leave the joint config: the incoming half alone decides; demoted voters become
        learners; members in neither half are dropped."""
        cfg, prs = self._check_and_copy()
        if not _joint(cfg):
            raise ConfChangeError("can't leave a non-joint config")
        for i in cfg.learners_next:
            cfg.learners.add(i)
            prs[i].is_learner = True
        cfg.learners_next = set()
        for i in cfg.voters.outgoing:
            if i not in cfg.voters.incoming and i not in cfg.learners:
                del prs[i]
        cfg.voters.outgoing.clear()
        cfg.auto_leave = False
        return _check_and_return(cfg, prs)

    def simple(self, *ccs: ConfChangeSingle) -> Result:
        """Apply changes that touch at most one voter, without joint consensus."""
        cfg, prs = self._check_and_copy()
        if _joint(cfg):
            raise ConfChangeError("can't apply simple config change in joint config")
        self._apply(cfg, prs, ccs)
        if len(set(self.tracker.config.voters.incoming) ^ set(cfg.voters.incoming)) > 1:
            raise ConfChangeError("more than one voter changed without entering joint config")
        return _check_and_return(cfg, prs)

    # -- applying single changes to copies -----------------------------------------------------

    def _apply(self, cfg: TrackerConfig, prs: ProgressMap, ccs: tuple[ConfChangeSingle, ...]) -> None:
        for cc in ccs:
            if cc.node_id == 0:
                # etcd ignores changes for node 0 (bootstrapping quirk); so do we.
                continue
            if cc.type == ConfChangeType.ADD_NODE:
                self._make_voter(cfg, prs, cc.node_id)
            elif cc.type == ConfChangeType.ADD_LEARNER_NODE:
                self._make_learner(cfg, prs, cc.node_id)
            elif cc.type == ConfChangeType.REMOVE_NODE:
                self._remove(cfg, prs, cc.node_id)
            elif cc.type == ConfChangeType.UPDATE_NODE:
                pass  # only the member's attributes change; raft has nothing to do
            else:
                raise ConfChangeError(f"unexpected conf type {int(cc.type)}")
        if not cfg.voters.incoming:
            raise ConfChangeError("removed all voters")

    def _make_voter(self, cfg: TrackerConfig, prs: ProgressMap, id: int) -> None:
        pr = prs.get(id)
        if pr is None:
            self._init_progress(cfg, prs, id, is_learner=False)
            return
        pr.is_learner = False
        cfg.learners.discard(id)
        cfg.learners_next.discard(id)
        cfg.voters.incoming.add(id)

    def _make_learner(self, cfg: TrackerConfig, prs: ProgressMap, id: int) -> None:
        pr = prs.get(id)
        if pr is None:
            self._init_progress(cfg, prs, id, is_learner=True)
            return
        if pr.is_learner:
            return
        # Remove it as a voter first, but keep its progress: it is still the same member.
        self._remove(cfg, prs, id)
        prs[id] = pr
        if id in cfg.voters.outgoing:
            # Still a voter of the outgoing config: it may only become a learner once that
            # config is left, or it would be a voter and a learner at once.
            cfg.learners_next.add(id)
        else:
            pr.is_learner = True
            cfg.learners.add(id)

    def _remove(self, cfg: TrackerConfig, prs: ProgressMap, id: int) -> None:
        if id not in prs:
            return
        cfg.voters.incoming.discard(id)
        cfg.learners.discard(id)
        cfg.learners_next.discard(id)
        # An outgoing voter keeps its progress until the joint config is left.
        if id not in cfg.voters.outgoing:
            del prs[id]

    def _init_progress(self, cfg: TrackerConfig, prs: ProgressMap, id: int, is_learner: bool) -> None:
        if is_learner:
            cfg.learners.add(id)
        else:
            cfg.voters.incoming.add(id)
        prs[id] = Progress(
            # Probe from the leader's last index; max(.., 1) keeps match < next.
            next=max(self.last_index, 1),
            match=0,
            inflights=self.tracker.new_inflights(),
            is_learner=is_learner,
            # Count a new member as active, or check-quorum could depose the leader right
            # after adding it, before it had a chance to answer.
            recent_active=True,
        )

    def _check_and_copy(self) -> Result:
        cfg = self.tracker.config.clone()
        prs = {i: pr.clone() for i, pr in self.tracker.progress.items()}
        return _check_and_return(cfg, prs)


def _joint(cfg: TrackerConfig) -> bool:
    return bool(cfg.voters.outgoing)


def check_invariants(cfg: TrackerConfig, prs: ProgressMap) -> None:
    """Raise ConfChangeError (etcd's messages) unless cfg and prs are consistent."""
    for ids in (cfg.voters.ids(), cfg.learners, cfg.learners_next):
        for i in sorted(ids):
            if i not in prs:
                raise ConfChangeError(f"no progress for {i}")
    for i in sorted(cfg.learners_next):
        if i not in cfg.voters.outgoing:
            raise ConfChangeError(f"{i} is in LearnersNext, but not Voters[1]")
        if prs[i].is_learner:
            raise ConfChangeError(f"{i} is in LearnersNext, but is already marked as learner")
    for i in sorted(cfg.learners):
        if i in cfg.voters.outgoing:
            raise ConfChangeError(f"{i} is in Learners and Voters[1]")
        if i in cfg.voters.incoming:
            raise ConfChangeError(f"{i} is in Learners and Voters[0]")
        if not prs[i].is_learner:
            raise ConfChangeError(f"{i} is in Learners, but is not marked as learner")
    if not _joint(cfg):
        # (etcd also requires Voters[1] to be nil here; an empty outgoing half is that.)
        if cfg.learners_next:
            raise ConfChangeError("LearnersNext must be nil when not joint")
        if cfg.auto_leave:
            raise ConfChangeError("AutoLeave must be false when not joint")


def _check_and_return(cfg: TrackerConfig, prs: ProgressMap) -> Result:
    check_invariants(cfg, prs)
    return cfg, prs


# -- restoring from a ConfState ----------------------------------------------------------------


def _to_conf_change_single(cs: ConfState) -> tuple[list[ConfChangeSingle], list[ConfChangeSingle]]:
    """The changes that rebuild `cs` from nothing: (outgoing, incoming).

    For a joint `cs`: first add the outgoing voters one by one (simple changes), then enter the
    joint config with changes that remove them all again and add the incoming voters and the
    learners; a learner_next is added as a learner, which for an outgoing voter lands it in
    learners_next. For a non-joint `cs` there are only incoming changes.
    """
    add, remove, learner = (
        ConfChangeType.ADD_NODE,
        ConfChangeType.REMOVE_NODE,
        ConfChangeType.ADD_LEARNER_NODE,
    )
    out = [ConfChangeSingle(add, i) for i in cs.voters_outgoing]
    inc = [ConfChangeSingle(remove, i) for i in cs.voters_outgoing]
    inc += [ConfChangeSingle(add, i) for i in cs.voters]
    inc += [ConfChangeSingle(learner, i) for i in cs.learners]
    inc += [ConfChangeSingle(learner, i) for i in cs.learners_next]
    return out, inc


def restore(changer: Changer, cs: ConfState) -> Result:
    """The (config, progress) described by `cs`, built from the changer's (normally empty)
    tracker. The changer's tracker is not modified."""
    outgoing, incoming = _to_conf_change_single(cs)
    ops: list[Callable[[Changer], Result]] = []
    if not outgoing:
        ops.extend(_simple_op(cc) for cc in incoming)
    else:
        ops.extend(_simple_op(cc) for cc in outgoing)
        ops.append(lambda chg: chg.enter_joint(cs.auto_leave, *incoming))

    base = changer.tracker
    scratch = ProgressTracker(base.max_inflight, base.max_inflight_bytes)
    scratch.config = base.config.clone()
    scratch.progress = {i: pr.clone() for i, pr in base.progress.items()}
    chg = Changer(scratch, changer.last_index)
    for op in ops:
        cfg, prs = op(chg)
        scratch.config = cfg
        scratch.progress = prs
    return scratch.config, scratch.progress


def _simple_op(cc: ConfChangeSingle) -> Callable[[Changer], Result]:
    return lambda chg: chg.simple(cc)
