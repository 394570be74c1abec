"""Write a synthetic archive the way the shipper does: binlog objects with the
shipper's header and metadata (``objects.describe``), a transaction index beside
each, base backup data objects and their records. Used by the catalog tests and
bench/bench_plan.py, where thousands of real binlogs would take too long."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence

from shipper import envelope, objects, records
from shipper.binlog import BinlogInfo
from shipper.binlog.index import TransactionIndex
from shipper.keys import KeyProvider
from shipper.records import BackupRecord, Verification
from shipper.restore.model import ArchivedBinlog, BackupInfo
from shipper.storage import StorageBackend


def seal_put(
    store: StorageBackend,
    providers: Sequence[KeyProvider],
    key: str,
    plaintext: bytes,
    header_meta: dict[str, object],
    metadata: dict[str, object],
    *,
    v1: bool = False,
) -> None:
    """Seal and put; ``v1``: with the context the previous release used."""
    out = io.BytesIO()
    envelope.seal(
        io.BytesIO(plaintext),
        out,
        providers=providers,
        context=objects.v1_context_for_key(key) if v1 else objects.context_for_key(key),
        metadata=header_meta,
    )
    size = out.tell()
    out.seek(0)
    store.put(key, out, size=size, metadata=objects.build_metadata(metadata))


def plaintext_for(row: ArchivedBinlog) -> bytes:
    """Stand-in bytes of ``row.size`` (the planner never looks inside a binlog)."""
    seed = row.name.encode()
    n = row.size or 64
    return (seed * (n // len(seed) + 1))[:n]


def info_for(row: ArchivedBinlog, index: TransactionIndex) -> BinlogInfo:
    data = plaintext_for(row)
    return BinlogInfo(
        name=row.name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        server_version="10.11.6-MariaDB",
        binlog_version=4,
        checksum="CRC32",
        server_id=row.server_id,
        in_use=False,
        complete=True,
        truncated_at=None,
        crc_error_at=None,
        checksum_flag_error_at=None,
        event_count=2 + 3 * len(index),
        first_timestamp=row.first_ts,
        last_timestamp=row.last_ts,
        gtid_previous=row.gtid_previous or "",
        gtid_added="",
        gtid_executed_end=row.gtid_end or "",
        last_gtid=None,
        gtid_flavor=index.flavor,  # type: ignore[arg-type]
        transactions=len(index),
        index=index,
        encrypted=False,
        encrypted_at=None,
        unknown_event_types=(),
        rotate_to=None,
    )


def put_binlog(
    store: StorageBackend,
    providers: Sequence[KeyProvider],
    row: ArchivedBinlog,
    index: TransactionIndex,
    *,
    tenant: str,
    key: str | None = None,
    with_index: bool = True,
    v1: bool = False,
) -> str:
    """Archive ``row`` (and its index) as the shipper would; returns the object key."""
    assert row.server_id is not None and row.first_ts is not None
    info = info_for(row, index)
    fields, header = objects.describe(
        info,
        tenant=tenant,
        server_id=row.server_id,
        server_uuid=row.server_uuid or "",
        trace_id="synthetic",
    )
    key = key or objects.binlog_key(tenant, row.server_id, row.first_ts, row.name)
    seal_put(store, providers, key, plaintext_for(row), header, fields, v1=v1)
    if with_index:
        seal_put(
            store,
            providers,
            objects.index_key(key),
            index.to_bytes(),
            {"binlog_name": row.name, "plaintext_sha256": info.sha256},
            {"binlog_name": row.name, "kind": "txindex", "tenant": tenant},
            v1=v1,
        )
    return key


def put_backup(
    store: StorageBackend,
    providers: Sequence[KeyProvider],
    b: BackupInfo,
    *,
    tenant: str,
    server_id: int,
    state: str = "verified",
) -> BackupRecord:
    """A base backup's data object (stand-in bytes) and its record; returns the record."""
    key = objects.backup_key(tenant, server_id, b.id, b.tool)
    data = f"-- backup {b.id}\n".encode()
    seal_put(store, providers, key, data, {"kind": "backup", "backup_id": b.id}, {"kind": "backup"})
    rec = BackupRecord(
        id=b.id,
        tool=b.tool,
        tenant=tenant,
        server_id=server_id,
        binlog_file=b.binlog_file,
        binlog_pos=b.binlog_pos,
        gtid_set=b.gtid_set,
        started_at=b.consistent_at,
        finished_at=b.consistent_at,
        consistent_at=b.consistent_at,
        object_key=key,
        plaintext_sha256=hashlib.sha256(data).hexdigest(),
        plaintext_size=len(data),
        verification=Verification(state, b.consistent_at, "synthetic"),
    )
    records.write_record(store, providers, rec, tenant_prefix=tenant)
    return rec
