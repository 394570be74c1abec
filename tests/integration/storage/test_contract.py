"""The StorageBackend contract, run against memory, file, S3 (moto) and GCS (fake-gcs-server)."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from shipper.errors import ObjectNotFound, PermissionDenied, PreconditionFailed, StorageError
from shipper.resilience import is_transient, retrying
from shipper.storage import Capabilities, StorageBackend, open_backend
from tests.integration.storage.conftest import BIG, MiB, Target
from tests.services.cloud import FakeGcs, Moto, MotoAuth, free_port

META = {
    "server_uuid": "3e11fa47-71ca-11e1-9e33-c80aa9429562",
    "server_id": "7",
    "binlog_name": "mariadb-bin.000042",
    "plaintext_sha256": "ab" * 32,
    "format_version": "1",
    "tenant": "acme",
}


def _put(t: Target, key: str, data: bytes, meta: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return t.backend.put(key, io.BytesIO(data), size=len(data), metadata=meta or {})


def _read(t: Target, key: str, offset: int = 0, length: int | None = None) -> bytes:
    f = t.backend.open(key, offset, length)
    try:
        return bytes(f.read())
    finally:
        f.close()


class _Failing(io.RawIOBase):
    """A source that yields ``good`` bytes, then raises (a disk error mid-upload)."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0 or n is None or n < 0:  # "read it all" reaches the bad sector too
            raise OSError("simulated read error mid-upload")
        n = min(n, self.left)
        self.left -= n
        return b"\x5a" * n


def test_conditional_create_and_read_back(target: Target) -> None:
    data = os.urandom(4096)
    info = _put(target, "mysql/7/2026/11/a.000001.zst.enc", data, META)
    assert info.key == "mysql/7/2026/11/a.000001.zst.enc"
    assert info.size == len(data)
    # The whole-object SHA-256 where the service keeps one (GCS keeps CRC32C only).
    want_sha = None if target.kind == "gcs" else hashlib.sha256(data).hexdigest()
    assert info.sha256 == want_sha
    assert _read(target, info.key) == data
    st = target.backend.stat(info.key)
    assert st.size == len(data)
    assert st.sha256 == want_sha


def test_identical_reupload_is_refused_and_changes_nothing(target: Target) -> None:
    data = os.urandom(1000)
    first = _put(target, "k/same", data, META)
    with pytest.raises(PreconditionFailed, match="already exists"):
        _put(target, "k/same", data, META)
    after = target.backend.stat("k/same")
    assert after.version == first.version or target.kind == "file"
    assert _read(target, "k/same") == data


def test_conflicting_reupload_is_refused_and_changes_nothing(target: Target) -> None:
    original = os.urandom(1000)
    _put(target, "k/conflict", original, META)
    with pytest.raises(PreconditionFailed):
        _put(target, "k/conflict", os.urandom(2000), {**META, "server_id": "8"})
    assert _read(target, "k/conflict") == original
    assert target.backend.stat("k/conflict").metadata["server_id"] == "7"


def test_large_object_streams_in_parts(target: Target) -> None:
    data = os.urandom(BIG)
    info = _put(target, "big/obj", data, META)
    assert info.size == BIG
    # S3 multipart keeps only a composite of part checksums; GCS only CRC32C
    want_sha = hashlib.sha256(data).hexdigest() if target.kind in ("memory", "file") else None
    assert info.sha256 == want_sha == target.backend.stat("big/obj").sha256
    st = target.backend.stat("big/obj")
    assert st.size == BIG and dict(st.metadata) == META
    assert hashlib.sha256(_read(target, "big/obj")).digest() == hashlib.sha256(data).digest()
    with pytest.raises(PreconditionFailed):
        _put(target, "big/obj", data, META)
    assert target.open_uploads() == []


def test_failure_mid_stream_leaves_nothing_behind(target: Target) -> None:
    # Fails after 6 MiB: past S3's first 5 MiB part, past several GCS chunks.
    # The source's own error comes back unchanged: it is not a storage failure.
    with pytest.raises(OSError, match="simulated read error"):
        target.backend.put("big/broken", _Failing(6 << 20), size=BIG, metadata=META)
    assert target.open_uploads() == []
    with pytest.raises(ObjectNotFound):
        target.backend.stat("big/broken")
    assert [o.key for o in target.backend.list("big/")] == []


