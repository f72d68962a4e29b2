"""etcdutl: golden output of every command and format, restore read back by the server's own code.

The commands run in-process (``petcd.cli.etcdutl.run``) on snapshot files made here the way a
server makes them (the backend stream plus the SHA-256 trailer the API appends); one test runs the
module as ``python -m petcd.cli.etcdutl``. What ``snapshot restore`` writes is opened with the
readers the ``etcd`` command uses (WalLogStore, LmdbBackend, MemberStore, the Node's snapshot-data
reader), so a drift between the formats cli/etcdutl/cluster.py writes and the server reads fails here.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from petcd.backend import read_consistent_index
from petcd.backend.lmdb import LmdbBackend, db_path
from petcd.backend.memory import MemoryBackend
from petcd.cli.etcdutl import run
from petcd.cli.etcdutl.cluster import parse_initial_cluster
from petcd.cli.etcdutl.help import usage
from petcd.etcdmain.config import parse_initial_cluster as server_parse_initial_cluster
from petcd.fs.os_fs import OsFileSystem
from petcd.ids import cluster_id
from petcd.mvcc.kvstore import KVStore
from petcd.pb.etcdserverpb import rpc_pb2
from petcd.pb.mvccpb.kv_pb2 import KeyValue
from petcd.raft.types import ConfState, HardState
from petcd.runtime.log_store import WalLogStore
from petcd.server.membership import Member, MemberStore
from petcd.server.node import _members_from_snapshot_data, initial_members
from petcd.wal import snap_dir, wal_dir

CLUSTER = "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2381,n3=http://127.0.0.1:2382"


def _store_with_keys(backend: MemoryBackend | LmdbBackend) -> KVStore:
    kv = KVStore(backend)
    for i in range(3):
        kv.put(_put(b"key%d" % i, b"value%d" % i))
    kv.put(_put(b"key0", b"changed"))
    return kv


def _put(key: bytes, value: bytes) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(key=key, value=value)


def _with_members(backend: MemoryBackend | LmdbBackend) -> None:
    # an old cluster's membership, which a restore must replace
    old = Member(0xABC, ("http://10.0.0.1:2380",), "old")
    with backend.write_txn() as txn:
        txn.put("members", b"abc", old.encode())
        txn.put("members_removed", b"def", b"removed")
        txn.put("cluster", b"clusterVersion", b"3.6.0")


def save_snapshot(path: Path, *, trailer: bool = True) -> bytes:
    """A snapshot file as `etcdctl snapshot save` writes it from a server; returns the stream."""
    backend = MemoryBackend()
    _store_with_keys(backend)
    _with_members(backend)
    stream = b"".join(backend.snapshot())
    path.write_bytes(stream + (hashlib.sha256(stream).digest() if trailer else b""))
    return stream


def etcdutl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def snap(tmp_path: Path) -> Path:
    p = tmp_path / "snap.db"
    save_snapshot(p)
    return p


# -- snapshot status ------------------------------------------------------------------------------

STATUS_GOLDEN = {
    "simple": "{h:x}, 5, 12, 1.0 kB, 3.6.0\n",
    "json": '{{"hash":{h},"revision":5,"totalKey":12,"totalSize":1024,"version":"3.6.0"}}\n',
    "table": (
        "+----------+----------+------------+------------+---------+\n"
        "|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE | VERSION |\n"
        "+----------+----------+------------+------------+---------+\n"
        "| {h:x} |        5 |         12 |     1.0 kB |   3.6.0 |\n"
        "+----------+----------+------------+------------+---------+\n"
    ),
    "fields": '"Hash" : {h}\n"Revision" : 5\n"Keys" : 12\n"Size" : 1024\n"Version" : 3.6.0\n',
}


def _status_hash(stream_path: Path) -> int:
    # etcd's Status hash, computed independently: CRC-32C over bucket names, keys and values in order
    from crc32c import crc32c

    from petcd.backend.snapshot import load

    data = stream_path.read_bytes()[:-32]
    h, bucket = 0, None
    for name, k, v in load([data]):
        if name != bucket:
            h, bucket = crc32c(name.encode(), h), name
        h = crc32c(v, crc32c(k, h))
    return h


@pytest.mark.parametrize("fmt", sorted(STATUS_GOLDEN))
def test_snapshot_status_golden(capsys: pytest.CaptureFixture[str], snap: Path, fmt: str) -> None:
    code, out, err = etcdutl(capsys, "snapshot", "status", str(snap), "-w", fmt)
    assert (code, err) == (0, "")
    h = _status_hash(snap)
    assert len(f"{h:x}") == 8  # the table golden's column width assumes it
    assert out == STATUS_GOLDEN[fmt].format(h=h)


def test_snapshot_status_without_trailer_and_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bare = tmp_path / "bare.db"
    save_snapshot(bare, trailer=False)
    code, out, _ = etcdutl(capsys, "snapshot", "status", str(bare), "-w", "json")
    assert code == 0 and json.loads(out)["totalSize"] == 1024
    assert etcdutl(capsys, "snapshot", "status", str(bare), "-w", "protobuf") == (
        4,
        "",
        "Error: protobuf not supported as output format\n",
    )
    assert etcdutl(capsys, "snapshot", "status", str(bare), "-w", "yaml") == (
        4,
        "",
        "Error: unsupported output format\n",
    )
    assert etcdutl(capsys, "snapshot", "status") == (
        128,
        "",
        "Error: snapshot status requires exactly one argument\n",
    )
    missing = tmp_path / "nope.db"
    assert etcdutl(capsys, "snapshot", "status", str(missing)) == (
        1,
        "",
        f"Error: stat {missing}: no such file or directory\n",
    )
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"x" * 1000)
    code, _, err = etcdutl(capsys, "snapshot", "status", str(junk))
    assert code == 1 and err.startswith(f"Error: {junk}: not a petcd backend snapshot")


def test_status_revision_and_keys_of_an_empty_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    p = tmp_path / "empty.db"
    stream = b"".join(MemoryBackend().snapshot())
    p.write_bytes(stream + hashlib.sha256(stream).digest())
    code, out, _ = etcdutl(capsys, "snapshot", "status", str(p), "-w", "json")
    assert code == 0
    assert json.loads(out) == {"hash": 0, "revision": 0, "totalKey": 0, "totalSize": 512, "version": "3.6.0"}


# -- snapshot restore -----------------------------------------------------------------------------


def _restore(
    capsys: pytest.CaptureFixture[str], snap: Path, data_dir: Path, name: str, *extra: str
) -> tuple[int, str, str]:
    port = {"n1": 2380, "n2": 2381, "n3": 2382}[name]
    return etcdutl(
        capsys,
        "snapshot",
        "restore",
        str(snap),
        "--name",
        name,
        "--initial-cluster",
        CLUSTER,
        "--initial-cluster-token",
        "tok",
        "--initial-advertise-peer-urls",
        f"http://127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
        *extra,
    )


def test_restore_builds_what_the_server_loads(
    capsys: pytest.CaptureFixture[str], snap: Path, tmp_path: Path
) -> None:
    expected = initial_members(server_parse_initial_cluster(CLUSTER), "tok")
    want_cluster = cluster_id(m.id for m in expected)
    fs = OsFileSystem()
    for name in ("n1", "n2", "n3"):
        d = tmp_path / f"{name}.etcd"
        code, out, err = _restore(capsys, snap, d, name)
        assert (code, out) == (0, "")
        assert "restoring snapshot" in err and "restored snapshot" in err
        own = next(m for m in expected if m.name == name)
        # the WAL and .snap: what WalLogStore hands the Node on start
        assert WalLogStore.read_metadata(fs, wal_dir(str(d))).node_id == own.id
        store = WalLogStore.open_or_create(
            fs, wal_dir(str(d)), snap_dir(str(d)), WalLogStore.read_metadata(fs, wal_dir(str(d)))
        )
        try:
            assert store.metadata.cluster_id == want_cluster
            persisted = store.load()
            assert persisted.snapshot is not None
            md = persisted.snapshot.metadata
            assert (md.index, md.term) == (3, 1)
            assert md.conf_state == ConfState(voters=tuple(sorted(m.id for m in expected)))
            assert persisted.hard_state == HardState(term=1, vote=min(m.id for m in expected), commit=3)
            assert persisted.entries == ()
            members = _members_from_snapshot_data(persisted.snapshot.data)
            assert members.sorted_members() == list(expected)
            assert members.cluster_version == "3.6.0"
        finally:
            store.close()
        # the backend: the snapshot's keys, the new members only, consistent_index at the snapshot
        backend = LmdbBackend(db_path(d))
        try:
            assert MemberStore.load(backend).sorted_members() == list(expected)
            assert MemberStore.load(backend).removed == set()
            with backend.read_txn() as txn:
                assert read_consistent_index(txn) == (3, 1)
            kv = KVStore(backend)
            assert kv.current_rev == 5
            got = kv.range(_range(b"key", b"kez"))
            kvs = [KeyValue.FromString(raw) for raw in got.kvs]
            assert [(x.key, x.value) for x in kvs] == [
                (b"key0", b"changed"),
                (b"key1", b"value1"),
                (b"key2", b"value2"),
            ]
        finally:
            backend.close()


def _range(key: bytes, end: bytes) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(key=key, range_end=end)


def test_restore_bump_revision_and_mark_compacted(
    capsys: pytest.CaptureFixture[str], snap: Path, tmp_path: Path
) -> None:
    d = tmp_path / "b.etcd"
    code, _, err = _restore(capsys, snap, d, "n1", "--bump-revision", "1000", "--mark-compacted")
    assert code == 0, err
    assert "bumping latest revision" in err and "marking revision compacted" in err
    backend = LmdbBackend(db_path(d))
    try:
        kv = KVStore(backend)
        assert kv.revisions() == (1005, 1005)
        assert not kv.compaction_pending()
        got = kv.range(_range(b"key", b"kez"))
        assert len(got.kvs) == 3  # compaction keeps the latest version of every live key
    finally:
        backend.close()
    code, out, _ = etcdutl(capsys, "hashkv", str(d), "-w", "json")
    assert code == 0 and json.loads(out)["compactRevision"] == 1005


def test_restore_with_a_separate_wal_dir(
    capsys: pytest.CaptureFixture[str], snap: Path, tmp_path: Path
) -> None:
    d, w = tmp_path / "d.etcd", tmp_path / "wal"
    assert _restore(capsys, snap, d, "n2", "--wal-dir", str(w))[0] == 0
    assert any(n.endswith(".wal") for n in os.listdir(w))
    assert not os.path.exists(wal_dir(str(d)))
    code, _, err = _restore(capsys, snap, tmp_path / "e.etcd", "n2", "--wal-dir", str(w))
    assert (code, err.splitlines()[-1]) == (1, f'Error: wal-dir "{w}" exists')
    assert not (tmp_path / "e.etcd").exists()


def test_restore_refusals(capsys: pytest.CaptureFixture[str], snap: Path, tmp_path: Path) -> None:
    d = tmp_path / "x.etcd"
    d.mkdir()
    (d / "something").write_text("")
    assert _restore(capsys, snap, d, "n1") == (
        1,
        "",
        f'Error: data-dir "{d}" not empty or could not be read\n',
    )
    fresh = tmp_path / "y.etcd"
    assert _restore(capsys, snap, fresh, "n1", "--bump-revision", "5") == (
        128,
        "",
        "Error: --mark-compacted required if --revision-bump > 0\n",
    )
    assert _restore(capsys, snap, fresh, "n1", "--mark-compacted")[0] == 128
    assert etcdutl(capsys, "snapshot", "restore", "--data-dir", str(fresh)) == (
        128,
        "",
        "Error: snapshot restore requires exactly one argument\n",
    )
    code, _, err = etcdutl(
        capsys,
        "snapshot",
        "restore",
        str(snap),
        "--name",
        "zz",
        "--initial-cluster",
        CLUSTER,
        "--data-dir",
        str(fresh),
    )
    assert (code, err) == (1, 'Error: couldn\'t find local name "zz" in the initial cluster configuration\n')
    code, _, err = etcdutl(
        capsys,
        "snapshot",
        "restore",
        str(snap),
        "--name",
        "n1",
        "--initial-cluster",
        CLUSTER,
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:9999",
        "--data-dir",
        str(fresh),
    )
    assert code == 1
    assert err == (
        "Error: --initial-cluster has n1=http://127.0.0.1:2380 but missing from "
        "--initial-advertise-peer-urls=http://127.0.0.1:9999 (<nil>)\n"
    )
    assert not fresh.exists()


def test_restore_hash_checks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bare = tmp_path / "bare.db"
    save_snapshot(bare, trailer=False)
    code, _, err = _restore(capsys, bare, tmp_path / "a.etcd", "n1")
    assert (code, err.splitlines()[-1]) == (1, "Error: snapshot missing hash but --skip-hash-check=false")
    assert not (tmp_path / "a.etcd").exists()
    assert _restore(capsys, bare, tmp_path / "b.etcd", "n1", "--skip-hash-check")[0] == 0
    bad = tmp_path / "bad.db"
    raw = bytearray((save_snapshot(tmp_path / "good.db"), (tmp_path / "good.db").read_bytes())[1])
    raw[-1] ^= 0xFF
    bad.write_bytes(bytes(raw))
    code, _, err = _restore(capsys, bad, tmp_path / "c.etcd", "n1")
    assert code == 1 and err.splitlines()[-1].startswith("Error: expected sha256 [")
    assert not (tmp_path / "c.etcd").exists()
    # an empty data dir is accepted (etcd 3.6); after a failure it is left empty again
    empty = tmp_path / "empty.etcd"
    empty.mkdir()
    assert _restore(capsys, bad, empty, "n1")[0] == 1
    assert empty.is_dir() and not os.listdir(empty)
    assert _restore(capsys, tmp_path / "good.db", empty, "n1")[0] == 0
    assert (empty / "member" / "wal").is_dir()
    # a damaged stream whose trailer was recomputed: the stream's own hash catches it
    stream = bytearray(raw[:-32])
    stream[100] ^= 1
    worse = tmp_path / "worse.db"
    worse.write_bytes(bytes(stream) + hashlib.sha256(stream).digest())
    code, _, err = _restore(capsys, worse, tmp_path / "d.etcd", "n1")
    assert code == 1 and "snapshot hash mismatch" in err
    assert not (tmp_path / "d.etcd").exists()


@pytest.mark.parametrize(
    "text",
    [
        CLUSTER,
        "a=http://127.0.0.1:1/,a=http://127.0.0.2:1",
        "b=http://h:2,a=http://g:1",
        "x=http://[::1]:2380,y=http://localhost:1",
    ],
)
def test_initial_cluster_parsed_as_the_server_parses_it(text: str) -> None:
    assert parse_initial_cluster(text) == server_parse_initial_cluster(text)


# -- defrag, hashkv, version ----------------------------------------------------------------------


def _data_dir(tmp_path: Path) -> tuple[Path, int]:
    d = tmp_path / "m.etcd"
    backend = LmdbBackend(db_path(d))
    try:
        kv = _store_with_keys(backend)
        h = kv.hash_kv().hash
    finally:
        backend.close()
    return d, h


def test_hashkv_golden(capsys: pytest.CaptureFixture[str], tmp_path: Path, snap: Path) -> None:
    d, h = _data_dir(tmp_path)
    golden = {
        "simple": f"{h}, 5, -1\n",
        "json": f'{{"hash":{h},"hashRevision":5,"compactRevision":-1}}\n',
        "fields": f'"Hash" : {h}\n"Hash revision" : 5\n"Compact revision" : -1\n',
    }
    for fmt, want in golden.items():
        for target in (d, db_path(d), snap):  # a data dir, its backend, a snapshot file
            assert etcdutl(capsys, "hashkv", str(target), "-w", fmt) == (0, want, "")
    code, out, _ = etcdutl(capsys, "hashkv", str(d), "-w", "table")
    assert code == 0
    lines = out.splitlines()
    assert [c.strip() for c in lines[1].split("|")[1:4]] == ["HASH", "HASH REVISION", "COMPACT REVISION"]
    assert [c.strip() for c in lines[3].split("|")[1:4]] == [str(h), "5", "-1"]
    assert lines[0] == lines[2] == lines[4] and lines[0].startswith("+-") and len(lines) == 5
    assert etcdutl(capsys, "hashkv", str(d), "--rev", "3", "-w", "json")[1] != golden["json"]
    assert etcdutl(capsys, "hashkv", str(d), "--rev", "9") == (
        1,
        "",
        "Error: mvcc: required revision is a future revision\n",
    )
    code, out, err = etcdutl(capsys, "hashkv")
    assert (code, out) == (1, "")
    error = "Error: accepts 1 arg(s), received 0\n"
    assert err == f"{error}{usage(('hashkv',))}\n{error}"  # cobra's error and usage, then main's error
    missing = tmp_path / "none"
    assert etcdutl(capsys, "hashkv", str(missing)) == (
        1,
        "",
        f"Error: open {missing}: no such file or directory\n",
    )


def test_defrag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    d, h = _data_dir(tmp_path)
    assert etcdutl(capsys, "defrag", "--data-dir", str(d)) == (0, "", "")
    assert etcdutl(capsys, "hashkv", str(d))[1] == f"{h}, 5, -1\n"
    code, out, err = etcdutl(capsys, "defrag")
    assert (code, out) == (1, "")
    assert err.startswith('Error: required flag(s) "data-dir" not set\nUsage:\n  etcdutl defrag [flags]\n')
    missing = tmp_path / "none"
    assert etcdutl(capsys, "defrag", "--data-dir", str(missing)) == (
        1,
        "",
        f"Error: Failed to defragment etcd data[{missing}]"
        f" (open {db_path(missing)}: no such file or directory)\n",
    )
    lock = OsFileSystem().try_lock(str(d))  # as a running member holds it
    try:
        code, _, err = etcdutl(capsys, "defrag", "--data-dir", str(d))
        assert code == 1 and "is in use by a running member" in err
    finally:
        lock.release()


def test_version_help_and_unknown_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert etcdutl(capsys, "version") == (0, "etcdutl version: 3.6.0\nAPI version: 3.6\n", "")
    assert etcdutl(capsys) == (0, usage(()), "")
    assert etcdutl(capsys, "--help") == (0, usage(()), "")
    assert etcdutl(capsys, "help", "snap") == (0, usage(("snapshot",)), "")
    # cobra: a word after a group is an argument, and the group shows its help
    assert etcdutl(capsys, "snapshot", "nope") == (0, usage(("snapshot",)), "")
    # 3.6 has no snapshot save (etcdctl does it)
    assert etcdutl(capsys, "snapshot", "save", "x") == (0, usage(("snapshot",)), "")
    error = 'Error: unknown command "nope" for "etcdutl"\n'
    assert etcdutl(capsys, "nope") == (1, "", f"{error}Run 'etcdutl --help' for usage.\n{error}")
    error = 'Error: unknown command "verson" for "etcdutl"\n\nDid you mean this?\n\tversion\n\n'
    assert etcdutl(capsys, "verson") == (1, "", f"{error}Run 'etcdutl --help' for usage.\n{error}")
    error = "Error: unknown flag: --bogus\n"
    assert etcdutl(capsys, "version", "--bogus") == (1, "", f"{error}{usage(('version',))}\n{error}")
    # prefix matching
    assert etcdutl(capsys, "vers")[:2] == (0, "etcdutl version: 3.6.0\nAPI version: 3.6\n")
    code, out, err = etcdutl(capsys, "help", "frob")
    assert (code, out) == (0, "")
    assert err == f"Unknown help topic [`frob`]\n{usage(())}"


def test_usage_text_is_cobras_default() -> None:
    # cobra 1.8's default usage template with pflag's FlagUsages, as etcdutl 3.6 prints it
    assert usage(()) == (
        "Usage:\n  etcdutl [command]\n\nAvailable Commands:\n"
        "  completion  Generate completion script\n"
        "  defrag      Defragments the storage of the etcd\n"
        "  hashkv      Prints the KV history hash of a given file\n"
        "  help        Help about any command\n"
        "  snapshot    Manages etcd node snapshots\n"
        "  version     Prints the version of etcdutl\n\n"
        "Flags:\n"
        "  -h, --help               help for etcdutl\n"
        "  -w, --write-out string   set the output format (fields, json, protobuf, simple, table) "
        '(default "simple")\n'
        '\nUse "etcdutl [command] --help" for more information about a command.\n'
    )
    restore = usage(("snapshot", "restore"))
    assert restore.startswith(
        "Usage:\n  etcdutl snapshot restore <filename> --data-dir {output dir} [options] [flags]\n\nFlags:\n"
        "      --bump-revision uint                   "
        "How much to increase the latest revision after restore\n"
    )
    assert (
        "      --initial-memory-map-size uint         Initial memory map size of the database in bytes. "
        "It uses the default value if not defined or defined to 0 (default 10737418240)\n" in restore
    )
    assert "      --mark-compacted                       Mark the latest" in restore
    assert restore.endswith(
        "\n\nGlobal Flags:\n"
        "  -w, --write-out string   set the output format (fields, json, protobuf, simple, table) "
        '(default "simple")\n'
    )


def test_python_dash_m(tmp_path: Path, snap: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "petcd.cli.etcdutl", "snapshot", "status", str(snap), "-w", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["totalKey"] == 12


def test_restore_and_status_of_a_backend_copied_from_a_data_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src, h = _data_dir(tmp_path)
    copied = tmp_path / "copied.db"
    copied.write_bytes(db_path(src).read_bytes())
    assert copied.stat().st_size % 512 == 0  # whole pages: no trailer, as etcd's bbolt file
    code, _, err = _restore(capsys, copied, tmp_path / "a.etcd", "n1")
    assert (code, err.splitlines()[-1]) == (1, "Error: snapshot missing hash but --skip-hash-check=false")
    d = tmp_path / "b.etcd"
    assert _restore(capsys, copied, d, "n1", "--skip-hash-check")[0] == 0
    assert etcdutl(capsys, "hashkv", str(d)) == (0, f"{h}, 5, -1\n", "")
    code, out, _ = etcdutl(capsys, "snapshot", "status", str(copied), "-w", "json")
    assert code == 0
    got = json.loads(out)
    assert (got["revision"], got["totalSize"]) == (5, copied.stat().st_size)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.etcd", "copied.db", "b.etcd"])  # nothing left beside it


def test_an_etcd_bbolt_snapshot_is_refused_clearly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bolt = tmp_path / "etcd.db"
    page = bytearray(4096)
    page[16:20] = (0xED0CDAED).to_bytes(4, "little")  # bbolt's meta page magic
    bolt.write_bytes(bytes(page) * 4)
    want = (
        f"Error: {bolt}: is a bbolt database (a snapshot of etcd itself);"
        " petcd restores petcd snapshots only\n"
    )
    assert etcdutl(capsys, "snapshot", "status", str(bolt)) == (1, "", want)
    code, _, err = _restore(capsys, bolt, tmp_path / "a.etcd", "n1", "--skip-hash-check")
    assert (code, err.splitlines()[-1] + "\n") == (1, want)
    assert not (tmp_path / "a.etcd").exists()
