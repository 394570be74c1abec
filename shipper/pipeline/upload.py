"""Putting a sealed binlog into a backend, and proving it is there.

Uploads are conditional. When the key is taken, the stored object's
``plaintext_sha256`` metadata decides: different means another file claimed
the name (RESET MASTER, a rebuilt server): the conflict is reported and ours
goes to the lineage key. Equal means an earlier attempt (a crash after upload,
a lost manifest) may already have archived this very file -- but metadata is
only a claim, so the object is read back in full (every chunk authenticated,
the plaintext hashed) before it counts as archived. One that fails is left
exactly as it is (a target's existing object is never overwritten or deleted)
and the binlog is not committed. An existing transaction index is likewise
authenticated and compared, never skipped.

Each object is sealed with the context of the key it is written to
(:func:`shipper.objects.context_for_key`), so a lineage placement is re-sealed
for the lineage key.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from shipper import envelope, objects
from shipper.archive import verify_object
from shipper.errors import IntegrityError, KeyProviderError, ObjectNotFound, PreconditionFailed
from shipper.keys import KeyProvider
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
    #: no earlier attempt got as far as staging this binlog, so nothing of ours can be
    #: at its key yet: put it without asking first (another file there still answers
    #: PreconditionFailed); after an interrupted attempt, stat first, so an object
    #: already there is verified instead of uploaded again
    fresh: bool = False


@dataclass(frozen=True)
class ObjectWriter:
    providers: Sequence[KeyProvider]
    level: int = 3
    chunk_size: int = 1 << 20
    verify_mode: str = "auto"
    #: (target, key, sha256) of existing objects verified in full by this writer, so
    #: the verify step right after does not download them a second time
    _verified: set[tuple[str, str, str]] = field(default_factory=set, compare=False, repr=False)

    def seal(self, b: SealedBinlog, key: str | None = None) -> None:
        """Seal the staged file into ``b.sealed`` for ``key`` (default: ``b.context``);
        temp + rename, so it is never half-written."""
        context = objects.context_for_key(key) if key is not None else b.context
        tmp = b.sealed.with_name(b.sealed.name + ".tmp")
        with b.staged.open("rb") as fin, tmp.open("wb") as fout:
            envelope.seal(
                fin,
                fout,
                providers=self.providers,
                context=context,
                metadata=b.header_meta,
                level=self.level,
                chunk_size=self.chunk_size,
            )
        os.replace(tmp, b.sealed)

    def _sealed_for(self, b: SealedBinlog, key: str) -> None:
        """Make ``b.sealed`` hold an envelope sealed for ``key`` (a file left by an
        earlier attempt may be sealed for the other key, or by the previous release)."""
        if b.sealed.exists():
            try:
                with b.sealed.open("rb") as f:
                    if envelope.read_header(f).context == objects.context_for_key(key):
                        return
            except IntegrityError:
                pass  # not a whole envelope: seal it again
        self.seal(b, key)

    def put(
        self, backend: StorageBackend, key: str, b: SealedBinlog, on_conflict: ConflictHook
    ) -> tuple[str, bool]:
        """Put ``b`` at ``key`` (or its lineage key); returns (final key, whether we wrote it).

        An object already there with our SHA-256 is verified in full first
        (:meth:`verify_existing`); IntegrityError if it does not hold ``b``.
        """
        candidates = [key, objects.lineage_key(key, b.sha256)]
        for k in candidates:
            existing = None if b.fresh and k == key else stat_or_none(backend, k)
            if existing is not None:
                theirs = objects.ObjectMeta.from_metadata(existing.metadata).plaintext_sha256
                if theirs == b.sha256:
                    if not self._is_our_envelope(backend, k, existing, b):
                        self.verify_existing(backend, k, b)
                    return k, False  # archived by an earlier attempt
                on_conflict(backend, k, theirs)
                continue
            self._sealed_for(b, k)
            size = b.sealed.stat().st_size
            try:
                with b.sealed.open("rb") as f:
                    _put(backend, k, f, size, b.metadata)  # retried by the backend's wrapper
                return k, True
            except PreconditionFailed:
                # Lost a race (or the stat above was stale): decide on what is there now.
                existing = stat_or_none(backend, k)
                meta = objects.ObjectMeta.from_metadata(existing.metadata if existing else {})
                if meta.plaintext_sha256 == b.sha256:
                    if existing is None or not self._is_our_envelope(backend, k, existing, b):
                        self.verify_existing(backend, k, b)
                    return k, False
                on_conflict(backend, k, meta.plaintext_sha256)
        raise IntegrityError(
            f"binlog {b.name}: both {candidates[0]} and its lineage key {candidates[1]} hold "
            f"other files on {backend.url}; refusing to overwrite"
        )

    def _is_our_envelope(
        self, backend: StorageBackend, key: str, existing: ObjectInfo, b: SealedBinlog
    ) -> bool:
        """Whether the object at ``key`` is, byte for byte, the envelope we sealed for it
        (``b.sealed``): a put of ours that landed while its answer was lost (a reset, a
        timeout). Only where the service checked the SHA-256 of the body on receipt and
        keeps it for the whole object (S3, single PUT: ``capabilities.verify_mode`` is
        "prefix" and ``ObjectInfo.sha256`` is set): equal to our file's, the stored
        bytes are ours, so nothing needs downloading; :meth:`verify` then reads the
        header and first chunk back, as after any upload. Elsewhere, or when they
        differ, the object is read back in full (:meth:`verify_existing`)."""
        if existing.sha256 is None or backend.capabilities.verify_mode != "prefix":
            return False
        try:
            with b.sealed.open("rb") as f:
                if envelope.read_header(f).context != objects.context_for_key(key):
                    return False
                f.seek(0)
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except (OSError, IntegrityError):
            return False
        return digest == existing.sha256

    def verify_existing(self, backend: StorageBackend, key: str, b: SealedBinlog) -> None:
        """Prove that an object we did not write in this attempt holds ``b``: download it,
        authenticate every chunk, compare size and SHA-256. Its metadata alone proves
        nothing: a crash, a bad disk or another writer may have left anything there."""
        try:
            verify_object(backend, key, self.providers, b.sha256, b.size)
            self._verified.add((backend.url, key, b.sha256))
        except (IntegrityError, KeyProviderError) as e:
            raise type(e)(
                f"{backend.url}/{key} already exists and claims to hold binlog {b.name} "
                f"(sha256 {b.sha256}), but it does not verify: {e}. It was NOT counted as "
                "archived and was left untouched (the shipper never overwrites or deletes a "
                "target's objects): inspect it, move it aside by hand, then run again"
            ) from e

    def verify(self, backend: StorageBackend, key: str, b: SealedBinlog) -> ObjectInfo:
        """Prove the object at ``key`` holds ``b``: metadata, then a full or ranged read.
        Returns what the target says of it (version, size)."""
        stat = backend.stat(key)
        if objects.ObjectMeta.from_metadata(stat.metadata).plaintext_sha256 != b.sha256:
            raise IntegrityError(
                f"{backend.url}/{key}: metadata plaintext_sha256 does not "
                f"match the staged binlog {b.name}"
            )
        if (backend.url, key, b.sha256) in self._verified:
            # read back in full moments ago by verify_existing, and objects are immutable
            self._verified.discard((backend.url, key, b.sha256))
            return stat
        mode = self.verify_mode
        if mode == "auto":
            mode = backend.capabilities.verify_mode
        if mode == "prefix":
            self.verify_prefix(backend, key, stat.size)
        else:
            verify_object(backend, key, self.providers, b.sha256, b.size)
        return stat

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
            data[:span],
            providers=self.providers,
            expected_context=objects.accepted_contexts(key),
        )

    def put_index(
        self, backend: StorageBackend, key: str, index: bytes, b: SealedBinlog, tenant: str
    ) -> None:
        """Store the transaction index beside the binlog object, sealed like it; an
        index already there is authenticated and compared with ours, never skipped.
        The put is conditional, so no stat is needed first: an index is one small
        request, and one already there answers PreconditionFailed."""
        ikey = objects.index_key(key)
        out = io.BytesIO()
        envelope.seal(
            io.BytesIO(index),
            out,
            providers=self.providers,
            context=objects.context_for_key(ikey),
            metadata={"binlog_name": b.name, "plaintext_sha256": b.sha256},
            level=self.level,
        )
        meta = objects.build_metadata(
            {
                "binlog_name": b.name,
                "kind": "txindex",
                "binlog_plaintext_sha256": b.sha256,
                "tenant": tenant,
                "format_version": objects.FORMAT_VERSION,
            }
        )
        try:
            _put(backend, ikey, out, len(out.getvalue()), meta)
            return
        except PreconditionFailed:
            pass  # an earlier attempt got there first: check what it wrote
        self.verify_index(backend, ikey, index, b)

    def verify_index(
        self, backend: StorageBackend, ikey: str, index: bytes, b: SealedBinlog
    ) -> None:
        """The index at ``ikey`` must authenticate, name our binlog and hold ``index``."""
        out = io.BytesIO()
        try:
            with contextlib.closing(backend.open(ikey)) as src:
                res = envelope.unseal(
                    src,
                    out,
                    providers=self.providers,
                    expected_context=objects.accepted_contexts(ikey),
                )
            theirs = res.header.metadata.get("plaintext_sha256")
            if theirs != b.sha256:
                raise IntegrityError(f"it indexes another binlog (sha256 {theirs})")
            if out.getvalue() != index:
                raise IntegrityError("its entries differ from the index of the staged binlog")
        except (IntegrityError, KeyProviderError) as e:
            raise type(e)(
                f"{backend.url}/{ikey} already exists but is not the transaction index of "
                f"binlog {b.name} (sha256 {b.sha256}): {e}. The binlog was NOT committed and "
                "the object was left untouched: inspect it, move it aside by hand, then run again"
            ) from e


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
