"""Storage backends: the protocol, and the one factory that builds and wraps them.

``open_backend("file:///var/lib/archive")``, ``open_backend("s3://bucket/prefix")``,
``open_backend("gs://bucket/prefix")``, ``open_backend("memory://name")``: see
:mod:`shipper.storage.factory`. Each backend declares its ``capabilities``
(:class:`Capabilities`) and classifies its own errors (``StorageError.transient``).
"""

from __future__ import annotations

from shipper.storage.base import Capabilities, ObjectInfo, StorageBackend
from shipper.storage.factory import build_backend, open_backend, register_scheme

__all__ = [
    "Capabilities",
    "ObjectInfo",
    "StorageBackend",
    "build_backend",
    "open_backend",
    "register_scheme",
]
