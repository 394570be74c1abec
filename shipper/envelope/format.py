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

This module is the format's public face: the drawing above, and the names
importers use. The code is in three modules: :mod:`~shipper.envelope.header`
(the header's constants, types, encoding and parsing),
:mod:`~shipper.envelope.cipher` (wrapping and unwrapping the DEK, the chunk
cipher) and :mod:`~shipper.envelope.stream` (seal, unseal, verify_prefix).
``__all__`` is the API, as it was before that split; the names imported ``as``
themselves below stay importable from here for code written against it.
"""

from __future__ import annotations

from shipper.envelope.cipher import DEK_SIZE as DEK_SIZE
from shipper.envelope.cipher import MAX_CHUNKS as MAX_CHUNKS
from shipper.envelope.cipher import TAG_SIZE as TAG_SIZE
from shipper.envelope.cipher import ExpectedContext as ExpectedContext
from shipper.envelope.cipher import unwrap_dek as unwrap_dek
from shipper.envelope.header import CIPHER_AES256GCM_STREAM as CIPHER_AES256GCM_STREAM
from shipper.envelope.header import COMPRESSION_ZSTD as COMPRESSION_ZSTD
from shipper.envelope.header import FORMAT_VERSION, MAGIC, EnvelopeHeader, WrappedKey, read_header
from shipper.envelope.header import MAX_BODY_LEN as MAX_BODY_LEN
from shipper.envelope.header import MAX_CHUNK_SIZE as MAX_CHUNK_SIZE
from shipper.envelope.header import MIN_CHUNK_SIZE as MIN_CHUNK_SIZE
from shipper.envelope.header import SALT_SIZE as SALT_SIZE
from shipper.envelope.header import canonical_json as canonical_json
from shipper.envelope.header import parse_header as parse_header
from shipper.envelope.stream import TRAILER as TRAILER
from shipper.envelope.stream import (
    SealResult,
    UnsealResult,
    first_chunk_span,
    seal,
    unseal,
    verify_prefix,
)

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
