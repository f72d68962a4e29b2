"""A client Watch stream for tests: requests fed from a queue, responses read with a timeout."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc

from petcd.pb.etcdserverpb import rpc_pb2 as pb
from petcd.pb.etcdserverpb import rpc_pb2_grpc as rpc


class Stream:
    """A client watch stream fed from a queue; responses read with a timeout."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.requests: queue.Queue[pb.WatchRequest | None] = queue.Queue()
        self.call = rpc.WatchStub(channel).Watch(self._iter())
        self.responses: queue.Queue[Any] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _iter(self) -> Iterator[pb.WatchRequest]:
        while (r := self.requests.get()) is not None:
            yield r

    def _read(self) -> None:
        try:
            for resp in self.call:
                self.responses.put(resp)
        except grpc.RpcError as err:
            self.responses.put(err)

    def send(self, **kwargs: Any) -> None:
        self.requests.put(pb.WatchRequest(**kwargs))

    def create(self, **kwargs: Any) -> None:
        self.send(create_request=pb.WatchCreateRequest(**kwargs))

    def recv(self, timeout: float = 5) -> pb.WatchResponse:
        r = self.responses.get(timeout=timeout)
        assert not isinstance(r, Exception), r
        return r  # type: ignore[no-any-return]

    def nothing(self, wait: float = 0.3) -> bool:
        try:
            self.responses.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()
