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

Beside each row, ``placements`` says where the binlog is on each target (key,
version, verified when): targets can differ, e.g. a lineage conflict on one
target only puts that target's copy under the lineage key. The schema is
versioned (``shipper/manifest_schema.py``); opening an older manifest migrates it
forward. How the file is kept -- private (0600), WAL, integrity-checked, one
connection under a lock, every SQLite error a ``StateError`` -- is
``shipper/manifest_db.py``; this module is what the rows mean.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from shipper.errors import StateError
from shipper.manifest_db import ManifestDB
from shipper.manifest_rows import (
    COLUMNS,
    RANK,
    STATES,
    TERMINAL,
    BinlogRow,
    Placement,
    placement_from_sql,
    row_from_sql,
)
from shipper.storage.breaker import BreakerState

__all__ = ["STATES", "TERMINAL", "BinlogRow", "Manifest", "Placement", "binlog_sequence"]


def binlog_sequence(name: str) -> int:
    """The numeric suffix of a binlog file name (``mysql-bin.000042`` -> 42)."""
    suffix = name.rsplit(".", 1)[-1]
    if not suffix.isdigit():
        raise StateError(f"binlog name {name!r} has no numeric sequence suffix")
    return int(suffix)


class Manifest(ManifestDB):
    """What the shipper has archived: binlog rows, placements, journal, backups, breakers."""

    # -- binlogs --
    def get(self, name: str, target: str | None = None) -> BinlogRow | None:
        """The latest lineage of ``name``; with ``target``, its key on that target."""
        rows = self._query(
            _TARGET_VIEW + " WHERE b.name = ? ORDER BY b.lineage DESC LIMIT 1", (target, name)
        )
        return _with_target_key(rows[0]) if rows else None

    def all(self, target: str | None = None) -> list[BinlogRow]:
        """Every row of every lineage, in the order they were discovered.

        With ``target`` (a configured target URL), each row's ``object_key`` is where
        that target holds it (it may differ per target: a lineage conflict on one
        target only), when the manifest has a verified placement there; otherwise
        the row's own key (the first write target's) is the best guess.
        """
        return [
            _with_target_key(r) for r in self._query(_TARGET_VIEW + " ORDER BY b.id", (target,))
        ]

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
        if state not in RANK:
            raise StateError(f"unknown state {state!r}")
        bad = set(fields) - set(COLUMNS)
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
            if RANK[state] < RANK[old]:
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
        if RANK[row.state] >= RANK[state] and row.state not in TERMINAL:
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
        rows = self._query(
            "SELECT * FROM binlogs WHERE state NOT IN ('committed', 'flagged', 'gap') ORDER BY id"
        )
        return [row_from_sql(r) for r in rows]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self._query("SELECT state, COUNT(*) FROM binlogs GROUP BY state"):
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
            for r in self._query(q + " ORDER BY id", args)
        ]

    # -- backups (base backups for point-in-time restore) --
    def add_backup(self, *, replace: bool = False, **fields: Any) -> None:
        for k in ("targets", "extra"):
            if k in fields and not isinstance(fields[k], str):
                fields[k] = json.dumps(fields[k])
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        with self._tx() as db:
            db.execute(f"{verb} INTO backups ({cols}) VALUES ({marks})", tuple(fields.values()))

    def remove_backup(self, backup_id: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM backups WHERE id = ?", (backup_id,)).rowcount > 0

    def backups(self) -> list[dict[str, Any]]:
        out = []
        for r in self._query("SELECT * FROM backups ORDER BY started_at"):
            d = dict(r)
            d["targets"] = json.loads(d["targets"])
            d["extra"] = json.loads(d["extra"])
            out.append(d)
        return out

    # -- placements: where each binlog is on each target --
    def place(
        self,
        name: str,
        target: str,
        *,
        key: str | None,
        version: str | None = None,
        envelope_size: int | None = None,
        error: str | None = None,
        lineage: int | None = None,
        pending: bool = False,
    ) -> None:
        """Record ``name``'s object on ``target``: verified at ``key``, or (with
        ``error``) an attempt that failed, or (``pending``, with ``error`` saying why)
        one that needs replication back after a failover. Neither replaces a verified
        placement."""
        now = time.time()
        with self._tx() as db:
            row_id = self._row_id(db, name, lineage)
            if error is None:
                db.execute(
                    "INSERT OR REPLACE INTO placements (binlog_id, target, object_key, version,"
                    " envelope_size, state, verified_at, error, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, 'verified', ?, NULL, ?)",
                    (row_id, target, key, version, envelope_size, now, now),
                )
            else:
                db.execute(
                    "INSERT INTO placements (binlog_id, target, object_key, state, error,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (binlog_id, target) DO UPDATE SET error = excluded.error,"
                    " state = CASE WHEN state = 'pending' THEN state ELSE excluded.state END,"
                    " updated_at = excluded.updated_at WHERE state != 'verified'",
                    (row_id, target, key, "pending" if pending else "failed", error, now),
                )

    def _row_id(self, db: sqlite3.Connection, name: str, lineage: int | None) -> int:
        if lineage is None:
            cur = db.execute(
                "SELECT id FROM binlogs WHERE name = ? ORDER BY lineage DESC LIMIT 1", (name,)
            ).fetchone()
        else:
            cur = db.execute(
                "SELECT id FROM binlogs WHERE name = ? AND lineage = ?", (name, lineage)
            ).fetchone()
        if cur is None:
            raise StateError(f"binlog {name} is not in the manifest")
        return int(cur[0])

    def placements(self, name: str, lineage: int | None = None) -> dict[str, Placement]:
        """Target URL -> placement of ``name`` (its latest lineage unless given)."""
        q = (
            "SELECT p.* FROM placements p JOIN binlogs b ON b.id = p.binlog_id WHERE b.name = ?"
            " AND b.lineage = "
            + ("?" if lineage is not None else "(SELECT MAX(lineage) FROM binlogs WHERE name = ?)")
            + " ORDER BY p.target"
        )
        rows = self._query(q, (name, lineage if lineage is not None else name))
        return {r["target"]: placement_from_sql(r) for r in rows}

    def all_placements(self) -> dict[tuple[str, int], dict[str, Placement]]:
        """(name, lineage) -> target URL -> placement, for every row that has one."""
        out: dict[tuple[str, int], dict[str, Placement]] = {}
        for r in self._query(
            "SELECT b.name, b.lineage, p.* FROM placements p JOIN binlogs b"
            " ON b.id = p.binlog_id ORDER BY p.binlog_id, p.target"
        ):
            out.setdefault((r["name"], r["lineage"]), {})[r["target"]] = placement_from_sql(r)
        return out

    def unplaced(self, target: str) -> list[BinlogRow]:
        """Committed rows without a verified placement on ``target``, oldest first."""
        rows = self._query(
            "SELECT * FROM binlogs b WHERE b.state = 'committed' AND NOT EXISTS (SELECT 1"
            " FROM placements p WHERE p.binlog_id = b.id AND p.target = ?"
            " AND p.state = 'verified') ORDER BY b.sequence, b.id",
            (target,),
        )
        return [row_from_sql(r) for r in rows]

    def backlog(self, target: str) -> list[str]:
        """Binlogs committed elsewhere while ``target``'s circuit was open and not yet
        replicated back to it (placement ``pending``), oldest first."""
        rows = self._query(
            "SELECT b.name FROM placements p JOIN binlogs b ON b.id = p.binlog_id"
            " WHERE p.target = ? AND p.state = 'pending' ORDER BY b.sequence, b.id",
            (target,),
        )
        return [r[0] for r in rows]

    # -- circuit breakers (shipper/storage/breaker.py's BreakerStore) --
    def load_breaker(self, target: str) -> BreakerState | None:
        rows = self._query(
            "SELECT state, failures, opened_at FROM breakers WHERE target = ?", (target,)
        )
        return BreakerState(rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def save_breaker(self, target: str, state: BreakerState) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO breakers (target, state, failures, opened_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?)",
                (target, state.state, state.failures, state.opened_at, time.time()),
            )


# binlog rows with the key a given target holds them under (NULL target: none)
_TARGET_VIEW = (
    "SELECT b.*, p.object_key AS target_key FROM binlogs b LEFT JOIN placements p"
    " ON p.binlog_id = b.id AND p.target = ? AND p.state = 'verified'"
)


def _with_target_key(r: sqlite3.Row) -> BinlogRow:
    d = dict(r)
    key = d.pop("target_key")
    row = row_from_sql(d)
    return replace(row, object_key=key) if key else row
