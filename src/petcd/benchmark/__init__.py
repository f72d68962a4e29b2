"""petcd's benchmark tool: etcd's tools/benchmark workloads and report, for petcd and any etcd.

``cli`` parses etcd's flags and prints etcd's report (``report``); ``runner`` spreads the load over
processes, asyncio tasks and gRPC connections and merges the measurements; the workloads live in
``kv`` (put, range, txn-put, txn-mixed), ``watch`` (watch, watch-latency), ``lease``
(lease-keepalive), ``k8s`` (a Kubernetes-like mix) and ``mvcc_put`` (the MVCC store in-process,
the one module here that reaches below the client API). ``null_server`` is a gRPC KV server that
does nothing, to measure the generator's own ceiling.
"""
