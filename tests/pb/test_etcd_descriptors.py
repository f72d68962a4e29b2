"""petcd's .proto files against etcd's own: names, numbers, types, oneofs, enums, services.

etcd's .proto files (3.4, from Debian's golang-etcd-server-dev under /usr/share/gocode) are
compiled with protoc into a FileDescriptorSet, and every message, field, enum value and RPC
they declare must exist in petcd.pb with the same number, type and (for the client API) name.
petcd's files may have more (they follow etcd 3.6); they may not have less or differ.

For etcd's internal raftpb/walpb/snappb, petcd uses packages of its own (petcd.raftpb, ...)
and snake_case names, so those are compared by number and type only.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

import petcd.pb

GOCODE = Path("/usr/share/gocode/src")
ETCD34 = GOCODE / "go.etcd.io" / "etcd"
INCLUDES = [
    GOCODE / "go.etcd.io",
    GOCODE / "github.com" / "gogo" / "protobuf",
    GOCODE / "github.com" / "grpc-ecosystem" / "grpc-gateway" / "third_party" / "googleapis",
]

# etcd's package -> petcd's package, and whether names must match too.
PACKAGES: dict[str, tuple[str, bool]] = {
    "etcdserverpb": ("etcdserverpb", True),
    "mvccpb": ("mvccpb", True),
    "authpb": ("authpb", True),
    "v3electionpb": ("v3electionpb", True),
    "v3lockpb": ("v3lockpb", True),
    "leasepb": ("leasepb", True),
    "membershippb": ("membershippb", True),
    "raftpb": ("petcd.raftpb", False),
    "walpb": ("petcd.walpb", False),
    "snappb": ("petcd.snappb", False),
}

# Messages whose name differs only in petcd's internal packages (etcd spells this one lower case).
RENAMED = {"snappb.snapshot": "petcd.snappb.Snapshot"}

# etcd raftpb messages petcd does not encode with protobuf: configuration changes have a byte
# format of their own in petcd.raft.types.
NOT_MIRRORED = {"raftpb.ConfChange", "raftpb.ConfChangeSingle", "raftpb.ConfChangeV2"}
NOT_MIRRORED_ENUMS = {"raftpb.ConfChangeType", "raftpb.ConfChangeTransition"}

# (include root, files) groups compiled separately: raft_internal.proto imports rpc.proto by a
# path of its own, which would clash with the import path the other files use.
REFERENCE_GROUPS_34: list[tuple[Path, list[str]]] = [
    (
        GOCODE / "go.etcd.io",
        [
            "etcd/etcdserver/etcdserverpb/rpc.proto",
            "etcd/mvcc/mvccpb/kv.proto",
            "etcd/auth/authpb/auth.proto",
            "etcd/etcdserver/api/v3election/v3electionpb/v3election.proto",
            "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
            "etcd/lease/leasepb/lease.proto",
        ],
    ),
    (ETCD34 / "etcdserver" / "etcdserverpb", ["raft_internal.proto", "etcdserver.proto"]),
    (ETCD34 / "raft" / "raftpb", ["raft.proto"]),
    (ETCD34 / "wal" / "walpb", ["record.proto"]),
    (ETCD34 / "etcdserver" / "api" / "snap" / "snappb", ["snap.proto"]),
]


@dataclasses.dataclass(frozen=True)
class Reference:
    """etcd's descriptors, one file at a time as protoc returned them."""

    files: list[descriptor_pb2.FileDescriptorProto]


def compile_reference(groups: list[tuple[Path, list[str]]], includes: list[Path]) -> Reference:
    from grpc_tools import protoc  # type: ignore[import-untyped]

    well_known = str(resources.files("grpc_tools") / "_proto")
    wanted: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for n, (root, names) in enumerate(groups):
            out = Path(scratch) / f"set{n}.pb"
            args = [
                "protoc",
                f"-I{root}",
                *(f"-I{p}" for p in includes),
                f"-I{well_known}",
                f"--descriptor_set_out={out}",
                *names,
            ]
            assert protoc.main(args) == 0, f"protoc could not compile etcd's {names}"
            fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
            for f in fds.file:
                if f.package in PACKAGES:
                    wanted.setdefault(f"{f.package}:{f.name}", f)
    return Reference(list(wanted.values()))


