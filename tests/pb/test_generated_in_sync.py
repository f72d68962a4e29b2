"""The committed src/petcd/pb is exactly what scripts/gen_proto.py makes from proto/."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "src" / "petcd" / "pb"


def _files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_matches_proto(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = _files(tmp_path / "petcd" / "pb")
    committed = _files(COMMITTED)
    assert "etcdserverpb/rpc_pb2.py" in fresh
    hint = "run: .venv/bin/python scripts/gen_proto.py"
    assert sorted(fresh) == sorted(committed), hint
    differing = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], shallow=False)]
    assert differing == [], hint
