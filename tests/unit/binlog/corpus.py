"""The real-binlog corpus copied from ../shared/fixtures (rows in SOURCES.tsv)."""

from __future__ import annotations

import csv
from pathlib import Path

BINLOGS = Path(__file__).resolve().parents[2] / "fixtures" / "binlogs"


def rows() -> list[dict[str, str]]:
    with open(BINLOGS / "SOURCES.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def path_of(row: dict[str, str]) -> Path:
    return BINLOGS / Path(row["file"]).name


ROWS = rows()
NAMES = [Path(r["file"]).name for r in ROWS]

#: fixtures whose verdict is not "a clean binlog": name -> expected outcome
TRUNCATED = {"rmc__binlog_truncated_prev_gtid_event.000001": 120}
#: the corrupt relay log from MySQL's bug tests: mariadb-binlog stops at the same offset
FORMAT_ERROR = {"rmc__corrupt-relay-bin.000624": 91204}
#: files where mariadb-binlog stops early, at the first event of a type it
#: cannot read -> that type: MySQL 8 compressed transaction payloads (40),
#: tagged GTIDs (42, 8.3+), partial JSON updates (39), and old types MariaDB
#: dropped (Incident 26, Execute_load_query 18, pre-GA Write_rows_v0 20)
UNREADABLE = {
    "apecloud__mysql-bin.000057": 40,
    "mbcj__mysql-bin.compressed": 40,
    "rmc__binlog_transaction_with_GTID_TAG.000001": 42,
    "rmc__json.binlog.000001": 39,
    "rmc__bug40482-bin.000001": 26,
    "rmc__ver_5_1-wl2325_r.001": 18,
    "rmc__ver_5_1-wl2325_s.001": 20,
}
