"""The DynamoDB catalog's items: keys, the values they hold, and how they read back.

Pure (no SDK): :mod:`shipper.catalog.dynamodb` sends these to the table.
Every item key is derived from an object key alone
(:func:`item_for_key`), so the host and both functions, each seeing one
object, land on the same item without talking. Schema: docs/catalog.md.

* partition ``pk = T#{tenant}#S#{server_id}``: one per tenant and server.
* binlog ``sk = B#{lineage}#{sequence:010d}#{YYYYMM}``: ``lineage`` is ``0`` for
  the plain key and the key's ``.lineage-X`` digest otherwise (``q-X`` for a
  quarantined copy); the month keeps apart two files of one name whose first
  events fall in different months (RESET MASTER without a key collision).
* backup ``sk = K#{backup_id}``.
* server registry ``pk = T#{tenant}``, ``sk = S#{server_id:010d}``: what
  :meth:`servers` answers with one Query.

Where each copy of an object is, and how far it has been checked, is one map
per object role and cloud (``copy_aws``, ``index_copy_gcp``,
``record_copy_aws``...): ``{bucket, key, version, checksum, state, rank, at,
by, detail}``. ``rank`` orders the states so a conditional write can refuse to
move one backwards: ``unverified`` 0 < ``verified`` 1 < ``integrity_failed`` /
``lineage_conflict`` 2 (terminal for that copy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shipper import objects
from shipper.catalog.base import in_range
from shipper.restore.model import ArchivedBinlog, BackupInfo

UNVERIFIED = "unverified"
VERIFIED = "verified"
INTEGRITY_FAILED = "integrity_failed"
LINEAGE_CONFLICT = "lineage_conflict"
#: a copy's state never moves to a lower rank; rank 2 is terminal
RANKS = {UNVERIFIED: 0, VERIFIED: 1, INTEGRITY_FAILED: 2, LINEAGE_CONFLICT: 2}
CLOUDS = ("aws", "gcp", "local")
US = 1_000_000


@dataclass(frozen=True)
class ItemRef:
    """Which item an object belongs to, and which of its copy maps it fills."""

    pk: str
    sk: str
    #: "binlog", "txindex", "quarantine", "backup" or "backup-record"
    kind: str
    tenant: str
    server_id: int
    #: copy-map prefix: "copy" (binlog, quarantine, backup data), "index_copy", "record_copy"
    slot: str

    def attr(self, cloud: str) -> str:
        if cloud not in CLOUDS:
            raise ValueError(f"unknown cloud {cloud!r}")
        return f"{self.slot}_{cloud}"


def partition(tenant: str, server_id: int) -> str:
    return f"T#{tenant}#S#{server_id}"


def registry_item(tenant: str, server_id: int) -> tuple[str, str]:
    return f"T#{tenant}", f"S#{server_id:010d}"


def item_for_key(key: str) -> ItemRef:
    """The item the object at ``key`` is recorded in (IntegrityError outside the layout)."""
    ctx = objects.context_for_key(key)
    tenant, sid, kind = ctx["tenant"], int(ctx["server_id"]), ctx["kind"]
    pk = partition(tenant, sid)
    if kind in ("binlog", "txindex"):
        seq = int(ctx["binlog_name"].rsplit(".", 1)[1])
        lineage = ctx.get("lineage", "0")
        sk = f"B#{lineage}#{seq:010d}#{ctx['month'].replace('/', '')}"
        slot = "index_copy" if kind == "txindex" else "copy"
        return ItemRef(pk, sk, kind, tenant, sid, slot)
    if kind == "quarantine":
        seq = int(ctx["binlog_name"].rsplit(".", 1)[1])
        return ItemRef(pk, f"B#q-{ctx['digest']}#{seq:010d}", kind, tenant, sid, "copy")
    slot = "record_copy" if kind == "backup-record" else "copy"
    return ItemRef(pk, f"K#{ctx['backup_id']}", kind, tenant, sid, slot)


@dataclass(frozen=True)
class CopyState:
    """One copy of one object in one cloud, and how far it has been checked."""

    cloud: str
    bucket: str
    key: str
    state: str
    at: float
    by: str
    #: S3 VersionId or GCS generation ("" when the store has none)
    version: str = ""
    #: the service's own checksum of the stored bytes (S3 SHA-256, GCS CRC32C), with its name
    checksum: str = ""
    detail: str = ""

    def to_item(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "version": self.version,
            "checksum": self.checksum,
            "state": self.state,
            "rank": RANKS[self.state],
            "at": round(self.at * US),
            "by": self.by,
            "detail": self.detail[:1000],
        }

    @classmethod
    def from_item(cls, cloud: str, d: dict[str, Any]) -> CopyState:
        return cls(
            cloud=cloud,
            bucket=str(d.get("bucket", "")),
            key=str(d.get("key", "")),
            state=str(d.get("state", UNVERIFIED)),
            at=int(d.get("at", 0)) / US,
            by=str(d.get("by", "")),
            version=str(d.get("version", "")),
            checksum=str(d.get("checksum", "")),
            detail=str(d.get("detail", "")),
        )


@dataclass(frozen=True)
class BinlogEntry:
    """What the catalog holds about one archived binlog file (not its copies)."""

    object_key: str
    binlog_name: str
    plaintext_sha256: str
    plaintext_size: int
    first_ts: int | None
    last_ts: int | None
    gtid_previous: str = ""
    gtid_set: str = ""
    file_status: str = "complete"
    server_uuid: str = ""
    #: the host manifest's word ("committed", "flagged"), when the host wrote it
    host_state: str = ""
    #: the shipper's trace id for this binlog (object metadata / envelope header), so
    #: the functions and the catalog continue the host's trace
    trace_id: str = ""

    def attributes(self) -> dict[str, Any]:
        ref = item_for_key(self.object_key)
        d: dict[str, Any] = {
            "kind": ref.kind,
            "tenant": ref.tenant,
            "server_id": ref.server_id,
            "lineage": ref.sk.split("#")[1],
            "sequence": int(self.binlog_name.rsplit(".", 1)[1]),
            "binlog_name": self.binlog_name,
            "object_key": self.object_key,
            "index_key": objects.index_key(self.object_key) if ref.kind == "binlog" else "",
            "plaintext_sha256": self.plaintext_sha256,
            "plaintext_size": self.plaintext_size,
            "gtid_previous": self.gtid_previous,
            "gtid_set": self.gtid_set,
            "file_status": self.file_status,
            "server_uuid": self.server_uuid,
        }
        if self.trace_id:
            d["trace_id"] = self.trace_id
        if self.first_ts is not None:
            d["first_event_us"] = self.first_ts * US
        if self.last_ts is not None:
            d["last_event_us"] = self.last_ts * US
        return d


@dataclass(frozen=True)
class Item:
    """One binlog or backup item as read back: its attributes and its copies."""

    attrs: dict[str, Any]
    copies: dict[str, CopyState] = field(default_factory=dict)
    index_copies: dict[str, CopyState] = field(default_factory=dict)
    record_copies: dict[str, CopyState] = field(default_factory=dict)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> Item:
        def maps(slot: str) -> dict[str, CopyState]:
            return {
                c: CopyState.from_item(c, attrs[f"{slot}_{c}"])
                for c in CLOUDS
                if f"{slot}_{c}" in attrs
            }

        return cls(attrs, maps("copy"), maps("index_copy"), maps("record_copy"))

    def copies_for(self, slot: str) -> dict[str, CopyState]:
        """The copies of the object that fills ``slot`` (see :class:`ItemRef`)."""
        return {"copy": self.copies, "index_copy": self.index_copies}.get(slot, self.record_copies)

    @property
    def state(self) -> str:
        return self.state_in(None)

    def state_in(self, cloud: str | None) -> str:
        """The item's state in the manifest's words (what the planner reads), for a
        reader fetching from ``cloud``.

        ``flagged`` for a quarantined copy; ``integrity_failed`` when every copy
        recorded failed, or the copy in the reader's cloud did; the host's word when
        it wrote one; else ``committed`` once the object and its index verified
        somewhere, ``uploaded`` before.
        """
        if self.attrs.get("kind") == "quarantine":
            return "flagged"
        states = {c.state for c in self.copies.values()}
        mine = self.copies.get(cloud) if cloud else None
        if (states and states <= {INTEGRITY_FAILED}) or (
            mine is not None and mine.state == INTEGRITY_FAILED
        ):
            return INTEGRITY_FAILED
        if self.attrs.get("host_state"):
            return str(self.attrs["host_state"])
        verified = VERIFIED in states
        indexed = any(c.state == VERIFIED for c in self.index_copies.values())
        return "committed" if verified and indexed else "uploaded"

    def to_binlog(self, cloud: str | None = None) -> ArchivedBinlog:
        a = self.attrs
        first, last = a.get("first_event_us"), a.get("last_event_us")
        state = self.state_in(cloud)
        return ArchivedBinlog(
            name=str(a["binlog_name"]),
            state=state,
            server_id=int(a["server_id"]),
            first_ts=None if first is None else int(first) // US,
            last_ts=None if last is None else int(last) // US,
            gtid_previous=a.get("gtid_previous") or None,
            gtid_end=a.get("gtid_set") or None,
            object_key=str(a["object_key"]),
            size=int(a["plaintext_size"]),
            sha256=str(a["plaintext_sha256"]),
            file_status=a.get("file_status") or "complete",
            server_uuid=a.get("server_uuid") or None,
            index_key=(a.get("index_key") or None) if state == "committed" else None,
        )

    def to_backup(self) -> BackupInfo | None:
        from shipper.records import BackupRecord

        raw = self.attrs.get("record")
        if not raw:
            return None
        rec = BackupRecord.from_json(json.loads(str(raw)))
        return None if rec.verification.state == "deleted" else BackupInfo.from_record(rec)


def sort_binlogs(
    items: list[ArchivedBinlog], since: int | None, until: int | None
) -> list[ArchivedBinlog]:
    """The archive scan's order: by sequence; quarantined, then the plain key, then lineage
    copies (written later, when the name was taken), oldest first; the last one wins."""

    def rank(b: ArchivedBinlog) -> int:
        return 0 if b.state == "flagged" else (2 if b.lineage_suffixed else 1)

    out = [b for b in items if in_range(b, since, until)]
    out.sort(key=lambda b: (b.sequence, rank(b), b.first_ts or 0))
    return out
