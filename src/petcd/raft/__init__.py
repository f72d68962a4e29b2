"""Raft consensus as a pure, deterministic state machine (ring A of DESIGN.md).

No I/O, no clock, no threads, no randomness of its own: the caller feeds `tick()`, `step()` and
proposals into a `RawNode`, collects a `Ready`, persists, sends and applies what it says, and calls
`advance()`. Modules follow etcd's raft package, in Python spelling.
"""
