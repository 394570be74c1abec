"""preflight() against the emulators: what `run --dry-run` reports per target."""

from __future__ import annotations

from pathlib import Path

from shipper.keys.aws_kms import AwsKmsProvider
from shipper.keys.gcp_kms import GcpKmsProvider
from shipper.storage.file import FileBackend
from shipper.storage.gcs import GCSBackend
from shipper.storage.memory import MemoryBackend
from shipper.storage.preflight import Check, preflight
from shipper.storage.s3 import S3Backend
from tests.services.cloud import FakeGcpKms, FakeGcs, Moto, MotoAuth


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_s3_versioned_object_lock_bucket(moto: Moto) -> None:
    bucket = moto.bucket(object_lock=True)
    kms_key = moto.kms_key()
    b = S3Backend(
        bucket,
        "t",
        endpoint_url=moto.endpoint_url,
        region=moto.region,
        object_lock_mode="COMPLIANCE",
        object_lock_days=30,
        sse_kms_key_id=kms_key,
    )
    kms = AwsKmsProvider(moto.kms_key(), region=moto.region, endpoint_url=moto.endpoint_url)
    checks = preflight(b, key_providers=[kms])
    c = _by_name(checks)
    assert c["bucket reachable"].status == "ok"
    assert c["list objects"].status == "ok"
    assert c["versioning"].status == "ok" and "Enabled" in c["versioning"].detail
    assert c["object lock"].status == "ok" and "Object Lock enabled" in c["object lock"].detail
    assert c["kms key usable"].status == "ok"
    assert c["key usable"].status == "ok" and c["key usable"].target == f"aws-kms:{kms.key_id}"
    assert all(set(x.as_dict()) == {"target", "name", "status", "detail"} for x in checks)


def test_s3_object_lock_asked_for_but_missing(moto: Moto) -> None:
    b = S3Backend(
        moto.bucket(),
        endpoint_url=moto.endpoint_url,
        region=moto.region,
        object_lock_mode="GOVERNANCE",
        object_lock_days=1,
    )
    c = _by_name(preflight(b))
    assert c["versioning"].detail == "versioning Disabled"
    assert c["object lock"].status == "denied"
    assert "no Object Lock" in c["object lock"].detail


def test_s3_object_lock_retention_is_applied(moto: Moto) -> None:
    import io

    bucket = moto.bucket(object_lock=True)
    b = S3Backend(
        bucket,
        endpoint_url=moto.endpoint_url,
        region=moto.region,
        object_lock_mode="COMPLIANCE",
        object_lock_days=3,
    )
    b.put("locked", io.BytesIO(b"x"), size=1, metadata={})
    # (moto's GetObjectRetention answers 500; HEAD reports the same fields)
    h = moto.s3.head_object(Bucket=bucket, Key="locked")
    assert h["ObjectLockMode"] == "COMPLIANCE"
    assert h["ObjectLockRetainUntilDate"] > h["LastModified"]


def test_s3_missing_bucket(moto: Moto) -> None:
    b = S3Backend("no-such-bucket-x", endpoint_url=moto.endpoint_url, region=moto.region)
    [c] = preflight(b)
    assert (c.name, c.status) == ("bucket reachable", "denied")
    assert "does not exist" in c.detail


def test_s3_denied_kms_and_bucket(moto_auth: MotoAuth) -> None:
    s3 = moto_auth.client("s3", **moto_auth.allowed)
    kms = AwsKmsProvider(moto_auth.kms_key_arn, client=moto_auth.client("kms", **moto_auth.allowed))
    c = _by_name(preflight(S3Backend(moto_auth.bucket_name, client=s3), key_providers=[kms]))
    assert c["key usable"].status == "denied"
    assert "kms:Encrypt" in c["key usable"].detail
    # the user may not read bucket configuration: that is "unknown", not a failure
    assert c["versioning"].status == "unknown"
    other = _by_name(preflight(S3Backend("someone-elses-bucket", client=s3)))
    assert other["bucket reachable"].status == "denied"


def test_gcs_checks(fake_gcs: FakeGcs, fake_gcp_kms: FakeGcpKms) -> None:
    b = GCSBackend(fake_gcs.bucket(), "t", client=fake_gcs.client())
    good = GcpKmsProvider(fake_gcp_kms.create_key(), client=fake_gcp_kms)
    bad = GcpKmsProvider(fake_gcp_kms.create_key(), client=fake_gcp_kms)
    fake_gcp_kms.denied.add(bad.key_id)
    checks = preflight(b, key_providers=[good, bad])
    c = _by_name(checks)
    assert c["bucket reachable"].status == "ok"
    # fake-gcs-server has no testIamPermissions: read-only probes stand in for it
    assert c["storage.objects.create"].status == "unknown"
    assert "testIamPermissions" in c["storage.objects.create"].detail
    assert c["storage.objects.list"].status == "ok"
    assert c["storage.objects.get"].status == "ok"
    assert c["retention policy"].detail == "no retention policy"
    keys = [x for x in checks if x.name == "key usable"]
    assert [k.status for k in keys] == ["ok", "denied"]


def test_gcs_missing_bucket(fake_gcs: FakeGcs) -> None:
    [c] = preflight(GCSBackend("no-such-bucket-y", client=fake_gcs.client()))
    assert c.status == "denied" and "does not exist" in c.detail


def test_file_and_memory(tmp_path: Path) -> None:
    [c] = preflight(FileBackend(tmp_path / "new" / "dir"))
    assert c.status == "ok" and "can be created" in c.detail
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        [c] = preflight(FileBackend(ro / "x"))
        import os

        assert c.status == ("ok" if os.geteuid() == 0 else "denied")
    finally:
        ro.chmod(0o700)
    [c] = preflight(MemoryBackend())
    assert c.status == "ok"


def test_s3_sse_kms_is_applied(moto: Moto) -> None:
    import io

    bucket, key = moto.bucket(), moto.kms_key()
    b = S3Backend(
        bucket,
        endpoint_url=moto.endpoint_url,
        region=moto.region,
        sse_kms_key_id=key,
        multipart_threshold=5 << 20,
        part_size=5 << 20,
    )
    b.put("small", io.BytesIO(b"x"), size=1, metadata={})
    b.put("large", io.BytesIO(b"y" * (6 << 20)), size=6 << 20, metadata={})
    for name in ("small", "large"):
        h = moto.s3.head_object(Bucket=bucket, Key=name)
        assert h["ServerSideEncryption"] == "aws:kms"
        assert h["SSEKMSKeyId"] == key
