"""``aws-kms`` key provider: the data key is wrapped by AWS KMS ``Encrypt``.

The envelope makes one data key per object and asks every provider to wrap
*that* key, so this provider uses ``Encrypt`` (not ``GenerateDataKey``, which
would invent a second key). The encryption context (tenant, server, binlog) is
sent as KMS ``EncryptionContext``: KMS authenticates it, and ``Decrypt`` with
any other context fails -- an object copied under another tenant's prefix
cannot be decrypted there. ``Decrypt`` also names the key, so a ciphertext
made under a different key is refused instead of silently used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shipper.errors import ConfigError, KeyProviderError

_DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignature",
    "ExpiredTokenException",
    "InvalidClientTokenId",
}


class AwsKmsProvider:
    kind = "aws-kms"

    def __init__(
        self,
        key_id: str,
        *,
        client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        if not key_id:
            raise ConfigError("aws-kms: key_id (key ARN, id or alias) is required")
        self.key_id = key_id
        self.region = region
        self.endpoint_url = endpoint_url
        self.client = client if client is not None else self._make_client()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> AwsKmsProvider:
        key_id = cfg.get("key_id")
        if not isinstance(key_id, str) or not key_id:
            raise ConfigError('keys: aws-kms needs key_id = "arn:aws:kms:..." (or an alias)')
        return cls(
            key_id,
            client=cfg.get("client"),
            region=cfg.get("region"),
            endpoint_url=cfg.get("endpoint_url"),
        )

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "kms",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )

    def wrap(self, dek: bytes, context: Mapping[str, str]) -> bytes:
        try:
            r = self.client.encrypt(
                KeyId=self.key_id, Plaintext=dek, EncryptionContext=dict(context)
            )
        except Exception as e:
            raise _error(e, self.key_id, "wrap") from e
        return bytes(r["CiphertextBlob"])

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        try:
            r = self.client.decrypt(
                KeyId=self.key_id, CiphertextBlob=wrapped, EncryptionContext=dict(context)
            )
        except Exception as e:
            raise _error(e, self.key_id, "unwrap") from e
        return bytes(r["Plaintext"])

    def __repr__(self) -> str:
        return f"AwsKmsProvider({self.key_id!r})"


_XML_ERROR = re.compile(r"<Code>([^<]+)</Code>.*?<Message>([^<]*)</Message>", re.S)


def error_code(e: BaseException) -> tuple[str, str, int | None]:
    """(code, message, HTTP status) of a botocore error.

    An IAM refusal from moto server reaches a JSON-protocol service like KMS
    as an XML body botocore cannot parse (code "403", message = the XML), so
    the real code and message are dug out of it.
    """
    response = getattr(e, "response", None)
    if not isinstance(response, dict):
        return "", str(e), None
    err = response.get("Error", {})
    code, message = str(err.get("Code", "")), str(err.get("Message") or e)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    m = _XML_ERROR.search(message)
    if m:
        code, message = m.group(1), m.group(2)
    return code, message, int(status) if status else None


def _error(e: BaseException, key_id: str, action: str) -> KeyProviderError:
    """The one place KMS/botocore errors become KeyProviderError, with a message to act on."""
    code, detail, status = error_code(e)
    if code in _DENIED or status in (401, 403):
        msg = (
            f"AWS KMS refused to {action} with key {key_id}: {code} ({detail}); the "
            f"caller needs kms:{'Encrypt' if action == 'wrap' else 'Decrypt'} on this key"
        )
    elif code == "DisabledException":
        msg = f"AWS KMS key {key_id} is disabled: enable it to {action} data keys"
    elif code == "KMSInvalidStateException":
        msg = f"AWS KMS key {key_id} cannot be used now (pending deletion or import?): {detail}"
    elif code == "NotFoundException":
        msg = f"AWS KMS key {key_id} does not exist in this account/region: {detail}"
    elif code in ("InvalidCiphertextException", "IncorrectKeyException"):
        msg = (
            f"AWS KMS could not unwrap the data key with {key_id}: the encryption context "
            "(tenant, server, binlog) or the key does not match the one it was wrapped with "
            "-- was the object moved or copied from elsewhere?"
        )
    elif code:
        msg = f"AWS KMS {action} with key {key_id} failed: {code}: {detail}"
    else:
        msg = f"AWS KMS {action} with key {key_id} failed: {type(e).__name__}: {e}"
    return KeyProviderError(msg)
