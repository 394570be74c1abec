"""Parsing restore targets: time (offset required), GTID sets, file:pos, latest."""

from __future__ import annotations

import pytest

from shipper.errors import RestoreError
from shipper.restore.model import iso_us, parse_target


def test_time_with_microseconds() -> None:
    t = parse_target("2026-11-24T10:41:07.250Z")
    assert t.kind == "time" and iso_us(t.time_us or 0) == "2026-11-24T10:41:07.250000Z"
    t2 = parse_target("2026-11-24T11:41:07.250001+01:00")
    assert t2.time_us == (t.time_us or 0) + 1


def test_naive_time_is_refused() -> None:
    with pytest.raises(RestoreError, match="no UTC offset"):
        parse_target("2026-11-24T10:41:07")
    with pytest.raises(RestoreError, match="not an ISO 8601 time"):
        parse_target("2026-11-24T25:00:00Z")


def test_other_kinds() -> None:
    assert parse_target("latest").kind == "latest"
    p = parse_target("mysql-bin.000042:1234")
    assert p.kind == "position" and p.position is not None
    assert (p.position.file, p.position.offset, p.position.sequence) == (
        "mysql-bin.000042",
        1234,
        42,
    )
    g = parse_target("0-1-532")
    assert g.kind == "gtid" and str(g.gtid) == "0-1-532"
    m = parse_target("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-77")
    assert m.kind == "gtid" and str(m.gtid) == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77"


@pytest.mark.parametrize("bad", ["", "yesterday", "mysql-bin:12"])
def test_garbage(bad: str) -> None:
    with pytest.raises(RestoreError):
        parse_target(bad)
