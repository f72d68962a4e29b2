"""Client traffic: the etcd and Kubernetes profiles, and watchers, each recording what it saw.

Every client is a thread with its own `random.Random` (derived from the run's seed) and its own
gRPC channels, one per member. A client talks to one member at a time (as a client pinned to an
endpoint) and moves to the next member when a request fails at the transport level. Requests are
never retried: a write that failed has an unknown outcome and is recorded so (see `history`).

Profiles (weights are relative):
* etcd: get, stale (serializable) get, range over the keys, put, delete, multi-op txn (reads of
  some keys, puts and deletes of others), compare-and-set on mod_revision, put with a lease, lease
  grant/revoke, defragment (rare).
* kubernetes: paginated list (limit; later pages at the first page's revision), get, create
  (txn: mod_revision == 0 -> put), optimistic update (txn: mod_revision == the one last seen ->
  put), delete (txn: mod_revision == the one last seen -> delete), events put with short
  leases. Watchers on the prefix start from a list's revision + 1 (as informers do).

Watchers (`Watcher`) record each stream as a `WatchRecord` (petcd.sim.server_checker) plus the
created/canceled flags and the progress notifications, so the checkers can judge the stream.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc
from petcd.pb.mvccpb import kv_pb2
from petcd.robustness.cluster import Cluster
from petcd.robustness.history import History, Operation, Projector, to_json
from petcd.sim.server_checker import WatchEvent, WatchRecord

REQUEST_TIMEOUT_S = 3.0
ETCD_KEYS = [f"key{i}".encode() for i in range(8)]
ETCD_RANGE = (b"key", b"key:")  # every key<digit>, and nothing else
LEASE_PREFIX = b"lease/"
K8S_PODS = b"/registry/pods/"
K8S_KEYS = [K8S_PODS + f"default/pod-{i:02d}".encode() for i in range(12)]
K8S_EVENTS = b"/registry/events/"
K8S_PREFIX = b"/registry/"
K8S_LIST_LIMIT = 5
PROFILES = ("etcd", "kubernetes")


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def universe(profile: str) -> list[bytes]:
    return ETCD_KEYS if profile == "etcd" else K8S_KEYS


class Clock:
    """Microseconds since the run began (shared by every client: one time line)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic_ns()

    def now_us(self) -> int:
        return (time.monotonic_ns() - self.t0) // 1000


@dataclass(slots=True)
class Context:
    cluster: Cluster
    history: History
    clock: Clock
    profile: str
    stop: threading.Event
    # Harness self-test only: "stale-reads" sends every get as a serializable read but records
    # it as a linearizable one, a bug the checkers must find once a member falls behind.
    inject: str = ""
    defrag_traffic: bool = True  # the etcd profile's client Defragment requests
    projector: Projector = field(init=False)

    def __post_init__(self) -> None:
        self.projector = Projector(self.history, universe(self.profile))


