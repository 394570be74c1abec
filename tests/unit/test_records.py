"""Backup record objects: sealed, append-only, authenticated against their key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipper import records
from shipper.errors import IntegrityError
from shipper.keys.local import LocalKeyring
from shipper.records import BackupRecord, Verification
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
