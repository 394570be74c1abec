"""The archive object format ("envelope"), version 1.

An envelope is a header followed by a stream of AES-256-GCM chunks. All
integers are unsigned big-endian. docs/format.md is the normative description
with a test vector; this drawing is the summary::

    offset  size  field
    0       8     magic           89 42 4C 53 0D 0A 1A 0A  ("\\x89BLS\\r\\n\\x1a\\n")
    8       2     format_version  1
    10      1     compression     1 = zstd
    11      1     cipher          1 = AES-256-GCM, STREAM chunking, HKDF-SHA256 subkey
    12      4     chunk_size      bytes of stream plaintext per chunk (1 .. 64 MiB)
    16      16    salt            random per object
    32      4     body_len        length of the JSON body (<= 16 MiB)
    36      n     body            canonical JSON: {"context", "keys", "level", "metadata"}
    36+n    ...   chunks          chunk i = AES-256-GCM(K, nonce_i, P_i, aad=SHA-256(header))

The *stream plaintext* P is the zstd frame of the binlog followed by a 40-byte
trailer (plaintext size u64, plaintext SHA-256). P is cut into chunks of
exactly ``chunk_size`` bytes; the last chunk holds the remaining 1..chunk_size
bytes. On the wire each chunk is its ciphertext plus the 16-byte tag, with no
length prefix: a reader knows a chunk is the last one because the object ends
after it.

Keys: a fresh 32-byte data key (DEK) per object, wrapped by every provider (any
one can unwrap it). ``HKDF-SHA256(ikm=DEK, salt=salt, info="binlog-shipper
envelope v1")`` gives 39 bytes: the 32-byte chunk key K and a 7-byte nonce
prefix. ``nonce_i = prefix(7) || i (u32) || last (u8: 1 for the final chunk,
else 0)``.

What this authenticates: every header byte is hashed into every chunk's AAD,
so a changed context, metadata or wrapped key fails at chunk 0. The chunk index
and last flag live in the nonce (GCM fails under any other nonce), so reordered,
dropped or duplicated chunks fail, truncation at a chunk boundary fails (the new
final chunk was sealed with last=0), and trailing bytes fail (the real final
chunk is then opened with last=0). The header hash and the salt-derived key
stop chunks being spliced between objects. The trailer checks the decompressor
end to end.

Until a chunk authenticates, nothing in the header can be trusted:
``read_header`` only parses; ``verify_prefix`` and ``unseal`` authenticate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, NamedTuple, cast

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shipper.errors import IntegrityError, KeyProviderError
from shipper.keys.base import KeyProvider

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "EnvelopeHeader",
    "SealResult",
    "UnsealResult",
    "WrappedKey",
    "first_chunk_span",
    "read_header",
    "seal",
    "unseal",
    "verify_prefix",
]

MAGIC = b"\x89BLS\r\n\x1a\n"
FORMAT_VERSION = 1
COMPRESSION_ZSTD = 1
CIPHER_AES256GCM_STREAM = 1

DEK_SIZE = 32
#: What a reader expects of the header's context: one mapping, or any of several.
ExpectedContext = Mapping[str, str] | Sequence[Mapping[str, str]]
SALT_SIZE = 16
TAG_SIZE = 16
TRAILER = struct.Struct(">Q32s")  # plaintext size, plaintext SHA-256
MIN_CHUNK_SIZE = 1
MAX_CHUNK_SIZE = 64 << 20
MAX_BODY_LEN = 16 << 20
MAX_CHUNKS = 1 << 32

_FIXED = struct.Struct(">8sHBBI16sI")  # magic .. body_len: 36 bytes
_HKDF_INFO = b"binlog-shipper envelope v1"
_NONCE_PREFIX_SIZE = 7
_READ_SIZE = 1 << 20


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


@dataclass(frozen=True)
class SealResult:
    plaintext_sha256: str
    plaintext_size: int
    envelope_size: int
    header: EnvelopeHeader
    chunk_count: int


@dataclass(frozen=True)
class UnsealResult:
    plaintext_sha256: str
    plaintext_size: int
    header: EnvelopeHeader


# ---------------------------------------------------------------------------- header


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, ASCII only (documented in docs/format.md)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _check_context(context: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in context.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"encryption context must map str to str, got {k!r}: {v!r}")
        out[k] = v
    return out


def _encode_header(
    *,
    chunk_size: int,
    salt: bytes,
    context: Mapping[str, str],
    metadata: Mapping[str, Any],
    wrapped_keys: Sequence[WrappedKey],
    level: int,
) -> bytes:
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
    return fixed + body


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
        context = _check_context(context)
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


def _read_exact(src: BinaryIO, n: int) -> bytes:
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
    fixed = _read_exact(src, _FIXED.size)
    chunk_size, salt, body_len = _parse_fixed(fixed)
    body = _read_exact(src, body_len)
    if len(body) < body_len:
        raise IntegrityError(
            f"envelope truncated in the header: {_FIXED.size + len(body)} of "
            f"{_FIXED.size + body_len} header bytes"
        )
    return _parse_body(fixed + body, chunk_size, salt)


def first_chunk_span(header: EnvelopeHeader) -> int:
    """Bytes from offset 0 a ranged read needs for :func:`verify_prefix` (header + chunk 0)."""
    return header.header_size + header.chunk_size + TAG_SIZE


# ---------------------------------------------------------------------------- chunks


class _ChunkCipher:
    """AES-256-GCM under the HKDF subkey; nonce = prefix || index || last flag."""

    def __init__(self, dek: bytes, header: EnvelopeHeader) -> None:
        okm = HKDF(
            algorithm=hashes.SHA256(),
            length=32 + _NONCE_PREFIX_SIZE,
            salt=header.salt,
            info=_HKDF_INFO,
        ).derive(dek)
        self._aead = AESGCM(okm[:32])
        self._prefix = okm[32:]
        self._aad = header.digest
        self._start = header.header_size
        self._span = header.chunk_size + TAG_SIZE

    def nonce(self, index: int, last: bool) -> bytes:
        if index >= MAX_CHUNKS:
            raise ValueError("envelope exceeds 2**32 chunks; use a larger chunk_size")
        return self._prefix + struct.pack(">IB", index, 1 if last else 0)

    def seal(self, index: int, data: bytes | memoryview, last: bool) -> bytes:
        return self._aead.encrypt(self.nonce(index, last), data, self._aad)

    def open(self, index: int, data: bytes | memoryview, last: bool) -> bytes:
        try:
            return self._aead.decrypt(self.nonce(index, last), data, self._aad)
        except InvalidTag:
            offset = self._start + index * self._span
            what = "final chunk" if last else "chunk"
            raise IntegrityError(
                f"envelope {what} {index} at offset {offset} ({len(data)} bytes) failed "
                "authentication: tampered, truncated, reordered or from another object"
            ) from None


# ---------------------------------------------------------------------------- seal


def seal(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    providers: Sequence[KeyProvider],
    context: Mapping[str, str],
    metadata: Mapping[str, Any] | None = None,
    level: int = 3,
    chunk_size: int = 1 << 20,
) -> SealResult:
    """Compress and encrypt ``src`` into ``dst`` under a fresh DEK wrapped by every provider."""
    return _seal(
        src,
        dst,
        providers=providers,
        context=context,
        metadata=metadata,
        level=level,
        chunk_size=chunk_size,
        dek=os.urandom(DEK_SIZE),
        salt=os.urandom(SALT_SIZE),
    )


def _seal(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    providers: Sequence[KeyProvider],
    context: Mapping[str, str],
    metadata: Mapping[str, Any] | None,
    level: int,
    chunk_size: int,
    dek: bytes,
    salt: bytes,
) -> SealResult:
    """:func:`seal` with the DEK and salt injected (tests and test vectors only)."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}")
    if len(dek) != DEK_SIZE or len(salt) != SALT_SIZE:
        raise ValueError("dek must be 32 bytes and salt 16 bytes")
    if not providers:
        raise KeyProviderError("no key provider given: the data key would be unrecoverable")
    ctx = _check_context(context)
    wrapped = []
    for p in providers:
        try:
            wrapped.append(WrappedKey(p.kind, p.key_id, p.wrap(dek, ctx)))
        except KeyProviderError:
            raise
        except Exception as exc:  # a provider bug must not pass as success
            raise KeyProviderError(
                f"{p.kind}:{p.key_id} failed to wrap the data key: {exc}"
            ) from exc
    try:
        raw = _encode_header(
            chunk_size=chunk_size,
            salt=salt,
            context=ctx,
            metadata=metadata or {},
            wrapped_keys=wrapped,
            level=level,
        )
    except TypeError as exc:
        raise TypeError(f"envelope metadata must be JSON-serialisable: {exc}") from exc
    header = _parse_body(raw, chunk_size, salt)
    cipher = _ChunkCipher(dek, header)
    dst.write(raw)
    written = len(raw)

    sha = hashlib.sha256()
    size = 0
    index = 0
    pending = bytearray()  # stream plaintext not yet sealed: always < 2 chunks + one read
    compressor = zstandard.ZstdCompressor(level=level).compressobj()
    read_size = max(_READ_SIZE, chunk_size)
    while True:
        block = src.read(read_size)
        if not block:
            break
        sha.update(block)
        size += len(block)
        pending += compressor.compress(block)
        # Seal only when more than a chunk is waiting: the final chunk must be
        # sealed with last=1, and it may be exactly chunk_size long.
        while len(pending) > chunk_size:
            with memoryview(pending) as view:
                ct = cipher.seal(index, view[:chunk_size], last=False)
            dst.write(ct)
            written += len(ct)
            del pending[:chunk_size]
            index += 1
    pending += compressor.flush()
    digest = sha.digest()
    pending += TRAILER.pack(size, digest)
    while True:
        last = len(pending) <= chunk_size
        with memoryview(pending) as view:
            ct = cipher.seal(index, view[:chunk_size], last=last)
        dst.write(ct)
        written += len(ct)
        index += 1
        if last:
            break
        del pending[:chunk_size]
    return SealResult(
        plaintext_sha256=digest.hex(),
        plaintext_size=size,
        envelope_size=written,
        header=header,
        chunk_count=index,
    )


