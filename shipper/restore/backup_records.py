"""``backup verify``, ``backup delete`` and re-recording from the archive, over record objects.

The record objects in the archive (:mod:`shipper.records`) are the backup
catalogue; the manifest's ``backups`` table is the host's cache of them. Each
operation here reads a backup's newest record from one target, acts on that
target, and appends the next revision there: ``verified``/``failed`` after a
verification, ``deleted`` after the data object is removed. Records are never
deleted: they are the audit trail of what happened to every backup.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from shipper import envelope, objects
from shipper.errors import IntegrityError, ObjectNotFound, RestoreError
from shipper.keys.base import KeyProvider
from shipper.records import (
    BackupRecord,
    Verification,
    latest_record_key,
    read_record,
    write_record,
)
from shipper.restore import contents
from shipper.restore.backup import parse_mysqldump_header, parse_xtrabackup_info
from shipper.restore.contents import DumpScanner, XbstreamScanner
from shipper.storage.base import StorageBackend


def find_record(
    store: StorageBackend,
    providers: Sequence[KeyProvider],
    tenant_prefix: str,
    backup_id: str,
    server_id: int | None = None,
) -> BackupRecord:
    """``backup_id``'s newest record on ``store``, authenticated against its key."""
    return read_record(
        store, latest_record_key(store, tenant_prefix, backup_id, server_id), providers
    )


class _ScanSink:
    """Where ``backup verify`` decrypts to: the content scanner, and nothing on disk."""

    def __init__(self, scanner: DumpScanner | XbstreamScanner) -> None:
        self.scanner = scanner

    def write(self, b: bytes) -> int:
        self.scanner.feed(bytes(b))
        return len(b)


def inspect_data(store: StorageBackend, providers: Sequence[KeyProvider], rec: BackupRecord) -> str:
    """Every problem with ``rec``'s data object on ``store`` ("" when there is none).

    Authenticates every chunk (the contexts the object's key implies, including the
    previous release's: :func:`shipper.objects.accepted_contexts`), compares
    the plaintext's SHA-256 and size with the record, and reads what the backup
    holds: the dump header's coordinates, the xbstream's members and
    ``xtrabackup_info``, and the user databases the backup held when taken.
    """
    assert rec.object_key is not None
    scanner: DumpScanner | XbstreamScanner = (
        XbstreamScanner() if rec.tool == "mariabackup" else DumpScanner()
    )
    try:
        with contextlib.closing(store.open(rec.object_key)) as src:
            res = envelope.unseal(
                src,
                _ScanSink(scanner),  # type: ignore[arg-type]
                providers=providers,
                expected_context=objects.accepted_contexts(rec.object_key),
            )
    except ObjectNotFound:
        return f"the data object {store.url}/{rec.object_key} is missing"
    except IntegrityError as e:
        return f"the data object does not authenticate: {e}"
    problems = []
    if res.plaintext_sha256 != rec.plaintext_sha256 or (
        rec.plaintext_size is not None and res.plaintext_size != rec.plaintext_size
    ):
        problems.append(
            f"its plaintext is {res.plaintext_size} bytes with sha256 {res.plaintext_sha256}; "
            f"the record says {rec.plaintext_size} bytes, {rec.plaintext_sha256}"
        )
    problems += contents.check(rec.tool, scanner, set(rec.databases))
    try:
        if isinstance(scanner, XbstreamScanner):
            coords, _ = parse_xtrabackup_info(scanner.text("xtrabackup_info"))
        else:
            coords = parse_mysqldump_header(scanner.header)
    except RestoreError as e:
        problems.append(f"its binlog coordinates do not parse: {e}")
    else:
        if (coords.binlog_file, coords.binlog_pos) != (rec.binlog_file, rec.binlog_pos):
            problems.append(
                f"it is consistent with {coords.binlog_file}:{coords.binlog_pos}, "
                f"the record says {rec.binlog_file}:{rec.binlog_pos}"
            )
    return "; ".join(problems)


@dataclass(frozen=True)
class Outcome:
    """What an operation did on one target: the record revision it wrote (or found)."""

    url: str
    record: BackupRecord
    record_key: str
    detail: str = ""


def verify(
    store: StorageBackend,
    providers: Sequence[KeyProvider],
    tenant_prefix: str,
    backup_id: str,
    server_id: int | None = None,
    *,
    by: str = "backup verify",
) -> Outcome:
    """Verify ``backup_id`` on ``store`` and append a ``verified`` or ``failed`` revision."""
    rec = find_record(store, providers, tenant_prefix, backup_id, server_id)
    if rec.verification.state == "deleted":
        raise ObjectNotFound(
            f"backup {backup_id} was deleted ({rec.verification.detail or 'record revision '}"
            f"{rec.revision} on {store.url}): there is nothing to verify"
        )
    if rec.object_key is None:
        raise RestoreError(
            f"backup {backup_id} was registered without an archived object (it lives at "
            f"{rec.location or 'an unknown place'}): backup verify checks archived backups only"
        )
    problem = inspect_data(store, providers, rec)
    v = Verification(
        "failed" if problem else "verified",
        time.time(),
        by,
        problem or f"every chunk authenticated, sha256 matches, holds {', '.join(rec.databases)}",
    )
    nxt = rec.next_revision(v)
    key = write_record(store, providers, nxt, tenant_prefix=tenant_prefix)
    return Outcome(store.url, nxt, key, v.detail)


def delete(
    store: StorageBackend,
    providers: Sequence[KeyProvider],
    tenant_prefix: str,
    backup_id: str,
    server_id: int | None = None,
) -> Outcome:
    """Delete ``backup_id``'s data object from ``store`` and append a ``deleted`` revision.

    The record revisions stay: they are the audit trail. An already deleted
    backup is left as it is (its last revision is returned).
    """
    rec = find_record(store, providers, tenant_prefix, backup_id, server_id)
    key = rec.record_key(tenant_prefix)
    if rec.verification.state == "deleted":
        return Outcome(store.url, rec, key, "already deleted")
    if rec.object_key is None:
        detail = "no archived object (registered from a local copy, which is left as it is)"
    else:
        try:
            store.stat(rec.object_key)
        except ObjectNotFound:
            detail = f"data object {rec.object_key} was already gone"
        else:
            store.delete(rec.object_key)
            detail = f"deleted data object {rec.object_key}"
    nxt = rec.next_revision(Verification("deleted", time.time(), "backup delete", detail))
    key = write_record(store, providers, nxt, tenant_prefix=tenant_prefix)
    return Outcome(store.url, nxt, key, detail)
