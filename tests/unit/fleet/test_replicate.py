"""shipper.fleet.replicate on real backends (memory source, file:// replica): what an
object already at the replica key means is decided by its content, not its bytes.

Each seal draws a new data key and nonces, so sealing one binlog twice gives two
different envelopes of the same plaintext (what the host's failover drain and the
secondary's replication function both write to the primary).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from shipper import envelope, objects
from shipper.errors import KeyProviderError
from shipper.fleet.replicate import (
    CONFLICT,
    COPIED,
    EQUIVALENT,
    IDENTICAL,
    INTEGRITY_FAILED,
    replicate,
)
from shipper.fleet.verify import Verified, verify
from shipper.keys import KeyProvider
from shipper.keys.local import LocalKeyring
from shipper.storage import StorageBackend, open_backend
from tests.functions.aws.conftest import archive_binlog

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binlogs"
BINLOG = "kingbus__mysql_bin.000011"
OTHER = "mdbpoc__domain_id_0_mariadb-repl-bin.000002"
NAME = "mysql-bin.000011"


@pytest.fixture
def keys(tmp_path: Path) -> list[KeyProvider]:
    return [LocalKeyring.create(tmp_path / "keyring")]


@pytest.fixture
def source(tmp_path: Path) -> StorageBackend:
    # memory backends are shared by name within the process: one per test
    return open_backend(f"memory://{tmp_path.name}-source", {})


@pytest.fixture
def replica(tmp_path: Path) -> StorageBackend:
    return open_backend(f"file://{tmp_path / 'replica'}", {})


def _seal(
    backend: StorageBackend,
    keys: list[KeyProvider],
    tmp: Path,
    fixture: str = BINLOG,
) -> str:
    """The fixture sealed and put (with its index) as the shipper does; a new envelope
    every call. Returns the binlog object's key."""
    work = tmp / f"seal-{len(list(tmp.iterdir()))}"
    work.mkdir()
    return archive_binlog(backend, keys, FIXTURES / fixture, work, NAME, 7, "acme")


def _put_envelope(
    backend: StorageBackend,
    key: str,
    plaintext: bytes,
    keys: list[KeyProvider],
    metadata: dict[str, str],
) -> bytes:
    out = io.BytesIO()
    envelope.seal(
        io.BytesIO(plaintext),
        out,
        providers=keys,
        context=objects.context_for_key(key),
        metadata={},
    )
    raw = out.getvalue()
    backend.put(key, io.BytesIO(raw), size=len(raw), metadata=metadata)
    return raw


def _verified(source: StorageBackend, key: str, keys: list[KeyProvider]) -> Verified:
    return verify(source, key, keys)


def test_a_free_key_is_copied_byte_for_byte(
    source: StorageBackend, replica: StorageBackend, keys: list[KeyProvider], tmp_path: Path
) -> None:
    key = _seal(source, keys, tmp_path)
    r = replicate(source, replica, _verified(source, key, keys), keys)
    assert r.outcome == COPIED
    assert replica.open(key).read() == source.open(key).read()
    assert r.checksum == f"sha256:{source.stat(key).sha256}"


def test_the_same_bytes_already_there_are_identical(
    source: StorageBackend, replica: StorageBackend, keys: list[KeyProvider], tmp_path: Path
) -> None:
    key = _seal(source, keys, tmp_path)
    v = _verified(source, key, keys)
    assert replicate(source, replica, v, keys).outcome == COPIED
    before = replica.stat(key)
    r = replicate(source, replica, v, keys)  # a redelivery, or the other side first
    assert r.outcome == IDENTICAL and not r.detail
    assert replica.stat(key).version == before.version


@pytest.mark.parametrize("what", ["binlog", "txindex"])
def test_another_envelope_of_the_same_plaintext_is_equivalent(
    source: StorageBackend,
    replica: StorageBackend,
    keys: list[KeyProvider],
    tmp_path: Path,
    what: str,
) -> None:
    """The host drained its backlog first: its re-seal is at the key. It verifies in full,
    so it is a replica in its own right: its own version and checksum, left as it is."""
    key = _seal(source, keys, tmp_path)
    assert _seal(replica, keys, tmp_path) == key  # the same binlog, sealed again
    if what == "txindex":
        key = objects.index_key(key)
    assert replica.open(key).read() != source.open(key).read()
    theirs = replica.stat(key)
    v = _verified(source, key, keys)

    r = replicate(source, replica, v, keys)
    assert r.outcome == EQUIVALENT
    assert r.info.version == theirs.version
    assert r.checksum == f"sha256:{theirs.sha256}" != f"sha256:{v.stat.sha256}"
    assert "verified in full" in r.detail
    assert replica.stat(key).version == theirs.version  # never rewritten