@pytest.mark.parametrize("size", [100, BIG])
def test_short_source_is_an_error_not_an_object(target: Target, size: int) -> None:
    with pytest.raises(StorageError, match="declared size"):
        target.backend.put("short", io.BytesIO(b"x" * (size - 1)), size=size, metadata={})
    assert target.open_uploads() == []
    with pytest.raises(ObjectNotFound):
        target.backend.stat("short")


@pytest.mark.parametrize("size", [100, BIG])
def test_long_source_is_an_error_not_a_truncated_object(target: Target, size: int) -> None:
    with pytest.raises(StorageError, match="size"):
        target.backend.put("long", io.BytesIO(b"x" * (size + 6 * MiB)), size=size, metadata={})
    assert target.open_uploads() == []
    with pytest.raises(ObjectNotFound):
        target.backend.stat("long")


def test_object_created_during_upload_wins(target: Target) -> None:
    """Another host creates the key while our large upload is in flight: the
    conditional completion must refuse ours and keep theirs -- data and metadata."""
    if target.kind == "gcs":
        pytest.skip(
            "fake-gcs-server ignores ifGenerationMatch on resumable uploads "
            "(fsouza/fake-gcs-server#1967, fixed by PR #2260, newer than the wheel)"
        )
    theirs = os.urandom(777)
    other = target.twin()

    class Racing(io.RawIOBase):
        def __init__(self) -> None:
            self.src = io.BytesIO(os.urandom(BIG))
            self.raced = False

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            if not self.raced:  # first read: the upload has started (S3: upload created)
                self.raced = True
                other.put("race/key", io.BytesIO(theirs), size=len(theirs), metadata={"w": "b"})
            return self.src.read(n)

    with pytest.raises(PreconditionFailed):
        target.backend.put("race/key", Racing(), size=BIG, metadata={"w": "a"})
    assert _read(target, "race/key") == theirs
    assert target.backend.stat("race/key").metadata["w"] == "b"
    assert target.open_uploads() == []


def test_metadata_round_trip(target: Target) -> None:
    _put(target, "meta/obj", b"payload", META)
    assert dict(target.backend.stat("meta/obj").metadata) == META


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 10), (5, 1), (4090, 6), (4095, None), (100, None), (0, 0), (4000, 500), (5000, 10)],
)
def test_ranged_reads(target: Target, offset: int, length: int | None) -> None:
    data = os.urandom(4096)
    _put(target, "range/obj", data)
    end = None if length is None else offset + length
    assert _read(target, "range/obj", offset, length) == data[offset:end]


def test_ranged_read_of_large_object(target: Target) -> None:
    data = os.urandom(BIG)
    _put(target, "range/big", data)
    off = (5 << 20) - 7  # straddles S3's part boundary
    assert _read(target, "range/big", off, 64 * 1024) == data[off : off + 64 * 1024]


def test_not_found_mapping(target: Target) -> None:
    with pytest.raises(ObjectNotFound, match="does not exist"):
        target.backend.stat("missing/key")
    with pytest.raises(ObjectNotFound):
        _read(target, "missing/key")
    with pytest.raises(ObjectNotFound):
        _read(target, "missing/key", 10, 10)
    with pytest.raises(ObjectNotFound):
        target.backend.delete("missing/key")


def test_list_is_sorted_and_prefix_filtered(target: Target) -> None:
    keys = ["b/2", "a/10", "a/1", "a/2", "ab/1", "c"]
    for k in keys:
        _put(target, k, k.encode())
    assert [o.key for o in target.backend.list()] == sorted(keys)
    assert [o.key for o in target.backend.list("a/")] == ["a/1", "a/10", "a/2"]
    assert [o.key for o in target.backend.list("zzz")] == []
    sizes = {o.key: o.size for o in target.backend.list()}
    assert sizes == {k: len(k) for k in keys}


def test_delete(target: Target) -> None:
    _put(target, "del/obj", b"x")
    target.backend.delete("del/obj")
    with pytest.raises(ObjectNotFound):
        target.backend.stat("del/obj")
    _put(target, "del/obj", b"again")  # the key is free again
    assert _read(target, "del/obj") == b"again"


