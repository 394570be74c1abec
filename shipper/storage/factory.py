"""The one place storage backends are built from URLs and wrapped.

``open_backend(url, options)``: the URL's scheme picks a builder, the builder
makes the backend (its SDK imported only then, as barman does, so a host that
ships to S3 need not install google-cloud-storage, and a host without a gs://
target never looks for Google credentials), then the wrappers in
:data:`WRAPPERS` are applied in order (as restic chains ``retry``, ``limiter``,
``logger`` around a backend). A wrapper takes a backend and returns one with the
same protocol and the same ``capabilities``.

Every backend gets the retry wrapper (``storage/retry.py``) with the default
policy, so no caller retries by hand. The shipper asks for its tenant's
policy and a circuit breaker per target with :func:`resilient`::

    breaker( retry( backend ) )

The breaker is outside the retries: it counts operations that failed after
their retries, and an open circuit refuses a call before any retry sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from shipper.errors import ConfigError
from shipper.resilience import DEFAULT, ResilienceConfig
from shipper.storage.base import StorageBackend
from shipper.storage.breaker import BreakingBackend, CircuitBreaker
from shipper.storage.retry import ErrorHook, RetryingBackend

Builder = Callable[[str, Mapping[str, Any]], StorageBackend]
Wrapper = Callable[[StorageBackend], StorageBackend]

_BUILDERS: dict[str, Builder] = {}
#: The chain every backend from :func:`open_backend` goes through, innermost first.
WRAPPERS: tuple[Wrapper, ...] = (RetryingBackend,)


def resilient(
    policy: ResilienceConfig = DEFAULT,
    *,
    breaker: CircuitBreaker | None = None,
    on_error: ErrorHook | None = None,
) -> list[Wrapper]:
    """The wrappers for ``policy``: retries, then (outermost) ``breaker`` if given."""
    out: list[Wrapper] = [lambda b: RetryingBackend(b, policy, on_error)]
    if breaker is not None:
        out.append(lambda b: BreakingBackend(b, breaker))
    return out


def register_scheme(scheme: str, builder: Builder) -> None:
    _BUILDERS[scheme] = builder


def build_backend(url: str, options: Mapping[str, Any] | None = None) -> StorageBackend:
    """The bare backend for ``url`` (no wrappers): for the wrappers themselves and tests."""
    scheme = urlparse(url).scheme
    try:
        builder = _BUILDERS[scheme]
    except KeyError:
        known = ", ".join(sorted(f"{s}://" for s in _BUILDERS))
        raise ConfigError(f"target {url!r}: unknown scheme {scheme!r} (known: {known})") from None
    return builder(url, options or {})


def open_backend(
    url: str,
    options: Mapping[str, Any] | None = None,
    *,
    wrappers: Sequence[Wrapper] | None = None,
) -> StorageBackend:
    """The backend for ``url`` inside ``wrappers`` (default :data:`WRAPPERS`), in order."""
    backend = build_backend(url, options)
    for wrap in WRAPPERS if wrappers is None else wrappers:
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
