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
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shipper import objects, tracing
from shipper.binlog import BinlogInfo, scan_file
from shipper.catalog.dynamodb_host import CatalogSync
from shipper.config import Config
from shipper.errors import (
    BinlogFormatError,
    IntegrityError,
    ShipperError,
    StateError,
)
from shipper.keys import KeyProvider, make_provider
from shipper.manifest import Manifest, binlog_sequence
from shipper.pipeline import failover, routing
from shipper.pipeline.backfill import backfill
from shipper.pipeline.discover import ServerState, read_state
from shipper.pipeline.report import Reporter
from shipper.pipeline.stage import file_identity, stage, staged_files, staged_name, unstage
from shipper.pipeline.targets import TARGET_ERRORS, TargetDown, TargetWriter
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
        self._sweep_staging()
        closed = state.closed
        listed = {n for n, _ in state.binlogs}
        self._record_gaps(closed, result)
        known = {r.name for r in self.manifest.all()}
        for name, size in closed:
            self.manifest.discover(name, size, self._identity_if_new(binlog_dir / name, name, size))
            if name not in known:
                self.metrics.discovered.inc()
        self._warn_purge(state, binlog_dir, result)
        # Rows still pending whose file the server no longer lists are shipped from the
        # staged hardlink if there is one; otherwise they are gaps.
        for row in self.manifest.pending():
            if row.name in listed and row.name == state.active:
                continue
            with tracing.binlog_span(row.name, self.cfg.tenant) as trace_id:
                try:
                    outcome = self.ship_one(row.name, binlog_dir, state, trace_id=trace_id)
                except ShipperError as e:
                    tracing.record_error(e)
                    self.manifest.record_attempt(row.name, str(e))
                    log.error("binlog %s: %s", row.name, e)
                    self.report.binlog_failed(row.name, e, row.attempts, trace_id)
                    result.failed[row.name] = str(e)
                    continue
            getattr(result, outcome).append(row.name)
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

    def _identity_if_new(self, path: Path, name: str, size: int) -> str | None:
        """The file's identity, when it may differ from what the manifest knows.

        A known binlog that was closed before we discovered it has the recorded
        size and an mtime older than its discovery; only a new file under an old
        name (RESET MASTER, a rebuilt server) breaks that, so only then, or for a
        name we have never seen, is the file opened.
        """
        row = self.manifest.get(name)
        try:
            if row is not None and row.identity:
                st = path.stat()
                if st.st_size == (row.size or size) and st.st_mtime <= row.discovered_at:
                    return None
            return file_identity(path)
        except FileNotFoundError:
            return None

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
            self._mark_gap(name, "purged by the server before it was discovered", result)

    def _mark_gap(self, name: str, why: str, result: PassResult) -> None:
        self.manifest.advance(name, "gap", error=why)
        self.manifest.journal("gap", name, {"reason": why})
        self.metrics.gaps.inc()
        log.error("GAP: binlog %s was %s; point-in-time restore cannot cross it", name, why)
        self.report.gap(name, why)
        result.gaps.append(name)

    def _warn_purge(self, state: ServerState, binlog_dir: Path, result: PassResult) -> None:
        if state.expire_seconds <= 0:
            self.metrics.purge_risk.set(0)
            self.metrics.set_expiry_deadline(None)
            return
        now = time.time()
        at_risk = 0
        deadline: float | None = None
        for row in self.manifest.pending():
            path = binlog_dir / row.name
            with contextlib.suppress(FileNotFoundError):
                # the server's expiry counts from the file's last write, as this does
                purge_at = path.stat().st_mtime + state.expire_seconds
                deadline = purge_at if deadline is None else min(deadline, purge_at)
                left = purge_at - now
                if left < self.cfg.purge_warning_seconds:
                    at_risk += 1
                    msg = (
                        f"binlog {row.name} is not archived yet and the server may purge it in "
                        f"{max(0, int(left))}s (binlog_expire_logs_seconds="
                        f"{state.expire_seconds})"
                    )
                    log.warning(msg)
                    result.warnings.append(msg)
        self.metrics.purge_risk.set(at_risk)
        self.metrics.set_expiry_deadline(deadline)

    # -- one binlog --
    def ship_one(
        self, name: str, binlog_dir: Path, state: ServerState, *, trace_id: str | None = None
    ) -> str:
        """Ship ``name``; returns "shipped", "already", "flagged", "gaps" or "blocked"
        (a write target is down: the row stays pending). ``trace_id`` (of the binlog's
        span) goes into the object metadata."""
        started = time.monotonic()
        row = self.manifest.get(name)
        assert row is not None
        staged, sealed = staged_files(self.staging, name)
        if row.state == "discovered":
            try:
                stage(binlog_dir / name, staged)
            except FileNotFoundError:
                self._mark_gap(name, "purged by the server before it was shipped", PassResult())
                return "gaps"
            row = self.manifest.advance(name, "staged")
        if not staged.exists():
            raise StateError(
                f"binlog {name} is {row.state} but its staged copy {staged} is "
                "missing; was the state dir cleaned by hand?"
            )
        info = scan_file(staged)
        if row.sha256 and row.sha256 != info.sha256:
            raise IntegrityError(
                f"staged binlog {staged} changed since it was staged "
                f"(sha256 {row.sha256} -> {info.sha256})"
            )
        if info.first_timestamp is None:
            raise BinlogFormatError(f"binlog {name} has no events: nothing to date it by")
        self._record_scan(name, info, state.server_uuid)
        server_id = info.server_id if info.server_id is not None else state.server_id
        flagged = info.damage is not None  # CRC mismatch, or a flag that denies the CRCs
        if flagged:
            key = objects.quarantine_key(self.cfg.tenant_prefix, server_id, name, info.sha256)
        else:
            key = objects.binlog_key(self.cfg.tenant_prefix, server_id, info.first_timestamp, name)
        b = self.out.sealed_binlog(
            name, staged, sealed, info, server_id, state.server_uuid, key, trace_id=trace_id
        )
        index = None if flagged else info.index.to_bytes()
        placed = self.manifest.placements(name)
        final_keys: dict[str, str] = {}
        outcome = "already"
        held_back = []
        for url, backend in self.out.targets:
            done = placed.get(url)
            if done is not None and done.state == "verified" and done.object_key:
                final_keys[url] = done.object_key  # placed by an earlier, interrupted attempt
                continue
            if url in self.out.down:
                self.manifest.place(name, url, key=None, error=self.out.down[url].error)
                held_back.append(url)
                continue
            try:
                k, wrote = self.out.place(url, backend, key, b, index)
            except TARGET_ERRORS as e:
                self.out.failed(url, e, name)
                held_back.append(url)
                continue
            outcome = "shipped" if wrote else outcome
            final_keys[url] = k
        if held_back and not failover.cover(
            self.out, self.resilient, name, held_back, final_keys, key, b, index
        ):
            # the row moves on only once every write target has it (or, with failover,
            # once a target whose circuit is closed has it); the placements made say
            # how far it got
            for url in held_back:
                self.out.down[url].blocked += 1
            self.manifest.record_attempt(
                name, "not yet written to " + ", ".join(held_back) + " (target down)"
            )
            return "blocked"
        if held_back:
            outcome = "shipped"  # to the fallback target (failover.cover)
        first = next(iter(final_keys.values()))
        self.manifest.reach(name, "uploaded", object_key=first, targets=list(final_keys))
        self.manifest.reach(name, "verified")
        if flagged:
            outcome = "flagged"
            self._flag(name, info, next(iter(final_keys.values())))
        else:
            if info.status != "complete":
                self.manifest.journal(info.status, name, {"truncated_at": info.truncated_at})
                log.warning(
                    "binlog %s is %s (no closing ROTATE/STOP event); archived as is and flagged",
                    name,
                    info.status,
                )
            rotated_at = _rotated_at(binlog_dir / name, staged)
            self.manifest.advance(name, "committed", error=None)
            self.metrics.shipped.inc()
            self.metrics.bytes.inc(info.size)
            self.metrics.last_commit.set(time.time())
            self.report.committed(
                name,
                info,
                outcome,
                final_keys.values(),
                row.attempts,
                b.metadata["trace_id"],
                rotated_at,
            )
        unstage(self.staging, name)
        self.metrics.duration.observe(time.monotonic() - started)
        log.info("binlog %s %s -> %s (trace %s)", name, outcome, final_keys, b.metadata["trace_id"])
        return outcome

    def _flag(self, name: str, info: BinlogInfo, key: str) -> None:
        self.manifest.advance(name, "flagged", error=f"{info.damage}; quarantined at {key}")
        detail = {"crc_error_at": info.crc_error_at, "key": key, "status": info.status}
        self.manifest.journal("flagged", name, detail)
        self.metrics.flagged.inc()
        self.report.flagged(name, info, key)
        log.error(
            "binlog %s: %s; archived to quarantine key %s and NOT counted as restorable",
            name,
            info.damage,
            key,
        )

    def _record_scan(self, name: str, info: BinlogInfo, server_uuid: str) -> None:
        self.manifest.update(
            name,
            server_uuid=server_uuid,
            size=info.size,
            sha256=info.sha256,
            server_id=info.server_id,
            server_version=info.server_version,
            first_ts=info.first_timestamp,
            last_ts=info.last_timestamp,
            gtid_previous=info.gtid_previous,
            gtid_end=info.gtid_executed_end,
            file_status=info.status,
        )


def _rotated_at(source: Path, staged: Path) -> float | None:
    """When the server last wrote the binlog (its rotation): the mtime of its file, or of
    the staged hardlink to it; a staged copy is younger, so the older of the two wins."""
    times = []
    for p in (source, staged):
        with contextlib.suppress(OSError):
            times.append(p.lstat().st_mtime)
    return min(times, default=None)


def _private_dir(path: Path) -> Path:
    """Create ``path`` mode 0700, or tighten the product's own directory to it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path
