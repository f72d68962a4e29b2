"""Ring C, the runtime: real I/O behind the server Node's ports.

* transport - the peer transport (framed TCP, handshake, bounded queues, snapshots in chunks).
* log_store - the LogStore port over petcd.wal (Wal + Snapshotter), group commit per Ready.
* node_loop - the owner thread of the Node: ticks, inbox, proposals, the Ready loop; the
  ResultSink and Clock ports.
* facade - the EtcdFacade implementation: asyncio callers <-> the node thread, with futures.

Serving the API (grpc.aio servicers of petcd.api, the gateway) on the client URLs is wired in
petcd.app, the composition root, since the runtime layer does not import the API layer.
"""
