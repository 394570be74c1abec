"""The envelope's keys and chunk cipher: the data key, wrapped and unwrapped, and AES-256-GCM.

A fresh 32-byte data key (DEK) per object is wrapped by every provider; any one
can unwrap it. ``HKDF-SHA256(ikm=DEK, salt=salt, info="binlog-shipper envelope
v1")`` gives 39 bytes: the 32-byte chunk key K and a 7-byte nonce prefix, and
``nonce_i = prefix(7) || i (u32) || last (u8: 1 for the final chunk, else 0)``.
The AAD of every chunk is ``SHA-256(header)``. :mod:`shipper.envelope.format`
says what that authenticates.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shipper.envelope.header import EnvelopeHeader, WrappedKey
from shipper.errors import IntegrityError, KeyProviderError
from shipper.keys.base import KeyProvider

DEK_SIZE = 32
#: What a reader expects of the header's context: one mapping, or any of several.
ExpectedContext = Mapping[str, str] | Sequence[Mapping[str, str]]
TAG_SIZE = 16
MAX_CHUNKS = 1 << 32

_HKDF_INFO = b"binlog-shipper envelope v1"
_NONCE_PREFIX_SIZE = 7


class ChunkCipher:
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


def wrap_dek(
    dek: bytes, providers: Sequence[KeyProvider], context: Mapping[str, str]
) -> list[WrappedKey]:
    """The DEK wrapped by each provider in turn; any failure is a KeyProviderError."""
    wrapped = []
    for p in providers:
        try:
            wrapped.append(WrappedKey(p.kind, p.key_id, p.wrap(dek, context)))
        except KeyProviderError:
            raise
        except Exception as exc:  # a provider bug must not pass as success
            raise KeyProviderError(
                f"{p.kind}:{p.key_id} failed to wrap the data key: {exc}"
            ) from exc
    return wrapped


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
