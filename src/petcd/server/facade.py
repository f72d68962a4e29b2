"""The seam between the client-facing API and a member: the `EtcdFacade` protocol.

Theory of operation
-------------------
The gRPC servicers (petcd.api) and the HTTP gateway (petcd.gateway) see a member only through this
protocol; the runtime implements it by bridging the event loop to the node's owner thread (requests
become proposals or read-index waits, futures are resolved by the node's result sink). Keeping the
seam this narrow is what lets the API later run in front-end processes apart from the core (DESIGN.md,
"Scaling past one core").

Division of labour:

* The API layer checks requests the way etcd's v3rpc does *before* they reach the facade (empty key,
  ignore_value with a value, too many txn ops, duplicate keys in a txn, bad member URLs, ...), and maps
  every `petcd.errors.EtcdError` a facade method raises to a gRPC status by its message (one table).
  The facade raises EtcdError subclasses for every expected failure (compacted, future revision, lease
  not found, no space, member not found, not leader, timeouts, ...) with etcd's exact text; anything else
  it raises is a bug and reaches the client as UNKNOWN.
* Every unary method returns the complete etcdserverpb response, **header included** (cluster_id,
  member_id, revision, raft_term as etcd fills them for that RPC). Where the API builds a response
  itself (watch control responses, election, lock) it uses `header()`.
* Requests and responses are the generated message classes of petcd.pb; the facade may keep the
  request objects (the API does not mutate a request after handing it over).

Watches
-------
`open_watch_stream()` gives one `WatchStreamHandle` per client stream (etcd's mvcc WatchStream). The
API calls `create`/`cancel`/`request_progress` as client requests arrive, and a separate task iterates
`responses()`, which yields the stream's event, progress and compaction-cancel responses in order.
The handle delivers each revision whole (never fragmented: the API fragments for watchers created with
`fragment=True`, as etcd's v3rpc send loop does) and with the header filled (`header.revision` is the
revision the watcher has seen everything up to). Responses for a watch ID may be yielded before the API
has sent that watch's "created" response; the API holds them back until it has (etcd does the same).
`close()` cancels every watcher of the stream and ends `responses()`. The create request reaches the
handle as the client sent it except that an empty key becomes b"\x00" (etcd's recvLoop does the same):
range_end b"" watches one key, b"\x00" every key from `key` on; start_revision 0 means "after the current
revision"; filters, prev_kv and progress_notify are the handle's to apply (fragment is the API's).

Leases
------
`lease_keep_alive` renews once and returns a response whose TTL is 0 when the lease does not exist (as
etcd's keep-alive stream answers); the API drives the bidirectional stream. It may raise `not leader`
style EtcdErrors when the member cannot renew.

Snapshot
--------
`snapshot()` returns a `SnapshotSource`: the backend's size and its bytes as async chunks of any size.
The API cuts them into etcd's 32 KiB SnapshotResponse blobs, counts remaining_bytes and appends the
sha256 trailer, as etcd's maintenance server does.

Synchronous accessors (`header`, `leader_id`, `is_learner`, `version_info`) must be cheap and safe to
call from the event loop; they may read slightly stale values. The gateway's /health is built from
`alarm` (GET), `leader_id` and a `range` of the key "health", as etcd's etcdhttp does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from petcd.pb.etcdserverpb import rpc_pb2 as pb


class WatchStreamHandle(Protocol):
    """One client watch stream: many watchers sharing one ordered response sequence."""

    async def create(self, req: pb.WatchCreateRequest) -> int:
        """Start a watcher; returns its watch ID (picked by the stream when `req.watch_id` is 0).

        Raises EtcdError whose message becomes the created response's cancel_reason, e.g.
        "mvcc: watcher range is empty" or "mvcc: duplicate watch ID provided on the WatchStream";
        a start revision below the compaction point is not an error here: the watcher is created and
        then cancelled through `responses()` with compact_revision set.
        """
        ...

    async def cancel(self, watch_id: int) -> bool:
        """Cancel one watcher; False when no such watcher exists on this stream."""
        ...

    async def request_progress(self) -> None:
        """Ask for a stream-wide progress response (watch_id -1), yielded by `responses()` once
        every watcher of the stream is synced (etcd 3.5's deferred progress)."""
        ...

    def responses(self) -> AsyncIterator[pb.WatchResponse]:
        """The stream's responses in order; ends after `close()`."""
        ...

    async def close(self) -> None:
        """Cancel every watcher and end `responses()`. Idempotent."""
        ...


class SnapshotSource(Protocol):
    """A consistent copy of the backend being read out."""

    size: int  # bytes to come (remaining_bytes counts down from it); 0 if unknown

    def chunks(self) -> AsyncIterator[bytes]:
        """The backend's bytes, exactly `size` of them, in order."""
        ...


class EtcdFacade(Protocol):
    """What a member offers the client-facing API (see the module docstring for the contract)."""

    # -- header and state (synchronous, cheap) -------------------------------------------------------

    def header(self) -> pb.ResponseHeader:
        """A fresh header: cluster_id, member_id, current revision and raft_term."""
        ...

    def leader_id(self) -> int:
        """The member ID of the leader this member knows, 0 when none (for `hasleader` metadata)."""
        ...

    def is_learner(self) -> bool:
        """Whether this member is a learner (which answers only Status and serializable Range)."""
        ...

    def version_info(self) -> tuple[str, str]:
        """(server version, cluster version) as /version shows them; cluster "not_decided" until known."""
        ...

    # -- KV -----------------------------------------------------------------------------------------

    async def range(self, req: pb.RangeRequest) -> pb.RangeResponse: ...

    async def put(self, req: pb.PutRequest) -> pb.PutResponse: ...

    async def delete_range(self, req: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse: ...

    async def txn(self, req: pb.TxnRequest) -> pb.TxnResponse: ...

    async def compact(self, req: pb.CompactionRequest) -> pb.CompactionResponse: ...

    # -- watch --------------------------------------------------------------------------------------

    def open_watch_stream(self) -> WatchStreamHandle: ...

    # -- lease --------------------------------------------------------------------------------------

    async def lease_grant(self, req: pb.LeaseGrantRequest) -> pb.LeaseGrantResponse: ...

    async def lease_revoke(self, req: pb.LeaseRevokeRequest) -> pb.LeaseRevokeResponse: ...

    async def lease_keep_alive(self, req: pb.LeaseKeepAliveRequest) -> pb.LeaseKeepAliveResponse: ...

    async def lease_time_to_live(self, req: pb.LeaseTimeToLiveRequest) -> pb.LeaseTimeToLiveResponse: ...

    async def lease_leases(self, req: pb.LeaseLeasesRequest) -> pb.LeaseLeasesResponse: ...

    # -- cluster ------------------------------------------------------------------------------------

    async def member_add(self, req: pb.MemberAddRequest) -> pb.MemberAddResponse: ...

    async def member_remove(self, req: pb.MemberRemoveRequest) -> pb.MemberRemoveResponse: ...

    async def member_update(self, req: pb.MemberUpdateRequest) -> pb.MemberUpdateResponse: ...

    async def member_list(self, req: pb.MemberListRequest) -> pb.MemberListResponse: ...

    async def member_promote(self, req: pb.MemberPromoteRequest) -> pb.MemberPromoteResponse: ...

    # -- maintenance --------------------------------------------------------------------------------

    async def alarm(self, req: pb.AlarmRequest) -> pb.AlarmResponse: ...

    async def status(self, req: pb.StatusRequest) -> pb.StatusResponse: ...

    async def defragment(self, req: pb.DefragmentRequest) -> pb.DefragmentResponse: ...

    async def hash(self, req: pb.HashRequest) -> pb.HashResponse: ...

    async def hash_kv(self, req: pb.HashKVRequest) -> pb.HashKVResponse: ...

    async def snapshot(self) -> SnapshotSource: ...

    async def move_leader(self, req: pb.MoveLeaderRequest) -> pb.MoveLeaderResponse: ...
