"""gcp-kms provider against an in-process fake of KeyManagementServiceClient.

Cloud KMS has no local emulator. The fake (tests/services/cloud.py) takes and
returns the real request/response message types and does real AES-256-GCM
with the request's additional authenticated data, so a context mismatch fails
for the same reason it fails in Cloud KMS, not because the fake was told to.
"""

from __future__ import annotations

import os

import pytest

from shipper.errors import ConfigError, KeyProviderError
from shipper.keys import make_provider
from shipper.keys.gcp_kms import GcpKmsProvider, context_aad
from tests.services.cloud import FakeGcpKms

CTX = {"tenant": "acme", "server_id": "7", "binlog_name": "mariadb-bin.000042"}


@pytest.fixture
def provider(fake_gcp_kms: FakeGcpKms) -> GcpKmsProvider:
    p = make_provider(
        {"provider": "gcp-kms", "key_name": fake_gcp_kms.create_key(), "client": fake_gcp_kms}
    )
    assert isinstance(p, GcpKmsProvider)
    return p


def test_round_trip(provider: GcpKmsProvider, fake_gcp_kms: FakeGcpKms) -> None:
    dek = os.urandom(32)
    wrapped = provider.wrap(dek, CTX)
    assert dek not in wrapped
    assert provider.unwrap(wrapped, CTX) == dek
    assert fake_gcp_kms.calls == ["encrypt", "decrypt"]


def test_aad_is_canonical_json() -> None:
    assert context_aad({"b": "2", "a": "1"}) == b'{"a":"1","b":"2"}'
    assert context_aad({"a": "1", "b": "2"}) == context_aad({"b": "2", "a": "1"})


@pytest.mark.parametrize("field", sorted(CTX))
def test_context_mismatch_fails(provider: GcpKmsProvider, field: str) -> None:
    wrapped = provider.wrap(os.urandom(32), CTX)
    with pytest.raises(KeyProviderError, match="additional authenticated data"):
        provider.unwrap(wrapped, {**CTX, field: CTX[field] + "x"})


def test_other_key_refuses(provider: GcpKmsProvider, fake_gcp_kms: FakeGcpKms) -> None:
    other = GcpKmsProvider(fake_gcp_kms.create_key(), client=fake_gcp_kms)
    with pytest.raises(KeyProviderError, match=other.key_id):
        other.unwrap(provider.wrap(os.urandom(32), CTX), CTX)


def test_denied_key(provider: GcpKmsProvider, fake_gcp_kms: FakeGcpKms) -> None:
    fake_gcp_kms.denied.add(provider.key_id)
    with pytest.raises(KeyProviderError, match="useToEncrypt"):
        provider.wrap(os.urandom(32), CTX)


def test_disabled_key(provider: GcpKmsProvider, fake_gcp_kms: FakeGcpKms) -> None:
    wrapped = provider.wrap(os.urandom(32), CTX)
    fake_gcp_kms.disabled.add(provider.key_id)
    with pytest.raises(KeyProviderError, match="disabled or destroyed"):
        provider.unwrap(wrapped, CTX)


def test_missing_key(fake_gcp_kms: FakeGcpKms) -> None:
    p = GcpKmsProvider(
        "projects/p/locations/global/keyRings/r/cryptoKeys/gone", client=fake_gcp_kms
    )
    with pytest.raises(KeyProviderError, match="does not exist"):
        p.wrap(os.urandom(32), CTX)


def test_corrupted_response_is_caught(
    provider: GcpKmsProvider, fake_gcp_kms: FakeGcpKms, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fake_gcp_kms.encrypt

    def flip(request: object = None, **kw: object) -> object:
        r = real(request)
        r.ciphertext = r.ciphertext[:-1] + bytes([r.ciphertext[-1] ^ 1])
        return r

    monkeypatch.setattr(fake_gcp_kms, "encrypt", flip)
    with pytest.raises(KeyProviderError, match="CRC32C"):
        provider.wrap(os.urandom(32), CTX)


def test_config_checks_key_name() -> None:
    with pytest.raises(ConfigError, match="cryptoKeys"):
        make_provider({"provider": "gcp-kms", "key_name": "my-key", "client": object()})
