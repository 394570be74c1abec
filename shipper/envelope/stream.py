"""Sealing and unsealing envelopes as streams, and checking chunk 0 from a ranged read.

The *stream plaintext* is the zstd frame of the binlog followed by a 40-byte
trailer (plaintext size u64, plaintext SHA-256), cut into chunks of exactly
``chunk_size`` bytes; the last chunk holds the remaining 1..chunk_size bytes.
Each chunk on the wire is its ciphertext plus the 16-byte tag, with no length
prefix: a reader knows a chunk is the last one because the object ends after
it. :mod:`shipper.envelope.format` draws the whole layout.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

import zstandard

from shipper.envelope.cipher import (
    DEK_SIZE,
    TAG_SIZE,
    ChunkCipher,
    ExpectedContext,
    unwrap_dek,
    wrap_dek,
)
from shipper.envelope.header import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    SALT_SIZE,
    EnvelopeHeader,
    check_context,
    encode_header,
    parse_header,
    read_exact,
    read_header,
)
from shipper.errors import IntegrityError, KeyProviderError
from shipper.keys.base import KeyProvider

TRAILER = struct.Struct(">Q32s")  # plaintext size, plaintext SHA-256

_READ_SIZE = 1 << 20


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
    ctx = check_context(context)
    wrapped = wrap_dek(dek, providers, ctx)
    try:
        header = encode_header(
            chunk_size=chunk_size,
            salt=salt,
            context=ctx,
            metadata=metadata or {},
            wrapped_keys=wrapped,
            level=level,
        )
    except TypeError as exc:
        raise TypeError(f"envelope metadata must be JSON-serialisable: {exc}") from exc
    cipher = ChunkCipher(dek, header)
    dst.write(header.raw)
    written = header.header_size

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
    cipher = ChunkCipher(unwrap_dek(header, providers, expected_context), header)
    span = header.chunk_size + TAG_SIZE
    out = _HashingWriter(dst)
    dec = zstandard.ZstdDecompressor().stream_writer(
        cast(IO[bytes], out), write_size=_READ_SIZE, closefd=False
    )
    tail = b""  # last TRAILER.size bytes of stream plaintext seen so far
    index = 0
    offset = header.header_size
    block = read_exact(src, span)
    try:
        while True:
            if len(block) < span:
                last = True
                nxt = b""
            else:
                nxt = read_exact(src, span)
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


# ---------------------------------------------------------------------------- ranged check


def first_chunk_span(header: EnvelopeHeader) -> int:
    """Bytes from offset 0 a ranged read needs for :func:`verify_prefix` (header + chunk 0)."""
    return header.header_size + header.chunk_size + TAG_SIZE


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
    cipher = ChunkCipher(unwrap_dek(header, providers, expected_context), header)
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