def load_petcd_pool() -> descriptor_pool.DescriptorPool:
    for mod in pkgutil.walk_packages(petcd.pb.__path__, "petcd.pb."):
        if mod.name.endswith("_pb2"):
            importlib.import_module(mod.name)
    return descriptor_pool.Default()


def _ours_name(full_name: str) -> str:
    if full_name in RENAMED:
        return RENAMED[full_name]
    package, _, rest = full_name.partition(".")
    return f"{PACKAGES[package][0]}.{rest}" if package in PACKAGES else full_name


def _walk_messages(
    prefix: str, messages: list[descriptor_pb2.DescriptorProto]
) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
    for m in messages:
        name = f"{prefix}.{m.name}"
        yield name, m
        yield from _walk_messages(name, list(m.nested_type))


def _walk_enums(
    prefix: str,
    messages: list[descriptor_pb2.DescriptorProto],
    enums: list[descriptor_pb2.EnumDescriptorProto],
) -> Iterator[tuple[str, descriptor_pb2.EnumDescriptorProto]]:
    for e in enums:
        yield f"{prefix}.{e.name}", e
    for m in messages:
        yield from _walk_enums(f"{prefix}.{m.name}", list(m.nested_type), list(m.enum_type))


def compare(reference: Reference, pool: descriptor_pool.DescriptorPool) -> list[str]:
    """Every difference, as one line each (empty when petcd covers etcd exactly)."""
    problems: list[str] = []
    for f in reference.files:
        strict = PACKAGES[f.package][1]
        for name, msg in _walk_messages(f.package, list(f.message_type)):
            if name in NOT_MIRRORED:
                continue
            try:
                ours = pool.FindMessageTypeByName(_ours_name(name))
            except KeyError:
                problems.append(f"message {name} missing")
                continue
            problems.extend(_compare_message(name, msg, ours, strict))
        for name, enum in _walk_enums(f.package, list(f.message_type), list(f.enum_type)):
            if name in NOT_MIRRORED_ENUMS:
                continue
            try:
                ours_enum = pool.FindEnumTypeByName(_ours_name(name))
            except KeyError:
                problems.append(f"enum {name} missing")
                continue
            problems.extend(_compare_enum(name, enum, ours_enum, strict))
        for svc in f.service:
            sname = f"{f.package}.{svc.name}"
            try:
                ours_svc = pool.FindServiceByName(sname)
            except KeyError:
                problems.append(f"service {sname} missing")
                continue
            for m in svc.method:
                om = ours_svc.methods_by_name.get(m.name)
                if om is None:
                    problems.append(f"rpc {sname}/{m.name} missing")
                    continue
                theirs = (
                    m.input_type.lstrip("."),
                    m.output_type.lstrip("."),
                    m.client_streaming,
                    m.server_streaming,
                )
                mine = (
                    om.input_type.full_name,
                    om.output_type.full_name,
                    om.client_streaming,
                    om.server_streaming,
                )
                if theirs != mine:
                    problems.append(f"rpc {sname}/{m.name}: etcd {theirs} petcd {mine}")
    return problems


