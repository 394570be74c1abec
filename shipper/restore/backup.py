"""Base backups: take one (streamed through the envelope into the archive) or register one.

``take`` runs ``mariabackup --backup --stream=xbstream`` or ``mariadb-dump
--single-transaction --master-data=2 --gtid`` and pipes its output straight
into the envelope (zstd + AES-GCM), so plaintext never lands on disk; the
sealed object is spooled to the state dir, uploaded with the usual
if-none-match precondition, read back and verified. The binlog coordinates
the data is consistent with come from the tool itself (``xtrabackup_info``,
the dump's ``CHANGE MASTER TO`` comment), and the GTID state from the
server's own ``BINLOG_GTID_POS()`` of those coordinates.

A backup a DBA cannot restore is worse than none, because the planner would
pick it. So ``take`` refuses before the tool starts when the account lacks a
privilege it needs (:mod:`shipper.restore.preflight`), and refuses *before
anything is uploaded* when the finished backup does not hold every user
database the server has (the dump's ``CREATE DATABASE``/``USE`` lines, the
xbstream's member names: :mod:`shipper.restore.contents`, read as the bytes
pass). Only a backup that was read back and verified on every target gets its
record object (:mod:`shipper.records`), written beside it on every target.

Object key: ``{tenant_prefix}/mysql/{server_id}/backups/{id}.{xbstream|sql}.zst.enc``;
its record: ``{id}.record.zst.enc``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from shipper import envelope, objects
from shipper.archive import verify_object
from shipper.errors import IntegrityError, RestoreError
from shipper.keys.base import KeyProvider
from shipper.records import BackupRecord, Verification, write_record
from shipper.restore import contents
from shipper.restore.contents import DumpScanner, XbstreamScanner, user_databases
from shipper.restore.preflight import check_ready, probe_server
from shipper.restore.store import HashingReader, put_file
from shipper.restore.tools import Conn, find_tool, scalar
from shipper.storage.base import StorageBackend

TOOLS = ("mariabackup", "mysqldump")
_CHANGE_MASTER = re.compile(
    r"CHANGE MASTER TO .*?MASTER_LOG_FILE='(?P<file>[^']+)',\s*MASTER_LOG_POS=(?P<pos>\d+)"
)
_GTID_SLAVE = re.compile(r"gtid_slave_pos\s*=\s*'(?P<gtid>[^']*)'")
_XB_BINLOG = re.compile(
    r"filename '(?P<file>[^']+)', position '(?P<pos>\d+)'"
    r"(?:, GTID of the last change '(?P<gtid>[^']*)')?"
)


@dataclass(frozen=True)
class Coordinates:
    """The binlog position (and GTID state) a backup's data is consistent with."""

    binlog_file: str
    binlog_pos: int
    gtid_set: str = ""


def parse_mysqldump_header(text: str) -> Coordinates:
    m = _CHANGE_MASTER.search(text)
    if not m:
        raise RestoreError(
            "no 'CHANGE MASTER TO MASTER_LOG_FILE=..., MASTER_LOG_POS=...' in "
            "the dump header: take dumps with --master-data=2 (or "
            "--source-data=2) so the binlog position is recorded"
        )
    g = _GTID_SLAVE.search(text)
    return Coordinates(m["file"], int(m["pos"]), g["gtid"] if g else "")


def parse_xtrabackup_binlog_info(text: str) -> Coordinates:
    """``mysql-bin.000003<TAB>1234[<TAB>0-1-100]`` (the file mariabackup writes)."""
    parts = text.strip().split("\t") if "\t" in text else text.split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise RestoreError(
            f"xtrabackup_binlog_info: expected 'FILE<TAB>POS[<TAB>GTID]', got "
            f"{text.strip()[:200]!r}"
        )
    return Coordinates(parts[0], int(parts[1]), parts[2].strip() if len(parts) > 2 else "")


def parse_xtrabackup_info(text: str) -> tuple[Coordinates, dict[str, str]]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition(" = ")
        if sep:
            fields[k.strip()] = v.strip()
    m = _XB_BINLOG.search(fields.get("binlog_pos", ""))
    if not m:
        raise RestoreError(
            "xtrabackup_info has no binlog_pos line: was binary logging on "
            "when the backup was taken?"
        )
    return Coordinates(m["file"], int(m["pos"]), m["gtid"] or ""), fields


