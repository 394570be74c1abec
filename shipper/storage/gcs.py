"""``gs://bucket/prefix`` backend (google-cloud-storage).

Writes never overwrite: every upload carries ``ifGenerationMatch=0`` ("only if
no live object has this name"), which GCS checks when the object is finalized.
Objects up to ``resumable_threshold`` (at most 8 MiB, the library's own
single-request limit) go up in one request; larger ones use a resumable upload
that reads and sends ``chunk_size`` bytes at a time (default 100 MiB, the
library's own default), so memory stays bounded by one chunk.
A resumable upload only creates the object when its last chunk arrives: if the
source fails midway, nothing is created (the abandoned session expires).

CRC32C is computed locally while streaming; the library sends it / checks it
against the server's, and ``put`` compares size and CRC32C again with what GCS
reports (``IntegrityError`` on mismatch, after deleting exactly that
generation). GCS keeps no SHA-256, so ``ObjectInfo.sha256`` is ``None``.

Credentials (``shipper/storage/gcs_auth.py``): ``STORAGE_EMULATOR_HOST``
(fake-gcs-server) means anonymous credentials; ``endpoint_url`` is any endpoint
with real ones; a key file from ``credentials_file`` or
``GOOGLE_APPLICATION_CREDENTIALS`` is watched, so a replaced (rotated) key is
used without a restart. They are looked up only when a ``gs://`` target is
opened (never for a host whose targets are file:// or s3://); none found is a
``PermissionDenied`` naming the target and how to provide them.

``sdk_retry_seconds`` bounds the library's own retries of every call; the
default, 0, turns them off and leaves retrying to ``shipper/storage/retry.py``,
which retries what :meth:`GCSBackend._error` marks transient. ``timeout``
(seconds) bounds each HTTP request, so a stalled endpoint ends in a transient
error instead of a hung thread.

This module is the backend: its options, the protocol methods, and ``_error``,
the one place SDK errors become the project's (what each error means is read in
``gcs_errors.py``). The upload's source reader (exact size, CRC32C) and the
download stream whose failures are mapped like every call's are ``gcs_io.py``.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO
from urllib.parse import urlparse

from shipper.errors import ConfigError, IntegrityError, PreconditionFailed, StorageError
from shipper.storage.base import Capabilities, ObjectInfo
from shipper.storage.gcs_auth import Login, Logins
from shipper.storage.gcs_errors import classify, http_status
from shipper.storage.gcs_io import ExactSource, MappedReader

log = logging.getLogger(__name__)

MiB = 1 << 20
CHUNK_ALIGN = 256 * 1024  # resumable chunks must be multiples of 256 KiB
SINGLE_REQUEST_MAX = 8 * MiB  # google-cloud-storage's own multipart/resumable switch
_CONTENT_TYPE = "application/octet-stream"


class GCSBackend:
    # GCS checks our CRC32C on upload, so "auto" verification reads header + chunk 0.
    # Generations are versions; rewrite copies and compose joins inside the service.
    capabilities = Capabilities(
        verify_mode="prefix",
        conditional_create=True,
        versions=True,
        server_side_copy=True,
        compose=True,
    )

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        project: str | None = None,
        endpoint_url: str | None = None,
        credentials_file: str | None = None,
        chunk_size: int = 100 * MiB,  # google-cloud-storage's own default
        resumable_threshold: int = SINGLE_REQUEST_MAX,
        sdk_retry_seconds: float | None = 0,
        timeout: float = 60.0,
    ) -> None:
        if not bucket:
            raise ConfigError("gs target needs a bucket: gs://BUCKET/prefix")
        if chunk_size <= 0 or chunk_size % CHUNK_ALIGN:
            raise ConfigError(f"gs chunk_size {chunk_size} must be a multiple of 256 KiB")
        self.bucket_name = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"gs://{bucket}/{self.prefix}".rstrip("/")
        self.chunk_size = chunk_size
        self.resumable_threshold = min(resumable_threshold, SINGLE_REQUEST_MAX)
        # the client, rebuilt with the new key when a refused key file was replaced
        self.logins = Logins(
            self.url,
            project=project,
            endpoint_url=endpoint_url,
            credentials_file=credentials_file,
            client=client,
        )
        # the library's own retries are off by default: shipper.storage.retry retries
        # every call, so the backoff and the circuit breaker see every failure
        self._retry = {**_sdk_retry(sdk_retry_seconds), "timeout": timeout}

    @classmethod
    def from_url(cls, url: str, opts: Mapping[str, Any]) -> GCSBackend:
        p = urlparse(url)
        known = {
            "client",
            "project",
            "endpoint_url",
            "credentials_file",
            "chunk_size",
            "resumable_threshold",
            "sdk_retry_seconds",
            "timeout",
        }
        unknown = set(opts) - known
        if unknown:
            raise ConfigError(f"target {url!r}: unknown gs option(s) {sorted(unknown)}")
        kw: dict[str, Any] = dict(opts)
        for name in ("chunk_size", "resumable_threshold"):
            if kw.get(name) is not None:
                kw[name] = int(kw[name])
        for name in ("sdk_retry_seconds", "timeout"):
            if kw.get(name) is not None:
                kw[name] = float(kw[name])
        return cls(p.netloc, p.path, **kw)

    @property
    def client(self) -> Any:
        return self.logins.current.client

    @property
    def bucket(self) -> Any:
        return self.client.bucket(self.bucket_name)

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
        login = self.logins.current  # errors are judged against the credentials used
        blob = self._blob(login, key, chunk_size=self.chunk_size)
        blob.metadata = {k: str(v) for k, v in metadata.items()}
        cond: dict[str, Any] = {"if_generation_match": 0} if if_none_match else {}
        if size <= self.resumable_threshold:
            reader = ExactSource(source, size, self.url, key)
            data = reader.read(size)  # bounded by resumable_threshold (<= 8 MiB)
            self._sdk(
                login,
                key,
                "write",
                blob.upload_from_file,
                io.BytesIO(data),
                size=size,
                content_type=_CONTENT_TYPE,
                checksum="crc32c",
                **cond,
                **self._retry,
            )
        else:
            if if_none_match and self._sdk(login, key, "write", blob.exists, **self._retry):
                # Early answer before sending a large body. The real guarantee is
                # ifGenerationMatch=0, which GCS checks at finalize (fake-gcs-server
                # before PR #2260 ignores it on resumable uploads: issue #1967).
                raise PreconditionFailed(f"{self.url}/{key} already exists")
            reader = ExactSource(source, size, self.url, key)
            try:
                # The library reads chunk_size at a time from `reader` and sends
                # each chunk; the object appears only when the last one lands. If
                # the source fails the session is abandoned and never becomes an
                # object (GCS expires it after a week).
                blob.upload_from_file(
                    reader,
                    size=size if size > SINGLE_REQUEST_MAX else None,
                    content_type=_CONTENT_TYPE,
                    checksum="crc32c",
                    **cond,
                    **self._retry,
                )
            except Exception as e:
                if e is reader.error:
                    raise  # the source's own failure (or a size mismatch), unchanged
                raise self._error(e, key, "write", login) from e
        local_crc = base64.b64encode(reader.crc.digest()).decode()
        if blob.size != size or blob.crc32c != local_crc:
            self._discard(key, blob)
            raise IntegrityError(
                f"{self.url}/{key}: GCS stored {blob.size} bytes crc32c {blob.crc32c}, "
                f"sent {size} bytes crc32c {local_crc}"
            )
        return self._info(key, blob)

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        login = self.logins.current
        blob = self._blob(login, key)
        try:
            if length is None and offset == 0:
                # maps a missing object now, and pins the generation we read
                blob.reload(**self._retry)
                reader = blob.open("rb", chunk_size=self.chunk_size, **self._retry)
                return MappedReader(reader, lambda e: self._error(e, key, "read", login))  # type: ignore[return-value]
            if length == 0:
                blob.reload(**self._retry)
                return io.BytesIO(b"")
            end = None if length is None else offset + length - 1
            data = blob.download_as_bytes(start=offset, end=end, checksum=None, **self._retry)
            return io.BytesIO(data)
        except Exception as e:
            if http_status(e) == 416:  # offset at/after the end: nothing to read
                return io.BytesIO(b"")
            raise self._error(e, key, "read", login) from e

    def stat(self, key: str) -> ObjectInfo:
        login = self.logins.current
        blob = self._blob(login, key)
        try:
            blob.reload(**self._retry)
        except Exception as e:
            raise self._error(e, key, "stat", login) from e
        return self._info(key, blob)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        login = self.logins.current
        try:
            blobs = login.client.list_blobs(
                self.bucket_name, prefix=self.prefix + prefix, **self._retry
            )
            for blob in blobs:
                yield self._info(blob.name[len(self.prefix) :], blob)
        except Exception as e:
            raise self._error(e, prefix, "list", login) from e

    def delete(self, key: str) -> None:
        login = self.logins.current
        try:
            self._blob(login, key).delete(**self._retry)
        except Exception as e:
            raise self._error(e, key, "delete", login) from e

    # ------------------------------------------------------------------ uploads

    def _sdk(self, login: Login, key: str, action: str, fn: Any, *args: Any, **kw: Any) -> Any:
        """Call the SDK, mapping its errors (and only its errors) to ours."""
        try:
            return fn(*args, **kw)
        except Exception as e:
            raise self._error(e, key, action, login) from e

    def _discard(self, key: str, blob: Any) -> None:
        try:
            blob.delete(if_generation_match=blob.generation)
        except Exception as e:
            log.warning(
                "could not delete corrupt upload",
                extra={"url": f"{self.url}/{key}", "error": str(e)},
            )

    # ------------------------------------------------------------------ helpers

    def _blob(self, login: Login, key: str, **kw: Any) -> Any:
        return login.client.bucket(self.bucket_name).blob(self._name(key), **kw)

    def _name(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"invalid object key {key!r}")
        return self.prefix + key

    def _info(self, key: str, blob: Any, sha256: str | None = None) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=int(blob.size or 0),
            metadata=dict(blob.metadata or {}),
            version=str(blob.generation or ""),
            sha256=sha256,
        )

    def _error(
        self, e: BaseException, key: str, action: str, login: Login | None = None
    ) -> Exception:
        """The one place google-cloud-storage errors become the project's errors
        (:func:`~shipper.storage.gcs_errors.classify`, given this bucket and credentials).

        ``login`` is the client the failed call used: a refusal of its credentials
        is worth retrying when newer ones are in place now (a rotated key file).
        """
        return classify(
            e,
            where=f"{self.url}/{key}",
            action=action,
            bucket=self.bucket_name,
            bucket_exists=self._bucket_exists,
            logins=self.logins,
            login=login,
        )

    def _bucket_exists(self) -> bool:
        try:
            return bool(self.bucket.exists())
        except Exception:
            return True  # cannot tell: do not claim the bucket is missing


def _sdk_retry(seconds: float | None) -> dict[str, Any]:
    """Keyword arguments that bound (or turn off) the library's own retries."""
    if seconds is None:
        return {}
    if seconds <= 0:
        return {"retry": None}
    from google.cloud.storage.retry import DEFAULT_RETRY

    return {"retry": DEFAULT_RETRY.with_timeout(seconds)}
