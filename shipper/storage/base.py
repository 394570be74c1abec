"""The storage contract every backend implements.

The protocol is deliberately tiny (as litestream's ReplicaClient): put with a
precondition, open a byte range, stat, list, delete. Compression, encryption,
retries and metrics are *not* here; they sit above a backend or wrap it.

Every backend maps its SDK's errors onto exactly three domain errors in one
private helper: :class:`~shipper.errors.ObjectNotFound`,
:class:`~shipper.errors.PreconditionFailed` and
:class:`~shipper.errors.StorageError` (or its subclass ``PermissionDenied``).
Callers never see an SDK exception type. The same helper says whether a
``StorageError`` may pass if asked again (``transient``: throttling, 5xx,
timeouts, connection resets) or will not (access denied, invalid argument,
metadata too large); only transient ones are retried.

Each backend declares what it can do in ``capabilities`` (:class:`Capabilities`),
so callers never sniff the URL scheme.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about a stored object."""

    key: str
    size: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Backend-specific version token (S3 VersionId/ETag, GCS generation, file mtime_ns).
    version: str = ""
    # Hex SHA-256 of the stored bytes when the backend knows it (file, memory, S3 checksum).
    sha256: str | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers; callers choose behaviour from this, not from the URL."""

    #: what ``verify = "auto"`` means here: "full" (read the whole object back) or
    #: "prefix" (the service checked our checksum on upload; read header + chunk 0)
    verify_mode: str
    #: ``put(if_none_match=True)`` is atomic on the service (never a check-then-write)
    conditional_create: bool
    #: the service keeps older versions/generations of an object
    versions: bool = False
    #: an object can be copied inside the service without downloading it
    server_side_copy: bool = False
    #: objects can be composed from others inside the service (GCS compose)
    compose: bool = False


@runtime_checkable
class StorageBackend(Protocol):
    """A place that keeps immutable objects under string keys.

    Contract (enforced by the memory backend and by tests/integration/storage's
    contract suite, run against every backend):

    * ``put`` with ``if_none_match=True`` (the only mode the shipper uses) writes
      the object only if no object exists at ``key``; otherwise it raises
      ``PreconditionFailed`` and leaves the existing object untouched. A failed
      or interrupted put leaves no object and no partial upload behind.
    * ``put`` reads ``source`` to its end exactly once and does not close it.
    * ``open`` returns a readable binary stream of the object, or of
      ``[offset, offset+length)``; it raises ``ObjectNotFound``.
    * ``list`` yields objects whose key starts with ``prefix``, sorted by key.
    * ``delete`` of a missing key raises ``ObjectNotFound``.
    """

    url: str
    capabilities: Capabilities

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        size: int,
        metadata: Mapping[str, str],
        if_none_match: bool = True,
    ) -> ObjectInfo: ...

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO: ...

    def stat(self, key: str) -> ObjectInfo: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...
