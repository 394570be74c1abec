"""The test vector of docs/format.md, rebuilt byte for byte and unsealed from the doc's hex."""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Mapping
from pathlib import Path

import zstandard

from shipper.envelope import read_header, unseal, verify_prefix
from shipper.envelope.cipher import ChunkCipher
from shipper.envelope.format import TRAILER
from shipper.envelope.stream import _seal
from shipper.keys.local import LocalKeyring

DOC = Path(__file__).resolve().parents[3] / "docs" / "format.md"

KEK = bytes(range(0x00, 0x20))
DEK = bytes(range(0x20, 0x40))
SALT = bytes(range(0x40, 0x50))
WRAP_NONCE = bytes(range(0x50, 0x5C))
PLAINTEXT = b"hello, binlog-shipper\n"
CONTEXT = {"tenant": "acme", "server_id": "1", "binlog_name": "mysql-bin.000001"}
METADATA = {"gtid_set": "0-1-42"}


class FixedNonceKeyring(LocalKeyring):
    def wrap(self, dek: bytes, context: Mapping[str, str]) -> bytes:
        return self._wrap_with_nonce(dek, context, WRAP_NONCE)


def doc_vector() -> bytes:
    text = DOC.read_text()
    m = re.search(
        r"<!-- test-vector:begin -->\s*```\n(.*?)```\s*<!-- test-vector:end -->", text, re.S
    )
    assert m, "test vector block missing from docs/format.md"
    return bytes.fromhex("".join(m.group(1).split()))


def build() -> bytes:
    out = io.BytesIO()
    _seal(
        io.BytesIO(PLAINTEXT),
        out,
        providers=[FixedNonceKeyring(KEK)],
        context=CONTEXT,
        metadata=METADATA,
        level=3,
        chunk_size=32,
        dek=DEK,
        salt=SALT,
    )
    return out.getvalue()


def test_rebuild_matches_doc_byte_for_byte() -> None:
    built = build()
    assert len(built) == 427
    assert built.hex() == doc_vector().hex()


def test_intermediate_values_in_doc() -> None:
    text = DOC.read_text()
    hdr = read_header(io.BytesIO(build()))
    kr = FixedNonceKeyring(KEK)
    cobj = zstandard.ZstdCompressor(level=3).compressobj()
    frame = cobj.compress(PLAINTEXT) + cobj.flush()
    cipher = ChunkCipher(DEK, hdr)
    values = [
        kr.key_id,
        hdr.wrapped_keys[0].wrapped.hex(),
        hdr.digest.hex(),
        TRAILER.pack(len(PLAINTEXT), hashlib.sha256(PLAINTEXT).digest()).hex(),
        cipher.nonce(0, False).hex(),
        cipher.nonce(1, False).hex(),
        cipher.nonce(2, True).hex(),
        hdr.raw[36:].decode(),
        frame.hex(),
    ]
    for v in values:
        assert v in text, v
    assert hdr.header_size == 308


def test_doc_hex_unseals_with_doc_keyring_file(tmp_path: Path) -> None:
    text = DOC.read_text()
    m = re.search(r"```\n(# binlog-shipper local keyring.*?)```", text, re.S)
    assert m
    path = tmp_path / "keyring"
    path.write_text(m.group(1))
    os.chmod(path, 0o600)
    kr = LocalKeyring.load(path)
    assert kr.key_id == "a298f38c19f57b1b"
    blob = doc_vector()
    out = io.BytesIO()
    res = unseal(io.BytesIO(blob), out, providers=[kr], expected_context=CONTEXT)
    assert out.getvalue() == PLAINTEXT
    assert res.plaintext_sha256 == hashlib.sha256(PLAINTEXT).hexdigest()
    assert res.header.metadata == METADATA
    verify_prefix(blob, providers=[kr])
