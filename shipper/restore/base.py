"""Restoring the base backup: a mariabackup copy into a datadir, or a dump into a server.

The backup object reaches these functions already spooled and authenticated
(:mod:`shipper.restore.sources`); they decrypt it a second time from the spool,
straight into ``mbstream -x`` or the ``mariadb`` client, so the plaintext never
lands on disk and nothing unauthenticated is ever applied.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, cast

from shipper.errors import RestoreError
from shipper.restore.tools import Conn, check_call, find_tool, run_sql

#: what a fresh server holds; ``test`` counts as a user database only when it has tables
SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
#: sink -> None: writes the backup's plaintext into sink
Unseal = Callable[[IO[bytes]], None]


def user_databases(conn: Conn) -> list[str]:
    """The databases on ``conn`` beyond the system ones (and an empty ``test``)."""
    rows = run_sql(
        conn,
        "SELECT s.schema_name, COUNT(t.table_name) FROM information_schema.schemata s "
        "LEFT JOIN information_schema.tables t ON t.table_schema = s.schema_name "
        "GROUP BY s.schema_name ORDER BY s.schema_name",
    )
    return [
        name
        for name, tables in rows
        if name not in SYSTEM_SCHEMAS and not (name == "test" and tables == "0")
    ]


def private_log(path: Path) -> Path:
    """``path``, created 0600 if new: tool output can quote data and settings."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    return path


def clear_dir(path: Path) -> None:
    """Remove everything inside ``path`` (a datadir this restore created), keep ``path``."""
    for p in path.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def restore_physical(
    unseal: Unseal | None, location: Path | None, work_dir: Path, datadir: Path
) -> None:
    """mbstream -x (from ``unseal``, or copy ``location``), prepare, move back into ``datadir``."""
    work = work_dir / "base"
    logf = private_log(work_dir / "mariabackup.log")
    shutil.rmtree(work, ignore_errors=True)
    if unseal is None:
        shutil.copytree(location or Path("-"), work)
        work.chmod(0o700)
    else:
        work.mkdir(mode=0o700)  # the backup's plaintext files
        with logf.open("ab") as err:
            proc = subprocess.Popen(
                [find_tool("mbstream", "mariadb-mbstream"), "-x", "-C", str(work)],
                stdin=subprocess.PIPE,
                stderr=err,
            )
            assert proc.stdin is not None
            try:
                unseal(proc.stdin)
            finally:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
                rc = proc.wait()
        if rc != 0:
            raise RestoreError(f"mbstream -x failed (exit {rc}); see {logf}")
    mb = find_tool("mariabackup", "mariadb-backup")
    check_call([mb, "--prepare", f"--target-dir={work}"], what="mariabackup --prepare", log=logf)
    datadir.parent.mkdir(parents=True, exist_ok=True)
    check_call(
        [mb, "--move-back", f"--target-dir={work}", f"--datadir={datadir}"],
        what="mariabackup --move-back",
        log=logf,
    )
    shutil.rmtree(work, ignore_errors=True)


def load_dump(
    unseal: Unseal | None,
    location: Path | None,
    conn: Conn,
    work_dir: Path,
    backup_id: str,
    skip_schemas: Iterable[str] = (),
) -> None:
    """Feed the dump to the ``mariadb`` client on ``conn``, leaving out ``skip_schemas``."""
    logf = private_log(work_dir / "load.log")
    client = find_tool("mariadb", "mysql")
    skip = frozenset(skip_schemas)
    with conn.args() as a, logf.open("ab") as out:
        proc = subprocess.Popen(
            [client, *a, "--binary-mode"],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdin is not None
        sink: IO[bytes] = proc.stdin
        filt = SkipSchemas(proc.stdin, skip) if skip else None
        try:
            if unseal is not None:
                unseal(cast(IO[bytes], filt) if filt is not None else sink)
            else:
                with (location or Path("-")).open("rb") as f:
                    while chunk := f.read(1 << 20):
                        (filt or sink).write(chunk)
            if filt is not None:
                filt.close()
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            rc = proc.wait()
    if rc != 0:
        tail = logf.read_bytes()[-2000:].decode(errors="replace")
        raise RestoreError(f"loading the dump of backup {backup_id} failed (exit {rc}):\n{tail}")


class SkipSchemas:
    """A write-only stream passing a mariadb-dump script on without some databases.

    mariadb-dump writes each database as a section opened by
    ``-- Current Database: `name``` and ``USE `name`;`` lines, and escapes
    newlines inside values, so every line starts a statement or a comment: a
    section is skipped from its opening line to the next section's. Used to
    keep a ``--target-dsn`` server's own ``mysql`` schema (its accounts) while
    a dump of another server is loaded into it.
    """

    _MARKERS = (b"-- Current Database: `", b"USE `")

    def __init__(self, sink: IO[bytes], skip: frozenset[str]) -> None:
        self.sink = sink
        self.skip = skip
        self.skipping = False
        self.partial = b""

    def write(self, b: bytes) -> int:
        data = self.partial + bytes(b)
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        out = []
        for line in data[:cut].splitlines(keepends=True):
            if line.startswith(self._MARKERS):
                self.skipping = _schema_of(line) in self.skip
            if not self.skipping:
                out.append(line)
        if out:
            self.sink.write(b"".join(out))
        return len(b)

    def close(self) -> None:
        if self.partial and not self.skipping:
            self.sink.write(self.partial)
        self.partial = b""


def _schema_of(line: bytes) -> str:
    start = line.index(b"`") + 1
    end = line.rindex(b"`")
    return line[start:end].replace(b"``", b"`").decode(errors="replace")
