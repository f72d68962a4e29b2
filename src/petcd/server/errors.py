"""The server's expected errors, with etcd's client-facing strings (rpctypes; clients compare them).

The API layer's error table maps each class to its gRPC code (noted on each class, as etcd does).
"""

from __future__ import annotations

from petcd.errors import EtcdError


class ServerError(EtcdError):
    message = "etcdserver: unknown error"


class Stopped(ServerError):
    """Unavailable."""

    message = "etcdserver: server stopped"


class Timeout(ServerError):
    """Unavailable: the request was proposed but no result came in time."""

    message = "etcdserver: request timed out"


class TimeoutDueToLeaderFail(ServerError):
    """Unavailable."""

    message = "etcdserver: request timed out, possibly due to previous leader failure"


class TimeoutLeaderTransfer(ServerError):
    """Unavailable."""

    message = "etcdserver: request timed out, leader transfer took too long"


class LeaderChanged(ServerError):
    """Unavailable: a linearizable read or a proposal lost its leader."""

    message = "etcdserver: leader changed"


class NoLeader(ServerError):
    """Unavailable."""

    message = "etcdserver: no leader"


class NotLeader(ServerError):
    """FailedPrecondition. `leader` is the member ID of the leader known here (0: none), for a
    runtime that forwards leader-only requests (lease keep-alive, time-to-live)."""

    message = "etcdserver: not leader"

    def __init__(self, leader: int = 0) -> None:
        super().__init__()
        self.leader = leader


class BadLeaderTransferee(ServerError):
    """FailedPrecondition."""

    message = "etcdserver: bad leader transferee"


class RequestTooLarge(ServerError):
    """InvalidArgument."""

    message = "etcdserver: request is too large"


class TooManyRequests(ServerError):
    """ResourceExhausted: too many proposals waiting to be applied."""

    message = "etcdserver: too many requests"


class Unhealthy(ServerError):
    """Unavailable: a reconfiguration would break the active quorum."""

    message = "etcdserver: unhealthy cluster"


class NotCapable(ServerError):
    """Unavailable."""

    message = "etcdserver: not capable"


class MemberExists(ServerError):
    """FailedPrecondition."""

    message = "etcdserver: member ID already exist"


class PeerUrlExists(ServerError):
    """FailedPrecondition."""

    message = "etcdserver: Peer URLs already exists"


class MemberNotEnoughStarted(ServerError):
    """FailedPrecondition."""

    message = "etcdserver: re-configuration failed due to not enough started members"


class MemberBadUrls(ServerError):
    """InvalidArgument."""

    message = "etcdserver: given member URLs are invalid"


class MemberNotFound(ServerError):
    """NotFound."""

    message = "etcdserver: member not found"


class MemberNotLearner(ServerError):
    """FailedPrecondition."""

    message = "etcdserver: can only promote a learner member"


class LearnerNotReady(ServerError):
    """FailedPrecondition."""

    message = "etcdserver: can only promote a learner member which is in sync with leader"


class TooManyLearners(ServerError):
    """FailedPrecondition."""

    message = "etcdserver: too many learner members in cluster"


class MemberIdRemoved(MemberNotFound):
    """etcd's membership.ErrIDRemoved (a removed ID never comes back); the client sees "member not
    found" (NotFound), as etcd's v3rpc maps it."""


class UnknownMethod(ServerError):
    """InvalidArgument: an InternalRaftRequest this server cannot apply (e.g. auth, not yet)."""

    message = "etcdserver: unknown method"


class Corrupt(ServerError):
    """DataLoss: a CORRUPT alarm is raised; writes are refused until it is disarmed."""

    message = "etcdserver: corrupt cluster"
