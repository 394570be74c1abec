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
forward. The file and its ``-wal``/``-shm`` are private (0600).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

from shipper.errors import StateError
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
from shipper.manifest_schema import migrate
from shipper.storage.breaker import BreakerState

__all__ = ["STATES", "TERMINAL", "BinlogRow", "Manifest", "Placement", "binlog_sequence"]


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
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _private_file(self.path)
            # shared by the shipper's worker threads (pipeline/parallel.py); every use
            # of the connection holds self._lock, so statements never interleave
            self._db = sqlite3.connect(
                str(self.path), isolation_level=None, timeout=30, check_same_thread=False
            )
            self._lock = threading.RLock()
        except (sqlite3.Error, OSError) as e:
            raise StateError(f"state manifest {self.path} cannot be opened for writing: {e}") from e
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            migrate(self._db, self.path)
        except sqlite3.OperationalError as e:
            self._db.close()
            raise StateError(f"state manifest {self.path} cannot be opened for writing: {e}") from e
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise self._damaged(e) from e
        except BaseException:
            self._db.close()
            raise
        for suffix in ("-wal", "-shm"):
            # SQLite gives these the main file's mode; tighten ones an old release left
            _private_file(self.path.with_name(self.path.name + suffix), create=False)
        self._db.row_factory = sqlite3.Row

    def _damaged(self, e: sqlite3.DatabaseError) -> StateError:
        return StateError(
            f"state manifest {self.path} is damaged ({e}). Either restore it from a copy, "
            f"or move it aside (mv {self.path} {self.path}.damaged) and rerun `binlog-shipper "
            "run --once`: it re-verifies what is already archived instead of uploading it "
            "again. `binlog-shipper restore plan --from URL` reads the archive and does not "
            "need the manifest."
        )

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            with self._lock:
                return self._db.execute(sql, tuple(args)).fetchall()
        except sqlite3.OperationalError as e:
            raise StateError(f"state manifest {self.path}: {e}") from e
        except sqlite3.DatabaseError as e:
            raise self._damaged(e) from e

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield from self._tx_locked()

    def _tx_locked(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StateError(f"state manifest {self.path}: {e}") from e
        try:
            yield self._db
        except BaseException as e:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            if isinstance(e, sqlite3.OperationalError):
                raise StateError(f"state manifest {self.path}: {e}") from e
            if isinstance(e, sqlite3.DatabaseError):
                raise self._damaged(e) from e
            raise
        else:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                raise StateError(f"state manifest {self.path}: commit failed: {e}") from e

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


def _private_file(path: Path, *, create: bool = True) -> None:
    """Create ``path`` mode 0600 (or tighten the product's own file to it)."""
    if create:
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    with suppress(FileNotFoundError):
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
