"""An in-memory EtcdFacade for the API tests: one member, a small MVCC store with full history.

It follows etcd's semantics closely enough for the API layer and the reference etcdctl to be checked
against it (revisions, versions, prev_kv, txn compares, leases deleting their keys, watch history and
compaction), but it is a test double: everything happens on the event loop, nothing is persisted.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from petcd.errors import Compacted, EtcdError, FutureRevision
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.mvccpb import kv_pb2 as mvccpb

CLUSTER_ID = 0x1000000000000001
MEMBER_ID = 0x8E9E05C52164694D  # etcd's default single-member ID
RAFT_TERM = 2


class LeaseNotFound(EtcdError):
    message = "etcdserver: requested lease not found"


class MemberNotFound(EtcdError):
    message = "etcdserver: member not found"


class WatchDuplicate(EtcdError):
    message = "mvcc: duplicate watch ID provided on the WatchStream"


class RangeEmpty(EtcdError):
    message = "mvcc: watcher range is empty"


def in_range(k: bytes, key: bytes, end: bytes) -> bool:
    if not end:
        return k == key
    if end == b"\x00":
        return k >= key
    return key <= k < end


@dataclass
class Lease:
    id: int
    ttl: int
    granted_ttl: int
    keys: set[bytes] = field(default_factory=set)


class FakeWatchStream:
    def __init__(self, facade: FakeFacade) -> None:
        self.facade = facade
        self.queue: asyncio.Queue[pb.WatchResponse | None] = asyncio.Queue()
        self.watchers: dict[int, pb.WatchCreateRequest] = {}
        self.next_id = 0
        self.closed = False
        facade.streams.add(self)

    async def create(self, req: pb.WatchCreateRequest) -> int:
        if req.range_end and req.range_end != b"\x00" and req.key >= req.range_end:
            raise RangeEmpty()
        wid = req.watch_id
        if wid == 0:
            while self.next_id in self.watchers:
                self.next_id += 1
            wid = self.next_id
            self.next_id += 1
        elif wid in self.watchers:
            raise WatchDuplicate()
        self.watchers[wid] = req
        f = self.facade
        start = req.start_revision
        if 0 < start <= f.rev:
            if start <= f.compact_rev:
                del self.watchers[wid]
                self.queue.put_nowait(
                    pb.WatchResponse(
                        header=f.header(),
                        watch_id=wid,
                        canceled=True,
                        compact_revision=f.compact_rev,
                    )
                )
                return wid
            for rev, events in f.history:
                if rev >= start:
                    self.deliver(wid, rev, events)
        return wid

    async def cancel(self, watch_id: int) -> bool:
        return self.watchers.pop(watch_id, None) is not None

    async def request_progress(self) -> None:
        self.queue.put_nowait(pb.WatchResponse(header=self.facade.header(), watch_id=-1))

    def deliver(self, wid: int, rev: int, events: list[mvccpb.Event]) -> None:
        req = self.watchers[wid]
        if 0 < rev < req.start_revision:
            return
        out = []
        for ev in events:
            if not in_range(ev.kv.key, req.key, req.range_end):
                continue
            if ev.type == mvccpb.Event.PUT and pb.WatchCreateRequest.NOPUT in req.filters:
                continue
            if ev.type == mvccpb.Event.DELETE and pb.WatchCreateRequest.NODELETE in req.filters:
                continue
            e = mvccpb.Event()
            e.CopyFrom(ev)
            if not req.prev_kv:
                e.ClearField("prev_kv")
            out.append(e)
        if out:
            h = self.facade.header()
            h.revision = rev
            self.queue.put_nowait(pb.WatchResponse(header=h, watch_id=wid, events=out))

    async def responses(self) -> AsyncIterator[pb.WatchResponse]:
        while True:
            r = await self.queue.get()
            if r is None:
                return
            yield r

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.watchers.clear()
            self.facade.streams.discard(self)
            self.queue.put_nowait(None)


class FakeSnapshot:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    async def chunks(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.data), 10000):
            yield self.data[i : i + 10000]


class FakeFacade:
    def __init__(self) -> None:
        self.rev = 1
        self.compact_rev = 0
        self.kvs: dict[bytes, mvccpb.KeyValue] = {}
        self.snapshots: dict[int, dict[bytes, mvccpb.KeyValue]] = {1: {}}
        self.history: list[tuple[int, list[mvccpb.Event]]] = []
        self.leases: dict[int, Lease] = {}
        self.next_lease = 0x694D7A1B2C3D0000
        self.streams: set[FakeWatchStream] = set()
        self.leader = MEMBER_ID
        self.learner = False
        self.alarms: list[pb.AlarmMember] = []
        self.members = [
            pb.Member(
                ID=MEMBER_ID,
                name="default",
                peerURLs=["http://localhost:2380"],
                clientURLs=["http://localhost:2379"],
            )
        ]
        self.next_member = 0x1111
        self.db = bytes(range(256)) * 400  # 100 KiB: page-aligned like a real backend file

    # -- state ---------------------------------------------------------------------------------------

    def header(self) -> pb.ResponseHeader:
        return pb.ResponseHeader(
            cluster_id=CLUSTER_ID, member_id=MEMBER_ID, revision=self.rev, raft_term=RAFT_TERM
        )

    def leader_id(self) -> int:
        return self.leader

    def is_learner(self) -> bool:
        return self.learner

    def version_info(self) -> tuple[str, str]:
        return "3.6.0", "3.6.0"

    # -- store ---------------------------------------------------------------------------------------

    def _view(self, revision: int) -> dict[bytes, mvccpb.KeyValue]:
        if revision <= 0:
            return self.kvs
        if revision > self.rev:
            raise FutureRevision()
        if revision <= self.compact_rev:
            raise Compacted()
        best = max(r for r in self.snapshots if r <= revision)
        return self.snapshots[best]

    def _commit(self, events: list[mvccpb.Event]) -> None:
        if not events:
            return
        self.rev += 1
        for ev in events:
            ev.kv.mod_revision = self.rev
            if ev.type == mvccpb.Event.PUT:
                old = self.kvs.get(ev.kv.key)
                ev.kv.create_revision = old.create_revision if old else self.rev
                ev.kv.version = old.version + 1 if old else 1
                if old and old.lease and old.lease in self.leases:
                    self.leases[old.lease].keys.discard(ev.kv.key)
                if ev.kv.lease:
                    self.leases[ev.kv.lease].keys.add(ev.kv.key)
                self.kvs[ev.kv.key] = ev.kv
            else:
                old = self.kvs.pop(ev.kv.key)
                if old.lease and old.lease in self.leases:
                    self.leases[old.lease].keys.discard(ev.kv.key)
        self.snapshots[self.rev] = dict(self.kvs)
        self.history.append((self.rev, events))
        for s in list(self.streams):
            for wid in list(s.watchers):
                s.deliver(wid, self.rev, events)

    def _do_range(self, req: pb.RangeRequest) -> pb.RangeResponse:
        view = self._view(req.revision)
        kvs = [kv for k, kv in sorted(view.items()) if in_range(k, req.key, req.range_end)]
        if req.max_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision <= req.max_create_revision]
        if req.min_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision >= req.min_create_revision]
        attr = {0: "key", 1: "version", 2: "create_revision", 3: "mod_revision", 4: "value"}[req.sort_target]
        order = req.sort_order
        if order == pb.RangeRequest.NONE and req.sort_target != pb.RangeRequest.KEY:
            order = pb.RangeRequest.ASCEND
        if order != pb.RangeRequest.NONE:
            kvs.sort(key=lambda kv: getattr(kv, attr), reverse=order == pb.RangeRequest.DESCEND)
        resp = pb.RangeResponse(header=self.header(), count=len(kvs))
        if req.count_only:
            return resp
        more = bool(req.limit) and len(kvs) > req.limit
        if req.limit:
            kvs = kvs[: req.limit]
        for kv in kvs:
            out = resp.kvs.add()
            out.CopyFrom(kv)
            if req.keys_only:
                out.ClearField("value")
        resp.more = more
        return resp

    def _put_events(self, req: pb.PutRequest) -> tuple[list[mvccpb.Event], mvccpb.KeyValue | None]:
        old = self.kvs.get(req.key)
        if (req.ignore_value or req.ignore_lease) and old is None:
            raise EtcdError("etcdserver: key not found")
        if req.lease and req.lease not in self.leases:
            raise LeaseNotFound()
        kv = mvccpb.KeyValue(
            key=req.key,
            value=old.value if req.ignore_value and old else req.value,
            lease=old.lease if req.ignore_lease and old else req.lease,
        )
        ev = mvccpb.Event(type=mvccpb.Event.PUT, kv=kv)
        if old is not None:
            ev.prev_kv.CopyFrom(old)
        return [ev], old

    def _delete_events(self, key: bytes, end: bytes) -> list[mvccpb.Event]:
        events = []
        for k in sorted(self.kvs):
            if in_range(k, key, end):
                ev = mvccpb.Event(type=mvccpb.Event.DELETE, kv=mvccpb.KeyValue(key=k))
                ev.prev_kv.CopyFrom(self.kvs[k])
                events.append(ev)
        return events

    async def range(self, req: pb.RangeRequest) -> pb.RangeResponse:
        return self._do_range(req)

    async def put(self, req: pb.PutRequest) -> pb.PutResponse:
        events, old = self._put_events(req)
        self._commit(events)
        resp = pb.PutResponse(header=self.header())
        if req.prev_kv and old is not None:
            resp.prev_kv.CopyFrom(old)
        return resp

    async def delete_range(self, req: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
        events = self._delete_events(req.key, req.range_end)
        self._commit(events)
        resp = pb.DeleteRangeResponse(header=self.header(), deleted=len(events))
        if req.prev_kv:
            resp.prev_kvs.extend(ev.prev_kv for ev in events)
        return resp

    def _compare(self, c: pb.Compare) -> bool:
        kvs = [kv for k, kv in sorted(self.kvs.items()) if in_range(k, c.key, c.range_end)]
        if not kvs:
            kvs = [mvccpb.KeyValue(key=c.key)] if not c.range_end else []
        attr = ("version", "create_revision", "mod_revision", "value", "lease")[c.target]
        for kv in kvs:
            have, want = getattr(kv, attr), getattr(c, attr)
            ok = {
                pb.Compare.EQUAL: have == want,
                pb.Compare.NOT_EQUAL: have != want,
                pb.Compare.GREATER: have > want,
                pb.Compare.LESS: have < want,
            }[c.result]
            if not ok:
                return False
        return True

    def _run_txn(self, req: pb.TxnRequest, pending: list[mvccpb.Event]) -> pb.TxnResponse:
        ok = all(self._compare(c) for c in req.compare)
        resp = pb.TxnResponse(succeeded=ok)
        for op in req.success if ok else req.failure:
            out = resp.responses.add()
            kind = op.WhichOneof("request")
            if kind == "request_range":
                out.response_range.CopyFrom(self._do_range(op.request_range))
            elif kind == "request_put":
                events, old = self._put_events(op.request_put)
                pending.extend(events)
                self.kvs[op.request_put.key] = events[0].kv  # later ops see it
                out.response_put.SetInParent()
                if op.request_put.prev_kv and old is not None:
                    out.response_put.prev_kv.CopyFrom(old)
            elif kind == "request_delete_range":
                d = op.request_delete_range
                events = self._delete_events(d.key, d.range_end)
                for ev in events:
                    del self.kvs[ev.kv.key]
                pending.extend(events)
                out.response_delete_range.deleted = len(events)
            elif kind == "request_txn":
                out.response_txn.CopyFrom(self._run_txn(op.request_txn, pending))
        return resp

    async def txn(self, req: pb.TxnRequest) -> pb.TxnResponse:
        before = dict(self.kvs)
        pending: list[mvccpb.Event] = []
        resp = self._run_txn(req, pending)
        self.kvs = before
        # replay the ops on the real state as one revision
        self._commit_txn(pending)
        resp.header.CopyFrom(self.header())
        for sub in _sub_headers(resp):
            sub.CopyFrom(self.header())
        return resp

    def _commit_txn(self, events: list[mvccpb.Event]) -> None:
        if not events:
            return
        self.rev += 1
        for ev in events:
            ev.kv.mod_revision = self.rev
            old = self.kvs.get(ev.kv.key)
            if ev.type == mvccpb.Event.PUT:
                ev.kv.create_revision = old.create_revision if old else self.rev
                ev.kv.version = old.version + 1 if old else 1
                if ev.kv.lease:
                    self.leases[ev.kv.lease].keys.add(ev.kv.key)
                self.kvs[ev.kv.key] = ev.kv
            elif old is not None:
                del self.kvs[ev.kv.key]
        self.snapshots[self.rev] = dict(self.kvs)
        self.history.append((self.rev, events))
        for s in list(self.streams):
            for wid in list(s.watchers):
                s.deliver(wid, self.rev, events)

    async def compact(self, req: pb.CompactionRequest) -> pb.CompactionResponse:
        if req.revision <= self.compact_rev:
            raise Compacted()
        if req.revision > self.rev:
            raise FutureRevision()
        self.compact_rev = req.revision
        return pb.CompactionResponse(header=self.header())

    # -- watch ---------------------------------------------------------------------------------------

    def open_watch_stream(self) -> FakeWatchStream:
        return FakeWatchStream(self)

    # -- lease ---------------------------------------------------------------------------------------

    async def lease_grant(self, req: pb.LeaseGrantRequest) -> pb.LeaseGrantResponse:
        lid = req.ID
        if lid == 0:
            self.next_lease += 1
            lid = self.next_lease
        if lid in self.leases:
            raise EtcdError("etcdserver: lease already exists")
        self.leases[lid] = Lease(lid, req.TTL, req.TTL)
        return pb.LeaseGrantResponse(header=self.header(), ID=lid, TTL=req.TTL)

    async def lease_revoke(self, req: pb.LeaseRevokeRequest) -> pb.LeaseRevokeResponse:
        lease = self.leases.pop(req.ID, None)
        if lease is None:
            raise LeaseNotFound()
        events = []
        for k in sorted(lease.keys):
            ev = mvccpb.Event(type=mvccpb.Event.DELETE, kv=mvccpb.KeyValue(key=k))
            ev.prev_kv.CopyFrom(self.kvs[k])
            events.append(ev)
        self._commit(events)
        return pb.LeaseRevokeResponse(header=self.header())

    async def lease_keep_alive(self, req: pb.LeaseKeepAliveRequest) -> pb.LeaseKeepAliveResponse:
        lease = self.leases.get(req.ID)
        if lease is None:
            raise LeaseNotFound()
        return pb.LeaseKeepAliveResponse(header=self.header(), ID=req.ID, TTL=lease.granted_ttl)

    async def lease_time_to_live(self, req: pb.LeaseTimeToLiveRequest) -> pb.LeaseTimeToLiveResponse:
        lease = self.leases.get(req.ID)
        if lease is None:
            return pb.LeaseTimeToLiveResponse(header=self.header(), ID=req.ID, TTL=-1)
        resp = pb.LeaseTimeToLiveResponse(
            header=self.header(), ID=req.ID, TTL=lease.ttl, grantedTTL=lease.granted_ttl
        )
        if req.keys:
            resp.keys.extend(sorted(lease.keys))
        return resp

    async def lease_leases(self, req: pb.LeaseLeasesRequest) -> pb.LeaseLeasesResponse:
        return pb.LeaseLeasesResponse(
            header=self.header(), leases=[pb.LeaseStatus(ID=i) for i in self.leases]
        )

    # -- cluster -------------------------------------------------------------------------------------

    async def member_add(self, req: pb.MemberAddRequest) -> pb.MemberAddResponse:
        self.next_member += 1
        m = pb.Member(ID=self.next_member, peerURLs=req.peerURLs, isLearner=req.isLearner)
        self.members.append(m)
        return pb.MemberAddResponse(header=self.header(), member=m, members=self.members)

    def _member(self, mid: int) -> pb.Member:
        for m in self.members:
            if mid == m.ID:
                return m
        raise MemberNotFound()

    async def member_remove(self, req: pb.MemberRemoveRequest) -> pb.MemberRemoveResponse:
        self.members.remove(self._member(req.ID))
        return pb.MemberRemoveResponse(header=self.header(), members=self.members)

    async def member_update(self, req: pb.MemberUpdateRequest) -> pb.MemberUpdateResponse:
        m = self._member(req.ID)
        del m.peerURLs[:]
        m.peerURLs.extend(req.peerURLs)
        return pb.MemberUpdateResponse(header=self.header(), members=self.members)

    async def member_list(self, req: pb.MemberListRequest) -> pb.MemberListResponse:
        return pb.MemberListResponse(header=self.header(), members=self.members)

    async def member_promote(self, req: pb.MemberPromoteRequest) -> pb.MemberPromoteResponse:
        m = self._member(req.ID)
        if not m.isLearner:
            raise EtcdError("etcdserver: can only promote a learner member")
        m.isLearner = False
        return pb.MemberPromoteResponse(header=self.header(), members=self.members)

    # -- maintenance ---------------------------------------------------------------------------------

    async def alarm(self, req: pb.AlarmRequest) -> pb.AlarmResponse:
        if req.action == pb.AlarmRequest.ACTIVATE:
            self.alarms.append(pb.AlarmMember(memberID=req.memberID, alarm=req.alarm))
        elif req.action == pb.AlarmRequest.DEACTIVATE:
            self.alarms = [a for a in self.alarms if a.alarm != req.alarm]
        return pb.AlarmResponse(header=self.header(), alarms=self.alarms)

    async def status(self, req: pb.StatusRequest) -> pb.StatusResponse:
        return pb.StatusResponse(
            header=self.header(),
            version="3.6.0",
            dbSize=len(self.db),
            leader=self.leader,
            raftIndex=self.rev + 3,
            raftTerm=RAFT_TERM,
            raftAppliedIndex=self.rev + 3,
            dbSizeInUse=len(self.db) // 2,
        )

    async def defragment(self, req: pb.DefragmentRequest) -> pb.DefragmentResponse:
        return pb.DefragmentResponse(header=self.header())

    async def hash(self, req: pb.HashRequest) -> pb.HashResponse:
        return pb.HashResponse(header=self.header(), hash=zlib.crc32(repr(sorted(self.kvs)).encode()))

    async def hash_kv(self, req: pb.HashKVRequest) -> pb.HashKVResponse:
        return pb.HashKVResponse(
            header=self.header(),
            hash=zlib.crc32(repr(sorted(self.kvs)).encode()),
            compact_revision=self.compact_rev,
        )

    async def snapshot(self) -> FakeSnapshot:
        return FakeSnapshot(self.db)

    async def move_leader(self, req: pb.MoveLeaderRequest) -> pb.MoveLeaderResponse:
        self._member(req.targetID)
        return pb.MoveLeaderResponse(header=self.header())


def _sub_headers(resp: pb.TxnResponse) -> list[pb.ResponseHeader]:
    out = []
    for r in resp.responses:
        kind = r.WhichOneof("response")
        if kind == "response_range":
            out.append(r.response_range.header)
        elif kind == "response_put":
            out.append(r.response_put.header)
        elif kind == "response_delete_range":
            out.append(r.response_delete_range.header)
        elif kind == "response_txn":
            out.append(r.response_txn.header)
            out.extend(_sub_headers(r.response_txn))
    return out
