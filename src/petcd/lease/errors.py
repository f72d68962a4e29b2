"""The lessor's expected errors, with etcd's client-facing strings (clients compare them)."""

from __future__ import annotations

from petcd.errors import EtcdError


class LeaseError(EtcdError):
    """Root of the lessor's errors. `str(err)` is etcd's gRPC error description."""

    message = "etcdserver: lease error"


class LeaseNotFound(LeaseError):
    """No lease with that ID (gRPC NotFound). Also raised by Grant for ID 0, as etcd does."""

    message = "etcdserver: requested lease not found"


class LeaseExpired(LeaseNotFound):
    """Renew of a lease past its deadline whose revoke is not applied yet.

    etcd's primary blocks such a renew until the revoke is applied (then answers "not found") or
    until it is demoted (then "not primary"); the synchronous lessor cannot block, so it says
    which case it is in and lets the server decide whether to wait. Mapped like LeaseNotFound.
    """


class LeaseExists(LeaseError):
    """Grant of an ID already in use (gRPC FailedPrecondition)."""

    message = "etcdserver: lease already exists"


class LeaseTTLTooLarge(LeaseError):
    """Grant with a TTL above MAX_LEASE_TTL_S (gRPC OutOfRange)."""

    message = "etcdserver: too large lease TTL"


class NotPrimary(LeaseError):
    """Renew asked of a lessor that is not the primary: the server forwards it to the leader."""

    message = "not a primary lessor"
