"""The gs:// backend with real Google credentials (shipper/storage/gcs_auth.py).

google-auth signs a JWT with a service-account key file's private key and trades
it for an access token at the token endpoint of ``tests/services/gauth.py``;
fake-gcs-server sits behind a proxy that refuses unknown or revoked tokens with
GCS's 401 (the ``gcs_iam`` fixture). Nothing of google-auth or of the storage
client is mocked. The shipper-level rotation test (a real MariaDB, one Shipper
across the rotation) is in tests/integration/test_faults.py.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from shipper.errors import PermissionDenied
from shipper.storage import open_backend
from shipper.storage.base import StorageBackend
from tests.services.gauth import GcsIam, write_key_file

MiB = 1 << 20


def _object_requests(log: list[str]) -> list[str]:
    """The proxy's log without bucket-only requests: google-cloud-storage fetches each
    bucket's metadata once per client in a background thread of its own (for its
    tracing attributes), at a moment of its choosing."""
    return [r for r in log if "/o" in r.split()[1].split("?")[0].split("/b/", 1)[-1]]


def _backend(iam: GcsIam, bucket: str, key_file: Path, **opts: object) -> StorageBackend:
    # open_backend: the retry wrapper every caller gets (5 attempts by default)
    return open_backend(
        f"gs://{bucket}/p",
        {"endpoint_url": iam.endpoint_url, "credentials_file": str(key_file), **opts},
    )


def test_a_refused_key_that_was_not_replaced_is_a_permanent_clear_error(
    gcs_iam: GcsIam, tmp_path: Path
) -> None:
    auth, proxy = gcs_iam.auth, gcs_iam.proxy
    key_file = tmp_path / "sa.json"
    key = auth.create_key()
    write_key_file(key_file, key)
    bucket = gcs_iam.gcs.bucket()
    b = _backend(gcs_iam, bucket, key_file)
    b.put("one", io.BytesIO(b"x"), size=1, metadata={})
    assert set(auth.grants) == {key["private_key_id"]}  # the key file's key really signed

    auth.revoke(key["private_key_id"])  # deleted in IAM; the file still holds it
    seen = len(proxy.log)
    with pytest.raises(PermissionDenied) as e:
        b.put("two", io.BytesIO(b"y"), size=1, metadata={})
    assert not e.value.transient
    msg = str(e.value)
    assert msg.startswith(f"write gs://{bucket}/p/two: the credentials were refused")
    assert "invalid_grant: Invalid JWT Signature." in msg  # what the token endpoint said
    assert key["private_key_id"] in msg and str(key_file) in msg
    assert "active in IAM" in msg and "write the new key file at the same path" in msg
    # asked once, not five times (google-auth tried the key once on the 401 and gave up)
    assert _object_requests(proxy.log[seen:]) == [
        f"POST /upload/storage/v1/b/{bucket}/o?uploadType=multipart&ifGenerationMatch=0 401"
    ]
    assert set(auth.refusals) == {"Invalid JWT Signature."}
    assert [b.name for b in gcs_iam.gcs.client().list_blobs(bucket)] == ["p/one"]


def test_a_stream_opened_before_a_rotation_finishes_with_the_new_key(
    gcs_iam: GcsIam, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A read in flight across a rotation: the stream's client still holds the deleted
    key; its refusal is retried (the stream reopened where it was) because newer
    credentials are in place, although the key file has not changed since then."""
    auth = gcs_iam.auth
    key_file = tmp_path / "sa.json"
    old = auth.create_key()
    write_key_file(key_file, old)
    bucket = gcs_iam.gcs.bucket()
    # 256 KiB per ranged GET, so the stream fetches again after the rotation
    b = _backend(gcs_iam, bucket, key_file, chunk_size=256 * 1024)
    data = bytes(range(256)) * (4 * MiB // 256)
    b.put("big", io.BytesIO(data), size=len(data), metadata={})
    stream = b.open("big")
    head = stream.read(1000)

    auth.revoke(old["private_key_id"])
    new = auth.create_key()
    write_key_file(key_file, new)
    with caplog.at_level(logging.WARNING, logger="shipper.storage.gcs_auth"):
        assert b.stat("big").size == len(data)  # meets the refusal first: rotates
    assert head + stream.read() == data
    # the stream's own next download met the deleted key's token, and was reopened
    refused = [r for r in _object_requests(gcs_iam.proxy.log) if r.endswith(" 401")]
    assert len(refused) == 2 and "alt=media" in refused[1], gcs_iam.proxy.log
    assert auth.grants[-1] == new["private_key_id"]
    # rotated once: the stream's refusal did not rebuild the client a second time
    assert [r.message for r in caplog.records].count(
        f"gs://{bucket}/p: Google credentials in {key_file} changed (rotated: key "
        f"{new['private_key_id']} of {auth.email}, was key {old['private_key_id']} of "
        f"{auth.email}); using the new ones"
    ) == 1, caplog.text


def test_endpoint_url_signs_with_the_key_and_the_emulator_variable_stays_anonymous(
    gcs_iam: GcsIam, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = gcs_iam.auth
    key_file = tmp_path / "sa.json"
    key = auth.create_key()
    write_key_file(key_file, key)
    bucket = gcs_iam.gcs.bucket()
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))

    # STORAGE_EMULATOR_HOST (no endpoint_url): anonymous, as before; this endpoint
    # checks credentials, so it refuses, and the error says what was used
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_iam.endpoint_url)
    anonymous = open_backend(f"gs://{bucket}/p", {})
    with pytest.raises(PermissionDenied, match="anonymous credentials for the emulator"):
        anonymous.stat("k")
    assert auth.grants == []  # the key file was not even read

    assert _object_requests(gcs_iam.proxy.refused) == [
        f"GET /storage/v1/b/{bucket}/o/p%2Fk?projection=noAcl&prettyPrint=false: no bearer token"
    ]

    # endpoint_url wins over the variable, with the key from GOOGLE_APPLICATION_CREDENTIALS
    seen = len(gcs_iam.proxy.log)
    signed = open_backend(f"gs://{bucket}/p", {"endpoint_url": gcs_iam.endpoint_url})
    signed.put("k", io.BytesIO(b"z"), size=1, metadata={})
    assert set(auth.grants) == {key["private_key_id"]}
    assert [r.rsplit(" ", 1)[1] for r in _object_requests(gcs_iam.proxy.log[seen:])] == ["-"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot use the Google credentials file {path}: No such file or directory"),
        ("{not json", "cannot use the Google credentials file {path}: Expecting property name"),
        ('{"type": "authorized_user"}', "credentials_file {path} is not a service account key"),
        ('{"type": "service_account"}', "{path} is not a usable service account key"),
    ],
)
def test_an_unusable_credentials_file_is_named(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    key_file = tmp_path / "sa.json"
    if content is not None:
        key_file.write_text(content)
    with pytest.raises(PermissionDenied) as e:
        open_backend(
            "gs://b/p", {"endpoint_url": "http://127.0.0.1:9", "credentials_file": str(key_file)}
        )
    assert str(e.value).startswith("target gs://b/p: ")
    assert expected.format(path=key_file) in str(e.value)
