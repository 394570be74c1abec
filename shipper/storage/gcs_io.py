"""The bytes of a ``gs://`` object on their way up and down.

Up: :class:`ExactSource` is what ``GCSBackend.put`` hands google-cloud-storage
to read from. It passes on exactly the declared number of bytes, computing
their CRC32C on the way, and fails (rather than letting GCS finalize a
truncated object) when the source ends early or has bytes left over; whatever
it raised is kept, so ``put`` can tell the source's failures from the SDK's.

Down: :class:`MappedReader` wraps the library's ``BlobReader``, which fetches
chunk by chunk as it is read, so that a failure while reading comes out as the
project's error, like every other call's (mapped by the backend's ``_error``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, BinaryIO

from shipper.errors import StorageError


class MappedReader(io.RawIOBase):
    """A BlobReader whose failures (it fetches chunk by chunk as it is read) come
    out as the project's errors, like every other call's."""

    def __init__(self, inner: Any, error: Callable[[Exception], Exception]) -> None:
        self.inner, self.error = inner, error

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        try:
            return self.inner.read(n)  # type: ignore[no-any-return]
        except Exception as e:
            raise self.error(e) from e

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


class ExactSource:
    """Reads ``source`` for the upload: exactly ``size`` bytes, CRC32C on the way.

    A source that ends early or has bytes left over raises StorageError rather
    than letting the upload finalize a truncated object. Whatever it raises is
    kept in ``error`` so ``put`` can tell the source's failures from the SDK's.
    """

    def __init__(self, source: BinaryIO, size: int, url: str, key: str) -> None:
        import google_crc32c

        self.source, self.size, self.where = source, size, f"{url}/{key}"
        self.pos = 0
        self.crc = google_crc32c.Checksum()
        self.error: BaseException | None = None

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        try:
            if self.pos >= self.size:
                return b""
            want = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
            chunks = []
            while want > 0:
                b = self.source.read(want)
                if not b:
                    raise StorageError(
                        f"{self.where}: declared size {self.size} but the source "
                        f"ended after {self.pos} bytes"
                    )
                chunks.append(b)
                self.pos += len(b)
                want -= len(b)
            # At the declared end, make sure the source ends too -- before the
            # caller can send (and GCS finalize) a silently truncated object.
            if self.pos == self.size and self.source.read(1):
                raise StorageError(
                    f"{self.where}: source is longer than its declared size {self.size}"
                )
            data = b"".join(chunks)
        except BaseException as e:
            self.error = e
            raise
        self.crc.update(data)
        return data