def parse_metadata_file(path: Path) -> tuple[str, Coordinates]:
    """Recognise ``xtrabackup_binlog_info``, ``xtrabackup_info`` or a dump; (tool, coords)."""
    try:
        with path.open("rb") as f:
            head = f.read(1 << 20).decode(errors="replace")
    except OSError as e:
        raise RestoreError(f"{path}: {e.strerror}") from e
    if path.name == "xtrabackup_info" or "tool_name = " in head:
        return "mariabackup", parse_xtrabackup_info(head)[0]
    if path.name == "xtrabackup_binlog_info":
        return "mariabackup", parse_xtrabackup_binlog_info(head)
    return "mysqldump", parse_mysqldump_header(head)


def new_backup_id(tool: str, now: float | None = None) -> str:
    t = dt.datetime.fromtimestamp(now if now is not None else time.time(), dt.UTC)
    return f"{t:%Y%m%dT%H%M%SZ}-{tool}-{secrets.token_hex(3)}"


def _gtid_of(conn: Conn, c: Coordinates) -> str:
    if c.gtid_set:
        return c.gtid_set
    try:
        return scalar(conn, f"SELECT BINLOG_GTID_POS('{c.binlog_file}', {c.binlog_pos})") or ""
    except Exception:  # MySQL has no BINLOG_GTID_POS; the dump header carries GTIDs there
        return ""


class _Tap:
    """A reader that shows every piece it passes on to a content scanner.

    A scanner that finds the stream damaged stops scanning but never stops the
    read: the tool must be drained to its end, or it would block on a full pipe.
    """

    def __init__(self, src: BinaryIO, scanner: DumpScanner | XbstreamScanner) -> None:
        self.src = src
        self.scanner = scanner
        self.error: IntegrityError | None = None

    def read(self, n: int = -1) -> bytes:
        b = self.src.read(n)
        if self.error is None:
            try:
                self.scanner.feed(b)
            except IntegrityError as e:
                self.error = e
        return b


