"""tests/server: the shared in-memory cluster harness lives in server_harness.py (imported by name)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
