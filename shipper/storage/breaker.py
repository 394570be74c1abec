"""A circuit breaker per target, as the outermost wrapper of its backend.

States (as Nygard's "Release It!" draws them)::

    closed --N consecutive transient failures--> open --cool-down--> half-open
       ^                                           ^                    |
       +------------- the probe succeeds ----------|---- it fails ------+

* **closed**: calls go through. A call that fails *transiently* (after the
  retry wrapper inside has given up) counts; any answer from the service
  (success, "not found", "key taken", even "access denied") resets the count:
  the service is there, so opening the circuit would not help.
* **open**: calls fail at once with :class:`CircuitOpen`, without touching the
  network, so a region that is down costs nothing per binlog and the shipper
  can fail over to the other cloud (``pipeline/failover.py``).
* **half-open**: after ``cooldown`` seconds one call is let through as a
  probe; calls made while it runs wait for its verdict (then go through, or
  fail fast if it failed), so parallel workers do not give up on a target
  that is answering again.

"Consecutive" counts passes, once the shipper marks them (:meth:`begin_pass`):
at most one failure counts per pass, however many binlogs (parallel workers)
saw the target fail during it, so ``breaker_threshold`` means the same number
of passes with one worker or eight, and which binlog trips the circuit does not
depend on thread timing. A failed probe always counts. Without passes marked,
every failure counts.

The state is kept in a :class:`BreakerStore` (the manifest, schema v3), so a
restart while the circuit is open keeps it open instead of hammering a target
that was down a second ago. The clock is wall time for the same reason.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, TypeVar

from shipper.errors import StorageError
from shipper.resilience import is_transient
from shipper.storage.base import ObjectInfo, StorageBackend

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

#: how long a call waits for a running probe's verdict before failing fast: longer
#: than one storage call with its retries takes, so it normally sees the verdict
PROBE_WAIT = 300.0


class CircuitOpen(StorageError):
    """The target's circuit is open: it is not called until its cool-down ends."""

    error_code = "circuit_open"

    def __init__(self, *args: object) -> None:
        super().__init__(*args, transient=True)


@dataclass(frozen=True)
class BreakerState:
    state: str = CLOSED
    #: consecutive transient failures (while closed)
    failures: int = 0
    #: wall-clock time the circuit last opened
    opened_at: float | None = None


class BreakerStore(Protocol):
    """Where breaker states outlive the process (the manifest implements it)."""

    def load_breaker(self, target: str) -> BreakerState | None: ...

    def save_breaker(self, target: str, state: BreakerState) -> None: ...


#: called with (target, old state, new state, last error or "") on every state change
ChangeHook = Callable[[str, str, str, str], None]


