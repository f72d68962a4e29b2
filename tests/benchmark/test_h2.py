"""The HTTP/2 fast path's HPACK decoder on RFC 7541's own examples, and its request encoding."""

from __future__ import annotations

from petcd.benchmark.h2 import HpackDecoder, huffman_decode, request_header_block


def test_huffman_decodes_the_rfc_example() -> None:
    # RFC 7541 C.4.1: "www.example.com"
    assert huffman_decode(bytes.fromhex("f1e3c2e5f23a6ba0ab90f4ff")) == b"www.example.com"
    assert huffman_decode(bytes.fromhex("a8eb10649cbf")) == b"no-cache"  # C.4.2


def test_decoder_follows_the_dynamic_table_across_blocks() -> None:
    d = HpackDecoder()
    # RFC 7541 C.3.1 / C.3.2: requests without Huffman, the second reusing the first's entry
    first = d.decode(bytes.fromhex("828684410f7777772e6578616d706c652e636f6d"))
    assert first == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
    ]
    second_block = bytes.fromhex("828684be58086e6f2d6361636865")
    second = d.decode(second_block)
    assert second[-2:] == [(b":authority", b"www.example.com"), (b"cache-control", b"no-cache")]
    assert d.dynamic[0] == (b"cache-control", b"no-cache")
    # a block that only refers to entries leaves the table alone and is then served from the cache
    refs = bytes.fromhex("be")
    assert d.decode(refs) == [(b"cache-control", b"no-cache")]
    generation = d.generation
    assert d.decode(refs) == [(b"cache-control", b"no-cache")]
    assert d.generation == generation
    # ...until the table changes: then the same bytes mean the newest entry again
    d.decode(bytes.fromhex("400161") + b"\x01b")  # literal with indexing: a: b
    assert d.decode(refs) == [(b"a", b"b")]


def test_request_block_round_trips_through_the_decoder() -> None:
    block = request_header_block("127.0.0.1:2379", "/etcdserverpb.KV/Put", (("token", "t0k"),))
    assert HpackDecoder().decode(block) == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/etcdserverpb.KV/Put"),
        (b":authority", b"127.0.0.1:2379"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"token", b"t0k"),
    ]
