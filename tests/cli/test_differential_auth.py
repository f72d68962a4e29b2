"""Differential tests of auth, user and role: petcd's etcdctl and the reference etcdctl 3.4.23,
in lockstep on two identical reference servers (see conftest / etcdctl_harness).

3.4 has no ``auth status`` (added in 3.5); petcd's output for it is checked on its own.
"""

from __future__ import annotations

import pytest
from etcdctl_harness import Pair, Result, needs_etcd

pytestmark = needs_etcd

ROOT = ["--user", "root:rootpw"]

STEPS: list[tuple[list[str], bytes]] = [
    (["user", "add", "root", "--new-user-password=rootpw"], b""),
    (["user", "add", "alice:alicepw"], b""),
    (["user", "add", "bob", "--interactive=false"], b"bobpw\n"),
    (["user", "add", "nopw", "--no-password", "-w", "json"], b""),
    (["user", "add", ":x"], b""),
    (["user", "add"], b""),
    (["user", "add", "alice:again"], b""),
    (["user", "list"], b""),
    (["user", "list", "-w", "json"], b""),
    (["user", "list", "-w", "fields"], b""),
    (["role", "add", "r1"], b""),
    (["role", "add", "r2", "-w", "json"], b""),
    (["role", "add", "r3", "-w", "fields"], b""),
    (["role", "list"], b""),
    (["role", "list", "-w", "fields"], b""),
    (["role", "grant-permission", "r1", "read", "foo"], b""),
    (["role", "grant-permission", "r1", "write", "a", "b"], b""),
    (["role", "grant-permission", "r1", "readwrite", "p", "--prefix"], b""),
    (["role", "grant-permission", "r1", "READ", "f", "--from-key"], b""),
    (["role", "grant-permission", "r2", "readwrite", "", "--prefix"], b""),
    (["role", "grant-permission", "r1", "bogus", "x"], b""),
    (["role", "grant-permission", "r1", "read"], b""),
    (["role", "grant-permission", "r1", "read", "a", "b", "--prefix"], b""),
    (["role", "get", "r1"], b""),
    (["role", "get", "r2"], b""),
    (["role", "get", "r1", "-w", "fields"], b""),
    (["role", "get", "r1", "-w", "json"], b""),
    (["role", "get", "nosuch"], b""),
    (["user", "grant-role", "alice", "r1"], b""),
    (["user", "grant-role", "alice", "r2", "-w", "json"], b""),
    (["user", "grant-role", "alice", "nosuch"], b""),
    (["user", "get", "alice"], b""),
    (["user", "get", "alice", "--detail"], b""),
    (["user", "get", "alice", "-w", "json"], b""),
    (["user", "get", "alice", "-w", "fields"], b""),
    (["user", "get", "bob"], b""),
    (["role", "revoke-permission", "r1", "foo"], b""),
    (["role", "revoke-permission", "r1", "a", "b"], b""),
    (["role", "revoke-permission", "r1", "p", "--prefix"], b""),
    (["role", "revoke-permission", "r2", "", "--prefix"], b""),
    (["role", "revoke-permission", "r1", "nothing"], b""),
    (["user", "revoke-role", "alice", "r2"], b""),
    (["user", "passwd", "bob", "--interactive=false"], b"newbobpw\n"),
    (["user", "delete", "nopw"], b""),
    (["role", "delete", "r3"], b""),
    (["auth", "enable"], b""),
    (["get", "foo"], b""),
    ([*ROOT, "put", "foo", "1"], b""),
    (["--user", "alice:alicepw", "get", "foo"], b""),
    (["--user", "alice:alicepw", "put", "foo", "2"], b""),
    (["--user", "alice:wrong", "get", "foo"], b""),
    (["--user", "bob:newbobpw", "get", "foo"], b""),
    (["--user", "root", "--password", "rootpw", "user", "list"], b""),
    (["--user", "root:rootpw", "--password", "rootpw", "user", "list"], b""),
    ([*ROOT, "role", "list"], b""),
    ([*ROOT, "auth", "disable"], b""),
    (["get", "foo"], b""),
]


def same(ours: Result, ref: Result) -> None:
    assert ours.out == ref.out
    assert ours.rc == ref.rc
    assert ours.error_lines == ref.error_lines


@pytest.mark.parametrize(("args", "stdin"), STEPS, ids=[" ".join(a) or "-" for a, _ in STEPS])
def test_auth_lockstep(etcd_pair: Pair, args: list[str], stdin: bytes) -> None:
    same(*etcd_pair.both(*args, stdin=stdin))


def test_auth_status(etcd_pair: Pair) -> None:
    # etcd 3.4 has no AuthStatus RPC; the output format is in test_printer_golden
    r = etcd_pair.ours("auth", "status")
    # not one of etcd's own errors: printed as Go prints a gRPC status (the reference etcdctl does
    # the same for the methods petcd's server lacks)
    assert (r.rc, r.err) == (
        1,
        b"Error: rpc error: code = Unimplemented desc = unknown method AuthStatus "
        b"for service etcdserverpb.Auth\n",
    )
