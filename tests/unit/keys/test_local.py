"""The local keyring: file format, permissions, creation, wrap/unwrap."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shipper.errors import ConfigError, KeyProviderError
from shipper.keys import KeyProvider, make_provider
from shipper.keys.local import LocalKeyring, fingerprint

CTX = {"tenant": "acme", "server_id": "1", "binlog_name": "mysql-bin.000001"}


def test_create_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    kr = LocalKeyring.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert isinstance(kr, KeyProvider)
    assert kr.kind == "local" and len(kr.key_id) == 16
    text = path.read_text()
    assert "binlog-shipper-keyring v1\nkek " in text
    again = LocalKeyring.load(path)
    assert again.key_id == kr.key_id
    dek = os.urandom(32)
    assert again.unwrap(kr.wrap(dek, CTX), CTX) == dek
    assert [p.name for p in tmp_path.iterdir()] == ["keyring"]  # no temp file left


def test_create_ignores_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        LocalKeyring.create(tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    kr = LocalKeyring.create(path)
    before = path.read_bytes()
    with pytest.raises(KeyProviderError, match="already exists"):
        LocalKeyring.create(path)
    assert path.read_bytes() == before
    assert LocalKeyring.load(path).key_id == kr.key_id


def test_create_in_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(KeyProviderError, match="cannot create keyring"):
        LocalKeyring.create(tmp_path / "nope" / "keyring")


def test_two_keyrings_differ(tmp_path: Path) -> None:
    a = LocalKeyring.create(tmp_path / "a")
    b = LocalKeyring.create(tmp_path / "b")
    assert a.key_id != b.key_id


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(KeyProviderError, match=f"keyring {path} not found"):
        LocalKeyring.load(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o700 | 0o007])
def test_group_or_other_access_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keyring"
    LocalKeyring.create(path)
    os.chmod(path, mode)
    with pytest.raises(KeyProviderError, match=r"group or others.*chmod 600") as ei:
        LocalKeyring.load(path)
    assert str(path) in str(ei.value)


def test_owner_only_modes_accepted(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    LocalKeyring.create(path)
    os.chmod(path, 0o400)
    LocalKeyring.load(path)


def test_directory_is_not_a_keyring(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(KeyProviderError, match="not a regular file"):
        LocalKeyring.load(d)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage\n",
        b"binlog-shipper-keyring v2\nkek AAAA\n",
        b"binlog-shipper-keyring v1\n",
        b"binlog-shipper-keyring v1\nkek not-base64!!\n",
        b"binlog-shipper-keyring v1\nkek AAAA\n",  # 3 bytes
        b"binlog-shipper-keyring v1\nkek " + b"A" * 44 + b"\nextra\n",
        b"\xff\xfe binary",
        b"#" * 70000,
    ],
)
def test_bad_format(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keyring"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeyProviderError, match=f"keyring {path} is not a binlog-shipper keyring"):
        LocalKeyring.load(path)


def test_comments_and_blank_lines_allowed(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    kek = bytes(range(32))
    path.write_text(
        "# note\n\nbinlog-shipper-keyring v1\n  # another\n"
        "kek AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n"
    )
    os.chmod(path, 0o600)
    kr = LocalKeyring.load(path)
    assert kr.key_id == fingerprint(kek) == "a298f38c19f57b1b"


def test_wrong_key_names_the_file(tmp_path: Path) -> None:
    a = LocalKeyring.create(tmp_path / "a")
    b = LocalKeyring.create(tmp_path / "b")
    wrapped = a.wrap(os.urandom(32), CTX)
    with pytest.raises(KeyProviderError, match=f"keyring {tmp_path / 'b'}"):
        b.unwrap(wrapped, CTX)


def test_context_is_bound(tmp_path: Path) -> None:
    kr = LocalKeyring(os.urandom(32), tmp_path / "k")
    dek = os.urandom(32)
    wrapped = kr.wrap(dek, CTX)
    # Key order does not matter (canonical JSON); values and keys do.
    assert kr.unwrap(wrapped, dict(reversed(list(CTX.items())))) == dek
    for other in ({**CTX, "tenant": "evil"}, {**CTX, "extra": "x"}, {"tenant": "acme"}, {}):
        with pytest.raises(KeyProviderError, match="another encryption context"):
            kr.unwrap(wrapped, other)


def test_wrapped_blob_layout_and_tamper(tmp_path: Path) -> None:
    kr = LocalKeyring(os.urandom(32), tmp_path / "k")
    dek = os.urandom(32)
    wrapped = kr.wrap(dek, CTX)
    assert len(wrapped) == 61 and wrapped[0] == 1
    assert kr.wrap(dek, CTX) != wrapped  # fresh nonce each time
    for i in range(len(wrapped)):
        bad = bytearray(wrapped)
        bad[i] ^= 0x01
        with pytest.raises(KeyProviderError):
            kr.unwrap(bytes(bad), CTX)
    with pytest.raises(KeyProviderError, match="not a local-keyring"):
        kr.unwrap(wrapped[:20], CTX)


def test_from_config_and_registry(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    kr = LocalKeyring.create(path)
    assert LocalKeyring.from_config({"provider": "local", "path": str(path)}).key_id == kr.key_id
    provider = make_provider({"provider": "local", "path": str(path)})
    assert provider.kind == "local" and provider.key_id == kr.key_id
    with pytest.raises(ConfigError):
        LocalKeyring.from_config({"provider": "local"})
    with pytest.raises(KeyProviderError, match="not found"):
        make_provider({"provider": "local", "path": str(tmp_path / "missing")})


def test_repr_hides_the_key(tmp_path: Path) -> None:
    kek = bytes(range(32))
    kr = LocalKeyring(kek, tmp_path / "k")
    assert kek.hex() not in repr(kr) and "AAECAwQF" not in repr(kr)
    assert kr.key_id in repr(kr)
