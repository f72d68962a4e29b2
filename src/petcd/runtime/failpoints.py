"""Failpoints named like etcd's gofail points, armed from the environment (GOFAIL_FAILPOINTS).

etcd's robustness tests crash or slow a member at named points of its write path by building it
with gofail and arming points through ``GOFAIL_FAILPOINTS="name=term;name2=term2"``. petcd reads
the same variable when a member starts; with it unset nothing is wrapped and nothing costs.

A term is ``[P%][N*]action``: ``action`` is ``panic`` (the process dies at once with
``os._exit(2)``, no cleanup, no flush: a crash at that point), ``sleep(MS)`` (the calling
thread sleeps, e.g. a slow fsync), or ``off``; ``P%`` fires with probability P (a
``random.Random`` seeded from GOFAIL_SEED, so a run can be replayed); ``N*`` fires at most N times.

As with gofail, points can also be armed while the member runs: with ``GOFAIL_HTTP=host:port``
a small HTTP server answers ``PUT /<name>`` (body: the term) to arm a point, ``DELETE /<name>``
to disarm it and ``GET /`` to list the armed points (etcd's robustness tests arm points this way,
once the cluster is up, so that a crash point on the write path does not fire during start-up).

The points are reached by WRAPPING the ports the Node is given (the Node itself is untouched):

    LogStore.save (with entries)     raftBeforeSave / raftAfterSave
    LogStore.save_snapshot           raftBeforeSaveSnap / raftAfterSaveSnap
    Backend write_txn commit         beforeCommit / afterCommit
    Backend.restore (a snapshot)     raftBeforeApplySnap / raftAfterApplySnap
    Backend.defrag                   defragBeforeCopy / defragBeforeRename

(etcd's ``beforeCommit``/``afterCommit`` wrap the backend batch commit; ours wrap the commit of
each backend write transaction, which is where the Node's applied batches become durable.)
"""

from __future__ import annotations

import contextlib
import http.server
import os
import random
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from petcd.backend import Backend, ReadTxn, WriteTxn
from petcd.raft.types import Entry, HardState, Snapshot
from petcd.server.ports import LogStore, PersistedLog

ENV_VAR = "GOFAIL_FAILPOINTS"
HTTP_ENV_VAR = "GOFAIL_HTTP"
SEED_ENV_VAR = "GOFAIL_SEED"
CRASH_EXIT_CODE = 2

KNOWN_POINTS = frozenset(
    {
        "raftBeforeSave",
        "raftAfterSave",
        "raftBeforeSaveSnap",
        "raftAfterSaveSnap",
        "beforeCommit",
        "afterCommit",
        "raftBeforeApplySnap",
        "raftAfterApplySnap",
        "defragBeforeCopy",
        "defragBeforeRename",
    }
)

_TERM = re.compile(
    r"^(?:(?P<pct>\d+(?:\.\d+)?)%)?(?:(?P<count>\d+)\*)?"
    r"(?P<action>panic|off|sleep\((?P<ms>\d+)\))$"
)


class FailpointError(ValueError):
    """GOFAIL_FAILPOINTS does not parse."""


@dataclass(slots=True)
class Term:
    action: str  # "panic" | "sleep" | "off"
    sleep_ms: int = 0
    percent: float = 100.0
    count: int | None = None  # None: unlimited


def parse_term(text: str) -> Term:
    m = _TERM.match(text.strip())
    if m is None:
        raise FailpointError(f"bad failpoint term {text!r} (want [P%][N*]panic|sleep(MS)|off)")
    action = m.group("action")
    return Term(
        action="sleep" if action.startswith("sleep") else action,
        sleep_ms=int(m.group("ms") or 0),
        percent=float(m.group("pct")) if m.group("pct") else 100.0,
        count=int(m.group("count")) if m.group("count") else None,
    )


def _term_text(t: Term) -> str:
    action = f"sleep({t.sleep_ms})" if t.action == "sleep" else t.action
    pct = f"{t.percent:g}%" if t.percent < 100.0 else ""
    count = f"{t.count}*" if t.count is not None else ""
    return f"{pct}{count}{action}"


def parse(spec: str) -> dict[str, Term]:
    """``"a=panic;b=sleep(10)"`` -> {name: Term}; unknown names are refused."""
    out: dict[str, Term] = {}
    for part in spec.replace("\n", ";").split(";"):
        if not part.strip():
            continue
        name, sep, term = part.partition("=")
        name = name.strip()
        if not sep:
            raise FailpointError(f"bad failpoint {part!r} (want name=term)")
        if name not in KNOWN_POINTS:
            raise FailpointError(f"unknown failpoint {name!r} (known: {', '.join(sorted(KNOWN_POINTS))})")
        out[name] = parse_term(term)
    return out


