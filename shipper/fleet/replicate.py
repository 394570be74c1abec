"""Copy a verified object to the other cloud, never over anything.

The copy is streamed from the source through the replica backend's own
conditional create (``put(if_none_match=True)``: GCS ``ifGenerationMatch=0``,
S3 ``If-None-Match: *``), so it is the same code, checksums and error mapping
the shipper uses. The bytes are hashed again on the way and must equal the
bytes that just verified (:class:`shipper.fleet.verify.Verified`): if the
source changed between the two reads, the reader fails at its last byte,
before the replica backend finishes the upload, and nothing is created.

A key already taken at the replica is read and compared: the same stored bytes
(SHA-256) are success (a redelivery, or the other cloud's function got there
first); different bytes are a lineage conflict, reported and never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import BinaryIO

from shipper.errors import IntegrityError, PreconditionFailed
from shipper.fleet.verify import StoredHash, Verified
from shipper.storage import ObjectInfo, StorageBackend

COPIED = "copied"
IDENTICAL = "identical"
CONFLICT = "conflict"


@dataclass(frozen=True)
class Replicated:
    #: "copied", "identical" (already there, same bytes) or "conflict" (different bytes)
    outcome: str
    info: ObjectInfo
    #: the service checksum recorded for the copy ("sha256:HEX" or "crc32c:B64")
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


def replicate(source: StorageBackend, replica: StorageBackend, v: Verified) -> Replicated:
    where = f"{source.url}/{v.key}"
    reader = _Checked(source.open(v.key), v, where)
    try:
        info = replica.put(v.key, reader, size=v.size, metadata=v.stat.metadata)  # type: ignore[arg-type]
    except PreconditionFailed:
        return _compare_existing(replica, v)
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


def _compare_existing(replica: StorageBackend, v: Verified) -> Replicated:
    st = replica.stat(v.key)
    same = st.size == v.size and _stored_sha256(replica, v.key, st) == v.stored_sha256
    if same:
        return Replicated(IDENTICAL, st, _checksum(st, v))
    return Replicated(
        CONFLICT,
        st,
        f"sha256:{st.sha256}" if st.sha256 else "",
        detail=(
            f"{replica.url}/{v.key} already holds a different object ({st.size} bytes, "
            f"version {st.version}); the verified one is {v.size} bytes sha256 "
            f"{v.stored_sha256}: not overwritten"
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
