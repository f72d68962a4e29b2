"""watch: print events as they come, interactively, or run a command for each event.

One gRPC Watch stream carries every watch of the process (in interactive mode each ``watch ...``
line adds a create request, ``progress`` asks for a progress notification). Argument handling
follows etcdctl's parseWatchArgs: words after ``--`` are a command run once per event with
``ETCD_WATCH_REVISION``, ``ETCD_WATCH_EVENT_TYPE``, ``ETCD_WATCH_KEY`` and ``ETCD_WATCH_VALUE`` (the
last three Go-quoted, as etcdctl sets them); ``ETCDCTL_WATCH_KEY``/``ETCDCTL_WATCH_RANGE_END`` can
give the key. Like the Go tool, an interrupt ends the process at once.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

from petcd.cli.etcdctl.context import Context
from petcd.cli.etcdctl.errors import (
    EXIT_BAD_ARGS,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    CtlError,
)
from petcd.cli.etcdctl.flags import FlagSet, Parsed, UsageError
from petcd.cli.etcdctl.gofmt import go_quote
from petcd.cli.etcdctl.kv import arg_bytes, argify, b64, prefix_end
from petcd.client import ClientError

JsonDict = dict[str, Any]

ERR_ARGS = "bad number of arguments"
ERR_CONFLICT_ENV = "bad number of arguments (found conflicting environment key)"
ERR_SEPARATOR = "bad number of arguments (found separator --, but no commands)"
ERR_INTERACTIVE = "args[0] must be 'watch' for interactive calls"


def watch_options(flags: dict[str, Any], args: list[str]) -> JsonDict:
    """A WatchCreateRequest body from etcdctl's watch arguments (key [range_end])."""
    if not args:
        raise ValueError(ERR_ARGS)
    key = arg_bytes(args[0])
    req: JsonDict = {"key": b64(key)}
    if len(args) == 2:
        if flags.get("prefix"):
            raise ValueError("`range_end` and `--prefix` are mutually exclusive")
        req["range_end"] = b64(arg_bytes(args[1]))
    if flags.get("prefix"):
        if not key:
            req["key"], req["range_end"] = b64(b"\x00"), b64(b"\x00")
        else:
            req["range_end"] = b64(prefix_end(key))
    if int(flags.get("rev", 0)):
        req["start_revision"] = str(int(flags["rev"]))
    if flags.get("prev-kv"):
        req["prev_kv"] = True
    if flags.get("progress-notify"):
        req["progress_notify"] = True
    return req


def split_exec(args: list[str], dash_at: int, env_key: str, env_range: str) -> tuple[list[str], list[str]]:
    """(watch args, command args) for the non-interactive command line."""
    if dash_at >= 0:
        watch_args, exec_args = args[:dash_at], args[dash_at:]
        if not exec_args:
            raise ValueError(ERR_SEPARATOR)
    else:
        watch_args, exec_args = list(args), []
    if env_key:
        if watch_args:
            raise ValueError(ERR_CONFLICT_ENV)
        watch_args = [env_key] + ([env_range] if env_range else [])
    if not watch_args:
        raise ValueError(ERR_ARGS)
    return watch_args, exec_args


class Watcher:
    """The shared Watch stream and the printing of its responses."""

    def __init__(self, ctx: Context) -> None:
        from petcd.pb.etcdserverpb import rpc_pb2

        self.ctx = ctx
        self.rpc_pb2 = rpc_pb2
        self.requests: queue.Queue[Any] = queue.Queue()
        self.exec_args: dict[int, list[str]] = {}
        self._pending_exec: list[list[str]] = []
        self.lock = threading.Lock()

    def _iter(self) -> Iterator[Any]:
        while True:
            item = self.requests.get()
            if item is None:
                return
            yield item

    def create(self, body: JsonDict, exec_args: list[str]) -> None:
        from google.protobuf import json_format

        msg = json_format.ParseDict({"create_request": body}, self.rpc_pb2.WatchRequest())
        with self.lock:
            self._pending_exec.append(exec_args)
        self.requests.put(msg)

    def progress(self) -> None:
        self.requests.put(self.rpc_pb2.WatchRequest(progress_request=self.rpc_pb2.WatchProgressRequest()))

    def run(self) -> None:
        """Print responses until the stream ends (then the server has cancelled it)."""
        from petcd.client.grpc_client import to_dict

        ctx = self.ctx
        printer = ctx.printer
        for msg in ctx.client.grpc.stream("Watch", self._iter()):
            resp = to_dict(msg)
            watch_id = int(resp.get("watch_id", 0))
            if resp.get("created"):
                with self.lock:
                    exec_args = self._pending_exec.pop(0) if self._pending_exec else []
                self.exec_args[watch_id] = exec_args
                if not resp.get("canceled"):
                    continue
            if resp.get("canceled"):
                ctx.err.write(f"watch was canceled ({_cancel_error(resp)})\n".encode())
                ctx.err.flush()
            header = resp.get("header", {})
            events = resp.get("events", [])
            is_progress = (
                not events
                and not resp.get("canceled")
                and not resp.get("created")
                and not resp.get("compact_revision")
            )
            if is_progress:
                printer.line(f"progress notify: {int(header.get('revision', 0))}")
            printer.watch(resp)
            ctx.flush()
            exec_args = self.exec_args.get(watch_id, [])
            if exec_args:
                for ev in events:
                    self._exec(exec_args, int(header.get("revision", 0)), ev)
            if resp.get("canceled"):
                self.exec_args.pop(watch_id, None)
                if not self.exec_args and not self.ctx.flag("interactive"):
                    return

    def _exec(self, exec_args: list[str], revision: int, ev: JsonDict) -> None:
        import base64

        kv = ev.get("kv", {})
        env = dict(os.environ)
        env["ETCD_WATCH_REVISION"] = str(revision)
        env["ETCD_WATCH_EVENT_TYPE"] = go_quote(str(ev.get("type", "PUT")))
        env["ETCD_WATCH_KEY"] = go_quote(base64.b64decode(kv.get("key", "")))
        env["ETCD_WATCH_VALUE"] = go_quote(base64.b64decode(kv.get("value", "")))
        self.ctx.flush()
        try:
            subprocess.run(exec_args, env=env, check=True)
        except (OSError, subprocess.CalledProcessError) as err:
            quoted = "[" + " ".join(go_quote(a) for a in exec_args) + "]"
            detail = (
                f"exit status {err.returncode}"
                if isinstance(err, subprocess.CalledProcessError)
                else str(err)
            )
            self.ctx.err.write(f"command {quoted} error ({detail})\n".encode())
            self.ctx.err.flush()
            os._exit(EXIT_ERROR)


