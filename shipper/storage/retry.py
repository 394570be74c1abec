"""The retry wrapper: every call of a backend retried on the errors it calls transient.

:func:`shipper.storage.factory.open_backend` puts it around every backend, so
``put``, ``stat``, ``open``, ``list`` and ``delete`` are all retried (with
exponential backoff and full jitter, see :func:`shipper.resilience.retrying`),
whoever the caller is. What the backend classified as permanent (access
denied, a missing bucket, a disabled key, metadata too large) and the
protocol's own answers (``ObjectNotFound``, ``PreconditionFailed``) surface at
once: asking again would only delay the operator.

Why each call is safe to repeat:

* ``put`` is conditional (``if_none_match``): a retry after a put that did land
  (the answer was lost, the client timed out) gets ``PreconditionFailed``, and
  the caller then verifies what is there (``pipeline/upload.py``) instead of
  writing a second copy. The source is rewound to where it stood before each
  attempt; a source that cannot seek is tried once.
* ``stat``, ``open`` and ``delete`` name one immutable object. A stream from
  ``open`` that fails transiently while it is read is reopened at the byte it
  had reached (a ranged read), so a reset in the middle of a large download
  does not start it over, and the caller never sees it.
* ``list`` is read to its end inside the retry, so a failure on page 3 starts
  the listing over instead of handing the caller half of it.

Every failed attempt is reported to ``on_error`` (target URL, operation,
:func:`shipper.resilience.error_code`, transient or not), which the shipper
counts by ``error_code``.
"""

from __future__ import annotations

import functools
import io
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, TypeVar

from shipper.errors import ObjectNotFound, PreconditionFailed, StorageError
from shipper.resilience import (
    DEFAULT,
    ResilienceConfig,
    backoff_sleep,
    error_code,
    is_transient,
    retrying,
)
from shipper.storage.base import ObjectInfo, StorageBackend

T = TypeVar("T")

#: called with (target URL, operation, error code, transient) for every failed attempt
ErrorHook = Callable[[str, str, str, bool], None]

#: the protocol's ordinary answers ("no such object", "key taken"), not failures
_ANSWERS = (ObjectNotFound, PreconditionFailed)


class RetryingBackend:
    """``inner`` with each call retried per ``policy``; same protocol and capabilities."""

    def __init__(
        self,
        inner: StorageBackend,
        policy: ResilienceConfig = DEFAULT,
        on_error: ErrorHook | None = None,
    ) -> None:
        self.inner = inner
        self.url = inner.url
        self.capabilities = inner.capabilities
        self.policy = policy
        self.on_error = on_error
        #: attempts the service answered (a result, or an error that is not transient),
        #: from any thread: one that moves while a call is being retried says the target
        #: is up and the failures are that call's own (pipeline/targets.py)
        self.answered = 0
        self._lock = threading.Lock()

    def _call(self, op: str, fn: Callable[[], T], attempts: int | None = None) -> T:
        def attempt() -> T:
            try:
                out = fn()
            except Exception as e:
                transient = is_transient(e)
                if not transient:
                    self._answer()
                if self.on_error is not None and not isinstance(e, _ANSWERS):
                    self.on_error(self.url, op, error_code(e), transient)
                raise
            self._answer()
            return out

        p = self.policy
        n = p.retry_attempts if attempts is None else attempts
        return retrying(attempt, attempts=n, max_wait=p.retry_max_wait, base=p.retry_base)

    def _answer(self) -> None:
        with self._lock:
            self.answered += 1

    def __getattr__(self, name: str) -> Any:
        # a backend's own attributes (bucket, client, prefix) for its diagnostics
        # (storage/preflight.py); the protocol's calls are the ones above and below
        if name == "inner":
            raise AttributeError(name)  # not built yet: no recursion
        return getattr(self.inner, name)

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        size: int,
        metadata: Mapping[str, str],
        if_none_match: bool = True,
    ) -> ObjectInfo:
        # A source that cannot rewind (a stream with read() only, as the protocol allows)
        # gets one attempt: resending from the middle would corrupt the object.
        seekable = getattr(source, "seekable", None)
        try:
            start: int | None = source.tell() if seekable is not None and seekable() else None
        except (OSError, AttributeError):
            start = None

        def put() -> ObjectInfo:
            if start is not None:
                source.seek(start)  # a retry sends the same bytes from the start
            return self.inner.put(
                key, source, size=size, metadata=metadata, if_none_match=if_none_match
            )

        return self._call("put", put, attempts=None if start is not None else 1)

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        stream = self._call("open", functools.partial(self.inner.open, key, offset, length))
        return _Resuming(self, key, offset, length, stream)  # type: ignore[return-value]

    def stat(self, key: str) -> ObjectInfo:
        return self._call("stat", functools.partial(self.inner.stat, key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(self._call("list", lambda: list(self.inner.list(prefix))))

    def delete(self, key: str) -> None:
        self._call("delete", functools.partial(self.inner.delete, key))


class _Resuming(io.RawIOBase):
    """A stream from ``open`` that reopens itself where it stopped on a transient
    failure (up to the policy's attempts per failure, with the same backoff)."""

    def __init__(
        self,
        backend: RetryingBackend,
        key: str,
        offset: int,
        length: int | None,
        stream: BinaryIO,
    ) -> None:
        self.backend, self.key, self.offset, self.length = backend, key, offset, length
        self.stream = stream
        self.pos = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        p = self.backend.policy
        for attempt in range(max(1, p.retry_attempts)):
            try:
                data = self.stream.read(-1 if n is None else n)
            except StorageError as e:
                b = self.backend
                if b.on_error is not None:
                    b.on_error(b.url, "read", error_code(e), is_transient(e))
                if not is_transient(e) or attempt + 1 >= p.retry_attempts:
                    raise
                backoff_sleep(random.uniform(0, min(p.retry_max_wait, p.retry_base * 2**attempt)))
                self._reopen()
                continue
            self.pos += len(data)
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _reopen(self) -> None:
        self.stream.close()
        left = None if self.length is None else self.length - self.pos
        inner = self.backend.inner
        self.stream = self.backend._call(
            "open", functools.partial(inner.open, self.key, self.offset + self.pos, left)
        )

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.stream.close()
        super().close()
