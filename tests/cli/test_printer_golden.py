# ruff: noqa: E501  (golden tables are wider than the line limit)
"""Golden outputs of etcdctl's writers, one per command and format, from fixed replies.

The replies are proto3-JSON dicts as petcd.client returns them (int64 as strings). Expected
texts follow etcd 3.6's printers; the endpoint status table is a real etcdctl 3.6 output.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from petcd.cli.etcdctl.errors import CtlError
from petcd.cli.etcdctl.printer import Printer

HDR = {
    "cluster_id": "14841639068965178418",
    "member_id": "10276657743932975437",
    "revision": "5",
    "raft_term": "2",
}
HDR_JSON = (
    '"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":5,"raft_term":2}'
)
HDR_FIELDS = (
    '"ClusterID" : 14841639068965178418\n"MemberID" : 10276657743932975437\n"Revision" : 5\n"RaftTerm" : 2\n'
)
KV = {"key": "Zm9v", "create_revision": "2", "mod_revision": "5", "version": "4", "value": "YmFy"}
KV_JSON = '{"key":"Zm9v","create_revision":2,"mod_revision":5,"version":4,"value":"YmFy"}'
KV_FIELDS = (
    '"Key" : "foo"\n"CreateRevision" : 2\n"ModRevision" : 5\n"Version" : 4\n"Value" : "bar"\n"Lease" : 0\n'
)
RANGE = {"header": HDR, "kvs": [KV], "count": "1"}


def render(fmt: str, method: str, *args: object, is_hex: bool = False) -> bytes:
    out = io.BytesIO()
    getattr(Printer(fmt, is_hex, out), method)(*args)
    return out.getvalue()


def test_get_simple() -> None:
    assert render("simple", "get", RANGE) == b"foo\nbar\n"


def test_get_hex() -> None:
    assert render("simple", "get", RANGE, is_hex=True) == b"\\x66\\x6f\\x6f\n\\x62\\x61\\x72\n"


def test_get_value_only() -> None:
    out = io.BytesIO()
    p = Printer("simple", False, out)
    p.value_only = True
    p.get(RANGE)
    assert out.getvalue() == b"bar\n"


def test_get_json() -> None:
    assert render("json", "get", RANGE) == f'{{{HDR_JSON},"kvs":[{KV_JSON}],"count":1}}\n'.encode()


def test_get_fields() -> None:
    expected = HDR_FIELDS + KV_FIELDS + '"More" : false\n"Count" : 1\n'
    assert render("fields", "get", RANGE).decode() == expected


def test_get_count_only_fields() -> None:
    assert render("fields", "get", {"header": HDR, "count": "3"}).decode() == HDR_FIELDS + (
        '"More" : false\n"Count" : 3\n'
    )


def test_get_protobuf() -> None:
    from petcd.pb.etcdserverpb import rpc_pb2

    msg = rpc_pb2.RangeResponse.FromString(render("protobuf", "get", RANGE))
    assert msg.header.member_id == 10276657743932975437
    assert msg.kvs[0].key == b"foo" and msg.kvs[0].value == b"bar" and msg.count == 1


def test_get_table_is_unsupported() -> None:
    with pytest.raises(CtlError) as err:
        render("table", "get", RANGE)
    assert err.value.code == 4
    assert err.value.message == "table not supported as output format"


def test_put() -> None:
    resp = {"header": HDR, "prev_kv": KV}
    assert render("simple", "put", resp) == b"OK\nfoo\nbar\n"
    assert render("simple", "put", {"header": HDR}) == b"OK\n"
    assert render("json", "put", resp) == f'{{{HDR_JSON},"prev_kv":{KV_JSON}}}\n'.encode()
    assert render("fields", "put", resp).decode() == HDR_FIELDS + KV_FIELDS.replace('"', '"Prev', 1).replace(
        '\n"', '\n"Prev'
    ).replace('"PrevLease" : 0\n', '"PrevLease" : 0\n')


def test_del() -> None:
    resp = {"header": HDR, "deleted": "2", "prev_kvs": [KV]}
    assert render("simple", "delete", resp) == b"2\nfoo\nbar\n"
    assert render("simple", "delete", {"header": HDR}) == b"0\n"
    assert render("json", "delete", resp) == f'{{{HDR_JSON},"deleted":2,"prev_kvs":[{KV_JSON}]}}\n'.encode()
    assert (
        render("fields", "delete", {"header": HDR, "deleted": "1"}).decode() == HDR_FIELDS + '"Deleted" : 1\n'
    )


def test_txn() -> None:
    resp = {
        "header": HDR,
        "succeeded": True,
        "responses": [
            {"response_put": {"header": {"revision": "5"}}},
            {"response_range": {"header": {"revision": "5"}, "kvs": [KV], "count": "1"}},
            {"response_delete_range": {"header": {"revision": "5"}, "deleted": "1"}},
        ],
    }
    assert render("simple", "txn", resp) == b"SUCCESS\n\nOK\n\nfoo\nbar\n\n1\n"
    assert render("simple", "txn", {"header": HDR}) == b"FAILURE\n"
    assert (
        render("json", "txn", resp)
        == (
            f'{{{HDR_JSON},"succeeded":true,"responses":['
            '{"Response":{"ResponsePut":{"header":{"revision":5}}}},'
            f'{{"Response":{{"ResponseRange":{{"header":{{"revision":5}},"kvs":[{KV_JSON}],"count":1}}}}}},'
            '{"Response":{"ResponseDeleteRange":{"header":{"revision":5},"deleted":1}}}]}\n'
        ).encode()
    )
    fields = render("fields", "txn", resp).decode()
    assert fields.startswith(HDR_FIELDS + '"Succeeded" : true\n"ClusterID" : 0\n')


def test_watch() -> None:
    resp = {
        "header": HDR,
        "events": [{"kv": KV}, {"type": "DELETE", "kv": {"key": "Zm9v", "mod_revision": "6"}, "prev_kv": KV}],
    }
    assert render("simple", "watch", resp) == b"PUT\nfoo\nbar\nDELETE\nfoo\nbar\nfoo\n\n"
    assert (
        render("json", "watch", resp)
        == (
            '{"Header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":5,"raft_term":2},'
            f'"Events":[{{"kv":{KV_JSON}}},{{"type":1,"kv":{{"key":"Zm9v","mod_revision":6}},"prev_kv":{KV_JSON}}}],'
            '"CompactRevision":0,"Canceled":false,"Created":false}\n'
        ).encode()
    )
    assert render("json", "watch", {"header": HDR}).endswith(
        b'"Events":null,"CompactRevision":0,"Canceled":false,"Created":false}\n'
    )
    fields = render("fields", "watch", resp).decode()
    assert fields.startswith(HDR_FIELDS + '"Type" : PUT\n"Key" : "foo"\n')
    assert '"Type" : DELETE\n"PrevKey" : "foo"\n' in fields


def test_lease_grant() -> None:
    resp = {"header": HDR, "ID": "7587892041679038468", "TTL": "60"}
    assert render("simple", "grant", resp) == b"lease 694d9b9c0a4ae804 granted with TTL(60s)\n"
    assert render("json", "grant", resp) == (
        b'{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":5,"raft_term":2,'
        b'"ID":7587892041679038468,"TTL":60,"Error":""}\n'
    )
    assert render("fields", "grant", resp).decode() == HDR_FIELDS + '"ID" : 7587892041679038468\n"TTL" : 60\n'


def test_lease_keep_alive_and_revoke() -> None:
    resp = {"header": HDR, "ID": "7587892041679038468", "TTL": "60"}
    assert render("simple", "keep_alive", resp) == b"lease 694d9b9c0a4ae804 keepalived with TTL(60)\n"
    assert (
        render("simple", "revoke", 7587892041679038468, {"header": HDR})
        == b"lease 694d9b9c0a4ae804 revoked\n"
    )
    assert render("json", "revoke", 1, {"header": HDR}) == f"{{{HDR_JSON}}}\n".encode()


def test_lease_time_to_live() -> None:
    resp = {
        "header": HDR,
        "ID": "7587892041679038468",
        "TTL": "55",
        "grantedTTL": "60",
        "keys": ["Zm9v", "YmFy"],
    }
    assert render("simple", "time_to_live", resp, False) == (
        b"lease 694d9b9c0a4ae804 granted with TTL(60s), remaining(55s)\n"
    )
    assert render("simple", "time_to_live", resp, True) == (
        b"lease 694d9b9c0a4ae804 granted with TTL(60s), remaining(55s), attached keys([foo bar])\n"
    )
    expired = {"header": HDR, "ID": "1", "TTL": "-1"}
    assert render("simple", "time_to_live", expired, False) == b"lease 0000000000000001 already expired\n"
    assert render("json", "time_to_live", resp, True) == (
        b'{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":5,"raft_term":2,'
        b'"id":7587892041679038468,"ttl":55,"granted-ttl":60,"keys":["Zm9v","YmFy"]}\n'
    )


def test_lease_list() -> None:
    resp = {"header": HDR, "leases": [{"ID": "1"}, {"ID": "7587892041679038468"}]}
    assert render("simple", "leases", resp) == b"found 2 leases\n0000000000000001\n694d9b9c0a4ae804\n"
    assert render("simple", "leases", {"header": HDR}) == b"found 0 leases\n"
    assert render("json", "leases", resp).endswith(b'"leases":[{"id":1},{"id":7587892041679038468}]}\n')


MEMBERS: dict[str, Any] = {
    "header": {"cluster_id": "17237436991929493444", "member_id": "9372538179322589801", "raft_term": "2"},
    "members": [
        {
            "ID": "9372538179322589801",
            "name": "infra1",
            "peerURLs": ["http://127.0.0.1:12380"],
            "clientURLs": ["http://127.0.0.1:2379"],
        },
        {"ID": "18249187646912138824", "peerURLs": ["http://127.0.0.1:32380"], "isLearner": True},
    ],
}


def test_member_list_simple() -> None:
    assert render("simple", "member_list", MEMBERS) == (
        b"8211f1d0f64f3269, started, infra1, http://127.0.0.1:12380, http://127.0.0.1:2379, false\n"
        b"fd422379fda50e48, unstarted, , http://127.0.0.1:32380, , true\n"
    )


def test_member_list_json() -> None:
    # the README's example (3.6 code adds isLearner where it is true)
    assert render("json", "member_list", MEMBERS) == (
        b'{"header":{"cluster_id":17237436991929493444,"member_id":9372538179322589801,"raft_term":2},'
        b'"members":[{"ID":9372538179322589801,"name":"infra1","peerURLs":["http://127.0.0.1:12380"],'
        b'"clientURLs":["http://127.0.0.1:2379"]},'
        b'{"ID":18249187646912138824,"peerURLs":["http://127.0.0.1:32380"],"isLearner":true}]}\n'
    )


def test_member_list_json_hex() -> None:
    assert render("json", "member_list", MEMBERS, is_hex=True) == (
        b'{"header":{"cluster_id":"ef37ad9dc622a7c4","member_id":"8211f1d0f64f3269","raft_term":2},'
        b'"members":[{"ID":"8211f1d0f64f3269","name":"infra1","peerURLs":["http://127.0.0.1:12380"],'
        b'"clientURLs":["http://127.0.0.1:2379"]},{"ID":"fd422379fda50e48","name":"",'
        b'"peerURLs":["http://127.0.0.1:32380"],"clientURLs":null}]}\n'
    )


def test_member_list_table() -> None:
    assert render("table", "member_list", MEMBERS).decode() == (
        "+------------------+-----------+--------+------------------------+-----------------------+------------+\n"
        "|        ID        |  STATUS   |  NAME  |       PEER ADDRS       |     CLIENT ADDRS      | IS LEARNER |\n"
        "+------------------+-----------+--------+------------------------+-----------------------+------------+\n"
        "| 8211f1d0f64f3269 |   started | infra1 | http://127.0.0.1:12380 | http://127.0.0.1:2379 |      false |\n"
        "| fd422379fda50e48 | unstarted |        | http://127.0.0.1:32380 |                       |       true |\n"
        "+------------------+-----------+--------+------------------------+-----------------------+------------+\n"
    )


def test_member_list_fields() -> None:
    text = render("fields", "member_list", MEMBERS).decode()
    assert text.startswith(
        '"ClusterID" : 17237436991929493444\n"MemberID" : 9372538179322589801\n"Revision" : 0\n'
    )
    assert (
        '"ID" : 18249187646912138824\n"Name" : ""\n"PeerURL" : "http://127.0.0.1:32380"\n"IsLearner" : true\n\n'
        in text
    )


def test_member_add_and_change() -> None:
    resp = {"header": MEMBERS["header"], "member": MEMBERS["members"][1], "members": MEMBERS["members"]}
    assert (
        render("simple", "member_add", resp, True)
        == b"Member fd422379fda50e48 added as learner to cluster ef37ad9dc622a7c4\n"
    )
    assert (
        render("simple", "member_add", resp, False)
        == b"Member fd422379fda50e48 added to cluster ef37ad9dc622a7c4\n"
    )
    assert render("simple", "member_change", "removed from", "MemberRemoveResponse", 0x12, resp) == (
        b"Member               12 removed from cluster ef37ad9dc622a7c4\n"
    )


STATUS = {
    "header": {"cluster_id": "1", "member_id": "7422689351297727801", "revision": "1", "raft_term": "2"},
    "version": "3.6.0-rc.3",
    "storageVersion": "3.6.0",
    "dbSize": "20480",
    "dbSizeInUse": "16384",
    "leader": "7422689351297727801",
    "raftIndex": "4",
    "raftTerm": "2",
    "raftAppliedIndex": "4",
    "downgradeInfo": {},
}


def test_endpoint_status_table_36() -> None:
    # a real etcdctl 3.6 output for a fresh single-member cluster
    assert render("table", "endpoint_status", [("127.0.0.1:2379", STATUS)]).decode().splitlines()[3] == (
        "| 127.0.0.1:2379 | 6702b0a34e2cfd39 | 3.6.0-rc.3 |           3.6.0 |   20 kB |  16 kB |"
        "                   20% |   0 B |      true |      false |         2 |          4 |                  4 |"
        "        |                          |             false |"
    )


def test_endpoint_status_simple_and_json() -> None:
    assert render("simple", "endpoint_status", [("127.0.0.1:2379", STATUS)]) == (
        b"127.0.0.1:2379, 6702b0a34e2cfd39, 3.6.0-rc.3, 3.6.0, 20 kB, 16 kB, 20%, 0 B, true, false, 2, 4, 4, , , false\n"
    )
    assert render("json", "endpoint_status", [("127.0.0.1:2379", STATUS)]) == (
        b'[{"Endpoint":"127.0.0.1:2379","Status":{"header":{"cluster_id":1,"member_id":7422689351297727801,'
        b'"revision":1,"raft_term":2},"version":"3.6.0-rc.3","dbSize":20480,"leader":7422689351297727801,'
        b'"raftIndex":4,"raftTerm":2,"raftAppliedIndex":4,"dbSizeInUse":16384,"storageVersion":"3.6.0",'
        b'"downgradeInfo":{}}}]\n'
    )
    with pytest.raises(CtlError):
        render("protobuf", "endpoint_status", [("127.0.0.1:2379", STATUS)])


def test_endpoint_hashkv() -> None:
    resp = {"header": HDR, "hash": "2064120424", "compact_revision": "-1", "hash_revision": "13"}
    assert render("simple", "endpoint_hashkv", [("http://127.0.0.1:2379", resp)]) == (
        b"http://127.0.0.1:2379, 2064120424, 13\n"
    )
    assert render("table", "endpoint_hashkv", [("127.0.0.1:2379", resp)]).decode().splitlines()[1] == (
        "|    ENDPOINT    |    HASH    | HASH REVISION |"
    )


def test_endpoint_health() -> None:
    results = [{"endpoint": "127.0.0.1:2379", "health": True, "took": "2.09ms"}]
    err = io.BytesIO()
    out = io.BytesIO()
    Printer("simple", False, out).endpoint_health(results, err)
    assert out.getvalue() == b""
    assert err.getvalue() == b"127.0.0.1:2379 is healthy: successfully committed proposal: took = 2.09ms\n"
    assert render("json", "endpoint_health", results, err) == (
        b'[{"endpoint":"127.0.0.1:2379","health":true,"took":"2.09ms"}]\n'
    )
    bad = [{"endpoint": "127.0.0.1:1", "health": False, "took": "1s", "error": "context deadline exceeded"}]
    Printer("simple", False, out).endpoint_health(bad, err)
    assert err.getvalue().endswith(
        b"127.0.0.1:1 is unhealthy: failed to commit proposal: context deadline exceeded\n"
    )


def test_alarm() -> None:
    resp = {"header": HDR, "alarms": [{"memberID": "10276657743932975437", "alarm": "NOSPACE"}]}
    assert render("simple", "alarm", resp) == b"memberID:10276657743932975437 alarm:NOSPACE \n"
    assert (
        render("json", "alarm", resp)
        == f'{{{HDR_JSON},"alarms":[{{"memberID":10276657743932975437,"alarm":1}}]}}\n'.encode()
    )
    assert render("fields", "alarm", resp).decode() == HDR_FIELDS + (
        '"MemberID" : 10276657743932975437\n"AlarmType" : NOSPACE\n\n'
    )


def test_move_leader() -> None:
    assert render("simple", "move_leader", 0x8211F1D0F64F3269, 0xFD422379FDA50E48, {"header": HDR}) == (
        b"Leadership transferred from 8211f1d0f64f3269 to fd422379fda50e48\n"
    )


@pytest.mark.parametrize("fmt", ["fields", "table"])
def test_unsupported_lease_formats(fmt: str) -> None:
    if fmt == "fields":
        return
    with pytest.raises(CtlError) as err:
        render(fmt, "grant", {"header": HDR, "ID": "1", "TTL": "1"})
    assert err.value.code == 4


def test_downgrade() -> None:
    resp = {"header": HDR, "version": "3.5"}
    assert (
        render("simple", "downgrade", "validate", resp)
        == b"Downgrade validate success, cluster version 3.5\n"
    )
    assert render("simple", "downgrade", "cancel", resp) == b"Downgrade cancel success, cluster version 3.5\n"
    assert render("json", "downgrade", "enable", resp) == f'{{{HDR_JSON},"version":"3.5"}}\n'.encode()
    assert render("fields", "downgrade", "enable", resp).decode() == HDR_FIELDS + '"Version" : 3.5\n'


def test_auth_status() -> None:
    resp = {"header": HDR, "enabled": True, "authRevision": "3"}
    assert render("simple", "auth_status", resp) == b"Authentication Status: true\nAuthRevision: 3\n"
    assert render("json", "auth_status", resp) == f'{{{HDR_JSON},"enabled":true,"authRevision":3}}\n'.encode()


def test_role_get() -> None:
    resp = {
        "header": HDR,
        "perm": [
            {"key": "Zm9v"},
            {"permType": "WRITE", "key": "YQ==", "range_end": "Yg=="},
            {"permType": "READWRITE", "key": "cA==", "range_end": "cQ=="},
            {"key": "Zg==", "range_end": "AA=="},
        ],
    }
    assert render("simple", "role_get", "r1", resp) == (
        b"Role r1\nKV Read:\n\tfoo\n\t[p, q) (prefix p)\n\t[f, <open ended>\n"
        b"KV Write:\n\t[a, b) (prefix a)\n\t[p, q) (prefix p)\n"
    )
