"""MemoryBackend basics (the full port conformance suite is tests/backend/test_backend.py)."""

from petcd.backend.memory import MemoryBackend


def test_read_txn_keeps_its_snapshot_across_a_commit() -> None:
    b = MemoryBackend()
    with b.write_txn() as t:
        t.put("x", b"a", b"1")
    with b.read_txn() as r:
        with b.write_txn() as t:
            t.put("x", b"a", b"2")
        assert r.get("x", b"a") == b"1"
    with b.read_txn() as r:
        assert r.get("x", b"a") == b"2"
