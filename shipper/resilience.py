"""Resilience policy: which errors are retried, how, and when a target's circuit opens.

Only errors that may pass are retried, and the backend that met the error
decides which those are (``StorageError.transient``): throttling, 5xx,
timeouts, connection resets. A PermissionDenied, an invalid argument, a
precondition failure or a missing object will not get better by asking again.

The mechanisms live in the storage layer, as wrappers the factory puts around
every backend (``shipper/storage/retry.py``, ``shipper/storage/breaker.py``);
this module holds the policy they share and the ``[resilience]`` settings of a
tenant's config.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from shipper.errors import StorageError

T = TypeVar("T")


@dataclass(frozen=True)
class ResilienceConfig:
    """A tenant's ``[resilience]`` table (see docs/cloud.md)."""

    #: calls made per operation, the first included (1: no retry)
    retry_attempts: int = 5
    #: first backoff ceiling in seconds; doubles per attempt ("full jitter": the
    #: wait is uniform in [0, ceiling], so a fleet of hosts does not retry in step)
    retry_base: float = 0.25
    #: the ceiling never grows past this
    retry_max_wait: float = 20.0
    #: consecutive failed operations (each after its retries) that open a target's circuit
    breaker_threshold: int = 3
    #: seconds an open circuit waits before one probe call may try the target again
    breaker_cooldown: float = 60.0
    #: while a write target's circuit is open, write to the other cloud's target
    #: (routing role "replica") and commit there; the backlog drains back later
    failover: bool = False


DEFAULT = ResilienceConfig()


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` may pass if the call is made again (as its backend classified it)."""
    return isinstance(exc, StorageError) and exc.transient


_slot = threading.local()


@contextmanager
def backoff_gives_up(slot: threading.Semaphore) -> Iterator[None]:
    """While this thread holds ``slot`` (a worker slot of ``pipeline/parallel.py``),
    a retry's backoff sleep hands it back and takes it again after: a job waiting out
    a throttled or failed call is not working, so another job may use the slot."""
    _slot.held = slot
    try:
        yield
    finally:
        _slot.held = None


def backoff_sleep(seconds: float) -> None:
    """Sleep out a retry's backoff, handing this thread's worker slot (if it holds one,
    see :func:`backoff_gives_up`) to another job meanwhile."""
    slot: threading.Semaphore | None = getattr(_slot, "held", None)
    if slot is None or seconds <= 0:
        time.sleep(seconds)
        return
    slot.release()
    try:
        time.sleep(seconds)
    finally:
        slot.acquire()


def retrying(
    fn: Callable[[], T],
    attempts: int = DEFAULT.retry_attempts,
    max_wait: float = DEFAULT.retry_max_wait,
    base: float = DEFAULT.retry_base,
) -> T:
    """Call ``fn`` until it succeeds, retrying transient StorageErrors with full jitter:
    attempt n waits uniformly in [0, min(max_wait, base * 2**n)] seconds (giving up
    the thread's worker slot meanwhile, see :func:`backoff_gives_up`)."""
    return Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_random_exponential(multiplier=base, max=max_wait),
        sleep=backoff_sleep,
        reraise=True,
    )(fn)


def error_code(exc: BaseException) -> str:
    """A short, stable label for what failed: the service's error code (``SlowDown``,
    ``AccessDenied``), else its HTTP status, else the SDK exception's class name
    (``ReadTimeoutError``, ``ConnectionError``). For metrics and the journal."""
    code = getattr(exc, "error_code", None)
    if isinstance(code, str) and code:
        return code
    for e in (exc.__cause__, exc.__context__, exc):
        if e is None:
            continue
        response = getattr(e, "response", None)
        if isinstance(response, dict):
            err = response.get("Error", {}).get("Code")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if err or status:
                return str(err or status)
        status = getattr(e, "code", None)
        if isinstance(status, int):
            return str(status)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return str(status)
    cause = exc.__cause__ or exc.__context__
    return type(cause or exc).__name__
