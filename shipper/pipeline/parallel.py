"""Ordered parallel shipping: the I/O in a bounded pool, the commits in sequence order.

Staging, scanning, sealing, uploading and verifying a binlog is SHA-256, CRC32,
zstd, AES-GCM and network waits. hashlib, zstandard and cryptography release
the GIL on buffers this size, and sockets wait outside it, so threads overlap
(bench/bench_parallel.py measures it). Committing is not parallel: one
committer -- the calling thread -- applies the results in the order the jobs
were handed in, so the manifest never shows binlog N+1 committed while N is
not. A result that is ready early waits until every earlier job has been
committed or has ended otherwise this pass (flagged, a gap, failed, held back
by a target that is down).

Three bounds keep a pass in check whatever the file sizes:

* ``workers`` jobs work at once; a job asleep in a retry's backoff (a throttled
  or failed call) hands its slot to another job meanwhile and takes one back
  to go on, so backoffs do not leave the cores idle (bench/RESULTS.md, "20%
  faults");
* the window -- the jobs between "handed in" and "committed" -- holds up to
  ``WINDOW_PER_WORKER * workers`` small binlogs but only ``2 * workers`` once
  the binlogs in it add up to ``WINDOW_BYTES``: a binlog whose calls are being
  retried holds back the commits of every later one, and a deep window lets the
  workers go on with those meanwhile (under 20% faults the throughput of a long
  run went from 0.66 to 0.83-0.89 of the fault-free one, bench/RESULTS.md), while
  large binlogs cannot pile up in staging waiting for one slow one;
* a memory budget: a job reserves :func:`footprint` bytes before it starts and
  gives them back when its I/O is done; it starts only when the reservations
  in flight plus its own fit, or when nothing else is in flight (so a single
  job always runs, however large). Each job's buffers are bounded already
  (the envelope streams in chunks, uploads in parts); the budget bounds how
  many of them are held at once.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from shipper.errors import ShipperError
from shipper.resilience import backoff_gives_up

log = logging.getLogger(__name__)

T = TypeVar("T")

MiB = 1 << 20

#: what one job's upload buffers hold at most: a single S3 PUT holds up to its
#: multipart threshold (16 MiB), a multipart upload (max_concurrency 8 + 1) parts of
#: 8 MiB at the defaults; GCS holds at most 8 MiB, file:// a chunk. Larger files stream.
UPLOAD_BUFFER_MAX = 72 * MiB
#: zstd's compression context at the levels we use, the scanner's read buffer
#: and the transaction index being built: a few MiB, rounded up
FIXED_OVERHEAD = 8 * MiB


#: jobs in the window per worker while the binlogs in it are small (see the module doc)
WINDOW_PER_WORKER = 8
#: past ``2 * workers`` jobs, the window takes another only while the binlogs in it
#: stay within this many bytes (each waits sealed in staging until its turn to commit)
WINDOW_BYTES = 1 << 30


#: glibc malloc arenas for the whole process (see limit_malloc_arenas)
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas before the worker threads start.

    glibc gives each thread its own arena (up to 8 per core) and keeps the
    freed multi-MiB part buffers of every arena for reuse: with 4 workers
    shipping 1 GiB binlogs to S3 the peak RSS measured 345 MiB, 267 MiB with
    this cap (bench/RESULTS.md). Like MALLOC_ARENA_MAX=2 (which also covers
    what is allocated before this runs); a no-op where libc is not glibc.
    """
    import ctypes

    try:
        # the interpreter's own symbols include its libc's (no ldconfig lookup)
        libc = ctypes.CDLL(None)
        libc.mallopt(-8, MALLOC_ARENAS)  # M_ARENA_MAX (glibc malloc.h)
    except (OSError, AttributeError):
        log.debug("mallopt(M_ARENA_MAX) unavailable: not glibc")


def footprint(size: int, chunk_size: int) -> int:
    """The most bytes shipping a binlog of ``size`` bytes holds in memory at once.

    The envelope seals and verifies one chunk at a time (plaintext, compressed
    and ciphertext copies of a chunk), and the upload buffers at most
    ``UPLOAD_BUFFER_MAX`` of the object: small files cost about their size,
    large ones a constant.
    """
    return min(size, UPLOAD_BUFFER_MAX) + 3 * chunk_size + FIXED_OVERHEAD


class MemoryBudget:
    """Bytes reserved by jobs in flight, at most ``limit`` (one job always fits)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        #: the most bytes reserved at once (reported by the benchmark)
        self.peak = 0
        self._cond = threading.Condition()

    def acquire(self, n: int) -> None:
        with self._cond:
            while self.used and self.used + n > self.limit:
                self._cond.wait()
            self.used += n
            self.peak = max(self.peak, self.used)

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


@dataclass(frozen=True)
class Job:
    """One binlog to ship: its name and size (for the memory budget)."""

    name: str
    size: int


@dataclass(frozen=True)
class Done(Generic[T]):
    """A job's result, or the ShipperError it ended with (handed to the committer)."""

    job: Job
    value: T | None = None
    error: ShipperError | None = None


def run_ordered(
    jobs: Iterable[Job],
    work: Callable[[Job], T],
    commit: Callable[[Done[T]], None],
    *,
    workers: int,
    budget: MemoryBudget,
    chunk_size: int,
) -> None:
    """Run ``work`` for every job in a pool of ``workers`` threads and call ``commit``
    with each result, in this thread and in the order of ``jobs``.

    A ShipperError from ``work`` is that job's result (the committer records it and
    the pass goes on); any other exception is a bug: nothing more is started, the
    jobs already running finish, and it is raised here.
    """
    window = WINDOW_PER_WORKER * workers
    # ``workers`` jobs work at once; a job asleep in a retry's backoff hands its slot
    # to another (resilience.backoff_gives_up), so the pool has a thread for every
    # job of the window: a throttled call does not leave a core idle
    slots = threading.Semaphore(workers)

    def room_for(job: Job) -> bool:
        if len(in_flight) < 2 * workers:
            return True
        if len(in_flight) >= window:
            return False
        return sum(j.size for j, _ in in_flight) + job.size <= WINDOW_BYTES

    def run(job: Job) -> T:
        cost = footprint(job.size, chunk_size)
        budget.acquire(cost)  # before the slot: a job never waits for memory holding one
        try:
            with slots, backoff_gives_up(slots):
                return work(job)
        finally:
            budget.release(cost)

    todo = iter(jobs)
    waiting: Job | None = None  # the next job, taken from ``todo``, not yet in the window
    in_flight: deque[tuple[Job, Future[T]]] = deque()
    with ThreadPoolExecutor(window, thread_name_prefix="ship") as pool:
        try:
            while True:
                while True:
                    if waiting is None:
                        waiting = next(todo, None)
                    if waiting is None or not room_for(waiting):
                        break
                    in_flight.append((waiting, pool.submit(run, waiting)))
                    waiting = None
                if not in_flight:
                    return
                job, fut = in_flight.popleft()
                # wait for the oldest job: later ones may finish first, they wait here
                try:
                    done: Done[T] = Done(job, value=fut.result())
                except ShipperError as e:
                    done = Done(job, error=e)
                commit(done)
        except BaseException:
            for _, f in in_flight:
                f.cancel()
            raise
