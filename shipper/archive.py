"""Reading the archive back: find a binlog's object, fetch it, verify, decrypt.

Used by ``fetch``, the shipper's verification and the restore executor. Every
read checks the envelope's encryption context against the ones the object's
key implies (:func:`shipper.objects.accepted_contexts`: the whole key for new
objects, tenant/server/name for the previous release's), so an object copied
under another tenant's prefix, month or lineage, or renamed, fails to decrypt;
a key outside the layout is refused before anything is read. Plaintext is written to a
temporary file beside the destination and renamed into place only after the
whole object authenticated and its SHA-256 matched the metadata, so a tampered
object never leaves plaintext behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shipper import envelope, objects
from shipper.errors import IntegrityError, ObjectNotFound, ShipperError
from shipper.keys import KeyProvider
from shipper.storage import ObjectInfo, StorageBackend


@dataclass(frozen=True)
class FetchResult:
    key: str
    path: Path
    plaintext_size: int
    plaintext_sha256: str


def find_binlog(
    backend: StorageBackend, tenant_prefix: str, binlog_name: str, server_id: int | None = None
) -> ObjectInfo:
    """The archived object for ``binlog_name`` (not quarantined, not an index).

    Several servers or lineages may hold the same name; then ``server_id`` must
    pick one, and a lineage-suffixed copy is only returned when it is the only one.
    """
    prefix = f"{tenant_prefix}/mysql/" + (f"{server_id}/" if server_id is not None else "")
    exact, lineage = [], []
    for info in backend.list(prefix):
        base = info.key.rsplit("/", 1)[-1]
        if "/quarantine/" in info.key or base.endswith(objects.INDEX_SUFFIX):
            continue
        if base == binlog_name + objects.OBJECT_SUFFIX:
            exact.append(info)
        elif base.startswith(binlog_name + ".lineage-"):
            lineage.append(info)
    found = exact or lineage
    if not found:
        raise ObjectNotFound(
            f"binlog {binlog_name} is not in the archive at {backend.url}/{prefix}"
        )
    if len(found) > 1:
        keys = ", ".join(i.key for i in found)
        raise ShipperError(
            f"binlog {binlog_name} is archived more than once ({keys}); "
            "choose one with --server-id or --key"
        )
    return found[0]


def fetch_to_file(
    backend: StorageBackend, key: str, providers: Sequence[KeyProvider], dest: Path
) -> FetchResult:
    contexts = objects.accepted_contexts(key)  # a key outside the layout: refused first
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stat = backend.stat(key)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, contextlib.closing(backend.open(key)) as src:
            res = envelope.unseal(src, out, providers=providers, expected_context=contexts)
            out.flush()
            os.fsync(out.fileno())
        want = objects.ObjectMeta.from_metadata(stat.metadata).plaintext_sha256
        if want and want != res.plaintext_sha256:
            raise IntegrityError(
                f"{backend.url}/{key}: decrypted bytes have sha256 "
                f"{res.plaintext_sha256}, metadata says {want}"
            )
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return FetchResult(
        key=key, path=dest, plaintext_size=res.plaintext_size, plaintext_sha256=res.plaintext_sha256
    )


def read_object(backend: StorageBackend, key: str, providers: Sequence[KeyProvider]) -> bytes:
    """Decrypt a small object (a transaction index) into memory."""
    contexts = objects.accepted_contexts(key)
    out = io.BytesIO()
    with contextlib.closing(backend.open(key)) as src:
        envelope.unseal(src, out, providers=providers, expected_context=contexts)
    return out.getvalue()


def verify_object(
    backend: StorageBackend,
    key: str,
    providers: Sequence[KeyProvider],
    plaintext_sha256: str,
    plaintext_size: int | None = None,
) -> None:
    """Read ``key`` back in full, decrypt and decompress it into a hash sink (no plaintext
    on disk); its plaintext must have ``plaintext_sha256`` (and ``plaintext_size``)."""
    contexts = objects.accepted_contexts(key)
    sink = HashSink()
    with contextlib.closing(backend.open(key)) as src:
        res = envelope.unseal(
            src,
            sink,  # type: ignore[arg-type]
            providers=providers,
            expected_context=contexts,
        )
    if res.plaintext_sha256 != plaintext_sha256 or (
        plaintext_size is not None and res.plaintext_size != plaintext_size
    ):
        raise IntegrityError(
            f"{backend.url}/{key}: read back as {res.plaintext_size} bytes "
            f"with sha256 {res.plaintext_sha256}, expected {plaintext_sha256}"
        )


class HashSink:
    """A write-only file that only hashes what it is given."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def write(self, b: bytes) -> int:
        self.h.update(b)
        return len(b)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
