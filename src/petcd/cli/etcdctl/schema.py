"""Message layouts etcdctl's json writer needs, without importing protobuf.

etcdctl's ``-w json`` is Go's ``encoding/json`` applied to gogo-generated structs: fields in
declaration order, named by the proto field name, every field ``omitempty``, 64-bit integers as
bare numbers, enums as numbers, bytes as base64, and a oneof as a field named after the Go
interface (``"Response":{"response_put":{...}}``). The client hands us proto3-JSON dicts (int64 as
strings, enums by name), so ``go_shape`` walks them against this table to produce the Go shape.
A test checks the table against the protobuf descriptors.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up time
if TYPE_CHECKING:
    from typing import Any

# field kinds
INT = "int"  # any integer width; proto3-JSON may give it as a string
BOOL = "bool"
STR = "str"
BYTES = "bytes"

# enum name -> number tables
ENUMS: dict[str, dict[str, int]] = {
    "EventType": {"PUT": 0, "DELETE": 1},
    "AlarmType": {"NONE": 0, "NOSPACE": 1, "CORRUPT": 2},
    "PermType": {"READ": 0, "WRITE": 1, "READWRITE": 2},
}

H = "ResponseHeader"

# message -> [(field, kind, repeated)]; kind is a scalar kind, "enum:<Name>", a message name,
# or "oneof:<GoName>:<field>=<GoAltName>/<Message>,..." (a oneof's Go wrapper struct has no json
# tags, so the alternative is keyed by its Go field name)
MESSAGES: dict[str, list[tuple[str, str, bool]]] = {
    H: [
        ("cluster_id", INT, False),
        ("member_id", INT, False),
        ("revision", INT, False),
        ("raft_term", INT, False),
    ],
    "KeyValue": [
        ("key", BYTES, False),
        ("create_revision", INT, False),
        ("mod_revision", INT, False),
        ("version", INT, False),
        ("value", BYTES, False),
        ("lease", INT, False),
    ],
    "Event": [("type", "enum:EventType", False), ("kv", "KeyValue", False), ("prev_kv", "KeyValue", False)],
    "RangeResponse": [
        ("header", H, False),
        ("kvs", "KeyValue", True),
        ("more", BOOL, False),
        ("count", INT, False),
    ],
    "PutResponse": [("header", H, False), ("prev_kv", "KeyValue", False)],
    "DeleteRangeResponse": [("header", H, False), ("deleted", INT, False), ("prev_kvs", "KeyValue", True)],
    "ResponseOp": [
        (
            "response",
            "oneof:Response:response_range=ResponseRange/RangeResponse,response_put=ResponsePut/PutResponse,"
            "response_delete_range=ResponseDeleteRange/DeleteRangeResponse,response_txn=ResponseTxn/TxnResponse",
            False,
        )
    ],
    "TxnResponse": [("header", H, False), ("succeeded", BOOL, False), ("responses", "ResponseOp", True)],
    "CompactionResponse": [("header", H, False)],
    "Member": [
        ("ID", INT, False),
        ("name", STR, False),
        ("peerURLs", STR, True),
        ("clientURLs", STR, True),
        ("isLearner", BOOL, False),
    ],
    "MemberAddResponse": [("header", H, False), ("member", "Member", False), ("members", "Member", True)],
    "MemberRemoveResponse": [("header", H, False), ("members", "Member", True)],
    "MemberUpdateResponse": [("header", H, False), ("members", "Member", True)],
    "MemberListResponse": [("header", H, False), ("members", "Member", True)],
    "MemberPromoteResponse": [("header", H, False), ("members", "Member", True)],
    "DowngradeInfo": [("enabled", BOOL, False), ("targetVersion", STR, False)],
    "StatusResponse": [
        ("header", H, False),
        ("version", STR, False),
        ("dbSize", INT, False),
        ("leader", INT, False),
        ("raftIndex", INT, False),
        ("raftTerm", INT, False),
        ("raftAppliedIndex", INT, False),
        ("errors", STR, True),
        ("dbSizeInUse", INT, False),
        ("isLearner", BOOL, False),
        ("storageVersion", STR, False),
        ("dbSizeQuota", INT, False),
        ("downgradeInfo", "DowngradeInfo", False),
    ],
    "HashKVResponse": [
        ("header", H, False),
        ("hash", INT, False),
        ("compact_revision", INT, False),
        ("hash_revision", INT, False),
    ],
    "AlarmMember": [("memberID", INT, False), ("alarm", "enum:AlarmType", False)],
    "AlarmResponse": [("header", H, False), ("alarms", "AlarmMember", True)],
    "LeaseRevokeResponse": [("header", H, False)],
    "DowngradeResponse": [("header", H, False), ("version", STR, False)],
    "Permission": [("permType", "enum:PermType", False), ("key", BYTES, False), ("range_end", BYTES, False)],
    "AuthEnableResponse": [("header", H, False)],
    "AuthDisableResponse": [("header", H, False)],
    "AuthStatusResponse": [("header", H, False), ("enabled", BOOL, False), ("authRevision", INT, False)],
    "AuthUserAddResponse": [("header", H, False)],
    "AuthUserGetResponse": [("header", H, False), ("roles", STR, True)],
    "AuthUserDeleteResponse": [("header", H, False)],
    "AuthUserChangePasswordResponse": [("header", H, False)],
    "AuthUserGrantRoleResponse": [("header", H, False)],
    "AuthUserRevokeRoleResponse": [("header", H, False)],
    "AuthUserListResponse": [("header", H, False), ("users", STR, True)],
    "AuthRoleAddResponse": [("header", H, False)],
    "AuthRoleGetResponse": [("header", H, False), ("perm", "Permission", True)],
    "AuthRoleListResponse": [("header", H, False), ("roles", STR, True)],
    "AuthRoleDeleteResponse": [("header", H, False)],
    "AuthRoleGrantPermissionResponse": [("header", H, False)],
    "AuthRoleRevokePermissionResponse": [("header", H, False)],
    "DefragmentResponse": [("header", H, False)],
    "MoveLeaderResponse": [("header", H, False)],
}


def _scalar(kind: str, value: Any) -> Any:
    if kind == INT:
        return int(value)
    if kind.startswith("enum:"):
        return ENUMS[kind[5:]].get(value, 0) if isinstance(value, str) else int(value)
    return value


def _zero(kind: str, value: Any) -> bool:
    if kind in (INT,) or kind.startswith("enum:"):
        return bool(_scalar(kind, value) == 0)
    if kind in (BOOL, STR, BYTES):
        return not bool(value)
    return False  # a present message is never empty for omitempty (it is a non-nil pointer)


def go_shape(message: str, data: dict[str, Any]) -> dict[str, Any]:
    """The Go ``encoding/json`` shape of a proto3-JSON dict of type ``message``."""
    out: dict[str, Any] = {}
    for name, kind, repeated in MESSAGES[message]:
        if kind.startswith("oneof:"):
            _, go_name, alts = kind.split(":", 2)
            for alt in alts.split(","):
                field, spec = alt.split("=")
                alt_go_name, msg = spec.split("/")
                if field in data:
                    out[go_name] = {alt_go_name: go_shape(msg, data[field])}
            continue
        if name not in data:
            continue
        value = data[name]
        if repeated:
            if not value:
                continue
            if kind in MESSAGES:
                out[name] = [go_shape(kind, v) for v in value]
            else:
                out[name] = [_scalar(kind, v) for v in value]
        elif kind in MESSAGES:
            out[name] = go_shape(kind, value)
        elif not _zero(kind, value):
            out[name] = _scalar(kind, value)
    return out


def header_fields(data: dict[str, Any]) -> dict[str, Any]:
    """An embedded ``*pb.ResponseHeader`` (clientv3's lease responses): its fields inline."""
    return go_shape(H, data.get("header", {}))
