"""``file://`` backend: a directory tree on a local or mounted filesystem.

Writes go to a temporary name in the destination directory, are fsynced, then
linked into place with ``os.link`` -- which fails if the name exists -- so the
"must not exist" precondition is atomic and a crash never leaves a partial
object under the real key. Metadata lives in a sidecar ``<key>.meta.json``
written *before* the object is linked, so an object never appears without it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, cast

from shipper.errors import ObjectNotFound, PermissionDenied, PreconditionFailed, StorageError
from shipper.storage.base import Capabilities, ObjectInfo

_META_SUFFIX = ".meta.json"
_TMP_PREFIX = ".tmp-"
_LOCK_NAME = ".lock"
_BUF = 1 << 20


#: errnos that may pass on their own (a busy or briefly unreachable network mount)
_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT, errno.ESTALE}


class FileBackend:
    capabilities = Capabilities(verify_mode="full", conditional_create=True)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.url = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"invalid object key {key!r}")
        return self.root / key

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        size: int,
        metadata: Mapping[str, str],
        if_none_match: bool = True,
    ) -> ObjectInfo:
        dest = self._path(key)
        if if_none_match and dest.exists():
            raise PreconditionFailed(f"{self.url}/{key} already exists")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=dest.parent)
        except OSError as e:
            raise _error(e, f"cannot write under {dest.parent}") from e
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            written = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(_BUF):
                    digest.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if written != size:
                raise StorageError(f"{self.url}/{key}: declared size {size} but read {written}")
            meta_path = dest.with_name(dest.name + _META_SUFFIX)
            meta_doc = {"metadata": dict(metadata), "sha256": digest.hexdigest(), "size": size}
            # Only the publish step is serialised: under the directory lock, a writer that
            # finds the key taken leaves the winner's sidecar alone, and one that publishes
            # writes its sidecar before linking its data, so no reader sees data without
            # its metadata. A sidecar left by a writer that crashed before linking is
            # simply replaced by the next writer.
            with _dir_lock(dest.parent):
                if dest.exists():
                    raise PreconditionFailed(f"{self.url}/{key} already exists")
                _write_atomic(meta_path, json.dumps(meta_doc, sort_keys=True).encode())
                try:
                    os.link(tmp, dest)  # atomic "if none match" even without the lock
                except FileExistsError:
                    raise PreconditionFailed(f"{self.url}/{key} already exists") from None
                _fsync_dir(dest.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return self.stat(key)

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        path = self._path(key)
        try:
            f = path.open("rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.url}/{key} does not exist") from None
        except OSError as e:
            raise _error(e, f"cannot read {path}") from e
        if offset:
            f.seek(offset)
        if length is None:
            return f
        return cast(BinaryIO, _Limited(f, length))

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.url}/{key} does not exist") from None
        meta: dict[str, str] = {}
        sha: str | None = None
        meta_path = path.with_name(path.name + _META_SUFFIX)
        with contextlib.suppress(FileNotFoundError):
            doc = json.loads(meta_path.read_text())
            meta = dict(doc.get("metadata", {}))
            sha = doc.get("sha256")
        return ObjectInfo(
            key=key, size=st.st_size, metadata=meta, version=str(st.st_mtime_ns), sha256=sha
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.exists():
            return
        keys: list[str] = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if (
                    name.endswith(_META_SUFFIX)
                    or name.startswith(_TMP_PREFIX)
                    or name == _LOCK_NAME
                ):
                    continue
                key = os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):
            with contextlib.suppress(ObjectNotFound):
                yield self.stat(key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.url}/{key} does not exist") from None
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + _META_SUFFIX).unlink()


class _Limited:
    """A read-only view of at most ``length`` bytes of an open file."""

    def __init__(self, f: BinaryIO, length: int) -> None:
        self._f = f
        self._left = length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> _Limited:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error(e: OSError, what: str) -> StorageError:
    """The one place OS errors become the project's errors."""
    if isinstance(e, PermissionError):
        return PermissionDenied(f"{what}: {e.strerror}")
    return StorageError(f"{what}: {e}", transient=e.errno in _TRANSIENT_ERRNOS)


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    fd = os.open(directory / _LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
