"""The composition root (placeholder until the runtime lands)."""

from __future__ import annotations

from collections.abc import Sequence

from petcd.etcdmain.config import ServerConfig
from petcd.etcdmain.logger import ZapLogger


def run(cfg: ServerConfig, logger: ZapLogger, args: Sequence[str]) -> int:
    logger.fatal("etcdmain/etcd.go:204", "petcd server not wired yet", name=cfg.name)
    return 1
