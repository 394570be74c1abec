"""Copy a verified object to the other cloud, never over anything.

The copy is streamed from the source through the replica backend's own
conditional create (``put(if_none_match=True)``: GCS ``ifGenerationMatch=0``,
S3 ``If-None-Match: *``), so it is the same code, checksums and error mapping
the shipper uses. The bytes are hashed again on the way and must equal the
bytes that just verified (:class:`shipper.fleet.verify.Verified`): if the
source changed between the two reads, the reader fails at its last byte,
before the replica backend finishes the upload, and nothing is created.

A key already taken at the replica is decided by *content*, never overwritten:

* the same stored bytes (SHA-256): ``identical`` (a redelivery, or the other
  cloud's function got there first);
* other bytes whose metadata claims the same plaintext (SHA-256 and size; an
  index: the same binlog) are authenticated in full, as the source was
  (:func:`shipper.fleet.verify.verify`). Every seal draws a new data key and
  nonces, so the same binlog sealed twice -- the host draining its failover
  backlog from its staged copy, while this function replicates the copy it
  failed over -- is two different envelopes of one content. If it verifies and
  holds the same plaintext: ``equivalent``, a verified replica in its own right
  (its own version and checksum). If it does not verify: ``integrity_failed``,
  the replica object is bad (tampered, truncated, lying metadata);
* anything else (another plaintext, or no claim of ours): ``conflict``, a
  lineage conflict.

A data key that cannot be unwrapped while authenticating the replica is not
the replica's fault: ``KeyProviderError`` is raised and the event retried.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from shipper import objects
from shipper.errors import BinlogFormatError, IntegrityError, PreconditionFailed
from shipper.fleet.verify import StoredHash, Verified, verify
from shipper.keys import KeyProvider
from shipper.storage import ObjectInfo, StorageBackend

COPIED = "copied"
IDENTICAL = "identical"
EQUIVALENT = "equivalent"
INTEGRITY_FAILED = "integrity_failed"
CONFLICT = "conflict"


@dataclass(frozen=True)
class Replicated:
    #: "copied"; "identical" (already there, same bytes); "equivalent" (already there,
    #: another envelope of the same plaintext, verified in full); "integrity_failed"
    #: (already there, claims the same plaintext, does not verify); "conflict" (another
    #: plaintext)
    outcome: str
    #: the object at the replica key (for "equivalent", as it verified)
    info: ObjectInfo
    #: the service checksum recorded for the replica object ("sha256:HEX" or "crc32c:B64")
    checksum: str
    detail: str = ""


class _Checked(StoredHash):
    """The second read of the source: at its end, it must be the bytes that verified."""

    def __init__(self, src: BinaryIO, v: Verified, where: str) -> None:
        super().__init__(src)
        self.v = v
        self.where = where

    def read(self, n: int = -1) -> bytes:
        data = super().read(n)
        at_end = not data or self.size >= self.v.size
        if at_end and (self.size != self.v.size or self.sha.hexdigest() != self.v.stored_sha256):
            raise IntegrityError(
                f"{self.where}: changed since it verified (read {self.size} bytes sha256 "
                f"{self.sha.hexdigest()}); not replicating it"
            )
        return data


def replicate(
    source: StorageBackend,
    replica: StorageBackend,
    v: Verified,
    providers: Sequence[KeyProvider],
) -> Replicated:
    """Copy ``v`` to ``replica`` unless its key is taken; ``providers`` unwrap the data key
    of an object already there that claims the same plaintext (to authenticate it)."""
    where = f"{source.url}/{v.key}"
    reader = _Checked(source.open(v.key), v, where)
    try:
        info = replica.put(v.key, reader, size=v.size, metadata=v.stat.metadata)  # type: ignore[arg-type]
    except PreconditionFailed:
        return _compare_existing(replica, v, providers)
    finally:
        reader.close()
    _check_copy(replica, v, info)
    return Replicated(COPIED, info, _checksum(info, v))


def _check_copy(replica: StorageBackend, v: Verified, put: ObjectInfo) -> None:
    """The copy as the replica's service reports it: its size, and its SHA-256 when the
    service keeps one (the put already compared the CRC32C / SHA-256 it sent)."""
    st = replica.stat(v.key)
    if st.size != v.size or (st.sha256 is not None and st.sha256 != v.stored_sha256):
        raise IntegrityError(
            f"{replica.url}/{v.key}: the copy is {st.size} bytes sha256 {st.sha256}, "
            f"the verified object {v.size} bytes sha256 {v.stored_sha256}"
        )
    if put.version and st.version and put.version != st.version:
        raise IntegrityError(
            f"{replica.url}/{v.key}: another writer replaced the copy just made "
            f"(version {put.version} -> {st.version})"
        )


def _compare_existing(
    replica: StorageBackend, v: Verified, providers: Sequence[KeyProvider]
) -> Replicated:
    st = replica.stat(v.key)
    if st.size == v.size and _stored_sha256(replica, v.key, st) == v.stored_sha256:
        return Replicated(IDENTICAL, st, _checksum(st, v))
    where = f"{replica.url}/{v.key}"
    if _claims_same_content(st, v):
        return _authenticate(replica, v, providers, where)
    return _conflict(st, v, where, f"{st.size} bytes, version {st.version}")


def _claims_same_content(st: ObjectInfo, v: Verified) -> bool:
    """Whether the object's metadata (a claim: not authenticated) says it holds the content
    ``v`` proved to hold. Only such an object is worth reading and decrypting: anything
    else at the key is another file, a lineage conflict, whatever its bytes."""
    theirs = objects.ObjectMeta.from_metadata(st.metadata)
    if v.kind == "txindex":
        # an index's metadata names the binlog it indexes, not its own plaintext (which
        # is what the full verification then compares)
        ours = objects.ObjectMeta.from_metadata(v.stat.metadata).binlog_plaintext_sha256
        return bool(ours) and theirs.binlog_plaintext_sha256 == ours
    return theirs.plaintext_sha256 == v.plaintext_sha256 and theirs.plaintext_size in (
        None,
        v.plaintext_size,
    )


def _authenticate(
    replica: StorageBackend, v: Verified, providers: Sequence[KeyProvider], where: str
) -> Replicated:
    """Read the object at the replica key in full, as the source was read (data key
    unwrapped with the context its key implies, every chunk authenticated, plaintext
    hashed, metadata checked, a binlog's events CRC32-checked)."""
    try:
        theirs = verify(replica, v.key, providers)
    except (IntegrityError, BinlogFormatError) as e:
        st = replica.stat(v.key)
        return Replicated(
            INTEGRITY_FAILED,
            st,
            f"sha256:{st.sha256}" if st.sha256 else "",
            detail=(
                f"{where} (version {st.version}) claims to hold the same plaintext as the "
                f"verified source (sha256 {v.plaintext_sha256}, {v.plaintext_size} bytes) "
                f"but does not verify: {e}; left untouched"
            ),
        )
    if (theirs.plaintext_sha256, theirs.plaintext_size) != (v.plaintext_sha256, v.plaintext_size):
        return _conflict(
            theirs.stat,
            v,
            where,
            f"version {theirs.stat.version}, {theirs.plaintext_size} bytes of plaintext "
            f"sha256 {theirs.plaintext_sha256}",
        )
    return Replicated(
        EQUIVALENT,
        theirs.stat,
        theirs.checksum,
        detail=(
            f"{where} (version {theirs.stat.version}) is another envelope of the same "
            f"plaintext (sha256 {v.plaintext_sha256}): verified in full"
        ),
    )


def _conflict(st: ObjectInfo, v: Verified, where: str, what: str) -> Replicated:
    return Replicated(
        CONFLICT,
        st,
        f"sha256:{st.sha256}" if st.sha256 else "",
        detail=(
            f"{where} already holds a different object ({what}); the verified one is "
            f"{v.size} bytes sha256 {v.stored_sha256}, plaintext sha256 "
            f"{v.plaintext_sha256}: not overwritten"
        ),
    )


def _stored_sha256(replica: StorageBackend, key: str, st: ObjectInfo) -> str:
    if st.sha256 is not None:
        return st.sha256
    h = hashlib.sha256()
    with contextlib.closing(replica.open(key)) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _checksum(info: ObjectInfo, v: Verified) -> str:
    if info.sha256 is not None:
        return f"sha256:{info.sha256}"
    # GCS keeps a CRC32C; its backend compared it with the one computed while sending.
    return f"crc32c:{v.stored_crc32c}"
