"""The one factory: URL -> backend -> wrappers, with capabilities on every backend."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import pytest

from shipper.errors import ConfigError
from shipper.storage import Capabilities, ObjectInfo, StorageBackend, build_backend, open_backend
from shipper.storage.file import FileBackend
from shipper.storage.memory import MemoryBackend
from shipper.storage.retry import RetryingBackend


class Counting:
    """A wrapper as the resilience layer would write one: same protocol, same capabilities."""

    def __init__(self, inner: StorageBackend) -> None:
        self.inner, self.url, self.capabilities = inner, inner.url, inner.capabilities
        self.puts = 0

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        size: int,
        metadata: Mapping[str, str],
        if_none_match: bool = True,
    ) -> ObjectInfo:
        self.puts += 1
        return self.inner.put(
            key, source, size=size, metadata=metadata, if_none_match=if_none_match
        )

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return self.inner.open(key, offset, length)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def test_open_backend_applies_the_wrappers_in_order(tmp_path: Path) -> None:
    b = open_backend(f"file://{tmp_path}/a", wrappers=[Counting, Counting])
    assert isinstance(b, Counting) and isinstance(b.inner, Counting)
    assert isinstance(b.inner.inner, FileBackend)
    b.put("k", io.BytesIO(b"x"), size=1, metadata={})
    assert (b.puts, b.inner.puts) == (1, 1)
    assert b.capabilities == FileBackend.capabilities
    assert isinstance(b, StorageBackend)


def test_build_backend_is_the_bare_backend_and_schemes_are_checked(tmp_path: Path) -> None:
    assert isinstance(build_backend(f"file://{tmp_path}/a"), FileBackend)
    wrapped = open_backend("memory://factory-test")
    assert isinstance(wrapped, RetryingBackend) and isinstance(wrapped.inner, MemoryBackend)
    with pytest.raises(ConfigError, match="unknown scheme 'ftp'"):
        open_backend("ftp://host/x")
    with pytest.raises(ConfigError, match="needs a path"):
        open_backend("file://")


def test_capabilities_are_declared_per_backend_not_per_url() -> None:
    assert MemoryBackend.capabilities == Capabilities(verify_mode="full", conditional_create=True)
    assert FileBackend.capabilities.verify_mode == "full"
    with pytest.raises(AttributeError):
        FileBackend.capabilities.verify_mode = "prefix"  # type: ignore[misc]


class ReadOnly:
    """A source with read() only, as the storage protocol allows (a pipe, a checking reader)."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._src.read(n)


def test_a_source_with_read_only_goes_through_the_retry_wrapper() -> None:
    backend = open_backend("memory://retry-read-only")
    assert isinstance(backend, RetryingBackend)
    data = b"x" * 100_000
    backend.put("k", ReadOnly(data), size=len(data), metadata={})  # type: ignore[arg-type]
    assert backend.open("k").read() == data
