"""The manifest's value types: a binlog row, a placement, and their decoding."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

STATES = ("discovered", "staged", "uploaded", "verified", "committed", "flagged", "gap")
RANK = {
    "discovered": 0,
    "staged": 1,
    "uploaded": 2,
    "verified": 3,
    "committed": 4,
    "flagged": 4,
    "gap": 4,
}
TERMINAL = frozenset({"committed", "flagged", "gap"})

COLUMNS = (
    "name",
    "lineage",
    "identity",
    "sequence",
    "state",
    "size",
    "sha256",
    "server_id",
    "server_uuid",
    "server_version",
    "first_ts",
    "last_ts",
    "gtid_previous",
    "gtid_end",
    "file_status",
    "object_key",
    "targets",
    "envelope_size",
    "error",
    "attempts",
    "discovered_at",
    "updated_at",
    "committed_at",
)


@dataclass(frozen=True)
class BinlogRow:
    name: str
    #: 0 for the first file of this name; +1 each time the server reuses the name for a
    #: different file (RESET MASTER, a rebuilt server)
    lineage: int
    #: sha256 of the file's first 4 KiB (its format description event and start)
    identity: str | None
    sequence: int
    state: str
    size: int | None
    sha256: str | None
    server_id: int | None
    #: @@server_uuid (MySQL); empty on MariaDB, which has none
    server_uuid: str | None
    server_version: str | None
    first_ts: int | None
    last_ts: int | None
    gtid_previous: str | None
    gtid_end: str | None
    file_status: str | None
    object_key: str | None
    targets: tuple[str, ...]
    envelope_size: int | None
    error: str | None
    attempts: int
    discovered_at: float
    updated_at: float
    committed_at: float | None

    def as_dict(self) -> dict[str, Any]:
        d = {c: getattr(self, c) for c in COLUMNS}
        d["targets"] = list(self.targets)
        return d


@dataclass(frozen=True)
class Placement:
    """Where one binlog row is stored on one target."""

    target: str
    #: "verified" (read back and matched) or "failed" (the last attempt's error)
    state: str
    object_key: str | None
    #: the backend's version token (S3 VersionId, GCS generation, file mtime_ns)
    version: str | None
    envelope_size: int | None
    verified_at: float | None
    error: str | None
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "state": self.state,
            "object_key": self.object_key,
            "version": self.version,
            "envelope_size": self.envelope_size,
            "verified_at": self.verified_at,
            "error": self.error,
        }


def placement_from_sql(r: sqlite3.Row) -> Placement:
    return Placement(
        target=r["target"],
        state=r["state"],
        object_key=r["object_key"],
        version=r["version"],
        envelope_size=r["envelope_size"],
        verified_at=r["verified_at"],
        error=r["error"],
        updated_at=r["updated_at"],
    )


def row_from_sql(r: sqlite3.Row | dict[str, Any]) -> BinlogRow:
    d = dict(r)
    del d["id"]
    d["targets"] = tuple(json.loads(d["targets"] or "[]"))
    return BinlogRow(**d)
