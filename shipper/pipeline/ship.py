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
import hashlib
import io
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from shipper import envelope
from shipper.binlog import BinlogInfo, scan_file
from shipper.config import Config
from shipper.errors import (
    BinlogFormatError,
    IntegrityError,
    PreconditionFailed,
    ShipperError,
    StateError,
)
from shipper.keys import KeyProvider, make_provider
from shipper.manifest import Manifest, binlog_sequence
from shipper.pipeline import objects
from shipper.pipeline.discover import ServerState, read_state
from shipper.resilience import retrying
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
            name = path.name.removesuffix(objects.OBJECT_SUFFIX).removesuffix(".tmp")
            name = name.removesuffix(objects.OBJECT_SUFFIX).removesuffix(".copying")
            row = self.manifest.get(name)
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
        staged = self.staging / name
        if row.state == "discovered":
            try:
                self._stage(binlog_dir / name, staged)
            except FileNotFoundError:
                result = PassResult()
                self._mark_gap(name, "purged by the server before it was shipped", result)
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
        server_id = info.server_id if info.server_id is not None else state.server_id
        flagged = info.crc_error_at is not None
        if flagged:
            key = objects.quarantine_key(self.cfg.tenant_prefix, server_id, name, info.sha256)
        else:
            key = objects.binlog_key(self.cfg.tenant_prefix, server_id, info.first_timestamp, name)
        self._record_scan(name, info)
        trace_id = new_trace_id()
        context = {"tenant": self.cfg.tenant, "server_id": str(server_id), "binlog_name": name}
        meta_fields: dict[str, Any] = {
            "server_uuid": state.server_uuid,
            "server_id": server_id,
            "binlog_name": name,
            "binlog_sequence": binlog_sequence(name),
            "gtid_set": info.gtid_executed_end,
            "start_timestamp": objects.utc_iso(info.first_timestamp),
            "end_timestamp": objects.utc_iso(info.last_timestamp),
            "compression_algorithm": "zstd",
            "plaintext_sha256": info.sha256,
            "plaintext_size": info.size,
            "format_version": objects.FORMAT_VERSION,
            "tenant": self.cfg.tenant,
            "trace_id": trace_id,
        }
        if info.status != "complete":
            meta_fields["binlog_status"] = info.status
        header_meta = {
            **meta_fields,
            "gtid_previous": info.gtid_previous,
            "gtid_executed_end": info.gtid_executed_end,
            "server_version": info.server_version,
            "file_status": info.status,
            "crc_error_at": info.crc_error_at,
            "truncated_at": info.truncated_at,
        }
        metadata = objects.build_metadata(meta_fields)

        final_keys: list[str] = []
        outcome = "already"
        for backend in self.backends:
            k, uploaded = self._upload(backend, key, staged, info, context, header_meta, metadata)
            if uploaded:
                outcome = "shipped"
            self._verify(backend, k, info)
            final_keys.append(k)
            if not flagged:
                self._upload_index(backend, k, info, context, header_meta)
        targets = [b.url for b in self.backends]
        self.manifest.reach(name, "uploaded", object_key=final_keys[0], targets=targets)
        self.manifest.reach(name, "verified")
        if flagged:
            self.manifest.advance(
                name,
                "flagged",
                error=f"event checksum mismatch at offset "
                f"{info.crc_error_at}; quarantined at {final_keys[0]}",
            )
            self.manifest.journal(
                "flagged", name, {"crc_error_at": info.crc_error_at, "key": final_keys[0]}
            )
            self.metrics.flagged.inc()
            log.error(
                "binlog %s: event checksum mismatch at offset %s; archived to quarantine "
                "key %s and NOT counted as restorable",
                name,
                info.crc_error_at,
                final_keys[0],
            )
            outcome = "flagged"
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
        self._unstage(name)
        self.metrics.duration.observe(time.monotonic() - started)
        log.info("binlog %s %s -> %s (trace %s)", name, outcome, final_keys, trace_id)
        return outcome

    def _record_scan(self, name: str, info: BinlogInfo) -> None:
        self.manifest.update(
            name,
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

    def _stage(self, src: Path, dst: Path) -> None:
        """Hardlink (or copy, across filesystems) the closed binlog into the state dir.

        A hardlink keeps the bytes even if the server purges the binlog meanwhile.
        A copy goes to a temp name first, so a crash never leaves a partial stage.
        """
        if dst.exists():
            return
        try:
            os.link(src, dst)
        except OSError as e:
            if e.errno != errno.EXDEV:
                if e.errno == errno.ENOENT:
                    raise FileNotFoundError(str(src)) from e
                raise StateError(f"cannot stage {src} into {dst.parent}: {e.strerror}") from e
            tmp = dst.with_name(dst.name + ".copying")
            shutil.copyfile(src, tmp)
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dst)
        with contextlib.suppress(PermissionError):
            os.chmod(dst, 0o600)

    def _seal_to_file(
        self, src: Path, context: dict[str, str], header_meta: dict[str, Any], dest: Path
    ) -> envelope.SealResult:
        tmp = dest.with_name(dest.name + ".tmp")
        with src.open("rb") as fin, tmp.open("wb") as fout:
            res = envelope.seal(
                fin,
                fout,
                providers=self.providers,
                context=context,
                metadata=header_meta,
                level=self.cfg.compression_level,
                chunk_size=self.cfg.chunk_size,
            )
        os.replace(tmp, dest)
        return res

    def _upload(
        self,
        backend: StorageBackend,
        key: str,
        staged: Path,
        info: BinlogInfo,
        context: dict[str, str],
        header_meta: dict[str, Any],
        metadata: dict[str, str],
    ) -> tuple[str, bool]:
        """Put the sealed object at ``key``; returns (final key, whether we wrote it)."""
        candidates = [key, objects.lineage_key(key, info.sha256)]
        sealed = staged.with_name(staged.name + objects.OBJECT_SUFFIX)
        for k in candidates:
            existing = _stat_or_none(backend, k)
            if existing is not None:
                if existing.metadata.get("plaintext_sha256") == info.sha256:
                    return k, False  # already archived by an earlier attempt
                self._lineage_conflict(backend, k, info, existing.metadata)
                continue
            if not sealed.exists():
                self._seal_to_file(staged, context, header_meta, sealed)
            size = sealed.stat().st_size
            try:
                with sealed.open("rb") as f:
                    retrying(lambda f=f, k=k, size=size: _put(backend, k, f, size, metadata))
                return k, True
            except PreconditionFailed:
                # Lost a race (or the stat above was stale): decide again on what is there now.
                existing = _stat_or_none(backend, k)
                if (
                    existing is not None
                    and existing.metadata.get("plaintext_sha256") == info.sha256
                ):
                    return k, False
                self._lineage_conflict(backend, k, info, existing.metadata if existing else {})
        raise IntegrityError(
            f"binlog {info.name}: both {candidates[0]} and its lineage key "
            f"{candidates[1]} hold other files on {backend.url}; refusing to "
            "overwrite"
        )

    def _lineage_conflict(
        self, backend: StorageBackend, key: str, info: BinlogInfo, other: Any
    ) -> None:
        detail = {
            "target": backend.url,
            "key": key,
            "ours_sha256": info.sha256,
            "theirs_sha256": dict(other).get("plaintext_sha256", ""),
        }
        self.manifest.journal("lineage_conflict", info.name, detail)
        self.metrics.lineage.inc()
        log.error(
            "LINEAGE CONFLICT: %s on %s holds a different %s (RESET MASTER or a rebuilt "
            "server?); not overwriting it, storing ours under a lineage key",
            key,
            backend.url,
            info.name,
        )

    def _verify(self, backend: StorageBackend, key: str, info: BinlogInfo) -> None:
        """Read the object back, decrypt it and compare its plaintext with the staged file."""
        stat = backend.stat(key)
        if stat.metadata.get("plaintext_sha256") != info.sha256:
            raise IntegrityError(
                f"{backend.url}/{key}: metadata plaintext_sha256 does not match "
                f"the staged binlog {info.name}"
            )
        mode = self.cfg.verify
        if mode == "auto":
            mode = "prefix" if backend.url.startswith(("s3://", "gs://")) else "full"
        if mode == "prefix":
            self._verify_prefix(backend, key, stat.size)
            return
        sink = _HashSink()
        with contextlib.closing(backend.open(key)) as src:
            res = envelope.unseal(src, sink, providers=self.providers)
        if res.plaintext_sha256 != info.sha256 or res.plaintext_size != info.size:
            raise IntegrityError(
                f"{backend.url}/{key}: decrypted object does not match the "
                f"staged binlog {info.name} (sha256 {res.plaintext_sha256})"
            )

    def _verify_prefix(self, backend: StorageBackend, key: str, size: int) -> None:
        """Prove the object decryptable without downloading it: a ranged read of the
        header and the first chunk, the data key unwrapped, chunk 0 authenticated.
        (The service already checked the whole body against our checksum on upload.)"""
        probe = min(size, 64 << 10)
        with contextlib.closing(backend.open(key, 0, probe)) as f:
            data = f.read()
        header = envelope.read_header(io.BytesIO(data))
        span = min(size, envelope.first_chunk_span(header))
        if span > len(data):
            with contextlib.closing(backend.open(key, 0, span)) as f:
                data = f.read()
        envelope.verify_prefix(data[:span], providers=self.providers)

    def _upload_index(
        self,
        backend: StorageBackend,
        key: str,
        info: BinlogInfo,
        context: dict[str, str],
        header_meta: dict[str, Any],
    ) -> None:
        """Store the transaction index beside the binlog object (sealed like it)."""
        ikey = objects.index_key(key)
        if _stat_or_none(backend, ikey) is not None:
            return
        data = info.index.to_bytes()
        out = io.BytesIO()
        envelope.seal(
            io.BytesIO(data),
            out,
            providers=self.providers,
            context={**context, "kind": "txindex"},
            metadata={"binlog_name": info.name, "plaintext_sha256": info.sha256},
            level=self.cfg.compression_level,
        )
        meta = objects.build_metadata(
            {
                "binlog_name": info.name,
                "kind": "txindex",
                "binlog_plaintext_sha256": info.sha256,
                "tenant": self.cfg.tenant,
            }
        )
        with contextlib.suppress(PreconditionFailed):
            out.seek(0)
            retrying(lambda: _put(backend, ikey, out, len(out.getvalue()), meta))

    def _unstage(self, name: str) -> None:
        for p in (self.staging / name, self.staging / (name + objects.OBJECT_SUFFIX)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def file_identity(path: Path) -> str:
    """sha256 of a binlog's first 4 KiB: its format description event, dated to the
    second it was created, tells two files of the same name apart."""
    with path.open("rb") as f:
        return hashlib.sha256(f.read(4096)).hexdigest()


class _HashSink:
    """A write-only file that only hashes (verification needs no plaintext on disk)."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.n = 0

    def write(self, b: bytes) -> int:
        self.h.update(b)
        self.n += len(b)
        return len(b)


def _stat_or_none(backend: StorageBackend, key: str) -> Any:
    from shipper.errors import ObjectNotFound

    try:
        return backend.stat(key)
    except ObjectNotFound:
        return None


def _put(
    backend: StorageBackend, key: str, f: IO[bytes], size: int, metadata: dict[str, str]
) -> Any:
    f.seek(0)
    return backend.put(key, f, size=size, metadata=metadata)  # type: ignore[arg-type]
