"""Writing an object to S3: one PutObject, or a streamed multipart upload.

Writes never overwrite. Objects up to ``multipart_threshold`` go up in one
``PutObject`` with ``If-None-Match: *`` and a ``ChecksumSHA256`` the service
verifies before it stores anything. Larger objects stream through a multipart
upload: each part carries its own SHA-256, at most ``max_concurrency`` parts
are in memory at once (so memory is bounded whatever the object size), and the
upload is completed with ``If-None-Match: *``. As in s3transfer, the abort is
armed the moment the upload is created: any failure -- the source raising, a
part rejected, the precondition -- aborts it, so no orphaned parts stay behind
to be billed.

Both compare the checksum S3 reports (the object's SHA-256, or for a multipart
upload the composite SHA-256 of the part checksums, "<b64>-N") with the one
computed locally and raise ``IntegrityError`` when they differ.

Memory: a single PUT holds at most ``multipart_threshold`` bytes (S3 needs the
checksum before the body); a multipart upload at most
``(max_concurrency + 1) * part_size``.

These are the write half of :class:`~shipper.storage.s3.S3Backend`, kept apart
because streaming parts through a bounded pool is its own piece of machinery:
they take the backend for its client, bucket and settings, and map SDK errors
with its ``_error``, the one place S3 errors become the project's.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, BinaryIO

from shipper.errors import IntegrityError, PreconditionFailed, StorageError
from shipper.storage.base import ObjectInfo
from shipper.storage.s3_responses import NOT_FOUND, error_code, version

if TYPE_CHECKING:
    from shipper.storage.s3 import S3Backend

# the backend's logger: what an upload logs is the s3 backend's, as before the split
log = logging.getLogger("shipper.storage.s3")

MAX_PARTS = 10_000
METADATA_LIMIT = 2048  # S3 user metadata: bytes of keys + values

_Parts = list[dict[str, Any]]


def put_single(
    s3: S3Backend,
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
        raise StorageError(f"{s3.url}/{key}: declared size {size} but read {len(data)}+")
    digest = hashlib.sha256(data).digest()
    try:
        r = s3.client.put_object(
            Bucket=s3.bucket,
            Key=name,
            Body=data,
            ContentLength=size,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=_b64(digest),
            **extra,
        )
    except Exception as e:
        raise s3._error(e, key, "write") from e
    _compare(s3.url, key, "SHA-256", r.get("ChecksumSHA256"), _b64(digest))
    return ObjectInfo(key=key, size=size, metadata=meta, version=version(r), sha256=digest.hex())


def put_multipart(
    s3: S3Backend,
    key: str,
    name: str,
    source: BinaryIO,
    size: int,
    meta: dict[str, str],
    extra: dict[str, Any],
) -> ObjectInfo:
    part_size = max(s3.part_size, -(-size // MAX_PARTS))
    if_none_match = extra.pop("IfNoneMatch", None)
    if if_none_match:
        # Cheap early answer; the conditional complete below is the real guarantee.
        try:
            s3.client.head_object(Bucket=s3.bucket, Key=name)
        except Exception as e:
            if error_code(e) not in NOT_FOUND:
                raise s3._error(e, key, "write") from e
        else:
            raise PreconditionFailed(f"{s3.url}/{key} already exists")
    try:
        upload_id = s3.client.create_multipart_upload(
            Bucket=s3.bucket, Key=name, ChecksumAlgorithm="SHA256", **extra
        )["UploadId"]
    except Exception as e:
        raise s3._error(e, key, "write") from e
    # From here on every exit that is not a completed upload aborts it.
    try:
        parts, read = _send_parts(s3, key, name, upload_id, source, part_size, size)
        if read != size:
            raise StorageError(f"{s3.url}/{key}: declared size {size} but read {read}")
        complete: dict[str, Any] = {}
        if if_none_match:
            complete["IfNoneMatch"] = if_none_match
        try:
            r = s3.client.complete_multipart_upload(
                Bucket=s3.bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                **complete,
            )
        except Exception as e:
            raise s3._error(e, key, "write") from e
    except BaseException:
        # SDK errors were mapped where they were raised; anything else came
        # from the source (or is an interrupt) and propagates unchanged.
        _abort(s3, key, name, upload_id)
        raise
    composite = hashlib.sha256(
        b"".join(base64.b64decode(p["ChecksumSHA256"]) for p in parts)
    ).digest()
    reported = r.get("ChecksumSHA256")
    if not reported:  # some services (moto) only report it on HEAD
        try:
            h = s3.client.head_object(Bucket=s3.bucket, Key=name, ChecksumMode="ENABLED")
        except Exception as e:
            raise s3._error(e, key, "verify") from e
        reported = h.get("ChecksumSHA256")
        if int(h["ContentLength"]) != size:
            raise IntegrityError(
                f"{s3.url}/{key}: S3 reports {h['ContentLength']} bytes, sent {size}"
            )
    _compare(s3.url, key, "composite SHA-256", reported, f"{_b64(composite)}-{len(parts)}")
    return ObjectInfo(key=key, size=size, metadata=meta, version=version(r), sha256=None)


def _send_parts(
    s3: S3Backend, key: str, name: str, upload_id: str, source: BinaryIO, part_size: int, size: int
) -> tuple[_Parts, int]:
    """Read ``source`` part by part and upload with at most max_concurrency in flight."""
    done: dict[int, dict[str, Any]] = {}
    pending: set[Future[dict[str, Any]]] = set()
    read = 0
    number = 0

    def send(n: int, data: bytes) -> dict[str, Any]:
        sha = _b64(hashlib.sha256(data).digest())
        try:
            r = s3.client.upload_part(
                Bucket=s3.bucket,
                Key=name,
                UploadId=upload_id,
                PartNumber=n,
                Body=data,
                ContentLength=len(data),
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=sha,
            )
        except Exception as e:
            raise s3._error(e, key, f"write part {n} of") from e
        _compare(s3.url, key, f"part {n} SHA-256", r.get("ChecksumSHA256"), sha)
        return {"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": sha}

    with ThreadPoolExecutor(s3.max_concurrency, thread_name_prefix="s3-part") as pool:
        try:
            while True:
                data = _read_full(source, part_size)
                if not data and number > 0:
                    break
                number += 1
                read += len(data)
                if read > size:  # stop sending early; the caller aborts
                    raise StorageError(
                        f"{s3.url}/{key}: source is longer than its declared size {size}"
                    )
                pending.add(pool.submit(send, number, data))
                del data
                if len(pending) >= s3.max_concurrency:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        p = f.result()
                        done[p["PartNumber"]] = p
                if number >= MAX_PARTS:
                    if _read_full(source, 1):
                        raise StorageError(f"{s3.url}: object exceeds {MAX_PARTS} parts")
                    break
            for f in pending:
                p = f.result()
                done[p["PartNumber"]] = p
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return [done[n] for n in sorted(done)], read


def _abort(s3: S3Backend, key: str, name: str, upload_id: str) -> None:
    try:
        s3.client.abort_multipart_upload(Bucket=s3.bucket, Key=name, UploadId=upload_id)
    except Exception as e:  # the original failure matters more; say what is left over
        log.warning(
            "could not abort multipart upload",
            extra={"url": f"{s3.url}/{key}", "upload_id": upload_id, "error": str(e)},
        )


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


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


def check_metadata(meta: dict[str, str], url: str, key: str) -> dict[str, str]:
    total = 0
    for k, v in meta.items():
        if not (k.isascii() and str(v).isascii()):
            raise StorageError(f"{url}/{key}: S3 metadata must be ASCII ({k}={v!r})")
        total += len(k) + len(str(v))
    if total > METADATA_LIMIT:
        raise StorageError(f"{url}/{key}: metadata is {total} bytes, S3 allows {METADATA_LIMIT}")
    return {k.lower(): str(v) for k, v in meta.items()}