class Client(threading.Thread):
    def __init__(self, ctx: Context, index: int, seed: int) -> None:
        super().__init__(name=f"client-{index}", daemon=True)
        self.ctx = ctx
        self.index = index
        self.rand = random.Random(seed)
        self.member = index % len(ctx.cluster.members)
        self.counter = 0
        self.leases: list[int] = []
        self.mods: dict[bytes, int] = {}  # key -> last mod_revision seen (kubernetes updates)
        self.errors = 0

    # ------------------------------------------------------------------ plumbing

    def _stub_kv(self) -> rpc_pb2_grpc.KVStub:
        return rpc_pb2_grpc.KVStub(self.ctx.cluster.channel(self.ctx.cluster.members[self.member]))

    def _value(self) -> bytes:
        self.counter += 1
        return f"c{self.index}-{self.counter}".encode()

    def _failed(self, err: grpc.RpcError) -> None:
        self.errors += 1
        if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            self.member = (self.member + 1) % len(self.ctx.cluster.members)
            time.sleep(0.05)

    def _call(
        self,
        kind: str,
        call: Callable[[float], object],
        request: object,
        project: Callable[[object | None, int, int | None, int], list],  # type: ignore[type-arg]
        write: bool,
    ) -> object | None:
        """Run one request, record it (with its projection); the response or None."""
        member = self.member
        op = Operation(
            id=self.ctx.history.next_id(),
            client=self.index,
            member=member,
            kind=kind,
            invoke_us=self.ctx.clock.now_us(),
            request=to_json(request),  # type: ignore[arg-type]
        )
        try:
            resp = call(REQUEST_TIMEOUT_S)
        except grpc.RpcError as err:
            op.error = f"{err.code().name}: {err.details()}"
            if write:
                op.kv_ops = project(None, op.invoke_us, None, member)
                self.ctx.history.add(op)
            self._failed(err)
            return None
        op.return_us = self.ctx.clock.now_us()
        op.response = to_json(resp)  # type: ignore[arg-type]
        op.kv_ops = project(resp, op.invoke_us, op.return_us, member)
        self.ctx.history.add(op)
        return resp

    def range(self, req: pb.RangeRequest, kind: str = "range") -> pb.RangeResponse | None:
        stub = self._stub_kv()
        sent = req
        if kind == "get" and self.ctx.inject == "stale-reads":
            sent = pb.RangeRequest()
            sent.CopyFrom(req)
            sent.serializable = True
        resp = self._call(
            kind,
            lambda t: stub.Range(sent, timeout=t),
            req,
            lambda r, i, o, m: self.ctx.projector.range(req, r, i, o or 0, m),  # type: ignore[arg-type]
            write=False,
        )
        if isinstance(resp, pb.RangeResponse):
            for kv in resp.kvs:
                self.mods[kv.key] = kv.mod_revision
            return resp
        return None

    def put(self, key: bytes, lease: int = 0) -> pb.PutResponse | None:
        req = pb.PutRequest(key=key, value=self._value(), lease=lease)
        stub = self._stub_kv()
        resp = self._call(
            "put",
            lambda t: stub.Put(req, timeout=t),
            req,
            lambda r, i, o, m: self.ctx.projector.put(req, r, i, o, m),  # type: ignore[arg-type]
            write=True,
        )
        return resp if isinstance(resp, pb.PutResponse) else None

    def delete(self, key: bytes) -> None:
        req = pb.DeleteRangeRequest(key=key)
        stub = self._stub_kv()
        self._call(
            "delete",
            lambda t: stub.DeleteRange(req, timeout=t),
            req,
            lambda r, i, o, m: self.ctx.projector.delete(req, r, i, o, m),  # type: ignore[arg-type]
            write=True,
        )

    def txn(self, req: pb.TxnRequest, kind: str = "txn") -> pb.TxnResponse | None:
        stub = self._stub_kv()
        resp = self._call(
            kind,
            lambda t: stub.Txn(req, timeout=t),
            req,
            lambda r, i, o, m: self.ctx.projector.txn(req, r, i, o, m),  # type: ignore[arg-type]
            write=True,
        )
        return resp if isinstance(resp, pb.TxnResponse) else None

    def cas(self, key: bytes, expect_mod: int, kind: str = "cas") -> pb.TxnResponse | None:
        req = pb.TxnRequest(
            compare=[
                pb.Compare(key=key, target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=expect_mod)
            ],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=key, value=self._value()))],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key))],
        )
        resp = self.txn(req, kind)
        if resp is not None:
            if resp.succeeded:
                self.mods[key] = resp.header.revision
            else:
                kvs = resp.responses[0].response_range.kvs
                self.mods[key] = kvs[0].mod_revision if kvs else 0
        return resp

    def guarded_delete(self, key: bytes, expect_mod: int) -> None:
        """Kubernetes' delete: only if the key is still at the mod_revision last seen."""
        req = pb.TxnRequest(
            compare=[
                pb.Compare(key=key, target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=expect_mod)
            ],
            success=[pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key))],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key))],
        )
        resp = self.txn(req, "delete")
        if resp is not None:
            if resp.succeeded:
                self.mods[key] = 0
            else:
                kvs = resp.responses[0].response_range.kvs
                self.mods[key] = kvs[0].mod_revision if kvs else 0

    def _lease_call(self, kind: str, call: Callable[[float], object], request: object) -> object | None:
        return self._call(kind, call, request, lambda r, i, o, m: [], write=True)

    def grant(self, ttl_s: int) -> int:
        stub = rpc_pb2_grpc.LeaseStub(self.ctx.cluster.channel(self.ctx.cluster.members[self.member]))
        req = pb.LeaseGrantRequest(TTL=ttl_s)
        resp = self._lease_call("lease-grant", lambda t: stub.LeaseGrant(req, timeout=t), req)
        if isinstance(resp, pb.LeaseGrantResponse) and resp.ID:
            self.leases.append(resp.ID)
            return int(resp.ID)
        return 0

    def revoke(self) -> None:
        if not self.leases:
            return
        lease = self.leases.pop(self.rand.randrange(len(self.leases)))
        stub = rpc_pb2_grpc.LeaseStub(self.ctx.cluster.channel(self.ctx.cluster.members[self.member]))
        req = pb.LeaseRevokeRequest(ID=lease)
        self._lease_call("lease-revoke", lambda t: stub.LeaseRevoke(req, timeout=t), req)

    def defragment(self) -> None:
        stub = rpc_pb2_grpc.MaintenanceStub(self.ctx.cluster.channel(self.ctx.cluster.members[self.member]))
        req = pb.DefragmentRequest()
        self._call(
            "defragment",
            lambda t: stub.Defragment(req, timeout=10.0),
            req,
            lambda r, i, o, m: [],
            write=False,
        )

    # ------------------------------------------------------------------ profiles

    def run(self) -> None:
        step = self.etcd_step if self.ctx.profile == "etcd" else self.kubernetes_step
        while not self.ctx.stop.is_set():
            step()

    def etcd_step(self) -> None:
        r = self.rand
        key = r.choice(ETCD_KEYS)
        choice = r.choices(
            ["get", "sget", "range", "put", "delete", "txn", "cas", "lease-put", "lease-revoke", "defrag"],
            weights=[15, 8, 8, 20, 6, 10, 15, 4, 2, 0.3 if self.ctx.defrag_traffic else 0.0],
        )[0]
        if choice == "get":
            self.range(pb.RangeRequest(key=key), "get")
        elif choice == "sget":
            self.range(pb.RangeRequest(key=key, serializable=True), "stale-get")
        elif choice == "range":
            self.range(pb.RangeRequest(key=ETCD_RANGE[0], range_end=ETCD_RANGE[1]), "range")
        elif choice == "put":
            self.put(key)
        elif choice == "delete":
            self.delete(key)
        elif choice == "txn":
            keys = r.sample(ETCD_KEYS, 3)
            ops = [pb.RequestOp(request_range=pb.RangeRequest(key=keys[0]))]
            ops.append(pb.RequestOp(request_put=pb.PutRequest(key=keys[1], value=self._value())))
            if r.random() < 0.5:
                ops.append(pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=keys[2])))
            else:
                ops.append(pb.RequestOp(request_put=pb.PutRequest(key=keys[2], value=self._value())))
            self.txn(pb.TxnRequest(success=ops), "txn")
        elif choice == "cas":
            self.cas(key, self.mods.get(key, 0) if r.random() < 0.8 else r.randrange(0, 5))
        elif choice == "lease-put":
            lease = self.leases[-1] if self.leases and r.random() < 0.7 else self.grant(r.choice((3, 10, 30)))
            if lease:
                self.put(LEASE_PREFIX + f"{self.index}-{r.randrange(4)}".encode(), lease)
        elif choice == "lease-revoke":
            self.revoke()
        else:
            self.defragment()

    def kubernetes_step(self) -> None:
        r = self.rand
        key = r.choice(K8S_KEYS)
        choice = r.choices(
            ["list", "get", "create", "update", "delete", "event"], weights=[8, 10, 15, 40, 8, 6]
        )[0]
        if choice == "list":
            self.list_pods()
        elif choice == "get":
            self.range(pb.RangeRequest(key=key), "get")
        elif choice == "create":
            self.cas(key, 0, "create")
        elif choice == "update":
            self.cas(key, self.mods.get(key, 0), "update")
        elif choice == "delete":
            self.guarded_delete(key, self.mods.get(key, 0))
        else:
            lease = self.leases[-1] if self.leases and r.random() < 0.8 else self.grant(r.choice((2, 5, 10)))
            if len(self.leases) > 4:
                self.leases.pop(0)
            if lease:
                self.put(K8S_EVENTS + f"{self.index}-{r.randrange(6)}".encode(), lease)

    def list_pods(self) -> int:
        """A paginated list; the revision of its first page (0: failed)."""
        end = prefix_end(K8S_PODS)
        first = self.range(pb.RangeRequest(key=K8S_PODS, range_end=end, limit=K8S_LIST_LIMIT), "list")
        if first is None:
            return 0
        rev = first.header.revision
        resp = first
        pages = 1
        while resp.more and resp.kvs and pages < 10 and not self.ctx.stop.is_set():
            start = resp.kvs[-1].key + b"\x00"
            page = self.range(
                pb.RangeRequest(key=start, range_end=end, limit=K8S_LIST_LIMIT, revision=rev), "list-page"
            )
            if page is None:
                return 0
            resp = page
            pages += 1
        return int(rev)


