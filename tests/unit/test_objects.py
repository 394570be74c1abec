"""Object keys, the encryption context each key implies, and the metadata view."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from shipper import archive, envelope, objects
from shipper.errors import IntegrityError
from shipper.keys.local import LocalKeyring
from shipper.storage.memory import MemoryBackend

T, S = {"layout": "2", "tenant": "acme", "server_id": "7"}, "mysql-bin.000042"


def test_binlog_key_uses_first_event_month_in_utc() -> None:
    # 2026-11-30T23:30:00-02:00 is 2026-12-01T01:30Z: December, not November
    ts = 1796088600
    assert objects.binlog_key("acme", 7, ts, "mysql-bin.000042") == (
        "acme/mysql/7/2026/12/mysql-bin.000042.zst.enc"
    )


@pytest.mark.parametrize(
    ("key", "v2", "v1"),
    [
        (
            f"acme/mysql/7/2026/11/{S}.zst.enc",
            {**T, "kind": "binlog", "month": "2026/11", "binlog_name": S},
            {"tenant": "acme", "server_id": "7", "binlog_name": S},
        ),
        (
            f"acme/mysql/7/2026/11/{S}.lineage-0123456789ab.zst.enc",
            {
                **T,
                "kind": "binlog",
                "month": "2026/11",
                "binlog_name": S,
                "lineage": "0123456789ab",
            },
            {"tenant": "acme", "server_id": "7", "binlog_name": S},
        ),
        (
            f"acme/mysql/7/2026/11/{S}.idx.zst.enc",
            {**T, "kind": "txindex", "month": "2026/11", "binlog_name": S},
            {"tenant": "acme", "server_id": "7", "binlog_name": S, "kind": "txindex"},
        ),
        (
            f"acme/mysql/7/2026/11/{S}.lineage-0123456789ab.idx.zst.enc",
            {
                **T,
                "kind": "txindex",
                "month": "2026/11",
                "binlog_name": S,
                "lineage": "0123456789ab",
            },
            {"tenant": "acme", "server_id": "7", "binlog_name": S, "kind": "txindex"},
        ),
        (
            f"acme/mysql/7/quarantine/{S}.0123456789ab.zst.enc",
            {**T, "kind": "quarantine", "binlog_name": S, "digest": "0123456789ab"},
            {"tenant": "acme", "server_id": "7", "binlog_name": S},
        ),
        (
            "acme/mysql/7/backups/20261124T021249Z-mariabackup-b22580.xbstream.zst.enc",
            {
                **T,
                "kind": "backup",
                "backup_id": "20261124T021249Z-mariabackup-b22580",
                "format": "xbstream",
            },
            {
                "tenant": "acme",
                "server_id": "7",
                "backup_id": "20261124T021249Z-mariabackup-b22580",
            },
        ),
        (
            "acme/mysql/7/backups/B1.record-3.zst.enc",
            {**T, "kind": "backup-record", "backup_id": "B1", "revision": "3"},
            {"tenant": "acme", "server_id": "7", "backup_id": "B1"},
        ),
    ],
)
def test_context_binds_the_whole_key_and_v1_stays_readable(
    key: str, v2: dict[str, str], v1: dict[str, str]
) -> None:
    assert objects.context_for_key(key) == v2
    assert objects.accepted_contexts(key) == (v2, v1)


@pytest.mark.parametrize(
    "key",
    [
        "somewhere/else.bin",
        "acme/mysql/7/2026/11/notes.txt",
        "acme/mysql/7/2026/13/mysql-bin.000001.zst.enc",  # no 13th month
        "acme/mysql/7/2026/11/extra/mysql-bin.000001.zst.enc",
        "acme/mysql/7/2026/11/mysql-bin.zst.enc",  # no sequence number
        "acme/mysql/7/2026/11/mysql-bin.000001.lineage-xyz.zst.enc",
        "acme/mysql/x/2026/11/mysql-bin.000001.zst.enc",
        "acme/mysql/7/backups/B1.tar.zst.enc",
        "acme/mysql/7/backups/B1.record-1.zst.enc",  # revision 1 has no suffix
        "acme/mysql/7/quarantine/mysql-bin.000001.zst.enc",
    ],
)
def test_key_outside_the_layout_is_refused(key: str) -> None:
    with pytest.raises(IntegrityError, match="outside the archive layout") as e:
        objects.context_for_key(key)
    assert key in str(e.value)
    with pytest.raises(IntegrityError):
        objects.accepted_contexts(key)


def test_every_key_the_writers_build_has_a_context() -> None:
    key = objects.binlog_key("t-1", 3, 1_700_000_000, "bin.000009")
    lk = objects.lineage_key(key, "ab" * 32)
    for k in (
        key,
        lk,
        objects.index_key(key),
        objects.index_key(lk),
        objects.quarantine_key("t-1", 3, "bin.000009", "cd" * 32),
        objects.backup_key("t-1", 3, "20261124T021249Z-mariadb-dump-a1b2c3", "mariadb-dump"),
        objects.backup_record_key("t-1", 3, "B", 1),
        objects.backup_record_key("t-1", 3, "B", 2),
    ):
        ctx = objects.context_for_key(k)
        assert ctx["tenant"] == "t-1" and ctx["server_id"] == "3"
    assert len({str(objects.context_for_key(k)) for k in (key, lk)}) == 2


def _put_sealed(store: MemoryBackend, kr: LocalKeyring, key: str, context: dict[str, str]) -> None:
    blob = io.BytesIO()
    envelope.seal(io.BytesIO(b"binlog bytes"), blob, providers=[kr], context=context)
    store.put(key, io.BytesIO(blob.getvalue()), size=len(blob.getvalue()), metadata={})


@pytest.mark.parametrize(
    "moved_to",
    [
        "acme/mysql/7/2026/12/mysql-bin.000042.zst.enc",  # another month
        "acme/mysql/7/2026/11/mysql-bin.000042.lineage-0123456789ab.zst.enc",  # a lineage
        "acme/mysql/7/2026/11/mysql-bin.000042.idx.zst.enc",  # another kind
        "other/mysql/7/2026/11/mysql-bin.000042.zst.enc",  # another tenant
    ],
)
def test_object_moved_to_another_key_fails_to_decrypt(tmp_path: Path, moved_to: str) -> None:
    store = MemoryBackend(f"objects-{os.getpid()}-{abs(hash(moved_to))}")
    kr = LocalKeyring(os.urandom(32), tmp_path / "k")
    home = "acme/mysql/7/2026/11/mysql-bin.000042.zst.enc"
    _put_sealed(store, kr, home, objects.context_for_key(home))
    assert archive.read_object(store, home, [kr]) == b"binlog bytes"
    data = store.open(home).read()
    store.put(moved_to, io.BytesIO(data), size=len(data), metadata={})
    with pytest.raises(IntegrityError, match="differs from the expected"):
        archive.read_object(store, moved_to, [kr])


def test_previous_release_objects_stay_readable_in_exactly_their_shape(tmp_path: Path) -> None:
    store = MemoryBackend(f"objects-{os.getpid()}-v1")
    kr = LocalKeyring(os.urandom(32), tmp_path / "k")
    key = "acme/mysql/7/2026/11/mysql-bin.000042.zst.enc"
    _put_sealed(store, kr, key, objects.v1_context_for_key(key))
    assert archive.read_object(store, key, [kr]) == b"binlog bytes"
    # a v1-shaped context with anything more (or less) is neither shape: refused
    odd = "acme/mysql/7/2026/11/mysql-bin.000043.zst.enc"
    _put_sealed(store, kr, odd, {**objects.v1_context_for_key(odd), "kind": "binlog"})
    with pytest.raises(IntegrityError, match="differs from the expected"):
        archive.read_object(store, odd, [kr])


def test_metadata_view_is_typed_and_read_only() -> None:
    meta = objects.build_metadata(
        {
            "server_uuid": "u-1",
            "server_id": 7,
            "binlog_name": S,
            "binlog_sequence": 42,
            "gtid_set": "0-1-" + "9" * 3000,
            "plaintext_sha256": "ab" * 32,
            "plaintext_size": 1234,
            "format_version": objects.FORMAT_VERSION,
            "tenant": "acme",
            "trace_id": "tr",
            "start_timestamp": "2026-11-18T11:06:40Z",
        }
    )
    view = objects.ObjectMeta.from_metadata({k.upper(): v for k, v in meta.items()})
    assert view.kind == "binlog"
    assert (view.server_id, view.binlog_sequence, view.plaintext_size) == (7, 42, 1234)
    assert view.gtid_set_truncated and view.gtid_set.startswith("0-1-9")
    assert (view.plaintext_sha256, view.format_version, view.tenant) == ("ab" * 32, "2", "acme")
    assert view.start_timestamp == "2026-11-18T11:06:40Z"
    with pytest.raises(AttributeError):
        view.plaintext_sha256 = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        view.raw["tenant"] = "evil"  # type: ignore[index]
    junk = objects.ObjectMeta.from_metadata({"plaintext_size": "lots", "kind": "txindex"})
    assert junk.plaintext_size is None and junk.kind == "txindex" and junk.plaintext_sha256 == ""
