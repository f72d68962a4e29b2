"""``python -m petcd.benchmark`` runs ``petcd-benchmark``."""

from __future__ import annotations

import sys

from petcd.benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
