"""WAL appends per second with one fdatasync per batch, next to the raw fdatasync rate of the disk.

The physical limit of a durable log on one disk is how many `write + fdatasync` pairs the disk
completes per second; batching (group commit) is how a log goes past it in entries per second.
This script measures, in one run and in one directory:

* raw: a small `pwrite` into a preallocated file followed by `fdatasync`, as fast as possible -
  what the disk allows, with no WAL code at all;
* the WAL (`petcd.wal.Wal` on `OsFileSystem`, 64 MB preallocated segments as in production):
  `save(hard_state, entries)` with batches of 1, 10, 100 and 1000 entries, each save one
  fdatasync.

Raw and batch-1 runs alternate in several short rounds so that drift in the disk's speed hits
both alike. The result is a markdown table: batches (= fsyncs) per second, entries per second,
and batches per second as a share of the raw fsync rate.

    python benchmarks/wal_throughput.py [--dir DIR] [--seconds S] [--entry-bytes N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from petcd.fs.os_fs import OsFileSystem
from petcd.raft.types import Entry, HardState
from petcd.wal import Wal


def raw_fsync_rate(dir: str, seconds: float, record_bytes: int) -> tuple[int, float]:
    """(fsyncs, elapsed seconds) of pwrite+fdatasync on a preallocated file."""
    path = os.path.join(dir, "raw.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, 64 * 1000 * 1000)
        os.fsync(fd)
        record = b"r" * record_bytes
        offset = 0
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            os.pwrite(fd, record, offset)
            os.fdatasync(fd)
            offset += record_bytes
            n += 1
        return n, time.perf_counter() - start
    finally:
        os.close(fd)
        os.unlink(path)


class WalRun:
    def __init__(self, dir: str, entry_bytes: int) -> None:
        self.path = os.path.join(dir, "member", "wal")
        self.wal = Wal.create(OsFileSystem(), self.path, b"bench")
        self.index = 0
        self.payload = b"e" * entry_bytes

    def run(self, batch: int, seconds: float, max_batches: int) -> tuple[int, float]:
        """(batches, elapsed seconds) of save() with `batch` entries each."""
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while n < max_batches and time.perf_counter() < deadline:
            first = self.index + 1
            ents = [Entry(term=1, index=i, data=self.payload) for i in range(first, first + batch)]
            self.index += batch
            self.wal.save(HardState(term=1, vote=1, commit=self.index - batch), ents)
            n += 1
        return n, time.perf_counter() - start

    def close(self) -> None:
        self.wal.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir)")
    p.add_argument("--seconds", type=float, default=2.0, help="time per case (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="alternating raw / batch-1 rounds (default 3)")
    p.add_argument("--entry-bytes", type=int, default=128, help="payload per entry (default 128)")
    args = p.parse_args()

    base = tempfile.mkdtemp(prefix="petcd-walbench-", dir=args.dir)
    try:
        run = WalRun(base, args.entry_bytes)
        raw_n = raw_t = 0.0
        b1_n = b1_t = 0.0
        slice_s = args.seconds / args.rounds
        for _ in range(args.rounds):
            n, t = raw_fsync_rate(base, slice_s, 8 + args.entry_bytes + 24)
            raw_n, raw_t = raw_n + n, raw_t + t
            n, t = run.run(1, slice_s, 1 << 30)
            b1_n, b1_t = b1_n + n, b1_t + t
        raw_rate = raw_n / raw_t
        results = [(1, b1_n / b1_t)]
        for batch in (10, 100, 1000):
            n, t = run.run(batch, args.seconds, 1 << 30)
            results.append((batch, n / t))
        run.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"disk: {os.path.realpath(args.dir or tempfile.gettempdir())}, entry payload {args.entry_bytes} B")
    print()
    print("| batch | fsyncs/s | entries/s | fsyncs/s vs raw |")
    print("|------:|---------:|----------:|----------------:|")
    print(f"| raw write+fdatasync | {raw_rate:,.0f} | - | 100% |")
    for batch, rate in results:
        print(f"| {batch} | {rate:,.0f} | {rate * batch:,.0f} | {rate / raw_rate:.0%} |")


if __name__ == "__main__":
    main()
