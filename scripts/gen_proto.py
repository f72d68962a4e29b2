"""Generate petcd.pb (protobuf and gRPC Python code plus .pyi stubs) from proto/.

Every `.proto` file under `proto/` is compiled with the protoc bundled in grpcio-tools:
`*_pb2.py` and, through mypy-protobuf, `*_pb2.pyi` for every file; `*_pb2_grpc.py` and
`*_pb2_grpc.pyi` only for files that declare a service. The files under `proto/petcd/pb/` are
imported as `petcd/pb/...`, so the generated modules import each other as `petcd.pb.<pkg>`,
while the protobuf packages (`etcdserverpb`, `mvccpb`, ...) stay etcd's, which keeps gRPC
method paths such as `/etcdserverpb.KV/Range` exact.

Generation happens in a scratch directory; the result then replaces `src/petcd/pb/` whole, so
files of a deleted .proto do not linger. The output depends only on the .proto files and the
pinned tool versions, which is what tests/pb/test_generated_in_sync.py relies on.

    .venv/bin/python scripts/gen_proto.py            # regenerate src/petcd/pb
    .venv/bin/python scripts/gen_proto.py --out DIR  # write the package to DIR/petcd/pb instead
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"
PACKAGE_PATH = Path("petcd") / "pb"

_INIT_DOCSTRING = {
    PACKAGE_PATH: (
        '"""Generated protobuf and gRPC code for petcd (do not edit; see scripts/gen_proto.py).\n\n'
        "Client API packages keep etcd's protobuf package names (etcdserverpb, mvccpb, authpb,\n"
        "v3electionpb, v3lockpb; plus membershippb and leasepb for the server); petcd's own\n"
        'formats live in raftpb, walpb and snappb (protobuf packages petcd.*)."""\n'
    ),
}


def proto_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*.proto"))


def _declares_service(path: Path) -> bool:
    return any(line.startswith("service ") for line in path.read_text().splitlines())


def _plugin(name: str) -> str:
    # The plugins are console scripts installed beside the interpreter running this script.
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the dev extras (mypy-protobuf)")
    return found


def _protoc(args: list[str]) -> None:
    from grpc_tools import protoc  # type: ignore[import-untyped]

    include = str(resources.files("grpc_tools") / "_proto")
    code = protoc.main(["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}", *args])
    if code != 0:
        raise SystemExit(f"protoc failed ({code}): {' '.join(args)}")


def generate(out_root: Path) -> Path:
    """Write the generated package to out_root/petcd/pb and return that directory."""
    files = proto_files(PROTO_ROOT)
    if not files:
        raise SystemExit(f"no .proto files under {PROTO_ROOT}")
    names = [str(f) for f in files]
    with_services = [str(f) for f in files if _declares_service(PROTO_ROOT / f)]
    with tempfile.TemporaryDirectory() as scratch:
        _protoc(
            [
                f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
                f"--python_out={scratch}",
                f"--mypy_out={scratch}",
                *names,
            ]
        )
        if with_services:
            _protoc(
                [
                    f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
                    f"--grpc_python_out={scratch}",
                    f"--mypy_grpc_out={scratch}",
                    *with_services,
                ]
            )
        generated = Path(scratch) / PACKAGE_PATH
        for directory in sorted({generated, *(p.parent for p in generated.rglob("*.py"))}):
            init = directory / "__init__.py"
            if not init.exists():
                rel = directory.relative_to(scratch)
                init.write_text(_INIT_DOCSTRING.get(rel, ""))
        target = out_root / PACKAGE_PATH
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(generated, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=REPO / "src", help="root to write petcd/pb under")
    args = parser.parse_args(argv)
    target = generate(args.out)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
