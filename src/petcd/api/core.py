"""The client API's request handling, independent of the transport (gRPC or the JSON gateway).

Theory of operation
-------------------
`ApiCore` holds one coroutine per unary RPC, keyed by gRPC method path ("/etcdserverpb.KV/Range").
Each one checks the request as etcd's v3rpc does, calls the facade and returns the response; every
expected failure is an `EtcdError` whose message selects the gRPC status (petcd.api.errors). The gRPC
server (petcd.api.server) and the HTTP gateway (petcd.gateway) both dispatch through `unary`, so a
request gets the same checks and errors whichever way it arrives.

The guard reproduces etcd's interceptors: a request carrying the `hasleader` metadata fails with
"etcdserver: no leader" while the member knows no leader, and a learner answers only Status and
serializable Range ("etcdserver: rpc not supported for learner"; streams are refused on learners).

Election and Lock are etcd's client-side recipes (clientv3/concurrency) run inside the server, as
etcd's v3election and v3lock servers do, over the facade's KV, lease and watch operations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from petcd.api import errors as e
from petcd.api import validate
from petcd.api.recipes import Recipes
from petcd.errors import EtcdError
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.v3electionpb import v3election_pb2 as epb
from petcd.pb.v3lockpb import v3lock_pb2 as lpb
from petcd.server.facade import EtcdFacade

Handler = Callable[[Any], Awaitable[Any]]

REQUIRE_LEADER_KEY = "hasleader"  # rpctypes.MetadataRequireLeaderKey
HAS_LEADER = "true"
MAX_NO_LEADER_COUNT = 3
SNAPSHOT = "/etcdserverpb.Maintenance/Snapshot"  # the one stream a learner serves (etcd 3.6)


def requires_leader(metadata: Iterable[tuple[str, Any]]) -> bool:
    return any(k == REQUIRE_LEADER_KEY and v == HAS_LEADER for k, v in metadata)


@dataclass(frozen=True)
class ApiOptions:
    """Server settings the API applies itself."""

    max_txn_ops: int = validate.DEFAULT_MAX_TXN_OPS
    max_request_bytes: int = 1536 * 1024  # --max-request-bytes: watch fragments stay below it
    # --election-timeout: a watch stream that asked for a leader ("hasleader") is ended with "no leader"
    # after MAX_NO_LEADER_COUNT checks this far apart find none (etcd's monitorLeader)
    election_timeout_s: float = 1.0


class ApiCore:
    """Unary RPCs over one facade (see the module docstring)."""

    def __init__(self, facade: EtcdFacade, options: ApiOptions | None = None) -> None:
        self.facade = facade
        self.options = options or ApiOptions()
        self.recipes = Recipes(facade)
        f = facade
        self.unary: dict[str, Handler] = {
            "/etcdserverpb.KV/Range": self.range,
            "/etcdserverpb.KV/Put": self.put,
            "/etcdserverpb.KV/DeleteRange": self.delete_range,
            "/etcdserverpb.KV/Txn": self.txn,
            "/etcdserverpb.KV/Compact": f.compact,
            "/etcdserverpb.Lease/LeaseGrant": f.lease_grant,
            "/etcdserverpb.Lease/LeaseRevoke": f.lease_revoke,
            "/etcdserverpb.Lease/LeaseTimeToLive": f.lease_time_to_live,
            "/etcdserverpb.Lease/LeaseLeases": f.lease_leases,
            "/etcdserverpb.Cluster/MemberAdd": self.member_add,
            "/etcdserverpb.Cluster/MemberRemove": f.member_remove,
            "/etcdserverpb.Cluster/MemberUpdate": f.member_update,
            "/etcdserverpb.Cluster/MemberList": f.member_list,
            "/etcdserverpb.Cluster/MemberPromote": f.member_promote,
            "/etcdserverpb.Maintenance/Alarm": f.alarm,
            "/etcdserverpb.Maintenance/Status": f.status,
            "/etcdserverpb.Maintenance/Defragment": f.defragment,
            "/etcdserverpb.Maintenance/Hash": f.hash,
            "/etcdserverpb.Maintenance/HashKV": f.hash_kv,
            "/etcdserverpb.Maintenance/MoveLeader": f.move_leader,
            "/v3electionpb.Election/Campaign": self.campaign,
            "/v3electionpb.Election/Proclaim": self.proclaim,
            "/v3electionpb.Election/Leader": self.leader,
            "/v3electionpb.Election/Resign": self.resign,
            "/v3lockpb.Lock/Lock": self.lock,
            "/v3lockpb.Lock/Unlock": self.unlock,
        }

    # -- interceptor ---------------------------------------------------------------------------------

    def guard(
        self, method: str, req: Any, metadata: Iterable[tuple[str, Any]] = (), stream: bool = False
    ) -> None:
        """etcd's unary/stream interceptor checks; raises EtcdError."""
        if self.facade.is_learner() and not (method == SNAPSHOT if stream else _learner_may(method, req)):
            raise EtcdError(e.NOT_SUPPORTED_FOR_LEARNER)
        if requires_leader(metadata) and self.facade.leader_id() == 0:
            raise EtcdError(e.NO_LEADER)

    # -- KV ------------------------------------------------------------------------------------------

    async def range(self, req: pb.RangeRequest) -> pb.RangeResponse:
        validate.check_range(req)
        return await self.facade.range(req)

    async def put(self, req: pb.PutRequest) -> pb.PutResponse:
        validate.check_put(req)
        return await self.facade.put(req)

    async def delete_range(self, req: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
        validate.check_delete(req)
        return await self.facade.delete_range(req)

    async def txn(self, req: pb.TxnRequest) -> pb.TxnResponse:
        validate.check_txn(req, self.options.max_txn_ops)
        return await self.facade.txn(req)

    # -- cluster -------------------------------------------------------------------------------------

    async def member_add(self, req: pb.MemberAddRequest) -> pb.MemberAddResponse:
        validate.check_peer_urls(list(req.peerURLs))
        return await self.facade.member_add(req)

    # -- election and lock ---------------------------------------------------------------------------

    async def campaign(self, req: epb.CampaignRequest) -> epb.CampaignResponse:
        return await self.recipes.campaign(req)

    async def proclaim(self, req: epb.ProclaimRequest) -> epb.ProclaimResponse:
        return await self.recipes.proclaim(req)

    async def leader(self, req: epb.LeaderRequest) -> epb.LeaderResponse:
        return await self.recipes.leader(req)

    async def resign(self, req: epb.ResignRequest) -> epb.ResignResponse:
        return await self.recipes.resign(req)

    async def lock(self, req: lpb.LockRequest) -> lpb.LockResponse:
        return await self.recipes.lock(req)

    async def unlock(self, req: lpb.UnlockRequest) -> lpb.UnlockResponse:
        return await self.recipes.unlock(req)


def _learner_may(method: str, req: Any) -> bool:
    # etcd's isRPCSupportedForLearner (3.4): Status, and Range when serializable
    if method == "/etcdserverpb.Maintenance/Status":
        return True
    return method == "/etcdserverpb.KV/Range" and bool(getattr(req, "serializable", False))