class CircuitBreaker:
    def __init__(
        self,
        target: str,
        *,
        threshold: int,
        cooldown: float,
        store: BreakerStore | None = None,
        on_change: ChangeHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self.store = store
        self.on_change = on_change
        self.clock = clock
        self._lock = threading.Lock()
        #: notified when a probe ends (the calls waiting for its verdict wake up)
        self._probe_done = threading.Condition(self._lock)
        self._probing = False
        #: the number of the call that is the running probe
        self._probe_call = 0
        #: calls started so far (numbers them, to tell the probe's verdict from others')
        self._calls = 0
        #: passes begun (0: not marked), and the pass whose failure was last counted
        self._pass = 0
        self._counted_in: int | None = None
        self._s = (store.load_breaker(target) if store is not None else None) or BreakerState()

    @property
    def state(self) -> str:
        """closed, open or half-open (an open circuit past its cool-down is half-open)."""
        s = self._s
        if s.state == OPEN and self._cooled(s):
            return HALF_OPEN
        return s.state

    @property
    def is_open(self) -> bool:
        """True while calls would be refused (open, not yet cooled down)."""
        return self._s.state == OPEN and not self._cooled(self._s)

    def _cooled(self, s: BreakerState) -> bool:
        return s.opened_at is None or self.clock() - s.opened_at >= self.cooldown

    def before_call(self, *, wait: float = PROBE_WAIT) -> int:
        """Let the call through (returns its number, for :meth:`failed`), or raise
        CircuitOpen. While a probe runs, wait up to ``wait`` seconds for its verdict."""
        with self._lock:
            if self._probing and self._s.state != CLOSED:
                self._probe_done.wait_for(lambda: not self._probing, timeout=wait)
            s = self._s
            self._calls += 1
            if s.state == CLOSED:
                return self._calls
            if s.state == OPEN and not self._cooled(s):
                left = self.cooldown - (self.clock() - (s.opened_at or 0))
                raise CircuitOpen(
                    f"target {self.target}: circuit open after {s.failures} consecutive "
                    f"transient failures; next probe in {max(0, left):.0f}s "
                    "(resilience.breaker_cooldown)"
                )
            if self._probing:
                raise CircuitOpen(f"target {self.target}: circuit half-open, a probe is running")
            self._probing = True
            self._probe_call = self._calls
            if s.state == OPEN:
                self._set(BreakerState(HALF_OPEN, s.failures, s.opened_at), "")
            return self._calls

    def succeeded(self, call: int | None = None) -> None:
        with self._lock:
            self._end_probe(call)
            if self._s != BreakerState():
                self._set(BreakerState(), "")

    def abandoned(self, call: int | None = None) -> None:
        """The call was interrupted (KeyboardInterrupt, SystemExit): let another probe."""
        with self._lock:
            self._end_probe(call)

    def begin_pass(self) -> None:
        """A new shipping pass begins: its first transient failure will count."""
        with self._lock:
            self._pass += 1

    def failed(self, error: str, call: int | None = None) -> None:
        """A call failed transiently. ``call``: its number from :meth:`before_call`
        (None: whichever call is the probe). Counts once per pass, a failed probe always."""
        with self._lock:
            probe = self._end_probe(call)
            if self._pass and self._counted_in == self._pass and not probe:
                return  # this pass has counted its failure already
            self._counted_in = self._pass
            s = self._s
            failures = s.failures + 1
            if s.state == HALF_OPEN or failures >= self.threshold:
                self._set(BreakerState(OPEN, failures, self.clock()), error)
            else:
                self._set(BreakerState(CLOSED, failures, None), error)

    def _end_probe(self, call: int | None) -> bool:
        """End the running probe if ``call`` is it (None: whichever runs); whether it was."""
        if not self._probing or (call is not None and call != self._probe_call):
            return False
        self._probing = False
        self._probe_done.notify_all()
        return True

    def _set(self, new: BreakerState, error: str) -> None:
        old, self._s = self._s, new
        if self.store is not None:
            self.store.save_breaker(self.target, new)
        if old.state != new.state and self.on_change is not None:
            self.on_change(self.target, old.state, new.state, error)


class BreakingBackend:
    """``inner`` behind ``breaker``; same protocol and capabilities."""

    def __init__(self, inner: StorageBackend, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.url = inner.url
        self.capabilities = inner.capabilities
        self.breaker = breaker

    def _call(self, fn: Callable[[], T]) -> T:
        call = self.breaker.before_call()
        try:
            out = fn()
        except Exception as e:
            if is_transient(e):
                self.breaker.failed(str(e), call)
            else:
                self.breaker.succeeded(call)  # the service answered
            raise
        except BaseException:
            self.breaker.abandoned(call)  # interrupted: no verdict on the target
            raise
        self.breaker.succeeded(call)
        return out

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
        return self._call(
            lambda: self.inner.put(
                key, source, size=size, metadata=metadata, if_none_match=if_none_match
            )
        )

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return self._call(functools.partial(self.inner.open, key, offset, length))

    def stat(self, key: str) -> ObjectInfo:
        return self._call(functools.partial(self.inner.stat, key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(self._call(lambda: list(self.inner.list(prefix))))

    def delete(self, key: str) -> None:
        self._call(functools.partial(self.inner.delete, key))
