"""Identifiers as etcd derives them: member IDs, the cluster ID, request IDs.

* A member ID is the first 8 bytes (big-endian) of the SHA-1 of the member's sorted peer URLs
  concatenated, then the cluster token, then (for a member added at run time) the decimal Unix
  seconds of the moment it was added (etcd's membership.NewMember). Member names never enter it,
  so every member of a statically bootstrapped cluster computes the same IDs from
  `--initial-cluster` and `--initial-cluster-token`.
* The cluster ID is the first 8 bytes of the SHA-1 of the sorted member IDs, each as 8 bytes
  big-endian (etcd's RaftCluster.genID).
* Request IDs (etcd's pkg/idutil.Generator): the member ID's low 16 bits, then 40 bits of a
  millisecond clock reading taken once, then an 8-bit counter that carries into the time bits.
  Unique per member as long as fewer than 256 requests per millisecond are made on average
  since start, and unique across members through the prefix.

IDs print as lower-case hex without leading zeros (etcd's types.ID.String).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

_U64 = struct.Struct(">Q")
_TS_BITS = 40
_COUNT_BITS = 8
_SUFFIX_BITS = _TS_BITS + _COUNT_BITS
_MASK64 = (1 << 64) - 1


def member_id(peer_urls: Iterable[str], cluster_token: str, added_unix_s: int | None = None) -> int:
    """etcd's member ID for these peer URLs in the cluster named `cluster_token`."""
    b = "".join(sorted(peer_urls)).encode() + cluster_token.encode()
    if added_unix_s is not None:
        b += str(int(added_unix_s)).encode()
    return int(_U64.unpack(hashlib.sha1(b).digest()[:8])[0])


def cluster_id(member_ids: Iterable[int]) -> int:
    """etcd's cluster ID for a cluster whose (initial) members have these IDs."""
    b = b"".join(_U64.pack(i) for i in sorted(member_ids))
    return int(_U64.unpack(hashlib.sha1(b).digest()[:8])[0])


def id_str(ident: int) -> str:
    """An ID as etcd prints it (types.ID.String): hex, no leading zeros."""
    return f"{ident:x}"


def parse_id(text: str) -> int:
    """The inverse of `id_str` (also what `etcdctl member remove <hex>` takes)."""
    return int(text, 16)


class RequestIdGenerator:
    """etcd's idutil.Generator: member-prefixed, time-seeded, counting IDs."""

    def __init__(self, member: int, now_ms: int) -> None:
        self._prefix = ((member & 0xFFFF) << _SUFFIX_BITS) & _MASK64
        self._suffix = (now_ms & ((1 << _TS_BITS) - 1)) << _COUNT_BITS

    def next(self) -> int:
        self._suffix += 1
        return self._prefix | (self._suffix & ((1 << _SUFFIX_BITS) - 1))
