"""etcdctl's output writers: simple, fields, json, protobuf and table, byte for byte.

Each command hands its reply (a proto3-JSON dict from petcd.client) to one method here; the
method renders it in the chosen format or raises ``CtlError(4, "<fmt> not supported as output
format")`` where etcdctl's writer has no such method (``table`` exists only for member list and
the endpoint commands). Output is bytes: keys and values go out exactly as stored, as Go's
``fmt.Println(string(b))`` does.

Where etcd 3.4 and 3.6 differ, this follows 3.6: endpoint status has 3.6's columns and fields,
hashkv has the ``HASH REVISION`` column, ``member add --learner`` says `` as learner``, and
``member list -w json --hex`` prints IDs as hex strings.
"""

from __future__ import annotations

import base64

from petcd.cli.etcdctl.errors import EXIT_BAD_FEATURE, CtlError
from petcd.cli.etcdctl.gofmt import go_json, go_quote, humanize_bytes, render_table
from petcd.cli.etcdctl.schema import go_shape, header_fields

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up time
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    JsonDict = dict[str, Any]
FORMATS = ("simple", "fields", "json", "protobuf", "table")


def b64(data: JsonDict, name: str) -> bytes:
    value = data.get(name)
    return base64.b64decode(value) if value else b""


def num(data: JsonDict, name: str) -> int:
    return int(data.get(name, 0))


def hexid(value: int) -> str:
    return f"{value:x}"


def _proto_bytes(message: str, data: JsonDict) -> bytes:
    from google.protobuf import json_format

    from petcd.pb.etcdserverpb import rpc_pb2
    from petcd.pb.mvccpb import kv_pb2

    cls = getattr(rpc_pb2, message, None) or getattr(kv_pb2, message)
    msg = json_format.ParseDict(data, cls(), ignore_unknown_fields=True)
    out: bytes = msg.SerializeToString()
    return out


