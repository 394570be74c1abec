"""GTID set value types: server text forms, and set algebra checked against a model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.binlog import (
    GtidSetFormatError,
    MariaDBGtid,
    MariaDBGtidList,
    MySQLGtid,
    MySQLGtidSet,
    parse_gtid_set,
)

U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
U2 = "8f7a0000-0000-0000-0000-000000000001"


def test_mysql_canonical_text() -> None:
    s = MySQLGtidSet.parse(f" {U2}:7:1-5:6 ,\n{U1.upper()}:10-12:1 ")
    # sorted by UUID, lowercase, adjacent intervals merged, singletons bare
    assert str(s) == f"{U1}:1:10-12,{U2}:1-7"
    assert s.to_string(",\n") == f"{U1}:1:10-12,\n{U2}:1-7"
    assert MySQLGtidSet.parse(str(s)) == s
    assert s.count() == 11
    assert MySQLGtidSet.parse("") == MySQLGtidSet() and str(MySQLGtidSet()) == ""


def test_mysql_tagged_text() -> None:
    s = MySQLGtidSet.parse(f"{U1}:Beta:3:alpha:1-2,{U1}:1-13")
    assert str(s) == f"{U1}:1-13:alpha:1-2:beta:3"
    assert s.contains(f"{U1}:alpha:2") and not s.contains(f"{U1}:alpha:3")
    assert f"{U1}:beta:3" in s and f"{U1}:3" in s
    assert str(MySQLGtid.parse(f"{U1}:Tag_1:9")) == f"{U1}:tag_1:9"
    only_tagged = MySQLGtidSet.parse(f"{U2}:t:5")
    assert str(only_tagged) == f"{U2}:t:5"


@pytest.mark.parametrize(
    "bad",
    [
        f"{U1}",
        f"{U1}:0",
        f"{U1}:5-3",
        "zz:1",
        f"{U1}:1-x",
        f"{U1}:9tag:1",
        f"{U1}:" + "t" * 33 + ":1",
    ],
)
def test_mysql_bad_text(bad: str) -> None:
    with pytest.raises(GtidSetFormatError):
        MySQLGtidSet.parse(bad)


def test_mysql_algebra_examples() -> None:
    a = MySQLGtidSet.parse(f"{U1}:1-10,{U2}:1-3")
    b = MySQLGtidSet.parse(f"{U1}:4-6:9")
    assert str(a - b) == f"{U1}:1-3:7-8:10,{U2}:1-3"
    assert str(b - a) == ""
    assert b <= a and b < a and a >= b and not a <= b
    assert (a | b) == a
    assert str(a & MySQLGtidSet.parse(f"{U1}:8-20")) == f"{U1}:8-10"


_uuids = st.sampled_from([U1, U2])
_tags = st.sampled_from(["", "", "a", "zz"])
_gtids = st.tuples(_uuids, _tags, st.integers(1, 40))


def _set(items: set[tuple[str, str, int]]) -> MySQLGtidSet:
    return MySQLGtidSet.parse(",".join(f"{u}:{t}:{n}" if t else f"{u}:{n}" for u, t, n in items))


def _model(s: MySQLGtidSet) -> set[tuple[str, str, int]]:
    return {(u, t, n) for u, t, ivs in s.entries for a, b in ivs for n in range(a, b + 1)}


@settings(max_examples=200, deadline=None)
@given(st.sets(_gtids, max_size=30), st.sets(_gtids, max_size=30))
def test_mysql_algebra_matches_python_sets(
    xs: set[tuple[str, str, int]], ys: set[tuple[str, str, int]]
) -> None:
    a, b = _set(xs), _set(ys)
    assert _model(a) == xs
    assert _model(a | b) == xs | ys
    assert _model(a - b) == xs - ys
    assert _model(a & b) == xs & ys
    assert (a <= b) == (xs <= ys)
    assert MySQLGtidSet.parse(str(a)) == a
    for g in xs | ys:
        assert a.contains(MySQLGtid(*g)) == (g in xs)


def test_mariadb_list_text_and_position() -> None:
    s = MariaDBGtidList.parse("1-2-5,0-1-100,0-2-7, 1-1-9")
    # grouped by domain; within a domain the order written is kept (last = most recent)
    assert str(s) == "0-1-100,0-2-7,1-2-5,1-1-9"
    assert str(s.position()) == "0-2-7,1-1-9"
    assert s.contains("0-1-99") and not s.contains("0-1-101") and not s.contains("2-1-1")
    assert MariaDBGtid.parse("3-4-5") in s.union(MariaDBGtidList.parse("3-4-6"))
    assert str(s - MariaDBGtidList.parse("0-1-100,1-2-4")) == "0-2-7,1-2-5,1-1-9"
    assert MariaDBGtidList.parse("0-1-5") <= s and not s <= MariaDBGtidList.parse("0-1-5")
    assert s.domains() == (0, 1)


def test_mariadb_bad_text() -> None:
    for bad in ("0-1", "a-b-c", "0-1-2-3", "1-2-" + "9" * 30):
        with pytest.raises(GtidSetFormatError):
            MariaDBGtidList.parse(bad)


def test_parse_either_flavour() -> None:
    assert isinstance(parse_gtid_set("0-1-2"), MariaDBGtidList)
    assert isinstance(parse_gtid_set(f"{U1}:1"), MySQLGtidSet)
    assert parse_gtid_set("") == MySQLGtidSet()
