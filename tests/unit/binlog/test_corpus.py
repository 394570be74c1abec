"""Every binlog of the real corpus parses, with the SOURCES.tsv facts re-checked."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from shipper.binlog import BinlogFramingError, read_events, scan_file
from shipper.errors import BinlogFormatError

from .corpus import FORMAT_ERROR, NAMES, ROWS, TRUNCATED, path_of


@pytest.mark.parametrize("row", ROWS, ids=NAMES)
def test_fixture_parses_with_expected_verdict(row: dict[str, str]) -> None:
    path = path_of(row)
    name = path.name
    if name in FORMAT_ERROR:
        with pytest.raises(BinlogFormatError) as exc:
            scan_file(path)
        assert isinstance(exc.value, BinlogFramingError)
        assert exc.value.offset == FORMAT_ERROR[name]
        assert name in str(exc.value) and str(FORMAT_ERROR[name]) in str(exc.value)
        return
    info, events = read_events(path)
    data = path.read_bytes()
    assert info.name == name
    assert info.size == len(data) == int(row["size_bytes"])
    assert info.sha256 == hashlib.sha256(data).hexdigest() == row["sha256"]
    assert info.server_version == row["server_version"]
    assert info.binlog_version == int(row["binlog_version"])
    expected_alg = {"CRC32": "CRC32", "NONE": "NONE"}.get(row["checksum_alg"])
    assert info.checksum == expected_alg
    assert info.in_use == (row["binlog_in_use_flag"] == "True")
    assert info.first_timestamp == events[0].timestamp
    assert info.event_count == len(events)

    if name in TRUNCATED:
        assert info.status == "truncated"
        assert info.truncated_at == TRUNCATED[name]
        assert sum(e.size for e in events) + 4 == TRUNCATED[name]
        return
    assert info.truncated_at is None
    assert info.crc_error_at is None
    # the events tile the file exactly
    assert events[0].pos == 4
    for a, b in itertools.pairwise(events):
        assert a.end_pos == b.pos
    assert events[-1].end_pos == len(data)
    if info.checksum == "CRC32":
        ok, total = (int(x) for x in row["all_event_crcs_valid"].split("/"))
        assert ok == total == info.event_count
        assert all(e.crc_ok is True for e in events)
    else:
        assert all(e.crc_ok is None for e in events)
    assert info.status in ("complete", "in_use", "not_closed")
    assert info.complete == (events[-1].type_code in (3, 4))
    if info.complete:
        assert info.status == "complete"
    # transactions lie inside the file, in order, without overlap
    prev_end = 0
    for t in info.index:
        assert 4 <= t.start < t.end <= len(data)
        assert t.start >= prev_end
        prev_end = t.end


def test_verdicts_of_the_corpus_are_what_we_expect() -> None:
    """Pin the statuses so a regression in the status logic shows."""
    seen: dict[str, str] = {}
    for row in ROWS:
        p = path_of(row)
        if p.name in FORMAT_ERROR:
            continue
        seen[p.name] = scan_file(p).status
    assert seen["rmc__binlog_truncated_prev_gtid_event.000001"] == "truncated"
    assert seen["cdcrs__5.7_03_stop_log.bin"] == "complete"
    assert seen["cdcrs__5.7_04_rotate_log.bin"] == "complete"
    assert seen["zalora__fixtures_mysql-bin.empty"] == "in_use"
    assert seen["rmc__binlog_savepoint.000001"] == "not_closed"
    counts: dict[str, int] = {}
    for s in seen.values():
        counts[s] = counts.get(s, 0) + 1
    assert counts == {"complete": 56, "in_use": 21, "not_closed": 3, "truncated": 1}


@pytest.mark.parametrize(
    "row",
    [r for r in ROWS if path_of(r).name not in FORMAT_ERROR],
    ids=lambda r: Path(r["file"]).name,
)
def test_fast_path_equals_general_path(row: dict[str, str]) -> None:
    """Without a per-event callback most events skip the general path: same answer."""
    assert scan_file(path_of(row)) == read_events(path_of(row))[0]


START_TYPES = {33, 34, 42, 162, 2, 5, 13, 14, 17, 40}  # GTIDs, BEGIN/statement, context events
END_TYPES = {16, 2, 38, 40, 18}  # XID, COMMIT/DDL/statement, XA_PREPARE, payload, LOAD DATA


@pytest.mark.parametrize("row", ROWS, ids=NAMES)
def test_transactions_start_and_end_on_the_right_events(row: dict[str, str]) -> None:
    path = path_of(row)
    if path.name in FORMAT_ERROR:
        return
    info, events = read_events(path)
    at = {e.pos: e for e in events}
    ending = {e.end_pos: e for e in events}
    times = {e.timestamp for e in events}
    for t in info.index:
        assert at[t.start].type_code in START_TYPES, t
        assert ending[t.end].type_code in END_TYPES, t
        # commit time: the closing event's header seconds, or finer (MySQL 8 GTID)
        if t.commit_us % 1_000_000 == 0:
            assert t.commit_us // 1_000_000 in times
    if info.gtid_flavor == "mysql" and info.gtid_added:
        added = info.gtid_set_end() - info.gtid_set_previous()
        assert sum(1 for t in info.index if t.gtid) == added.count()  # type: ignore[union-attr]
    if info.gtid_flavor == "mariadb":
        assert all(t.gtid for t in info.index)