class Printer:
    """One output format, writing to a binary stream."""

    def __init__(self, fmt: str, is_hex: bool, out: BinaryIO) -> None:
        self.fmt = fmt
        self.is_hex = is_hex
        self.out = out
        self.value_only = False

    # ---- low-level ---------------------------------------------------------------------------

    def write(self, data: bytes | str) -> None:
        self.out.write(data.encode() if isinstance(data, str) else data)

    def line(self, text: bytes | str = "") -> None:
        self.write(text)
        self.write(b"\n")

    def unsupported(self) -> CtlError:
        return CtlError(EXIT_BAD_FEATURE, f"{self.fmt} not supported as output format")

    def _rpc(self, message: str, data: JsonDict) -> bool:
        """json/protobuf of a plain protobuf reply; True if handled."""
        if self.fmt == "json":
            self.line(go_json(go_shape(message, data)))
            return True
        if self.fmt == "protobuf":
            self.write(_proto_bytes(message, data))
            return True
        if self.fmt == "table":
            raise self.unsupported()
        return False

    def _kv(self, kv: JsonDict) -> None:
        key, value = b64(kv, "key"), b64(kv, "value")
        if self.is_hex:
            key = "".join(f"\\x{b:02x}" for b in key).encode()
            value = "".join(f"\\x{b:02x}" for b in value).encode()
        if not self.value_only:
            self.line(key)
        self.line(value)

    def _fields_kv(self, prefix: str, kv: JsonDict) -> None:
        self.line(f'"{prefix}Key" : {go_quote(b64(kv, "key"))}')
        self.line(f'"{prefix}CreateRevision" : {num(kv, "create_revision")}')
        self.line(f'"{prefix}ModRevision" : {num(kv, "mod_revision")}')
        self.line(f'"{prefix}Version" : {num(kv, "version")}')
        self.line(f'"{prefix}Value" : {go_quote(b64(kv, "value"))}')
        self.line(f'"{prefix}Lease" : {num(kv, "lease")}')

    def _fields_hdr(self, resp: JsonDict) -> None:
        h = resp.get("header", {})
        self.line(f'"ClusterID" : {num(h, "cluster_id")}')
        self.line(f'"MemberID" : {num(h, "member_id")}')
        self.line(f'"Revision" : {num(h, "revision")}')
        self.line(f'"RaftTerm" : {num(h, "raft_term")}')

    # ---- KV ----------------------------------------------------------------------------------

    def get(self, resp: JsonDict) -> None:
        if self._rpc("RangeResponse", resp):
            return
        if self.fmt == "fields":
            self._fields_hdr(resp)
            for kv in resp.get("kvs", []):
                self._fields_kv("", kv)
            self.line(f'"More" : {str(bool(resp.get("more"))).lower()}')
            self.line(f'"Count" : {num(resp, "count")}')
            return
        for kv in resp.get("kvs", []):
            self._kv(kv)

    def put(self, resp: JsonDict) -> None:
        if self._rpc("PutResponse", resp):
            return
        if self.fmt == "fields":
            self._fields_hdr(resp)
            if "prev_kv" in resp:
                self._fields_kv("Prev", resp["prev_kv"])
            return
        self.line("OK")
        if "prev_kv" in resp:
            self._kv(resp["prev_kv"])

    def delete(self, resp: JsonDict) -> None:
        if self._rpc("DeleteRangeResponse", resp):
            return
        if self.fmt == "fields":
            self._fields_hdr(resp)
            self.line(f'"Deleted" : {num(resp, "deleted")}')
            for kv in resp.get("prev_kvs", []):
                self._fields_kv("Prev", kv)
            return
        self.line(str(num(resp, "deleted")))
        for kv in resp.get("prev_kvs", []):
            self._kv(kv)

    def txn(self, resp: JsonDict) -> None:
        if self._rpc("TxnResponse", resp):
            return
        if self.fmt == "fields":
            self._fields_hdr(resp)
            self.line(f'"Succeeded" : {str(bool(resp.get("succeeded"))).lower()}')
        else:
            self.line("SUCCESS" if resp.get("succeeded") else "FAILURE")
        for op in resp.get("responses", []):
            if self.fmt == "simple":
                self.line()
            if "response_range" in op:
                self.get(op["response_range"])
            elif "response_put" in op:
                self.put(op["response_put"])
            elif "response_delete_range" in op:
                self.delete(op["response_delete_range"])

    def compaction(self, rev: int, resp: JsonDict) -> None:
        if self._rpc("CompactionResponse", resp):
            return
        self.line(f"compacted revision {rev}")

    # ---- watch -------------------------------------------------------------------------------

    def watch(self, resp: JsonDict) -> None:
        events = resp.get("events", [])
        if self.fmt == "json":
            shaped = {
                "Header": go_shape("ResponseHeader", resp.get("header", {})),
                "Events": [go_shape("Event", e) for e in events] or None,
                "CompactRevision": num(resp, "compact_revision"),
                "Canceled": bool(resp.get("canceled")),
                "Created": bool(resp.get("created")),
            }
            self.line(go_json(shaped))
            return
        if self.fmt == "protobuf":
            keep: JsonDict = {
                k: resp[k]
                for k in ("header", "events", "compact_revision", "canceled", "created")
                if k in resp
            }
            self.write(_proto_bytes("WatchResponse", keep))
            return
        if self.fmt == "table":
            raise self.unsupported()
        if self.fmt == "fields":
            self._fields_hdr(resp)
        for e in events:
            etype = e.get("type", "PUT")
            etype = etype if isinstance(etype, str) else ("DELETE" if etype == 1 else "PUT")
            if self.fmt == "fields":
                self.line(f'"Type" : {etype}')
                if "prev_kv" in e:
                    self._fields_kv("Prev", e["prev_kv"])
                self._fields_kv("", e.get("kv", {}))
                continue
            self.line(etype)
            if "prev_kv" in e:
                self._kv(e["prev_kv"])
            self._kv(e.get("kv", {}))

    # ---- lease -------------------------------------------------------------------------------

    def _lease_go(self, resp: JsonDict, body: JsonDict) -> None:
        if self.fmt == "json":
            self.line(go_json({**header_fields(resp), **body}))
            return
        if self.fmt == "protobuf":
            # clientv3's lease responses embed *pb.ResponseHeader, whose Marshal Go promotes to
            # the response: etcdctl's protobuf writer prints the header alone
            self.write(_proto_bytes("ResponseHeader", resp.get("header", {})))
            return
        raise self.unsupported()

    def grant(self, resp: JsonDict) -> None:
        lid, ttl = num(resp, "ID"), num(resp, "TTL")
        if self.fmt == "simple":
            self.line(f"lease {lid:016x} granted with TTL({ttl}s)")
        elif self.fmt == "fields":
            self._fields_hdr(resp)
            self.line(f'"ID" : {lid}')
            self.line(f'"TTL" : {ttl}')
        else:
            self._lease_go(resp, {"ID": lid, "TTL": ttl, "Error": str(resp.get("error", ""))})

    def revoke(self, lease_id: int, resp: JsonDict) -> None:
        if self.fmt == "protobuf":
            # clientv3.LeaseRevokeResponse is a type defined over the pb message, without its
            # methods: etcdctl cannot marshal it and says so, printing the value with %v
            header = go_shape("ResponseHeader", resp.get("header", {}))
            text = "".join(f"{k}:{v} " for k, v in header.items())
            raise CtlError(
                EXIT_BAD_FEATURE, f"marshal unsupported for type clientv3.LeaseRevokeResponse ({{{text}}})"
            )
        if self._rpc("LeaseRevokeResponse", resp):
            return
        if self.fmt == "fields":
            self._fields_hdr(resp)
            return
        self.line(f"lease {lease_id:016x} revoked")

    def keep_alive(self, resp: JsonDict) -> None:
        lid, ttl = num(resp, "ID"), num(resp, "TTL")
        if self.fmt == "simple":
            self.line(f"lease {lid:016x} keepalived with TTL({ttl})")
        elif self.fmt == "fields":
            self._fields_hdr(resp)
            self.line(f'"ID" : {lid}')
            self.line(f'"TTL" : {ttl}')
        else:
            self._lease_go(resp, {"ID": lid, "TTL": ttl})

    def time_to_live(self, resp: JsonDict, keys: bool) -> None:
        lid, ttl, granted = num(resp, "ID"), num(resp, "TTL"), num(resp, "grantedTTL")
        raw_keys = [base64.b64decode(k) for k in resp.get("keys", [])]
        if self.fmt == "simple":
            if granted == 0 and ttl == -1:
                self.line(f"lease {lid:016x} already expired")
                return
            text = f"lease {lid:016x} granted with TTL({granted}s), remaining({ttl}s)".encode()
            if keys:
                text += b", attached keys([" + b" ".join(raw_keys) + b"])"
            self.line(text)
        elif self.fmt == "fields":
            self._fields_hdr(resp)
            self.line(f'"ID" : {lid}')
            self.line(f'"TTL" : {ttl}')
            self.line(f'"GrantedTTL" : {granted}')
            for k in raw_keys:
                self.line(f'"Key" : {go_quote(k)}')
        else:
            body: JsonDict = {"id": lid, "ttl": ttl, "granted-ttl": granted, "keys": resp.get("keys") or None}
            self._lease_go(resp, body)

    def leases(self, resp: JsonDict) -> None:
        ids = [num(item, "ID") for item in resp.get("leases", [])]
        if self.fmt == "simple":
            self.line(f"found {len(ids)} leases")
            for lid in ids:
                self.line(f"{lid:016x}")
        elif self.fmt == "fields":
            self._fields_hdr(resp)
            for lid in ids:
                self.line(f'"ID" : {lid}')
        else:
            self._lease_go(resp, {"leases": [{"id": lid} for lid in ids] or None})

    # ---- cluster -----------------------------------------------------------------------------

    def member_add(self, resp: JsonDict, learner: bool) -> None:
        if self._rpc("MemberAddResponse", resp):
            return
        if self.fmt == "fields":
            raise self.unsupported()
        mid = num(resp.get("member", {}), "ID")
        cid = num(resp.get("header", {}), "cluster_id")
        how = " as learner" if learner else ""
        self.line(f"Member {mid:16x} added{how} to cluster {cid:16x}")

    def member_change(self, verb: str, message: str, member_id: int, resp: JsonDict) -> None:
        if self._rpc(message, resp):
            return
        if self.fmt == "fields":
            raise self.unsupported()
        cid = num(resp.get("header", {}), "cluster_id")
        self.line(f"Member {member_id:16x} {verb} cluster {cid:16x}")

    def member_list(self, resp: JsonDict) -> None:
        members = resp.get("members", [])
        if self.fmt == "json" and self.is_hex:
            self.line(_member_list_hex_json(resp))
            return
        if self._rpc("MemberListResponse", resp) if self.fmt != "table" else False:
            return
        if self.fmt == "fields":
            self._fields_hdr(resp)
            for m in members:
                self.line(f'"ID" : {num(m, "ID")}')
                self.line(f'"Name" : {go_quote(m.get("name", ""))}')
                for u in m.get("peerURLs", []):
                    self.line(f'"PeerURL" : {go_quote(u)}')
                for u in m.get("clientURLs", []):
                    self.line(f'"ClientURL" : {go_quote(u)}')
                self.line(f'"IsLearner" : {str(bool(m.get("isLearner"))).lower()}')
                self.line()
            return
        header = ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"]
        rows = [
            [
                hexid(num(m, "ID")),
                "started" if m.get("name") else "unstarted",
                m.get("name", ""),
                ",".join(m.get("peerURLs", [])),
                ",".join(m.get("clientURLs", [])),
                str(bool(m.get("isLearner"))).lower(),
            ]
            for m in members
        ]
        self._rows(header, rows)

    def _rows(self, header: list[str], rows: list[list[str]]) -> None:
        if self.fmt == "table":
            self.write(render_table(header, rows))
            return
        for row in rows:
            self.line(", ".join(row))

    # ---- endpoint ----------------------------------------------------------------------------

    def endpoint_health(self, results: list[JsonDict], err_out: BinaryIO) -> None:
        if self.fmt == "simple":
            for h in results:
                if not h.get("error"):
                    text = (
                        f"{h['endpoint']} is healthy: successfully committed proposal: took = {h['took']}\n"
                    )
                else:
                    text = f"{h['endpoint']} is unhealthy: failed to commit proposal: {h['error']}\n"
                err_out.write(text.encode())
            return
        if self.fmt == "json":
            self.line(go_json(results))
            return
        if self.fmt == "fields":
            for h in results:
                self.line(f'"Endpoint" : {go_quote(h["endpoint"])}')
                self.line(f'"Health" : {str(h["health"]).lower()}')
                self.line(f'"Took" : {h["took"]}')
                self.line(f'"Error" : {h.get("error", "")}')
                self.line()
            return
        if self.fmt == "table":
            rows = [[h["endpoint"], str(h["health"]).lower(), h["took"], h.get("error", "")] for h in results]
            self._rows(["endpoint", "health", "took", "error"], rows)
            return
        raise self.unsupported()

    def endpoint_status(self, results: list[tuple[str, JsonDict]]) -> None:
        if self.fmt == "json":
            self.line(
                go_json([{"Endpoint": ep, "Status": go_shape("StatusResponse", r)} for ep, r in results])
            )
            return
        if self.fmt == "protobuf":
            raise self.unsupported()
        if self.fmt == "fields":
            for ep, r in results:
                self._fields_hdr(r)
                down = r.get("downgradeInfo", {})
                self.line(f'"Version" : {go_quote(r.get("version", ""))}')
                self.line(f'"StorageVersion" : {go_quote(r.get("storageVersion", ""))}')
                self.line(f'"DBSize" : {num(r, "dbSize")}')
                self.line(f'"DBSizeInUse" : {num(r, "dbSizeInUse")}')
                self.line(f'"DBSizeQuota" : {num(r, "dbSizeQuota")}')
                self.line(f'"Leader" : {num(r, "leader")}')
                self.line(f'"IsLearner" : {str(bool(r.get("isLearner"))).lower()}')
                self.line(f'"RaftIndex" : {num(r, "raftIndex")}')
                self.line(f'"RaftTerm" : {num(r, "raftTerm")}')
                self.line(f'"RaftAppliedIndex" : {num(r, "raftAppliedIndex")}')
                self.line(f'"Errors" : [{" ".join(r.get("errors", []))}]')
                self.line(f'"Endpoint" : {go_quote(ep)}')
                self.line(f'"DowngradeTargetVersion" : {go_quote(down.get("targetVersion", ""))}')
                self.line(f'"DowngradeEnabled" : {str(bool(down.get("enabled"))).lower()}')
                self.line()
            return
        header = [
            "endpoint",
            "ID",
            "version",
            "storage version",
            "db size",
            "in use",
            "percentage not in use",
            "quota",
            "is leader",
            "is learner",
            "raft term",
            "raft index",
            "raft applied index",
            "errors",
            "downgrade target version",
            "downgrade enabled",
        ]
        rows = []
        for ep, r in results:
            size, in_use = num(r, "dbSize"), num(r, "dbSizeInUse")
            member_id = num(r.get("header", {}), "member_id")
            down = r.get("downgradeInfo", {})
            pct = 100 - in_use * 100 // size if size else 0
            rows.append(
                [
                    ep,
                    hexid(member_id),
                    r.get("version", ""),
                    r.get("storageVersion", ""),
                    humanize_bytes(size),
                    humanize_bytes(in_use),
                    f"{pct}%",
                    humanize_bytes(num(r, "dbSizeQuota")),
                    str(num(r, "leader") == member_id).lower(),
                    str(bool(r.get("isLearner"))).lower(),
                    str(num(r, "raftTerm")),
                    str(num(r, "raftIndex")),
                    str(num(r, "raftAppliedIndex")),
                    ", ".join(r.get("errors", [])),
                    down.get("targetVersion", ""),
                    str(bool(down.get("enabled"))).lower(),
                ]
            )
        self._rows(header, rows)

    def endpoint_hashkv(self, results: list[tuple[str, JsonDict]]) -> None:
        if self.fmt == "json":
            self.line(
                go_json([{"Endpoint": ep, "HashKV": go_shape("HashKVResponse", r)} for ep, r in results])
            )
            return
        if self.fmt == "protobuf":
            raise self.unsupported()
        if self.fmt == "fields":
            for ep, r in results:
                self._fields_hdr(r)
                self.line(f'"Endpoint" : {go_quote(ep)}')
                self.line(f'"Hash" : {num(r, "hash")}')
                self.line(f'"HashRevision" : {num(r, "hash_revision")}')
                self.line()
            return
        rows = [[ep, str(num(r, "hash")), str(num(r, "hash_revision"))] for ep, r in results]
        self._rows(["endpoint", "hash", "hash revision"], rows)

    # ---- maintenance -------------------------------------------------------------------------

    def alarm(self, resp: JsonDict) -> None:
        if self._rpc("AlarmResponse", resp):
            return
        alarms = resp.get("alarms", [])
        if self.fmt == "fields":
            self._fields_hdr(resp)
            for a in alarms:
                mid = num(a, "memberID")
                self.line(f'"MemberID" : {mid:x}' if self.is_hex else f'"MemberID" : {mid}')
                self.line(f'"AlarmType" : {a.get("alarm", "NONE")}')
                self.line()
            return
        for a in alarms:
            self.line(f"memberID:{num(a, 'memberID')} alarm:{a.get('alarm', 'NONE')} ")

    def downgrade(self, action: str, resp: JsonDict) -> None:
        if self._rpc("DowngradeResponse", resp):
            return
        if self.fmt == "fields":
            self._fields_hdr(resp)
            self.line(f'"Version" : {resp.get("version", "")}')
            return
        self.line(f"Downgrade {action} success, cluster version {resp.get('version', '')}")

    # ---- auth --------------------------------------------------------------------------------

    def auth_reply(self, message: str, resp: JsonDict, text: str) -> None:
        """A reply with only a header: simple prints ``text``, fields the header."""
        if self._rpc(message, resp):
            return
        if self.fmt == "fields":
            self._fields_hdr(resp)
            return
        self.line(text)

    def auth_status(self, resp: JsonDict) -> None:
        if self._rpc("AuthStatusResponse", resp):
            return
        enabled = str(bool(resp.get("enabled"))).lower()
        if self.fmt == "fields":
            self._fields_hdr(resp)
            self.line(f'"Enabled" : {enabled}')
            self.line(f'"AuthRevision" : {num(resp, "authRevision")}')
            return
        self.line(f"Authentication Status: {enabled}")
        self.line(f"AuthRevision: {num(resp, 'authRevision')}")

    def user_get(self, name: str, resp: JsonDict) -> None:
        if self._rpc("AuthUserGetResponse", resp):
            return
        if self.fmt == "fields":
            raise self.unsupported()
        self.line(f"User: {name}")
        self.line("Roles:" + "".join(f" {r}" for r in resp.get("roles", [])))

    def names(self, message: str, resp: JsonDict, field: str) -> None:
        """user list / role list."""
        if self._rpc(message, resp):
            return
        items = resp.get(field, [])
        if self.fmt == "fields":
            if field == "users":
                raise self.unsupported()
            self._fields_hdr(resp)
            self.line('"Roles" :' + "".join(f" {go_quote(r)}" for r in items))
            return
        for item in items:
            self.line(item)

    def role_get(self, role: str, resp: JsonDict) -> None:
        if self._rpc("AuthRoleGetResponse", resp):
            return
        perms = resp.get("perm", [])
        if self.fmt == "fields":
            self._fields_hdr(resp)
            for p in perms:
                self.line(f'"PermType" :  {p.get("permType", "READ")}')
                self.line(f'"Key" : {go_quote(b64(p, "key"))}')
                self.line(f'"RangeEnd" : {go_quote(b64(p, "range_end"))}')
            return
        self.line(f"Role {role}")
        for title, kinds in (("KV Read:", ("READ", "READWRITE")), ("KV Write:", ("WRITE", "READWRITE"))):
            self.line(title)
            for p in perms:
                if p.get("permType", "READ") not in kinds:
                    continue
                key, end = b64(p, "key"), b64(p, "range_end")
                if not end:
                    self.line(b"\t" + key)
                    continue
                text = b"\t[" + key + b", " + (end + b")" if end != b"\x00" else b"<open ended>")
                if _prefix_end(key) == end:
                    text += b" (prefix " + key + b")"
                self.line(text)

    def move_leader(self, leader: int, target: int, resp: JsonDict) -> None:
        if self.fmt in ("json", "protobuf"):
            self._rpc("MoveLeaderResponse", resp)
            return
        if self.fmt != "simple":
            raise self.unsupported()
        self.line(f"Leadership transferred from {leader:x} to {target:x}")


def _prefix_end(key: bytes) -> bytes:
    end = bytearray(key)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"


def _member_list_hex_json(resp: JsonDict) -> str:
    # etcd 3.6 printMemberListWithHexJSON: IDs as hex strings, built by hand.
    h = resp.get("header", {})
    parts = [
        '{"header":{"cluster_id":"',
        hexid(num(h, "cluster_id")),
        '","member_id":"',
        hexid(num(h, "member_id")),
        '","raft_term":',
        str(num(h, "raft_term")),
    ]
    members = resp.get("members", [])
    for i, m in enumerate(members):
        parts.append('},"members":[{"ID":"' if i == 0 else ',{"ID":"')
        parts.append(hexid(num(m, "ID")))
        parts.append('","name":"' + m.get("name", "") + '","peerURLs":')
        parts.append(go_json(m.get("peerURLs") or None))
        parts.append(',"clientURLs":')
        parts.append(go_json(m.get("clientURLs") or None))
        parts.append("}")
        if i == len(members) - 1:
            parts.append("]}")
    if not members:
        parts.append("}}")
    return "".join(parts)
