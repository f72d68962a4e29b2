"""Watch fan-out: one put delivered to N watchers (10k by default), in process, no network.

Measures the watchable store's write-path cost (`notify`: find the watchers of the key, build
one response each, queue it on its stream) and the consumers' cost of taking the responses,
for several shapes: every watcher on its own stream (one client per watch, as kubelets do),
watchers sharing streams, prefix (range) watchers instead of single-key ones, and with prev_kv.
Also the catch-up path (N unsynced watchers reading one revision from history) and the real
write path (KVStore.put committing to the Memory or LMDB backend, then its event sink fanning
out). Prints a markdown table (median of --repeat puts, after one warm-up put).

    python benchmarks/watch_fanout.py [--watchers N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from petcd.backend import Backend
from petcd.backend.lmdb import LmdbBackend, db_path
from petcd.backend.memory import MemoryBackend
from petcd.mvcc.kvstore import KVStore
from petcd.mvcc.types import PutRequest
from petcd.mvcc.watchable_store import WatchableStore
from petcd.mvcc.watcher import KeyValue, WatchStream, prefix_end


@dataclass
class TinyStore:
    """Just enough history for the watchable store: the revisions of this benchmark's puts."""

    rev: int = 1
    changes: dict[int, list[tuple[bool, KeyValue]]] = field(default_factory=dict)
    ws: WatchableStore | None = None

    def current_revision(self) -> int:
        return self.rev

    def compact_revision(self) -> int:
        return 0

    def history(self, min_rev: int, max_rev: int) -> Iterator[tuple[int, bool, KeyValue]]:
        for rev in range(min_rev, max_rev + 1):
            for is_delete, kv in self.changes.get(rev, []):
                yield rev, is_delete, kv

    def kv_at(self, key: bytes, rev: int) -> KeyValue | None:
        for r in range(rev, 0, -1):
            for _, kv in self.changes.get(r, []):
                if kv.key == key:
                    return kv
        return None

    def put(self, key: bytes, value: bytes, notify: bool = True) -> None:
        self.rev += 1
        kv = KeyValue(key=key, value=value, create_revision=2, mod_revision=self.rev, version=self.rev - 1)
        self.changes[self.rev] = [(False, kv)]
        if notify and self.ws is not None:
            self.ws.notify(self.rev, [(False, kv)])


@dataclass
class Case:
    name: str
    watchers: int
    per_stream: int
    ranged: bool = False
    prev_kv: bool = False


def setup(case: Case) -> tuple[TinyStore, WatchableStore, list[WatchStream]]:
    store = TinyStore()
    ws = WatchableStore(store, chan_buf_len=max(128, case.per_stream * 2))
    store.ws = ws
    store.put(b"/registry/pods/default/p0", b"v0")
    streams: list[WatchStream] = []
    for i in range(case.watchers):
        if i % case.per_stream == 0:
            streams.append(ws.new_watch_stream())
        if case.ranged:
            streams[-1].watch(b"/registry/pods/", b"/registry/pods0", prev_kv=case.prev_kv)
        else:
            streams[-1].watch(b"/registry/pods/default/p0", prev_kv=case.prev_kv)
    return store, ws, streams


def run(case: Case, repeat: int) -> dict[str, float]:
    store, _, streams = setup(case)
    notify_s: list[float] = []
    drain_s: list[float] = []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        store.put(b"/registry/pods/default/p0", b"value-%d" % i)
        t1 = time.perf_counter()
        delivered = sum(len(s.drain()) for s in streams)
        t2 = time.perf_counter()
        assert delivered == case.watchers, (delivered, case.watchers)
        if i:  # the first put warms up
            notify_s.append(t1 - t0)
            drain_s.append(t2 - t1)
    notify = statistics.median(notify_s)
    drain = statistics.median(drain_s)
    return {
        "notify_ms": notify * 1e3,
        "drain_ms": drain * 1e3,
        "per_watcher_us": notify / case.watchers * 1e6,
        "events_per_s": case.watchers / (notify + drain),
    }


def run_catch_up(watchers: int, repeat: int) -> dict[str, float]:
    """N watchers one revision behind: one sync_watchers round per 512 of them."""
    times: list[float] = []
    for _ in range(repeat):
        store = TinyStore()
        ws = WatchableStore(store)
        store.ws = ws
        store.put(b"/k", b"v0")
        streams = [ws.new_watch_stream() for _ in range(watchers)]
        store.put(b"/k", b"v1", notify=False)
        for s in streams:
            s.watch(b"/k", start_rev=store.rev)
        t0 = time.perf_counter()
        while ws.has_unsynced:
            ws.sync_watchers()
        times.append(time.perf_counter() - t0)
        assert sum(len(s.drain()) for s in streams) == watchers
    t = statistics.median(times)
    return {
        "notify_ms": t * 1e3,
        "drain_ms": 0.0,
        "per_watcher_us": t / watchers * 1e6,
        "events_per_s": watchers / t,
    }


