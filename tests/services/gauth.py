"""A stand-in for Google's OAuth 2.0 token endpoint and a service account's IAM keys.

google-auth's service-account credentials sign a JWT (RS256) with the key file's
private key and POST it to the file's ``token_uri`` as a JWT-bearer grant; the
access token they get back goes into ``Authorization: Bearer`` of every API
request. This is that endpoint, over HTTP on 127.0.0.1, for one service account:

* :meth:`GoogleAuth.create_key` makes a key as IAM does (an RSA-2048 pair made
  here with ``cryptography``, a random key id) and returns the key *file*
  (private key PEM, ``private_key_id``, ``client_email``, ``token_uri`` pointing
  here). Only the public half is kept.
* ``POST /token`` verifies the assertion: ``alg`` RS256, the signature against
  the public key of the *active* key named by ``kid``, ``iss`` the account,
  ``aud`` Google's token URI (google-auth always sends that one), ``iat`` and
  ``exp``. A good one gets an opaque access token bound to the key id; any other
  gets HTTP 400 ``{"error": "invalid_grant", ...}``, the answer Google gives for a
  deleted key ("Invalid JWT Signature.").
* :meth:`GoogleAuth.revoke` deletes a key: assertions signed with it are refused
  and the tokens issued for it stop working.
* :meth:`GoogleAuth.check` judges an ``Authorization`` header (None: good; else
  why not). The authenticating proxy in front of fake-gcs-server
  (``FaultProxy(..., authorize=auth.check)``) refuses what it rejects with the
  GCS JSON 401, as Google's front end does for an unknown or revoked token.

What it is not: IAM authorisation (every good token may do everything), token
expiry beyond ``exp`` of the assertion, or anything Google does that google-auth
cannot see.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.services.cloud import FakeGcs
from tests.services.faultproxy import FaultProxy

#: the audience google-auth puts in every service-account assertion, whatever token_uri is
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_SKEW = 300  # seconds of clock difference tolerated on iat, as token endpoints do
_TIMEFRAME = "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe"


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class GoogleAuth:
    def __init__(
        self,
        email: str = "shipper@test-project.iam.gserviceaccount.com",
        project: str = "test-project",
    ) -> None:
        self.email, self.project = email, project
        self.lock = threading.Lock()
        #: key id -> public key of every key ever created; ``active`` says which still work
        self.public: dict[str, rsa.RSAPublicKey] = {}
        self.active: set[str] = set()
        #: access token -> key id it was issued for
        self.tokens: dict[str, str] = {}
        #: key id of every token issued, in order
        self.grants: list[str] = []
        #: why each refused assertion was refused, in order
        self.refusals: list[str] = []
        auth = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = auth._token(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GoogleAuth:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ IAM keys

    def create_key(self) -> dict[str, str]:
        """A new active key of the account, as the key file IAM hands out."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = secrets.token_hex(20)
        with self.lock:
            self.public[kid] = private.public_key()
            self.active.add(kid)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": kid,
            "private_key": pem,
            "client_email": self.email,
            "client_id": "1" + "0" * 20,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": f"{self.url}/token",
        }

    def revoke(self, kid: str) -> None:
        """Delete the key: its assertions are refused, its tokens stop working."""
        with self.lock:
            self.active.discard(kid)

    def check(self, authorization: str | None) -> str | None:
        """Why a request with this ``Authorization`` header is refused; None if it is not."""
        if not authorization or not authorization.startswith("Bearer "):
            return "no bearer token"
        with self.lock:
            kid = self.tokens.get(authorization[len("Bearer ") :])
            if kid is None:
                return "unknown token"
            if kid not in self.active:
                return f"token of deleted key {kid}"
        return None

    # ------------------------------------------------------------------ the endpoint

    def _token(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if urllib.parse.urlsplit(path).path != "/token":
            return 404, {"error": "not_found"}
        form = urllib.parse.parse_qs(body.decode())
        if form.get("grant_type") != [_JWT_BEARER] or len(form.get("assertion", [])) != 1:
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant"}
        kid, why = self._verify(form["assertion"][0])
        with self.lock:
            if kid is None:
                self.refusals.append(why)
                return 400, {"error": "invalid_grant", "error_description": why}
            token = "ya29.test-" + secrets.token_urlsafe(32)
            self.tokens[token] = kid
            self.grants.append(kid)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _verify(self, assertion: str) -> tuple[str | None, str]:
        """(key id, "") for a good assertion, else (None, why) in Google's words."""
        try:
            head64, claims64, sig64 = assertion.split(".")
            header = json.loads(_b64d(head64))
            claims = json.loads(_b64d(claims64))
            signature = _b64d(sig64)
        except ValueError:
            return None, "Invalid JWT: malformed"
        if header.get("alg") != "RS256":
            return None, "Invalid JWT: unsupported algorithm"
        kid = header.get("kid")
        with self.lock:
            key = self.public.get(kid) if kid in self.active else None
        if key is None:
            return None, "Invalid JWT Signature."  # Google's answer for a deleted key
        try:
            key.verify(
                signature, f"{head64}.{claims64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return None, "Invalid JWT Signature."
        now = time.time()
        if claims.get("iss") != self.email:
            return None, "Invalid JWT: iss is not the key's service account"
        if claims.get("aud") != GOOGLE_TOKEN_URI:
            return None, "Invalid JWT: aud is not the token endpoint"
        if not isinstance(claims.get("iat"), int) or claims["iat"] > now + _SKEW:
            return None, _TIMEFRAME
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            return None, _TIMEFRAME
        if not claims.get("scope"):
            return None, "Invalid JWT: no scope"
        return str(kid), ""


def write_key_file(path: Path, key: dict[str, str]) -> None:
    """Put ``key`` at ``path`` as a rotation should: a temp file renamed over the old
    one, so a reader sees the old file or the new one, never half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(key))
    tmp.chmod(0o600)
    tmp.replace(path)


@dataclass
class GcsIam:
    """fake-gcs-server behind an authenticating proxy, and the token endpoint it trusts."""

    auth: GoogleAuth
    proxy: FaultProxy
    gcs: FakeGcs

    @property
    def endpoint_url(self) -> str:
        """Where a client with real credentials talks to this GCS."""
        return self.proxy.url


@pytest.fixture()
def gcs_iam(fake_gcs: FakeGcs) -> Iterator[GcsIam]:
    """A GCS that checks credentials: fake-gcs-server (which checks none) behind a proxy
    that lets through only requests bearing a live token of :class:`GoogleAuth`, whole
    object downloads (``mediaLink``) included.
    Buckets are made with ``gcs_iam.gcs.bucket()`` (straight to fake-gcs-server)."""
    with (
        GoogleAuth() as auth,
        FaultProxy(
            fake_gcs.endpoint_url, flavor="gcs", authorize=auth.check, rewrite_links=True
        ) as proxy,
    ):
        yield GcsIam(auth=auth, proxy=proxy, gcs=fake_gcs)
