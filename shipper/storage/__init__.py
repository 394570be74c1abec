"""Storage backends and the URL registry.

``open_backend("file:///var/lib/archive")``, ``open_backend("s3://bucket/prefix")``,
``open_backend("gs://bucket/prefix")``, ``open_backend("memory://name")``.
Cloud SDKs are imported lazily, only for the scheme in use (as barman does),
so a host that ships to S3 need not install google-cloud-storage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

from shipper.errors import ConfigError
from shipper.storage.base import ObjectInfo, StorageBackend

__all__ = ["ObjectInfo", "StorageBackend", "open_backend", "register_scheme"]

_Factory = Callable[[str, Mapping[str, Any]], StorageBackend]
_SCHEMES: dict[str, _Factory] = {}


def register_scheme(scheme: str, factory: _Factory) -> None:
    _SCHEMES[scheme] = factory


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
    from shipper.storage.s3 import S3Backend  # type: ignore[import-not-found,unused-ignore]

    return S3Backend.from_url(url, opts)  # type: ignore[no-any-return,unused-ignore]


def _gs(url: str, opts: Mapping[str, Any]) -> StorageBackend:
    from shipper.storage.gcs import GCSBackend  # type: ignore[import-not-found,unused-ignore]

    return GCSBackend.from_url(url, opts)  # type: ignore[no-any-return,unused-ignore]


register_scheme("file", _file)
register_scheme("memory", _memory)
register_scheme("s3", _s3)
register_scheme("gs", _gs)


def open_backend(url: str, options: Mapping[str, Any] | None = None) -> StorageBackend:
    scheme = urlparse(url).scheme
    try:
        factory = _SCHEMES[scheme]
    except KeyError:
        known = ", ".join(sorted(f"{s}://" for s in _SCHEMES))
        raise ConfigError(f"target {url!r}: unknown scheme {scheme!r} (known: {known})") from None
    return factory(url, options or {})
