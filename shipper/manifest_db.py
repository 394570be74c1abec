"""The SQLite file under the host manifest: kept private, durable and checked.

:class:`ManifestDB` is what :class:`shipper.manifest.Manifest` stands on. It
creates the file mode 0600 (and tightens the ``-wal``/``-shm`` files an older
release left readable), runs it in WAL mode with ``synchronous=FULL`` so a
committed transaction survives power loss, refuses a file whose ``quick_check``
fails, and migrates an older schema forward (``shipper/manifest_schema.py``).
One connection is shared by the shipper's worker threads (pipeline/parallel.py)
under a lock, and every SQLite error leaves here as a
:class:`~shipper.errors.StateError` naming the file: a damaged file with the
way out, anything else with SQLite's own words.

It is apart from the manifest because none of this knows what a binlog row is:
``manifest.py`` says what is recorded, this module how the file that records it
is kept.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Self

from shipper.errors import StateError
from shipper.manifest_schema import migrate


class ManifestDB:
    """One open manifest file: queries and transactions that fail as ``StateError``."""

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

    def __enter__(self) -> Self:
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


def _private_file(path: Path, *, create: bool = True) -> None:
    """Create ``path`` mode 0600 (or tighten the product's own file to it)."""
    if create:
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    with suppress(FileNotFoundError):
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