class Failpoints:
    """The armed points of this process; `hit(name)` is called at each point."""

    def __init__(self, terms: Mapping[str, Term], seed: int = 0) -> None:
        self.terms = dict(terms)
        self._rand = random.Random(seed)
        self._lock = threading.Lock()
        self._http: http.server.ThreadingHTTPServer | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Failpoints:
        env = os.environ if environ is None else environ
        fps = cls(parse(env.get(ENV_VAR, "")), int(env.get(SEED_ENV_VAR, "0") or 0))
        address = env.get(HTTP_ENV_VAR, "")
        if address:
            host, _, port = address.rpartition(":")
            fps.serve_http(host or "127.0.0.1", int(port))
        return fps

    @property
    def armed(self) -> bool:
        """Whether the ports need wrapping: a point is armed, or may be armed over HTTP."""
        return self._http is not None or any(t.action != "off" for t in self.terms.values())

    def set(self, name: str, term: str) -> None:
        if name not in KNOWN_POINTS:
            raise FailpointError(f"unknown failpoint {name!r}")
        parsed = parse_term(term)
        with self._lock:
            self.terms[name] = parsed

    def clear(self, name: str) -> None:
        with self._lock:
            self.terms.pop(name, None)

    def serve_http(self, host: str, port: int) -> int:
        """Start the arming endpoint (a daemon thread); the port it listens on."""
        fps = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _reply(self, code: int, body: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                term = self.rfile.read(length).decode()
                try:
                    fps.set(self.path.strip("/"), term)
                except FailpointError as e:
                    self._reply(400, str(e))
                    return
                self._reply(204, "")

            def do_DELETE(self) -> None:
                fps.clear(self.path.strip("/"))
                self._reply(204, "")

            def do_GET(self) -> None:
                with fps._lock:
                    armed = {n: t for n, t in fps.terms.items() if t.action != "off"}
                self._reply(200, "".join(f"{n}={_term_text(t)}\n" for n, t in sorted(armed.items())))

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the member's log to the member

        server = http.server.ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        self._http = server
        threading.Thread(target=server.serve_forever, name="gofail-http", daemon=True).start()
        return int(server.server_address[1])

    def hit(self, name: str) -> None:
        term = self.terms.get(name)
        if term is None or term.action == "off":
            return
        with self._lock:
            if term.count is not None and term.count <= 0:
                return
            if term.percent < 100.0 and self._rand.random() * 100.0 >= term.percent:
                return
            if term.count is not None:
                term.count -= 1
        if term.action == "panic":
            # What a crash leaves: nothing flushed, no finally blocks, no atexit.
            with contextlib.suppress(Exception):
                sys.stderr.write(f"failpoint {name} panic: crashing the process\n")
                sys.stderr.flush()
            os._exit(CRASH_EXIT_CODE)
        time.sleep(term.sleep_ms / 1000.0)

    def wrap_log_store(self, inner: LogStore) -> LogStore:
        return FailpointLogStore(inner, self) if self.armed else inner

    def wrap_backend(self, inner: Backend) -> Backend:
        return FailpointBackend(inner, self) if self.armed else inner


class FailpointLogStore:
    """A LogStore that reaches the raft*Save* points around the inner store's writes."""

    def __init__(self, inner: LogStore, fp: Failpoints) -> None:
        self.inner = inner
        self.fp = fp

    def load(self) -> PersistedLog:
        return self.inner.load()

    def save(self, hard_state: HardState, entries: Sequence[Entry], must_sync: bool) -> None:
        # Only saves that carry entries: a crash there can lose or keep appended entries.
        if entries:
            self.fp.hit("raftBeforeSave")
        self.inner.save(hard_state, entries, must_sync)
        if entries:
            self.fp.hit("raftAfterSave")

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self.fp.hit("raftBeforeSaveSnap")
        self.inner.save_snapshot(snapshot)
        self.fp.hit("raftAfterSaveSnap")

    def release_to(self, index: int) -> None:
        self.inner.release_to(index)


class FailpointBackend:
    """A Backend that reaches beforeCommit/afterCommit around each write transaction's commit,
    and the snapshot-install and defrag points."""

    def __init__(self, inner: Backend, fp: Failpoints) -> None:
        self.inner = inner
        self.fp = fp

    @property
    def quota_bytes(self) -> int:
        return self.inner.quota_bytes

    @property
    def read_only(self) -> bool:
        return self.inner.read_only

    def read_txn(self) -> AbstractContextManager[ReadTxn]:
        return self.inner.read_txn()

    @contextlib.contextmanager
    def _write_txn(self) -> Iterator[WriteTxn]:
        cm = self.inner.write_txn()
        txn = cm.__enter__()
        try:
            yield txn
        except BaseException:
            if not cm.__exit__(*sys.exc_info()):
                raise
            return
        self.fp.hit("beforeCommit")
        cm.__exit__(None, None, None)
        self.fp.hit("afterCommit")

    def write_txn(self) -> AbstractContextManager[WriteTxn]:
        return self._write_txn()

    def create_bucket(self, bucket: str) -> None:
        self.inner.create_bucket(bucket)

    def size_bytes(self) -> int:
        return self.inner.size_bytes()

    def size_in_use_bytes(self) -> int:
        return self.inner.size_in_use_bytes()

    def sync(self) -> None:
        self.inner.sync()

    def defrag(self) -> None:
        self.fp.hit("defragBeforeCopy")
        self.inner.defrag()
        self.fp.hit("defragBeforeRename")

    def snapshot(self) -> Iterator[bytes]:
        return self.inner.snapshot()

    def restore(self, chunks: Iterable[bytes]) -> None:
        self.fp.hit("raftBeforeApplySnap")
        self.inner.restore(chunks)
        self.fp.hit("raftAfterApplySnap")

    def close(self) -> None:
        self.inner.close()