def run_kvstore(watchers: int, repeat: int, backend_kind: str) -> dict[str, float]:
    """The real write path: KVStore.put (one backend commit) and its event sink fanning out."""
    with tempfile.TemporaryDirectory() as directory:
        backend: Backend
        if backend_kind == "lmdb":
            backend = LmdbBackend(db_path(Path(directory)))
        else:
            backend = MemoryBackend()
        store = KVStore(backend)
        ws = WatchableStore(store)
        store.set_event_sink(ws.event_sink)
        key = b"/registry/pods/default/p0"
        store.put(PutRequest(key, b"v0"))
        streams = [ws.new_watch_stream() for _ in range(watchers)]
        for s in streams:
            s.watch(key)
        put_s: list[float] = []
        drain_s: list[float] = []
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            store.put(PutRequest(key, b"value-%d" % i))
            t1 = time.perf_counter()
            delivered = sum(len(s.drain()) for s in streams)
            t2 = time.perf_counter()
            assert delivered == watchers
            if i:
                put_s.append(t1 - t0)
                drain_s.append(t2 - t1)
        backend.close()
    put = statistics.median(put_s)
    drain = statistics.median(drain_s)
    return {
        "notify_ms": put * 1e3,
        "drain_ms": drain * 1e3,
        "per_watcher_us": put / watchers * 1e6,
        "events_per_s": watchers / (put + drain),
    }


def run_distinct_prefixes(watchers: int, repeat: int) -> dict[str, float]:
    """N watchers on N different prefixes (one namespace each); a put reaches one of them: the
    cost of finding who watches a key when nearly nobody does."""
    store = TinyStore()
    ws = WatchableStore(store)
    store.ws = ws
    store.put(b"/a", b"x")
    s = ws.new_watch_stream()
    for i in range(watchers):
        prefix = b"/registry/pods/ns%06d/" % i
        s.watch(prefix, prefix_end(prefix))
    times: list[float] = []
    for i in range(repeat * 20):
        t0 = time.perf_counter()
        store.put(b"/registry/pods/ns%06d/pod" % (i * 7919 % watchers), b"v")
        times.append(time.perf_counter() - t0)
        assert len(s.drain()) == 1
    t = statistics.median(times)
    return {
        "notify_ms": t * 1e3,
        "drain_ms": 0.0,
        "per_watcher_us": t / watchers * 1e6,
        "events_per_s": 1 / t,
    }


def run_stalled(watchers: int, repeat: int) -> dict[str, float]:
    """N watchers whose consumers never read: the first puts park them as victims (their queues
    are full); later puts must cost nothing (a slow watcher never blocks writes)."""
    store = TinyStore()
    ws = WatchableStore(store, chan_buf_len=1)
    store.ws = ws
    store.put(b"/k", b"v")
    streams = [ws.new_watch_stream() for _ in range(watchers)]
    for s in streams:
        s.watch(b"/k")
    store.put(b"/k", b"fills the queues")
    store.put(b"/k", b"parks the watchers")
    assert len(ws.victims) == watchers
    times: list[float] = []
    for i in range(repeat * 20):
        t0 = time.perf_counter()
        store.put(b"/k", b"%d" % i)
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    return {
        "notify_ms": t * 1e3,
        "drain_ms": 0.0,
        "per_watcher_us": t / watchers * 1e6,
        "events_per_s": 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.watchers
    cases = [
        Case(f"{n} streams x 1 key watcher", n, 1),
        Case(f"{n // 100} streams x 100 key watchers", n, 100),
        Case(f"{n} streams x 1 prefix watcher", n, 1, ranged=True),
        Case(f"{n} streams x 1 key watcher, prev_kv", n, 1, prev_kv=True),
    ]
    print(f"Watch fan-out: 1 put delivered to {n} watchers (median of {args.repeat} puts)\n")
    print("| case | write path (notify) ms | consumers (drain) ms | notify us/watcher | events/s e2e |")
    print("|---|---:|---:|---:|---:|")
    rows = [(case.name, run(case, args.repeat)) for case in cases]
    rows.append((f"{n} unsynced watchers catch up 1 revision (sync_watchers)", run_catch_up(n, args.repeat)))
    rows.append(
        (f"{n} distinct prefix watchers, put reaching 1 of them", run_distinct_prefixes(n, args.repeat))
    )
    rows.append((f"{n} stalled consumers (parked as victims), a further put", run_stalled(n, args.repeat)))
    for kind in ("memory", "lmdb"):
        rows.append(
            (
                f"KVStore.put on {kind} backend + fan-out to {n} key watchers",
                run_kvstore(n, args.repeat, kind),
            )
        )
    for name, r in rows:
        print(
            f"| {name} | {r['notify_ms']:.3f} | {r['drain_ms']:.1f} | {r['per_watcher_us']:.3f} "
            f"| {r['events_per_s']:,.0f} |"
        )


if __name__ == "__main__":
    main()
