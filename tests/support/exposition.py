"""A Prometheus scraper's reading of a /metrics body, for tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def parse_exposition(text: str) -> dict[str, float]:
    """The samples of a Prometheus text exposition by `name{labels}` (labels sorted), after checking
    what a scraper rejects: it must parse, with no family written twice. Named as the parser names
    them: a counter's samples end in `_total` (etcd_server_health_success reads as
    etcd_server_health_success_total)."""
    typed = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(typed) == len(set(typed)), sorted({n for n in typed if typed.count(n) > 1})
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    out: dict[str, float] = {}
    for family in families:
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out
