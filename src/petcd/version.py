"""The versions petcd reports.

petcd implements etcd's v3 API as of etcd 3.6, so it reports etcd 3.6 wherever etcd reports its
version (`/version`, `Maintenance.Status`, `etcdctl version`, `etcd --version`): clients that gate
features on the server version then behave as they do with etcd. Its own release number is
`petcd.__version__`, named beside etcd's in `--version` output.
"""

from __future__ import annotations

ETCD_VERSION = "3.6.0"
"""The etcd release whose behaviour and API petcd implements."""

API_VERSION = "3.6"
"""etcd's API version (major.minor of ETCD_VERSION), as `etcdctl version` prints it."""

CLUSTER_VERSION = "3.6.0"
"""The cluster version a petcd cluster runs at (etcd's `etcdcluster` in `/version`)."""

STORAGE_VERSION = "3.6.0"
"""The storage schema version etcd 3.6 reports (`storage` in `/version`, `storageVersion` in Status)."""
