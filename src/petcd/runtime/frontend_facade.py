"""The EtcdFacade of a front-end process: local reads, everything else forwarded to the core.

DESIGN.md, "Scaling past one core". A front-end process runs the gRPC services and the gateway over
this facade; the same protocol as the in-process `RuntimeFacade`, so petcd.api cannot tell them apart.

* Serializable ranges are read from the front-end's own read-only handle on the backend (LMDB allows
  readers in many processes; `LmdbBackend` in read-only mode follows a defragmentation's file
  switch), with the MVCC store's read path: one read transaction, nothing the core holds in memory.
* Linearizable ranges first get a read index from the core ("read_index" on the channel: the core
  answers once its applied index has reached it, and it commits each applied batch to the backend
  before answering), then read locally, after checking that the backend's `consistent_index` has
  reached the index. Reads waiting at the same time share one read-index round: a read that arrives
  while a round is in flight waits for the next one, whose index is at least as new as the read.
* Watch streams are served here, from the history in the backend (petcd.runtime.frontend_watch),
  woken by the core's "revision advanced" notices on the channel.
* Every other call (writes, leases, members, maintenance) is forwarded to the core
  (petcd.runtime.channel), which serves it with its RuntimeFacade.
* Headers: cluster ID, member ID and raft term come from the state the core pushes on change; the
  revision is read from the backend (the revision every reader of this process sees).
* A single-key range is read on the event loop (a few tens of microseconds); wider ranges in a
  worker thread, so that a large one does not stall every other request of the process.
"""

from __future__ import annotations

import asyncio
from typing import Any

from petcd.backend import Backend, read_consistent_index
from petcd.mvcc.kvstore import KVStore
from petcd.mvcc.watchable_store import PROGRESS_NOTIFY_INTERVAL_S
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.runtime.channel import ChannelClosed, CoreClient, FrontendState
from petcd.runtime.facade import SpooledSnapshot, spool
from petcd.runtime.frontend_watch import FrontendWatchHub, FrontendWatchStream
from petcd.server.errors import Timeout
from petcd.server.responses import range_response

APPLY_WAIT_S = 0.001


def is_point_read(req: pb.RangeRequest) -> bool:
    """A range of at most one key: cheap enough to read on the event loop."""
    return not req.range_end


