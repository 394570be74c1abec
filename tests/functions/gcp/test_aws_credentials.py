"""How the Cloud Function gets AWS credentials (shipper.fleet.aws_credentials): workload
identity federation traded by boto3 itself against moto's STS, the secret fallback, and
configurations refused by name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

from shipper.errors import ConfigError
from shipper.fleet.aws_credentials import configure_aws_credentials
from tests.services.cloud import Moto

_TOUCHED = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What configure_aws_credentials sets is put back after the test."""
    for k in _TOUCHED:
        monkeypatch.setenv(k, "x")
        monkeypatch.delenv(k)


@pytest.mark.usefixtures("clean_env")
def test_workload_identity_token_is_traded_by_boto3_for_the_role(
    moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audiences: list[str] = []

    def fetch(audience: str) -> str:  # what the metadata server returns: a signed JWT
        audiences.append(audience)
        return "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2ln"

    role = "arn:aws:iam::123456789012:role/binlog-replicator"
    token = tmp_path / "token"
    env = {
        "AWS_CREDENTIALS_MODE": "workload_identity",
        "AWS_ROLE_ARN": role,
        "AWS_WEB_IDENTITY_AUDIENCE": "binlog-shipper-aws",
        "K_SERVICE": "acme-verify-replicate",
    }
    configure_aws_credentials(env, fetch, token_file=str(token))
    assert audiences == ["binlog-shipper-aws"]
    assert token.read_text().startswith("eyJ") and oct(token.stat().st_mode & 0o777) == "0o600"
    # boto3's own web-identity provider: AssumeRoleWithWebIdentity on (moto's) STS
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.endpoint_url)
    session = boto3.session.Session(region_name=moto.region)
    ident = session.client("sts", endpoint_url=moto.endpoint_url).get_caller_identity()
    assert ident["Arn"].startswith("arn:aws:sts::123456789012:assumed-role/binlog-replicator/")
    assert os.environ["AWS_ROLE_SESSION_NAME"] == "acme-verify-replicate"


@pytest.mark.usefixtures("clean_env")
def test_secret_mode_sets_the_keys_and_drops_a_stale_session_token() -> None:
    os.environ["AWS_SESSION_TOKEN"] = "belongs-to-other-keys"
    creds = {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s3cr3t"}
    env = {"AWS_CREDENTIALS_MODE": "secret", "AWS_CREDENTIALS_JSON": json.dumps(creds)}
    configure_aws_credentials(env)
    assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIA1"
    assert "AWS_SESSION_TOKEN" not in os.environ


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, "AWS_CREDENTIALS_MODE"),
        ({"AWS_CREDENTIALS_MODE": "keys"}, "workload_identity or secret"),
        ({"AWS_CREDENTIALS_MODE": "secret", "AWS_CREDENTIALS_JSON": "{"}, "NAME-aws-credentials"),
        ({"AWS_CREDENTIALS_MODE": "workload_identity", "AWS_ROLE_ARN": "r"}, "AUDIENCE"),
    ],
)
def test_a_wrong_configuration_is_refused_by_name(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        configure_aws_credentials(env)


@pytest.mark.usefixtures("clean_env")
def test_no_metadata_server_is_a_config_error(tmp_path: Path) -> None:
    def fetch(audience: str) -> str:
        raise OSError("metadata.google.internal: name does not resolve")

    env = {
        "AWS_CREDENTIALS_MODE": "workload_identity",
        "AWS_ROLE_ARN": "arn:aws:iam::1:role/r",
        "AWS_WEB_IDENTITY_AUDIENCE": "aud",
    }
    with pytest.raises(ConfigError, match="service account"):
        configure_aws_credentials(env, fetch, token_file=str(tmp_path / "t"))
