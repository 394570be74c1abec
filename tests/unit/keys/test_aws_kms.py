"""aws-kms provider against moto server's KMS over HTTP.

moto really authenticates the encryption context (AES-GCM with the serialized
context as AAD), so the context-mismatch test is not a stub. moto does *not*
refuse Encrypt/Decrypt on a disabled key or honour key-policy denies for them
(only DescribeKey); "denied" is therefore tested on the IAM-enforcing moto
server, and the DisabledException message on the error mapper directly.
"""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import ClientError

from shipper.errors import ConfigError, KeyProviderError
from shipper.keys import make_provider
from shipper.keys.aws_kms import AwsKmsProvider, _error
from tests.services.cloud import Moto, MotoAuth

CTX = {"tenant": "acme", "server_id": "7", "binlog_name": "mariadb-bin.000042"}


@pytest.fixture
def provider(moto: Moto) -> AwsKmsProvider:
    p = make_provider(
        {
            "provider": "aws-kms",
            "key_id": moto.kms_key(),
            "region": moto.region,
            "endpoint_url": moto.endpoint_url,
        }
    )
    assert isinstance(p, AwsKmsProvider)
    return p


def test_round_trip(provider: AwsKmsProvider) -> None:
    dek = os.urandom(32)
    wrapped = provider.wrap(dek, CTX)
    assert dek not in wrapped
    assert provider.unwrap(wrapped, CTX) == dek
    assert provider.kind == "aws-kms" and provider.key_id.startswith("arn:aws:kms:")


@pytest.mark.parametrize("field", sorted(CTX))
def test_context_mismatch_fails(provider: AwsKmsProvider, field: str) -> None:
    """An object copied under another tenant/server/binlog must not decrypt."""
    wrapped = provider.wrap(os.urandom(32), CTX)
    with pytest.raises(KeyProviderError, match="encryption context"):
        provider.unwrap(wrapped, {**CTX, field: CTX[field] + "x"})
    with pytest.raises(KeyProviderError):
        provider.unwrap(wrapped, {})


def test_other_key_refuses(provider: AwsKmsProvider, moto: Moto) -> None:
    other = AwsKmsProvider(moto.kms_key(), region=moto.region, endpoint_url=moto.endpoint_url)
    wrapped = provider.wrap(os.urandom(32), CTX)
    with pytest.raises(KeyProviderError, match=other.key_id):
        other.unwrap(wrapped, CTX)


def test_tampered_ciphertext(provider: AwsKmsProvider) -> None:
    wrapped = bytearray(provider.wrap(os.urandom(32), CTX))
    wrapped[-1] ^= 1
    with pytest.raises(KeyProviderError, match="could not unwrap"):
        provider.unwrap(bytes(wrapped), CTX)


def test_missing_key(moto: Moto) -> None:
    p = AwsKmsProvider("alias/no-such-key", region=moto.region, endpoint_url=moto.endpoint_url)
    with pytest.raises(KeyProviderError, match="alias/no-such-key"):
        p.wrap(os.urandom(32), CTX)


def test_denied_key(moto_auth: MotoAuth) -> None:
    """The IAM user may use S3 but holds no kms:Encrypt/Decrypt."""
    kms = moto_auth.client("kms", **moto_auth.allowed)
    p = AwsKmsProvider(moto_auth.kms_key_arn, client=kms)
    with pytest.raises(KeyProviderError, match=r"refused to wrap.*kms:Encrypt") as e:
        p.wrap(os.urandom(32), CTX)
    assert moto_auth.kms_key_arn in str(e.value)
    assert isinstance(e.value.__cause__, ClientError)


def test_rejected_credentials(moto_auth: MotoAuth) -> None:
    kms = moto_auth.client(
        "kms", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="wrong"
    )
    with pytest.raises(KeyProviderError, match="refused"):
        AwsKmsProvider(moto_auth.kms_key_arn, client=kms).wrap(os.urandom(32), CTX)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("DisabledException", "is disabled"),
        ("KMSInvalidStateException", "cannot be used now"),
        ("AccessDeniedException", "kms:Decrypt"),
        ("InvalidCiphertextException", "encryption context"),
    ],
)
def test_error_messages_name_the_key(code: str, words: str) -> None:
    err = ClientError({"Error": {"Code": code, "Message": "m"}}, "Decrypt")
    mapped = _error(err, "arn:aws:kms:us-east-1:1:key/k", "unwrap")
    assert isinstance(mapped, KeyProviderError)
    assert words in str(mapped) and "key/k" in str(mapped)


def test_config_needs_key_id() -> None:
    with pytest.raises(ConfigError, match="key_id"):
        make_provider({"provider": "aws-kms"})
