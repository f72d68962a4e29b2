"""CRC-32C (Castagnoli), the checksum etcd's Hash and HashKV use.

The ``crc32c`` package (C, with SSE4.2/ARMv8 instructions) when it is installed; otherwise a table-driven
pure-Python version that gives the same numbers, only slower.
"""

from __future__ import annotations

from collections.abc import Callable

_POLY = 0x82F63B78


def _table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _table()


def crc32c_python(data: bytes, value: int = 0) -> int:
    crc = value ^ 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _pick() -> Callable[[bytes, int], int]:
    try:
        import crc32c as fast
    except ImportError:  # pragma: no cover - depends on the environment
        return crc32c_python
    impl: Callable[[bytes, int], int] = fast.crc32c
    return impl


crc32c = _pick()