def _flipped(raw: bytes) -> bytes:
    bad = bytearray(raw)
    bad[-20] ^= 0x01  # inside the last chunk's ciphertext
    return bytes(bad)


@pytest.mark.parametrize("damage", ["flipped", "truncated", "lying_metadata"])
def test_a_claim_of_the_same_plaintext_that_does_not_verify_is_an_integrity_failure(
    source: StorageBackend,
    replica: StorageBackend,
    keys: list[KeyProvider],
    tmp_path: Path,
    damage: str,
) -> None:
    key = _seal(source, keys, tmp_path)
    v = _verified(source, key, keys)
    meta = dict(source.stat(key).metadata)  # claims our plaintext, sha256 and size
    if damage == "lying_metadata":
        # a sound envelope of another binlog, whose metadata claims ours
        _put_envelope(replica, key, (FIXTURES / OTHER).read_bytes(), keys, meta)
    else:
        scratch = open_backend(f"memory://{tmp_path.name}-scratch", {})
        _seal(scratch, keys, tmp_path)
        raw = scratch.open(key).read()
        raw = _flipped(raw) if damage == "flipped" else raw[: len(raw) // 2]
        replica.put(key, io.BytesIO(raw), size=len(raw), metadata=meta)
    before = replica.open(key).read()

    r = replicate(source, replica, v, keys)
    assert r.outcome == INTEGRITY_FAILED
    assert "does not verify" in r.detail and "left untouched" in r.detail
    assert replica.open(key).read() == before


def test_another_plaintext_is_a_lineage_conflict(
    source: StorageBackend, replica: StorageBackend, keys: list[KeyProvider], tmp_path: Path
) -> None:
    """Another binlog took the name (RESET MASTER): its metadata says so, and that decides
    without decrypting it (it is wrapped by a key these providers do not hold, so an
    attempt would raise) and without overwriting it."""
    key = _seal(source, keys, tmp_path)
    other = (FIXTURES / OTHER).read_bytes()
    meta = dict(source.stat(key).metadata)
    meta["plaintext_sha256"] = hashlib.sha256(other).hexdigest()
    meta["plaintext_size"] = str(len(other))
    foreign: list[KeyProvider] = [LocalKeyring.create(tmp_path / "their-keyring")]
    raw = _put_envelope(replica, key, other, foreign, meta)

    r = replicate(source, replica, _verified(source, key, keys), keys)
    assert r.outcome == CONFLICT
    assert "not overwritten" in r.detail
    assert replica.open(key).read() == raw


def test_an_object_that_claims_nothing_is_a_lineage_conflict(
    source: StorageBackend, replica: StorageBackend, keys: list[KeyProvider], tmp_path: Path
) -> None:
    key = _seal(source, keys, tmp_path)
    replica.put(key, io.BytesIO(b"another file"), size=12, metadata={})
    r = replicate(source, replica, _verified(source, key, keys), keys)
    assert r.outcome == CONFLICT
    assert replica.open(key).read() == b"another file"


def test_an_index_of_another_binlog_is_a_lineage_conflict(
    source: StorageBackend, replica: StorageBackend, keys: list[KeyProvider], tmp_path: Path
) -> None:
    key = _seal(source, keys, tmp_path)
    ikey = objects.index_key(key)
    meta = dict(source.stat(ikey).metadata)
    meta["binlog_plaintext_sha256"] = "0" * 64
    replica.put(ikey, io.BytesIO(b"not ours"), size=8, metadata=meta)
    r = replicate(source, replica, _verified(source, ikey, keys), keys)
    assert r.outcome == CONFLICT


def test_a_data_key_that_cannot_be_unwrapped_is_raised_not_judged(
    source: StorageBackend, replica: StorageBackend, keys: list[KeyProvider], tmp_path: Path
) -> None:
    """The replica's re-seal is wrapped by a key these providers do not hold: not the
    object's fault, so no verdict (the caller retries the event)."""
    key = _seal(source, keys, tmp_path)
    _seal(replica, [LocalKeyring.create(tmp_path / "another-keyring")], tmp_path)
    with pytest.raises(KeyProviderError):
        replicate(source, replica, _verified(source, key, keys), keys)
