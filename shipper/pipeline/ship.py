"""discover -> validate -> stage -> compress+encrypt -> upload -> verify -> commit.

Each binlog moves through the manifest's states one durable step at a time.
Every step after ``staged`` is idempotent: the object key is deterministic and
uploads are conditional, so after a crash the shipper simply redoes the steps
after the last durable state. An upload that finds its key taken compares the
stored object's plaintext SHA-256 with ours: equal means "already archived";
different means another file claimed the name (RESET MASTER, a rebuilt
server), and ours goes to a lineage-suffixed key instead. Nothing is ever
overwritten.

Each write target (``pipeline/routing.py``) gets its own placement in the
manifest (key, version, verified at): a row is committed once every write
target holds a verified copy. A target that fails as a whole (bucket missing,
access denied, endpoint down) is skipped for the rest of the pass and reported
once, with the number of binlogs it held back; they stay staged and pending.
Targets that lack committed binlogs (added to the config later) are filled in
by ``pipeline/backfill.py``.

A pass ships ``workers`` binlogs at once (``pipeline/parallel.py``):
``binlog_job.prepare`` (stage through placements, failover) runs in the pool,
``binlog_job.commit`` in the calling thread, in sequence order; once a binlog
of the pass is held back by a target that is down, the later ones wait
(``binlog_job.hold``). This module is the pass; ``binlog_job`` is one binlog.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shipper import tracing
from shipper.catalog.dynamodb_host import CatalogSync
from shipper.config import Config
from shipper.errors import (
    ShipperError,
    StateError,
)
from shipper.keys import KeyProvider, make_provider
from shipper.manifest import Manifest, binlog_sequence
from shipper.pipeline import binlog_job, failover, routing
from shipper.pipeline.backfill import backfill
from shipper.pipeline.discover import ServerState, read_state
from shipper.pipeline.parallel import Done, Job, MemoryBudget, run_ordered
from shipper.pipeline.report import Reporter
from shipper.pipeline.stage import staged_name
from shipper.pipeline.survey import identity_if_new, warn_purge
from shipper.pipeline.targets import TargetDown, TargetWriter
from shipper.pipeline.upload import ObjectWriter
from shipper.telemetry import Metrics

log = logging.getLogger(__name__)


@dataclass
class PassResult:
    """What one pass over the closed binlogs did."""

    shipped: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: binlogs held back because a write target is down (they stay pending)
    blocked: list[str] = field(default_factory=list)
    #: target URL -> what failed it this pass (reported once, not once per binlog)
    targets_down: dict[str, TargetDown] = field(default_factory=dict)
    #: target URL -> committed binlogs copied to it this pass (a target added later)
    backfilled: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.flagged or self.gaps or self.blocked or self.targets_down)


class Shipper:
    """Ships the closed binlogs of one server to the configured targets."""

    def __init__(
        self,
        cfg: Config,
        *,
        providers: Sequence[KeyProvider] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.cfg = cfg
        self.state_dir = cfg.state_dir
        self._check_state_dir()
        self.staging = _private_dir(self.state_dir / "staging")
        self.manifest = Manifest(self.state_dir / "manifest.sqlite")
        self.providers = (
            list(providers) if providers is not None else [make_provider(k) for k in cfg.keys]
        )
        self.metrics = metrics or Metrics(cfg.tenant)
        self.writer = ObjectWriter(
            providers=self.providers,
            level=cfg.compression_level,
            chunk_size=cfg.chunk_size,
            verify_mode=cfg.verify,
        )
        # every backend behind retries and its own persisted circuit breaker
        self.resilient = failover.Targets(cfg, self.manifest, self.metrics)
        self.out = TargetWriter(
            [(t.url, self.resilient.open(t)) for t in routing.write_targets(cfg)],
            self.writer,
            self.manifest,
            self.metrics,
            cfg.tenant,
            fallback=[(t.url, self.resilient.open(t)) for t in failover.fallback_targets(cfg)],
        )
        self.backends = [b for _, b in self.out.targets]
        self.budget = MemoryBudget(cfg.memory_budget)
        self.report = Reporter(
            cfg, self.metrics, self.manifest, [u for u, _ in self.out.targets], self.state_dir
        )
        self.catalog = CatalogSync.configured(
            cfg, self.manifest, self.backends, self.providers, self.metrics
        )

    def _check_state_dir(self) -> None:
        try:
            _private_dir(self.state_dir)
        except OSError as e:
            raise StateError(f"state dir {self.state_dir} cannot be created: {e.strerror}") from e
        probe = self.state_dir / f".write-probe-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise StateError(f"state dir {self.state_dir} is not writable: {e.strerror}") from e

    def close(self) -> None:
        self.report.close()
        self.manifest.close()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One shipper per state dir: a second one would race on the manifest."""
        path = self.state_dir / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "r+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    raise StateError(f"another binlog-shipper holds {path}") from None
                raise
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- one pass --
    def discover(self) -> tuple[ServerState, Path]:
        state = read_state(self.cfg.mysql)
        binlog_dir = Path(self.cfg.mysql.binlog_dir or state.binlog_dir)
        if not binlog_dir.is_dir():
            raise StateError(
                f"binlog dir {binlog_dir} does not exist or is not a directory on "
                "this host (set mysql.binlog_dir)"
            )
        return state, binlog_dir

    def run_once(self) -> PassResult:
        with self.locked():
            state, binlog_dir = self.discover()
            return self.ship_pass(state, binlog_dir)

    def ship_pass(self, state: ServerState, binlog_dir: Path) -> PassResult:
        result = PassResult()
        self.out.down = result.targets_down
        self.resilient.begin_pass()
        self._sweep_staging()
        closed = state.closed
        listed = {n for n, _ in state.binlogs}
        self._record_gaps(closed, result)
        known = {r.name for r in self.manifest.all()}
        for name, size in closed:
            identity = identity_if_new(self.manifest, binlog_dir / name, name, size)
            self.manifest.discover(name, size, identity)
            if name not in known:
                self.metrics.discovered.inc()
        result.warnings += warn_purge(self.manifest, self.metrics, state, binlog_dir, self.cfg)
        # Rows still pending whose file the server no longer lists are shipped from the
        # staged hardlink if there is one; otherwise they are gaps.
        jobs = [
            Job(row.name, row.size or 0)
            for row in self.manifest.pending()
            if not (row.name in listed and row.name == state.active)
        ]
        traces: dict[str, str] = {}  # binlog -> its span's trace id (set by the worker)
        # binlog -> the context inside its span, so the commit's events name its trace
        spans: dict[str, contextvars.Context] = {}
        # worker threads start with an empty context: each job runs in a copy of this
        # thread's, so a binlog's span is a child of the caller's trace, if any
        caller = contextvars.copy_context()

        def traced(job: Job) -> binlog_job.Ready | str:
            with tracing.binlog_span(job.name, self.cfg.tenant) as trace_id:
                traces[job.name] = trace_id
                try:
                    ready = binlog_job.prepare(self, job.name, binlog_dir, state, trace_id=trace_id)
                    spans[job.name] = contextvars.copy_context()
                    return ready
                except ShipperError as e:
                    tracing.record_error(e)
                    raise

        def work(job: Job) -> binlog_job.Ready | str:
            return caller.copy().run(traced, job)

        # the first binlog of this pass held back by a target that is down: every later
        # one waits behind it (committing it would put N+1 in the manifest before N)
        behind: list[str] = []

        def commit(done: Done[binlog_job.Ready | str]) -> None:
            name = done.job.name
            try:
                if done.error is not None:
                    raise done.error
                assert done.value is not None
                if isinstance(done.value, str):
                    outcome = done.value
                elif behind:
                    outcome = binlog_job.hold(self, done.value, behind[0])
                else:
                    span = spans.pop(name, None)
                    outcome = (
                        span.run(binlog_job.commit, self, done.value)
                        if span
                        else binlog_job.commit(self, done.value)
                    )
                    if outcome == "blocked":
                        behind.append(name)
            except ShipperError as e:
                row = self.manifest.get(name)
                self.manifest.record_attempt(name, str(e))
                log.error("binlog %s: %s", name, e)
                attempts = row.attempts if row is not None else 0
                self.report.binlog_failed(name, e, attempts, traces.get(name, ""))
                result.failed[name] = str(e)
                return
            getattr(result, outcome).append(name)

        run_ordered(
            jobs,
            work,
            commit,
            workers=self.cfg.workers,
            budget=self.budget,
            chunk_size=self.cfg.chunk_size,
        )
        backfill(self, binlog_dir, result)
        for down in result.targets_down.values():
            log.error(
                "target %s failed this pass: %s; %d binlog(s) not written to it, kept "
                "pending and retried next pass",
                down.url,
                down.error,
                down.blocked,
            )
        self.report.pass_done(len(self.manifest.pending()))
        if self.catalog is not None:
            self.catalog.sync()  # after the manifest commits; never fails the pass
        return result

    def _sweep_staging(self) -> None:
        """Drop staged copies of binlogs that are already done (a crash after commit)."""
        for path in self.staging.iterdir():
            row = self.manifest.get(staged_name(path))
            if row is not None and row.state in ("committed", "flagged", "gap"):
                path.unlink(missing_ok=True)

    def _record_gaps(self, closed: list[tuple[str, int]], result: PassResult) -> None:
        """Binlogs the server purged before we ever saw them: sequence holes."""
        rows = self.manifest.all()
        if not rows or not closed:
            return
        known = {r.name for r in rows}
        last = max(rows, key=lambda r: r.sequence)
        first_name, _ = closed[0]
        stem, _, suffix = first_name.rpartition(".")
        for seq in range(last.sequence + 1, binlog_sequence(first_name)):
            name = f"{stem}.{seq:0{len(suffix)}d}"
            if name in known:
                continue
            self.manifest.discover(name)
            self.mark_gap(name, "purged by the server before it was discovered")
            result.gaps.append(name)

    def mark_gap(self, name: str, why: str) -> None:
        """Record ``name`` as a gap: purged by the server before it was archived."""
        self.manifest.advance(name, "gap", error=why)
        self.manifest.journal("gap", name, {"reason": why})
        self.metrics.gaps.inc()
        log.error("GAP: binlog %s was %s; point-in-time restore cannot cross it", name, why)
        self.report.gap(name, why)

    # -- one binlog --


def _private_dir(path: Path) -> Path:
    """Create ``path`` mode 0700, or tighten the product's own directory to it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path
