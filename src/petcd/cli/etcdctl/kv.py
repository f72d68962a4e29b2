"""get, put, del, txn and compaction: etcdctl's key-value commands.

Requests are built as proto3-JSON dicts exactly as etcd's clientv3 builds them from etcdctl's
options (for example ``--prefix`` on an empty key means "from \\x00", and sorting by key in
ascending order is sent as no sort at all), so the server sees the same requests from both tools.
"""

from __future__ import annotations

import base64
import os
import re
import sys

from petcd.cli.etcdctl.context import Context
from petcd.cli.etcdctl.errors import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT, CtlError
from petcd.cli.etcdctl.flags import FlagSet, Parsed, UsageError
from petcd.cli.etcdctl.gofmt import go_quote, parse_go_int

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up time
if TYPE_CHECKING:
    from typing import Any

    JsonDict = dict[str, Any]

SORT_ORDERS = {"": 0, "ASCEND": 1, "DESCEND": 2}
SORT_TARGETS = {"": 0, "KEY": 0, "VERSION": 1, "CREATE": 2, "MODIFY": 3, "VALUE": 4}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def arg_bytes(arg: str) -> bytes:
    return os.fsencode(arg)


def prefix_end(key: bytes) -> bytes:
    """The first key after every key that starts with ``key`` (``\\x00``: no such key, read to the end)."""
    end = bytearray(key)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"


def _check_prefix_from_key(flags: dict[str, Any], args: list[str]) -> None:
    if flags.get("prefix") and flags.get("from-key"):
        raise CtlError(
            EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one"
        )
    if len(args) > 1 and (flags.get("prefix") or flags.get("from-key")):
        raise CtlError(
            EXIT_BAD_ARGS,
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
        )


def _key_range(flags: dict[str, Any], args: list[str]) -> tuple[bytes, bytes]:
    key = arg_bytes(args[0])
    end = arg_bytes(args[1]) if len(args) > 1 else b""
    if flags.get("prefix"):
        if not key:
            key, end = b"\x00", b"\x00"
        else:
            end = prefix_end(key)
    if flags.get("from-key"):
        if not key:
            key = b"\x00"
        end = b"\x00"
    return key, end


def range_request(flags: dict[str, Any], args: list[str]) -> JsonDict:
    if not args:
        raise CtlError(
            EXIT_BAD_ARGS, "get command needs one argument as key and an optional argument as range_end"
        )
    if flags.get("prefix") and flags.get("from-key"):
        raise CtlError(
            EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one"
        )
    if flags.get("keys-only") and flags.get("count-only"):
        raise CtlError(
            EXIT_BAD_ARGS, "`--keys-only` and `--count-only` cannot be set at the same time, choose one"
        )
    _check_prefix_from_key(flags, args)
    req: JsonDict = {}
    consistency = flags.get("consistency", "l")
    if consistency == "s":
        req["serializable"] = True
    elif consistency != "l":
        raise CtlError(EXIT_BAD_FEATURE, f"unknown consistency flag {go_quote(consistency)}")
    order_name = str(flags.get("order", "")).upper()
    if order_name not in SORT_ORDERS:
        raise CtlError(EXIT_BAD_FEATURE, f"bad sort order {flags.get('order')}")
    target_name = str(flags.get("sort-by", "")).upper()
    if target_name not in SORT_TARGETS:
        raise CtlError(EXIT_BAD_FEATURE, f"bad sort target {flags.get('sort-by')}")
    order, target = SORT_ORDERS[order_name], SORT_TARGETS[target_name]
    if target == 0 and order == 1:
        order = 0  # clientv3: the server returns keys in ascending order anyway
    key, end = _key_range(flags, args)
    req["key"] = b64(key)
    if end:
        req["range_end"] = b64(end)
    for flag, field in (
        ("limit", "limit"),
        ("rev", "revision"),
        ("min-mod-rev", "min_mod_revision"),
        ("max-mod-rev", "max_mod_revision"),
        ("min-create-rev", "min_create_revision"),
        ("max-create-rev", "max_create_revision"),
    ):
        value = int(flags.get(flag, 0))
        if value > 0 or (flag == "limit" and value):
            req[field] = str(value)
    for kind, name in (("create", "Create"), ("mod", "Mod")):
        low, high = int(flags.get(f"min-{kind}-rev", 0)), int(flags.get(f"max-{kind}-rev", 0))
        if high > 0 and low > high:
            raise CtlError(EXIT_BAD_FEATURE, f"getMin{name}Rev(={low}) > getMax{name}Rev(={high})")
    if order:
        req["sort_order"] = order
    if target:
        req["sort_target"] = target
    if flags.get("keys-only"):
        req["keys_only"] = True
    if flags.get("count-only"):
        req["count_only"] = True
    return req


