"""Expected errors, each carrying etcd's exact message.

``EtcdError`` is the root of every error a client may be told about; the API layer maps each class to
its gRPC code (one table there) and sends ``str(err)``, which is etcd's string byte for byte, because
clients compare strings. Broken invariants are *not* ``EtcdError``: they stop the node.

Other layers add their own subclasses (lease errors live beside the lessor); this module keeps the root
and the storage errors.
"""

from __future__ import annotations


class EtcdError(Exception):
    """An expected, client-visible error; ``message`` is etcd's text."""

    message = "etcdserver: unknown error"

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


class Compacted(EtcdError):
    """A read or watch asked for a revision below the compaction point (gRPC OutOfRange)."""

    message = "etcdserver: mvcc: required revision has been compacted"


class FutureRevision(EtcdError):
    """A read asked for a revision above the current one (gRPC OutOfRange)."""

    message = "etcdserver: mvcc: required revision is a future revision"


class NoSpace(EtcdError):
    """The NOSPACE alarm is raised: only reads, deletes and compaction go through (ResourceExhausted)."""

    message = "etcdserver: mvcc: database space exceeded"


class TooManyOps(EtcdError):
    """A txn has more operations than ``--max-txn-ops`` (InvalidArgument)."""

    message = "etcdserver: too many operations in txn request"


class DuplicateKey(EtcdError):
    """A txn writes the same key twice in one branch (InvalidArgument)."""

    message = "etcdserver: duplicate key given in txn request"


class KeyNotProvided(EtcdError):
    """A request without a key (InvalidArgument)."""

    message = "etcdserver: key is not provided"


class KeyNotFound(EtcdError):
    """A put with ``ignore_value``/``ignore_lease`` on a key that does not exist (InvalidArgument)."""

    message = "etcdserver: key not found"


class ValueProvided(EtcdError):
    """A put with ``ignore_value`` that also carries a value (InvalidArgument)."""

    message = "etcdserver: value is provided"


class LeaseProvided(EtcdError):
    """A put with ``ignore_lease`` that also names a lease (InvalidArgument)."""

    message = "etcdserver: lease is provided"


class BackendQuotaExceeded(EtcdError):
    """A backend commit would grow the store past its quota; nothing was written (ResourceExhausted)."""

    message = "etcdserver: mvcc: database space exceeded"
