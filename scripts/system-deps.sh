#!/bin/sh
# Installs the Debian packages the tests use: the reference etcd 3.4 server and etcdctl, for
# differential and wire-compatibility tests. Quiet and quick when they are already there.
set -e
if [ -x /usr/bin/etcd ] && [ -x /usr/bin/etcdctl ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "system-deps: not root; install etcd-server and etcd-client yourself (tests that need them skip)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq etcd-server etcd-client >/dev/null
