"""etcd's election and lock recipes (clientv3/concurrency), run in the server over the facade.

etcd's v3election and v3lock servers open a client to their own member and use the concurrency
package; here the same steps call the facade directly:

* a candidate's key is "<name>/<lease ID in hex>" put with its lease; the candidate whose key has the
  lowest create revision under "<name>/" leads (or holds the lock);
* waiting is `wait_deletes`: find the newest key created before ours and watch it until it is deleted,
  repeatedly, until no older key remains;
* Proclaim and Resign act only while our key still has the create revision we campaigned with.

Errors the recipes raise themselves ("election: not leader", ...) are not in the error table and reach
the client as UNKNOWN with that text, as etcd's do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from petcd.errors import EtcdError
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.mvccpb import kv_pb2 as mvccpb
from petcd.pb.v3electionpb import v3election_pb2 as epb
from petcd.pb.v3lockpb import v3lock_pb2 as lpb
from petcd.server.facade import EtcdFacade

ELECTION_NOT_LEADER = "election: not leader"
ELECTION_NO_LEADER = "election: no leader"
MISSING_LEADER_KEY = '"leader" field must be provided'
LOST_WATCHER = "lost watcher waiting for delete"
DEFAULT_SESSION_TTL = 60  # concurrency.defaultSessionTTL: a lock without a lease gets its own


def prefix_end(prefix: bytes) -> bytes:
    """The range end covering every key that starts with `prefix` (clientv3.GetPrefixRangeEnd)."""
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\x00"


def candidate_key(prefix: bytes, lease: int) -> bytes:
    return prefix + format(lease & 0xFFFFFFFFFFFFFFFF, "x").encode()


def _first_create(prefix: bytes) -> pb.RangeRequest:
    return pb.RangeRequest(
        key=prefix,
        range_end=prefix_end(prefix),
        sort_order=pb.RangeRequest.ASCEND,
        sort_target=pb.RangeRequest.CREATE,
        limit=1,
    )


def _create_rev_is(key: bytes, rev: int) -> pb.Compare:
    return pb.Compare(key=key, target=pb.Compare.CREATE, result=pb.Compare.EQUAL, create_revision=rev)


class Recipes:
    """Campaign/Proclaim/Leader/Resign/Observe and Lock/Unlock over one facade."""

    def __init__(self, facade: EtcdFacade) -> None:
        self.facade = facade

    # -- shared waiting ------------------------------------------------------------------------------

    async def wait_deletes(self, prefix: bytes, max_create_rev: int) -> pb.ResponseHeader:
        """Wait until no key under `prefix` has create revision <= max_create_rev (waitDeletes)."""
        while True:
            req = pb.RangeRequest(
                key=prefix,
                range_end=prefix_end(prefix),
                sort_order=pb.RangeRequest.DESCEND,
                sort_target=pb.RangeRequest.CREATE,
                limit=1,
                max_create_revision=max_create_rev,
            )
            resp = await self.facade.range(req)
            if not resp.kvs:
                return resp.header
            await self.wait_delete(resp.kvs[0].key, resp.header.revision)

    async def wait_delete(self, key: bytes, rev: int) -> None:
        stream = self.facade.open_watch_stream()
        try:
            await stream.create(pb.WatchCreateRequest(key=key, start_revision=rev))
            async for wr in stream.responses():
                if any(ev.type == mvccpb.Event.DELETE for ev in wr.events):
                    return
                if wr.canceled:
                    raise EtcdError(wr.cancel_reason or LOST_WATCHER)
            raise EtcdError(LOST_WATCHER)
        finally:
            await stream.close()

    # -- election ------------------------------------------------------------------------------------

    async def _session_lease(self, lease: int) -> int:
        """etcd's concurrency.NewSession: no lease given (0) means a fresh one of DEFAULT_SESSION_TTL."""
        if lease != 0:
            return lease
        grant = await self.facade.lease_grant(pb.LeaseGrantRequest(TTL=DEFAULT_SESSION_TTL))
        return grant.ID

    async def campaign(self, req: epb.CampaignRequest) -> epb.CampaignResponse:
        lease = await self._session_lease(req.lease)
        req = epb.CampaignRequest(name=req.name, lease=lease, value=req.value)
        prefix = req.name + b"/"
        key = candidate_key(prefix, req.lease)
        txn = pb.TxnRequest(
            compare=[_create_rev_is(key, 0)],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=key, value=req.value, lease=req.lease))],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key))],
        )
        resp = await self.facade.txn(txn)
        leader_rev = resp.header.revision
        if not resp.succeeded:
            kv = resp.responses[0].response_range.kvs[0]
            leader_rev = kv.create_revision
            if kv.value != req.value:
                leader = epb.LeaderKey(name=req.name, key=key, rev=leader_rev, lease=req.lease)
                try:
                    await self.proclaim(epb.ProclaimRequest(leader=leader, value=req.value))
                except EtcdError:
                    await self.resign(epb.ResignRequest(leader=leader))
                    raise
        try:
            await self.wait_deletes(prefix, leader_rev - 1)
        except BaseException:
            # a campaign given up (client gone) must not leave its key queued (etcd resigns too)
            leader = epb.LeaderKey(name=req.name, key=key, rev=leader_rev, lease=req.lease)
            await self.resign(epb.ResignRequest(leader=leader))
            raise
        return epb.CampaignResponse(
            header=resp.header,
            leader=epb.LeaderKey(name=req.name, key=key, rev=leader_rev, lease=req.lease),
        )

    async def proclaim(self, req: epb.ProclaimRequest) -> epb.ProclaimResponse:
        if not req.HasField("leader"):
            raise EtcdError(MISSING_LEADER_KEY)
        lk = req.leader
        txn = pb.TxnRequest(
            compare=[_create_rev_is(lk.key, lk.rev)],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=lk.key, value=req.value, lease=lk.lease))],
        )
        resp = await self.facade.txn(txn)
        if not resp.succeeded:
            raise EtcdError(ELECTION_NOT_LEADER)
        return epb.ProclaimResponse(header=resp.header)

    async def resign(self, req: epb.ResignRequest) -> epb.ResignResponse:
        if not req.HasField("leader"):
            raise EtcdError(MISSING_LEADER_KEY)
        lk = req.leader
        txn = pb.TxnRequest(
            compare=[_create_rev_is(lk.key, lk.rev)],
            success=[pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=lk.key))],
        )
        resp = await self.facade.txn(txn)
        return epb.ResignResponse(header=resp.header)

    async def leader(self, req: epb.LeaderRequest) -> epb.LeaderResponse:
        resp = await self.facade.range(_first_create(req.name + b"/"))
        if not resp.kvs:
            raise EtcdError(ELECTION_NO_LEADER)
        return epb.LeaderResponse(header=resp.header, kv=resp.kvs[0])

    async def observe(self, req: epb.LeaderRequest) -> AsyncIterator[epb.LeaderResponse]:
        """The leader's value each time it changes, and each new leader (Election.observe)."""
        prefix = req.name + b"/"
        while True:
            resp = await self.facade.range(_first_create(prefix))
            if resp.kvs:
                header, kv = resp.header, resp.kvs[0]
            else:
                header, kv = await self._first_put(prefix, resp.header.revision)
            yield epb.LeaderResponse(header=header, kv=kv)
            stream = self.facade.open_watch_stream()
            try:
                await stream.create(pb.WatchCreateRequest(key=kv.key, start_revision=header.revision + 1))
                deleted = False
                async for wr in stream.responses():
                    if wr.canceled:
                        return
                    for ev in wr.events:
                        if ev.type == mvccpb.Event.DELETE:
                            deleted = True
                            break
                        yield epb.LeaderResponse(header=wr.header, kv=ev.kv)
                    if deleted:
                        break
                if not deleted:
                    return
            finally:
                await stream.close()

    async def _first_put(self, prefix: bytes, rev: int) -> tuple[pb.ResponseHeader, mvccpb.KeyValue]:
        stream = self.facade.open_watch_stream()
        try:
            await stream.create(
                pb.WatchCreateRequest(key=prefix, range_end=prefix_end(prefix), start_revision=rev)
            )
            async for wr in stream.responses():
                if wr.canceled:
                    break
                for ev in wr.events:
                    if ev.type == mvccpb.Event.PUT:
                        header = pb.ResponseHeader()
                        header.CopyFrom(wr.header)
                        header.revision = ev.kv.mod_revision
                        return header, ev.kv
            raise EtcdError(LOST_WATCHER)
        finally:
            await stream.close()

    # -- lock ----------------------------------------------------------------------------------------

    async def lock(self, req: lpb.LockRequest) -> lpb.LockResponse:
        lease = await self._session_lease(req.lease)
        prefix = req.name + b"/"
        key = candidate_key(prefix, lease)
        get_owner = pb.RequestOp(request_range=_first_create(prefix))
        txn = pb.TxnRequest(
            compare=[_create_rev_is(key, 0)],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=key, lease=lease)), get_owner],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key)), get_owner],
        )
        resp = await self.facade.txn(txn)
        my_rev = resp.header.revision
        if not resp.succeeded:
            my_rev = resp.responses[0].response_range.kvs[0].create_revision
        owner = resp.responses[1].response_range.kvs
        if not owner or owner[0].create_revision == my_rev:
            return lpb.LockResponse(header=resp.header, key=key)
        try:
            header = await self.wait_deletes(prefix, my_rev - 1)
        except BaseException:
            await self.facade.delete_range(pb.DeleteRangeRequest(key=key))
            raise
        return lpb.LockResponse(header=header, key=key)

    async def unlock(self, req: lpb.UnlockRequest) -> lpb.UnlockResponse:
        resp = await self.facade.delete_range(pb.DeleteRangeRequest(key=req.key))
        return lpb.UnlockResponse(header=resp.header)
