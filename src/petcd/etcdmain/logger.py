"""etcd's structured log, as JSON lines (zap's production encoder, as etcd configures it).

Every line is one JSON object: `level`, `ts` (UTC, microseconds, etcd 3.6's layout), `caller`
(`package/file.go:line` for etcd's own messages, so tools grepping etcd logs find the same caller
names; `file.py:line` for petcd's other modules), `msg`, then the fields in the order given.
Tools and people grep for etcd's messages ("ready to serve client requests", "became leader at
term"...), so the lifecycle messages keep etcd's wording.

`ZapLogger` is also installed as a `logging.Handler` on the `petcd` logger tree, so the library
modules that log through the standard `logging` module (raft, server, wal...) come out in the
same format. Levels: debug, info, warn, error, panic, fatal (zap's names; `--log-level`).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import IO, Any

LEVELS = ("debug", "info", "warn", "error", "dpanic", "panic", "fatal")
_LEVEL_NUM = {name: i for i, name in enumerate(LEVELS)}
_FROM_LOGGING = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}
_TO_LOGGING = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "dpanic": logging.CRITICAL,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def timestamp(now: _dt.datetime | None = None) -> str:
    """etcd 3.6's `ts` layout: 2006-01-02T15:04:05.999999Z (UTC)."""
    t = now or _dt.datetime.now(_dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _jsonable(value: object) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, BaseException):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class ZapLogger:
    """Writes etcd-style JSON log lines to the `--log-outputs` streams; thread-safe."""

    def __init__(self, level: str = "info", outputs: Sequence[IO[str]] | None = None) -> None:
        if level not in _LEVEL_NUM:
            raise ValueError(f"unknown level {level!r}")
        self.level = level
        self._min = _LEVEL_NUM[level]
        self._outputs: list[IO[str]] = list(outputs) if outputs is not None else [sys.stderr]
        self._lock = threading.Lock()

    def enabled(self, level: str) -> bool:
        return _LEVEL_NUM[level] >= self._min

    def log(self, level: str, caller: str, msg: str, **fields: object) -> None:
        if not self.enabled(level):
            return
        record: dict[str, Any] = {"level": level, "ts": timestamp(), "caller": caller, "msg": msg}
        for key, value in fields.items():
            record[key.replace("_", "-")] = _jsonable(value)
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            for out in self._outputs:
                try:
                    out.write(line)
                    out.flush()
                except (OSError, ValueError):
                    pass  # a closed stream must not take the server down

    def debug(self, caller: str, msg: str, **fields: object) -> None:
        self.log("debug", caller, msg, **fields)

    def info(self, caller: str, msg: str, **fields: object) -> None:
        self.log("info", caller, msg, **fields)

    def warn(self, caller: str, msg: str, **fields: object) -> None:
        self.log("warn", caller, msg, **fields)

    def error(self, caller: str, msg: str, **fields: object) -> None:
        self.log("error", caller, msg, **fields)

    def fatal(self, caller: str, msg: str, **fields: object) -> None:
        self.log("fatal", caller, msg, **fields)

    def close(self) -> None:
        with self._lock:
            for out in self._outputs:
                if out not in (sys.stderr, sys.stdout):
                    out.close()
            self._outputs = []

    def install(self, logger_name: str = "petcd") -> logging.Handler:
        """Route the stdlib `logging` records of `logger_name` through this logger."""
        handler = _Handler(self)
        lg = logging.getLogger(logger_name)
        lg.handlers = [handler]
        lg.setLevel(_TO_LOGGING[self.level])
        lg.propagate = False
        return handler


class _Handler(logging.Handler):
    def __init__(self, zap: ZapLogger) -> None:
        super().__init__()
        self._zap = zap

    def emit(self, record: logging.LogRecord) -> None:
        level = _FROM_LOGGING.get(record.levelno, "info")
        fields = getattr(record, "fields", None)
        extra: dict[str, object] = dict(fields) if isinstance(fields, dict) else {}
        if record.exc_info and record.exc_info[1] is not None:
            extra["error"] = record.exc_info[1]
            # zap puts a stack in "stacktrace" at error level and above; ours is the exception's own,
            # so that a crash found under load can be located from the log alone.
            extra["stacktrace"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        parent = os.path.basename(os.path.dirname(record.pathname))
        caller = f"{parent}/{record.filename}:{record.lineno}"
        self._zap.log(level, caller, record.getMessage(), **extra)


def open_outputs(outputs: Sequence[str]) -> list[IO[str]]:
    """`--log-outputs`: default/stderr, stdout, or file paths (appended)."""
    streams: list[IO[str]] = []
    for name in outputs:
        if name in ("default", "stderr"):
            streams.append(sys.stderr)
        elif name == "stdout":
            streams.append(sys.stdout)
        else:
            streams.append(open(name, "a", encoding="utf-8"))  # noqa: SIM115 - closed by ZapLogger.close
    return streams
