"""petcd's WAL reader and snapshotter on a data directory written by the reference etcd 3.4.

The reference etcd runs on loopback with a fresh data dir and `--snapshot-count=10`, takes
some puts, and is stopped. Then petcd must: load etcd's newest .snap file (CRC checked); find
its marker among the WAL's valid snapshot entries; open the WAL at that marker and replay
exactly the entries after it, with the member metadata, a sane hard state and the keys that
were put; and, on a copy, open etcd's segment for appending (after its 64 MB preallocated
zeros), append, and read it all back. Skipped when /usr/bin/etcd is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import DecodeError
from servers import free_ports

from petcd.codec.wal import WalSnapshot, decode_metadata
from petcd.fs.os_fs import OsFileSystem
from petcd.pb.etcdserverpb import raft_internal_pb2, rpc_pb2, rpc_pb2_grpc
from petcd.raft.types import Entry, EntryType, HardState
from petcd.wal import Snapshotter, Wal, snap_dir, valid_snapshot_entries, wal_dir

ETCD = Path("/usr/bin/etcd")
PUTS = 25


@pytest.fixture(scope="module")
def etcd_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not ETCD.exists():
        pytest.skip(f"the reference etcd is not installed at {ETCD}")
    base = tmp_path_factory.mktemp("etcd-wal")
    client, peer = free_ports(2)
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    log = (base / "etcd.log").open("wb")
    proc = subprocess.Popen(
        [
            str(ETCD),
            "--name=ref",
            f"--data-dir={base / 'data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=ref={peer_url}",
            "--initial-cluster-state=new",
            "--snapshot-count=10",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{client}")
    try:
        kv = rpc_pb2_grpc.KVStub(channel)
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (base / "etcd.log").read_text(errors="replace")[-2000:]
            try:
                kv.Range(rpc_pb2.RangeRequest(key=b"probe"), timeout=1)
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline, "reference etcd did not start"
                time.sleep(0.1)
        for i in range(PUTS):
            kv.Put(rpc_pb2.PutRequest(key=f"interop-{i:03d}".encode(), value=b"v" * i), timeout=5)
    finally:
        channel.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    yield base / "data"
    shutil.rmtree(base, ignore_errors=True)


def _put_keys(entries: list[Entry]) -> list[bytes]:
    keys = []
    for e in entries:
        if e.type != EntryType.NORMAL or not e.data:
            continue
        req = raft_internal_pb2.InternalRaftRequest()
        try:
            req.ParseFromString(e.data)
        except DecodeError:
            continue  # a v2 Request (etcd publishes member attributes that way)
        if req.HasField("put"):
            keys.append(req.put.key)
    return keys


def test_snapshot_and_wal_of_reference_etcd(etcd_data_dir: Path) -> None:
    fs = OsFileSystem()
    data = str(etcd_data_dir)
    ss = Snapshotter(fs, snap_dir(data))
    snap = ss.load()
    assert snap is not None and ss.broken == []
    assert snap.metadata.index >= 10 and snap.metadata.term >= 1
    assert len(snap.metadata.conf_state.voters) == 1

    marks = valid_snapshot_entries(fs, wal_dir(data))
    mark = WalSnapshot(index=snap.metadata.index, term=snap.metadata.term)
    assert (mark.index, mark.term) in {(m.index, m.term) for m in marks}
    assert ss.load_newest_available(marks) == snap

    w = Wal.open(fs, wal_dir(data), mark, write=False)
    metadata, hs, ents = w.read_all()
    md = decode_metadata(metadata)
    assert md.node_id == snap.metadata.conf_state.voters[0] and md.cluster_id != 0
    assert [e.index for e in ents] == list(range(mark.index + 1, mark.index + 1 + len(ents)))
    assert ents and hs.commit == ents[-1].index and hs.term == ents[-1].term

    # From the very start, every put is there, in order.
    _, _, all_ents = Wal.open(fs, wal_dir(data), WalSnapshot(), write=False).read_all()
    assert all_ents[-len(ents) :] == ents
    assert _put_keys(all_ents) == [f"interop-{i:03d}".encode() for i in range(PUTS)]


def test_append_to_a_copy_of_reference_etcd_wal(etcd_data_dir: Path, tmp_path: Path) -> None:
    fs = OsFileSystem()
    copy = tmp_path / "wal"
    shutil.copytree(wal_dir(str(etcd_data_dir)), copy)
    w = Wal.open(fs, str(copy), WalSnapshot())
    _, hs, ents = w.read_all()
    assert w.repaired is None, "etcd's tail is clean zeros after its last record"
    last = ents[-1]
    extra = [Entry(term=last.term, index=last.index + 1, data=b"from petcd")]
    w.save(HardState(term=hs.term, vote=hs.vote, commit=hs.commit), extra)
    w.close()
    _, hs2, ents2 = Wal.open(fs, str(copy), WalSnapshot(), write=False).read_all()
    assert ents2 == [*ents, *extra]
    assert hs2 == hs
