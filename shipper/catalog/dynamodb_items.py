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

A described binlog also holds ``plan_inputs``: what a plan reads of it, in one
string (:func:`plan_inputs`), so a plan's Query projects three attributes and
the copies' states instead of fifteen attributes.
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
PLAN_INPUTS = "plan_inputs"
#: the attributes ``plan_inputs`` holds, in this order after its format number
PLAN_FIELDS = (
    "kind",
    "server_id",
    "binlog_name",
    "first_event_us",
    "last_event_us",
    "gtid_previous",
    "gtid_set",
    "object_key",
    "index_key",
    "plaintext_size",
    "plaintext_sha256",
    "file_status",
    "server_uuid",
)
_PLAN_FORMAT = 1


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
        d[PLAN_INPUTS] = plan_inputs(d)
        return d


def plan_inputs(attrs: dict[str, Any]) -> str:
    """The ``plan_inputs`` attribute of a binlog described by ``attrs``: a JSON array,
    its format number first. Derived from the same values in the same write (under the
    same condition and ``if_not_exists``), so it never disagrees with them."""
    return json.dumps([_PLAN_FORMAT, *(attrs.get(f) for f in PLAN_FIELDS)], separators=(",", ":"))


def from_plan_inputs(text: str) -> dict[str, Any] | None:
    """The attributes ``plan_inputs`` holds, or None for a format this code does not know
    (the caller then reads the attributes themselves)."""
    try:
        v = json.loads(text)
    except ValueError:
        return None
    if not isinstance(v, list) or len(v) != len(PLAN_FIELDS) + 1 or v[0] != _PLAN_FORMAT:
        return None
    return {f: x for f, x in zip(PLAN_FIELDS, v[1:], strict=True) if x is not None}


def binlog_state(
    attrs: dict[str, Any],
    copies: dict[str, str],
    index_copies: dict[str, str],
    cloud: str | None,
) -> str:
    """A binlog item's state in the manifest's words (what the planner reads), from its
    attributes and the state of each copy of the binlog and of its index, for a reader
    fetching from ``cloud``.

    ``flagged`` for a quarantined copy; ``integrity_failed`` when every copy
    recorded failed, or the copy in the reader's cloud did; the host's word when
    it wrote one; else ``committed`` once the object and its index verified
    somewhere, ``uploaded`` before.
    """
    if attrs.get("kind") == "quarantine":
        return "flagged"
    states = set(copies.values())
    if (states and states <= {INTEGRITY_FAILED}) or (
        cloud is not None and copies.get(cloud) == INTEGRITY_FAILED
    ):
        return INTEGRITY_FAILED
    if attrs.get("host_state"):
        return str(attrs["host_state"])
    verified = VERIFIED in states
    indexed = VERIFIED in index_copies.values()
    return "committed" if verified and indexed else "uploaded"


def binlog_from_attrs(a: dict[str, Any], state: str) -> ArchivedBinlog:
    """What the planner reads of a binlog item (``a``: its attributes) in ``state``."""
    first, last = a.get("first_event_us"), a.get("last_event_us")
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
        """The item's state for a reader fetching from ``cloud`` (:func:`binlog_state`)."""
        return binlog_state(
            self.attrs,
            {c: s.state for c, s in self.copies.items()},
            {c: s.state for c, s in self.index_copies.items()},
            cloud,
        )

    def to_binlog(self, cloud: str | None = None) -> ArchivedBinlog:
        return binlog_from_attrs(self.attrs, self.state_in(cloud))

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
