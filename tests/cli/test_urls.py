"""petcd.urls: etcd's URL-list rules, which etcdutl restore and the etcd command share."""

from __future__ import annotations

import pytest

from petcd.urls import URLError, parse_urls, parse_urls_map, urls_map_string


def test_lists_are_checked_trimmed_and_sorted() -> None:
    assert parse_urls(" http://b:2 ,http://a:1/,,") == ("http://a:1", "http://b:2")
    assert parse_urls("") == ()
    assert parse_urls("unixs://[::1]:9") == ("unixs://[::1]:9",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ftp://a:1", "URL scheme must be http, https, unix, or unixs: ftp://a:1"),
        ("http://a", 'URL address does not have the form "host:port": http://a'),
        ("http://a:1/x", "URL must not contain a path: http://a:1/x"),
        ("a:1", "URL scheme must be http, https, unix, or unixs: a:1"),
    ],
)
def test_refusals_in_etcds_words(text: str, message: str) -> None:
    with pytest.raises(URLError, match="^" + message.replace("[", r"\[") + "$"):
        parse_urls(text)


def test_maps() -> None:
    m = parse_urls_map("n2=http://b:2,n1=http://a:1,n1=http://a:0")
    assert m == {"n2": ("http://b:2",), "n1": ("http://a:0", "http://a:1")}
    assert urls_map_string(m) == "n1=http://a:0,n1=http://a:1,n2=http://b:2"
    with pytest.raises(URLError, match="URL scheme must be"):
        parse_urls_map("lonely")  # a name without a URL, refused as etcd refuses it
