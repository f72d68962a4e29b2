"""The new cluster a restore describes: members from --initial-cluster, their IDs, and the records
the server reads them back from.

The formats here are the server's (``petcd.server.membership`` and ``petcd.server.node``), which the
``cli`` layer may not import (tests/test_layers.py); tests/cli/test_etcdutl.py reads what this module
writes with the server's own readers, so the two cannot drift apart unnoticed:

* a member as JSON: ``{"id": <int>, "peerURLs": [...], "name": "..."}`` (etcd's membership.Member);
  the backend bucket ``members`` maps the hex ID to it, ``members_removed`` holds removed IDs;
* the raft snapshot's data: ``{"members": [...], "removed": [...], "clusterVersion": "..."}``;
* a raft ConfChange entry's context: the member as JSON.

URLs are parsed by ``petcd.urls``, as the ``etcd`` command parses them, because a member's ID is the
SHA-1 of its URLs as strings: the restored IDs must be the ones ``etcd --initial-cluster ...``
derives for the same flags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from petcd import urls
from petcd.ids import cluster_id, member_id

MEMBERS_BUCKET = "members"
MEMBERS_REMOVED_BUCKET = "members_removed"
CLUSTER_BUCKET = "cluster"
CLUSTER_VERSION_KEY = b"clusterVersion"


class ClusterError(Exception):
    """The flags do not describe a cluster this member can be restored into (etcd's message)."""


@dataclass(frozen=True, slots=True)
class NewMember:
    id: int
    name: str
    peer_urls: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "peerURLs": list(self.peer_urls), "name": self.name}

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


def parse_urls(text: str) -> tuple[str, ...]:
    """Comma-separated peer URLs, checked and normalised as the ``etcd`` command does."""
    try:
        out = urls.parse_urls(text)
    except urls.URLError as e:
        raise ClusterError(str(e)) from None
    if not out:
        raise ClusterError("no valid URLs given")
    return out


def parse_initial_cluster(text: str) -> dict[str, tuple[str, ...]]:
    """``name=url,name=url`` -> name -> sorted URLs (etcd's types.NewURLsMap)."""
    try:
        return urls.parse_urls_map(text)
    except urls.URLError as e:
        raise ClusterError(str(e)) from None


@dataclass(frozen=True, slots=True)
class NewCluster:
    members: tuple[NewMember, ...]  # sorted by ID, as the server bootstraps them
    cluster_id: int
    local: NewMember

    @property
    def member_ids(self) -> list[int]:
        return [m.id for m in self.members]


def new_cluster(name: str, initial_cluster: str, token: str, advertise_peer_urls: str) -> NewCluster:
    """The cluster of the flags, checked as etcd's ServerConfig.VerifyBootstrap does."""
    urls_map = parse_initial_cluster(initial_cluster)
    if not urls_map:
        raise ClusterError("initial cluster unset and no discovery URL found")
    apurls = parse_urls(advertise_peer_urls)
    own = urls_map.get(name)
    if own is None:
        raise ClusterError(
            f"couldn't find local name {json.dumps(name)} in the initial cluster configuration"
        )
    if sorted(own) != sorted(apurls):
        missing = [u for u in own if u not in apurls]
        if missing:
            raise ClusterError(
                f"--initial-cluster has {','.join(f'{name}={u}' for u in missing)} but missing from"
                f" --initial-advertise-peer-urls={','.join(apurls)} (<nil>)"
            )
        extra = [u for u in apurls if u not in own]
        raise ClusterError(
            f"--initial-advertise-peer-urls has {','.join(extra)} but missing from"
            f" --initial-cluster={urls.urls_map_string({name: apurls})}"
        )
    all_urls = [u for urls in urls_map.values() for u in urls]
    if len(set(all_urls)) != len(all_urls):
        raise ClusterError(f"initial cluster {urls.urls_map_string(urls_map)} has duplicate url")
    members = tuple(
        sorted(
            (NewMember(member_id(urls, token), name_, urls) for name_, urls in urls_map.items()),
            key=lambda m: m.id,
        )
    )
    if len({m.id for m in members}) != len(members):
        raise ClusterError("member IDs collide: two members have the same peer URLs")
    local = next(m for m in members if m.name == name)
    return NewCluster(members, cluster_id(m.id for m in members), local)


def snapshot_data(members: tuple[NewMember, ...], cluster_version: str) -> bytes:
    """The raft snapshot's data for a cluster of just these members (nobody removed yet)."""
    return json.dumps(
        {
            "members": [m.to_json() for m in members],
            "removed": [],
            "clusterVersion": cluster_version,
        },
        separators=(",", ":"),
    ).encode()
