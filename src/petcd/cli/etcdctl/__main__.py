"""``python -m petcd.cli.etcdctl``."""

from petcd.cli.etcdctl import main

main()
