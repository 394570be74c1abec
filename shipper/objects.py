"""Object keys and object metadata: the contract every part of the fleet reads.

Key: ``{tenant_prefix}/mysql/{server_id}/{YYYY}/{MM}/{binlog_name}.zst.enc``
with YYYY/MM from the binlog's *first event timestamp* in UTC, never the
upload time, so a retry always targets the same key. A different file that
would land on a taken key gets a lineage suffix; a file whose event checksums
fail is kept under ``quarantine/`` so it is never mistaken for a good one.

Every object's envelope carries an encryption context derived from its key
alone (:func:`context_for_key`), so writers and readers agree without talking,
and an object moved to any other key -- another tenant, server, month,
lineage, name, backup or kind -- fails to decrypt. Keys outside this layout
are refused. Object metadata is read through :class:`ObjectMeta`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from shipper.binlog import BinlogInfo
from shipper.errors import IntegrityError

OBJECT_SUFFIX = ".zst.enc"
INDEX_SUFFIX = ".idx.zst.enc"
#: "2": the envelope context binds the whole key (layout 2); "1": tenant/server/name only.
FORMAT_VERSION = "2"
#: S3 caps user metadata at 2 KB (keys + values); keep a margin for the SDK's prefixes.
METADATA_BUDGET = 1800


def utc_iso(ts: int | float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def binlog_key(tenant_prefix: str, server_id: int, first_timestamp: int, binlog_name: str) -> str:
    t = dt.datetime.fromtimestamp(first_timestamp, dt.UTC)
    return f"{tenant_prefix}/mysql/{server_id}/{t:%Y}/{t:%m}/{binlog_name}{OBJECT_SUFFIX}"


def lineage_key(key: str, plaintext_sha256: str) -> str:
    """Where a *different* file goes when ``key`` is taken (RESET MASTER, rebuilt server)."""
    base = key.removesuffix(OBJECT_SUFFIX)
    return f"{base}.lineage-{plaintext_sha256[:12]}{OBJECT_SUFFIX}"


def quarantine_key(
    tenant_prefix: str, server_id: int, binlog_name: str, plaintext_sha256: str
) -> str:
    return (
        f"{tenant_prefix}/mysql/{server_id}/quarantine/"
        f"{binlog_name}.{plaintext_sha256[:12]}{OBJECT_SUFFIX}"
    )


def backup_key(tenant_prefix: str, server_id: int, backup_id: str, tool: str) -> str:
    """Where a base backup's data object lives."""
    ext = "xbstream" if tool == "mariabackup" else "sql"
    return f"{tenant_prefix}/mysql/{server_id}/backups/{backup_id}.{ext}{OBJECT_SUFFIX}"


def backup_record_key(tenant_prefix: str, server_id: int, backup_id: str, revision: int = 1) -> str:
    """The sealed record object beside a base backup: what the planner needs to use it
    (tool, times, binlog coordinates, GTID set, plaintext SHA-256, size, verification).

    Records are append-only: a later state of the same backup (verified again,
    failed, deleted) is a new revision ``ID.record-N``; readers take the highest.
    Nothing is ever overwritten, so a crash between two writes loses nothing.
    """
    rev = "" if revision == 1 else f"-{revision}"
    return f"{tenant_prefix}/mysql/{server_id}/backups/{backup_id}.record{rev}{OBJECT_SUFFIX}"


def index_key(key: str) -> str:
    """The transaction index stored beside a binlog object."""
    return key.removesuffix(OBJECT_SUFFIX) + INDEX_SUFFIX


def build_metadata(fields: Mapping[str, object]) -> dict[str, str]:
    """Stringify ``fields`` into object metadata that fits S3's 2 KB budget.

    Values are ASCII. When the GTID set is too long it is cut, and
    ``gtid_set_truncated = "true"`` says so: the full set lives in the envelope
    header and the catalog.
    """
    meta = {k: ("" if v is None else str(v)) for k, v in fields.items()}
    for k, v in meta.items():
        meta[k] = v.encode("ascii", "replace").decode("ascii")
    size = sum(len(k) + len(v) for k, v in meta.items())
    if size > METADATA_BUDGET and "gtid_set" in meta:
        room = max(0, METADATA_BUDGET - (size - len(meta["gtid_set"])) - 40)
        meta["gtid_set"] = meta["gtid_set"][:room]
        meta["gtid_set_truncated"] = "true"
    return meta


