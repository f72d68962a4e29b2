"""The table of etcd's RPCs: gRPC method, gateway path and message names.

Both transports look calls up here by etcd's method name (``Range``, ``MemberList``, ...), so the
rest of the client speaks one vocabulary. Messages cross this boundary as proto3-JSON dicts
(``preserving_proto_field_name``: snake_case or etcd's own camelCase names, int64 as strings,
bytes as base64, enums by name, default values left out), which is exactly what the JSON gateway
sends and what ``json_format.MessageToDict`` makes of a gRPC reply. Nothing here imports protobuf.
"""

from __future__ import annotations


class Rpc:
    service: str  # full gRPC service name
    method: str
    path: str  # JSON gateway path
    request: str  # message class name in pb_module
    response: str
    pb_module: str  # module under petcd.pb holding the messages

    __slots__ = ("method", "path", "pb_module", "request", "response", "service")

    def __init__(  # noqa: PLR0917 (a table row: positional reads best)
        self, service: str, method: str, path: str, request: str, response: str, pb_module: str
    ) -> None:
        self.service = service
        self.method = method
        self.path = path
        self.request = request
        self.response = response
        self.pb_module = pb_module


_KV = "etcdserverpb.KV"
_LEASE = "etcdserverpb.Lease"
_CLUSTER = "etcdserverpb.Cluster"
_MAINT = "etcdserverpb.Maintenance"
_AUTH = "etcdserverpb.Auth"
_RPC_MOD = "etcdserverpb.rpc_pb2"


def _e(service: str, method: str, path: str, request: str, response: str) -> Rpc:
    return Rpc(service, method, path, request, response, _RPC_MOD)


