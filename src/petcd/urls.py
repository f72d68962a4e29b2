"""URL lists as etcd parses them (its client/pkg/types: NewURLs, NewURLsMap, URLsMap.String).

A leaf both the ``etcd`` command (petcd.etcdmain) and ``etcdutl snapshot restore`` (petcd.cli) use:
a member's ID is the SHA-1 of its sorted peer URLs as strings, so a restored data dir only gets the
IDs ``etcd --initial-cluster ...`` derives for the same flags if both read the flags the same way.

* a URL list is comma separated; each URL is trimmed and must be http, https, unix or unixs, with a
  ``host:port`` address and no path (a lone trailing ``/`` is dropped); the list comes back sorted;
* a URL map is ``name=url,name=url``: names may repeat (a member with several URLs); a part without
  ``=`` is a name with an empty URL, which the scheme check then refuses, as etcd does.

Callers turn ``URLError`` into their own error type and add their own rules (an empty list, the
schemes petcd does not serve yet).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]/]+):[0-9]+")


class URLError(ValueError):
    """A URL etcd would refuse, worded as etcd words it."""


def parse_urls(text: str) -> tuple[str, ...]:
    """etcd's types.NewURLs of a comma-separated list (empty parts skipped), sorted."""
    return _check_urls([raw for raw in text.split(",") if raw.strip()])


def _check_urls(raws: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for raw in raws:
        s = raw.strip()
        try:
            u = urlsplit(s)
        except ValueError as e:
            raise URLError(f'parse "{s}": {e}') from None
        if u.scheme not in ("http", "https", "unix", "unixs"):
            raise URLError(f"URL scheme must be http, https, unix, or unixs: {s}")
        if not _HOST_PORT.fullmatch(u.netloc):
            raise URLError(f'URL address does not have the form "host:port": {s}')
        if u.path not in ("", "/"):
            raise URLError(f"URL must not contain a path: {s}")
        out.append(s.rstrip("/"))
    return tuple(sorted(out))


def parse_urls_map(text: str) -> dict[str, tuple[str, ...]]:
    """etcd's types.NewURLsMap: ``name=url,...`` -> name -> its sorted URLs."""
    raw: dict[str, list[str]] = {}
    for part in text.split(","):
        part = part.strip()  # petcd also forgives spaces around a pair (etcd keeps them in the name)
        if not part:
            continue
        name, _, url = part.partition("=")
        raw.setdefault(name, []).append(url)
    return {name: _check_urls(urls) for name, urls in raw.items()}


def urls_map_string(m: dict[str, tuple[str, ...]]) -> str:
    """etcd's URLsMap.String(): every name=url pair, sorted."""
    return ",".join(sorted(f"{name}={u}" for name, urls in m.items() for u in urls))
