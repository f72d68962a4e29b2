"""Leases: TTL-bound objects that delete their attached keys when they expire or are revoked.

See `petcd.lease.lessor` for the theory of operation.
"""

from petcd.lease.errors import (
    LeaseError,
    LeaseExists,
    LeaseExpired,
    LeaseNotFound,
    LeaseTTLTooLarge,
    NotPrimary,
)
from petcd.lease.lessor import (
    LEASE_BUCKET_NAME,
    MAX_LEASE_TTL_S,
    NO_LEASE,
    BackendLeaseBucket,
    Checkpointer,
    Clock,
    Lease,
    LeaseBucket,
    LeaseCheckpoint,
    LeaseIdGenerator,
    LeaseTimeToLive,
    Lessor,
    LessorConfig,
    MemoryLeaseBucket,
    RangeDeleter,
    TxnDelete,
    min_lease_ttl_s,
)

__all__ = [
    "LEASE_BUCKET_NAME",
    "MAX_LEASE_TTL_S",
    "NO_LEASE",
    "BackendLeaseBucket",
    "Checkpointer",
    "Clock",
    "Lease",
    "LeaseBucket",
    "LeaseCheckpoint",
    "LeaseError",
    "LeaseExists",
    "LeaseExpired",
    "LeaseIdGenerator",
    "LeaseNotFound",
    "LeaseTTLTooLarge",
    "LeaseTimeToLive",
    "Lessor",
    "LessorConfig",
    "MemoryLeaseBucket",
    "NotPrimary",
    "RangeDeleter",
    "TxnDelete",
    "min_lease_ttl_s",
]
