"""Verify one archived object from where it is stored, in one streaming pass.

The stored bytes are read once: hashed (SHA-256 and CRC32C of the *stored*
bytes, so the copy made next can be proved identical), authenticated chunk by
chunk and decrypted (the data key unwrapped with the context the key implies:
:func:`shipper.objects.accepted_contexts`), decompressed, and the plaintext
hashed and checked against the object's metadata. A binlog's plaintext is also
fed, as it streams, to the project's binlog scanner running in a second thread
through a bounded pipe, so every event's CRC32 is checked without the object
ever being held in memory (memory: the envelope's chunk plus a few pipe
buffers, whatever the object's size).

Raises :class:`~shipper.errors.IntegrityError` (or ``BinlogFormatError``) for an
object that is not what its key and metadata say; ``ObjectNotFound`` when it is
gone; ``KeyProviderError`` when the data key cannot be unwrapped (a denied or
disabled KMS key: the object is not to blame, so the caller retries).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from shipper import envelope, objects
from shipper.binlog import BinlogInfo, TransactionIndex, scan_stream
from shipper.errors import IntegrityError
from shipper.keys import KeyProvider
from shipper.records import BackupRecord
from shipper.storage import ObjectInfo, StorageBackend

#: what a binlog's plaintext pipe holds at most (blocks of the decompressor's writes)
PIPE_DEPTH = 8
#: small objects read into memory to be parsed (transaction indexes, backup records)
SMALL_LIMIT = 64 << 20


@dataclass(frozen=True)
class Verified:
    """An object that verified, and what it proved to be."""

    key: str
    kind: str
    stat: ObjectInfo
    #: SHA-256 (hex) and CRC32C (base64, as GCS reports it) of the stored bytes
    stored_sha256: str
    stored_crc32c: str
    plaintext_sha256: str
    plaintext_size: int
    #: the envelope header's (authenticated) metadata
    header: dict[str, Any] = field(default_factory=dict)
    binlog: BinlogInfo | None = None
    record: BackupRecord | None = None

    @property
    def size(self) -> int:
        return self.stat.size

    @property
    def checksum(self) -> str:
        """What the catalog records for this copy: the service's SHA-256 of the stored
        bytes when it keeps one (S3 single-part), else their CRC32C (what GCS keeps)."""
        return f"sha256:{self.stat.sha256}" if self.stat.sha256 else f"crc32c:{self.stored_crc32c}"


class StoredHash:
    """Wraps a stored object's stream: counts and hashes every byte read from it."""

    def __init__(self, src: BinaryIO) -> None:
        self.src = src
        self.sha = hashlib.sha256()
        import google_crc32c  # google-cloud-storage's dependency; what GCS reports

        self.crc: Any = google_crc32c.Checksum()  # type: ignore[no-untyped-call]
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.sha.update(data)
        self.crc.update(data)
        self.size += len(data)
        return data

    def crc32c_b64(self) -> str:
        return base64.b64encode(self.crc.digest()).decode()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.src.close()


class _Pipe:
    """A bounded in-memory pipe: the decompressor writes, the scanner thread reads."""

    def __init__(self) -> None:
        self.q: queue.Queue[bytes | None] = queue.Queue(maxsize=PIPE_DEPTH)
        self.cur = memoryview(b"")
        self.eof = False

    def write(self, data: bytes) -> int:
        if data:
            self.q.put(bytes(data))  # blocks while the scanner is behind: bounded memory
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.q.put(None)

    def readinto(self, out: memoryview) -> int:
        while not self.cur:
            if self.eof:
                return 0
            item = self.q.get()
            if item is None:
                self.eof = True
                return 0
            self.cur = memoryview(item)
        n = min(len(out), len(self.cur))
        out[:n] = self.cur[:n]
        self.cur = self.cur[n:]
        return n

    def drain(self) -> None:
        """Consume to the end, so a writer never blocks on a reader that gave up."""
        while not self.eof:
            if self.q.get() is None:
                self.eof = True


class _ScanSink:
    """Feeds plaintext to :func:`scan_stream` in a thread while unseal writes it."""

    def __init__(self, name: str) -> None:
        self.pipe = _Pipe()
        self.info: BinlogInfo | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(name,), daemon=True)
        self.thread.start()

    def _run(self, name: str) -> None:
        try:
            self.info = scan_stream(self.pipe, name=name)  # type: ignore[arg-type]
        except BaseException as e:  # reported by result(); the pipe must still drain
            self.error = e
        finally:
            self.pipe.drain()

    def write(self, data: bytes) -> int:
        return self.pipe.write(data)

    def flush(self) -> None:
        pass

    def abandon(self) -> None:
        """The writer failed: end the stream and let the thread finish (result ignored)."""
        self.pipe.close()
        self.thread.join()

    def result(self) -> BinlogInfo:
        self.pipe.close()
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.info is not None
        return self.info


