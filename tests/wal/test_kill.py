"""Recovery on the real disk: a writer process is killed with SIGKILL again and again.

One data directory lives through every round. Each round starts a writer that opens the WAL
(repairing whatever the last kill left), reports the last index it found, then appends batches
of entries, printing each index once `save` - and so its fdatasync - has returned. After a
random number of acknowledgements and a random sub-millisecond-to-few-millisecond delay (so
the kill lands in the middle of writes, syncs and segment cuts), the test kills it and reads the
WAL itself: the entries must be exactly 1..n with the expected payloads, and n must reach the
last acknowledged index. Every round is bounded by a watchdog; every process is stopped.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from petcd.codec.wal import WalSnapshot
from petcd.fs.os_fs import OsFileSystem
from petcd.wal import Wal

ROUNDS = 20
ROUND_TIMEOUT_S = 20.0
SEGMENT_BYTES = 32 * 1024

WRITER = """
import sys
from petcd.codec.wal import WalSnapshot
from petcd.fs.os_fs import OsFileSystem
from petcd.raft.types import Entry, HardState
from petcd.wal import Wal, exists

def payload(i):
    return bytes([i % 251 + 1]) * (i * 7919 % 900)

d, seg = sys.argv[1], int(sys.argv[2])
fs = OsFileSystem()
if exists(fs, d):
    w = Wal.open(fs, d, WalSnapshot(), segment_bytes=seg)
    _, hs, ents = w.read_all()
    last = ents[-1].index if ents else 0
else:
    w = Wal.create(fs, d, b"member", segment_bytes=seg)
    last = 0
print("ready", last, flush=True)
i = last
while True:
    n = 1 + (i * 13) % 40
    batch = [Entry(term=1, index=i + k + 1, data=payload(i + k + 1)) for k in range(n)]
    w.save(HardState(term=1, vote=1, commit=i), batch)
    i += n
    print(i, flush=True)
"""


def payload(i: int) -> bytes:
    return bytes([i % 251 + 1]) * (i * 7919 % 900)


def check(d: str, acked: int) -> int:
    w = Wal.open(OsFileSystem(), d, WalSnapshot(), write=False, segment_bytes=SEGMENT_BYTES)
    md, _, ents = w.read_all()
    assert md == b"member"
    assert [e.index for e in ents] == list(range(1, len(ents) + 1))
    assert all(e.data == payload(e.index) for e in ents)
    assert len(ents) >= acked, f"lost acknowledged entries: have {len(ents)}, acked {acked}"
    return len(ents)


def test_kill_minus_nine_in_a_loop(tmp_path: Path) -> None:
    rng = random.Random(20261127)
    d = str(tmp_path / "member" / "wal")
    acked = 0
    cuts_seen = 0
    for round_no in range(ROUNDS):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, d, str(SEGMENT_BYTES)],
            stdout=subprocess.PIPE,
            text=True,
        )
        watchdog = threading.Timer(ROUND_TIMEOUT_S, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            ready = proc.stdout.readline().split()
            assert ready and ready[0] == "ready", f"round {round_no}: writer did not start"
            # What the writer found must hold everything acknowledged before the last kill.
            assert int(ready[1]) >= acked, f"round {round_no}: writer recovered {ready[1]} < {acked}"
            for _ in range(rng.randint(1, 25)):
                line = proc.stdout.readline()
                assert line, f"round {round_no}: writer died"
                acked = int(line)
            time.sleep(rng.random() * 0.006)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            watchdog.cancel()
            proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                # Acknowledgements still in the pipe count too: each followed a returned save.
                for line in proc.stdout.read().split():
                    if line.isdigit():
                        acked = int(line)
                proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        check(d, acked)
        cuts_seen = len([n for n in os.listdir(d) if n.endswith(".wal")])
    assert cuts_seen > 3, "the rounds should have cut several segments"
