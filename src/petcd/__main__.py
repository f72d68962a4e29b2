"""`python -m petcd` runs the `etcd` command."""

from __future__ import annotations

import sys

from petcd.etcdmain import main

if __name__ == "__main__":
    sys.exit(main())