class _Capped(io.BytesIO):
    def write(self, data: Any) -> int:
        if self.tell() + len(data) > SMALL_LIMIT:
            raise IntegrityError(f"object decompresses to more than {SMALL_LIMIT} bytes")
        return super().write(data)


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def verify(backend: StorageBackend, key: str, providers: Sequence[KeyProvider]) -> Verified:
    """Read ``key`` from ``backend`` in full and prove it is what its key and metadata say."""
    contexts = objects.accepted_contexts(key)  # a key outside the layout: refused first
    kind = contexts[0]["kind"]
    stat = backend.stat(key)
    meta = objects.ObjectMeta.from_metadata(stat.metadata)
    where = f"{backend.url}/{key}"
    scan: _ScanSink | None = None
    sink: Any
    if kind in ("binlog", "quarantine"):
        sink = scan = _ScanSink(contexts[0]["binlog_name"])
    elif kind in ("txindex", "backup-record"):
        sink = _Capped()
    else:
        sink = _Discard()
    src = StoredHash(backend.open(key))
    try:
        res = envelope.unseal(
            src,  # type: ignore[arg-type]
            sink,
            providers=providers,
            expected_context=contexts,
        )
    except BaseException:
        if scan is not None:
            scan.abandon()
        raise
    finally:
        src.close()
    info = scan.result() if scan is not None else None
    if src.size != stat.size:
        raise IntegrityError(f"{where}: read {src.size} bytes, the store says {stat.size}")
    header = dict(res.header.metadata)
    _check_claims(where, kind, meta, header, res.plaintext_sha256, res.plaintext_size)
    record = None
    if info is not None:
        _check_binlog(where, kind, key, info, res.plaintext_sha256)
    elif kind == "txindex":
        TransactionIndex.from_bytes(sink.getvalue())  # BinlogFormatError when it is not one
    elif kind == "backup-record":
        record = _record(where, key, sink.getvalue())
    return Verified(
        key=key,
        kind=kind,
        stat=stat,
        stored_sha256=src.sha.hexdigest(),
        stored_crc32c=src.crc32c_b64(),
        plaintext_sha256=res.plaintext_sha256,
        plaintext_size=res.plaintext_size,
        header=header,
        binlog=info,
        record=record,
    )


def _check_claims(
    where: str,
    kind: str,
    meta: objects.ObjectMeta,
    header: dict[str, Any],
    sha: str,
    size: int,
) -> None:
    """The metadata (unauthenticated) must agree with what the envelope proved."""
    if kind == "txindex":
        # An index's metadata names the binlog it indexes; so does its sealed header.
        want, got = meta.binlog_plaintext_sha256, str(header.get("plaintext_sha256", ""))
        if want and want != got:
            raise IntegrityError(
                f"{where}: metadata says it indexes sha256 {want}, its header says {got}"
            )
        return
    if kind in ("binlog", "quarantine") and not meta.plaintext_sha256:
        raise IntegrityError(f"{where}: metadata has no plaintext_sha256 to check against")
    if meta.plaintext_sha256 and meta.plaintext_sha256 != sha:
        raise IntegrityError(
            f"{where}: decrypted bytes have sha256 {sha}, metadata says {meta.plaintext_sha256}"
        )
    if meta.plaintext_size is not None and meta.plaintext_size != size:
        raise IntegrityError(
            f"{where}: decrypted to {size} bytes, metadata says {meta.plaintext_size}"
        )


def _check_binlog(where: str, kind: str, key: str, info: BinlogInfo, sha: str) -> None:
    if info.sha256 != sha:  # the scanner hashed what it parsed: it saw every byte
        raise IntegrityError(f"{where}: the binlog scanner saw sha256 {info.sha256}, not {sha}")
    if kind == "binlog" and info.crc_error_at is not None:
        raise IntegrityError(
            f"{where}: binlog event CRC32 mismatch at offset {info.crc_error_at} "
            "(a good binlog object never holds one: quarantined files go to quarantine/)"
        )
    if kind == "quarantine" and objects.context_for_key(key).get("digest") != sha[:12]:
        raise IntegrityError(f"{where}: quarantine digest in the key is not the file's sha256")


def _record(where: str, key: str, data: bytes) -> BackupRecord:
    import json

    try:
        rec = BackupRecord.from_json(json.loads(data))
    except (ValueError, TypeError) as e:
        raise IntegrityError(f"{where}: not a backup record: {e}") from e
    ctx = objects.context_for_key(key)
    if rec.id != ctx["backup_id"] or str(rec.revision) != ctx["revision"]:
        raise IntegrityError(
            f"{where}: holds the record of backup {rec.id} revision {rec.revision}, "
            "not the one its key names"
        )
    return rec
