"""``s3://bucket/prefix`` backend (boto3; any S3-compatible endpoint).

Writes never overwrite. Objects up to ``multipart_threshold`` go up in one
``PutObject`` with ``If-None-Match: *`` and a ``ChecksumSHA256`` the service
verifies before it stores anything. Larger objects stream through a multipart
upload: each part carries its own SHA-256, at most ``max_concurrency`` parts
are in memory at once (so memory is bounded whatever the object size), and the
upload is completed with ``If-None-Match: *``. As in s3transfer, the abort is
armed the moment the upload is created: any failure -- the source raising, a
part rejected, the precondition -- aborts it, so no orphaned parts stay behind
to be billed.

``put`` compares the checksum S3 reports (the object's SHA-256, or for a
multipart upload the composite SHA-256 of the part checksums, "<b64>-N") with
the one computed locally and raises ``IntegrityError`` when they differ.
``ObjectInfo.sha256`` is the whole object's SHA-256 when S3 keeps one (single
PUT); a multipart object has only the composite, so it is ``None`` there, from
``put`` and ``stat`` alike. ``list`` does not fetch user metadata (S3 would
need one HEAD per object); use ``stat`` for that.

Memory: a single PUT holds at most ``multipart_threshold`` bytes (S3 needs the
checksum before the body); a multipart upload at most
``(max_concurrency + 1) * part_size``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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

log = logging.getLogger(__name__)

MiB = 1 << 20
MIN_PART = 5 * MiB  # S3's floor for every part but the last
MAX_PARTS = 10_000
METADATA_LIMIT = 2048  # S3 user metadata: bytes of keys + values

_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}
_PRECONDITION = {"412", "PreconditionFailed", "ConditionalRequestConflict"}
_DENIED = {
    "403",
    "AccessDenied",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AccountProblem",
    "AllAccessDisabled",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
}
# the credentials themselves were refused (not the action): after a rotation, new
# credentials may be on disk already
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "InvalidClientTokenId",
}
# (a module-level alias: inside S3Backend, "list" is the method)
_Parts = list[dict[str, Any]]
_INTEGRITY = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
# Asking again may succeed: throttling, server-side trouble, timeouts. (Any 5xx too.)
_TRANSIENT = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "429",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
}
# botocore's names for "the request never got an answer" (connection refused/reset, timeouts)
_TRANSIENT_SDK = {
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionError",
    "ProxyConnectionError",
    "ResponseStreamingError",
    "IncompleteReadError",
    "ProtocolError",
}


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
        meta = _check_metadata(dict(metadata), self.url, key)
        extra = self._write_args(meta)
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        if size <= self.multipart_threshold:
            return self._put_single(key, name, source, size, meta, extra)
        return self._put_multipart(key, name, source, size, meta, extra)

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
            if _code(e) == "InvalidRange":  # offset at/after the end: nothing to read
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
            version=_version(r),
            sha256=_full_sha256_hex(r),
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

    # ------------------------------------------------------------------ uploads

    def _put_single(
        self,
        key: str,
        name: str,
        source: BinaryIO,
        size: int,
        meta: dict[str, str],
        extra: dict[str, Any],
    ) -> ObjectInfo:
        # Bounded by multipart_threshold: S3 must have the checksum before the body.
        data = _read_full(source, size + 1)
        if len(data) != size:
            raise StorageError(f"{self.url}/{key}: declared size {size} but read {len(data)}+")
        digest = hashlib.sha256(data).digest()
        try:
            r = self.client.put_object(
                Bucket=self.bucket,
                Key=name,
                Body=data,
                ContentLength=size,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64(digest),
                **extra,
            )
        except Exception as e:
            raise self._error(e, key, "write") from e
        _compare(self.url, key, "SHA-256", r.get("ChecksumSHA256"), _b64(digest))
        return ObjectInfo(
            key=key, size=size, metadata=meta, version=_version(r), sha256=digest.hex()
        )

    def _put_multipart(
        self,
        key: str,
        name: str,
        source: BinaryIO,
        size: int,
        meta: dict[str, str],
        extra: dict[str, Any],
    ) -> ObjectInfo:
        part_size = max(self.part_size, -(-size // MAX_PARTS))
        if_none_match = extra.pop("IfNoneMatch", None)
        if if_none_match:
            # Cheap early answer; the conditional complete below is the real guarantee.
            try:
                self.client.head_object(Bucket=self.bucket, Key=name)
            except Exception as e:
                if _code(e) not in _NOT_FOUND:
                    raise self._error(e, key, "write") from e
            else:
                raise PreconditionFailed(f"{self.url}/{key} already exists")
        try:
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=name, ChecksumAlgorithm="SHA256", **extra
            )["UploadId"]
        except Exception as e:
            raise self._error(e, key, "write") from e
        # From here on every exit that is not a completed upload aborts it.
        try:
            parts, read = self._send_parts(key, name, upload_id, source, part_size, size)
            if read != size:
                raise StorageError(f"{self.url}/{key}: declared size {size} but read {read}")
            complete: dict[str, Any] = {}
            if if_none_match:
                complete["IfNoneMatch"] = if_none_match
            try:
                r = self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **complete,
                )
            except Exception as e:
                raise self._error(e, key, "write") from e
        except BaseException:
            # SDK errors were mapped where they were raised; anything else came
            # from the source (or is an interrupt) and propagates unchanged.
            self._abort(key, name, upload_id)
            raise
        composite = hashlib.sha256(
            b"".join(base64.b64decode(p["ChecksumSHA256"]) for p in parts)
        ).digest()
        reported = r.get("ChecksumSHA256")
        if not reported:  # some services (moto) only report it on HEAD
            try:
                h = self.client.head_object(Bucket=self.bucket, Key=name, ChecksumMode="ENABLED")
            except Exception as e:
                raise self._error(e, key, "verify") from e
            reported = h.get("ChecksumSHA256")
            if int(h["ContentLength"]) != size:
                raise IntegrityError(
                    f"{self.url}/{key}: S3 reports {h['ContentLength']} bytes, sent {size}"
                )
        _compare(self.url, key, "composite SHA-256", reported, f"{_b64(composite)}-{len(parts)}")
        return ObjectInfo(key=key, size=size, metadata=meta, version=_version(r), sha256=None)

    def _send_parts(
        self, key: str, name: str, upload_id: str, source: BinaryIO, part_size: int, size: int
    ) -> tuple[_Parts, int]:
        """Read ``source`` part by part and upload with at most max_concurrency in flight."""
        done: dict[int, dict[str, Any]] = {}
        pending: set[Future[dict[str, Any]]] = set()
        read = 0
        number = 0

        def send(n: int, data: bytes) -> dict[str, Any]:
            sha = _b64(hashlib.sha256(data).digest())
            try:
                r = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=n,
                    Body=data,
                    ContentLength=len(data),
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=sha,
                )
            except Exception as e:
                raise self._error(e, key, f"write part {n} of") from e
            _compare(self.url, key, f"part {n} SHA-256", r.get("ChecksumSHA256"), sha)
            return {"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": sha}

        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="s3-part") as pool:
            try:
                while True:
                    data = _read_full(source, part_size)
                    if not data and number > 0:
                        break
                    number += 1
                    read += len(data)
                    if read > size:  # stop sending early; the caller aborts
                        raise StorageError(
                            f"{self.url}/{key}: source is longer than its declared size {size}"
                        )
                    pending.add(pool.submit(send, number, data))
                    del data
                    if len(pending) >= self.max_concurrency:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in finished:
                            p = f.result()
                            done[p["PartNumber"]] = p
                    if number >= MAX_PARTS:
                        if _read_full(source, 1):
                            raise StorageError(f"{self.url}: object exceeds {MAX_PARTS} parts")
                        break
                for f in pending:
                    p = f.result()
                    done[p["PartNumber"]] = p
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
        return [done[n] for n in sorted(done)], read

    def _abort(self, key: str, name: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except Exception as e:  # the original failure matters more; say what is left over
            log.warning(
                "could not abort multipart upload",
                extra={"url": f"{self.url}/{key}", "upload_id": upload_id, "error": str(e)},
            )

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
        code = _code(e)
        if code == "NoSuchBucket":
            return ObjectNotFound(f"bucket {self.bucket} does not exist ({self.endpoint_or_aws})")
        if code in _NOT_FOUND:
            if action in ("write", "list") or not self._bucket_exists():
                return ObjectNotFound(
                    f"bucket {self.bucket} does not exist ({self.endpoint_or_aws})"
                )
            return ObjectNotFound(f"{where} does not exist")
        if code in _PRECONDITION:
            return PreconditionFailed(f"{where} already exists")
        # a HEAD's refusal has no body: a bare 403 may be bad credentials too
        if code in _BAD_CREDENTIALS | {"403", "Forbidden"} and self._rotated():
            return StorageError(
                f"{action} {where}: {code}: the credentials were rotated; retrying with "
                "the new ones",
                transient=True,
            )
        if code in _DENIED:
            return PermissionDenied(
                f"{action} {where}: {code}: {_message(e)} "
                "(check the credentials and the bucket/IAM policy)"
            )
        if code in _INTEGRITY:
            return IntegrityError(f"{action} {where}: S3 rejected the data: {code}: {_message(e)}")
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
            f"{action} {where} failed: {code or type(e).__name__}: {_message(e)}",
            transient=_is_transient(e, code),
        )

    @property
    def endpoint_or_aws(self) -> str:
        return self.endpoint_url or f"AWS {self.region or 'default region'}"

    def _bucket_exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as e:
            return _code(e) not in _NOT_FOUND | {"NoSuchBucket"}
        return True


def _key_id(session: Any) -> str | None:
    creds = session.get_credentials()
    return None if creds is None else str(creds.access_key)


def _is_transient(e: BaseException, code: str) -> bool:
    if code in _TRANSIENT or (code.isdigit() and int(code) >= 500):
        return True
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int) and (status >= 500 or status == 429):
            return True
    return any(c.__name__ in _TRANSIENT_SDK for c in type(e).__mro__)


def _code(e: BaseException) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        code = str(err.get("Code", ""))
        if code:
            return code
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return str(status or "")
    return ""


def _message(e: BaseException) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Message"):
        return str(response["Error"]["Message"])
    return str(e)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _version(r: Mapping[str, Any]) -> str:
    """VersionId on a versioned bucket, else the ETag ("null" means unversioned)."""
    vid = r.get("VersionId")
    return str(vid if vid and vid != "null" else r.get("ETag", ""))


def _full_sha256_hex(head: Mapping[str, Any]) -> str | None:
    """Hex SHA-256 of the whole object from a HEAD, or None when S3's value is a
    composite of part checksums (multipart: ChecksumType COMPOSITE, a "-N"
    suffix, or -- on services that omit both -- a multipart ETag)."""
    checksum = head.get("ChecksumSHA256")
    if not checksum or "-" in checksum or head.get("ChecksumType") == "COMPOSITE":
        return None
    if "-" in str(head.get("ETag", "")):
        return None
    return base64.b64decode(checksum).hex()


def _compare(url: str, key: str, what: str, reported: str | None, local: str) -> None:
    """Raise IntegrityError when S3 reports a checksum other than ours.

    Some S3-compatible services report none; then there is nothing to compare
    (S3 itself verified the value we sent before it stored the bytes).
    """
    if not reported:
        return
    if reported.split("-")[0] != local.split("-")[0]:
        raise IntegrityError(f"{url}/{key}: {what} reported by S3 {reported} != local {local}")


def _read_full(source: BinaryIO, n: int) -> bytes:
    """Read exactly n bytes unless the stream ends first (pipes return short reads)."""
    chunks: list[bytes] = []
    left = n
    while left > 0:
        b = source.read(left)
        if not b:
            break
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


def _check_metadata(meta: dict[str, str], url: str, key: str) -> dict[str, str]:
    total = 0
    for k, v in meta.items():
        if not (k.isascii() and str(v).isascii()):
            raise StorageError(f"{url}/{key}: S3 metadata must be ASCII ({k}={v!r})")
        total += len(k) + len(str(v))
    if total > METADATA_LIMIT:
        raise StorageError(f"{url}/{key}: metadata is {total} bytes, S3 allows {METADATA_LIMIT}")
    return {k.lower(): str(v) for k, v in meta.items()}
