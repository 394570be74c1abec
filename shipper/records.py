"""Backup record objects: what the archive says about each base backup.

A base backup is two objects under ``{tenant}/mysql/{server_id}/backups/``:
the data (``ID.xbstream.zst.enc`` or ``ID.sql.zst.enc``) and, beside it, a
*record* (``ID.record.zst.enc``): canonical JSON sealed under the same
envelope and context rules as every other object (the context comes from the
record's key, :func:`shipper.objects.context_for_key`). The record holds what
the planner needs to use the backup, so losing the host's manifest loses
nothing: tool, times, binlog coordinates, GTID set, the data object's key,
plaintext SHA-256 and size, and the verification result.

Records are append-only: each state change of the backup (``verified`` when
taken, ``failed`` when ``backup verify`` finds it bad, ``deleted``) is a new
revision ``ID.record-N.zst.enc`` (:func:`shipper.objects.backup_record_key`),
put with the usual "must not exist" precondition; readers take the highest
revision. Nothing is replaced, so a crash between two writes loses nothing.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from shipper import envelope, objects
from shipper.archive import read_object
from shipper.errors import IntegrityError, ObjectNotFound
from shipper.keys import KeyProvider
from shipper.storage import StorageBackend

RECORD_VERSION = 1
RECORD_SUFFIX = ".record" + objects.OBJECT_SUFFIX
VERIFICATION_STATES = ("unverified", "verified", "failed", "deleted")
_RECORD_RE = re.compile(r"/backups/(?P<id>[^/.]+)\.record(?:-(?P<rev>[1-9][0-9]*))?\.zst\.enc$")


def rfc3339(ts: float | None) -> str | None:
    """Epoch seconds -> RFC 3339 UTC with microseconds (``2026-11-24T10:41:07.250000Z``)."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_rfc3339(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Verification:
    """The last verification of a backup's data object."""

    #: "unverified", "verified", "failed" or "deleted" (the data object was removed)
    state: str = "unverified"
    #: epoch seconds
    at: float | None = None
    #: what verified it: "backup take", "backup verify", a function name
    by: str = ""
    detail: str = ""