def describe(
    info: BinlogInfo, *, tenant: str, server_id: int, server_uuid: str, trace_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(object metadata fields, envelope header metadata) for a scanned binlog.

    The object metadata is DESIGN.md's list; the header carries it too, plus what
    does not fit in 2 KB of S3 metadata (the full GTID sets, the file's status).
    """
    fields: dict[str, Any] = {
        "server_uuid": server_uuid,
        "server_id": server_id,
        "binlog_name": info.name,
        "binlog_sequence": int(info.name.rsplit(".", 1)[-1]),
        "gtid_set": info.gtid_executed_end,
        "start_timestamp": utc_iso(info.first_timestamp),
        "end_timestamp": utc_iso(info.last_timestamp),
        "compression_algorithm": "zstd",
        "plaintext_sha256": info.sha256,
        "plaintext_size": info.size,
        "format_version": FORMAT_VERSION,
        "tenant": tenant,
        "trace_id": trace_id,
    }
    if info.status != "complete":
        fields["binlog_status"] = info.status
    header = {
        **fields,
        "gtid_previous": info.gtid_previous,
        "gtid_executed_end": info.gtid_executed_end,
        "server_version": info.server_version,
        "file_status": info.status,
        "crc_error_at": info.crc_error_at,
        "truncated_at": info.truncated_at,
    }
    return fields, header


# ---------------------------------------------------------------- encryption context

#: The ``layout`` value of contexts that bind the whole key (format_version "2").
CONTEXT_LAYOUT = "2"

_KEY_RE = re.compile(r"^(?P<tenant>.+?)/mysql/(?P<sid>\d+)/(?P<rest>.+)$")
_NAME = r"(?P<name>[^/]+?\.\d+)"  # binlog names end in a sequence number
_BINLOG_RE = re.compile(
    r"^(?P<year>\d{4})/(?P<month>0[1-9]|1[0-2])/"
    + _NAME
    + r"(?:\.lineage-(?P<lineage>[0-9a-f]{12}))?(?P<idx>\.idx)?\.zst\.enc$"
)
_QUARANTINE_RE = re.compile(r"^quarantine/" + _NAME + r"\.(?P<digest>[0-9a-f]{12})\.zst\.enc$")
_BACKUP_RE = re.compile(r"^backups/(?P<id>[^/.]+)\.(?P<format>xbstream|sql)\.zst\.enc$")
_RECORD_RE = re.compile(r"^backups/(?P<id>[^/.]+)\.record(?:-(?P<rev>[2-9]|[1-9]\d+))?\.zst\.enc$")


def context_for_key(key: str) -> dict[str, str]:
    """The encryption context a new object at ``key`` is sealed with (layout 2).

    It binds every part of the key that identifies the object: tenant, server
    id, kind (binlog, txindex, quarantine, backup, backup-record), binlog name
    and month (``YYYY/MM``) and lineage suffix, or backup id and format, or
    record revision. Writers seal with it, readers expect it
    (:func:`accepted_contexts`), so an object copied to another month, lineage,
    tenant or name fails to decrypt instead of being taken for what its new
    place claims. A key outside the layout raises IntegrityError: nothing is
    read or written where the layout does not say what it is.
    """
    m = _KEY_RE.match(key)
    rest = m["rest"] if m else ""
    base = {"layout": CONTEXT_LAYOUT, "tenant": m["tenant"], "server_id": m["sid"]} if m else {}
    if b := _BINLOG_RE.match(rest):
        ctx = {
            **base,
            "kind": "txindex" if b["idx"] else "binlog",
            "month": f"{b['year']}/{b['month']}",
            "binlog_name": b["name"],
        }
        return {**ctx, "lineage": b["lineage"]} if b["lineage"] else ctx
    if q := _QUARANTINE_RE.match(rest):
        return {**base, "kind": "quarantine", "binlog_name": q["name"], "digest": q["digest"]}
    if d := _BACKUP_RE.match(rest):
        return {**base, "kind": "backup", "backup_id": d["id"], "format": d["format"]}
    if r := _RECORD_RE.match(rest):
        return {**base, "kind": "backup-record", "backup_id": r["id"], "revision": r["rev"] or "1"}
    raise IntegrityError(
        f"object key {key!r} is outside the archive layout "
        "({tenant}/mysql/{server_id}/{YYYY}/{MM}/NAME[.lineage-X][.idx].zst.enc, "
        ".../quarantine/NAME.X.zst.enc or .../backups/ID.{xbstream,sql,record[-N]}.zst.enc); "
        "refusing to read or write it"
    )


def v1_context_for_key(key: str) -> dict[str, str]:
    """The context the previous release (format_version "1") sealed ``key`` with.

    It binds only tenant, server id and binlog name (plus ``kind: txindex`` for
    an index) or backup id: a v1 object copied to another month or lineage of
    the same name still decrypts. Only new (v2) objects are bound to the whole key.
    """
    ctx = context_for_key(key)
    base = {"tenant": ctx["tenant"], "server_id": ctx["server_id"]}
    if "backup_id" in ctx:
        return {**base, "backup_id": ctx["backup_id"]}
    v1 = {**base, "binlog_name": ctx["binlog_name"]}
    return {**v1, "kind": "txindex"} if ctx["kind"] == "txindex" else v1


def accepted_contexts(key: str) -> tuple[dict[str, str], ...]:
    """The contexts a reader accepts at ``key``: the v2 one, then the exact v1 shape
    (so an archive written by the previous release stays restorable)."""
    return context_for_key(key), v1_context_for_key(key)


# ---------------------------------------------------------------- metadata view


def _int_or_none(v: str | None) -> int | None:
    try:
        return int(v) if v not in (None, "") else None
    except ValueError:
        return None


@dataclass(frozen=True)
class ObjectMeta:
    """A typed, read-only view of an object's metadata (DESIGN.md's list).

    Metadata is not authenticated: it says what the object claims to be, and
    readers check the claim against the envelope (context, trailer hash).
    Absent or unparseable values are "" / None; ``raw`` keeps everything.
    """

    kind: str = ""
    tenant: str = ""
    server_uuid: str = ""
    server_id: int | None = None
    binlog_name: str = ""
    binlog_sequence: int | None = None
    binlog_status: str = ""
    gtid_set: str = ""
    gtid_set_truncated: bool = False
    start_timestamp: str = ""
    end_timestamp: str = ""
    compression_algorithm: str = ""
    plaintext_sha256: str = ""
    plaintext_size: int | None = None
    format_version: str = ""
    trace_id: str = ""
    #: a transaction index: the SHA-256 of the binlog it indexes
    binlog_plaintext_sha256: str = ""
    backup_id: str = ""
    revision: int | None = None
    raw: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ObjectMeta:
        # S3 lower-cases metadata keys; ours are lower case already.
        m = {str(k).lower(): str(v) for k, v in metadata.items()}
        kind = m.get("kind") or ("binlog" if m.get("binlog_sequence") else "")
        return cls(
            kind=kind,
            tenant=m.get("tenant", ""),
            server_uuid=m.get("server_uuid", ""),
            server_id=_int_or_none(m.get("server_id")),
            binlog_name=m.get("binlog_name", ""),
            binlog_sequence=_int_or_none(m.get("binlog_sequence")),
            binlog_status=m.get("binlog_status", ""),
            gtid_set=m.get("gtid_set", ""),
            gtid_set_truncated=m.get("gtid_set_truncated") == "true",
            start_timestamp=m.get("start_timestamp", ""),
            end_timestamp=m.get("end_timestamp", ""),
            compression_algorithm=m.get("compression_algorithm", ""),
            plaintext_sha256=m.get("plaintext_sha256", ""),
            plaintext_size=_int_or_none(m.get("plaintext_size")),
            format_version=m.get("format_version", ""),
            trace_id=m.get("trace_id", ""),
            binlog_plaintext_sha256=m.get("binlog_plaintext_sha256", ""),
            backup_id=m.get("backup_id", ""),
            revision=_int_or_none(m.get("revision")),
            raw=MappingProxyType(m),
        )
