"""The envelope header: its constants, its value types, and encoding and parsing it.

The header is the 36 fixed bytes (magic .. body_len) and the canonical JSON
body; :mod:`shipper.envelope.format` draws the whole layout. Parsing here only
checks that the bytes are well formed: nothing in a header can be trusted until
a chunk authenticates under it (``SHA-256(raw)`` is every chunk's AAD, see
:mod:`shipper.envelope.stream`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple

from shipper.errors import IntegrityError

MAGIC = b"\x89BLS\r\n\x1a\n"
FORMAT_VERSION = 1
COMPRESSION_ZSTD = 1
CIPHER_AES256GCM_STREAM = 1

SALT_SIZE = 16
MIN_CHUNK_SIZE = 1
MAX_CHUNK_SIZE = 64 << 20
MAX_BODY_LEN = 16 << 20

_FIXED = struct.Struct(">8sHBBI16sI")  # magic .. body_len: 36 bytes


class WrappedKey(NamedTuple):
    """The DEK wrapped by one provider: unpacks as ``(kind, key_id, wrapped)``."""

    kind: str
    key_id: str
    wrapped: bytes


@dataclass(frozen=True)
class EnvelopeHeader:
    """A parsed header. ``raw`` is the exact header bytes (hashed into every chunk's AAD)."""

    format_version: int
    compression: str
    cipher: str
    chunk_size: int
    salt: bytes
    context: dict[str, str]
    metadata: dict[str, Any]
    wrapped_keys: tuple[WrappedKey, ...]
    level: int | None
    raw: bytes = field(repr=False)

    @property
    def header_size(self) -> int:
        return len(self.raw)

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.raw).digest()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (for ``inspect --json``); wrapped keys shown by size only."""
        return {
            "format_version": self.format_version,
            "compression": self.compression,
            "level": self.level,
            "cipher": self.cipher,
            "chunk_size": self.chunk_size,
            "header_size": self.header_size,
            "salt": self.salt.hex(),
            "context": dict(self.context),
            "metadata": dict(self.metadata),
            "wrapped_keys": [
                {"kind": k.kind, "key_id": k.key_id, "wrapped_bytes": len(k.wrapped)}
                for k in self.wrapped_keys
            ],
        }


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, ASCII only (documented in docs/format.md)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def check_context(context: Mapping[str, str]) -> dict[str, str]:
    """The encryption context as a plain dict; TypeError unless it maps str to str."""
    out: dict[str, str] = {}
    for k, v in context.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"encryption context must map str to str, got {k!r}: {v!r}")
        out[k] = v
    return out


def encode_header(
    *,
    chunk_size: int,
    salt: bytes,
    context: Mapping[str, str],
    metadata: Mapping[str, Any],
    wrapped_keys: Sequence[WrappedKey],
    level: int,
) -> EnvelopeHeader:
    """The header for these fields; ``.raw`` is the bytes to write.

    ``context`` must already have passed :func:`check_context`. A TypeError
    means ``metadata`` is not JSON-serialisable.
    """
    body = canonical_json(
        {
            "context": dict(context),
            "keys": [
                {
                    "kind": k.kind,
                    "key_id": k.key_id,
                    "wrapped": base64.b64encode(k.wrapped).decode(),
                }
                for k in wrapped_keys
            ],
            "level": level,
            "metadata": dict(metadata),
        }
    )
    if len(body) > MAX_BODY_LEN:
        raise ValueError(f"envelope header body is {len(body)} bytes (limit {MAX_BODY_LEN})")
    fixed = _FIXED.pack(
        MAGIC,
        FORMAT_VERSION,
        COMPRESSION_ZSTD,
        CIPHER_AES256GCM_STREAM,
        chunk_size,
        salt,
        len(body),
    )
    # Parsed back, so a sealer's header is exactly the one a reader will see.
    return _parse_body(fixed + body, chunk_size, salt)


def _parse_fixed(fixed: bytes) -> tuple[int, bytes, int]:
    """Check the 36 fixed bytes; return (chunk_size, salt, body_len)."""
    if len(fixed) < _FIXED.size:
        if MAGIC.startswith(fixed[: len(MAGIC)]):
            raise IntegrityError(
                f"envelope truncated in the header: {len(fixed)} of {_FIXED.size} fixed bytes"
            )
        raise IntegrityError("not a binlog-shipper envelope (bad magic)")
    magic, version, comp, cipher, chunk_size, salt, body_len = _FIXED.unpack(fixed)
    if magic != MAGIC:
        raise IntegrityError("not a binlog-shipper envelope (bad magic)")
    if version != FORMAT_VERSION:
        raise IntegrityError(
            f"envelope format version {version} is not supported (this build reads "
            f"{FORMAT_VERSION}); upgrade binlog-shipper"
        )
    if comp != COMPRESSION_ZSTD:
        raise IntegrityError(f"envelope header: unknown compression id {comp}")
    if cipher != CIPHER_AES256GCM_STREAM:
        raise IntegrityError(f"envelope header: unknown cipher id {cipher}")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise IntegrityError(f"envelope header: chunk_size {chunk_size} out of range")
    if body_len > MAX_BODY_LEN:
        raise IntegrityError(f"envelope header: body length {body_len} out of range")
    return chunk_size, salt, body_len


def _parse_body(raw: bytes, chunk_size: int, salt: bytes) -> EnvelopeHeader:
    body = raw[_FIXED.size :]
    try:
        doc = json.loads(body.decode("ascii"))
        context = doc["context"]
        metadata = doc["metadata"]
        level = doc["level"]
        keys = tuple(
            WrappedKey(
                str(k["kind"]), str(k["key_id"]), base64.b64decode(k["wrapped"], validate=True)
            )
            for k in doc["keys"]
        )
        if not isinstance(metadata, dict) or not isinstance(context, dict):
            raise TypeError("context and metadata must be objects")
        context = check_context(context)
        if level is not None and not isinstance(level, int):
            raise TypeError("level must be an integer")
    except (ValueError, KeyError, TypeError, RecursionError, binascii.Error) as exc:
        raise IntegrityError(f"envelope header body is malformed: {exc}") from exc
    return EnvelopeHeader(
        format_version=FORMAT_VERSION,
        compression="zstd",
        cipher="aes-256-gcm",
        chunk_size=chunk_size,
        salt=salt,
        context=context,
        metadata=metadata,
        wrapped_keys=keys,
        level=level,
        raw=raw,
    )


def parse_header(data: bytes) -> EnvelopeHeader:
    """Parse the header at the start of ``data`` (which may hold more bytes after it)."""
    chunk_size, salt, body_len = _parse_fixed(bytes(data[: _FIXED.size]))
    end = _FIXED.size + body_len
    if len(data) < end:
        raise IntegrityError(f"envelope truncated in the header: {len(data)} of {end} header bytes")
    return _parse_body(bytes(data[:end]), chunk_size, salt)


def read_exact(src: BinaryIO, n: int) -> bytes:
    """``n`` bytes from ``src``, or fewer only where it ends."""
    parts = []
    while n > 0:
        b = src.read(n)
        if not b:
            break
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def read_header(src: BinaryIO) -> EnvelopeHeader:
    """Read and parse only the header; ``src`` is left at the first chunk. Not authenticated."""
    fixed = read_exact(src, _FIXED.size)
    chunk_size, salt, body_len = _parse_fixed(fixed)
    body = read_exact(src, body_len)
    if len(body) < body_len:
        raise IntegrityError(
            f"envelope truncated in the header: {_FIXED.size + len(body)} of "
            f"{_FIXED.size + body_len} header bytes"
        )
    return _parse_body(fixed + body, chunk_size, salt)
