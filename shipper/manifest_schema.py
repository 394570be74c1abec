"""The manifest's schema versions and the forward migrations between them.

The version lives in SQLite's ``PRAGMA user_version``. Releases before
versioning left it at 0, so a file at 0 is recognised by its shape:

* **v0**: an unversioned manifest from before ``server_uuid``, in two shapes:
  the first release (``name`` as primary key, no lineages) and the lineage
  release (``id``, ``lineage``, ``identity``). Reading one with the v1 code
  raised a raw ``TypeError``.
* **v1**: the last unversioned release (lineages and ``server_uuid``).
* **v2**: ``placements``: where each binlog is stored on each target.
* **v3**: ``breakers``: each target's circuit-breaker state, so a restart does
  not forget an open circuit. Placements gain the state ``pending``: a binlog
  committed on the other cloud while this target's circuit was open, which
  "needs replication back" (drained by ``pipeline/backfill.py``).

Migrations only move forward, each in the same transaction as the version
bump, so a crash mid-migration leaves the file at its old version. A manifest
from a newer release is refused: an older shipper must not rewrite a schema it
does not know.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from shipper.errors import StateError

SCHEMA_VERSION = 3

_BINLOGS_V1 = """
CREATE TABLE binlogs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL,
    lineage         INTEGER NOT NULL DEFAULT 0,
    identity        TEXT,
    sequence        INTEGER NOT NULL,
    state           TEXT NOT NULL,
    size            INTEGER,
    sha256          TEXT,
    server_id       INTEGER,
    server_uuid     TEXT,
    server_version  TEXT,
    first_ts        INTEGER,
    last_ts         INTEGER,
    gtid_previous   TEXT,
    gtid_end        TEXT,
    file_status     TEXT,
    object_key      TEXT,
    targets         TEXT NOT NULL DEFAULT '[]',
    envelope_size   INTEGER,
    error           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    discovered_at   REAL NOT NULL,
    updated_at      REAL NOT NULL,
    committed_at    REAL,
    UNIQUE (name, lineage)
);
"""

_OTHER_V1 = """
CREATE TABLE IF NOT EXISTS journal (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL NOT NULL,
    binlog  TEXT,
    kind    TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS backups (
    id          TEXT PRIMARY KEY,
    tool        TEXT NOT NULL,
    started_at  REAL,
    finished_at REAL,
    binlog_file TEXT,
    binlog_pos  INTEGER,
    gtid_set    TEXT,
    object_key  TEXT,
    targets     TEXT NOT NULL DEFAULT '[]',
    sha256      TEXT,
    size        INTEGER,
    extra       TEXT NOT NULL DEFAULT '{}'
);
"""

# One row per (binlog row, target). ``state`` is "verified" once the object at
# ``object_key`` on ``target`` was read back and matched; "failed" keeps the last
# error of an attempt that did not get there.
_PLACEMENTS_V2 = """
CREATE TABLE placements (
    binlog_id     INTEGER NOT NULL REFERENCES binlogs (id),
    target        TEXT NOT NULL,
    object_key    TEXT,
    version       TEXT,
    envelope_size INTEGER,
    state         TEXT NOT NULL,
    verified_at   REAL,
    error         TEXT,
    updated_at    REAL NOT NULL,
    PRIMARY KEY (binlog_id, target)
);
"""

# One row per target whose circuit has left "closed" at least once.
_BREAKERS_V3 = """
CREATE TABLE breakers (
    target      TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    failures    INTEGER NOT NULL DEFAULT 0,
    opened_at   REAL,
    updated_at  REAL NOT NULL
);
"""

# The columns the first release had, copied when it is rebuilt with lineages.
_FIRST_RELEASE_COLUMNS = (
    "name, sequence, state, size, sha256, server_id, server_version, first_ts, last_ts,"
    " gtid_previous, gtid_end, file_status, object_key, targets, envelope_size, error,"
    " attempts, discovered_at, updated_at, committed_at"
)


def _script(db: sqlite3.Connection, sql: str) -> None:
    # not executescript(): it commits first, and a migration must stay one transaction
    for stmt in sql.split(";"):
        if stmt.strip():
            db.execute(stmt)


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def _v0_to_v1(db: sqlite3.Connection) -> None:
    """Bring either unversioned pre-server_uuid shape to v1."""
    if "lineage" not in _columns(db, "binlogs"):
        # The first release keyed rows by name; lineages need their own id.
        db.execute("ALTER TABLE binlogs RENAME TO binlogs_v0")
        _script(db, _BINLOGS_V1)
        db.execute(
            f"INSERT INTO binlogs ({_FIRST_RELEASE_COLUMNS}) "
            f"SELECT {_FIRST_RELEASE_COLUMNS} FROM binlogs_v0 ORDER BY discovered_at, name"
        )
        db.execute("DROP TABLE binlogs_v0")
    if "server_uuid" not in _columns(db, "binlogs"):
        db.execute("ALTER TABLE binlogs ADD COLUMN server_uuid TEXT")


def _v1_to_v2(db: sqlite3.Connection) -> None:
    """Add placements. v1 kept one key per row: the first target's (the others may
    hold a lineage key), so only that one becomes a verified placement; the other
    targets have none, and the next pass re-checks them (see pipeline/backfill.py)."""
    _script(db, _PLACEMENTS_V2)
    db.execute(
        "INSERT INTO placements (binlog_id, target, object_key, envelope_size, state,"
        " verified_at, updated_at)"
        " SELECT id, json_extract(targets, '$[0]'), object_key, envelope_size, 'verified',"
        " COALESCE(committed_at, updated_at), updated_at FROM binlogs"
        " WHERE state IN ('committed', 'flagged') AND object_key IS NOT NULL"
        " AND json_array_length(targets) > 0"
    )


def _v2_to_v3(db: sqlite3.Connection) -> None:
    """Add breakers (all circuits start closed). ``pending`` placements need no
    change: ``placements.state`` is free text, and v2 wrote none."""
    _script(db, _BREAKERS_V3)


#: MIGRATIONS[v] moves a manifest from version v to v + 1
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: _v0_to_v1,
    1: _v1_to_v2,
    2: _v2_to_v3,
}


def migrate(db: sqlite3.Connection, path: Path) -> int:
    """Create or upgrade the schema at ``path`` to SCHEMA_VERSION; returns the version
    found. The connection is in autocommit mode; this runs one IMMEDIATE transaction."""
    found = _version(db)
    if found > SCHEMA_VERSION:
        raise StateError(
            f"state manifest {path} has schema version {found}, written by a newer "
            f"binlog-shipper (this one knows up to {SCHEMA_VERSION}): upgrade binlog-shipper, "
            "or point state_dir elsewhere"
        )
    if found == SCHEMA_VERSION:
        return found
    db.execute("BEGIN IMMEDIATE")
    try:
        found = _version(db)  # another process may have migrated while we waited
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if found == 0 and "binlogs" not in tables:
            _script(db, _BINLOGS_V1 + _OTHER_V1 + _PLACEMENTS_V2 + _BREAKERS_V3)
        else:
            version = found
            if version == 0 and "server_uuid" in _columns(db, "binlogs"):
                version = 1  # the last unversioned release
            for v in range(version, SCHEMA_VERSION):
                MIGRATIONS[v](db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return found


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])