# ------------------------------------------------------------------------------ watchers


@dataclass(slots=True)
class WatchStream:
    """A WatchRecord and what the generic record does not keep."""

    record: WatchRecord
    created: list[bool] = field(default_factory=list)  # per response: the created flag
    progress: list[tuple[int, int]] = field(default_factory=list)  # (response index, revision)
    errors: list[str] = field(default_factory=list)
    headers: list[int] = field(default_factory=list)  # per recorded response: its header revision
    compact_revision: int = 0
    closed: bool = False


class Watcher(threading.Thread):
    """One logical watch on [start, end) from `start_rev` (0: from a list's revision + 1),
    resumed (a new stream on the next member) after errors."""

    def __init__(  # noqa: PLR0917 - what a watch is
        self, ctx: Context, index: int, start: bytes, end: bytes, start_rev: int, seed: int
    ) -> None:
        super().__init__(name=f"watcher-{index}", daemon=True)
        self.ctx = ctx
        self.index = index
        self.start_key = start
        self.end_key = end
        self.next_rev = start_rev
        self.rand = random.Random(seed)
        self.member = index % len(ctx.cluster.members)
        self.streams: list[WatchStream] = []
        self._requests: queue.Queue[pb.WatchRequest | None] | None = None
        self._call: grpc.Future | None = None
        self._lock = threading.Lock()
        self.draining = threading.Event()  # set: the run is over, keep the stream until told `finish`
        self.finished = threading.Event()

    @property
    def told(self) -> int:
        """The highest revision the current stream has been told about (events or progress)."""
        if not self.streams:
            return 0
        s = self.streams[-1]
        return max((rev for rev, _ in s.record.responses), default=0)

    def request_progress(self) -> None:
        with self._lock:
            if self._requests is not None:
                self._requests.put(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))

    def finish(self) -> None:
        self.finished.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def _list_revision(self) -> int:
        """As an informer starts: list the range, then watch from the list's revision + 1."""
        while not self.finished.is_set() and not self.ctx.stop.is_set():
            m = self.ctx.cluster.members[self.member]
            try:
                resp = rpc_pb2_grpc.KVStub(self.ctx.cluster.channel(m)).Range(
                    pb.RangeRequest(key=self.start_key, range_end=self.end_key, count_only=True),
                    timeout=REQUEST_TIMEOUT_S,
                )
                return int(resp.header.revision) + 1
            except grpc.RpcError:
                self.member = (self.member + 1) % len(self.ctx.cluster.members)
                time.sleep(0.2)
        return 1

    def run(self) -> None:
        if self.next_rev == 0:
            self.next_rev = self._list_revision()
        wid = 0
        while not self.finished.is_set():
            if self.ctx.stop.is_set() and not self.draining.is_set():
                break
            wid += 1
            self._one_stream(wid)
            if not self.finished.is_set():
                self.member = (self.member + 1) % len(self.ctx.cluster.members)
                time.sleep(0.2)

    def _one_stream(self, wid: int) -> None:
        m = self.ctx.cluster.members[self.member]
        record = WatchRecord(
            id=self.index * 1000 + wid,
            member=self.member,
            start=self.start_key,
            end=self.end_key,
            start_rev=self.next_rev,
            prev_kv=True,
        )
        stream = WatchStream(record)
        requests: queue.Queue[pb.WatchRequest | None] = queue.Queue()
        requests.put(
            pb.WatchRequest(
                create_request=pb.WatchCreateRequest(
                    key=self.start_key,
                    range_end=self.end_key,
                    start_revision=self.next_rev,
                    prev_kv=True,
                    progress_notify=True,
                )
            )
        )

        stub = rpc_pb2_grpc.WatchStub(self.ctx.cluster.channel(m))
        call = stub.Watch(drain(requests), metadata=[("hasleader", "true")])
        with self._lock:
            self._requests = requests
            self._call = call
            self.streams.append(stream)
        try:
            for resp in call:
                if not self._record(stream, resp):
                    break
        except grpc.RpcError as err:
            stream.errors.append(f"{err.code().name}: {err.details()}")
        finally:
            stream.closed = True
            with self._lock:
                self._requests = None
                self._call = None
            requests.put(None)
            call.cancel()

    def _record(self, stream: WatchStream, resp: pb.WatchResponse) -> bool:
        """Keep one response; False when the stream is over."""
        rec = stream.record
        stream.created.append(resp.created)
        if resp.canceled:
            rec.canceled = resp.cancel_reason or "canceled"
            stream.compact_revision = resp.compact_revision
            if resp.compact_revision:
                self.next_rev = max(self.next_rev, resp.compact_revision)
            return False
        if resp.created:
            return True
        events = [_event(e) for e in resp.events]
        if not events:
            stream.progress.append((len(rec.responses), resp.header.revision))
        # An event response's header may name a revision beyond its events while the watcher is
        # still catching up (etcd sends history in batches, each with the current revision): only
        # a progress notification says "everything up to here was sent".
        stream.headers.append(resp.header.revision)
        rec.responses.append((events[-1].revision if events else resp.header.revision, events))
        if events:
            self.next_rev = max(self.next_rev, events[-1].revision + 1)
        else:
            self.next_rev = max(self.next_rev, resp.header.revision + 1)
        return True


def drain(requests: queue.Queue[pb.WatchRequest | None]) -> Iterator[pb.WatchRequest]:
    """A stream's requests, as they are queued, until None."""
    while True:
        item = requests.get()
        if item is None:
            return
        yield item


def _event(e: kv_pb2.Event) -> WatchEvent:
    kv = e.kv
    prev = (e.prev_kv.value, e.prev_kv.mod_revision) if e.HasField("prev_kv") else None
    if e.type == kv_pb2.Event.DELETE:
        return WatchEvent(kv.mod_revision, kv.key, None, prev)
    return WatchEvent(kv.mod_revision, kv.key, kv.value, prev)
