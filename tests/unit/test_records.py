"""Backup record objects: sealed, append-only, authenticated against their key."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from shipper import envelope, objects, records
from shipper.errors import IntegrityError, ObjectNotFound
from shipper.keys.local import LocalKeyring
from shipper.records import BackupRecord, Verification
from shipper.restore import backup_records
from shipper.storage.memory import MemoryBackend


def _record(**kw: object) -> BackupRecord:
    base: dict[str, object] = {
        "id": "20261124T021249Z-mariabackup-b22580",
        "tool": "mariabackup",
        "tenant": "acme",
        "server_id": 7,
        "binlog_file": "mysql-bin.000004",
        "binlog_pos": 1234,
        "gtid_set": "0-1-532",
        "started_at": 1795000000.25,
        "finished_at": 1795000060.5,
        "consistent_at": 1795000060.5,
        "object_key": "acme/mysql/7/backups/20261124T021249Z-mariabackup-b22580.xbstream.zst.enc",
        "plaintext_sha256": "ab" * 32,
        "plaintext_size": 4096,
        "databases": ("shop",),
        "verification": Verification("verified", 1795000070.0, "backup take"),
    }
    base.update(kw)
    return BackupRecord(**base)  # type: ignore[arg-type]


def test_record_round_trips_through_the_archive(tmp_path: Path) -> None:
    store = MemoryBackend(f"records-{os.getpid()}-1")
    kr = LocalKeyring(os.urandom(32), tmp_path / "k")
    rec = _record()
    key = records.write_record(store, [kr], rec, tenant_prefix="acme")
    assert key == "acme/mysql/7/backups/20261124T021249Z-mariabackup-b22580.record.zst.enc"
    assert records.read_record(store, key, [kr]) == rec
    assert rec.to_json()["started_at"] == "2026-11-18T11:06:40.250000Z"


def test_later_revisions_never_replace_earlier_ones(tmp_path: Path) -> None:
    store = MemoryBackend(f"records-{os.getpid()}-2")
    kr = LocalKeyring(os.urandom(32), tmp_path / "k")
    first = _record()
    records.write_record(store, [kr], first, tenant_prefix="acme")
    failed = first.next_revision(Verification("failed", 1795000100.0, "backup verify", "bad"))
    k2 = records.write_record(store, [kr], failed, tenant_prefix="acme")
    assert k2.endswith(".record-2.zst.enc")
    assert records.latest_record_keys(store, "acme") == {first.id: k2}
    (latest,) = records.latest_records(store, [kr], "acme")
    assert latest.verification.state == "failed"
    assert records.read_record(store, first.record_key("acme"), [kr]).revision == 1


def test_record_copied_to_another_backups_key_is_refused(tmp_path: Path) -> None:
    store = MemoryBackend(f"records-{os.getpid()}-3")
    kr = LocalKeyring(os.urandom(32), tmp_path / "k")
    key = records.write_record(store, [kr], _record(), tenant_prefix="acme")
    other = key.replace("b22580", "c33691")
    with store.open(key) as src:
        store.put(other, src, size=store.stat(key).size, metadata={})
    with pytest.raises(IntegrityError):
        records.read_record(store, other, [kr])


DUMP = (
    b"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n"
    b"-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000004', MASTER_LOG_POS=1234;\n"
    b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8 */;\n"
    b"USE `shop`;\n"
    + b"INSERT INTO `t` VALUES (1);\n" * 5000
    + b"-- Dump completed on 2026-11-24\n"
)


def _archived_dump(
    store: MemoryBackend, kr: LocalKeyring, data: bytes = DUMP, *, v1: bool = False
) -> BackupRecord:
    """A mysqldump backup as ``backup take`` leaves it: data object + record revision 1
    (``v1``: its data sealed the way the previous release did)."""
    bid = "20261124T021249Z-mysqldump-b22580"
    key = objects.backup_key("acme", 7, bid, "mysqldump")
    sealed = io.BytesIO()
    res = envelope.seal(
        io.BytesIO(data),
        sealed,
        providers=[kr],
        context=objects.v1_context_for_key(key) if v1 else objects.context_for_key(key),
        metadata={"kind": "backup"},
        chunk_size=4096,
    )
    store.put(key, io.BytesIO(sealed.getvalue()), size=res.envelope_size, metadata={})
    rec = _record(
        id=bid,
        tool="mysqldump",
        object_key=key,
        plaintext_sha256=hashlib.sha256(DUMP).hexdigest(),
        plaintext_size=len(DUMP),
    )
    records.write_record(store, [kr], rec, tenant_prefix="acme")
    return rec


def test_verify_appends_verified_then_failed_after_tampering(tmp_path: Path) -> None:
    store = MemoryBackend(f"records-{os.getpid()}-verify")
    kr = LocalKeyring(os.urandom(32), tmp_path / "k")
    rec = _archived_dump(store, kr)
    ok = backup_records.verify(store, [kr], "acme", rec.id)
    assert (ok.record.revision, ok.record.verification.state) == (2, "verified")
    assert ok.record_key.endswith(".record-2.zst.enc") and "holds shop" in ok.detail
    assert rec.object_key is not None
    store.corrupt(rec.object_key, store.stat(rec.object_key).size // 2)
    bad = backup_records.verify(store, [kr], "acme", rec.id, server_id=7)
    assert (bad.record.revision, bad.record.verification.state) == (3, "failed")
    assert "does not authenticate" in bad.detail
    latest = backup_records.find_record(store, [kr], "acme", rec.id)
    assert latest.verification.state == "failed" and latest.verification.by == "backup verify"


def test_verify_reads_a_backup_sealed_by_the_previous_release(tmp_path: Path) -> None:
    store = MemoryBackend(f"records-{os.getpid()}-v1")
    kr = LocalKeyring(os.urandom(32), tmp_path / "k")
    rec = _archived_dump(store, kr, v1=True)
    assert backup_records.verify(store, [kr], "acme", rec.id).record.verification.state == (
        "verified"
    )


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (DUMP.replace(b"MASTER_LOG_POS=1234", b"MASTER_LOG_POS=9999"), "mysql-bin.000004:9999"),
        (DUMP.replace(b"`shop`", b"`shoq`"), "it holds no shop"),
        (DUMP.replace(b"-- Dump completed", b"-- Dump stopped"), "cut short"),
    ],
)
def test_verify_reads_the_dump_header_and_databases(tmp_path: Path, data: bytes, why: str) -> None:
    # The bytes authenticate, but are not what the record says (same size, other content).
    store = MemoryBackend(f"records-{os.getpid()}-{why}")
    kr = LocalKeyring(os.urandom(32), tmp_path / "k")
    rec = _archived_dump(store, kr, data)
    out = backup_records.verify(store, [kr], "acme", rec.id)
    assert out.record.verification.state == "failed"
    assert "sha256" in out.detail and why in out.detail


def test_delete_removes_the_data_and_keeps_every_record(tmp_path: Path) -> None:
    store = MemoryBackend(f"records-{os.getpid()}-delete")
    kr = LocalKeyring(os.urandom(32), tmp_path / "k")
    rec = _archived_dump(store, kr)
    out = backup_records.delete(store, [kr], "acme", rec.id)
    assert out.record.verification.state == "deleted" and out.record.revision == 2
    assert rec.object_key is not None and f"deleted data object {rec.object_key}" in out.detail
    with pytest.raises(ObjectNotFound):
        store.stat(rec.object_key)
    assert records.read_record(store, rec.record_key("acme"), [kr]).verification.state == (
        "verified"
    )
    again = backup_records.delete(store, [kr], "acme", rec.id)
    assert again.detail == "already deleted" and again.record.revision == 2
    with pytest.raises(ObjectNotFound, match="was deleted"):
        backup_records.verify(store, [kr], "acme", rec.id)


def test_latest_record_key_names_what_is_missing(tmp_path: Path) -> None:
    store = MemoryBackend(f"records-{os.getpid()}-missing")
    with pytest.raises(ObjectNotFound, match="backup nope has no record object under"):
        records.latest_record_key(store, "acme", "nope", server_id=7)


def test_manifest_row_is_the_records_cache() -> None:
    rec = _record(revision=3, verification=Verification("failed", 1795000100.0, "backup verify"))
    row = rec.manifest_row(["file:///a"])
    assert (row["id"], row["sha256"], row["size"], row["targets"]) == (
        rec.id,
        "ab" * 32,
        4096,
        ["file:///a"],
    )
    assert row["extra"]["verification"] == "failed" and row["extra"]["record_revision"] == 3
    assert row["extra"]["consistent_at"] == rec.consistent_at and row["extra"]["server_id"] == 7
