"""Reading a restore's objects: authenticate before use, fall back to the next target.

Memory backends and a local keyring; real envelopes sealed with the context of
the key they are stored at, as ``backup take`` and the shipper write them.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipper import envelope, objects
from shipper.errors import IntegrityError, ObjectNotFound, RestoreError
from shipper.keys.local import LocalKeyring
from shipper.restore.base import SkipSchemas
from shipper.restore.model import BackupInfo
from shipper.restore.sources import Sources
from shipper.restore.tools import Conn, mask_dsn, option_value
from shipper.storage.memory import MemoryBackend

# Incompressible rows, so the envelope has many chunks after its header.
DUMP = b"-- header\nSET NAMES utf8mb4;\n" + b"".join(
    b"INSERT INTO x VALUES (1, '%s');\n" % random.Random(i).randbytes(40).hex().encode()
    for i in range(500)
)


@pytest.fixture
def keyring(tmp_path: Path) -> LocalKeyring:
    return LocalKeyring(os.urandom(32), tmp_path / "keyring")


def _backup(backup_id: str, data: bytes = DUMP) -> BackupInfo:
    return BackupInfo(
        id=backup_id,
        tool="mysqldump",
        binlog_file="mysql-bin.000002",
        binlog_pos=4,
        object_key=objects.backup_key("acme", 7, backup_id, "mysqldump"),
        server_id=7,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _sealed(key: str, data: bytes, kr: LocalKeyring) -> bytes:
    out = io.BytesIO()
    ctx = objects.context_for_key(key)  # what backup take and the shipper seal with
    envelope.seal(io.BytesIO(data), out, providers=[kr], context=ctx, chunk_size=4096)
    return out.getvalue()


def _put(store: MemoryBackend, key: str, blob: bytes, plaintext: bytes) -> None:
    meta = {"plaintext_sha256": hashlib.sha256(plaintext).hexdigest()}
    store.put(key, io.BytesIO(blob), size=len(blob), metadata=meta)


def _flip(blob: bytes, at: float) -> bytes:
    b = bytearray(blob)
    b[int(len(b) * at)] ^= 0x01
    return bytes(b)


def _stores(name: str, n: int) -> list[MemoryBackend]:
    return [MemoryBackend(f"{name}-{os.getpid()}-{i}") for i in range(n)]


def test_backup_missing_or_corrupt_in_the_first_target_is_read_from_the_next(
    keyring: LocalKeyring, tmp_path: Path
) -> None:
    b = _backup("20261124T021249Z-mysqldump-aaaaaa")
    key = str(b.object_key)
    blob = _sealed(key, DUMP, keyring)
    for broken in ("missing", "corrupt"):
        first, second = _stores(f"fallback-{broken}", 2)
        if broken == "corrupt":
            _put(first, key, _flip(blob, 0.75), DUMP)
        _put(second, key, blob, DUMP)
        src = Sources([first, second], [keyring])
        spool = tmp_path / f"{broken}.sealed"
        assert src.spool_backup(b, spool) is second
        assert spool.stat().st_mode & 0o777 == 0o600
        out = io.BytesIO()
        src.unseal_spool(b, spool, out)
        assert out.getvalue() == DUMP
        (line, _) = src.notices
        what = "is missing" if broken == "missing" else "failed verification"
        assert f"{key} {what} in {first.url}" in line and f"reading it from {second.url}" in line


def test_backup_corrupt_in_every_target_is_refused_and_leaves_no_spool(
    keyring: LocalKeyring, tmp_path: Path
) -> None:
    b = _backup("20261124T021249Z-mysqldump-bbbbbb")
    key = str(b.object_key)
    blob = _sealed(key, DUMP, keyring)
    stores = _stores("both-corrupt", 2)
    for s, at in zip(stores, (0.25, 0.99), strict=True):
        _put(s, key, _flip(blob, at), DUMP)
    spool = tmp_path / "b.sealed"
    with pytest.raises(IntegrityError, match="no configured target holds an intact copy") as e:
        Sources(stores, [keyring]).spool_backup(b, spool)
    assert stores[0].url in str(e.value) and stores[1].url in str(e.value)
    assert not spool.exists()
    # One target only: its own error, as is.
    with pytest.raises(IntegrityError, match="failed authentication"):
        Sources(stores[:1], [keyring]).spool_backup(b, spool)
    assert not spool.exists()


def test_backup_swapped_with_another_is_refused(keyring: LocalKeyring, tmp_path: Path) -> None:
    """Another backup's object and metadata copied to this key: its envelope context
    names the other backup; and its plaintext is not the one recorded for this one."""
    this, other = _backup("20261124T021249Z-mysqldump-cccccc"), _backup("20261123T021249Z-x-dd")
    other_data = DUMP.replace(b"(1)", b"(2)")
    (store,) = _stores("swapped", 1)
    _put(
        store, str(this.object_key), _sealed(str(other.object_key), other_data, keyring), other_data
    )
    with pytest.raises(IntegrityError, match="differs from the expected"):
        Sources([store], [keyring]).spool_backup(this, tmp_path / "s.sealed")


def test_backup_whose_plaintext_differs_from_the_record_is_refused(
    keyring: LocalKeyring, tmp_path: Path
) -> None:
    """Sealed at the right key, but not the bytes the backup record names (re-sealed)."""
    b = _backup("20261124T021249Z-mysqldump-eeeeee")
    forged = DUMP + b"DROP DATABASE app;\n"
    (store,) = _stores("forged", 1)
    _put(store, str(b.object_key), _sealed(str(b.object_key), forged, keyring), forged)
    with pytest.raises(IntegrityError, match="the backup record says"):
        Sources([store], [keyring]).spool_backup(b, tmp_path / "f.sealed")


def test_binlog_not_matching_the_manifest_is_read_from_the_next_target(
    keyring: LocalKeyring, tmp_path: Path
) -> None:
    key = objects.binlog_key("acme", 7, 1795000000, "mysql-bin.000003")
    good, bad = b"\xfebinlog" + b"x" * 5000, b"\xfebinlog" + b"y" * 5000
    first, second = _stores("binlog", 2)
    _put(first, key, _sealed(key, bad, keyring), bad)  # intact, but another file's bytes
    _put(second, key, _sealed(key, good, keyring), good)
    src = Sources([first, second], [keyring])
    dest = tmp_path / "relay.000001"
    src.fetch_binlog(key, dest, hashlib.sha256(good).hexdigest(), "mysql-bin.000003")
    assert dest.read_bytes() == good
    assert "manifest recorded" in src.notices[0]
    with pytest.raises(ObjectNotFound):
        gone = objects.binlog_key("acme", 7, 1795000000, "mysql-bin.000004")
        Sources([first], [keyring]).fetch_binlog(gone, dest, None, "mysql-bin.000004")


def test_no_target_is_refused() -> None:
    with pytest.raises(RestoreError, match="no archive target"):
        Sources([], [])


SCRIPT = (
    b"-- MariaDB dump\n/*!40101 SET NAMES utf8mb4 */;\n"
    b"-- Current Database: `app`\nCREATE DATABASE `app`;\nUSE `app`;\n"
    b"INSERT INTO `t` VALUES (1,'USE `mysql`; -- Current Database: `mysql`');\n"
    b"-- Current Database: `mysql`\nCREATE DATABASE `mysql`;\nUSE `mysql`;\n"
    b"DROP TABLE IF EXISTS `global_priv`;\nINSERT INTO `global_priv` VALUES ('x');\n"
    b"/*! FLUSH PRIVILEGES */;\n"
    b"-- Current Database: `we``ird`\nUSE `we``ird`;\nINSERT INTO `u` VALUES (2);\n"
    b"/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;"
)


def test_skip_schemas_drops_the_mysql_section_however_the_stream_is_cut() -> None:
    start = SCRIPT.index(b"\n-- Current Database: `mysql`") + 1
    end = SCRIPT.index(b"\n-- Current Database: `we") + 1
    want = SCRIPT[:start] + SCRIPT[end:]
    assert b"global_priv" not in want and b"FLUSH PRIVILEGES" not in want
    for size in (1, 2, 7, 64, len(SCRIPT)):
        out = io.BytesIO()
        f = SkipSchemas(out, frozenset({"mysql"}))
        for i in range(0, len(SCRIPT), size):
            f.write(SCRIPT[i : i + size])
        f.close()
        assert out.getvalue() == want, size
    out = io.BytesIO()
    f = SkipSchemas(out, frozenset({"we`ird"}))
    f.write(SCRIPT)
    f.close()
    assert b"VALUES (2)" not in out.getvalue() and b"global_priv" in out.getvalue()


def test_dsn_passwords_are_never_shown() -> None:
    c = Conn.parse("host=db1,user=u,password=s3cr#t")
    assert "s3cr#t" not in repr(c) + str(c) + c.describe()
    assert mask_dsn("socket=/s,password=s3cr#t,user=u") == "socket=/s,password=***,user=u"
    with pytest.raises(RestoreError) as e:
        Conn.parse("db1,password=s3cr#t")
    assert "s3cr#t" not in str(e.value) and "password=***" in str(e.value)


def test_option_values_are_quoted_for_option_file_syntax() -> None:
    assert option_value("p#a\"s's\\word") == '"p#a\\"s\\\'s\\\\word"'
    assert option_value("a\nb") == '"a\\nb"'


@pytest.fixture
def full_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs (needs root or CAP_SYS_ADMIN; skipped otherwise)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_spool_that_does_not_fit_says_how_much_space_it_needs(
    keyring: LocalKeyring, full_filesystem: Path
) -> None:
    data = random.Random(5).randbytes(300_000)  # incompressible: the object is larger
    b = _backup("20261124T021249Z-mysqldump-ffffff", data)
    key = str(b.object_key)
    blob = _sealed(key, data, keyring)
    (store,) = _stores("enospc", 1)
    _put(store, key, blob, data)
    spool = full_filesystem / "b.sealed"
    with pytest.raises(RestoreError, match=f"no space left in {full_filesystem}") as e:
        Sources([store], [keyring]).spool_backup(b, spool)
    assert f"needs {len(blob)} bytes" in str(e.value) and "--work-dir" in str(e.value)
    assert not spool.exists()


def test_fallback_reads_the_key_the_next_target_holds_the_binlog_at(
    keyring: LocalKeyring, tmp_path: Path
) -> None:
    """A lineage conflict on the second target only: there the binlog is at its lineage
    key (the manifest's placement), and the normal key holds another file."""
    key = objects.binlog_key("acme", 7, 1795000000, "mysql-bin.000005")
    data, other = b"\xfebinlog" + b"z" * 3000, b"\xfebinlog" + b"w" * 3000
    sha = hashlib.sha256(data).hexdigest()
    there = objects.lineage_key(key, sha)
    first, second = _stores("placement", 2)
    _put(second, key, _sealed(key, other, keyring), other)
    _put(second, there, _sealed(there, data, keyring), data)
    src = Sources([first, second], [keyring], [{}, {key: there}])
    dest = tmp_path / "b"
    src.fetch_binlog(key, dest, sha, "mysql-bin.000005")
    assert dest.read_bytes() == data
    assert (
        src.notices
        == [
            src.notices[0],
            f"{there} read from {second.url}",
        ]
        and f"{key} is missing in {first.url}" in src.notices[0]
    )
