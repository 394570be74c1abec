"""Putting a sealed binlog into a backend, and proving it is there.

Uploads are conditional. When the key is taken, the stored object's
``plaintext_sha256`` metadata decides: equal means an earlier attempt already
archived this very file (idempotent success); different means another file
claimed the name (RESET MASTER, a rebuilt server): the conflict is reported
and ours goes to the lineage key. Nothing is ever overwritten.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from shipper import envelope, objects
from shipper.archive import verify_object
from shipper.errors import IntegrityError, ObjectNotFound, PreconditionFailed
from shipper.keys import KeyProvider
from shipper.resilience import retrying
from shipper.storage import ObjectInfo, StorageBackend

#: called with (backend, key, the other object's plaintext sha256) on a lineage conflict
ConflictHook = Callable[[StorageBackend, str, str], None]


@dataclass(frozen=True)
class SealedBinlog:
    """What to upload: the staged plaintext and where its envelope goes."""

    name: str
    staged: Path
    sealed: Path
    sha256: str
    size: int
    context: Mapping[str, str]
    header_meta: Mapping[str, Any]
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class ObjectWriter:
    providers: Sequence[KeyProvider]
    level: int = 3
    chunk_size: int = 1 << 20
    verify_mode: str = "auto"

    def seal(self, b: SealedBinlog) -> None:
        """Seal the staged file into ``b.sealed`` (temp + rename: never half-written)."""
        tmp = b.sealed.with_name(b.sealed.name + ".tmp")
        with b.staged.open("rb") as fin, tmp.open("wb") as fout:
            envelope.seal(
                fin,
                fout,
                providers=self.providers,
                context=b.context,
                metadata=b.header_meta,
                level=self.level,
                chunk_size=self.chunk_size,
            )
        os.replace(tmp, b.sealed)

    def put(
        self, backend: StorageBackend, key: str, b: SealedBinlog, on_conflict: ConflictHook
    ) -> tuple[str, bool]:
        """Put ``b`` at ``key`` (or its lineage key); returns (final key, whether we wrote it)."""
        candidates = [key, objects.lineage_key(key, b.sha256)]
        for k in candidates:
            existing = stat_or_none(backend, k)
            if existing is not None:
                if existing.metadata.get("plaintext_sha256") == b.sha256:
                    return k, False  # archived by an earlier attempt
                on_conflict(backend, k, existing.metadata.get("plaintext_sha256", ""))
                continue
            if not b.sealed.exists():
                self.seal(b)
            size = b.sealed.stat().st_size
            try:
                with b.sealed.open("rb") as f:
                    retrying(functools.partial(_put, backend, k, f, size, b.metadata))
                return k, True
            except PreconditionFailed:
                # Lost a race (or the stat above was stale): decide on what is there now.
                existing = stat_or_none(backend, k)
                theirs = existing.metadata.get("plaintext_sha256", "") if existing else ""
                if theirs == b.sha256:
                    return k, False
                on_conflict(backend, k, theirs)
        raise IntegrityError(
            f"binlog {b.name}: both {candidates[0]} and its lineage key {candidates[1]} hold "
            f"other files on {backend.url}; refusing to overwrite"
        )

    def verify(self, backend: StorageBackend, key: str, b: SealedBinlog) -> None:
        """Prove the object at ``key`` holds ``b``: metadata, then a full or ranged read."""
        stat = backend.stat(key)
        if stat.metadata.get("plaintext_sha256") != b.sha256:
            raise IntegrityError(
                f"{backend.url}/{key}: metadata plaintext_sha256 does not "
                f"match the staged binlog {b.name}"
            )
        mode = self.verify_mode
        if mode == "auto":
            mode = "prefix" if backend.url.startswith(("s3://", "gs://")) else "full"
        if mode == "prefix":
            self.verify_prefix(backend, key, stat.size)
            return
        verify_object(backend, key, self.providers, b.sha256, b.size)

    def verify_prefix(self, backend: StorageBackend, key: str, size: int) -> None:
        """Prove the object decryptable without downloading it: a ranged read of the
        header and first chunk, the data key unwrapped, chunk 0 authenticated. (The
        service already checked the whole body against our checksum on upload.)"""
        probe = min(size, 64 << 10)
        with contextlib.closing(backend.open(key, 0, probe)) as f:
            data = f.read()
        header = envelope.read_header(io.BytesIO(data))
        span = min(size, envelope.first_chunk_span(header))
        if span > len(data):
            with contextlib.closing(backend.open(key, 0, span)) as f:
                data = f.read()
        envelope.verify_prefix(
            data[:span], providers=self.providers, expected_context=objects.context_for_key(key)
        )

    def put_index(
        self, backend: StorageBackend, key: str, index: bytes, b: SealedBinlog, tenant: str
    ) -> None:
        """Store the transaction index beside the binlog object, sealed like it."""
        ikey = objects.index_key(key)
        if stat_or_none(backend, ikey) is not None:
            return
        out = io.BytesIO()
        envelope.seal(
            io.BytesIO(index),
            out,
            providers=self.providers,
            context={**b.context, "kind": "txindex"},
            metadata={"binlog_name": b.name, "plaintext_sha256": b.sha256},
            level=self.level,
        )
        meta = objects.build_metadata(
            {
                "binlog_name": b.name,
                "kind": "txindex",
                "binlog_plaintext_sha256": b.sha256,
                "tenant": tenant,
            }
        )
        with contextlib.suppress(PreconditionFailed):
            retrying(lambda: _put(backend, ikey, out, len(out.getvalue()), meta))


def stat_or_none(backend: StorageBackend, key: str) -> ObjectInfo | None:
    try:
        return backend.stat(key)
    except ObjectNotFound:
        return None


def _put(
    backend: StorageBackend, key: str, f: IO[bytes], size: int, metadata: Mapping[str, str]
) -> ObjectInfo:
    f.seek(0)
    return backend.put(key, f, size=size, metadata=metadata)  # type: ignore[arg-type]
