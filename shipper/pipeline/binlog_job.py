"""One binlog's way through a pass: prepared in a worker, committed in sequence order.

:func:`prepare` does everything before the commit -- stage, scan, seal, put,
verify, index, one placement per write target, failover -- and is safe in a
worker thread (it touches no other binlog's row). :func:`commit` moves the row
to committed (or flagged) in the committer's thread, in sequence order;
:func:`hold` leaves a prepared binlog placed but uncommitted because an
earlier one of the pass was held back (``pipeline/ship.py`` decides which).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shipper import objects
from shipper.binlog import BinlogInfo, scan_file
from shipper.errors import BinlogFormatError, IntegrityError, StateError
from shipper.pipeline import failover
from shipper.pipeline.discover import ServerState
from shipper.pipeline.stage import stage, staged_files, unstage
from shipper.pipeline.targets import TARGET_ERRORS

if TYPE_CHECKING:
    from shipper.pipeline.ship import Shipper

log = logging.getLogger(__name__)


@dataclass
class Ready:
    """A binlog prepared in a worker (placed on every target it could reach), waiting
    for its turn to be committed."""

    name: str
    info: BinlogInfo
    trace_id: str
    #: time.monotonic() when its shipping started (the duration metric)
    started: float
    #: attempts recorded before this one (for the report)
    attempts: int
    #: the server's file (its mtime dates the rotation)
    source: Path
    #: target URL -> the key it holds the binlog under there
    keys: dict[str, str] = field(default_factory=dict)
    #: write targets that are down and do not have it yet (none once failover covered)
    held_back: list[str] = field(default_factory=list)
    #: whether this attempt uploaded it anywhere (else it was archived already)
    wrote: bool = False
    #: the journal entry of its failover to the other cloud, written when it commits
    failover: dict[str, object] | None = None


def prepare(
    shipper: Shipper,
    name: str,
    binlog_dir: Path,
    state: ServerState,
    *,
    trace_id: str | None = None,
) -> Ready | str:
    """Everything before the commit: stage, scan, seal, put, verify, index, one
    placement per target, failover. Safe in a worker thread (the rows of other
    binlogs are never touched); the commit is :func:`commit`'s, in sequence order.
    Returns "gaps" when the file was purged before it was staged. ``trace_id`` (of
    the binlog's span) goes into the object metadata."""
    started = time.monotonic()
    row = shipper.manifest.get(name)
    assert row is not None
    staged, sealed = staged_files(shipper.staging, name)
    fresh = row.state == "discovered"  # no earlier attempt can have put it anywhere
    if row.state == "discovered":
        try:
            stage(binlog_dir / name, staged)
        except FileNotFoundError:
            shipper.mark_gap(name, "purged by the server before it was shipped")
            return "gaps"
        row = shipper.manifest.advance(name, "staged")
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
    _record_scan(shipper, name, info, state.server_uuid)
    server_id = info.server_id if info.server_id is not None else state.server_id
    flagged = info.damage is not None  # CRC mismatch, or a flag that denies the CRCs
    if flagged:
        key = objects.quarantine_key(shipper.cfg.tenant_prefix, server_id, name, info.sha256)
    else:
        key = objects.binlog_key(shipper.cfg.tenant_prefix, server_id, info.first_timestamp, name)
    b = shipper.out.sealed_binlog(
        name,
        staged,
        sealed,
        info,
        server_id,
        state.server_uuid,
        key,
        trace_id=trace_id,
        fresh=fresh,
    )
    index = None if flagged else info.index.to_bytes()
    placed = shipper.manifest.placements(name)
    ready = Ready(name, info, b.metadata["trace_id"], started, row.attempts, binlog_dir / name)
    for url, backend in shipper.out.targets:
        done = placed.get(url)
        if done is not None and done.state == "verified" and done.object_key:
            ready.keys[url] = done.object_key  # placed by an earlier, interrupted attempt
            continue
        if url in shipper.out.down:
            shipper.manifest.place(name, url, key=None, error=shipper.out.down[url].error)
            ready.held_back.append(url)
            continue
        try:
            k, wrote = shipper.out.place(url, backend, key, b, index)
        except TARGET_ERRORS as e:
            shipper.out.failed(url, e, name)
            ready.held_back.append(url)
            continue
        ready.wrote = ready.wrote or wrote
        ready.keys[url] = k
    if ready.held_back:
        ready.failover = failover.cover(
            shipper.out, shipper.resilient, name, ready.held_back, ready.keys, key, b, index
        )
        if ready.failover is not None:
            ready.held_back = []
            ready.wrote = True  # to the fallback target (failover.cover)
    return ready


def commit(shipper: Shipper, ready: Ready) -> str:
    """Move a prepared binlog's row to committed (or flagged), in the committer's
    thread; "blocked" when a write target does not have it yet."""
    name, info = ready.name, ready.info
    if ready.held_back:
        # the row moves on only once every write target has it (or, with failover,
        # once a target whose circuit is closed has it); the placements made say
        # how far it got
        _count_held_back(shipper, ready)
        shipper.manifest.record_attempt(
            name, "not yet written to " + ", ".join(ready.held_back) + " (target down)"
        )
        return "blocked"
    final_keys = ready.keys
    if ready.failover is not None:  # journalled in commit order, not completion order
        shipper.manifest.journal("failover", name, ready.failover)
    first = next(iter(final_keys.values()))
    shipper.manifest.reach(name, "uploaded", object_key=first, targets=list(final_keys))
    shipper.manifest.reach(name, "verified")
    outcome = "shipped" if ready.wrote else "already"
    staged, _sealed = staged_files(shipper.staging, name)
    if info.damage is not None:  # CRC mismatch, or a flag that denies the CRCs
        outcome = "flagged"
        _flag(shipper, name, info, first)
    else:
        if info.status != "complete":
            shipper.manifest.journal(info.status, name, {"truncated_at": info.truncated_at})
            log.warning(
                "binlog %s is %s (no closing ROTATE/STOP event); archived as is and flagged",
                name,
                info.status,
            )
        rotated_at = _rotated_at(ready.source, staged)
        shipper.manifest.advance(name, "committed", error=None)
        shipper.metrics.shipped.inc()
        shipper.metrics.bytes.inc(info.size)
        shipper.metrics.last_commit.set(time.time())
        shipper.report.committed(
            name, info, outcome, final_keys.values(), ready.attempts, ready.trace_id, rotated_at
        )
    unstage(shipper.staging, name)
    shipper.metrics.duration.observe(time.monotonic() - ready.started)
    log.info("binlog %s %s -> %s (trace %s)", name, outcome, final_keys, ready.trace_id)
    return outcome


def hold(shipper: Shipper, ready: Ready, behind: str) -> str:
    """Leave a prepared binlog uncommitted because an earlier one of this pass was
    held back. With one worker that earlier failure took its target out of the pass
    before this binlog was tried; with several, this one may have been placed (or
    failed over) meanwhile. Its placements stay, so the next pass only commits it."""
    _count_held_back(shipper, ready)
    shipper.manifest.record_attempt(
        ready.name, f"waiting for {behind}, held back by a target that is down"
    )
    log.warning("binlog %s: not committed before %s, which a target held back", ready.name, behind)
    return "blocked"


def _count_held_back(shipper: Shipper, ready: Ready) -> None:
    """Each target that is down and lacks ``ready`` counts it (the TARGET report)."""
    for url in ready.held_back:
        shipper.out.down[url].blocked += 1


def _flag(shipper: Shipper, name: str, info: BinlogInfo, key: str) -> None:
    shipper.manifest.advance(name, "flagged", error=f"{info.damage}; quarantined at {key}")
    detail = {"crc_error_at": info.crc_error_at, "key": key, "status": info.status}
    shipper.manifest.journal("flagged", name, detail)
    shipper.metrics.flagged.inc()
    shipper.report.flagged(name, info, key)
    log.error(
        "binlog %s: %s; archived to quarantine key %s and NOT counted as restorable",
        name,
        info.damage,
        key,
    )


def _record_scan(shipper: Shipper, name: str, info: BinlogInfo, server_uuid: str) -> None:
    shipper.manifest.update(
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
