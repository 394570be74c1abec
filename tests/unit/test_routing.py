"""Routing: which targets the host writes, and a reason for every one it does not."""

from __future__ import annotations

from shipper.pipeline import routing
from tests.helpers import parse

KEYS = '[[keys]]\nprovider = "local"\npath = "/k"\n'


def _cfg(routing_table: str, *urls: str) -> str:
    targets = "".join(f'[[targets]]\nurl = "{u}"\n' for u in urls)
    return f'state_dir = "/s"\n[routing]\n{routing_table}\n{targets}{KEYS}'


def test_cloud_targets_beside_local_primary_are_shown_not_dropped() -> None:
    cfg = parse(_cfg('primary = "local"', "file:///a", "s3://b/p", "gs://c/p"))
    got = [(r.url, r.role, r.written) for r in routing.routes(cfg)]
    assert got == [
        ("file:///a", "primary", True),
        ("s3://b/p", "unused", False),
        ("gs://c/p", "unused", False),
    ]
    assert [t.url for t in cfg.write_targets()] == ["file:///a"]
    (w1, w2) = routing.warnings(cfg)
    assert w1.startswith("target s3://b/p is not written by this host")
    assert "routing.direct_dual = true" in w1 and 'routing.primary = "aws"' in w1
    assert 'routing.primary = "gcp"' in w2


def test_the_other_cloud_is_the_replica_and_says_how_to_write_it() -> None:
    cfg = parse(_cfg('primary = "aws"', "s3://b/p", "gs://c/p"))
    (s3, gs) = routing.routes(cfg)
    assert (s3.role, s3.written, gs.role, gs.written) == ("primary", True, "replica", False)
    assert "replication function" in gs.why and "routing.direct_dual = true" in gs.why
    assert [t.url for t in routing.write_targets(cfg)] == ["s3://b/p"]


def test_direct_dual_writes_every_target() -> None:
    cfg = parse(_cfg("direct_dual = true", "s3://b/p", "gs://c/p", "file:///a"))
    assert all(r.written and r.role == "direct" for r in routing.routes(cfg))
    assert routing.warnings(cfg) == []
    assert len(cfg.write_targets()) == 3


def test_two_local_targets_are_both_written() -> None:
    cfg = parse(_cfg("", "file:///a", "file:///b"))
    assert [r.as_dict()["written"] for r in routing.routes(cfg)] == [True, True]
