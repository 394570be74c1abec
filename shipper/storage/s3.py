"""``s3://bucket/prefix`` backend (boto3; any S3-compatible endpoint).

The backend: its options, the client (rebuilt when the credentials on disk were
rotated), the protocol methods, and ``_error``, the one place S3/botocore
errors become the project's. ``put`` checks the metadata and hands the bytes to
the write path in ``s3_upload.py`` (one PutObject, or a multipart upload with
its abort armed; both compare the checksum S3 reports with ours). What S3's
error codes and answers mean is read in ``s3_responses.py``.

``ObjectInfo.sha256`` is the whole object's SHA-256 when S3 keeps one (single
PUT); a multipart object has only the composite, so it is ``None`` there, from
``put`` and ``stat`` alike. ``list`` does not fetch user metadata (S3 would
need one HEAD per object); use ``stat`` for that.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO
from urllib.parse import urlparse

from shipper.errors import (
    ConfigError,
    IntegrityError,
    ObjectNotFound,
    PermissionDenied,
    PreconditionFailed,
    ShipperError,
    StorageError,
)
from shipper.storage.base import Capabilities, ObjectInfo
from shipper.storage.s3_responses import (
    BAD_CREDENTIALS,
    DENIED,
    INTEGRITY,
    NOT_FOUND,
    PRECONDITION,
    error_code,
    error_message,
    full_sha256_hex,
    is_transient,
    version,
)
from shipper.storage.s3_upload import check_metadata, put_multipart, put_single

log = logging.getLogger(__name__)

MiB = 1 << 20
MIN_PART = 5 * MiB  # S3's floor for every part but the last


class S3Backend:
    # S3 checks our SHA-256 before it stores a body, so "auto" verification reads only
    # the header and chunk 0 back. Versioned buckets keep versions; CopyObject copies.
    capabilities = Capabilities(
        verify_mode="prefix", conditional_create=True, versions=True, server_side_copy=True
    )

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        multipart_threshold: int = 16 * MiB,
        part_size: int = 8 * MiB,
        max_concurrency: int = 8,
        sse_kms_key_id: str | None = None,
        object_lock_mode: str | None = None,
        object_lock_days: int | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        sdk_max_attempts: int = 1,
    ) -> None:
        if not bucket:
            raise ConfigError("s3 target needs a bucket: s3://BUCKET/prefix")
        if part_size < MIN_PART:
            raise ConfigError(f"s3 part_size {part_size} is below S3's minimum of {MIN_PART}")
        if object_lock_mode and object_lock_mode.upper() not in ("GOVERNANCE", "COMPLIANCE"):
            raise ConfigError(f"object_lock_mode {object_lock_mode!r}: GOVERNANCE or COMPLIANCE")
        if bool(object_lock_mode) != bool(object_lock_days):
            raise ConfigError("object_lock_mode and object_lock_days go together")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.region = region
        self.endpoint_url = endpoint_url
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.max_concurrency = max(1, max_concurrency)
        self.sse_kms_key_id = sse_kms_key_id
        self.object_lock_mode = object_lock_mode.upper() if object_lock_mode else None
        self.object_lock_days = object_lock_days
        # botocore's own retries stay off by default: shipper.storage.retry retries
        # every call, so the backoff and the circuit breaker see every failure
        self.timeouts = (connect_timeout, read_timeout, max(1, sdk_max_attempts))
        self._key_id: str | None = None  # access key id the client signs with (ours only)
        self._own_client = client is None
        # which client each thread last used: a refusal of a request signed by a client
        # another thread has replaced since (after a rotation) is retried, not final
        self._generation = 0
        self._used = threading.local()
        self._rotation = threading.Lock()
        self._client: Any = None
        self.client = client if client is not None else self._make_client()

    @property
    def client(self) -> Any:
        """The boto3 client (each call through it notes which one this thread used)."""
        self._used.generation = self._generation
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        self._client = value
        self._generation += 1

    @classmethod
    def from_url(cls, url: str, opts: Mapping[str, Any]) -> S3Backend:
        p = urlparse(url)
        known = {
            "client",
            "region",
            "endpoint_url",
            "multipart_threshold",
            "part_size",
            "max_concurrency",
            "sse_kms_key_id",
            "object_lock_mode",
            "object_lock_days",
            "connect_timeout",
            "read_timeout",
            "sdk_max_attempts",
        }
        unknown = set(opts) - known
        if unknown:
            raise ConfigError(f"target {url!r}: unknown s3 option(s) {sorted(unknown)}")
        kw: dict[str, Any] = dict(opts)
        ints = ("multipart_threshold", "part_size", "max_concurrency", "object_lock_days")
        for name in (*ints, "sdk_max_attempts"):
            if kw.get(name) is not None:
                kw[name] = int(kw[name])
        for name in ("connect_timeout", "read_timeout"):
            if kw.get(name) is not None:
                kw[name] = float(kw[name])
        return cls(p.netloc, p.path, **kw)

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        cfg = Config(
            retries={"mode": "standard", "total_max_attempts": self.timeouts[2]},
            connect_timeout=self.timeouts[0],
            read_timeout=self.timeouts[1],
            max_pool_connections=max(10, self.max_concurrency + 2),
            # custom endpoints (moto, MinIO, Ceph) rarely do virtual-hosted buckets
            s3={"addressing_style": "path"} if self.endpoint_url else None,
        )
        session = boto3.session.Session()
        self._key_id = _key_id(session)
        return session.client(
            "s3", region_name=self.region, endpoint_url=self.endpoint_url, config=cfg
        )

    def _rotated(self) -> bool:
        """Whether the credentials the SDK finds now (environment, credentials file,
        role) differ from the ones our client signs with, as after a key rotation:
        then the client is rebuilt with them, without a restart."""
        if not self._own_client:
            return False  # an injected client is not ours to rebuild
        import boto3

        with self._rotation:
            if getattr(self._used, "generation", self._generation) < self._generation:
                return True  # another thread rebuilt the client since this one took it
            if _key_id(boto3.session.Session()) == self._key_id:
                return False
            self.client = self._make_client()
        log.warning("%s: AWS credentials changed (rotated); using the new ones", self.url)
        return True

    # ------------------------------------------------------------------ protocol

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        size: int,
        metadata: Mapping[str, str],
        if_none_match: bool = True,
    ) -> ObjectInfo:
        name = self._name(key)
        meta = check_metadata(dict(metadata), self.url, key)
        extra = self._write_args(meta)
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        if size <= self.multipart_threshold:
            return put_single(self, key, name, source, size, meta, extra)
        return put_multipart(self, key, name, source, size, meta, extra)

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        name = self._name(key)
        if length == 0:
            self.stat(key)
            return io.BytesIO(b"")
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        try:
            body = self.client.get_object(**args)["Body"]
        except Exception as e:
            if error_code(e) == "InvalidRange":  # offset at/after the end: nothing to read
                return io.BytesIO(b"")
            raise self._error(e, key, "read") from e
        return body  # type: ignore[no-any-return]

    def stat(self, key: str) -> ObjectInfo:
        try:
            r = self.client.head_object(
                Bucket=self.bucket, Key=self._name(key), ChecksumMode="ENABLED"
            )
        except Exception as e:
            raise self._error(e, key, "stat") from e
        return ObjectInfo(
            key=key,
            size=int(r["ContentLength"]),
            metadata=dict(r.get("Metadata", {})),
            version=version(r),
            sha256=full_sha256_hex(r),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        try:
            for page in pages:
                for o in page.get("Contents", []):
                    yield ObjectInfo(
                        key=o["Key"][len(self.prefix) :],
                        size=int(o["Size"]),
                        version=str(o.get("ETag", "")),
                    )
        except Exception as e:
            raise self._error(e, prefix, "list") from e

    def delete(self, key: str) -> None:
        self.stat(key)  # S3 deletes a missing key silently; the contract says ObjectNotFound
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))
        except Exception as e:
            raise self._error(e, key, "delete") from e

    # ------------------------------------------------------------------ writes

    def _write_args(self, meta: dict[str, str]) -> dict[str, Any]:
        args: dict[str, Any] = {"Metadata": meta, "ContentType": "application/octet-stream"}
        if self.sse_kms_key_id:
            args["ServerSideEncryption"] = "aws:kms"
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.object_lock_mode and self.object_lock_days:
            args["ObjectLockMode"] = self.object_lock_mode
            args["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(
                days=self.object_lock_days
            )
        return args

    # ------------------------------------------------------------------ errors

    def _name(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"invalid object key {key!r}")
        return self.prefix + key

    def _error(self, e: BaseException, key: str, action: str) -> Exception:
        """The one place S3/botocore errors become the project's errors."""
        where = f"{self.url}/{key}"
        code = error_code(e)
        if code == "NoSuchBucket":
            return ObjectNotFound(f"bucket {self.bucket} does not exist ({self.endpoint_or_aws})")
        if code in NOT_FOUND:
            if action in ("write", "list") or not self._bucket_exists():
                return ObjectNotFound(
                    f"bucket {self.bucket} does not exist ({self.endpoint_or_aws})"
                )
            return ObjectNotFound(f"{where} does not exist")
        if code in PRECONDITION:
            return PreconditionFailed(f"{where} already exists")
        # a HEAD's refusal has no body: a bare 403 may be bad credentials too
        if code in BAD_CREDENTIALS | {"403", "Forbidden"} and self._rotated():
            return StorageError(
                f"{action} {where}: {code}: the credentials were rotated; retrying with "
                "the new ones",
                transient=True,
            )
        if code in DENIED:
            return PermissionDenied(
                f"{action} {where}: {code}: {error_message(e)} "
                "(check the credentials and the bucket/IAM policy)"
            )
        if code in INTEGRITY:
            return IntegrityError(
                f"{action} {where}: S3 rejected the data: {code}: {error_message(e)}"
            )
        if isinstance(e, ShipperError):
            return e
        try:
            from botocore.exceptions import NoCredentialsError, PartialCredentialsError
        except ImportError:  # pragma: no cover
            pass
        else:
            if isinstance(e, NoCredentialsError | PartialCredentialsError):
                return PermissionDenied(f"{action} {where}: no AWS credentials found ({e})")
        return StorageError(
            f"{action} {where} failed: {code or type(e).__name__}: {error_message(e)}",
            transient=is_transient(e, code),
        )

    @property
    def endpoint_or_aws(self) -> str:
        return self.endpoint_url or f"AWS {self.region or 'default region'}"

    def _bucket_exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as e:
            return error_code(e) not in NOT_FOUND | {"NoSuchBucket"}
        return True


def _key_id(session: Any) -> str | None:
    creds = session.get_credentials()
    return None if creds is None else str(creds.access_key)
