"""discover -> validate -> stage -> compress+encrypt -> upload -> verify -> commit.

Each binlog moves through the manifest's states one durable step at a time.
Every step after ``staged`` is idempotent: the object key is deterministic and
uploads are conditional, so after a crash the shipper simply redoes the steps
after the last durable state. An upload that finds its key taken compares the
stored object's plaintext SHA-256 with ours: equal means "already archived";
different means another file claimed the name (RESET MASTER, a rebuilt
server), and ours goes to a lineage-suffixed key instead. Nothing is ever
overwritten.
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

from shipper import objects
from shipper.binlog import BinlogInfo, scan_file
from shipper.config import Config
from shipper.errors import BinlogFormatError, IntegrityError, ShipperError, StateError
from shipper.keys import KeyProvider, make_provider
from shipper.manifest import Manifest, binlog_sequence
from shipper.pipeline.discover import ServerState, read_state
from shipper.pipeline.stage import file_identity, stage, staged_files, staged_name, unstage
from shipper.pipeline.upload import ConflictHook, ObjectWriter, SealedBinlog
from shipper.storage import StorageBackend, open_backend
from shipper.telemetry import Metrics, new_trace_id

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

    @property
    def ok(self) -> bool:
        return not self.failed and not self.flagged and not self.gaps


class Shipper:
    """Ships the closed binlogs of one server to the configured targets."""

    def __init__(
        self,
        cfg: Config,
        *,
        backends: Sequence[StorageBackend] | None = None,
        providers: Sequence[KeyProvider] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.cfg = cfg
        self.state_dir = cfg.state_dir
        self._check_state_dir()
        self.staging = self.state_dir / "staging"
        self.staging.mkdir(mode=0o700, exist_ok=True)
        self.manifest = Manifest(self.state_dir / "manifest.sqlite")
        self.backends = (
            list(backends)
            if backends is not None
            else [open_backend(t.url, t.options) for t in cfg.write_targets()]
        )
        self.providers = (
            list(providers) if providers is not None else [make_provider(k) for k in cfg.keys]
        )
        self.metrics = metrics or Metrics()
        self.writer = ObjectWriter(
            providers=self.providers,
            level=cfg.compression_level,
            chunk_size=cfg.chunk_size,
            verify_mode=cfg.verify,
        )

    def _check_state_dir(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StateError(f"state dir {self.state_dir} cannot be created: {e.strerror}") from e
        probe = self.state_dir / f".write-probe-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise StateError(f"state dir {self.state_dir} is not writable: {e.strerror}") from e

    def close(self) -> None:
        self.manifest.close()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One shipper per state dir: a second one would race on the manifest."""
        path = self.state_dir / "lock"
        with path.open("a") as f:
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
        self._sweep_staging()
        closed = state.closed
        listed = {n for n, _ in state.binlogs}
        self._record_gaps(closed, result)
        for name, size in closed:
            self.manifest.discover(name, size, self._identity_if_new(binlog_dir / name, name, size))
        self._warn_purge(state, binlog_dir, result)
        # Rows still pending whose file the server no longer lists are shipped from the
        # staged hardlink if there is one; otherwise they are gaps.
        for row in self.manifest.pending():
            if row.name in listed and row.name == state.active:
                continue
            try:
                outcome = self.ship_one(row.name, binlog_dir, state)
            except ShipperError as e:
                self.metrics.failures.labels(stage="ship").inc()
                self.manifest.record_attempt(row.name, str(e))
                log.error("binlog %s: %s", row.name, e)
                result.failed[row.name] = str(e)
                continue
            getattr(result, outcome).append(row.name)
        self.metrics.pending.set(len(self.manifest.pending()))
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
        result.gaps.append(name)

    def _warn_purge(self, state: ServerState, binlog_dir: Path, result: PassResult) -> None:
        if state.expire_seconds <= 0:
            self.metrics.purge_risk.set(0)
            return
        now = time.time()
        at_risk = 0
        for row in self.manifest.pending():
            path = binlog_dir / row.name
            with contextlib.suppress(FileNotFoundError):
                left = state.expire_seconds - (now - path.stat().st_mtime)
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

    # -- one binlog --
    def ship_one(self, name: str, binlog_dir: Path, state: ServerState) -> str:
        """Ship ``name``; returns "shipped", "already", "flagged" or "gaps"."""
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
        flagged = info.crc_error_at is not None
        if flagged:
            key = objects.quarantine_key(self.cfg.tenant_prefix, server_id, name, info.sha256)
        else:
            key = objects.binlog_key(self.cfg.tenant_prefix, server_id, info.first_timestamp, name)
        trace_id = new_trace_id()
        fields, header_meta = objects.describe(
            info,
            tenant=self.cfg.tenant,
            server_id=server_id,
            server_uuid=state.server_uuid,
            trace_id=trace_id,
        )
        b = SealedBinlog(
            name=name,
            staged=staged,
            sealed=sealed,
            sha256=info.sha256,
            size=info.size,
            context=objects.context_for_key(key),
            header_meta=header_meta,
            metadata=objects.build_metadata(fields),
        )
        final_keys: list[str] = []
        outcome = "already"
        for backend in self.backends:
            k, wrote = self.writer.put(backend, key, b, self._lineage_conflict(name))
            outcome = "shipped" if wrote else outcome
            self.writer.verify(backend, k, b)
            if not flagged:
                self.writer.put_index(backend, k, info.index.to_bytes(), b, self.cfg.tenant)
            final_keys.append(k)
        targets = [be.url for be in self.backends]
        self.manifest.reach(name, "uploaded", object_key=final_keys[0], targets=targets)
        self.manifest.reach(name, "verified")
        if flagged:
            outcome = "flagged"
            self._flag(name, info.crc_error_at, final_keys[0])
        else:
            if info.status != "complete":
                self.manifest.journal(info.status, name, {"truncated_at": info.truncated_at})
                log.warning(
                    "binlog %s is %s (no closing ROTATE/STOP event); archived as is and flagged",
                    name,
                    info.status,
                )
            self.manifest.advance(name, "committed", error=None)
            self.metrics.shipped.inc()
            self.metrics.bytes.inc(info.size)
            self.metrics.last_commit.set(time.time())
        unstage(self.staging, name)
        self.metrics.duration.observe(time.monotonic() - started)
        log.info("binlog %s %s -> %s (trace %s)", name, outcome, final_keys, trace_id)
        return outcome

    def _flag(self, name: str, crc_error_at: int | None, key: str) -> None:
        self.manifest.advance(
            name,
            "flagged",
            error=f"event checksum mismatch at offset {crc_error_at}; quarantined at {key}",
        )
        self.manifest.journal("flagged", name, {"crc_error_at": crc_error_at, "key": key})
        self.metrics.flagged.inc()
        log.error(
            "binlog %s: event checksum mismatch at offset %s; archived to quarantine key "
            "%s and NOT counted as restorable",
            name,
            crc_error_at,
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

    def _lineage_conflict(self, name: str) -> ConflictHook:
        def hook(backend: StorageBackend, key: str, theirs: str) -> None:
            detail = {"target": backend.url, "key": key, "theirs_sha256": theirs}
            self.manifest.journal("lineage_conflict", name, detail)
            self.metrics.lineage.inc()
            log.error(
                "LINEAGE CONFLICT: %s on %s holds a different %s (RESET MASTER or a "
                "rebuilt server?); not overwriting it, storing ours under a lineage key",
                key,
                backend.url,
                name,
            )

        return hook
