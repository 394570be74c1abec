"""``binlog-shipper inspect``: the JSON contract and the readable summary."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import pytest

from shipper.cli import main

from .corpus import BINLOGS

GTID_TAG = BINLOGS / "rmc__binlog_transaction_with_GTID_TAG.000001"
MARIADB_NO_CRC = BINLOGS / "zalora__fixtures_mysql-bin.07"


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["inspect", *argv, "--json"]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_json_contract_mysql(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(capsys, str(GTID_TAG))
    for key in (
        "file", "server_version", "binlog_version", "checksum", "in_use", "complete",
        "truncated_at", "event_count", "first_timestamp", "last_timestamp", "gtid",
        "transactions",
    ):  # fmt: skip
        assert key in doc
    assert doc["file"] == GTID_TAG.name
    assert doc["server_version"] == "9.6.0" and doc["binlog_version"] == 4
    assert doc["checksum"] == "CRC32" and doc["in_use"] is False and doc["complete"] is True
    assert doc["truncated_at"] is None and doc["event_count"] == 8 and doc["transactions"] == 1
    assert doc["first_timestamp"] == "2026-02-06T09:04:27Z"
    assert doc["gtid"] == {
        "flavor": "mysql",
        "previous": "55778904-0299-11f1-b1b8-4ef0c4956feb:1-13:mytag:1-2",
        "added": "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3",
        "executed_end": "55778904-0299-11f1-b1b8-4ef0c4956feb:1-13:mytag:1-3",
        "last": "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3",
    }
    assert "events" not in doc


def test_json_events_mariadb_without_checksums(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(capsys, str(MARIADB_NO_CRC), "--events")
    assert doc["checksum"] == "NONE" and doc["status"] == "in_use"
    gtid = doc["gtid"]
    assert isinstance(gtid, dict) and gtid["flavor"] == "mariadb"
    assert gtid["previous"] == "0-3704-2814" and gtid["last"] == "0-3704-2816"
    events = doc["events"]
    assert isinstance(events, list) and len(events) == doc["event_count"]
    first = events[0]
    assert set(first) >= {"pos", "end_pos", "time", "type_code", "type", "server_id", "crc_ok"}
    assert first["pos"] == 4 and first["type_code"] == 15 and first["type"] == "Format_desc"
    assert isinstance(first["timestamp_epoch"], int) and first["server_id"] == 3704
    assert first["time"] == dt.datetime.fromtimestamp(first["timestamp_epoch"], dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert all(e["crc_ok"] is None for e in events)
    assert all(a["end_pos"] == b["pos"] for a, b in itertools.pairwise(events))


def test_json_crc_ok_true_with_checksums(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(capsys, str(GTID_TAG), "--events")
    events = doc["events"]
    assert isinstance(events, list)
    assert all(e["crc_ok"] is True for e in events)


def test_readable_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(GTID_TAG), "--transactions"]) == 0
    out = capsys.readouterr().out
    assert "status          complete" in out
    assert "mytag:3" in out and "2026-02-06T09:04:47.207196Z" in out


def test_damaged_file_is_reported_and_garbage_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blob = bytearray(GTID_TAG.read_bytes())
    blob[300] ^= 0xFF
    bad = tmp_path / "bad.000001"
    bad.write_bytes(bytes(blob))
    doc = _json(capsys, str(bad))
    assert doc["status"] == "crc_mismatch" and isinstance(doc["crc_error_at"], int)
    junk = tmp_path / "junk.000001"
    junk.write_bytes(b"not a binlog")
    assert main(["inspect", str(junk), "--json"]) == 6  # BinlogFormatError.exit_code
    assert "junk.000001" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing"), "--json"]) == 4


def test_json_times_are_rfc3339_utc(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(capsys, str(GTID_TAG), "--transactions")
    index = doc["transaction_index"]
    assert isinstance(index, list) and index
    last = index[-1]
    assert last["commit_time"] == "2026-02-06T09:04:47.207196Z"
    assert last["commit_epoch_us"] % 1_000_000 == 207196
    assert "commit_us" not in last
    for key in ("first_timestamp", "last_timestamp"):
        value = doc[key]
        assert isinstance(value, str) and value.endswith("Z") and "T" in value
