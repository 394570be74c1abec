"""The archive itself as a catalog: what a fresh (DR) machine plans from.

One paginated listing of ``{tenant}/mysql/{server_id}/`` (or of the tenant,
when the server is not known yet) says which objects exist. Each binlog
object's envelope header (one ranged read; it carries every metadata field
plus what S3's 2 KB cannot hold: the full GTID sets, the file's status) says
what it holds; a transaction index beside it means it verified, because the
shipper writes the index only after the object read back correctly. Each
backup's newest record revision (:mod:`shipper.records`) is read and
authenticated.

What was read is kept in a local cache file (JSON, 0600), keyed by object key,
size and version token (S3 ETag, GCS generation, file mtime): objects are
immutable, so an entry whose key, size and version are listed again is still
true, and a second plan costs one listing and no per-object request.

Trust: the header is read without authenticating it (that needs the data key
and the first chunk of every object). Its context must be one the key implies
(:func:`shipper.objects.accepted_contexts`: layout 2, or the previous release's),
and every object the plan names is authenticated in full, hash checked, when
``restore apply`` fetches it; a header changed in the bucket fails there
(the header is bound into every chunk's AAD) before anything is replayed.
Backup records and transaction indexes are authenticated when read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import tempfile
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from shipper import envelope, objects
from shipper.catalog.base import in_range
from shipper.errors import IntegrityError
from shipper.keys import KeyProvider
from shipper.records import BackupRecord, read_record
from shipper.restore.model import ArchivedBinlog, BackupInfo
from shipper.storage import ObjectInfo, StorageBackend

log = logging.getLogger(__name__)

CACHE_VERSION = 1
#: the envelope's fixed part: magic .. body_len (docs/format.md); body_len is its last 4 bytes
_FIXED = 36
_PROBE = 16 << 10
_BINLOG_RE = re.compile(
    r"^\d{4}/\d{2}/(?P<name>[^/]+?)(?P<lineage>\.lineage-[0-9a-f]{12})?\.zst\.enc$"
)
_QUARANTINE_RE = re.compile(r"^quarantine/(?P<name>[^/]+)\.[0-9a-f]{12}\.zst\.enc$")
_RECORD_RE = re.compile(r"^backups/(?P<id>[^/.]+)\.record(?:-(?P<rev>[1-9][0-9]*))?\.zst\.enc$")
_SID_RE = re.compile(r"^(?P<sid>\d+)/")
_HEADER_FIELDS = [f.name for f in fields(ArchivedBinlog) if f.name not in ("state", "index_key")]


def default_cache_dir(state_dir: Path) -> Path:
    return state_dir / "cache"


class ArchiveCatalog:
    """Plan from ``store`` alone. ``requests`` counts what was asked of the store
    (``list`` calls, ``header`` and ``record`` reads)."""

    def __init__(
        self,
        store: StorageBackend,
        providers: Sequence[KeyProvider],
        *,
        cache_dir: Path | None = None,
        workers: int = 8,
    ) -> None:
        self.store = store
        self.workers = workers
        self.providers = providers
        self.requests: Counter[str] = Counter()
        self._listings: dict[str, list[ObjectInfo]] = {}
        self._seen: set[str] = set()
        self._cache_path = (
            cache_dir / f"archive-{hashlib.sha256(store.url.encode()).hexdigest()[:16]}.json"
            if cache_dir is not None
            else None
        )
        self._cache = self._load_cache()
        self._dirty = False

    # ------------------------------------------------------------------ the protocol

    def servers(self, tenant: str) -> list[int]:
        ids = set()
        for info in self._list(f"{tenant}/mysql/"):
            m = _SID_RE.match(info.key[len(tenant) + 7 :])
            if m:
                ids.add(int(m["sid"]))
        return sorted(ids)

    def binlogs(
        self,
        tenant: str,
        server_id: int,
        *,
        since: int | None = None,
        until: int | None = None,
    ) -> list[ArchivedBinlog]:
        prefix = f"{tenant}/mysql/{server_id}/"
        listed = self._objects(tenant, server_id)
        keys = {i.key for i in listed}
        found = [(info, kind) for info in listed if (kind := _classify(info.key[len(prefix) :]))]
        self._read_headers([(info, name) for info, (name, _rank) in found])
        items: list[tuple[int, ArchivedBinlog]] = []
        for info, (_name, rank) in found:
            doc = self._cached("binlogs", info)
            assert doc is not None  # _read_headers put every one in the cache
            item = ArchivedBinlog(state="committed", **doc)
            ikey = objects.index_key(info.key)
            if rank == 0:
                item = replace(item, state="flagged")
            elif ikey in keys:
                item = replace(item, index_key=ikey)
            else:
                item = replace(item, state="uploaded")
            items.append((rank, item))
        self._save_cache(prefix, keys)
        # Same name more than once: quarantined first, then the plain key, then lineage
        # copies (written later, when the name was taken), oldest first; the last one wins.
        items.sort(key=lambda t: (t[1].sequence, t[0], t[1].first_ts or 0))
        return [b for _rank, b in items if in_range(b, since, until)]

    def backups(self, tenant: str, server_id: int) -> list[BackupInfo]:
        return [
            BackupInfo.from_record(r)
            for r in self.records(tenant, server_id)
            if r.verification.state != "deleted"
        ]

    def confirms(self, key: str) -> bool:
        return key in self._seen

    # ------------------------------------------------------------------ records

    def records(self, tenant: str, server_id: int) -> list[BackupRecord]:
        """Every backup's newest record revision (deleted ones too), oldest backup first."""
        prefix = f"{tenant}/mysql/{server_id}/"
        listed = self._objects(tenant, server_id)
        best: dict[str, tuple[int, ObjectInfo]] = {}
        for info in listed:
            m = _RECORD_RE.match(info.key[len(prefix) :])
            if m is None:
                continue
            rev = int(m["rev"] or 1)
            if m["id"] not in best or best[m["id"]][0] < rev:
                best[m["id"]] = (rev, info)
        recs = [self._record(info) for _rev, info in best.values()]
        self._save_cache(prefix, {i.key for i in listed})
        return sorted(recs, key=lambda r: (r.consistent_at or 0, r.id))

    # ------------------------------------------------------------------ reading objects

    def _list(self, prefix: str) -> list[ObjectInfo]:
        if prefix not in self._listings:
            self.requests["list"] += 1
            self._listings[prefix] = list(self.store.list(prefix))
            self._seen.update(i.key for i in self._listings[prefix])
        return self._listings[prefix]

    def _objects(self, tenant: str, server_id: int) -> list[ObjectInfo]:
        """The server's objects: from the tenant's listing if one was made, else one listing."""
        prefix = f"{tenant}/mysql/{server_id}/"
        wide = self._listings.get(f"{tenant}/mysql/")
        if wide is not None:
            return [i for i in wide if i.key.startswith(prefix)]
        return self._list(prefix)

    def _cached(self, section: str, info: ObjectInfo) -> dict[str, Any] | None:
        """The cached document for ``info``, if it is for this size and version (else None:
        read the object again; an entry this release cannot use is treated the same)."""
        entry = self._cache[section].get(info.key)
        if not isinstance(entry, dict) or not isinstance(entry.get("doc"), dict):
            return None
        if entry.get("size") != info.size or entry.get("version") != info.version:
            return None
        doc: dict[str, Any] = entry["doc"]
        if section == "binlogs" and set(doc) != set(_HEADER_FIELDS):
            return None
        return doc

    def _remember(self, section: str, info: ObjectInfo, doc: dict[str, Any]) -> None:
        self._cache[section][info.key] = {"size": info.size, "version": info.version, "doc": doc}
        self._dirty = True

    def _read_headers(self, todo: list[tuple[ObjectInfo, str]]) -> None:
        """Read the header of every object not in the cache, ``workers`` at a time (each is
        one round trip: on a cloud store, latency, not bandwidth, is what a cold plan pays)."""
        todo = [(info, name) for info, name in todo if self._cached("binlogs", info) is None]
        if not todo:
            return
        with ThreadPoolExecutor(self.workers) as pool:
            done = list(pool.map(lambda t: self._header_doc(*t), todo))
        for (info, _name), (doc, reads) in zip(todo, done, strict=True):
            self.requests["header"] += reads
            self._remember("binlogs", info, doc)

    def _header_doc(self, info: ObjectInfo, name: str) -> tuple[dict[str, Any], int]:
        """The planner's fields from the envelope header: one ranged read (two when the
        header is long); returns them and the number of reads."""
        data = _read(self.store, info.key, min(info.size, _PROBE))
        reads = 1
        need = _FIXED + int.from_bytes(data[_FIXED - 4 : _FIXED], "big")
        if len(data) >= _FIXED and need > len(data) and need <= info.size:
            data = _read(self.store, info.key, need)
            reads += 1
        try:
            header = envelope.read_header(io.BytesIO(data))
        except IntegrityError as e:
            raise IntegrityError(f"{self.store.url}/{info.key}: {e}") from e
        return _binlog_doc(header, info.key, name), reads

    def _record(self, info: ObjectInfo) -> BackupRecord:
        doc = self._cached("records", info)
        if doc is not None:
            with contextlib.suppress(IntegrityError):  # an entry this release cannot read
                return BackupRecord.from_json(doc)
        self.requests["record"] += 1
        rec = read_record(self.store, info.key, self.providers)
        self._remember("records", info, rec.to_json())
        return rec

    # ------------------------------------------------------------------ the cache file

    def _load_cache(self) -> dict[str, dict[str, Any]]:
        empty: dict[str, dict[str, Any]] = {"binlogs": {}, "records": {}}
        if self._cache_path is None or not self._cache_path.exists():
            return empty
        try:
            doc = json.loads(self._cache_path.read_text())
        except (OSError, ValueError) as e:
            log.warning("catalog cache %s is unreadable (%s): rebuilding it", self._cache_path, e)
            return empty
        if (
            not isinstance(doc, dict)
            or doc.get("version") != CACHE_VERSION
            or doc.get("url") != self.store.url
        ):
            return empty
        return {k: _dict(doc.get(k)) for k in empty}

    def _save_cache(self, prefix: str, listed: set[str]) -> None:
        """Write the cache (temp + rename, 0600), dropping entries under ``prefix`` that the
        listing no longer shows."""
        for section in self._cache.values():
            for key in [k for k in section if k.startswith(prefix) and k not in listed]:
                del section[key]
                self._dirty = True
        if self._cache_path is None or not self._dirty:
            return
        try:
            self._write_cache(self._cache_path)
        except OSError as e:  # the plan does not need the cache: say so and go on
            log.warning("catalog cache %s not written: %s", self._cache_path, e)
            return
        self._dirty = False

    def _write_cache(self, path: Path) -> None:
        """Temp file + rename, so a crash never leaves half a cache; mkstemp makes it 0600."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        doc = {"version": CACHE_VERSION, "url": self.store.url, **self._cache}
        fd, tmp = tempfile.mkstemp(prefix=".catalog.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _classify(rest: str) -> tuple[str, int] | None:
    """(binlog name, rank) of a key under the server's prefix; None for anything else.
    Rank: 0 quarantined, 1 at its plain key, 2 a lineage-suffixed copy."""
    q = _QUARANTINE_RE.match(rest)
    if q is not None:
        return q["name"], 0
    b = _BINLOG_RE.match(rest)
    if b is None or b["name"].endswith(".idx"):
        return None
    return b["name"], 2 if b["lineage"] else 1


def _read(store: StorageBackend, key: str, length: int) -> bytes:
    with contextlib.closing(store.open(key, 0, length)) as f:
        return f.read()


def _epoch(text: Any) -> int | None:
    if not text:
        return None
    return int(dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp())


def _binlog_doc(header: envelope.EnvelopeHeader, key: str, name: str) -> dict[str, Any]:
    """The planner's view of a binlog object, from its header; the header must belong here."""
    accepted = objects.accepted_contexts(key)
    if header.context not in accepted:
        raise IntegrityError(
            f"object {key}: its envelope context {header.context} is not the one its key "
            f"implies ({accepted[0]}; copied or renamed?): not used"
        )
    m = header.metadata
    try:
        item = ArchivedBinlog(
            name=name,
            state="committed",
            server_id=int(m["server_id"]),
            first_ts=_epoch(m.get("start_timestamp")),
            last_ts=_epoch(m.get("end_timestamp")),
            gtid_previous=m.get("gtid_previous"),
            gtid_end=m.get("gtid_executed_end") or m.get("gtid_set") or None,
            object_key=key,
            size=int(m["plaintext_size"]),
            sha256=str(m["plaintext_sha256"]),
            file_status=m.get("file_status") or "complete",
            server_uuid=m.get("server_uuid") or None,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise IntegrityError(f"object {key}: envelope header metadata lacks {e}") from e
    d = asdict(item)
    return {k: d[k] for k in _HEADER_FIELDS}
