"""Reading a restore's objects from the configured targets, primary first.

Every object is read from the first target that holds it intact: one that is
missing there (:class:`ObjectNotFound`) or fails verification there
(:class:`IntegrityError`: tampered, truncated, swapped with another object, or
a SHA-256 other than the one recorded when it was archived) is read from the
next target, and the fallback is reported (log warning + :attr:`Sources.notices`).

Nothing unauthenticated leaves this module. A base backup is spooled *sealed*
to the work dir (one download, 0600), then authenticated in full (decrypted
into a hash sink, with the encryption contexts its key implies:
:func:`shipper.objects.accepted_contexts`) before the
executor unseals it again from the spool into ``mbstream`` or the ``mariadb``
client: a flipped byte anywhere in the object is found before the first byte
reaches a server or a datadir. Binlogs go through :func:`shipper.archive.fetch_to_file`,
which renames the plaintext into place only once it authenticated.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar, cast

from shipper import envelope, objects
from shipper.archive import HashSink, fetch_to_file
from shipper.errors import IntegrityError, ObjectNotFound, RestoreError
from shipper.keys.base import KeyProvider
from shipper.restore.model import BackupInfo
from shipper.storage.base import StorageBackend

log = logging.getLogger(__name__)
T = TypeVar("T")


class Sources:
    """``stores`` in the order to try them; ``keys_in[i]`` maps a key of the first
    target to where ``stores[i]`` holds that object, when it differs (a lineage
    conflict on one target only: the manifest's placements)."""

    def __init__(
        self,
        stores: Sequence[StorageBackend],
        providers: Sequence[KeyProvider],
        keys_in: Sequence[Mapping[str, str]] = (),
    ) -> None:
        if not stores:
            raise RestoreError("no archive target to restore from: configure [[targets]]")
        self.stores = list(stores)
        self.providers = list(providers)
        self.keys_in = list(keys_in)
        #: one line per fallback, for the operator (the CLI prints them)
        self.notices: list[str] = []

    def _first_good(self, key: str, read: Callable[[StorageBackend, str], T]) -> T:
        """``read(store, key there)`` from the first target where it does not fail
        verification."""
        failures: list[str] = []
        for i, store in enumerate(self.stores):
            here = self.keys_in[i].get(key, key) if i < len(self.keys_in) else key
            try:
                got = read(store, here)
            except (ObjectNotFound, IntegrityError) as e:
                failures.append(f"{store.url}/{here}: {e}")
                if i + 1 < len(self.stores):
                    nxt = self.stores[i + 1].url
                    what = "is missing" if isinstance(e, ObjectNotFound) else "failed verification"
                    line = f"{here} {what} in {store.url} ({e}); reading it from {nxt}"
                    log.info("%s", line)
                    self.notices.append(line)
                    continue
                if len(self.stores) == 1:
                    raise
                raise IntegrityError(
                    f"{key}: no configured target holds an intact copy; nothing was "
                    "restored from it:\n  " + "\n  ".join(failures)
                ) from e
            if i:
                self.notices.append(f"{here} read from {store.url}")
            return got
        raise AssertionError("unreachable: stores is not empty")

    # -- binlogs
    def fetch_binlog(self, key: str, dest: Path, sha256: str | None, name: str) -> Path:
        """Decrypt ``key`` to ``dest`` (renamed into place once authenticated)."""

        def read(store: StorageBackend, key: str) -> Path:
            got = fetch_to_file(store, key, self.providers, dest).plaintext_sha256
            if sha256 and got != sha256:
                dest.unlink(missing_ok=True)
                raise IntegrityError(
                    f"binlog {name}: the copy in {store.url} has sha256 {got}, the "
                    f"manifest recorded {sha256}"
                )
            return dest

        return self._first_good(key, read)

    # -- base backups
    def spool_backup(self, backup: BackupInfo, spool: Path) -> StorageBackend:
        """Download the sealed backup object to ``spool`` and authenticate all of it.

        Returns the target it came from. On return ``spool`` holds an object whose
        every chunk authenticated under the context of its key and whose plaintext
        has the SHA-256 recorded for the backup (the manifest's, and the object
        metadata's); on any failure ``spool`` is removed.
        """
        key = cast(str, backup.object_key)
        contexts = objects.accepted_contexts(key)  # a key outside the layout: refused here

        def read(store: StorageBackend, _: str) -> StorageBackend:  # backups: one key
            info = store.stat(key)
            meta = objects.ObjectMeta.from_metadata(info.metadata)
            _download(store, key, spool, info.size)
            try:
                sink = HashSink()
                with spool.open("rb") as src:
                    res = envelope.unseal(
                        src,
                        cast(Any, sink),
                        providers=self.providers,
                        expected_context=contexts,
                    )
                for what, want in (
                    ("the backup record", backup.sha256),
                    ("the object metadata", meta.plaintext_sha256),
                ):
                    if want and res.plaintext_sha256 != want:
                        raise IntegrityError(
                            f"backup {backup.id}: {store.url}/{key} decrypts to sha256 "
                            f"{res.plaintext_sha256}, {what} says {want} (the object was "
                            "replaced or swapped with another backup)"
                        )
            except BaseException:
                spool.unlink(missing_ok=True)
                raise
            return store

        return self._first_good(key, read)

    def unseal_spool(self, backup: BackupInfo, spool: Path, sink: IO[bytes]) -> None:
        """Decrypt an authenticated spool (see :meth:`spool_backup`) into ``sink``."""
        key = cast(str, backup.object_key)
        with spool.open("rb") as src:
            res = envelope.unseal(
                src,
                cast(Any, sink),
                providers=self.providers,
                expected_context=objects.accepted_contexts(key),
            )
        if backup.sha256 and res.plaintext_sha256 != backup.sha256:
            # Only if the spool changed on disk between the two passes.
            raise IntegrityError(f"backup {backup.id}: spool {spool} changed while restoring")


def _download(store: StorageBackend, key: str, spool: Path, size: int) -> None:
    """Copy the stored bytes of ``key`` to ``spool`` (0600); ENOSPC says how much is needed."""
    spool.parent.mkdir(parents=True, exist_ok=True)
    spool.unlink(missing_ok=True)
    fd = os.open(spool, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, contextlib.closing(store.open(key)) as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
    except OSError as e:
        spool.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise RestoreError(
                f"no space left in {spool.parent} to spool {store.url}/{key}: it needs "
                f"{size} bytes ({size / 2**30:.2f} GiB) free; free space there or give "
                "--work-dir on a larger filesystem"
            ) from e
        raise RestoreError(f"cannot spool {store.url}/{key} to {spool}: {e}") from e
    except BaseException:
        spool.unlink(missing_ok=True)
        raise