RPCS: dict[str, Rpc] = {
    r.method: r
    for r in (
        _e(_KV, "Range", "/v3/kv/range", "RangeRequest", "RangeResponse"),
        _e(_KV, "Put", "/v3/kv/put", "PutRequest", "PutResponse"),
        _e(_KV, "DeleteRange", "/v3/kv/deleterange", "DeleteRangeRequest", "DeleteRangeResponse"),
        _e(_KV, "Txn", "/v3/kv/txn", "TxnRequest", "TxnResponse"),
        _e(_KV, "Compact", "/v3/kv/compaction", "CompactionRequest", "CompactionResponse"),
        _e("etcdserverpb.Watch", "Watch", "/v3/watch", "WatchRequest", "WatchResponse"),
        _e(_LEASE, "LeaseGrant", "/v3/lease/grant", "LeaseGrantRequest", "LeaseGrantResponse"),
        _e(_LEASE, "LeaseRevoke", "/v3/lease/revoke", "LeaseRevokeRequest", "LeaseRevokeResponse"),
        _e(
            _LEASE, "LeaseKeepAlive", "/v3/lease/keepalive", "LeaseKeepAliveRequest", "LeaseKeepAliveResponse"
        ),
        _e(
            _LEASE,
            "LeaseTimeToLive",
            "/v3/lease/timetolive",
            "LeaseTimeToLiveRequest",
            "LeaseTimeToLiveResponse",
        ),
        _e(_LEASE, "LeaseLeases", "/v3/lease/leases", "LeaseLeasesRequest", "LeaseLeasesResponse"),
        _e(_CLUSTER, "MemberAdd", "/v3/cluster/member/add", "MemberAddRequest", "MemberAddResponse"),
        _e(
            _CLUSTER,
            "MemberRemove",
            "/v3/cluster/member/remove",
            "MemberRemoveRequest",
            "MemberRemoveResponse",
        ),
        _e(
            _CLUSTER,
            "MemberUpdate",
            "/v3/cluster/member/update",
            "MemberUpdateRequest",
            "MemberUpdateResponse",
        ),
        _e(_CLUSTER, "MemberList", "/v3/cluster/member/list", "MemberListRequest", "MemberListResponse"),
        _e(
            _CLUSTER,
            "MemberPromote",
            "/v3/cluster/member/promote",
            "MemberPromoteRequest",
            "MemberPromoteResponse",
        ),
        _e(_MAINT, "Alarm", "/v3/maintenance/alarm", "AlarmRequest", "AlarmResponse"),
        _e(_MAINT, "Status", "/v3/maintenance/status", "StatusRequest", "StatusResponse"),
        _e(_MAINT, "Defragment", "/v3/maintenance/defragment", "DefragmentRequest", "DefragmentResponse"),
        _e(_MAINT, "Hash", "/v3/maintenance/hash", "HashRequest", "HashResponse"),
        _e(_MAINT, "HashKV", "/v3/maintenance/hashkv", "HashKVRequest", "HashKVResponse"),
        _e(_MAINT, "Snapshot", "/v3/maintenance/snapshot", "SnapshotRequest", "SnapshotResponse"),
        _e(
            _MAINT,
            "MoveLeader",
            "/v3/maintenance/transfer-leadership",
            "MoveLeaderRequest",
            "MoveLeaderResponse",
        ),
        _e(_MAINT, "Downgrade", "/v3/maintenance/downgrade", "DowngradeRequest", "DowngradeResponse"),
        _e(_AUTH, "AuthEnable", "/v3/auth/enable", "AuthEnableRequest", "AuthEnableResponse"),
        _e(_AUTH, "AuthDisable", "/v3/auth/disable", "AuthDisableRequest", "AuthDisableResponse"),
        _e(_AUTH, "AuthStatus", "/v3/auth/status", "AuthStatusRequest", "AuthStatusResponse"),
        _e(_AUTH, "Authenticate", "/v3/auth/authenticate", "AuthenticateRequest", "AuthenticateResponse"),
        _e(_AUTH, "UserAdd", "/v3/auth/user/add", "AuthUserAddRequest", "AuthUserAddResponse"),
        _e(_AUTH, "UserGet", "/v3/auth/user/get", "AuthUserGetRequest", "AuthUserGetResponse"),
        _e(_AUTH, "UserList", "/v3/auth/user/list", "AuthUserListRequest", "AuthUserListResponse"),
        _e(_AUTH, "UserDelete", "/v3/auth/user/delete", "AuthUserDeleteRequest", "AuthUserDeleteResponse"),
        _e(
            _AUTH,
            "UserChangePassword",
            "/v3/auth/user/changepw",
            "AuthUserChangePasswordRequest",
            "AuthUserChangePasswordResponse",
        ),
        _e(
            _AUTH,
            "UserGrantRole",
            "/v3/auth/user/grant",
            "AuthUserGrantRoleRequest",
            "AuthUserGrantRoleResponse",
        ),
        _e(
            _AUTH,
            "UserRevokeRole",
            "/v3/auth/user/revoke",
            "AuthUserRevokeRoleRequest",
            "AuthUserRevokeRoleResponse",
        ),
        _e(_AUTH, "RoleAdd", "/v3/auth/role/add", "AuthRoleAddRequest", "AuthRoleAddResponse"),
        _e(_AUTH, "RoleGet", "/v3/auth/role/get", "AuthRoleGetRequest", "AuthRoleGetResponse"),
        _e(_AUTH, "RoleList", "/v3/auth/role/list", "AuthRoleListRequest", "AuthRoleListResponse"),
        _e(_AUTH, "RoleDelete", "/v3/auth/role/delete", "AuthRoleDeleteRequest", "AuthRoleDeleteResponse"),
        _e(
            _AUTH,
            "RoleGrantPermission",
            "/v3/auth/role/grant",
            "AuthRoleGrantPermissionRequest",
            "AuthRoleGrantPermissionResponse",
        ),
        _e(
            _AUTH,
            "RoleRevokePermission",
            "/v3/auth/role/revoke",
            "AuthRoleRevokePermissionRequest",
            "AuthRoleRevokePermissionResponse",
        ),
        Rpc("v3lockpb.Lock", "Lock", "/v3/lock/lock", "LockRequest", "LockResponse", "v3lockpb.v3lock_pb2"),
        Rpc(
            "v3lockpb.Lock",
            "Unlock",
            "/v3/lock/unlock",
            "UnlockRequest",
            "UnlockResponse",
            "v3lockpb.v3lock_pb2",
        ),
        Rpc(
            "v3electionpb.Election",
            "Campaign",
            "/v3/election/campaign",
            "CampaignRequest",
            "CampaignResponse",
            "v3electionpb.v3election_pb2",
        ),
        Rpc(
            "v3electionpb.Election",
            "Proclaim",
            "/v3/election/proclaim",
            "ProclaimRequest",
            "ProclaimResponse",
            "v3electionpb.v3election_pb2",
        ),
        Rpc(
            "v3electionpb.Election",
            "Leader",
            "/v3/election/leader",
            "LeaderRequest",
            "LeaderResponse",
            "v3electionpb.v3election_pb2",
        ),
        Rpc(
            "v3electionpb.Election",
            "Observe",
            "/v3/election/observe",
            "LeaderRequest",
            "LeaderResponse",
            "v3electionpb.v3election_pb2",
        ),
        Rpc(
            "v3electionpb.Election",
            "Resign",
            "/v3/election/resign",
            "ResignRequest",
            "ResignResponse",
            "v3electionpb.v3election_pb2",
        ),
    )
}
