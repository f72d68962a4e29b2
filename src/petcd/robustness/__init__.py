"""Robustness harness: real etcd processes under faults and traffic, histories checked.

The etcd project earns trust with its robustness suite (tests/robustness in etcd-io/etcd): a real
cluster, realistic traffic, one injected fault per run, and the recorded history checked for
linearizability and watch guarantees. This package does the same for petcd (and runs unchanged
against any etcd binary, e.g. the reference 3.4.23, which validates the harness itself):

    cluster   real member processes on 127.0.0.1, free ports, data dirs in the run directory
    proxy     a fault-injecting TCP proxy on each member's peer listener (partitions, delays)
    traffic   the etcd and Kubernetes client profiles, and watchers, recording everything
    history   operations as recorded, and their projection on single keys for the checkers
    faults    the fault schedule of a seed: kills, pauses, partitions, delays, member
              replacement, whole-cluster restart, compaction, defrag, failpoints
    checks    the final history (read back from the cluster), and the checkers
    runner    one run, start to verdict; the report directory on failure

Usage: ``python -m petcd.robustness --seed 1 --duration 60s --profile etcd --faults kill-leader``.
"""
