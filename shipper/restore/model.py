"""Value types the restore planner reads and writes.

Everything here is plain data: the planner is a pure function over these, so
the host CLI (reading the SQLite manifest) and the restore-planner Lambda
(reading the catalog) feed it the same shapes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from shipper.binlog.gtid import GtidSetFormatError, MariaDBGtidList, MySQLGtidSet, parse_gtid_set
from shipper.errors import RestoreError

GtidSet = MySQLGtidSet | MariaDBGtidList

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_POS_RE = re.compile(r"^(?P<file>[^:\s]+\.\d+):(?P<pos>\d+)$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]")


def sequence_of(name: str) -> int:
    suffix = name.rsplit(".", 1)[-1]
    if not suffix.isdigit():
        raise RestoreError(f"binlog name {name!r} has no numeric sequence suffix")
    return int(suffix)


def stem_of(name: str) -> str:
    return name.rsplit(".", 1)[0]


def iso_us(us: int) -> str:
    """Epoch microseconds -> ``2026-11-24T10:41:07.250000Z``."""
    t = _EPOCH + dt.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_seconds(seconds: float | None) -> str | None:
    """Epoch seconds (a float, as the manifest keeps them) -> RFC 3339 UTC, or None."""
    return None if seconds is None else iso_us(round(seconds * 1_000_000))


def to_us(t: dt.datetime) -> int:
    return (t - _EPOCH) // dt.timedelta(microseconds=1)


@dataclass(frozen=True, order=True)
class Position:
    """A byte position in a named binlog, ordered by (sequence, offset)."""

    sequence: int
    offset: int
    file: str

    @classmethod
    def of(cls, file: str, offset: int) -> Position:
        return cls(sequence_of(file), offset, file)

    def __str__(self) -> str:
        return f"{self.file}:{self.offset}"


@dataclass(frozen=True)
class Target:
    """What the operator asked for: ``kind`` is time, gtid, position or latest."""

    kind: str
    text: str
    time_us: int | None = None
    gtid: GtidSet | None = None
    position: Position | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "text": self.text}
        if self.time_us is not None:
            d["time"] = iso_us(self.time_us)
        if self.gtid is not None:
            d["gtid_set"] = str(self.gtid)
        if self.position is not None:
            d["position"] = str(self.position)
        return d


def parse_target(text: str) -> Target:
    """``latest`` | ``2026-11-24T10:41:07.250Z`` | ``0-1-532`` / ``uuid:1-77`` | ``file:pos``.

    A time must carry an offset (``Z`` or ``+01:00``): a naive time would be
    read in some local zone, which is how restores land an hour off.
    """
    t = text.strip()
    if not t:
        raise RestoreError(
            "empty restore target: give a UTC time, a GTID set, FILE:POS or 'latest'"
        )
    if t.lower() == "latest":
        return Target("latest", t)
    if _TIME_RE.match(t):
        try:
            when = dt.datetime.fromisoformat(t.replace(" ", "T", 1))
        except ValueError:
            raise RestoreError(
                f"restore target {t!r} is not an ISO 8601 time (e.g. 2026-11-24T10:41:07.250Z)"
            ) from None
        if when.tzinfo is None:
            raise RestoreError(
                f"restore target {t!r} has no UTC offset: add 'Z' for UTC or "
                "an explicit offset like +01:00 (a naive time is ambiguous)"
            )
        return Target("time", t, time_us=to_us(when))
    m = _POS_RE.match(t)
    if m:
        return Target("position", t, position=Position.of(m["file"], int(m["pos"])))
    try:
        gtid = parse_gtid_set(t)
    except GtidSetFormatError as e:
        raise RestoreError(
            f"restore target {t!r} is neither a time, a GTID set, FILE:POS nor 'latest' ({e})"
        ) from None
    if not gtid:
        raise RestoreError(f"restore target {t!r} is an empty GTID set")
    return Target("gtid", t, gtid=gtid)


def _us(t: float | None) -> float | None:
    """Epoch seconds to whole microseconds: what a backup record keeps (RFC 3339 with
    microseconds), so the manifest and the archive give the same plan to the digit."""
    return None if t is None else round(t, 6)


@dataclass(frozen=True)
class BackupInfo:
    """A base backup and the binlog coordinates its data is consistent with."""

    id: str
    tool: str
    binlog_file: str
    binlog_pos: int
    gtid_set: str = ""
    #: when the data is consistent (mysqldump: its start; mariabackup: its end), epoch seconds
    consistent_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    object_key: str | None = None
    server_id: int | None = None
    #: the record's verification state: unverified, verified, failed or deleted. Not in
    #: the plan's JSON: every catalog must give the same plan for the same archive.
    verification: str = "unverified"
    #: SHA-256 of the backup's plaintext as recorded when it was taken
    sha256: str | None = None

    @property
    def position(self) -> Position:
        return Position.of(self.binlog_file, self.binlog_pos)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tool": self.tool,
            "binlog_file": self.binlog_file,
            "binlog_pos": self.binlog_pos,
            "gtid_set": self.gtid_set,
            "consistent_at": iso_seconds(self.consistent_at),
            "started_at": iso_seconds(self.started_at),
            "finished_at": iso_seconds(self.finished_at),
            "object_key": self.object_key,
            "server_id": self.server_id,
        }

    @classmethod
    def from_record(cls, rec: Any) -> BackupInfo:
        """From a :class:`shipper.records.BackupRecord` (duck-typed: the planner stays pure)."""
        return cls(
            id=rec.id,
            tool=rec.tool,
            binlog_file=rec.binlog_file,
            binlog_pos=rec.binlog_pos,
            gtid_set=rec.gtid_set,
            consistent_at=_us(rec.consistent_at),
            started_at=_us(rec.started_at),
            finished_at=_us(rec.finished_at),
            object_key=rec.object_key,
            server_id=rec.server_id,
            verification=rec.verification.state,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BackupInfo:
        """From a manifest ``backups`` row (``extra`` holds consistent_at and server_id)."""
        extra = row.get("extra") or {}
        consistent = extra.get("consistent_at")
        if consistent is None:
            consistent = (
                row.get("finished_at") if row["tool"] == "mariabackup" else row.get("started_at")
            )
        return cls(
            id=row["id"],
            tool=row["tool"],
            binlog_file=row["binlog_file"] or "",
            binlog_pos=int(row["binlog_pos"] or 0),
            gtid_set=row.get("gtid_set") or "",
            consistent_at=_us(consistent),
            started_at=_us(row.get("started_at")),
            finished_at=_us(row.get("finished_at")),
            object_key=row.get("object_key"),
            server_id=extra.get("server_id"),
            verification=extra.get("verification") or "unverified",
            sha256=row.get("sha256"),
        )


@dataclass(frozen=True)
class ArchivedBinlog:
    """One binlog as the archive knows it (a manifest row or a catalog item).

    ``state`` uses the manifest's words whatever the source: an archive scan says
    ``committed`` for an object with its transaction index beside it (the shipper
    writes the index only after the object verified), ``uploaded`` for one without,
    ``flagged`` for a quarantined one. ``index_key`` is where its transaction index
    is (None when there is none).
    """

    name: str
    state: str
    server_id: int | None = None
    first_ts: int | None = None
    last_ts: int | None = None
    gtid_previous: str | None = None
    gtid_end: str | None = None
    object_key: str | None = None
    size: int | None = None
    sha256: str | None = None
    file_status: str | None = None
    server_uuid: str | None = None
    index_key: str | None = None

    @property
    def sequence(self) -> int:
        return sequence_of(self.name)

    @property
    def lineage_suffixed(self) -> bool:
        return bool(self.object_key) and ".lineage-" in (self.object_key or "")

    @classmethod
    def from_row(cls, row: Any) -> ArchivedBinlog:
        """From a :class:`shipper.manifest.BinlogRow` (duck-typed: the planner stays pure)."""
        return cls(
            name=row.name,
            state=row.state,
            server_id=row.server_id,
            first_ts=row.first_ts,
            last_ts=row.last_ts,
            gtid_previous=row.gtid_previous,
            gtid_end=row.gtid_end,
            object_key=row.object_key,
            size=row.size,
            sha256=row.sha256,
            file_status=row.file_status,
            server_uuid=getattr(row, "server_uuid", None) or None,
        )
