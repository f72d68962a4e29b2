"""The composition root: one etcd member from a validated configuration.

`run(cfg, zap, args)` is what the `etcd` command calls. It is the only place that picks the
concrete classes and connects them:

    OsFileSystem, lock_data_dir                      <data-dir> (locked for this process)
    WalLogStore (petcd.wal Wal + Snapshotter)         <data-dir>/member/{wal,snap}  -> LogStore port
    LmdbBackend                                       <data-dir>/member/snap/db     -> Backend port
    Transport (peer URLs)                             -> Outbox port; its inbound messages -> node thread
    NodeLoop (the node thread)                        -> ResultSink and Clock ports; owns the Node
    Node (ring B)
    RuntimeFacade                                     -> EtcdFacade for the API
    grpc.aio server + GatewayServer (+ ClientPortMux) on --listen-client-urls
        (with --listen-client-http-urls, gRPC alone on the client URLs, HTTP on its own),
        all through petcd.gateway.listeners; or, with --frontend-processes N (petcd only), N
        front-end processes on the client URLs (petcd.etcdmain.frontend) and the local channel
        they reach this process by (petcd.runtime.channel),
    GatewayServer on --listen-metrics-urls.

Bootstrap, as etcd's: a data dir with a WAL restarts from it (its metadata names the member and
cluster; --initial-cluster* are ignored, except that a data dir whose member and cluster both
differ from what the flags describe for a new cluster is refused as another cluster's); otherwise
a new cluster derives every member ID from its peer URLs and the cluster token and the cluster ID
from those; a member joining an existing cluster asks the peers of --initial-cluster for the
cluster ID and finds itself, by its peer URLs, in their member list (after `member add`).

SIGINT and SIGTERM stop the member cleanly: listeners close, the node thread stops, the transport,
WAL and backend are closed, the data dir is unlocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from petcd import eventloop
from petcd.api.core import ApiOptions
from petcd.api.server import build_grpc_server
from petcd.backend.lmdb import LmdbBackend
from petcd.codec.wal import Metadata
from petcd.errors import EtcdError
from petcd.etcdmain.config import ServerConfig, host_port
from petcd.etcdmain.frontend import MAX_RESTARTS, RESTART_WINDOW_S, FrontendPool, FrontendSpec
from petcd.etcdmain.logger import ZapLogger
from petcd.fs.os_fs import OsFileSystem
from petcd.gateway.listeners import ClientListeners
from petcd.gateway.metrics import EtcdMetrics
from petcd.ids import cluster_id as derive_cluster_id
from petcd.ids import id_str
from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.raft.types import Message
from petcd.runtime.facade import RuntimeFacade
from petcd.runtime.failpoints import Failpoints
from petcd.runtime.log_store import WalLogStore
from petcd.runtime.node_loop import NodeLoop, SystemClock
from petcd.runtime.transport import Transport, TransportCallbacks, fetch_members
from petcd.server.membership import Member
from petcd.server.node import Node, NodeConfig, initial_members
from petcd.version import CLUSTER_VERSION, ETCD_VERSION
from petcd.wal import lock_data_dir, snap_dir, wal_dir
from petcd.wal.errors import WalError

CALLER = "etcdmain/etcd.go:73"
EMBED = "embed/etcd.go:300"
DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024


class BootstrapError(Exception):
    """The member cannot start (message for the log's `error` field)."""


@dataclass(slots=True)
class Identity:
    member_id: int
    cluster_id: int
    initial: tuple[Member, ...] = ()
    restarting: bool = False
    # A joining member's view of the cluster before its log brings the membership: member ID ->
    # peer URLs, from the peer it asked.
    peers: dict[int, tuple[str, ...]] = field(default_factory=dict)


@dataclass(slots=True)
class Running:
    """What `run` started, for shutting it down in reverse order."""

    stop_code: int = 0
    closers: list[Any] = field(default_factory=list)


def _identity(cfg: ServerConfig, fs: OsFileSystem, wdir: str, zap: ZapLogger) -> Identity:
    members = initial_members(cfg.initial_cluster, cfg.initial_cluster_token)
    own = next((m for m in members if m.name == cfg.name), None)
    assert own is not None, "validated: the name is in --initial-cluster"
    new_cluster_id = derive_cluster_id(m.id for m in members)
    if WalLogStore.exists(fs, wdir):
        md = WalLogStore.read_metadata(fs, wdir)
        if cfg.is_new_cluster and md.node_id != own.id and md.cluster_id != new_cluster_id:
            raise BootstrapError(
                f"data dir {cfg.data_dir} belongs to member {id_str(md.node_id)} of cluster"
                f" {id_str(md.cluster_id)}, but the flags describe member {id_str(own.id)} of cluster"
                f" {id_str(new_cluster_id)} (--initial-cluster/--initial-cluster-token):"
                " use another --data-dir"
            )
        zap.info(
            "etcdserver/server.go:407",
            "restarting local member",
            cluster_id=id_str(md.cluster_id),
            local_member_id=id_str(md.node_id),
        )
        return Identity(md.node_id, md.cluster_id, restarting=True)
    if cfg.is_new_cluster:
        return Identity(own.id, new_cluster_id, initial=members)
    # Joining: ask the other peers who the cluster is and which ID `member add` gave us.
    others = [u for name, urls in cfg.initial_cluster.items() if name != cfg.name for u in urls]
    if not others:
        raise BootstrapError("--initial-cluster-state existing needs the other members in --initial-cluster")
    try:
        info = fetch_members(others, timeout_s=10.0)
    except ConnectionError as e:
        raise BootstrapError(str(e)) from None
    if not isinstance(info, dict):
        raise BootstrapError("could not retrieve cluster information from the given URLs")
    mine = sorted(cfg.initial_advertise_peer_urls)
    peers = {int(m["id"]): tuple(m.get("peer_urls", [])) for m in info.get("members", [])}
    for mid, urls in peers.items():
        if sorted(urls) == mine:
            return Identity(mid, int(info["cluster_id"]), peers=peers)
    raise BootstrapError(
        f"error validating peerURLs: no member of cluster {id_str(int(info.get('cluster_id', 0)))}"
        f" has the peer URLs {','.join(mine)}"
        f" (add it first: etcdctl member add {cfg.name} --peer-urls={','.join(mine)})"
    )


def _node_config(cfg: ServerConfig, ident: Identity) -> NodeConfig:
    return NodeConfig(
        member_id=ident.member_id,
        cluster_id=ident.cluster_id,
        name=cfg.name,
        peer_urls=tuple(cfg.initial_advertise_peer_urls),
        client_urls=tuple(cfg.advertise_client_urls),
        initial_members=ident.initial,
        cluster_token=cfg.initial_cluster_token,
        tick_s=cfg.heartbeat_ms / 1000.0,
        election_ticks=cfg.election_ticks,
        snapshot_count=cfg.snapshot_count,
        snapshot_catchup_entries=cfg.snapshot_catchup_entries,
        max_txn_ops=cfg.max_txn_ops,
        max_request_bytes=cfg.max_request_bytes,
        strict_reconfig_check=cfg.strict_reconfig_check,
        pre_vote=cfg.pre_vote,
        auto_compaction_mode=cfg.auto_compaction_mode,
        auto_compaction_retention=cfg.auto_compaction_retention_s,
        cluster_version=CLUSTER_VERSION,
        # etcd's --unsafe-no-fsync skips every fsync; otherwise the WAL names the commit of every
        # applied batch durably before it is applied and answered (see Node._handle_ready).
        durable_commit_before_apply=not cfg.unsafe_no_fsync,
        progress_notify_interval_s=max(cfg.watch_progress_notify_interval_s, MIN_WATCH_PROGRESS_INTERVAL_S),
        # request, lease and new members' IDs derive from wall time, as etcd's do, so they do not
        # repeat across restarts (the Clock port is monotonic and starts anew with the process)
        start_unix_ms=int(time.time() * 1000),
        # as etcd: only a restart (a data dir with a WAL) is forced; a new member ignores the flag
        force_new_cluster=cfg.force_new_cluster and ident.restarting,
    )


def _step_all(node: Node, messages: Sequence[Message]) -> None:
    """A burst of raft messages one peer connection read at once: one node-thread hand-off."""
    for m in messages:
        node.step(m)


def _members_info(loop: NodeLoop, node: Node) -> object:
    def read(n: Node) -> object:
        return {
            "cluster_id": n.cluster_id,
            "members": [
                {"id": m.id, "name": m.name, "peer_urls": list(m.peer_urls), "is_learner": m.is_learner}
                for m in n.members.sorted_members()
            ],
        }

    try:
        return loop.submit(read).result(timeout=5.0)
    except Exception:
        return {}


# etcd raises a shorter --watch-progress-notify-interval to this, with a warning
MIN_WATCH_PROGRESS_INTERVAL_S = 0.1


def run(cfg: ServerConfig, zap: ZapLogger, args: Sequence[str]) -> int:
    """Start the member and serve until a signal (or a fatal error); the exit status."""
    zap.info(CALLER, "Running: ", args=["etcd", *args])
    for w in cfg.warnings:
        zap.warn(CALLER, w)
    if cfg.watch_progress_notify_interval_s < MIN_WATCH_PROGRESS_INTERVAL_S:
        zap.warn(
            "v3rpc/watch.go:67",
            "adjusting watch progress notify interval to minimum period",
            min_watch_progress_notify_interval="100ms",
        )
    zap.info(
        EMBED,
        "starting an etcd server",
        etcd_version=ETCD_VERSION,
        name=cfg.name,
        data_dir=cfg.data_dir,
        listen_peer_urls=list(cfg.listen_peer_urls),
        listen_client_urls=list(cfg.listen_client_urls),
        advertise_client_urls=list(cfg.advertise_client_urls),
        initial_advertise_peer_urls=list(cfg.initial_advertise_peer_urls),
        initial_cluster=",".join(f"{n}={u}" for n, us in sorted(cfg.initial_cluster.items()) for u in us),
        initial_cluster_state=cfg.initial_cluster_state,
        snapshot_count=cfg.snapshot_count,
        heartbeat_interval=f"{cfg.heartbeat_ms}ms",
        election_timeout=f"{cfg.election_ms}ms",
    )
    try:
        eventloop.chosen()
    except ValueError as e:
        zap.fatal(CALLER, "failed to start etcd", error=str(e))
        return 1
    fs = OsFileSystem()
    try:
        lock = lock_data_dir(fs, cfg.data_dir)
    except WalError as e:
        zap.fatal(CALLER, "failed to start etcd", error=str(e))
        return 1
    try:
        return _run_locked(cfg, zap, fs)
    except (BootstrapError, WalError, OSError, EtcdError) as e:
        zap.fatal(CALLER, "failed to start etcd", error=str(e))
        return 1
    finally:
        lock.release()


def _run_locked(cfg: ServerConfig, zap: ZapLogger, fs: OsFileSystem) -> int:
    wdir = cfg.wal_dir or wal_dir(cfg.data_dir)
    sdir = snap_dir(cfg.data_dir)
    ident = _identity(cfg, fs, wdir, zap)
    state = Running()
    try:
        log_store = WalLogStore.open_or_create(
            fs,
            wdir,
            sdir,
            Metadata(node_id=ident.member_id, cluster_id=ident.cluster_id),
            max_wals=cfg.max_wals,
            max_snapshots=cfg.max_snapshots,
            unsafe_no_fsync=cfg.unsafe_no_fsync,
        )
        state.closers.append(log_store.close)
        # sync_commits: LMDB writes its data pages durably before the meta page that points to
        # them (MDB_NOMETASYNC), so a power cut cannot leave a torn database.
        backend = LmdbBackend(
            os.path.join(sdir, "db"),
            cfg.quota_backend_bytes or DEFAULT_QUOTA_BYTES,
            sync_commits=not cfg.unsafe_no_fsync,
        )
        state.closers.append(backend.close)
        return _serve_member(cfg, zap, ident, log_store, backend, state)
    finally:
        for close in reversed(state.closers):
            with contextlib.suppress(Exception):
                close()


def _serve_member(  # noqa: PLR0917 - the parts built so far
    cfg: ServerConfig,
    zap: ZapLogger,
    ident: Identity,
    log_store: WalLogStore,
    backend: LmdbBackend,
    state: Running,
) -> int:
    aloop = eventloop.new_event_loop()
    stop_event = asyncio.Event()

    def request_stop(code: int) -> None:
        state.stop_code = state.stop_code or code
        with contextlib.suppress(RuntimeError):  # the event loop is already closed: stopping anyway
            aloop.call_soon_threadsafe(stop_event.set)

    def removed_by_peer() -> None:
        if not state.stop_code and not stop_event.is_set():
            zap.warn("rafthttp/peer.go:267", "the member has been permanently removed from the cluster")
            request_stop(0)

    node_loop = NodeLoop(cfg.heartbeat_ms / 1000.0, on_fatal=lambda _e: request_stop(1))
    holder: dict[str, Node] = {}

    def post(fn: Any) -> None:
        node_loop.post(fn)

    metrics = EtcdMetrics()
    callbacks = TransportCallbacks(
        on_message=lambda m: post(lambda n: n.step(m)),
        on_messages=lambda ms: post(lambda n: _step_all(n, ms)),
        on_snapshot=lambda m, chunks: post(lambda n: n.receive_snapshot(m, chunks)),
        on_unreachable=lambda mid: post(lambda n: n.report_unreachable(mid)),
        on_snapshot_status=lambda mid, ok: post(lambda n: n.report_snapshot(mid, ok)),
        is_removed=lambda mid: "node" in holder and mid in holder["node"].members.removed,
        members_info=lambda: _members_info(node_loop, holder["node"]) if "node" in holder else {},
        on_removed=removed_by_peer,
        on_round_trip=lambda mid, rtt_s: metrics.peer_round_trip_time.labels(id_str(mid)).observe(rtt_s),
    )
    transport = Transport(ident.member_id, ident.cluster_id, cfg.listen_peer_urls, callbacks)
    try:
        transport.listen()
    except OSError as e:
        raise BootstrapError(f"listen tcp {','.join(cfg.listen_peer_urls)}: {e.strerror or e}") from None
    state.closers.append(transport.stop)
    zap.info("embed/etcd.go:134", "configuring peer listeners", listen_peer_urls=list(cfg.listen_peer_urls))
    # GOFAIL_FAILPOINTS (etcd's gofail points, for robustness tests): unset, the ports go in bare.
    fps = Failpoints.from_env()
    node = Node(
        _node_config(cfg, ident),
        fps.wrap_log_store(log_store),
        fps.wrap_backend(backend),
        transport,
        SystemClock(),
        node_loop,
    )
    holder["node"] = node

    def peers_changed(members: list[Member]) -> None:
        peers = {m.id: m.peer_urls for m in members} or ident.peers
        transport.set_peers({mid: urls for mid, urls in peers.items() if mid != ident.member_id})

    node.on_members_changed(peers_changed)
    peers_changed(node.members.sorted_members())
    zap.info(
        "etcdserver/server.go:845",
        "starting etcd server",
        local_member_id=id_str(ident.member_id),
        local_server_version=ETCD_VERSION,
        cluster_id=id_str(ident.cluster_id),
    )
    transport.start()

    def check_removed(n: Node) -> None:
        if n.removed and not state.stop_code:
            zap.warn("etcdserver/server.go:1160", "the member has been permanently removed from the cluster")
            request_stop(0)

    node_loop.every_ready(check_removed)
    log_store.observe_sync = metrics.wal_fsync_duration.observe
    node.observe_backend_commit = metrics.backend_commit_duration.observe
    node_loop.every_ready(_metrics_updater(metrics, backend))
    metrics.add_sampled("etcd_debugging_mvcc_", node.watchable.gauges)
    node_loop.start(node)
    state.closers.append(node_loop.stop)
    facade = RuntimeFacade(
        node_loop,
        node,
        server_version=ETCD_VERSION,
        request_timeout_s=node.config.effective_request_timeout_s(),
        leader_client_urls=lambda mid: list(m.client_urls) if (m := node.members.get(mid)) else [],
    )
    try:
        aloop.run_until_complete(
            _serve_clients(
                cfg, zap, facade, node, transport, metrics, stop_event, aloop, request_stop=request_stop
            )
        )
    finally:
        aloop.run_until_complete(facade.close())
        _finish_tasks(aloop)
        aloop.close()
    return state.stop_code


def _finish_tasks(aloop: asyncio.AbstractEventLoop, timeout_s: float = 2.0) -> None:
    """Cancel what still runs on the loop (RPC handlers the server let go of, waiting on the node
    thread) and let it unwind while the node thread still answers, as asyncio.run does; a task
    destroyed pending would print a traceback into the member's log."""
    tasks = [t for t in asyncio.all_tasks(aloop) if not t.done()]
    if not tasks:
        return
    for t in tasks:
        t.cancel()
    aloop.run_until_complete(asyncio.wait(tasks, timeout=timeout_s))


async def _serve_clients(  # noqa: PLR0917 - the parts built so far
    cfg: ServerConfig,
    zap: ZapLogger,
    facade: RuntimeFacade,
    node: Node,
    transport: Transport,
    metrics: EtcdMetrics,
    stop_event: asyncio.Event,
    aloop: asyncio.AbstractEventLoop,
    request_stop: Callable[[int], None] | None = None,
) -> None:
    for sig, name in ((signal.SIGINT, "interrupt"), (signal.SIGTERM, "terminated")):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            aloop.add_signal_handler(sig, _on_signal, zap, name, stop_event)
    options = ApiOptions(
        max_txn_ops=cfg.max_txn_ops,
        max_request_bytes=cfg.max_request_bytes,
        election_timeout_s=cfg.election_ms / 1000.0,
    )
    server, core, health = build_grpc_server(facade, options)
    listeners = ClientListeners(core, metrics)
    # Like etcd, client requests are served only once the member is ready (it has published itself
    # through raft and re-applied what it had committed before this start); the ports are probed
    # now, so a port in use stops the start at once.
    all_urls = [*cfg.listen_client_urls, *cfg.listen_client_http_urls, *cfg.listen_metrics_urls]
    _probe_ports(all_urls)
    stop_task = asyncio.ensure_future(stop_event.wait())
    ready_task = asyncio.ensure_future(_until_ready(node))
    pool: FrontendPool | None = None
    pool_task: asyncio.Future[None] | None = None
    try:
        await asyncio.wait({stop_task, ready_task}, return_when=asyncio.FIRST_COMPLETED)
        if stop_event.is_set():
            return
        if cfg.frontend_processes:
            # petcd's front-end processes serve the client URLs (DESIGN.md, "Scaling past one core")
            pool = await _start_frontends(cfg, facade, metrics)
            pool_task = asyncio.ensure_future(_watch_frontends(zap, pool, request_stop))
        else:
            await listeners.start(
                server,
                [host_port(u) for u in cfg.listen_client_urls],
                [host_port(u) for u in cfg.listen_client_http_urls],
                cfg.enable_grpc_gateway,
                socket_dir=_private_socket_dir(cfg.data_dir),
            )
        await listeners.serve_http([host_port(u) for u in cfg.listen_metrics_urls])
        health.set_serving(True)
        zap.info("embed/serve.go:103", "ready to serve client requests")
        for url in cfg.listen_client_urls:
            zap.warn(
                "embed/serve.go:210",
                "serving client traffic insecurely; this is strongly discouraged!",
                address=url.split("://", 1)[-1],
            )
        await stop_task
        await _transfer_leadership(zap, facade, node, transport, cfg.election_ms / 1000.0)
    finally:
        for t in (stop_task, ready_task, pool_task):
            if t is not None:
                t.cancel()
        health.set_serving(False)
        zap.info("embed/etcd.go:370", "closing etcd server", name=cfg.name, data_dir=cfg.data_dir)
        if pool is not None:
            await pool.stop()
        await listeners.close()
        await server.stop(0.5)


async def _start_frontends(cfg: ServerConfig, facade: RuntimeFacade, metrics: EtcdMetrics) -> FrontendPool:
    """Start `--frontend-processes` front-ends on the client URLs (petcd.etcdmain.frontend); every
    /metrics (theirs, over the channel, and the core's metrics URLs) shows the member's figures, the
    front-ends' reports merged in (petcd.gateway.metrics)."""
    spec = FrontendSpec(
        socket="",
        db=os.path.join(snap_dir(cfg.data_dir), "db"),
        quota_bytes=cfg.quota_backend_bytes or DEFAULT_QUOTA_BYTES,
        listen_client_urls=tuple(cfg.listen_client_urls),
        listen_client_http_urls=tuple(cfg.listen_client_http_urls),
        enable_grpc_gateway=cfg.enable_grpc_gateway,
        max_txn_ops=cfg.max_txn_ops,
        max_request_bytes=cfg.max_request_bytes,
        election_timeout_s=cfg.election_ms / 1000.0,
        request_timeout_s=facade.request_timeout_s,
        watch_progress_notify_interval_s=max(
            cfg.watch_progress_notify_interval_s, MIN_WATCH_PROGRESS_INTERVAL_S
        ),
    )
    pool = FrontendPool(facade, spec, cfg.frontend_processes, socket_dir=os.path.join(cfg.data_dir, "member"))
    pool.channel.render_metrics = metrics.render
    metrics.add_contributions(pool.channel.reports)
    try:
        await pool.start()
    except (RuntimeError, OSError) as e:
        await pool.stop()
        raise BootstrapError(f"front-end processes: {e}") from None
    return pool


async def _watch_frontends(
    zap: ZapLogger, pool: FrontendPool, request_stop: Callable[[int], None] | None
) -> None:
    def restarted(pid: int, code: int) -> None:
        zap.warn(CALLER, "a front-end process stopped; starting another", pid=pid, exit_status=code)

    code = await pool.supervise(restarted)
    zap.error(
        CALLER,
        "front-end processes keep stopping; stopping the member",
        exit_status=code,
        max_restarts=MAX_RESTARTS,
        window=f"{RESTART_WINDOW_S:g}s",
    )
    if request_stop is not None:
        request_stop(1)


def _metrics_updater(metrics: EtcdMetrics, backend: LmdbBackend) -> Callable[[Node], None]:
    """Runs on the node thread after each round of Readies: etcd's server gauges."""
    last = {"leader": -1, "size_s": 0.0, "failed": 0}

    def update(n: Node) -> None:
        lead = n.leader_id
        if lead != last["leader"]:
            if lead:
                metrics.leader_changes.inc()
            last["leader"] = lead
            metrics.has_leader.set(1.0 if lead else 0.0)
        metrics.proposals_committed.set(n.committed_index)
        metrics.proposals_applied.set(n.applied_index)
        metrics.proposals_pending.set(n.proposals_pending)
        if n.proposals_failed != last["failed"]:
            metrics.proposals_failed.inc(n.proposals_failed - last["failed"])
            last["failed"] = n.proposals_failed
        now = time.monotonic()
        if now - last["size_s"] >= 1.0:  # a stat of the db file: not on every Ready
            last["size_s"] = now
            metrics.db_total_size.set(backend.size_bytes())

    return update


def _private_socket_dir(data_dir: str) -> str:
    """Where the client-port mux reaches the gRPC server: the member's own directory, which the
    data-dir lock keeps to this process, so a socket left by a killed member is stale (removed
    here) and nothing is left in $TMPDIR."""
    member_dir = os.path.join(data_dir, "member")
    for stale in glob.glob(os.path.join(glob.escape(member_dir), "grpc-*.sock")):
        with contextlib.suppress(OSError):
            os.unlink(stale)
    return member_dir


def _probe_ports(urls: Sequence[str]) -> None:
    for url in urls:
        host, port = host_port(url)
        try:
            with socket.create_server((host, port)):
                pass
        except OSError as e:
            raise BootstrapError(f"listen tcp {host}:{port}: bind: {e.strerror or e}") from None


async def _transfer_leadership(
    zap: ZapLogger, facade: RuntimeFacade, node: Node, transport: Transport, election_s: float
) -> None:
    """A leader that stops hands leadership over first (etcd: TransferLeadership on Stop)."""
    if not node.is_leader:
        return
    voters = [m.id for m in node.members.voting_members() if m.id != node.member_id]
    if not voters:
        zap.info("etcdserver/server.go:1461", "skipped leadership transfer for single voting member cluster")
        return
    # The peer connected longest is the likeliest to be caught up (etcd: longestConnected).
    since = {v: transport.active_since(v) for v in voters}
    alive = [v for v in voters if since[v] is not None]
    if not alive:
        return
    target = min(alive, key=lambda v: since[v] or 0.0)
    zap.info(
        "etcdserver/server.go:1451",
        "leadership transfer starting",
        local_member_id=id_str(node.member_id),
        transferee=id_str(target),
    )
    try:
        await asyncio.wait_for(
            facade.move_leader(pb.MoveLeaderRequest(targetID=target)), 2 * election_s + 1.0
        )
        zap.info("etcdserver/server.go:1470", "leadership transfer finished", transferee=id_str(target))
    except (EtcdError, TimeoutError) as e:
        zap.warn("etcdserver/server.go:1466", "leadership transfer failed", error=str(e))


async def _until_ready(node: Node) -> None:
    while True:
        me = node.members.get(node.member_id)
        if node.leader_id and node.recovered and me is not None and me.client_urls:
            return
        await asyncio.sleep(0.02)


def _on_signal(zap: ZapLogger, name: str, stop_event: asyncio.Event) -> None:
    zap.info("osutil/interrupt_unix.go:64", "received signal; shutting down", signal=name)
    stop_event.set()
