"""Key providers wrap and unwrap per-object data keys (DEKs).

The envelope generates a fresh 32-byte DEK for every object and asks each of
the tenant's providers to wrap it. Any single provider can later unwrap it, so
a dual-cloud tenant can decrypt with AWS KMS alone or GCP KMS alone.

``context`` binds the wrapped key to where the object belongs (tenant, server
id, binlog name). Providers must authenticate it (KMS EncryptionContext, GCP
KMS additional authenticated data, AES-GCM AAD for the local keyring), so a
wrapped key copied under another tenant's prefix fails to unwrap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class KeyProvider(Protocol):
    #: Short type name stored in the envelope header: "local", "aws-kms", "gcp-kms".
    kind: str
    #: Which key (keyring fingerprint, KMS key ARN, GCP key resource name).
    key_id: str

    def wrap(self, dek: bytes, context: Mapping[str, str]) -> bytes:
        """Encrypt ``dek`` bound to ``context``. Raises KeyProviderError."""
        ...

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        """Decrypt a wrapped DEK; fails (KeyProviderError) if the key or context differ."""
        ...
