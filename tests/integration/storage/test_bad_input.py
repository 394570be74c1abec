"""Bad input against the real emulators: wrong bucket, rejected credentials,
refused actions. Each is a clear domain error and nothing is written."""

from __future__ import annotations

import io

import pytest

from shipper.errors import ObjectNotFound, PermissionDenied
from shipper.storage import open_backend
from shipper.storage.gcs import GCSBackend
from shipper.storage.s3 import S3Backend
from tests.services.cloud import FakeGcs, Moto, MotoAuth


def _s3(m: Moto, bucket: str, **creds: str) -> S3Backend:
    return S3Backend(bucket, "p", client=m.client("s3", **creds))


def test_s3_wrong_bucket_names_the_bucket(moto: Moto) -> None:
    b = open_backend(
        "s3://no-such-bucket-here/p", {"endpoint_url": moto.endpoint_url, "region": moto.region}
    )
    for call in (
        lambda: b.put("k", io.BytesIO(b"x"), size=1, metadata={}),
        lambda: b.stat("k"),
        lambda: b.open("k").read(),
        lambda: list(b.list()),
    ):
        with pytest.raises(ObjectNotFound, match="bucket no-such-bucket-here does not exist"):
            call()


def test_gcs_wrong_bucket_names_the_bucket(fake_gcs: FakeGcs) -> None:
    b = GCSBackend("no-such-bucket-here", "p", client=fake_gcs.client())
    for call in (
        lambda: b.put("k", io.BytesIO(b"x"), size=1, metadata={}),
        lambda: b.stat("k"),
        lambda: list(b.list()),
    ):
        with pytest.raises(ObjectNotFound, match="bucket no-such-bucket-here does not exist"):
            call()


def test_gcs_url_honours_storage_emulator_host(fake_gcs: FakeGcs) -> None:
    bucket = fake_gcs.bucket()  # the fixture exported STORAGE_EMULATOR_HOST
    b = open_backend(f"gs://{bucket}/t")
    b.put("k", io.BytesIO(b"abc"), size=3, metadata={"a": "1"})
    assert b.stat("k").metadata == {"a": "1"}


def test_s3_unknown_access_key_is_permission_denied(moto_auth: MotoAuth) -> None:
    b = _s3(
        moto_auth,
        moto_auth.bucket_name,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="whatever",
    )
    with pytest.raises(PermissionDenied, match="InvalidAccessKeyId"):
        b.put("k", io.BytesIO(b"x"), size=1, metadata={})


def test_s3_wrong_secret_is_permission_denied(moto_auth: MotoAuth) -> None:
    creds = {**moto_auth.allowed, "aws_secret_access_key": "not-the-secret"}
    b = _s3(moto_auth, moto_auth.bucket_name, **creds)
    with pytest.raises(PermissionDenied, match="SignatureDoesNotMatch"):
        b.put("k", io.BytesIO(b"x"), size=1, metadata={})
    with pytest.raises(PermissionDenied, match="403"):  # HEAD: a status, no body
        b.stat("k")


def test_s3_policy_allows_only_its_bucket(moto_auth: MotoAuth) -> None:
    ok = _s3(moto_auth, moto_auth.bucket_name, **moto_auth.allowed)
    ok.put("k", io.BytesIO(b"allowed"), size=7, metadata={})
    assert ok.open("k").read() == b"allowed"
    elsewhere = _s3(moto_auth, "some-other-bucket", **moto_auth.allowed)
    with pytest.raises(PermissionDenied, match="AccessDenied"):
        elsewhere.put("k", io.BytesIO(b"x"), size=1, metadata={})
