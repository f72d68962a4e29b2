"""Byte layouts of the MVCC store: revisions and the order-preserving index keys.

Revisions
---------
A revision is ``(main, sub)``: ``main`` is the store-wide revision of a write transaction, ``sub`` the
position of the change inside it. Two encodings:

* ``rev_bytes(main, sub)``: etcd's 17-byte form, ``main`` (8 bytes, big-endian) ``_`` ``sub`` (8 bytes).
  Sorting these bytes sorts revisions. Keys of the ``rev`` bucket (the history) and the bytes that
  HashKV hashes, exactly as etcd's ``key`` bucket does (with ``t`` appended for a tombstone).
* ``inv_rev_bytes(main, sub, tombstone)``: 16 bytes, ``(2**64 - 1 - main, (2**63 - 1 - sub) * 2 + t)``
  big-endian, ``t`` = 1 for a tombstone: the lowest bit carries the kind and never reorders two
  versions (a txn may delete a key and put it again in one revision: etcd's duplicate check lets a
  from-key delete pass, so both versions exist, ordered by ``sub``). Appended to an
  index key it sorts the versions of one key *newest first*, so "the newest version at or before
  revision R" is the first entry at or after ``ikey + at_or_before(R)``, and a scan can tell a
  tombstone from the key alone (``is_tombstone``), which lets a count skip the values.

Index keys (``ikey``)
---------------------
LMDB keys are at most 511 bytes; etcd keys go up to the request limit (1.5 MiB). An ``ikey`` is a
prefix-free, order-preserving image of a user key that fits, leaving room for the 16-byte revision:

* short keys (escaped form at most ``SHORT_MAX`` bytes): ``escape(key) + 00 00``, where ``escape`` writes
  every ``00`` byte as ``00 01``. The terminator ``00 00`` sorts below any continuation (``00 01`` or a
  byte above zero), so a key sorts before its extensions, as in plain byte order.
* long keys: ``escape(p) + 00 02 + blake2b-128(key)``, where ``p`` is the longest prefix of the key whose
  escaped form fits in ``SHORT_MAX`` bytes. All long keys sharing ``p`` form a *group*: its ikeys are
  contiguous and the group sits, relative to every other ikey, exactly where its keys sort in byte
  order (a short key ``s`` extending ``p`` must continue with a non-zero byte, because ``p`` was cut
  where the next byte, a zero, no longer fit; a long key continues with that zero, and ``00 02`` sorts
  below any non-zero byte). Only *inside* a group is the order the hash's, not the keys': ranges that
  meet a group read it whole, sort it by the full keys (which the stored ``KeyValue`` carries) and
  filter it against the range bounds. Keys longer than 440 bytes that share their first 440 bytes are
  rare, so ranges pay for this almost never; point reads of a long key go straight to its ikey.

No ikey is a prefix of another (``00 00`` and ``00 02`` never occur inside ``escape``), so comparing
``ikey + revision`` entries compares ikeys first, and ``ikey_of_entry`` is simply "all but the last 16 bytes".
"""

from __future__ import annotations

import hashlib
import struct

MAX_U64 = (1 << 64) - 1
REV_BYTES = 17
INV_REV_BYTES = 16
SHORT_MAX = 440
GROUP_MARK = b"\x00\x02"
_TERMINATOR = b"\x00\x00"
_HASH_BYTES = 16

_REV = struct.Struct(">Q")
_INV = struct.Struct(">QQ")
_REV17 = struct.Struct(">QcQ")


def rev_bytes(main: int, sub: int) -> bytes:
    return _REV17.pack(main, b"_", sub)


def parse_rev(raw: bytes) -> tuple[int, int]:
    main, _, sub = _REV17.unpack_from(raw)
    return main, sub


_MAX_SUB = (1 << 63) - 1


def inv_rev_bytes(main: int, sub: int, tombstone: bool = False) -> bytes:
    return _INV.pack(MAX_U64 - main, ((_MAX_SUB - sub) << 1) | tombstone)


def parse_inv_rev(raw: bytes) -> tuple[int, int]:
    """``(main, sub)`` of an index-bucket key (or of a bare 16-byte suffix)."""
    a, b = _INV.unpack_from(raw, len(raw) - INV_REV_BYTES)
    return MAX_U64 - a, _MAX_SUB - (b >> 1)


def is_tombstone(index_key: bytes) -> bool:
    """Whether an index-bucket key is a tombstone's."""
    return bool(index_key[-1] & 1)


def at_or_before(main: int) -> bytes:
    """The suffix that seeks to the newest version with a main revision <= ``main``."""
    return _INV.pack(MAX_U64 - main, 0)


def inv_main_bytes(main: int) -> bytes:
    """The first 8 suffix bytes of revision ``main``: entries at or before it have suffix[:8] >= this."""
    return _REV.pack(MAX_U64 - main)


AFTER_ALL_VERSIONS = b"\xff" * INV_REV_BYTES


def _escape(key: bytes) -> bytes:
    return key.replace(b"\x00", b"\x00\x01") if b"\x00" in key else key


def _cut(key: bytes) -> bytes:
    """The longest prefix of ``key`` whose escaped form fits in SHORT_MAX bytes, escaped."""
    head = key[:SHORT_MAX]
    zeros = head.count(0)
    if len(head) + zeros <= SHORT_MAX:
        return _escape(head)
    # The escaped length of head[:n] is n plus its zero bytes, which grows with n: bisect for the
    # longest n that fits (bytes.count keeps this in C; keys padded with zeros, like etcdctl check
    # perf's, made a byte-by-byte walk the most expensive step of a put).
    lo, hi = SHORT_MAX // 2, len(head)  # head[:lo] always fits; head[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid + head.count(0, 0, mid) <= SHORT_MAX:
            lo = mid
        else:
            hi = mid
    return _escape(head[:lo])


def is_short(key: bytes) -> bool:
    # The escaped length is the length plus the zero bytes.
    return len(key) <= SHORT_MAX and len(key) + key.count(0) <= SHORT_MAX


def ikey(key: bytes) -> bytes:
    """The index key of a user key (see the module docstring)."""
    if is_short(key):
        return _escape(key) + _TERMINATOR
    return _cut(key) + GROUP_MARK + hashlib.blake2b(key, digest_size=_HASH_BYTES).digest()


def group_prefix(key: bytes) -> bytes:
    """For a long key: the bytes every ikey of its group starts with."""
    return _cut(key) + GROUP_MARK


def is_group_ikey(ik: bytes) -> bool:
    return ik[-_HASH_BYTES - 2 : -_HASH_BYTES] == GROUP_MARK


def ikey_group(ik: bytes) -> bytes:
    """The group prefix of a long ikey."""
    return ik[:-_HASH_BYTES]


def lower_bound(key: bytes) -> bytes:
    """The smallest index-bucket key that a range starting at ``key`` may need."""
    return ikey(key) if is_short(key) else group_prefix(key)


def upper_bound(end: bytes) -> bytes:
    """An index-bucket key above every entry a range ending (exclusive) at ``end`` may need."""
    # 33 bytes of ff sort after the group's 16-byte hashes followed by 16-byte revisions.
    return ikey(end) if is_short(end) else group_prefix(end) + b"\xff" * 33
