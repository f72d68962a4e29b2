"""The import rules of DESIGN.md ("Layers and who may import whom"), enforced.

Every module under src/petcd belongs to a layer (its first package below `petcd`). Each layer
may import only the petcd layers listed for it, and none of the external modules forbidden for
it. Imports inside functions and under TYPE_CHECKING count too: a layer that must not import
grpc must not reach it lazily either. A new layer fails this test until it is added to the
table, so the picture in DESIGN.md stays true by construction.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "petcd"

IO_MODULES = frozenset(
    {
        "asyncio",
        "threading",
        "multiprocessing",
        "concurrent",
        "time",
        "os",
        "socket",
        "select",
        "selectors",
        "signal",
        "subprocess",
        "shutil",
        "tempfile",
        "io",
        "pathlib",
        "grpc",
        "google",
        "lmdb",
        "uvloop",
    }
)
NETWORK_MODULES = frozenset({"asyncio", "grpc", "socket", "selectors", "select", "uvloop"})

# layer -> petcd layers it may import (itself always allowed)
ALLOWED: dict[str, frozenset[str]] = {
    "__init__": frozenset(),
    "ids": frozenset(),
    "errors": frozenset(),
    "version": frozenset(),
    # etcd's URL-list rules (types.NewURLs/NewURLsMap), shared by the etcd command and etcdutl restore
    "urls": frozenset(),
    # which event loop a server process runs (uvloop's or asyncio's): the roots and the benchmark's
    # do-nothing server
    "eventloop": frozenset(),
    "raft": frozenset({"ids"}),
    "pb": frozenset(),
    "codec": frozenset({"raft", "pb", "ids"}),
    "fs": frozenset({"errors"}),
    "wal": frozenset({"fs", "codec", "raft", "errors", "ids"}),
    "backend": frozenset({"ids", "errors"}),
    # Beyond DESIGN.md's table: the stores keep etcd's own record formats (mvccpb.KeyValue,
    # leasepb.Lease, authpb.User/Role) as their values, so ranges can hand stored bytes to the API
    # without re-encoding; they reach only those message modules of pb (see PB_MODULES).
    "mvcc": frozenset({"backend", "ids", "errors", "pb"}),
    "lease": frozenset({"backend", "ids", "errors", "pb"}),
    "auth": frozenset({"backend", "ids", "errors", "pb"}),
    # Beyond DESIGN.md's table: ring B applies etcd's InternalRaftRequest and answers with etcd's
    # response messages, so it uses pb's message modules (never the *_grpc ones; see PB_MODULES).
    "server": frozenset({"raft", "mvcc", "lease", "auth", "codec", "backend", "ids", "errors", "pb"}),
    "sim": frozenset(
        {"server", "raft", "wal", "fs", "backend", "mvcc", "lease", "auth", "codec", "ids", "errors", "pb"}
    ),
    "runtime": frozenset({"server", "wal", "fs", "backend", "codec", "pb", "raft", "ids", "errors"}),
    # The client-facing API sees the server only through the facade protocol (see FACADE_ONLY).
    "api": frozenset({"server", "pb", "errors"}),
    "gateway": frozenset({"server", "pb", "errors", "api"}),
    "client": frozenset({"pb", "errors"}),
    # etcdctl, etcdutl and the benchmark tool; etcdutl works on a data dir offline, so it may
    # open the WAL, snapshots and the backend directly.
    "cli": frozenset(
        {"client", "pb", "errors", "ids", "urls", "wal", "fs", "backend", "mvcc", "codec", "raft"}
    ),
    # petcd-benchmark: a client tool beside etcdctl, sharing its helpers (see FILE_LAYERS for its one
    # in-process workload).
    "benchmark": frozenset({"client", "pb", "errors", "cli", "eventloop"}),
    # The robustness harness drives real member processes over gRPC (pb) and judges their
    # histories with the simulator's checkers (sim.linearizability, sim.server_checker), so both
    # judge by the same rules; it never reaches a server's internals.
    "robustness": frozenset({"pb", "sim", "errors"}),
}

# petcd.version (the etcd version petcd reports) is a leaf every layer may use.
for _layer_name in list(ALLOWED):
    ALLOWED[_layer_name] |= {"version"}

# The composition root and the `etcd` command may import anything.
COMPOSITION_ROOTS = frozenset({"app", "etcdmain", "__main__"})
for _root in COMPOSITION_ROOTS:
    ALLOWED[_root] = frozenset(ALLOWED) | COMPOSITION_ROOTS

# layers that reach the server only through petcd.server.facade
FACADE_ONLY = frozenset({"api", "gateway"})

# layers that may import petcd.pb only for these message packages (no services, no grpc)
_PB_MESSAGES = frozenset({"etcdserverpb", "membershippb", "mvccpb", "leasepb", "authpb", "raftpb"})
PB_MODULES: dict[str, frozenset[str]] = {
    "server": _PB_MESSAGES,
    "sim": _PB_MESSAGES,
    "mvcc": frozenset({"mvccpb"}),
    "lease": frozenset({"leasepb"}),
    "auth": frozenset({"authpb"}),
}

# layer -> external top-level modules it must not import
FORBIDDEN: dict[str, frozenset[str]] = {
    "ids": IO_MODULES,
    "errors": IO_MODULES,
    "version": IO_MODULES,
    "urls": IO_MODULES,
    "raft": IO_MODULES,
    "codec": IO_MODULES - {"google"},
    "backend": NETWORK_MODULES,
    "mvcc": NETWORK_MODULES | {"lmdb"},
    "lease": NETWORK_MODULES | {"lmdb"},
    "auth": NETWORK_MODULES | {"lmdb"},
    "server": IO_MODULES - {"google"},
    "sim": IO_MODULES - {"google", "pathlib", "io", "tempfile", "shutil"},
    "client": frozenset({"lmdb"}),
}

# Files allowed an import their layer forbids, with the reason.
EXCEPTIONS: dict[str, frozenset[str]] = {
    "backend/lmdb.py": frozenset({"lmdb"}),  # the one place that touches LMDB
    # The sim's CLI and sweep driver run seeds in worker processes and report wall time; the
    # simulation itself (everything else under sim/) stays free of clocks, threads and I/O.
    "sim/__main__.py": frozenset({"os", "time", "concurrent", "multiprocessing"}),
    "sim/sweep.py": frozenset({"os", "time", "concurrent", "multiprocessing"}),
}


# Files allowed petcd layers beyond their own layer's, with the reason.
FILE_LAYERS: dict[str, frozenset[str]] = {
    # A front-end process answers ranges from its read-only backend handle with the MVCC store's
    # read path (DESIGN.md, "Scaling past one core"), as the core's Node does.
    "runtime/frontend_facade.py": frozenset({"mvcc"}),
    # ... and serves its watch streams with the MVCC watchable store over that handle's history.
    "runtime/frontend_watch.py": frozenset({"mvcc"}),
    # `petcd-benchmark mvcc put` measures the MVCC store in-process, without network (etcd's too).
    "benchmark/mvcc_put.py": frozenset({"mvcc", "backend"}),
}


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.name != "__init__.py" else "__init__"


def _imports(path: Path, rel: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(("petcd", *rel.parent.parts))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if mod.startswith("petcd"):
                # name what is imported, so a submodule (`from petcd.pb.x import y_pb2_grpc`) is seen
                for alias in node.names:
                    yield node.lineno, f"{mod}.{alias.name}"
            else:
                yield node.lineno, mod


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if _layer(p) != "pb")


def test_every_layer_is_known() -> None:
    unknown = sorted({_layer(p) for p in _modules()} - ALLOWED.keys())
    assert not unknown, f"layers missing from the DESIGN.md table in tests/test_layers.py: {unknown}"


def _violations(path: Path, rel: Path) -> list[str]:
    layer = _layer(SRC / rel)
    allowed = ALLOWED.get(layer, frozenset()) | {layer} | FILE_LAYERS.get(rel.as_posix(), frozenset())
    forbidden = FORBIDDEN.get(layer, frozenset()) - EXCEPTIONS.get(rel.as_posix(), frozenset())
    bad = []
    for lineno, mod in _imports(path, rel):
        parts = mod.split(".")
        if parts[0] == "petcd":
            sub = parts[1] if len(parts) > 1 else ""
            third = parts[2] if len(parts) > 2 else ""
            if (
                (sub and sub not in allowed)
                or (sub == "pb" and layer in PB_MODULES and third not in PB_MODULES[layer])
                or (sub == "pb" and layer in PB_MODULES and any(p.endswith("_grpc") for p in parts))
                or (sub == "server" and layer in FACADE_ONLY and third != "facade")
            ):
                bad.append(f"line {lineno}: {layer} may not import {mod}")
        elif parts[0] in forbidden:
            bad.append(f"line {lineno}: {layer} may not import {mod}")
    return bad


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layers(path: Path) -> None:
    bad = _violations(path, path.relative_to(SRC))
    assert not bad, "\n".join(bad)


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    """The rule table is only worth something if a breach is seen."""
    probe = tmp_path / "probe.py"
    probe.write_text("import time\nfrom petcd.server import node\nfrom ...mvcc import store\n")
    bad = _violations(probe, Path("raft/sub/probe.py"))
    assert bad == [
        "line 1: raft may not import time",
        "line 2: raft may not import petcd.server.node",
        "line 3: raft may not import petcd.mvcc.store",
    ]
    assert _violations(probe, Path("sim/probe.py")) == ["line 1: sim may not import time"]
    probe.write_text("from petcd.pb.mvccpb import kv_pb2\nfrom petcd.pb.etcdserverpb import rpc_pb2\n")
    assert _violations(probe, Path("mvcc/probe.py")) == [
        "line 2: mvcc may not import petcd.pb.etcdserverpb.rpc_pb2"
    ]
    probe.write_text(
        "from petcd.pb.etcdserverpb import rpc_pb2\n"
        "from petcd.pb.etcdserverpb import rpc_pb2_grpc\n"
        "from petcd.pb.etcdserverpb.rpc_pb2_grpc import KVStub\n"
    )
    assert _violations(probe, Path("server/probe.py")) == [
        "line 2: server may not import petcd.pb.etcdserverpb.rpc_pb2_grpc",
        "line 3: server may not import petcd.pb.etcdserverpb.rpc_pb2_grpc.KVStub",
    ]
    probe.write_text("from petcd.server.facade import EtcdFacade\nfrom petcd.server.node import Node\n")
    assert _violations(probe, Path("api/probe.py")) == ["line 2: api may not import petcd.server.node.Node"]
    assert _violations(probe, Path("app.py")) == []