class FrontendFacade:
    """EtcdFacade for a front-end process (see the module docstring)."""

    def __init__(
        self,
        client: CoreClient,
        backend: Backend,
        *,
        request_timeout_s: float,
        progress_notify_interval_s: float = PROGRESS_NOTIFY_INTERVAL_S,
    ) -> None:
        self.client = client
        self.backend = backend
        self.kv = KVStore(backend)
        self.request_timeout_s = request_timeout_s
        self.watch_hub = FrontendWatchHub(self.kv, progress_notify_interval_s=progress_notify_interval_s)
        client.on_revision = self.watch_hub.on_revision
        # The read-index round being collected (not yet sent), and whether one is in flight.
        self._next_round: asyncio.Future[int] | None = None
        self._round_in_flight = False

    @property
    def _state(self) -> FrontendState:
        state = self.client.state
        assert state is not None, "CoreClient.connect waits for the first state"
        return state

    # --- header and state -------------------------------------------------------------------

    def header(self) -> pb.ResponseHeader:
        return self._header_at(self.kv.current_rev)

    def _header_at(self, revision: int) -> pb.ResponseHeader:
        st = self._state
        return pb.ResponseHeader(
            cluster_id=st.cluster_id, member_id=st.member_id, revision=revision, raft_term=st.raft_term
        )

    def leader_id(self) -> int:
        return self._state.leader_id

    def is_learner(self) -> bool:
        return self._state.is_learner

    def version_info(self) -> tuple[str, str]:
        st = self._state
        return st.server_version, (st.cluster_version or "not_decided")

    # --- reads ------------------------------------------------------------------------------

    def _local_range(self, req: pb.RangeRequest) -> pb.RangeResponse:
        # the header's revision is the one the range read (range_response sets it): reading the
        # current revision again for the header would be a second read transaction per request
        return range_response(self.kv.range(req), self._header_at(0))

    async def _read(self, req: pb.RangeRequest) -> pb.RangeResponse:
        if is_point_read(req):
            return self._local_range(req)
        return await asyncio.to_thread(self._local_range, req)

    async def range(self, req: pb.RangeRequest) -> pb.RangeResponse:
        if not req.serializable:
            index = await asyncio.shield(self._read_index())
            await self._wait_applied(index)
        return await self._read(req)

    def _read_index(self) -> asyncio.Future[int]:
        if self._next_round is None:
            aloop = asyncio.get_running_loop()
            self._next_round = aloop.create_future()
            if not self._round_in_flight:
                aloop.call_soon(self._start_round)
        return self._next_round

    def _start_round(self) -> None:
        fut, self._next_round = self._next_round, None
        if fut is None:
            return
        self._round_in_flight = True
        task = asyncio.ensure_future(self.client.call("read_index"))
        task.add_done_callback(lambda t: self._round_done(t, fut))

    def _round_done(self, task: asyncio.Future[Any], fut: asyncio.Future[int]) -> None:
        self._round_in_flight = False
        if not fut.done():
            if task.cancelled():
                fut.set_exception(ChannelClosed())
            elif task.exception() is not None:
                fut.set_exception(task.exception())  # type: ignore[arg-type]
            else:
                fut.set_result(int(task.result()))
        elif not task.cancelled():
            task.exception()  # retrieved: nobody else will look
        if self._next_round is not None:
            self._start_round()

    async def _wait_applied(self, index: int) -> None:
        # The core answers the read index only after applying it and committing the batch, so
        # this normally passes at once; it guards against reading a backend behind the index.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout_s
        while True:
            with self.backend.read_txn() as txn:
                applied, _ = read_consistent_index(txn)
            if applied >= index:
                return
            if loop.time() > deadline:
                raise Timeout()
            await asyncio.sleep(APPLY_WAIT_S)

    # --- forwarded --------------------------------------------------------------------------

    async def _forward(self, method: str, req: Any) -> Any:
        return await self.client.call(method, req)

    async def put(self, req: pb.PutRequest) -> pb.PutResponse:
        resp: pb.PutResponse = await self._forward("put", req)
        return resp

    async def delete_range(self, req: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
        resp: pb.DeleteRangeResponse = await self._forward("delete_range", req)
        return resp

    async def txn(self, req: pb.TxnRequest) -> pb.TxnResponse:
        resp: pb.TxnResponse = await self._forward("txn", req)
        return resp

    async def compact(self, req: pb.CompactionRequest) -> pb.CompactionResponse:
        resp: pb.CompactionResponse = await self._forward("compact", req)
        return resp

    def open_watch_stream(self) -> FrontendWatchStream:
        return FrontendWatchStream(self.watch_hub, self._header_at)

    async def lease_grant(self, req: pb.LeaseGrantRequest) -> pb.LeaseGrantResponse:
        resp: pb.LeaseGrantResponse = await self._forward("lease_grant", req)
        return resp

    async def lease_revoke(self, req: pb.LeaseRevokeRequest) -> pb.LeaseRevokeResponse:
        resp: pb.LeaseRevokeResponse = await self._forward("lease_revoke", req)
        return resp

    async def lease_keep_alive(self, req: pb.LeaseKeepAliveRequest) -> pb.LeaseKeepAliveResponse:
        resp: pb.LeaseKeepAliveResponse = await self._forward("lease_keep_alive", req)
        return resp

    async def lease_time_to_live(self, req: pb.LeaseTimeToLiveRequest) -> pb.LeaseTimeToLiveResponse:
        resp: pb.LeaseTimeToLiveResponse = await self._forward("lease_time_to_live", req)
        return resp

    async def lease_leases(self, req: pb.LeaseLeasesRequest) -> pb.LeaseLeasesResponse:
        resp: pb.LeaseLeasesResponse = await self._forward("lease_leases", req)
        return resp

    async def member_add(self, req: pb.MemberAddRequest) -> pb.MemberAddResponse:
        resp: pb.MemberAddResponse = await self._forward("member_add", req)
        return resp

    async def member_remove(self, req: pb.MemberRemoveRequest) -> pb.MemberRemoveResponse:
        resp: pb.MemberRemoveResponse = await self._forward("member_remove", req)
        return resp

    async def member_update(self, req: pb.MemberUpdateRequest) -> pb.MemberUpdateResponse:
        resp: pb.MemberUpdateResponse = await self._forward("member_update", req)
        return resp

    async def member_list(self, req: pb.MemberListRequest) -> pb.MemberListResponse:
        resp: pb.MemberListResponse = await self._forward("member_list", req)
        return resp

    async def member_promote(self, req: pb.MemberPromoteRequest) -> pb.MemberPromoteResponse:
        resp: pb.MemberPromoteResponse = await self._forward("member_promote", req)
        return resp

    async def alarm(self, req: pb.AlarmRequest) -> pb.AlarmResponse:
        resp: pb.AlarmResponse = await self._forward("alarm", req)
        return resp

    async def status(self, req: pb.StatusRequest) -> pb.StatusResponse:
        resp: pb.StatusResponse = await self._forward("status", req)
        return resp

    async def defragment(self, req: pb.DefragmentRequest) -> pb.DefragmentResponse:
        resp: pb.DefragmentResponse = await self._forward("defragment", req)
        return resp

    async def hash(self, req: pb.HashRequest) -> pb.HashResponse:
        resp: pb.HashResponse = await self._forward("hash", req)
        return resp

    async def hash_kv(self, req: pb.HashKVRequest) -> pb.HashKVResponse:
        resp: pb.HashKVResponse = await self._forward("hash_kv", req)
        return resp

    async def snapshot(self) -> SpooledSnapshot:
        # The backend as of one read transaction of this process's own handle: the same stream
        # the core would send (petcd.backend.snapshot format), without crossing the channel.
        stream = await asyncio.to_thread(self.backend.snapshot)
        return await asyncio.to_thread(spool, stream)

    async def move_leader(self, req: pb.MoveLeaderRequest) -> pb.MoveLeaderResponse:
        resp: pb.MoveLeaderResponse = await self._forward("move_leader", req)
        return resp
