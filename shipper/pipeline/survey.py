"""What the server's listing says before a pass ships anything: which names may be
new files (their identity must be read) and which unarchived binlogs the server
may purge soon."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from shipper.config import Config
from shipper.manifest import Manifest
from shipper.pipeline.discover import ServerState
from shipper.pipeline.stage import file_identity
from shipper.telemetry import Metrics

log = logging.getLogger(__name__)


def identity_if_new(manifest: Manifest, path: Path, name: str, size: int) -> str | None:
    """The file's identity, when it may differ from what the manifest knows.

    A known binlog that was closed before we discovered it has the recorded
    size and an mtime older than its discovery; only a new file under an old
    name (RESET MASTER, a rebuilt server) breaks that, so only then, or for a
    name we have never seen, is the file opened.
    """
    row = manifest.get(name)
    try:
        if row is not None and row.identity:
            st = path.stat()
            if st.st_size == (row.size or size) and st.st_mtime <= row.discovered_at:
                return None
        return file_identity(path)
    except FileNotFoundError:
        return None


def warn_purge(
    manifest: Manifest, metrics: Metrics, state: ServerState, binlog_dir: Path, cfg: Config
) -> list[str]:
    """Warnings for unarchived binlogs within ``purge_warning_seconds`` of the server's
    expiry (also logged, and counted in the near-purge gauge); the earliest purge time
    goes to the expiry gauge."""
    if state.expire_seconds <= 0:
        metrics.purge_risk.set(0)
        metrics.set_expiry_deadline(None)
        return []
    now = time.time()
    warnings = []
    deadline: float | None = None
    for row in manifest.pending():
        path = binlog_dir / row.name
        with contextlib.suppress(FileNotFoundError):
            # the server's expiry counts from the file's last write, as this does
            purge_at = path.stat().st_mtime + state.expire_seconds
            deadline = purge_at if deadline is None else min(deadline, purge_at)
            left = purge_at - now
            if left < cfg.purge_warning_seconds:
                msg = (
                    f"binlog {row.name} is not archived yet and the server may purge it in "
                    f"{max(0, int(left))}s (binlog_expire_logs_seconds={state.expire_seconds})"
                )
                log.warning(msg)
                warnings.append(msg)
    metrics.purge_risk.set(len(warnings))
    metrics.set_expiry_deadline(deadline)
    return warnings