def put_request(flags: dict[str, Any], args: list[str], stdin: Any = None) -> JsonDict:
    usage = "put command needs 1 argument and input from stdin or 2 arguments"
    if not args:
        raise CtlError(EXIT_BAD_ARGS, usage)
    key = arg_bytes(args[0])
    ignore_value = bool(flags.get("ignore-value"))
    if ignore_value and len(args) > 1:
        raise CtlError(EXIT_BAD_ARGS, "put command needs only 1 argument when 'ignore-value' is set")
    value = b""
    if not ignore_value:
        if len(args) > 1:
            value = arg_bytes(args[1])
        else:
            value = (stdin or sys.stdin.buffer).read()
            if not value:
                raise CtlError(EXIT_BAD_ARGS, usage)
    lease_text = str(flags.get("lease", "0"))
    try:
        lease = parse_go_int(lease_text, 16)
    except ValueError as err:
        raise CtlError(EXIT_BAD_ARGS, f"bad lease ID ({err}), expecting ID in Hex") from None
    req: JsonDict = {"key": b64(key)}
    if value:
        req["value"] = b64(value)
    if lease:
        req["lease"] = str(lease)
    if flags.get("prev-kv"):
        req["prev_kv"] = True
    if ignore_value:
        req["ignore_value"] = True
    if flags.get("ignore-lease"):
        req["ignore_lease"] = True
    return req


def delete_request(flags: dict[str, Any], args: list[str]) -> JsonDict:
    if not args or len(args) > 2:
        raise CtlError(
            EXIT_BAD_ARGS, "del command needs one argument as key and an optional argument as range_end"
        )
    _check_prefix_from_key(flags, args)
    key, end = _key_range(flags, args)
    req: JsonDict = {"key": b64(key)}
    if end:
        req["range_end"] = b64(end)
    if flags.get("prev-kv"):
        req["prev_kv"] = True
    return req


def get_command(ctx: Context) -> int:
    req = range_request(ctx.flags, ctx.args)
    printer = ctx.printer
    resp = ctx.call("Range", req)
    if ctx.flag("count-only") and printer.fmt != "fields":
        raise CtlError(EXIT_BAD_ARGS, "--count-only is only for `--write-out=fields`")
    if ctx.flag("print-value-only"):
        if printer.fmt != "simple":
            raise CtlError(EXIT_BAD_ARGS, "print-value-only is only for `--write-out=simple`")
        printer.value_only = True
    printer.get(resp)
    return 0


def put_command(ctx: Context) -> int:
    req = put_request(ctx.flags, ctx.args)
    printer = ctx.printer
    printer.put(ctx.call("Put", req))
    return 0


def del_command(ctx: Context) -> int:
    req = delete_request(ctx.flags, ctx.args)
    printer = ctx.printer
    printer.delete(ctx.call("DeleteRange", req))
    return 0


def compaction_command(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "compaction command needs 1 argument")
    text = ctx.args[0]
    try:
        rev = parse_go_int(text)
    except ValueError as err:
        raise CtlError(EXIT_ERROR, str(err)) from None
    req: JsonDict = {"revision": str(rev)}
    if ctx.flag("physical"):
        req["physical"] = True
    ctx.call("Compact", req)
    ctx.printer.line(f"compacted revision {rev}")
    return 0


# ---- txn ---------------------------------------------------------------------------------------

_ARG_RE = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^'\"\s]\S*[^'\"\s]?")
_RESULTS = {"=": 0, ">": 1, "<": 2, "!=": 3}


def go_unquote(text: str) -> str:
    """Go's ``%q`` scan of a double-quoted or back-quoted string."""
    if text.startswith("`"):
        return text[1:-1]
    body = text[1:-1]
    out = bytearray()
    i = 0
    simple = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34, "'": 39}
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif nxt in "uU":
            n = 4 if nxt == "u" else 8
            out += chr(int(body[i + 2 : i + 2 + n], 16)).encode()
            i += 2 + n
        else:
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
    return os.fsdecode(bytes(out))


def argify(line: str) -> list[str]:
    args = []
    for word in _ARG_RE.findall(line):
        if word.startswith("'"):
            word = word[1:-1]
        elif word.startswith('"'):
            try:
                word = go_unquote(word)
            except (ValueError, IndexError) as err:
                raise CtlError(EXIT_INVALID_INPUT, str(err)) from None
        args.append(word)
    return args


_QUOTED_RE = re.compile(r"\s*(\"(?:[^\"\\\\]|\\\\.)*\"|`[^`]*`)")
_TOKEN_RE = re.compile(r"\s*(\S+)")