def _compare_message(
    name: str, msg: descriptor_pb2.DescriptorProto, ours: Descriptor, strict: bool
) -> list[str]:
    problems = []
    for fld in msg.field:
        of = ours.fields_by_number.get(fld.number)
        where = f"{name}.{fld.name} = {fld.number}"
        if of is None:
            problems.append(f"{where}: missing")
            continue
        if strict and of.name != fld.name:
            problems.append(f"{where}: petcd names it {of.name}")
        if of.type != fld.type:
            problems.append(f"{where}: type {fld.type} vs petcd {of.type}")
        if (fld.label == FieldDescriptor.LABEL_REPEATED) != of.is_repeated:
            problems.append(f"{where}: repeated differs")
        if fld.type_name:
            want = _ours_name(fld.type_name.lstrip("."))
            got = (of.message_type or of.enum_type).full_name  # type: ignore[union-attr]
            if want != got:
                problems.append(f"{where}: of type {want}, petcd {got}")
        their_oneof = (
            msg.oneof_decl[fld.oneof_index].name
            if fld.HasField("oneof_index") and not fld.proto3_optional
            else None
        )
        our_oneof = of.containing_oneof.name if of.containing_oneof is not None else None
        if our_oneof is not None and our_oneof.startswith("_"):
            our_oneof = None  # the synthetic oneof of a proto3 `optional` field
        if their_oneof != our_oneof:
            problems.append(f"{where}: oneof {their_oneof} vs petcd {our_oneof}")
    return problems


def _compare_enum(
    name: str, enum: descriptor_pb2.EnumDescriptorProto, ours: EnumDescriptor, strict: bool
) -> list[str]:
    theirs = {v.name: v.number for v in enum.value}
    mine = {v.name: v.number for v in ours.values}
    if strict:
        missing = {k: v for k, v in theirs.items() if mine.get(k) != v}
        return [f"enum {name}: {k} = {v} missing or renumbered" for k, v in missing.items()]
    if sorted(theirs.values()) != sorted(v for v in mine.values() if v in theirs.values()):
        return [f"enum {name}: numbers {sorted(theirs.values())} vs petcd {sorted(mine.values())}"]
    return []


@pytest.fixture(scope="module")
def reference34() -> Reference:
    if not (ETCD34 / "etcdserver" / "etcdserverpb" / "rpc.proto").exists():
        pytest.skip(f"etcd's .proto files are not installed under {ETCD34}")
    missing = [p for p in INCLUDES if not p.exists()]
    if missing:
        pytest.skip(f"include directories for etcd's .proto files are missing: {missing}")
    return compile_reference(REFERENCE_GROUPS_34, INCLUDES)


def test_reference_is_not_empty(reference34: Reference) -> None:
    # Guard against a comparison that passes because protoc returned nothing.
    names = {f.package for f in reference34.files}
    assert names == set(PACKAGES) - {"membershippb"}
    rpc = next(f for f in reference34.files if f.name.endswith("rpc.proto"))
    assert len(rpc.message_type) > 80
    assert {s.name for s in rpc.service} == {"KV", "Watch", "Lease", "Cluster", "Maintenance", "Auth"}


def test_petcd_covers_etcd_34(reference34: Reference) -> None:
    assert compare(reference34, load_petcd_pool()) == []


def test_comparison_notices_a_renumbered_field(reference34: Reference) -> None:
    broken = Reference([])
    for f in reference34.files:
        copy = descriptor_pb2.FileDescriptorProto()
        copy.CopyFrom(f)
        for m in copy.message_type:
            if m.name == "PutRequest":
                for fld in m.field:
                    if fld.name == "lease":
                        fld.number = 99
        broken.files.append(copy)
    assert compare(broken, load_petcd_pool()) == ["etcdserverpb.PutRequest.lease = 99: missing"]


def test_gateway_paths_cover_every_rpc() -> None:
    from petcd.pb.gateway import http_pb2

    pool = load_petcd_pool()
    paths = set()
    for service in [
        "etcdserverpb.KV",
        "etcdserverpb.Watch",
        "etcdserverpb.Lease",
        "etcdserverpb.Cluster",
        "etcdserverpb.Maintenance",
        "etcdserverpb.Auth",
        "v3electionpb.Election",
        "v3lockpb.Lock",
    ]:
        for method in pool.FindServiceByName(service).methods:
            posts = list(method.GetOptions().Extensions[http_pb2.http_post])
            assert posts, f"{method.full_name} has no gateway path"
            assert all(p.startswith("/v3/") for p in posts)
            paths.update(posts)
    assert {"/v3/kv/range", "/v3/maintenance/transfer-leadership", "/v3/kv/lease/leases"} <= paths
