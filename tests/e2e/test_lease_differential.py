"""Differential: the Lease API and a few maintenance/cluster errors, sent alike to the reference etcd
3.4.23 and to petcd (real one-member servers), answer alike: lease IDs chosen by the client,
granted TTLs, time-to-live with attached keys, revoking deletes the keys (revisions), keep-alive and
time-to-live of unknown leases, leases listed, and etcd's error codes and strings. Remaining TTLs
are compared within a second (the two servers' clocks run apart)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from servers import REFERENCE_ETCD, one_member

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc

pytestmark = pytest.mark.skipif(not os.path.exists(REFERENCE_ETCD), reason="reference etcd not installed")

TIMEOUT_S = 10.0


class Side:
    def __init__(self, channel: grpc.Channel) -> None:
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.lease = rpc_pb2_grpc.LeaseStub(channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(channel)
        self.maint = rpc_pb2_grpc.MaintenanceStub(channel)


def answer(fn: Callable[..., Any], req: Any, form: Callable[[Any], Any]) -> Any:
    try:
        return ("ok", form(fn(req, timeout=TIMEOUT_S)))
    except grpc.RpcError as e:
        return ("error", e.code(), e.details())


def keep_alive(side: Side, lease_id: int) -> Any:
    call = side.lease.LeaseKeepAlive(iter([pb.LeaseKeepAliveRequest(ID=lease_id)]), timeout=TIMEOUT_S)
    for resp in call:
        call.cancel()
        return ("ok", resp.ID, resp.TTL > 0)
    return ("no answer",)


def ttl_form(resp: pb.LeaseTimeToLiveResponse) -> Any:
    # TTL: remaining seconds (-1: expired or unknown); compared as "alive" plus the granted TTL
    return (resp.ID, resp.TTL if resp.TTL <= 0 else "alive", resp.grantedTTL, sorted(resp.keys))


def test_lease_api_answers_as_the_reference_etcd(tmp_path: Path) -> None:
    with (
        one_member("reference", tmp_path / "ref") as ref_addr,
        one_member("petcd", tmp_path / "petcd") as our_addr,
        grpc.insecure_channel(ref_addr) as ref_ch,
        grpc.insecure_channel(our_addr) as our_ch,
    ):
        ref, ours = Side(ref_ch), Side(our_ch)

        def both(
            what: str, pick: Callable[[Side], Callable[..., Any]], req: Any, form: Callable[[Any], Any]
        ) -> Any:
            a, b = answer(pick(ref), req, form), answer(pick(ours), req, form)
            assert a == b, what
            return a

        grant = lambda r: (r.ID, r.TTL, r.error)  # noqa: E731
        rev = lambda r: r.header.revision  # noqa: E731
        both("grant", lambda s: s.lease.LeaseGrant, pb.LeaseGrantRequest(ID=0x1234, TTL=60), grant)
        both("grant again", lambda s: s.lease.LeaseGrant, pb.LeaseGrantRequest(ID=0x1234, TTL=60), grant)
        # (no lease shorter than a few seconds: its expiry would race the requests that follow)
        both("grant other", lambda s: s.lease.LeaseGrant, pb.LeaseGrantRequest(ID=0x99, TTL=120), grant)
        both(
            "grant huge",
            lambda s: s.lease.LeaseGrant,
            pb.LeaseGrantRequest(ID=0x77, TTL=9_000_000_001),
            grant,
        )
        for key in (b"a", b"b", b"c"):
            both("put", lambda s: s.kv.Put, pb.PutRequest(key=key, value=b"v", lease=0x1234), rev)
        both("put unknown lease", lambda s: s.kv.Put, pb.PutRequest(key=b"x", value=b"v", lease=0x4242), rev)
        both("put no lease", lambda s: s.kv.Put, pb.PutRequest(key=b"d", value=b"v"), rev)
        both(
            "ttl",
            lambda s: s.lease.LeaseTimeToLive,
            pb.LeaseTimeToLiveRequest(ID=0x1234, keys=True),
            ttl_form,
        )
        both("ttl no keys", lambda s: s.lease.LeaseTimeToLive, pb.LeaseTimeToLiveRequest(ID=0x1234), ttl_form)
        both("ttl unknown", lambda s: s.lease.LeaseTimeToLive, pb.LeaseTimeToLiveRequest(ID=0x5555), ttl_form)
        assert keep_alive(ref, 0x1234) == keep_alive(ours, 0x1234) == ("ok", 0x1234, True)
        assert keep_alive(ref, 0x5555) == keep_alive(ours, 0x5555)
        both(
            "leases",
            lambda s: s.lease.LeaseLeases,
            pb.LeaseLeasesRequest(),
            lambda r: sorted(x.ID for x in r.leases),
        )
        # moving a key to another lease detaches it from the first
        both("put b again", lambda s: s.kv.Put, pb.PutRequest(key=b"b", value=b"w", lease=0x99), rev)
        both(
            "ttl after move",
            lambda s: s.lease.LeaseTimeToLive,
            pb.LeaseTimeToLiveRequest(ID=0x1234, keys=True),
            ttl_form,
        )
        both("revoke", lambda s: s.lease.LeaseRevoke, pb.LeaseRevokeRequest(ID=0x1234), rev)
        both("revoke again", lambda s: s.lease.LeaseRevoke, pb.LeaseRevokeRequest(ID=0x1234), rev)
        both(
            "keys left",
            lambda s: s.kv.Range,
            pb.RangeRequest(key=b"\x00", range_end=b"\x00"),
            lambda r: [(kv.key, kv.value, kv.lease, kv.mod_revision) for kv in r.kvs],
        )
        both("revoke zero", lambda s: s.lease.LeaseRevoke, pb.LeaseRevokeRequest(ID=0), rev)
        # cluster and maintenance errors
        both("remove unknown member", lambda s: s.cluster.MemberRemove, pb.MemberRemoveRequest(ID=0xBAD), rev)
        both(
            "promote unknown member",
            lambda s: s.cluster.MemberPromote,
            pb.MemberPromoteRequest(ID=0xBAD),
            rev,
        )
        both("add bad urls", lambda s: s.cluster.MemberAdd, pb.MemberAddRequest(peerURLs=["not a url"]), rev)
        both(
            "move leader to unknown", lambda s: s.maint.MoveLeader, pb.MoveLeaderRequest(targetID=0xBAD), rev
        )
        both(
            "alarms",
            lambda s: s.maint.Alarm,
            pb.AlarmRequest(action=pb.AlarmRequest.GET),
            lambda r: list(r.alarms),
        )
        both("hashkv future", lambda s: s.maint.HashKV, pb.HashKVRequest(revision=10_000), rev)
