"""``gcp-kms`` key provider: the data key is wrapped by Cloud KMS ``encrypt``.

The encryption context (tenant, server, binlog) is bound as *additional
authenticated data*: canonical JSON (sorted keys, no spaces, ASCII -- the same
form the local keyring uses). Cloud KMS authenticates it, so ``decrypt`` with
any other context fails. Requests and responses carry CRC32C values as Google
recommends, and both directions are checked, so a bit flipped in transit is an
error, not a wrong key.

``key_name`` is the CryptoKey resource
(``projects/P/locations/L/keyRings/R/cryptoKeys/K``): encrypt uses its primary
version, decrypt finds the version from the ciphertext.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shipper.errors import ConfigError, KeyProviderError


def context_aad(context: Mapping[str, str]) -> bytes:
    return json.dumps(
        dict(context), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def _crc32c(data: bytes) -> int:
    import google_crc32c

    return int(google_crc32c.value(data))


class GcpKmsProvider:
    kind = "gcp-kms"

    def __init__(self, key_name: str, *, client: Any = None) -> None:
        if not key_name or "/cryptoKeys/" not in key_name:
            raise ConfigError(
                f"gcp-kms: key_name {key_name!r} must be "
                "projects/P/locations/L/keyRings/R/cryptoKeys/K"
            )
        self.key_id = key_name
        self.client = client if client is not None else _make_client()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> GcpKmsProvider:
        key_name = cfg.get("key_name")
        if not isinstance(key_name, str):
            raise ConfigError('keys: gcp-kms needs key_name = "projects/.../cryptoKeys/..."')
        return cls(key_name, client=cfg.get("client"))

    def wrap(self, dek: bytes, context: Mapping[str, str]) -> bytes:
        aad = context_aad(context)
        try:
            r = self.client.encrypt(
                request={
                    "name": self.key_id,
                    "plaintext": dek,
                    "additional_authenticated_data": aad,
                    "plaintext_crc32c": _crc32c(dek),
                    "additional_authenticated_data_crc32c": _crc32c(aad),
                }
            )
        except Exception as e:
            raise _error(e, self.key_id, "wrap") from e
        ciphertext = bytes(r.ciphertext)
        if not (
            r.verified_plaintext_crc32c
            and r.verified_additional_authenticated_data_crc32c
            and int(r.ciphertext_crc32c) == _crc32c(ciphertext)
        ):
            raise KeyProviderError(
                f"GCP KMS encrypt with {self.key_id}: the request or response "
                "was corrupted in transit (CRC32C check failed); retry"
            )
        return ciphertext

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        aad = context_aad(context)
        try:
            r = self.client.decrypt(
                request={
                    "name": self.key_id,
                    "ciphertext": wrapped,
                    "additional_authenticated_data": aad,
                    "ciphertext_crc32c": _crc32c(wrapped),
                    "additional_authenticated_data_crc32c": _crc32c(aad),
                }
            )
        except Exception as e:
            raise _error(e, self.key_id, "unwrap") from e
        plaintext = bytes(r.plaintext)
        if int(r.plaintext_crc32c) != _crc32c(plaintext):
            raise KeyProviderError(
                f"GCP KMS decrypt with {self.key_id}: the response was "
                "corrupted in transit (CRC32C check failed); retry"
            )
        return plaintext

    def __repr__(self) -> str:
        return f"GcpKmsProvider({self.key_id!r})"


def _make_client() -> Any:
    try:
        from google.cloud import kms
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ConfigError(
            "gcp-kms needs google-cloud-kms: pip install 'binlog-shipper[gcp]'"
        ) from e
    try:
        return kms.KeyManagementServiceClient()
    except Exception as e:  # DefaultCredentialsError and friends
        raise KeyProviderError(f"GCP KMS: cannot create a client: {e}") from e


def _error(e: BaseException, key_name: str, action: str) -> KeyProviderError:
    """The one place Cloud KMS errors become KeyProviderError."""
    name = type(e).__name__
    code = getattr(e, "code", None)
    status = code if isinstance(code, int) else None
    msg_text = getattr(e, "message", None) or str(e)
    if name in ("PermissionDenied", "Unauthenticated", "Forbidden") or status in (401, 403):
        perm = "cloudkms.cryptoKeyVersions.useTo" + ("Encrypt" if action == "wrap" else "Decrypt")
        msg = (
            f"GCP KMS refused to {action} with key {key_name}: {msg_text}; the caller needs {perm}"
        )
    elif name == "FailedPrecondition":
        msg = f"GCP KMS key {key_name} cannot be used (version disabled or destroyed?): {msg_text}"
    elif name == "NotFound" or status == 404:
        msg = f"GCP KMS key {key_name} does not exist: {msg_text}"
    elif name == "InvalidArgument" and action == "unwrap":
        msg = (
            f"GCP KMS could not unwrap the data key with {key_name}: the additional "
            "authenticated data (tenant, server, binlog) or the key does not match the one it "
            f"was wrapped with -- was the object moved or copied from elsewhere? ({msg_text})"
        )
    elif name in ("DefaultCredentialsError", "RefreshError"):
        msg = f"GCP KMS: no usable Google credentials to {action} with {key_name}: {msg_text}"
    else:
        msg = f"GCP KMS {action} with key {key_name} failed: {name}: {msg_text}"
    return KeyProviderError(msg)
