"""The archive object format: zstd + chunked AES-256-GCM under wrapped data keys.

See :mod:`shipper.envelope.format` for the byte layout and docs/format.md for
the full description with a test vector.
"""

from shipper.envelope.format import (
    FORMAT_VERSION,
    MAGIC,
    EnvelopeHeader,
    SealResult,
    UnsealResult,
    WrappedKey,
    first_chunk_span,
    read_header,
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
