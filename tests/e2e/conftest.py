"""tests/e2e: test files may import the shared helpers of test_tutorial.py by name."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
