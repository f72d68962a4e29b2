"""The front-end spec (petcd.etcdmain.frontend.FrontendSpec) crosses to the front-end process as JSON."""

from __future__ import annotations

import json

from petcd.etcdmain.frontend import FrontendSpec
from petcd.mvcc.watchable_store import PROGRESS_NOTIFY_INTERVAL_S


def test_spec_round_trips_through_json() -> None:
    spec = FrontendSpec(
        socket="/s/core.sock",
        db="/d/db",
        quota_bytes=1 << 30,
        listen_client_urls=("http://127.0.0.1:1", "http://127.0.0.1:2"),
        listen_client_http_urls=("http://127.0.0.1:3",),
        fast_socket="/s/fast.sock",
        watch_progress_notify_interval_s=0.25,
    )
    back = FrontendSpec.from_json(spec.to_json())
    assert back == spec
    assert back.watch_progress_notify_interval_s == 0.25


def test_a_spec_without_the_progress_interval_gets_the_default() -> None:
    d = json.loads(FrontendSpec(socket="s", db="d", quota_bytes=1, listen_client_urls=()).to_json())
    del d["watch_progress_notify_interval_s"]
    back = FrontendSpec.from_json(json.dumps(d))
    assert back.watch_progress_notify_interval_s == PROGRESS_NOTIFY_INTERVAL_S