def take(
    tool: str,
    conn: Conn,
    stores: Sequence[StorageBackend],
    providers: Sequence[KeyProvider],
    *,
    tenant: str,
    tenant_prefix: str,
    work_dir: Path,
    level: int = 3,
    chunk_size: int = 1 << 20,
    databases: Sequence[str] = (),
) -> dict[str, Any]:
    """Take a base backup with ``tool``, archive it with its record, return its manifest row.

    Refused before the tool starts when the user lacks a privilege it needs
    (:func:`check_ready`), and before anything is uploaded when the backup
    does not hold every user database the server has (:func:`contents.check`).
    """
    if tool not in TOOLS:
        raise RestoreError(f"--tool must be one of {', '.join(TOOLS)}, got {tool!r}")
    if not stores:
        raise RestoreError("no archive target configured")
    facts = probe_server(conn)
    expected = check_ready(tool, facts, databases)
    server_id, version = facts.server_id, facts.version
    started = time.time()
    backup_id = new_backup_id(tool, started)
    key = objects.backup_key(tenant_prefix, server_id, backup_id, tool)
    work_dir.mkdir(parents=True, exist_ok=True)
    spool = work_dir / f"{backup_id}.spool"
    log = work_dir / f"{backup_id}.log"
    lsn_dir = work_dir / f"{backup_id}.meta"
    context = objects.context_for_key(key)
    header_meta = {
        "kind": "backup",
        "tool": tool,
        "backup_id": backup_id,
        "server_id": server_id,
        "server_version": version,
    }
    scanner: DumpScanner | XbstreamScanner = (
        XbstreamScanner() if tool == "mariabackup" else DumpScanner()
    )
    try:
        with conn.args() as a:
            if tool == "mariabackup":
                lsn_dir.mkdir(exist_ok=True)
                cmd = [
                    find_tool("mariabackup", "mariadb-backup"),
                    *a,
                    "--backup",
                    "--stream=xbstream",
                    f"--target-dir={work_dir / (backup_id + '.tmp')}",
                    f"--extra-lsndir={lsn_dir}",
                ]
            else:
                cmd = [
                    find_tool("mariadb-dump", "mysqldump"),
                    *a,
                    "--single-transaction",
                    "--master-data=2",
                    "--gtid",
                    "--routines",
                    "--events",
                    "--triggers",
                    "--hex-blob",
                    "--flush-privileges",
                ]
                cmd += ["--databases", *databases] if databases else ["--all-databases"]
            with log.open("wb") as err, spool.open("wb") as out:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
                assert proc.stdout is not None
                tap = _Tap(cast(BinaryIO, proc.stdout), scanner)
                reader = HashingReader(cast(BinaryIO, tap))
                try:
                    res = envelope.seal(
                        cast(BinaryIO, reader),
                        out,
                        providers=providers,
                        context=context,
                        metadata=header_meta,
                        level=level,
                        chunk_size=chunk_size,
                    )
                except BaseException:
                    proc.kill()  # nothing reads its output any more
                    raise
                finally:
                    rc = proc.wait()
        if rc != 0:
            tail = log.read_bytes()[-2000:].decode(errors="replace")
            raise RestoreError(f"{os.path.basename(cmd[0])} failed (exit {rc}); see {log}:\n{tail}")
        problems = [str(tap.error)] if tap.error else contents.check(tool, scanner, expected)
        if problems:
            raise RestoreError(
                f"backup take --tool {tool} refused: the backup {backup_id} is incomplete: "
                + "; ".join(problems)
                + f" (the server has {', '.join(sorted(expected)) or 'no user database'}). "
                f"Nothing was uploaded or recorded; check the user's privileges "
                f"(SHOW GRANTS) and the tool's log, {log}"
            )
        finished = time.time()
        if tool == "mariabackup":
            coords, _ = parse_xtrabackup_info((lsn_dir / "xtrabackup_info").read_text())
            consistent = finished
        else:
            coords = parse_mysqldump_header(bytes(reader.head).decode(errors="replace"))
            consistent = started
        gtid = _gtid_of(conn, coords)
        sha = reader.h.hexdigest()
        meta = objects.build_metadata(
            {
                "kind": "backup",
                "tool": tool,
                "backup_id": backup_id,
                "server_id": server_id,
                "binlog_file": coords.binlog_file,
                "binlog_pos": coords.binlog_pos,
                "gtid_set": gtid,
                "plaintext_sha256": sha,
                "plaintext_size": reader.n,
                "compression_algorithm": "zstd",
                "format_version": objects.FORMAT_VERSION,
                "tenant": tenant,
                "start_timestamp": objects.utc_iso(started),
                "end_timestamp": objects.utc_iso(finished),
            }
        )
        for store in stores:
            put_file(store, key, spool, meta)
            verify_object(store, key, providers, sha, reader.n)
        found = sorted(user_databases(scanner.databases))
        record = BackupRecord(
            id=backup_id,
            tool=tool,
            tenant=tenant,
            server_id=server_id,
            binlog_file=coords.binlog_file,
            binlog_pos=coords.binlog_pos,
            gtid_set=gtid,
            started_at=started,
            finished_at=finished,
            consistent_at=consistent,
            object_key=key,
            plaintext_sha256=sha,
            plaintext_size=reader.n,
            envelope_size=res.envelope_size,
            server_version=version,
            databases=tuple(found),
            verification=Verification(
                "verified",
                time.time(),
                "backup take",
                f"read back from every target: sha256 matches; holds {', '.join(found) or '-'}",
            ),
        )
        for store in stores:
            write_record(store, providers, record, tenant_prefix=tenant_prefix)
        log.unlink(missing_ok=True)  # kept only when the tool failed
    finally:
        spool.unlink(missing_ok=True)
        shutil.rmtree(lsn_dir, ignore_errors=True)
        shutil.rmtree(work_dir / f"{backup_id}.tmp", ignore_errors=True)
    return record.manifest_row([s.url for s in stores])


def register(
    path: Path,
    *,
    tenant: str,
    server_id: int,
    tool: str | None = None,
    location: str | None = None,
    backup_id: str | None = None,
    consistent_at: float | None = None,
) -> BackupRecord:
    """The record of a backup taken elsewhere, from its metadata file (``unverified``:
    there is no archived object to verify; it lives at ``location``)."""
    found_tool, coords = parse_metadata_file(path)
    tool = tool or found_tool
    if tool not in TOOLS:
        raise RestoreError(f"--tool must be one of {', '.join(TOOLS)}, got {tool!r}")
    when = consistent_at if consistent_at is not None else path.stat().st_mtime
    bid = backup_id or new_backup_id(tool, when)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", bid):
        raise RestoreError(f"--id {bid!r}: use letters, digits, '-' and '_' only")
    return BackupRecord(
        id=bid,
        tool=tool,
        tenant=tenant,
        server_id=server_id,
        binlog_file=coords.binlog_file,
        binlog_pos=coords.binlog_pos,
        gtid_set=coords.gtid_set,
        started_at=when,
        finished_at=when,
        consistent_at=when,
        location=location or str(path.parent),
        verification=Verification("unverified", time.time(), "backup register", f"from {path}"),
    )
