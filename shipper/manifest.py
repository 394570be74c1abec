r"""The host's SQLite state manifest: what is safely archived.

One row per binlog. A row's ``state`` only moves forward::

    discovered -> staged -> uploaded -> verified -> committed
                                                 \-> flagged   (CRC mismatch: kept, never used)
    discovered -> gap                             (purged by the server before it was shipped)

``committed`` is written only after the archived object was read back and its
plaintext SHA-256 matched the staged file. The database runs in WAL mode with
``synchronous=FULL`` so a committed row survives power loss; every transition
is its own transaction, so a crash leaves the row at its last durable state
and the pipeline redoes the (idempotent) steps after it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipper.errors import StateError

STATES = ("discovered", "staged", "uploaded", "verified", "committed", "flagged", "gap")
_RANK = {
    "discovered": 0,
    "staged": 1,
    "uploaded": 2,
    "verified": 3,
    "committed": 4,
    "flagged": 4,
    "gap": 4,
}
TERMINAL = frozenset({"committed", "flagged", "gap"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS binlogs (
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

_COLUMNS = (
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
        d = {c: getattr(self, c) for c in _COLUMNS}
        d["targets"] = list(self.targets)
        return d


def binlog_sequence(name: str) -> int:
    """The numeric suffix of a binlog file name (``mysql-bin.000042`` -> 42)."""
    suffix = name.rsplit(".", 1)[-1]
    if not suffix.isdigit():
        raise StateError(f"binlog name {name!r} has no numeric sequence suffix")
    return int(suffix)


class Manifest:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise StateError(f"state manifest {self.path} cannot be opened for writing: {e}") from e
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StateError(f"state manifest {self.path}: {e}") from e
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                raise StateError(f"state manifest {self.path}: commit failed: {e}") from e

    # -- binlogs --
    def get(self, name: str) -> BinlogRow | None:
        """The latest lineage of ``name``."""
        row = self._db.execute(
            "SELECT * FROM binlogs WHERE name = ? ORDER BY lineage DESC LIMIT 1", (name,)
        ).fetchone()
        return _row(row) if row else None

    def all(self) -> list[BinlogRow]:
        """Every row of every lineage, in the order they were discovered."""
        rows = self._db.execute("SELECT * FROM binlogs ORDER BY id").fetchall()
        return [_row(r) for r in rows]

    def discover(
        self, name: str, size: int | None = None, identity: str | None = None
    ) -> BinlogRow:
        """Record that the server has closed ``name``.

        Known name, same file: nothing changes. Known name whose recorded
        ``identity`` differs: the server reused the name for another file
        (RESET MASTER, a rebuilt server), so a new lineage row starts; the old
        row, and what it archived, stay as they were. The change is journalled.
        """
        now = time.time()
        insert = (
            "INSERT INTO binlogs (name, lineage, identity, sequence, state, size,"
            " discovered_at, updated_at) VALUES (?, ?, ?, ?, 'discovered', ?, ?, ?)"
        )
        with self._tx() as db:
            cur = db.execute(
                "SELECT id, lineage, identity, state FROM binlogs WHERE name = ?"
                " ORDER BY lineage DESC LIMIT 1",
                (name,),
            ).fetchone()
            if cur is None:
                db.execute(insert, (name, 0, identity, binlog_sequence(name), size, now, now))
            elif identity and cur[2] != identity and (cur[2] or cur[3] == "gap"):
                # another file under a known name; a gap's name coming back is one too
                lineage = cur[1] + 1
                db.execute(insert, (name, lineage, identity, binlog_sequence(name), size, now, now))
                detail = {"lineage": lineage, "old_identity": cur[2], "new_identity": identity}
                db.execute(
                    "INSERT INTO journal (at, binlog, kind, detail) VALUES (?, ?, ?, ?)",
                    (now, name, "lineage_change", json.dumps(detail, sort_keys=True)),
                )
            elif identity and not cur[2]:
                db.execute("UPDATE binlogs SET identity = ? WHERE id = ?", (identity, cur[0]))
        row = self.get(name)
        assert row is not None
        return row

    def advance(self, name: str, state: str, **fields: Any) -> BinlogRow:
        """Move ``name`` to ``state`` (never backwards) and set ``fields`` in one transaction."""
        if state not in _RANK:
            raise StateError(f"unknown state {state!r}")
        bad = set(fields) - set(_COLUMNS)
        if bad:
            raise StateError(f"unknown manifest columns {sorted(bad)}")
        if "targets" in fields:
            fields["targets"] = json.dumps(list(fields["targets"]))
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "SELECT state, id FROM binlogs WHERE name = ? ORDER BY lineage DESC LIMIT 1",
                (name,),
            ).fetchone()
            if cur is None:
                raise StateError(f"binlog {name} is not in the manifest")
            old, row_id = cur
            if old in TERMINAL and old != state:
                raise StateError(f"binlog {name} is already {old}; refusing to move it to {state}")
            if _RANK[state] < _RANK[old]:
                raise StateError(f"binlog {name}: state may only move forward ({old} -> {state})")
            fields["state"] = state
            fields["updated_at"] = now
            if state == "committed":
                fields.setdefault("committed_at", now)
            sets = ", ".join(f"{k} = ?" for k in fields)
            db.execute(f"UPDATE binlogs SET {sets} WHERE id = ?", (*fields.values(), row_id))
        row = self.get(name)
        assert row is not None
        return row

    def reach(self, name: str, state: str, **fields: Any) -> BinlogRow:
        """Advance to ``state`` unless the row is already there or further (a resumed step)."""
        row = self.get(name)
        if row is None:
            raise StateError(f"binlog {name} is not in the manifest")
        if _RANK[row.state] >= _RANK[state] and row.state not in TERMINAL:
            return self.advance(name, row.state, **fields)
        return self.advance(name, state, **fields)

    def update(self, name: str, **fields: Any) -> BinlogRow:
        """Set ``fields`` without changing the row's state."""
        row = self.get(name)
        if row is None:
            raise StateError(f"binlog {name} is not in the manifest")
        return self.advance(name, row.state, **fields)

    def record_attempt(self, name: str, error: str | None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE binlogs SET attempts = attempts + 1, error = ?, updated_at = ?"
                " WHERE id = (SELECT MAX(id) FROM binlogs WHERE name = ?)",
                (error, time.time(), name),
            )

    def pending(self) -> list[BinlogRow]:
        rows = self._db.execute(
            "SELECT * FROM binlogs WHERE state NOT IN ('committed', 'flagged', 'gap') ORDER BY id"
        ).fetchall()
        return [_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self._db.execute("SELECT state, COUNT(*) FROM binlogs GROUP BY state"):
            out[state] = n
        return out

    # -- journal: gaps, lineage conflicts, flagged files, purge warnings --
    def journal(self, kind: str, binlog: str | None, detail: Mapping[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO journal (at, binlog, kind, detail) VALUES (?, ?, ?, ?)",
                (time.time(), binlog, kind, json.dumps(dict(detail), sort_keys=True)),
            )

    def journal_entries(self, kind: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT at, binlog, kind, detail FROM journal"
        args: tuple[Any, ...] = ()
        if kind:
            q += " WHERE kind = ?"
            args = (kind,)
        return [
            {"at": r[0], "binlog": r[1], "kind": r[2], "detail": json.loads(r[3])}
            for r in self._db.execute(q + " ORDER BY id", args)
        ]

    # -- backups (base backups for point-in-time restore) --
    def add_backup(self, **fields: Any) -> None:
        for k in ("targets", "extra"):
            if k in fields and not isinstance(fields[k], str):
                fields[k] = json.dumps(fields[k])
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self._tx() as db:
            db.execute(f"INSERT INTO backups ({cols}) VALUES ({marks})", tuple(fields.values()))

    def backups(self) -> list[dict[str, Any]]:
        out = []
        for r in self._db.execute("SELECT * FROM backups ORDER BY started_at"):
            d = dict(r)
            d["targets"] = json.loads(d["targets"])
            d["extra"] = json.loads(d["extra"])
            out.append(d)
        return out


def _row(r: sqlite3.Row) -> BinlogRow:
    d = dict(r)
    del d["id"]
    d["targets"] = tuple(json.loads(d["targets"] or "[]"))
    return BinlogRow(**d)
