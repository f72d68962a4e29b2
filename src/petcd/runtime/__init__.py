"""Ring C, the runtime: real I/O behind the server Node's ports.

* transport - the peer transport (framed TCP, handshake, bounded queues, snapshots in chunks).
* log_store - the LogStore port over petcd.wal (Wal + Snapshotter), group commit per Ready.
* node_thread - the owner thread of the Node: ticks, inbox, proposals, the Ready loop.
* facade - the EtcdFacade implementation: asyncio callers <-> the node thread, with futures.
* serve - gRPC servicers and the HTTP gateway on the client URLs.
"""