def _cancel_error(resp: JsonDict) -> str:
    if int(resp.get("compact_revision", 0)):
        return "etcdserver: mvcc: required revision has been compacted"
    return str(resp.get("cancel_reason") or "etcdserver: mvcc: required revision is a future revision")


def watch_command(ctx: Context) -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    env_key = ctx.environ.get("ETCDCTL_WATCH_KEY", "")
    env_range = ctx.environ.get("ETCDCTL_WATCH_RANGE_END", "")
    if not env_key and env_range:
        raise CtlError(
            EXIT_BAD_ARGS, f"ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={go_quote(env_range)}"
        )
    _ = ctx.printer  # check the output format before connecting
    watcher = Watcher(ctx)
    if ctx.flag("interactive"):
        _ = ctx.client  # etcdctl makes its client before it reads the first line (--debug shows it)
        threading.Thread(target=_interactive, args=(ctx, watcher, env_key, env_range), daemon=True).start()
    else:
        try:
            watch_args, exec_args = split_exec(ctx.args, ctx.dash_at, env_key, env_range)
            body = watch_options(ctx.flags, watch_args)
        except ValueError as err:
            raise CtlError(EXIT_BAD_ARGS, str(err)) from None
        watcher.create(body, exec_args)
    try:
        watcher.run()
    except ClientError as err:
        raise CtlError(EXIT_ERROR, err.message) from None
    raise CtlError(EXIT_INTERRUPTED, "watch is canceled by the server")


def _interactive(ctx: Context, watcher: Watcher, env_key: str, env_range: str) -> None:
    from petcd.cli.etcdctl import COMMANDS

    stdin = sys.stdin.buffer
    while True:
        raw = stdin.readline()
        if not raw.endswith(b"\n"):
            ctx.err.write(b"Error: error reading watch request line: EOF\n")
            ctx.err.flush()
            os._exit(EXIT_INVALID_INPUT)
        line = os.fsdecode(raw[:-1])
        try:
            args = argify(line)
        except CtlError:
            args = []
        if not args:
            ctx.err.write(f"Invalid command: {line} (watch and progress supported)\n".encode())
            continue
        if args[0] == "progress":
            watcher.progress()
            continue
        if args[0] != "watch":
            ctx.err.write(f"Invalid command {line} (only support watch)\n".encode())
            continue
        if len(args) < 2 and not env_key:
            ctx.err.write(f"Invalid command {line} (command type or key is not provided)\n".encode())
            continue
        words = args[1:]
        exec_args: list[str] = []
        if "--" in words:
            at = words.index("--")
            words, exec_args = words[:at], words[at + 1 :]
            if not exec_args:
                ctx.err.write(f"Error: {ERR_SEPARATOR}\n".encode())
                ctx.err.flush()
                os._exit(EXIT_BAD_ARGS)
        fs = FlagSet()
        fs.add(COMMANDS["watch"].flags)
        parsed = Parsed()
        i = 0
        try:
            while i < len(words):
                if words[i].startswith("-") and len(words[i]) > 1:
                    i = fs.parse_one(words, i, parsed)
                else:
                    parsed.args.append(words[i])
                    i += 1
        except UsageError as err:
            ctx.err.write(f"Error: {err}\n".encode())
            ctx.err.flush()
            os._exit(EXIT_BAD_ARGS)
        watch_args = parsed.args
        if env_key:
            watch_args = [env_key] + ([env_range] if env_range else []) + watch_args
        try:
            body = watch_options(parsed.values, watch_args)
        except ValueError as err:
            ctx.err.write(f"Invalid command {line} ({err})\n".encode())
            continue
        watcher.create(body, exec_args)
