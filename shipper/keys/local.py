"""The local keyring: a 32-byte key-encryption key (KEK) in a file, mode 0600.

The embedded default provider. The file is text, so an operator can see what
it is and back it up::

    # binlog-shipper local keyring. ...comment lines start with '#'
    binlog-shipper-keyring v1
    kek <base64 of the 32-byte KEK>

A wrapped DEK is ``version (0x01) || nonce (12) || AES-256-GCM(KEK, nonce, DEK,
aad=canonical JSON of the encryption context)`` = 61 bytes. ``key_id`` is the
first 16 hex digits of ``SHA-256(b"binlog-shipper-keyring" || KEK)``: it names
the key without revealing it. docs/format.md has the details and a test vector.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shipper.errors import ConfigError, KeyProviderError

__all__ = ["LocalKeyring"]

KEK_SIZE = 32
WRAP_VERSION = 1
NONCE_SIZE = 12
HEADER_LINE = "binlog-shipper-keyring v1"
_FINGERPRINT_DOMAIN = b"binlog-shipper-keyring"
_MAX_FILE = 64 * 1024

_BANNER = (
    "# binlog-shipper local keyring: the key-encryption key for every archived object.\n"
    "# Without this file (or another configured key provider) the archive cannot be\n"
    "# decrypted. Keep a copy somewhere safe, readable only by its owner (mode 0600).\n"
)


def context_aad(context: Mapping[str, str]) -> bytes:
    """Canonical JSON of the encryption context: sorted keys, no spaces, ASCII."""
    return json.dumps(
        dict(context), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def fingerprint(kek: bytes) -> str:
    return hashlib.sha256(_FINGERPRINT_DOMAIN + kek).hexdigest()[:16]


class LocalKeyring:
    """A KeyProvider backed by a KEK in a local file."""

    kind = "local"

    def __init__(self, kek: bytes, path: Path | str | None = None) -> None:
        if len(kek) != KEK_SIZE:
            raise KeyProviderError(f"keyring {path}: key is {len(kek)} bytes, not {KEK_SIZE}")
        self._aead = AESGCM(kek)
        self._kek = kek
        self.path = Path(path) if path is not None else None
        self.key_id = fingerprint(kek)

    def __repr__(self) -> str:
        return f"LocalKeyring(path={str(self.path)!r}, key_id={self.key_id!r})"

    # ------------------------------------------------------------------ files

    @classmethod
    def create(cls, path: Path | str) -> LocalKeyring:
        """Write a new random KEK to ``path`` (mode 0600); never overwrites an existing file.

        The key is written to a temporary file in the same directory, fsynced,
        then hard-linked into place: link() fails if the name exists, and a
        crash never leaves a half-written keyring under the real name.
        """
        path = Path(path)
        kek = os.urandom(KEK_SIZE)
        text = f"{_BANNER}{HEADER_LINE}\nkek {base64.b64encode(kek).decode()}\n"
        if path.exists() or path.is_symlink():
            raise KeyProviderError(f"keyring {path} already exists; refusing to overwrite it")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise KeyProviderError(f"cannot create keyring {path}: {exc.strerror}") from exc
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeyProviderError(
                    f"keyring {path} already exists; refusing to overwrite it"
                ) from None
            except OSError as exc:
                raise KeyProviderError(f"cannot create keyring {path}: {exc.strerror}") from exc
        finally:
            os.unlink(tmp)
        _fsync_dir(path.parent)
        return cls(kek, path)

    @classmethod
    def load(cls, path: Path | str) -> LocalKeyring:
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise KeyProviderError(f"keyring {path} not found") from None
        except OSError as exc:
            raise KeyProviderError(f"keyring {path} cannot be opened: {exc.strerror}") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise KeyProviderError(f"keyring {path} is not a regular file")
            if st.st_mode & 0o077:
                mode = stat.S_IMODE(st.st_mode)
                raise KeyProviderError(
                    f"keyring {path} is accessible by group or others (mode {mode:04o}); "
                    f"it must be readable by its owner only: chmod 600 {path}"
                )
            data = os.read(fd, _MAX_FILE + 1)
        except OSError as exc:
            raise KeyProviderError(f"keyring {path} cannot be read: {exc.strerror}") from exc
        finally:
            os.close(fd)
        return cls(_parse(data, path), path)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> LocalKeyring:
        path = cfg.get("path")
        if not isinstance(path, str | os.PathLike) or not str(path):
            raise ConfigError("keys.path must name the local keyring file")
        return cls.load(Path(path).expanduser())

    # ------------------------------------------------------------------ KeyProvider

    def wrap(self, dek: bytes, context: Mapping[str, str]) -> bytes:
        return self._wrap_with_nonce(dek, context, os.urandom(NONCE_SIZE))

    def _wrap_with_nonce(self, dek: bytes, context: Mapping[str, str], nonce: bytes) -> bytes:
        """wrap() with a chosen nonce: for test vectors only (a repeated nonce breaks GCM)."""
        return bytes([WRAP_VERSION]) + nonce + self._aead.encrypt(nonce, dek, context_aad(context))

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        if len(wrapped) < 1 + NONCE_SIZE + 16 or wrapped[0] != WRAP_VERSION:
            raise KeyProviderError(
                f"keyring {self.path} (key {self.key_id}): wrapped key is not a local-keyring "
                f"v{WRAP_VERSION} blob"
            )
        nonce, ct = wrapped[1 : 1 + NONCE_SIZE], wrapped[1 + NONCE_SIZE :]
        try:
            return self._aead.decrypt(nonce, ct, context_aad(context))
        except InvalidTag:
            raise KeyProviderError(
                f"keyring {self.path} (key {self.key_id}) cannot unwrap the data key: "
                "it was wrapped by another key, or for another encryption context"
            ) from None


def _parse(data: bytes, path: Path) -> bytes:
    bad = f"keyring {path} is not a binlog-shipper keyring"
    if len(data) > _MAX_FILE:
        raise KeyProviderError(f"{bad} (larger than {_MAX_FILE} bytes)")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyProviderError(f"{bad} (not ASCII text)") from None
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines or lines[0] != HEADER_LINE:
        raise KeyProviderError(f"{bad} (first line must be {HEADER_LINE!r})")
    if len(lines) != 2 or not lines[1].startswith("kek "):
        raise KeyProviderError(f"{bad} (expected one 'kek <base64>' line)")
    try:
        kek = base64.b64decode(lines[1][4:].strip(), validate=True)
    except binascii.Error:
        raise KeyProviderError(f"{bad} (kek is not valid base64)") from None
    if len(kek) != KEK_SIZE:
        raise KeyProviderError(f"{bad} (kek is {len(kek)} bytes, not {KEK_SIZE})")
    return kek


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