def _scan_compare(rest: str) -> tuple[int, str, str, str]:
    """Go's ``fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val)``: (items scanned, key, op, val)."""
    key = op = val = ""
    m = _QUOTED_RE.match(rest)
    if m is None:
        return 0, key, op, val
    key = go_unquote(m.group(1))
    pos = m.end()
    if not rest.startswith(")", pos):
        return 1, key, op, val
    m = _TOKEN_RE.match(rest, pos + 1)
    if m is None:
        return 1, key, op, val
    op = m.group(1)
    m = _QUOTED_RE.match(rest, m.end())
    if m is None:
        return 2, key, op, val
    return 3, key, op, go_unquote(m.group(1))


def parse_compare(line: str) -> JsonDict:
    target, sep, rest = line.partition("(")
    if not sep:
        raise CtlError(EXIT_INVALID_INPUT, f"malformed comparison: {line}")
    n, key, op, val = _scan_compare(rest)
    if n != 3:
        got = f"{target}({go_quote(key)}) {op} {go_quote(val)}"
        raise CtlError(EXIT_INVALID_INPUT, f"malformed comparison: {line}; got {got}")
    if op not in _RESULTS:
        raise CtlError(EXIT_INVALID_INPUT, f"malformed comparison: {line} (unknown result op {op})")
    cmp: JsonDict = {"result": _RESULTS[op], "key": b64(arg_bytes(key))}
    fields = {
        "ver": (0, "version"),
        "version": (0, "version"),
        "c": (1, "create_revision"),
        "create": (1, "create_revision"),
        "m": (2, "mod_revision"),
        "mod": (2, "mod_revision"),
    }
    if target in fields:
        kind, field = fields[target]
        try:
            cmp[field] = str(parse_go_int(val))
        except ValueError:
            raise CtlError(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}") from None
        cmp["target"] = kind
    elif target in ("val", "value"):
        cmp["target"] = 3
        cmp["value"] = b64(arg_bytes(val))
    elif target == "lease":
        cmp["target"] = 4
        try:
            cmp["lease"] = str(parse_go_int(val, 16))
        except ValueError:
            raise CtlError(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}") from None
    else:
        raise CtlError(EXIT_INVALID_INPUT, f"malformed comparison: {line} (unknown target {target})")
    return cmp


def parse_request_op(line: str) -> JsonDict:
    from petcd.cli.etcdctl import COMMANDS

    args = argify(line)
    if len(args) < 2:
        raise CtlError(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}")
    name = args[0]
    if name not in ("get", "put", "del"):
        raise CtlError(EXIT_INVALID_INPUT, f"invalid txn request: {line}")
    fs = FlagSet()
    fs.add(COMMANDS[name].flags)
    parsed = Parsed()
    i = 1
    try:
        while i < len(args):
            if args[i].startswith("-") and len(args[i]) > 1:
                i = fs.parse_one(args, i, parsed)
            else:
                parsed.args.append(args[i])
                i += 1
    except UsageError:
        raise CtlError(EXIT_INVALID_INPUT, f"invalid txn request: {line}") from None
    flags = {f.name: f.default for f in COMMANDS[name].flags}
    flags.update(parsed.values)
    if name == "get":
        return {"request_range": range_request(flags, parsed.args)}
    if name == "put":
        return {"request_put": put_request(flags, parsed.args)}
    return {"request_delete_range": delete_request(flags, parsed.args)}


def _read_section(stream: Any) -> list[str]:
    lines: list[str] = []
    while True:
        raw = stream.readline()
        if not raw or not raw.endswith(b"\n"):
            raise CtlError(EXIT_INVALID_INPUT, "EOF")
        line = os.fsdecode(raw).strip()
        if not line:
            return lines
        lines.append(line)


def txn_command(ctx: Context) -> int:
    if ctx.args:
        raise CtlError(EXIT_BAD_ARGS, "txn command does not accept argument")
    interactive = bool(ctx.flag("interactive"))
    stdin = sys.stdin.buffer
    printer = ctx.printer

    def prompt(text: str) -> None:
        if interactive:
            printer.line(text)
            ctx.flush()

    prompt("compares:")
    compares = [parse_compare(x) for x in _read_section(stdin)]
    prompt("success requests (get, put, del):")
    success = [parse_request_op(x) for x in _read_section(stdin)]
    prompt("failure requests (get, put, del):")
    failure = [parse_request_op(x) for x in _read_section(stdin)]
    req: JsonDict = {}
    if compares:
        req["compare"] = compares
    if success:
        req["success"] = success
    if failure:
        req["failure"] = failure
    printer.txn(ctx.call("Txn", req))
    return 0
