"""Restore-side helpers for streaming base backups into the archive.

Reading objects back (fetch, verify, decrypt) lives in :mod:`shipper.archive`,
shared with ``fetch`` and the shipper's verification.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from shipper.storage.base import StorageBackend


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


def put_file(store: StorageBackend, key: str, path: Path, metadata: Mapping[str, str]) -> None:
    with path.open("rb") as f:
        store.put(key, f, size=path.stat().st_size, metadata=metadata)
