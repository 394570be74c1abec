"""Objects already at a key (a crash after upload, a lost manifest) prove themselves in
full before they count as archived; objects moved to another key fail to decrypt.

Against a real MariaDB, a file:// archive and moto S3. The damaged archives are new
ones built by copying (or putting straight to a fresh bucket): the shipper's own
objects are never altered, and neither is anything the shipper finds at a key.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from shipper import envelope, objects
from shipper.binlog import scan_file
from shipper.cli import main as cli
from shipper.manifest import Manifest
from shipper.sandbox import SandboxServer
from shipper.storage import StorageBackend, open_backend
from shipper.storage.file import FileBackend
from tests.helpers import closed_binlogs, rotate, write_config
from tests.services.cloud import Moto

pytestmark = pytest.mark.mariadb

TENANT = "acme"


@pytest.fixture()
def server(mariadb_factory) -> SandboxServer:  # type: ignore[no-untyped-def]
    s = mariadb_factory(server_id=21)
    rotate(s, 3)
    return s


def _configure(
    state: Path, server: SandboxServer, url: str, *, options: str = "", verify: str = "auto"
) -> None:
    """A config for ``url`` with small chunks (so objects have middle chunks)."""
    path = write_config(state, server, tenant=TENANT, archive=url, extra="chunk_size = 4096")
    text = path.read_text().replace('verify = "auto"', f'verify = "{verify}"')
    text = text.replace(f'url = "{url}"', f'url = "{url}"\n{options}')
    if url.startswith("s3://"):
        text = text.replace('primary = "local"', 'primary = "aws"')
    path.write_text(text)


def _s3_options(moto: Moto) -> str:
    return f'endpoint_url = "{moto.endpoint_url}"\nregion = "{moto.region}"'


def _binlog_keys(backend: StorageBackend) -> dict[str, str]:
    out = {}
    for info in backend.list(f"{TENANT}/mysql/"):
        base = info.key.rsplit("/", 1)[-1]
        if not base.endswith(objects.INDEX_SUFFIX):
            out[base.removesuffix(objects.OBJECT_SUFFIX)] = info.key
    return out


def _flip_in_middle_chunk(data: bytes) -> bytes:
    """``data`` with one byte of chunk 1 flipped (chunk 0 and the last chunk intact)."""
    header = envelope.read_header(io.BytesIO(data))
    span = header.chunk_size + 16  # ciphertext + GCM tag
    assert len(data) > header.header_size + 2 * span, "need at least three chunks"
    bad = bytearray(data)
    bad[header.header_size + span + 100] ^= 0x01
    return bytes(bad)


def _copy_archive(
    src: StorageBackend, dst: StorageBackend, change: Callable[[str, bytes], bytes]
) -> None:
    for info in src.list(f"{TENANT}/mysql/"):
        with src.open(info.key) as f:
            data = change(info.key, f.read())
        dst.put(info.key, io.BytesIO(data), size=len(data), metadata=src.stat(info.key).metadata)


def _lost_manifest_run(
    tmp_path: Path, server: SandboxServer, url: str, options: str, verify: str
) -> tuple[int, Path]:
    """A new state dir (same keyring) ships to ``url`` again: (exit code, state dir)."""
    state = tmp_path / "second"
    state.mkdir()
    shutil.copy(tmp_path / "first" / "keyring", state / "keyring")
    _configure(state, server, url, options=options, verify=verify)
    return cli(["run", "--once", "--state-dir", str(state)]), state


def _states(state: Path) -> dict[str, str]:
    with Manifest(state / "manifest.sqlite") as m:
        return {r.name: r.state for r in m.all()}


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_corrupt_middle_chunk_found_after_a_lost_manifest(
    kind: str,
    server: SandboxServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Metadata says "ours" and chunk 0 authenticates, but chunk 1 is damaged: the
    object must not be counted as archived (verify = "prefix" would have passed it)."""
    if kind == "s3":
        moto: Moto = request.getfixturevalue("moto")
        first_url, second_url = f"s3://{moto.bucket()}/a", f"s3://{moto.bucket()}/a"
        options, verify = _s3_options(moto), "auto"  # auto is "prefix" on S3
    else:
        first_url, second_url = f"file://{tmp_path / 'a'}", f"file://{tmp_path / 'b'}"
        options, verify = "", "prefix"
    _configure(tmp_path / "first", server, first_url, options=options, verify=verify)
    assert cli(["run", "--once", "--state-dir", str(tmp_path / "first")]) == 0
    opts = {"endpoint_url": moto.endpoint_url, "region": moto.region} if kind == "s3" else {}
    a, b = open_backend(first_url, opts), open_backend(second_url, opts)
    names = closed_binlogs(server)
    victim_name = names[1]
    victim = _binlog_keys(a)[victim_name]
    _copy_archive(a, b, lambda k, d: _flip_in_middle_chunk(d) if k == victim else d)
    with b.open(victim) as f:
        planted = f.read()
    capsys.readouterr()

    rc, state = _lost_manifest_run(tmp_path, server, second_url, options, verify)

    assert rc == 1
    out = capsys.readouterr().out
    assert f"FAILED   {victim_name}: {second_url}/{victim}" in out
    assert "NOT counted as archived" in out and "chunk 1" in out
    states = _states(state)
    assert states[victim_name] != "committed"
    assert {n: s for n, s in states.items() if n != victim_name} == dict.fromkeys(
        [n for n in names if n != victim_name], "committed"
    )
    with b.open(victim) as f:  # the target's object was left exactly as it was
        assert f.read() == planted


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_junk_at_an_index_key_is_refused_not_counted(
    kind: str,
    server: SandboxServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if kind == "s3":
        moto: Moto = request.getfixturevalue("moto")
        url, options = f"s3://{moto.bucket()}/a", _s3_options(moto)
        backend = open_backend(url, {"endpoint_url": moto.endpoint_url, "region": moto.region})
    else:
        url, options = f"file://{tmp_path / 'a'}", ""
        backend = FileBackend(tmp_path / "a")
    names = closed_binlogs(server)
    victim_name = names[0]
    info = scan_file(server.binlog_dir / victim_name)
    assert info.first_timestamp is not None
    key = objects.binlog_key(TENANT, 21, info.first_timestamp, victim_name)
    junk = b"not an index, not an envelope" * 10
    backend.put(objects.index_key(key), io.BytesIO(junk), size=len(junk), metadata={})
    state = tmp_path / "first"
    _configure(state, server, url, options=options)
    capsys.readouterr()

    assert cli(["run", "--once", "--state-dir", str(state)]) == 1

    out = capsys.readouterr().out
    assert f"FAILED   {victim_name}: {url}/{objects.index_key(key)} already exists" in out
    states = _states(state)
    assert states[victim_name] != "committed"
    assert all(states[n] == "committed" for n in names if n != victim_name)
    with backend.open(objects.index_key(key)) as f:
        assert f.read() == junk


def test_object_moved_to_another_month_or_lineage_fails_to_decrypt(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "first"
    _configure(state, server, f"file://{tmp_path / 'a'}")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    backend = FileBackend(tmp_path / "a")
    name = closed_binlogs(server)[0]
    key = _binlog_keys(backend)[name]
    year, month = key.split("/")[3:5]
    other_month = "12" if month != "12" else "11"
    moved = {
        "month": key.replace(f"/{year}/{month}/", f"/{year}/{other_month}/"),
        "lineage": objects.lineage_key(key, "0123456789ab" * 5 + "abcd"),
    }
    for k in moved.values():
        with backend.open(key) as f:
            backend.put(k, f, size=backend.stat(key).size, metadata=backend.stat(key).metadata)
    capsys.readouterr()
    for why, k in moved.items():
        out = tmp_path / f"out-{why}"
        rc = cli(["fetch", name, "--key", k, "-o", str(out), "--state-dir", str(state)])
        assert rc == 3, why
        assert "differs from the expected" in capsys.readouterr().err
        assert not out.exists()
    # a key outside the layout is refused before anything is read
    with backend.open(key) as f:
        backend.put(f"{TENANT}/x.bin", f, size=backend.stat(key).size, metadata={})
    rc = cli(
        [
            "fetch",
            name,
            "--key",
            f"{TENANT}/x.bin",
            "-o",
            str(tmp_path / "o"),
            "--state-dir",
            str(state),
        ]
    )
    assert rc == 3
    assert "outside the archive layout" in capsys.readouterr().err
    ok = tmp_path / "ok"
    assert cli(["fetch", name, "--key", key, "-o", str(ok), "--state-dir", str(state)]) == 0
    assert ok.read_bytes() == (server.binlog_dir / name).read_bytes()
