"""Backfill: give a write target the committed binlogs it lacks.

A target added to the config later (or one a previous release recorded no
placement for) has no placement for binlogs committed before it. Each pass
fills them in, oldest first, with the same conditional put and verification
as a fresh upload. The source, in order of preference:

1. the staged copy, if one is still in the staging dir;
2. the server's binlog, if it is still there and still the same file (its
   SHA-256 matches the manifest);
3. the verified object on another write target, copied byte for byte. The
   envelope does not depend on the target, so no reseal is needed; it is
   then verified on the new target like any upload.

The copy keeps the source's key (a lineage key stays a lineage key): the key
is part of what the envelope's context binds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from shipper import objects
from shipper.binlog import BinlogInfo, scan_file
from shipper.errors import IntegrityError, PreconditionFailed, ShipperError, StateError
from shipper.manifest import BinlogRow
from shipper.pipeline.stage import stage, staged_files
from shipper.pipeline.targets import TARGET_ERRORS
from shipper.pipeline.upload import SealedBinlog, stat_or_none
from shipper.storage import StorageBackend

if TYPE_CHECKING:
    from shipper.pipeline.ship import PassResult, Shipper

log = logging.getLogger(__name__)

_WORK = ".backfill"


def backfill(shipper: Shipper, binlog_dir: Path, result: PassResult) -> None:
    """Fill every write target's missing committed binlogs (skipping targets that are down)."""
    out = shipper.out
    for url, backend in out.targets:
        for row in shipper.manifest.unplaced(url):
            if url in out.down:
                out.down[url].blocked += 1
                continue
            try:
                fill_one(shipper, url, backend, row, binlog_dir)
            except TARGET_ERRORS as e:
                out.failed(url, e)
                out.down[url].blocked += 1
            except ShipperError as e:
                log.error("backfill of %s to %s: %s", row.name, url, e)
                result.failed[f"{row.name} -> {url}"] = str(e)
            else:
                result.backfilled.setdefault(url, []).append(row.name)
    with contextlib.suppress(OSError):
        (shipper.staging / _WORK).rmdir()  # only when empty


def fill_one(
    shipper: Shipper, url: str, backend: StorageBackend, row: BinlogRow, binlog_dir: Path
) -> str:
    """Place one committed row on ``url``; returns the key it is under there."""
    work = _work_dir(shipper.staging)
    staged, sealed = staged_files(work, row.name)
    try:
        info = _local_source(shipper.staging / row.name, binlog_dir / row.name, staged, row)
        if info is not None:
            return _reseal(shipper, url, backend, row, staged, sealed, info)
        return _copy(shipper, url, backend, row, sealed)
    finally:
        for p in (staged, sealed, sealed.with_name(sealed.name + ".tmp")):
            p.unlink(missing_ok=True)


def _work_dir(staging: Path) -> Path:
    # apart from staging/NAME, which may hold a newer lineage of the same name
    work = staging / _WORK
    work.mkdir(mode=0o700, exist_ok=True)
    return work


def _local_source(staged_copy: Path, binlog: Path, dst: Path, row: BinlogRow) -> BinlogInfo | None:
    """Hardlink the first local copy of ``row``'s very file into ``dst`` and scan it
    (None: neither the staging dir nor the server has it any more)."""
    for src in (staged_copy, binlog):
        try:
            stage(src, dst)
        except FileNotFoundError:
            continue
        if row.size is None or dst.stat().st_size == row.size:
            info = scan_file(dst)
            if info.sha256 == row.sha256 and info.first_timestamp is not None:
                return info
        dst.unlink()  # another file under that name now (RESET MASTER): not ours
    return None


def _reseal(
    shipper: Shipper,
    url: str,
    backend: StorageBackend,
    row: BinlogRow,
    staged: Path,
    sealed: Path,
    info: BinlogInfo,
) -> str:
    assert info.first_timestamp is not None  # checked by _local_source
    server_id = row.server_id if row.server_id is not None else info.server_id or 0
    key = objects.binlog_key(shipper.cfg.tenant_prefix, server_id, info.first_timestamp, row.name)
    b = shipper.out.sealed_binlog(
        row.name, staged, sealed, info, server_id, row.server_uuid or "", key
    )
    k, _ = shipper.out.place(url, backend, key, b, info.index.to_bytes(), lineage=row.lineage)
    log.info("backfilled %s to %s at %s (resealed from %s)", row.name, url, k, staged)
    return k


def _copy(shipper: Shipper, url: str, backend: StorageBackend, row: BinlogRow, sealed: Path) -> str:
    sources = dict(shipper.out.targets + shipper.out.fallback)
    for src_url, p in shipper.manifest.placements(row.name, row.lineage).items():
        if src_url == url or src_url not in sources or p.state != "verified" or not p.object_key:
            continue
        src, key = sources[src_url], p.object_key
        info = src.stat(key)
        _download(src, key, sealed)
        b = SealedBinlog(
            name=row.name,
            staged=sealed,  # unused: the sealed file exists, nothing is resealed
            sealed=sealed,
            sha256=row.sha256 or "",
            size=row.size or 0,
            context=objects.context_for_key(key),
            header_meta={},
            metadata=dict(info.metadata),
        )
        _put_raw(backend, key, sealed, b)
        shipper.writer.verify(backend, key, b)
        ikey = objects.index_key(key)
        if stat_or_none(src, ikey) is not None and stat_or_none(backend, ikey) is None:
            _download(src, ikey, sealed)
            _put_raw(backend, ikey, sealed, None, dict(src.stat(ikey).metadata))
        stat = backend.stat(key)
        shipper.manifest.place(
            row.name,
            url,
            key=key,
            version=stat.version,
            envelope_size=stat.size,
            lineage=row.lineage,
        )
        log.info("backfilled %s to %s at %s (copied from %s)", row.name, url, key, src_url)
        return key
    raise StateError(
        f"binlog {row.name} cannot be backfilled to {url}: the server and staging no "
        "longer have it and no other write target holds a verified copy"
    )


def _download(src: StorageBackend, key: str, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    with contextlib.closing(src.open(key)) as fin, tmp.open("wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    os.replace(tmp, dst)


def _put_raw(
    backend: StorageBackend,
    key: str,
    path: Path,
    b: SealedBinlog | None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Conditional put of ``path``'s bytes; a copy of the same binlog already there is fine."""
    meta = dict(b.metadata) if b is not None else metadata or {}
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            backend.put(key, f, size=size, metadata=meta)  # retried by the backend's wrapper
    except PreconditionFailed:
        theirs = stat_or_none(backend, key)
        if b is None or (theirs and theirs.metadata.get("plaintext_sha256") == b.sha256):
            return
        raise IntegrityError(
            f"{backend.url}/{key} holds another file; not overwriting it with the copy of "
            f"{b.name} (its key on the source target)"
        ) from None
