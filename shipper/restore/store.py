"""Archive I/O for restore and base backups, over any StorageBackend.

The protocol is restated structurally here (not imported) so the restore
package type-checks on its own; every ``shipper.storage`` backend satisfies it.
Fetched plaintext goes to a temporary file renamed into place only after the
whole object authenticated and matched its recorded SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from shipper import envelope
from shipper.errors import IntegrityError
from shipper.keys.base import KeyProvider


class ObjectStore(Protocol):
    url: str

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        size: int,
        metadata: Mapping[str, str],
        if_none_match: bool = True,
    ) -> Any: ...

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO: ...

    def stat(self, key: str) -> Any: ...


class HashSink:
    """A write-only file that hashes what it is given (verification without plaintext)."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.n = 0

    def write(self, b: bytes) -> int:
        self.h.update(b)
        self.n += len(b)
        return len(b)


class HashingReader:
    """Wraps a stream: hashes and counts what is read, and keeps the first ``keep`` bytes."""

    def __init__(self, src: BinaryIO, keep: int = 1 << 20) -> None:
        self.src = src
        self.h = hashlib.sha256()
        self.n = 0
        self.keep = keep
        self.head = bytearray()

    def read(self, n: int = -1) -> bytes:
        b = self.src.read(n)
        self.h.update(b)
        self.n += len(b)
        if len(self.head) < self.keep:
            self.head += b[: self.keep - len(self.head)]
        return b


def fetch(store: ObjectStore, key: str, providers: Sequence[KeyProvider], dest: Path) -> str:
    """Download, authenticate and decrypt ``key`` to ``dest``; returns the plaintext SHA-256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    want = dict(store.stat(key).metadata).get("plaintext_sha256")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, contextlib.closing(store.open(key)) as src:
            res = envelope.unseal(src, out, providers=providers)
        if want and want != res.plaintext_sha256:
            raise IntegrityError(
                f"{store.url}/{key}: decrypted bytes have sha256 "
                f"{res.plaintext_sha256}, metadata says {want}"
            )
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return res.plaintext_sha256


def read_bytes(store: ObjectStore, key: str, providers: Sequence[KeyProvider]) -> bytes:
    out = io.BytesIO()
    with contextlib.closing(store.open(key)) as src:
        envelope.unseal(src, out, providers=providers)
    return out.getvalue()


def verify(
    store: ObjectStore, key: str, providers: Sequence[KeyProvider], plaintext_sha256: str
) -> None:
    """Read ``key`` back and decrypt it; its plaintext must hash to ``plaintext_sha256``."""
    sink = HashSink()
    with contextlib.closing(store.open(key)) as src:
        res = envelope.unseal(src, cast(BinaryIO, sink), providers=providers)
    if res.plaintext_sha256 != plaintext_sha256:
        raise IntegrityError(
            f"{store.url}/{key}: read back with sha256 {res.plaintext_sha256}, "
            f"expected {plaintext_sha256}"
        )


def put_file(store: ObjectStore, key: str, path: Path, metadata: Mapping[str, str]) -> None:
    with path.open("rb") as f:
        store.put(key, f, size=path.stat().st_size, metadata=metadata)