def test_keys_are_relative_to_the_prefix(target: Target) -> None:
    if target.kind not in ("s3", "gcs"):
        pytest.skip("only cloud targets have a prefix")
    _put(target, "x/y", b"1")
    be = target.backend
    if target.kind == "s3":
        names = [o["Key"] for o in be.client.list_objects_v2(Bucket=be.bucket)["Contents"]]
    else:
        names = [b.name for b in be.client.list_blobs(be.bucket_name)]
    assert names == ["tenant-a/x/y"]
    assert [o.key for o in be.list()] == ["x/y"]


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b"])
def test_invalid_keys_are_refused(target: Target, bad: str) -> None:
    if target.kind == "memory":
        pytest.skip("the memory backend stores any string")
    with pytest.raises(StorageError, match="invalid object key"):
        _put(target, bad, b"x")


# ------------------------------------------------------- capabilities and error classes


def test_backend_declares_its_capabilities(target: Target) -> None:
    caps = target.backend.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.conditional_create
    # the cloud services check our checksum on upload: "auto" reads back a prefix only
    assert caps.verify_mode == ("prefix" if target.kind in ("s3", "gcs") else "full")
    assert caps.compose == (target.kind == "gcs")


def test_an_invalid_argument_is_permanent(target: Target) -> None:
    if target.kind == "memory":
        pytest.skip("the memory backend stores any string")
    with pytest.raises(StorageError, match="invalid object key") as e:
        _put(target, "/abs", b"x")
    assert not is_transient(e.value)


def _unreachable(kind: str) -> StorageBackend:
    """A backend whose endpoint is a closed port on this host: connection refused."""
    url = f"http://127.0.0.1:{free_port()}"
    if kind == "s3":
        import boto3
        from botocore.config import Config

        client = boto3.session.Session().client(
            "s3",
            region_name="us-east-1",
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2),
        )
        return open_backend("s3://some-bucket/p", {"client": client})
    return open_backend(
        "gs://some-bucket/p",
        {"client": FakeGcs(endpoint_url=url).client(), "sdk_retry_seconds": 0},
    )


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_connection_refused_is_transient_and_retried(kind: str) -> None:
    backend = _unreachable(kind)
    calls: list[int] = []

    def stat() -> object:
        calls.append(1)
        return backend.stat("k")

    with pytest.raises(StorageError) as e:
        retrying(stat, attempts=3, max_wait=0.01)
    assert is_transient(e.value), e.value
    assert "some-bucket" in str(e.value)
    assert len(calls) == 3


def test_missing_bucket_is_permanent_and_not_retried(moto: Moto, fake_gcs: FakeGcs) -> None:
    for backend in (
        open_backend(
            "s3://no-such-bucket-here/p",
            {"endpoint_url": moto.endpoint_url, "region": moto.region},
        ),
        open_backend("gs://no-such-bucket-here/p", {"client": fake_gcs.client()}),
    ):
        calls: list[int] = []

        def put(b: StorageBackend = backend, calls: list[int] = calls) -> object:
            calls.append(1)
            return b.put("k", io.BytesIO(b"x"), size=1, metadata={})

        with pytest.raises(ObjectNotFound, match="bucket no-such-bucket-here") as e:
            retrying(put, attempts=3, max_wait=0.01)
        assert not is_transient(e.value)
        assert len(calls) == 1


def test_s3_metadata_too_large_is_permanent(moto: Moto) -> None:
    backend = open_backend(
        f"s3://{moto.bucket()}/p", {"endpoint_url": moto.endpoint_url, "region": moto.region}
    )
    with pytest.raises(StorageError, match="metadata is") as e:
        backend.put("k", io.BytesIO(b"x"), size=1, metadata={"big": "x" * 4000})
    assert not is_transient(e.value)


def test_s3_access_denied_is_permanent(moto_auth: MotoAuth) -> None:
    client = moto_auth.client("s3", **moto_auth.allowed)
    backend = open_backend("s3://some-other-bucket/p", {"client": client})
    with pytest.raises(PermissionDenied) as e:
        backend.put("k", io.BytesIO(b"x"), size=1, metadata={})
    assert not is_transient(e.value)