# ---------------------------------------------------------------------------- unseal


def unwrap_dek(
    header: EnvelopeHeader,
    providers: Sequence[KeyProvider],
    expected_context: ExpectedContext | None = None,
) -> bytes:
    """Unwrap the DEK with the first provider that can; KeyProviderError lists every attempt.

    ``expected_context`` is one mapping or a sequence of them (a reader that
    accepts an older context shape too); the header's must equal one exactly.
    """
    if expected_context is not None:
        accepted = (
            [dict(expected_context)]
            if isinstance(expected_context, Mapping)
            else [dict(c) for c in expected_context]
        )
        if header.context not in accepted:
            want = " or ".join(str(c) for c in accepted)
            raise IntegrityError(
                f"envelope context {header.context} differs from the expected {want}"
            )
    if not providers:
        raise KeyProviderError("no key provider given to unwrap the data key")
    tried: list[str] = []
    for p in providers:
        # Same kind and key id first; then other entries of the same kind (a KMS
        # key may be named by alias in config and by ARN in the header).
        same_kind = [w for w in header.wrapped_keys if w.kind == p.kind]
        same_kind.sort(key=lambda w: w.key_id != p.key_id)
        if not same_kind:
            tried.append(f"{p.kind}:{p.key_id}: no {p.kind} key in the envelope")
            continue
        for w in same_kind:
            try:
                dek = p.unwrap(w.wrapped, header.context)
            except KeyProviderError as exc:
                tried.append(f"{p.kind}:{p.key_id} (entry {w.key_id}): {exc}")
                continue
            except Exception as exc:
                tried.append(f"{p.kind}:{p.key_id} (entry {w.key_id}): {type(exc).__name__}: {exc}")
                continue
            if len(dek) != DEK_SIZE:
                tried.append(f"{p.kind}:{p.key_id}: unwrapped key has {len(dek)} bytes, not 32")
                continue
            return dek
    held = ", ".join(f"{w.kind}:{w.key_id}" for w in header.wrapped_keys) or "none"
    raise KeyProviderError(
        f"no key provider could unwrap the data key (envelope holds: {held}); tried: "
        + "; ".join(tried)
    )


