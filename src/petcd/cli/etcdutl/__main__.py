"""``python -m petcd.cli.etcdutl``."""

from petcd.cli.etcdutl import main

main()
