"""AWS credentials for code running on GCP (the Cloud Function), without a long-lived key.

See :func:`configure_aws_credentials` and docs/functions.md ("Workload identity
federation, GCP -> AWS").
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping

from shipper.errors import ConfigError

#: where the ID token for AssumeRoleWithWebIdentity is kept (botocore re-reads it on refresh)
TOKEN_FILE = "/tmp/aws-web-identity-token"
#: Google ID tokens live an hour; one older than this is replaced before the next event
TOKEN_MAX_AGE = 20 * 60


def configure_aws_credentials(
    env: Mapping[str, str],
    fetch_id_token: Callable[[str], str] | None = None,
    token_file: str = TOKEN_FILE,
) -> None:
    """Give boto3 (S3, DynamoDB, AWS KMS) credentials, by AWS_CREDENTIALS_MODE.

    ``workload_identity``: no secret anywhere. The function's own service account
    gets a Google-signed ID token (audience AWS_WEB_IDENTITY_AUDIENCE) from the
    metadata server; botocore's web-identity provider trades it with
    ``sts:AssumeRoleWithWebIdentity`` for AWS_ROLE_ARN's temporary credentials and
    re-reads the token file whenever it refreshes them, so :func:`refresh_token`
    keeps the file younger than the token's hour. ``secret``: AWS_CREDENTIALS_JSON
    (``{"aws_access_key_id": ..., "aws_secret_access_key": ...}`` from Secret Manager).
    """
    mode = env.get("AWS_CREDENTIALS_MODE", "")
    if mode == "secret":
        raw = env.get("AWS_CREDENTIALS_JSON", "")
        try:
            creds = json.loads(raw)
            key, secret = str(creds["aws_access_key_id"]), str(creds["aws_secret_access_key"])
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(
                "AWS_CREDENTIALS_JSON (AWS_CREDENTIALS_MODE=secret) must be JSON with "
                '"aws_access_key_id" and "aws_secret_access_key": add a version of the '
                "secret NAME-aws-credentials (infra/terraform/README.md)"
            ) from e
        os.environ["AWS_ACCESS_KEY_ID"] = key
        os.environ["AWS_SECRET_ACCESS_KEY"] = secret
        # a session token left in the environment belongs to other keys: never mix them
        os.environ.pop("AWS_SESSION_TOKEN", None)
        if token := creds.get("aws_session_token"):
            os.environ["AWS_SESSION_TOKEN"] = str(token)
        return
    if mode == "workload_identity":
        for name in ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_AUDIENCE"):
            if not env.get(name):
                raise ConfigError(
                    f"environment variable {name} is not set "
                    "(AWS_CREDENTIALS_MODE=workload_identity needs it; see docs/functions.md)"
                )
        global _token
        _token = _WebIdentityToken(env["AWS_WEB_IDENTITY_AUDIENCE"], fetch_id_token, token_file)
        _token.refresh(force=True)
        os.environ["AWS_ROLE_ARN"] = env["AWS_ROLE_ARN"]
        os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"] = token_file
        os.environ.setdefault("AWS_ROLE_SESSION_NAME", env.get("K_SERVICE", "verify-replicate"))
        return
    raise ConfigError(
        f"AWS_CREDENTIALS_MODE is {mode!r}: set it to workload_identity or secret "
        "(infra/terraform variable aws_credentials_mode)"
    )


class _WebIdentityToken:
    def __init__(self, audience: str, fetch: Callable[[str], str] | None, path: str) -> None:
        self.audience = audience
        self.path = path
        self.fetch = fetch or _metadata_id_token
        self.at = 0.0

    def refresh(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self.at < TOKEN_MAX_AGE:
            return
        try:
            token = self.fetch(self.audience)
        except Exception as e:  # google-auth raises its own and requests' errors
            raise ConfigError(
                f"could not get an ID token for audience {self.audience!r} from the metadata "
                f"server ({e}): is this running as the function's service account?"
            ) from e
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
        os.replace(tmp, self.path)  # botocore never reads half a token
        self.at = time.monotonic()


def _metadata_id_token(audience: str) -> str:
    import google.auth.transport.requests
    import google.oauth2.id_token

    request = google.auth.transport.requests.Request()
    return str(google.oauth2.id_token.fetch_id_token(request, audience))  # type: ignore[no-untyped-call]


_token: _WebIdentityToken | None = None


def refresh_token() -> None:
    if _token is not None:
        _token.refresh()