@dataclass(frozen=True)
class BackupRecord:
    id: str
    tool: str
    tenant: str
    server_id: int
    binlog_file: str
    binlog_pos: int
    gtid_set: str = ""
    #: epoch seconds; consistent_at: when the data is consistent (mysqldump: start,
    #: mariabackup: end)
    started_at: float | None = None
    finished_at: float | None = None
    consistent_at: float | None = None
    #: the data object's key; None for a backup registered without an archived object
    object_key: str | None = None
    plaintext_sha256: str | None = None
    plaintext_size: int | None = None
    envelope_size: int | None = None
    server_uuid: str = ""
    server_version: str = ""
    #: user databases the backup holds (what verification found)
    databases: tuple[str, ...] = ()
    #: where a backup registered without an archived object lives
    location: str | None = None
    verification: Verification = field(default_factory=Verification)
    #: which revision of the record this is (1 for the first)
    revision: int = 1

    def record_key(self, tenant_prefix: str) -> str:
        return objects.backup_record_key(tenant_prefix, self.server_id, self.id, self.revision)

    def next_revision(self, v: Verification) -> BackupRecord:
        """The record's next state, to be written with :func:`write_record`."""
        return replace(self, verification=v, revision=self.revision + 1)

    def manifest_row(self, targets: Sequence[str]) -> dict[str, Any]:
        """The host manifest's ``backups`` row: its cache of this record."""
        extra: dict[str, Any] = {
            "consistent_at": self.consistent_at,
            "server_id": self.server_id,
            "server_version": self.server_version,
            "envelope_size": self.envelope_size,
            "databases": list(self.databases),
            "verification": self.verification.state,
            "verified_at": self.verification.at,
            "record_revision": self.revision,
        }
        if self.location:
            extra["location"] = self.location
        return {
            "id": self.id,
            "tool": self.tool,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "binlog_file": self.binlog_file,
            "binlog_pos": self.binlog_pos,
            "gtid_set": self.gtid_set,
            "object_key": self.object_key,
            "targets": list(targets),
            "sha256": self.plaintext_sha256,
            "size": self.plaintext_size,
            "extra": extra,
        }

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("started_at", "finished_at", "consistent_at"):
            d[k] = rfc3339(d[k])
        d["verification"]["at"] = rfc3339(self.verification.at)
        d["databases"] = list(self.databases)
        d["record_version"] = RECORD_VERSION
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BackupRecord:
        if d.get("record_version") != RECORD_VERSION:
            raise IntegrityError(
                f"backup record has record_version {d.get('record_version')!r}; this "
                f"binlog-shipper reads version {RECORD_VERSION} (upgrade it)"
            )
        try:
            v = dict(d.get("verification") or {})
            v["at"] = from_rfc3339(v.get("at"))
            return cls(
                id=str(d["id"]),
                tool=str(d["tool"]),
                tenant=str(d["tenant"]),
                server_id=int(d["server_id"]),
                binlog_file=str(d["binlog_file"]),
                binlog_pos=int(d["binlog_pos"]),
                gtid_set=str(d.get("gtid_set") or ""),
                started_at=from_rfc3339(d.get("started_at")),
                finished_at=from_rfc3339(d.get("finished_at")),
                consistent_at=from_rfc3339(d.get("consistent_at")),
                object_key=d.get("object_key"),
                plaintext_sha256=d.get("plaintext_sha256"),
                plaintext_size=d.get("plaintext_size"),
                envelope_size=d.get("envelope_size"),
                server_uuid=str(d.get("server_uuid") or ""),
                server_version=str(d.get("server_version") or ""),
                databases=tuple(d.get("databases") or ()),
                location=d.get("location"),
                verification=Verification(**v),
                revision=int(d.get("revision") or 1),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise IntegrityError(f"backup record is malformed: {e}") from e


def write_record(
    store: StorageBackend,
    providers: Sequence[KeyProvider],
    record: BackupRecord,
    *,
    tenant_prefix: str,
) -> str:
    """Seal ``record`` and put it at its revision's key ("must not exist"); returns the key."""
    key = record.record_key(tenant_prefix)
    body = json.dumps(record.to_json(), sort_keys=True, indent=1).encode()
    sealed = io.BytesIO()
    context = objects.context_for_key(key)
    envelope.seal(
        io.BytesIO(body),
        sealed,
        providers=providers,
        context=context,
        metadata={"kind": "backup-record", "backup_id": record.id},
    )
    size = sealed.tell()
    sealed.seek(0)
    meta = objects.build_metadata(
        {
            "kind": "backup-record",
            "backup_id": record.id,
            "revision": record.revision,
            "tenant": record.tenant,
            "server_id": record.server_id,
            "format_version": objects.FORMAT_VERSION,
        }
    )
    store.put(key, sealed, size=size, metadata=meta)
    return key


def read_record(store: StorageBackend, key: str, providers: Sequence[KeyProvider]) -> BackupRecord:
    """Authenticate and decode the record at ``key`` (context checked against the key)."""
    data = read_object(store, key, providers)
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise IntegrityError(f"{store.url}/{key}: backup record is not JSON: {e}") from e
    rec = BackupRecord.from_json(doc)
    if key != objects.backup_record_key(rec.tenant, rec.server_id, rec.id, rec.revision):
        raise IntegrityError(
            f"{store.url}/{key}: the record inside names backup {rec.id} revision "
            f"{rec.revision} of tenant {rec.tenant}, server {rec.server_id}: not this key"
        )
    return rec


def latest_record_keys(
    store: StorageBackend, tenant_prefix: str, server_id: int | None = None
) -> dict[str, str]:
    """backup id -> key of its newest record revision, for a tenant (one server's, if given).

    One paginated listing; no object is read.
    """
    prefix = f"{tenant_prefix}/mysql/" + (f"{server_id}/" if server_id is not None else "")
    return latest_record_keys_under(store, prefix)


def latest_record_keys_under(store: StorageBackend, prefix: str) -> dict[str, str]:
    """backup id -> key of its newest record revision, for the records under ``prefix``."""
    best: dict[str, tuple[int, str]] = {}
    for info in store.list(prefix):
        m = _RECORD_RE.search(info.key)
        if m is None:
            continue
        rev = int(m["rev"] or 1)
        if m["id"] not in best or best[m["id"]][0] < rev:
            best[m["id"]] = (rev, info.key)
    return {bid: key for bid, (_rev, key) in sorted(best.items())}


def latest_record_key(
    store: StorageBackend, tenant_prefix: str, backup_id: str, server_id: int | None = None
) -> str:
    """The key of ``backup_id``'s newest record revision; ObjectNotFound if it has none.

    With ``server_id`` only that backup's own records are listed.
    """
    if server_id is not None:
        prefix = objects.backup_record_key(tenant_prefix, server_id, backup_id)
        prefix = prefix.removesuffix(objects.OBJECT_SUFFIX)
        found = latest_record_keys_under(store, prefix)
    else:
        found = latest_record_keys(store, tenant_prefix)
    if backup_id not in found:
        where = f"{store.url}/{tenant_prefix}/mysql/" + (f"{server_id}/" if server_id else "")
        raise ObjectNotFound(
            f"backup {backup_id} has no record object under {where}: check the id "
            "(binlog-shipper backup list) and the target (--from URL)"
        )
    return found[backup_id]


def latest_records(
    store: StorageBackend,
    providers: Sequence[KeyProvider],
    tenant_prefix: str,
    server_id: int | None = None,
) -> list[BackupRecord]:
    """Every backup's newest record, authenticated, oldest backup first."""
    recs = [
        read_record(store, k, providers)
        for k in latest_record_keys(store, tenant_prefix, server_id).values()
    ]
    return sorted(recs, key=lambda r: (r.consistent_at or 0, r.id))