class _HashingWriter:
    """Counts and hashes the decompressed plaintext on its way to ``dst``."""

    def __init__(self, dst: BinaryIO) -> None:
        self.dst = dst
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.dst.write(data)
        return len(data)

    def flush(self) -> None:
        pass


def unseal(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    providers: Sequence[KeyProvider],
    expected_context: ExpectedContext | None = None,
) -> UnsealResult:
    """Authenticate, decrypt and decompress ``src`` into ``dst``.

    Streams: plaintext of earlier chunks may reach ``dst`` before a later chunk
    fails, so write to a temporary file and discard it on error. Never returns
    for an object that is tampered, truncated, reordered or has trailing bytes.
    """
    header = read_header(src)
    cipher = _ChunkCipher(unwrap_dek(header, providers, expected_context), header)
    span = header.chunk_size + TAG_SIZE
    out = _HashingWriter(dst)
    dec = zstandard.ZstdDecompressor().stream_writer(
        cast(IO[bytes], out), write_size=_READ_SIZE, closefd=False
    )
    tail = b""  # last TRAILER.size bytes of stream plaintext seen so far
    index = 0
    offset = header.header_size
    block = _read_exact(src, span)
    try:
        while True:
            if len(block) < span:
                last = True
                nxt = b""
            else:
                nxt = _read_exact(src, span)
                last = not nxt
            if last and len(block) <= TAG_SIZE:
                raise IntegrityError(
                    f"envelope truncated: {len(block)} bytes at offset {offset} where chunk "
                    f"{index} should be"
                )
            plain = cipher.open(index, block, last)
            data = tail + plain
            if last:
                if len(data) < TRAILER.size:
                    raise IntegrityError("envelope final chunk is too short for the trailer")
                dec.write(data[: -TRAILER.size])
                tail = data[-TRAILER.size :]
                break
            dec.write(data[: -TRAILER.size] if len(data) > TRAILER.size else b"")
            tail = data[-TRAILER.size :]
            offset += len(block)
            index += 1
            block = nxt
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"envelope chunk {index}: zstd stream is corrupt: {exc}") from exc
    want_size, want_sha = TRAILER.unpack(tail)
    if out.size != want_size or out.sha.digest() != want_sha:
        raise IntegrityError(
            f"envelope plaintext check failed: decompressed {out.size} bytes sha256 "
            f"{out.sha.hexdigest()}, trailer says {want_size} bytes sha256 {want_sha.hex()}"
        )
    return UnsealResult(
        plaintext_sha256=out.sha.hexdigest(), plaintext_size=out.size, header=header
    )


def verify_prefix(
    data: bytes,
    *,
    providers: Sequence[KeyProvider],
    expected_context: ExpectedContext | None = None,
) -> EnvelopeHeader:
    """Authenticate the header and chunk 0 from the first bytes of an object.

    ``data`` needs :func:`first_chunk_span` bytes, or the whole object if it is
    shorter. A full-size chunk 0 may be a middle chunk or the sole final one;
    both nonces are tried, so the answer is right either way.
    """
    header = parse_header(data)
    cipher = _ChunkCipher(unwrap_dek(header, providers, expected_context), header)
    span = header.chunk_size + TAG_SIZE
    chunk = memoryview(data)[header.header_size : header.header_size + span]
    if len(chunk) <= TAG_SIZE:
        raise IntegrityError(
            f"envelope truncated: {len(chunk)} bytes at offset {header.header_size} where "
            "chunk 0 should be"
        )
    if len(chunk) < span:  # the whole object is shorter than one full chunk
        cipher.open(0, chunk, last=True)
        return header
    try:
        cipher.open(0, chunk, last=False)
    except IntegrityError:
        if len(data) != header.header_size + span:
            raise
        cipher.open(0, chunk, last=True)
    return header
