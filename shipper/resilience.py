"""Retries with jitter for transient storage failures.

Only errors that may pass are retried, and the backend that met the error
decides which those are (``StorageError.transient``): throttling, 5xx,
timeouts, connection resets. A PermissionDenied, an invalid argument, a
precondition failure or a missing object will not get better by asking again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from shipper.errors import StorageError

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` may pass if the call is made again (as its backend classified it)."""
    return isinstance(exc, StorageError) and exc.transient


def retrying(fn: Callable[[], T], attempts: int = 4, max_wait: float = 8.0) -> T:
    """Call ``fn`` until it succeeds, retrying transient StorageErrors with jittered backoff."""
    wrapped = retry(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.2, max=max_wait),
        reraise=True,
    )(fn)
    return wrapped()
