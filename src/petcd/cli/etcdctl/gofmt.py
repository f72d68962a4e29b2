"""Go's text formats, reproduced byte for byte, because etcdctl's output is made with them.

* ``go_quote``: ``strconv.Quote`` / ``%q`` of a byte string (UTF-8 kept where printable,
  ``\\xNN`` for invalid bytes, ``\\uNNNN`` for unprintable runes).
* ``go_duration``: ``time.Duration.String`` (``2.09123ms``, ``1m30s``); ``parse_go_duration``
  reads the flags' ``2s``/``500ms``/``1m30s``.
* ``humanize_bytes``: ``go-humanize``'s ``Bytes`` (SI units: ``25 kB``, ``2.1 GB``).
* ``go_json``: ``encoding/json`` string escaping (HTML-safe ``\\u003c``, ``\\u0026`` ...).
* ``render_table``: olekukonko/tablewriter v0.0.5 as etcdctl configures it (upper-cased centred
  headers, right-aligned cells, ``+---+`` borders, cells over 30 columns wrapped at spaces).
"""

from __future__ import annotations

import json

_ESCAPES = {
    7: "\\a",
    8: "\\b",
    12: "\\f",
    10: "\\n",
    13: "\\r",
    9: "\\t",
    11: "\\v",
    0x5C: "\\\\",
    0x22: '\\"',
}


def _printable(ch: str) -> bool:
    # Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
    if ch == " ":
        return True
    import unicodedata  # only for non-ASCII text

    return unicodedata.category(ch)[0] in "LMNPS"


def go_quote(data: bytes | str) -> str:
    """``strconv.Quote(string(data))``."""
    if isinstance(data, str):
        data = data.encode()
    out = ['"']
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            if b in _ESCAPES:
                out.append(_ESCAPES[b])
            elif 0x20 <= b < 0x7F:
                out.append(chr(b))
            else:
                out.append(f"\\x{b:02x}")
            i += 1
            continue
        size = 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 0
        ch = None
        if size and i + size <= n:
            try:
                ch = data[i : i + size].decode("utf-8")
            except UnicodeDecodeError:
                ch = None
        if ch is None:
            out.append(f"\\x{b:02x}")
            i += 1
            continue
        cp = ord(ch)
        if _printable(ch):
            out.append(ch)
        elif cp < 0x10000:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(f"\\U{cp:08x}")
        i += size
    out.append('"')
    return "".join(out)


_UNITS_NS = (("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000))
_SMALL = (("ms", 1_000_000), ("µs", 1_000), ("ns", 1))


def _frac(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{rest:0{digits}d}".rstrip("0")


def go_duration(ns: int) -> str:
    """``time.Duration(ns).String()``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for name, unit in _SMALL:
            if ns >= unit:
                return f"{sign}{_frac(ns, unit)}{name}"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = _frac(rest, 1_000_000_000)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


_PARSE_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """A Go duration (``2s``, ``500ms``, ``1m30s``) in seconds; ValueError if malformed."""
    s = text.strip()
    if s in ("0", ""):
        if s == "":
            raise ValueError(f"time: invalid duration {go_quote(text)}")
        return 0.0
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    total = 0.0
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == "."):
            j += 1
        if j == i:
            raise ValueError(f"time: invalid duration {go_quote(text)}")
        num = float(s[i:j])
        k = j
        while k < len(s) and not (s[k].isdigit() or s[k] == "."):
            k += 1
        unit = s[j:k]
        if unit not in _PARSE_UNITS:
            if not unit:
                raise ValueError(f"time: missing unit in duration {go_quote(text)}")
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(text)}")
        total += num * _PARSE_UNITS[unit]
        i = k
    return sign * total


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def parse_go_int(text: str, base: int = 10, signed: bool = True) -> int:
    """``strconv.ParseInt(text, base, 64)`` / ``ParseUint``: no ``0x`` prefix, no spaces or ``_``.

    Raises ValueError with Go's message (``strconv.ParseInt: parsing "x": invalid syntax``).
    """
    func = "ParseInt" if signed else "ParseUint"
    body = text
    negative = False
    if signed and body[:1] in ("+", "-"):
        negative = body[0] == "-"
        body = body[1:]
    allowed = _DIGITS[:base]
    if not body or any(c.lower() not in allowed for c in body):
        raise ValueError(f"strconv.{func}: parsing {go_quote(text)}: invalid syntax")
    value = int(body, base)
    value = -value if negative else value
    low, high = (-(2**63), 2**63 - 1) if signed else (0, 2**64 - 1)
    if not low <= value <= high:
        raise ValueError(f"strconv.{func}: parsing {go_quote(text)}: value out of range")
    return value


_SI = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def humanize_bytes(size: int) -> str:
    """go-humanize ``Bytes`` (base 1000)."""
    if size < 10:
        return f"{size} B"
    exp = 0
    value = float(size)
    while value >= 1000 and exp < len(_SI) - 1:
        value /= 1000
        exp += 1
    # humanize computes floor(log_1000(s)); guard the float edge where s is an exact power
    val = int(size / (1000**exp) * 10 + 0.5) / 10
    return f"{val:.1f} {_SI[exp]}" if val < 10 else f"{val:.0f} {_SI[exp]}"


def go_json(value: object) -> str:
    """``encoding/json.Marshal`` of an already Go-shaped value (dicts keep their order)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if any(c in text for c in "<>&\u2028\u2029\b\f"):
        text = (
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
            .replace("\\b", "\\u0008")
            .replace("\\f", "\\u000c")
        )
    return text


_MAX_CELL = 30  # tablewriter's MAX_ROW_WIDTH


def _title(name: str) -> str:
    return name.replace("_", " ").strip().upper() or " "


def _wrap(cell: str, limit: int) -> list[str]:
    words = cell.split(" ")
    lines: list[str] = []
    line = ""
    for w in words:
        if not line:
            line = w
        elif len(line) + 1 + len(w) <= limit:
            line += " " + w
        else:
            lines.append(line)
            line = w
    lines.append(line)
    return lines


def render_table(header: list[str], rows: list[list[str]]) -> str:
    """tablewriter.NewWriter + SetHeader + Append + SetAlignment(ALIGN_RIGHT) + Render."""
    heads = [_title(h) for h in header]
    ncols = len(heads)
    widths = [len(h) for h in heads]
    cells: list[list[list[str]]] = []
    for row in rows:
        wrapped = []
        for i in range(ncols):
            text = row[i] if i < len(row) else ""
            lines = text.split("\n")
            width = max(len(x) for x in lines)
            if width > _MAX_CELL:
                limit = _MAX_CELL
                lines = [piece for para in lines for piece in _wrap(para, limit)]
                width = max(len(x) for x in lines)
            widths[i] = max(widths[i], width)
            wrapped.append(lines)
        cells.append(wrapped)
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+\n"
    out = [sep]
    head_cells = []
    for h, w in zip(heads, widths, strict=True):
        gap = w - len(h)
        left = gap // 2
        head_cells.append(" " * left + h + " " * (gap - left))
    out.append("| " + " | ".join(head_cells) + " |\n")
    out.append(sep)
    for row_cells in cells:
        height = max(len(c) for c in row_cells)
        for li in range(height):
            parts = []
            for c, w in zip(row_cells, widths, strict=True):
                text = c[li] if li < len(c) else ""
                parts.append(text.rjust(w))
            out.append("| " + " | ".join(parts) + " |\n")
    out.append(sep)
    return "".join(out)
