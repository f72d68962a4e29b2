"""The store on LMDB across restarts and processes, and with keys up to etcd's 1.5 MiB request limit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from petcd.backend import Backend
from petcd.backend.lmdb import LmdbBackend, db_path
from petcd.backend.memory import MemoryBackend
from petcd.mvcc.kvstore import KVStore
from petcd.mvcc.types import DeleteRangeRequest, PutRequest, RangeRequest
from petcd.pb.mvccpb.kv_pb2 import KeyValue

MIB = 1024 * 1024


def fill(s: KVStore, n: int) -> None:
    with s.write() as w:
        for i in range(n):
            w.put(PutRequest(b"key/%06d" % i, b"value-%d" % i))
    with s.write() as w:
        for i in range(0, n, 3):
            w.put(PutRequest(b"key/%06d" % i, b"again-%d" % i))
        w.delete_range(DeleteRangeRequest(b"key/000100", b"key/000200"))


def snapshot_of(s: KVStore) -> list[object]:
    out: list[object] = [s.current_rev, s.compact_rev]
    for rev in (0, 1300, s.current_rev - 1):
        r = s.range(RangeRequest(b"key/", b"key0", revision=rev))
        out.append((r.count, r.kvs))
    out.append(s.hash_kv())
    return out


def test_reopen_gives_the_same_ranges_at_once(tmp_path: Path) -> None:
    b = LmdbBackend(db_path(tmp_path))
    s = KVStore(b)
    fill(s, 2000)
    s.compact(1000, physical=True)
    want = snapshot_of(s)
    b.close()
    started = time.perf_counter()
    b = LmdbBackend(db_path(tmp_path))
    s = KVStore(b)
    opened_s = time.perf_counter() - started
    assert snapshot_of(s) == want
    # nothing is rebuilt on open: it costs the same for 2k keys as for none
    assert opened_s < 0.5
    b.close()


_READER = textwrap.dedent(
    """
    import sys
    from petcd.backend.lmdb import LmdbBackend
    from petcd.mvcc.kvstore import KVStore
    from petcd.mvcc.types import RangeRequest
    store = KVStore(LmdbBackend.open_read_only(sys.argv[1]))
    for line in sys.stdin:
        start, end, rev = line.rstrip("\\n").split(" ")
        r = store.range(RangeRequest(bytes.fromhex(start), bytes.fromhex(end), revision=int(rev)))
        assert store.current_revision() == r.revision  # follows the writer
        print(r.revision, r.count, b"".join(r.kvs).hex(), flush=True)
    """
)


def test_a_second_process_answers_the_same_ranges(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    b = LmdbBackend(path)
    s = KVStore(b)
    fill(s, 500)
    proc = subprocess.Popen(
        [sys.executable, "-c", _READER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:

        def both(start: bytes, end: bytes, rev: int) -> None:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{start.hex()} {end.hex()} {rev}\n")
            proc.stdin.flush()
            got = proc.stdout.readline().split()
            r = s.range(RangeRequest(start, end, revision=rev))
            assert got == [str(r.revision), str(r.count), *([b"".join(r.kvs).hex()] if r.kvs else [])]

        both(b"key/", b"key0", 0)
        both(b"key/000001", b"", 0)
        both(b"key/", b"key0", 300)
        s.put(PutRequest(b"key/new", b"written after the reader opened"))
        both(b"key/", b"\x00", 0)
        both(b"key/new", b"", 0)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
        b.close()


def test_keys_of_one_and_a_half_mib(tmp_path: Path) -> None:
    for backend in (LmdbBackend(db_path(tmp_path), quota_bytes=256 * MIB), MemoryBackend()):
        check_huge_keys(backend)
        backend.close()


def check_huge_keys(backend: Backend) -> None:
    s = KVStore(backend)
    prefix = b"p" * (MIB // 2)
    huge = [prefix + bytes([c]) * (MIB - 2) for c in (3, 1, 2)]  # same first 512 KiB
    for i, k in enumerate(huge):
        s.put(PutRequest(k, b"v%d" % i))
    s.put(PutRequest(prefix, b"short prefix of them all"))  # also long itself
    s.put(PutRequest(b"p", b"tiny"))
    s.put(PutRequest(b"q", b"after"))
    r = s.range(RangeRequest(b"p", b"\x00"))
    assert [KeyValue.FromString(x).key for x in r.kvs] == [b"p", prefix, *sorted(huge), b"q"]
    r = s.range(RangeRequest(huge[2], huge[0]))  # [0x02..., 0x03...)
    assert [KeyValue.FromString(x).value for x in r.kvs] == [b"v2"]
    assert KeyValue.FromString(s.range(RangeRequest(huge[1])).kvs[0]).value == b"v1"
    assert s.range(RangeRequest(huge[1] + b"\x00")).count == 0
    s.delete_range(DeleteRangeRequest(huge[1]))
    assert s.range(RangeRequest(prefix, prefix + b"\xff")).count == 3
    assert s.range(RangeRequest(prefix, prefix + b"\xff", revision=s.current_rev - 1)).count == 4


def test_snapshot_restore_and_defrag_keep_the_store(tmp_path: Path) -> None:
    b = LmdbBackend(db_path(tmp_path / "a"))
    s = KVStore(b)
    fill(s, 1500)
    s.compact(1200, physical=True)
    want = snapshot_of(s)
    b.defrag()
    assert snapshot_of(s) == want
    stream = list(b.snapshot())
    for target in (MemoryBackend(), LmdbBackend(db_path(tmp_path / "b"))):
        other = KVStore(target)
        other.put(PutRequest(b"overwritten", b"by the restore"))
        target.restore(stream)
        other.reload()
        assert snapshot_of(other) == want
        assert other.range(RangeRequest(b"overwritten")).count == 0
        # and it goes on from where the snapshot was
        assert other.put(PutRequest(b"next")).revision == s.current_rev + 1
        target.close()
    b.close()
