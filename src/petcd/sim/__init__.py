"""Deterministic simulation of a petcd raft cluster (see `cluster` for the theory of operation).

Modules: `scheduler` (fake clock, event queue), `network` (loss, delay, duplication, reordering,
partitions), `kv` (the state machine), `checker` (safety checks over observations), `knobs`
(per-seed parameters), `node` and `cluster` (the simulation itself), `sweep` (running seeds) and
`__main__` (the command line: `python -m petcd.sim --seed N` / `--seeds A-B`).

Submodules are not imported here, so the parts that do not need raft (scheduler, network, checker)
can be used on their own.
"""
