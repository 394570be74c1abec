"""In-memory backend for tests. It *enforces* the contract: overwrites are
refused, the declared size must match what was read, and stored bytes are
kept with their SHA-256 so tests can prove nothing was altered."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator, Mapping
from typing import BinaryIO

from shipper.errors import ObjectNotFound, PreconditionFailed, StorageError
from shipper.storage.base import Capabilities, ObjectInfo


class MemoryBackend:
    #: Every error here is the caller's (a size mismatch): none is transient.
    capabilities = Capabilities(verify_mode="full", conditional_create=True)

    def __init__(self, name: str = "default") -> None:
        self.url = f"memory://{name}"
        self._objects: dict[str, tuple[bytes, dict[str, str], int]] = {}
        self._lock = threading.Lock()
        self._generation = 0

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        size: int,
        metadata: Mapping[str, str],
        if_none_match: bool = True,
    ) -> ObjectInfo:
        data = source.read()
        if len(data) != size:
            raise StorageError(f"{self.url}/{key}: declared size {size} but read {len(data)} bytes")
        with self._lock:
            if if_none_match and key in self._objects:
                raise PreconditionFailed(f"{self.url}/{key} already exists")
            self._generation += 1
            self._objects[key] = (data, dict(metadata), self._generation)
        return self._info(key, data, dict(metadata), self._generation)

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        data = self._get(key)[0]
        end = len(data) if length is None else offset + length
        return io.BytesIO(data[offset:end])

    def stat(self, key: str) -> ObjectInfo:
        data, meta, gen = self._get(key)
        return self._info(key, data, meta, gen)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            items = sorted((k, v) for k, v in self._objects.items() if k.startswith(prefix))
        for key, (data, meta, gen) in items:
            yield self._info(key, data, meta, gen)

    def delete(self, key: str) -> None:
        with self._lock:
            if key not in self._objects:
                raise ObjectNotFound(f"{self.url}/{key} does not exist")
            del self._objects[key]

    # -- test helpers (not part of the protocol) --
    def corrupt(self, key: str, offset: int) -> None:
        """Flip one byte of a stored object (for integrity tests)."""
        with self._lock:
            data, meta, gen = self._objects[key]
            buf = bytearray(data)
            buf[offset] ^= 0xFF
            self._objects[key] = (bytes(buf), meta, gen)

    def _get(self, key: str) -> tuple[bytes, dict[str, str], int]:
        with self._lock:
            try:
                return self._objects[key]
            except KeyError:
                raise ObjectNotFound(f"{self.url}/{key} does not exist") from None

    def _info(self, key: str, data: bytes, meta: dict[str, str], gen: int) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=len(data),
            metadata=dict(meta),
            version=str(gen),
            sha256=hashlib.sha256(data).hexdigest(),
        )
