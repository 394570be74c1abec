"""Object keys and object metadata: the contract every part of the fleet reads.

Key: ``{tenant_prefix}/mysql/{server_id}/{YYYY}/{MM}/{binlog_name}.zst.enc``
with YYYY/MM from the binlog's *first event timestamp* in UTC, never the
upload time, so a retry always targets the same key. A different file that
would land on a taken key gets a lineage suffix; a file whose event checksums
fail is kept under ``quarantine/`` so it is never mistaken for a good one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from shipper.binlog import BinlogInfo

OBJECT_SUFFIX = ".zst.enc"
INDEX_SUFFIX = ".idx.zst.enc"
FORMAT_VERSION = "1"
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


_KEY_RE = re.compile(r"^(?P<tenant>.+?)/mysql/(?P<sid>\d+)/(?P<rest>.+)$")
_BINLOG_FILE_RE = re.compile(
    r"^(?P<name>.+?)(?P<lineage>\.lineage-[0-9a-f]{12})?(?P<idx>\.idx)?\.zst\.enc$"
)
_QUARANTINE_FILE_RE = re.compile(r"^(?P<name>.+)\.[0-9a-f]{12}\.zst\.enc$")


def context_for_key(key: str) -> dict[str, str] | None:
    """The encryption context an object at ``key`` must carry, from where it is.

    Readers pass it as the envelope's ``expected_context``, so an object copied
    under another tenant's prefix (or renamed to another binlog) fails to
    decrypt instead of being taken for what its new place claims. None for a
    key outside the layout.
    """
    m = _KEY_RE.match(key)
    if not m:
        return None
    base = {"tenant": m["tenant"], "server_id": m["sid"]}
    rest = m["rest"].split("/")
    if len(rest) == 2 and rest[0] == "backups":
        return {**base, "backup_id": rest[1].split(".", 1)[0]}
    if len(rest) == 2 and rest[0] == "quarantine":
        q = _QUARANTINE_FILE_RE.match(rest[1])
        return {**base, "binlog_name": q["name"]} if q else None
    if len(rest) == 3 and rest[0].isdigit() and rest[1].isdigit():
        f = _BINLOG_FILE_RE.match(rest[2])
        if not f:
            return None
        ctx = {**base, "binlog_name": f["name"]}
        return {**ctx, "kind": "txindex"} if f["idx"] else ctx
    return None
