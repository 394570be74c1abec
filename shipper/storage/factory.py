"""The one place storage backends are built from URLs and wrapped.

``open_backend(url, options)``: the URL's scheme picks a builder, the builder
makes the backend (its SDK imported only then, as barman does, so a host that
ships to S3 need not install google-cloud-storage, and a host without a gs://
target never looks for Google credentials), then every registered wrapper is
applied in order (as restic chains ``retry``, ``limiter``, ``logger`` around a
backend). A wrapper takes a backend and returns one with the same protocol and
the same ``capabilities``; the resilience layer registers its retry and
circuit-breaker wrappers here, so every caller gets them by calling
``open_backend`` and no caller builds a backend itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

from shipper.errors import ConfigError
from shipper.storage.base import StorageBackend

Builder = Callable[[str, Mapping[str, Any]], StorageBackend]
Wrapper = Callable[[StorageBackend], StorageBackend]

_BUILDERS: dict[str, Builder] = {}
_WRAPPERS: list[tuple[str, Wrapper]] = []


def register_scheme(scheme: str, builder: Builder) -> None:
    _BUILDERS[scheme] = builder


def register_wrapper(name: str, wrapper: Wrapper) -> None:
    """Add ``wrapper`` to the chain every opened backend goes through (once per name)."""
    if all(n != name for n, _ in _WRAPPERS):
        _WRAPPERS.append((name, wrapper))


def build_backend(url: str, options: Mapping[str, Any] | None = None) -> StorageBackend:
    """The bare backend for ``url`` (no wrappers): for the wrappers themselves and tests."""
    scheme = urlparse(url).scheme
    try:
        builder = _BUILDERS[scheme]
    except KeyError:
        known = ", ".join(sorted(f"{s}://" for s in _BUILDERS))
        raise ConfigError(f"target {url!r}: unknown scheme {scheme!r} (known: {known})") from None
    return builder(url, options or {})


def open_backend(url: str, options: Mapping[str, Any] | None = None) -> StorageBackend:
    """The backend for ``url`` with every registered wrapper around it."""
    backend = build_backend(url, options)
    for _name, wrap in _WRAPPERS:
        backend = wrap(backend)
    return backend


def _file(url: str, _opts: Mapping[str, Any]) -> StorageBackend:
    from shipper.storage.file import FileBackend

    parsed = urlparse(url)
    path = (parsed.netloc + parsed.path) if parsed.netloc not in ("", "localhost") else parsed.path
    if not path:
        raise ConfigError(f"target {url!r}: file:// URL needs a path")
    return FileBackend(path)


_MEMORY: dict[str, StorageBackend] = {}


def _memory(url: str, _opts: Mapping[str, Any]) -> StorageBackend:
    from shipper.storage.memory import MemoryBackend

    name = urlparse(url).netloc or "default"
    return _MEMORY.setdefault(name, MemoryBackend(name))


def _s3(url: str, opts: Mapping[str, Any]) -> StorageBackend:
    from shipper.storage.s3 import S3Backend

    return S3Backend.from_url(url, opts)


def _gs(url: str, opts: Mapping[str, Any]) -> StorageBackend:
    from shipper.storage.gcs import GCSBackend

    return GCSBackend.from_url(url, opts)


register_scheme("file", _file)
register_scheme("memory", _memory)
register_scheme("s3", _s3)
register_scheme("gs", _gs)
