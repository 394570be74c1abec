"""The walking skeleton against a real MariaDB: ship, verify, fetch, and every bad input."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest

from shipper.binlog import scan_file
from shipper.cli import main as cli
from shipper.errors import StateError
from shipper.keys.local import LocalKeyring
from shipper.manifest import Manifest
from shipper.pipeline.ship import Shipper
from shipper.pipeline.stage import stage
from shipper.sandbox import SandboxServer
from shipper.storage.file import FileBackend
from tests.helpers import closed_binlogs, load, rotate, write_config

pytestmark = pytest.mark.mariadb


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def server(mariadb_factory) -> SandboxServer:  # type: ignore[no-untyped-def]
    s = mariadb_factory(server_id=11)
    rotate(s, 4)
    return s


def archived(state: Path) -> dict[str, str]:
    """binlog name -> key of every binlog object in the file archive."""
    out = {}
    for info in FileBackend(state / "archive").list():
        base = info.key.rsplit("/", 1)[-1]
        if base.endswith(".zst.enc") and not base.endswith(".idx.zst.enc"):
            out[base.removesuffix(".zst.enc")] = info.key
    return out


def test_ship_fetch_round_trip_and_idempotence(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    write_config(state, server, tenant="acme")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    names = closed_binlogs(server)
    assert len(names) >= 4
    keys = archived(state)
    assert sorted(keys) == names
    for name in names:
        info = scan_file(server.binlog_dir / name)
        first = dt.datetime.fromtimestamp(info.first_timestamp, dt.UTC)  # type: ignore[arg-type]
        assert keys[name] == f"acme/mysql/11/{first:%Y}/{first:%m}/{name}.zst.enc"
        meta = FileBackend(state / "archive").stat(keys[name]).metadata
        assert meta["plaintext_sha256"] == sha(server.binlog_dir / name)
        assert meta["binlog_name"] == name and meta["server_id"] == "11"
        assert meta["tenant"] == "acme" and meta["compression_algorithm"] == "zstd"
        assert meta["gtid_set"] == info.gtid_executed_end
        for field in (
            "server_uuid",
            "binlog_sequence",
            "start_timestamp",
            "end_timestamp",
            "plaintext_size",
            "format_version",
            "trace_id",
        ):
            assert field in meta
        out = tmp_path / "out" / name
        assert cli(["fetch", name, "-o", str(out), "--state-dir", str(state)]) == 0
        assert sha(out) == sha(server.binlog_dir / name)
    with Manifest(state / "manifest.sqlite") as m:
        assert {r.name: r.state for r in m.all()} == dict.fromkeys(names, "committed")
    # The active binlog is never shipped.
    assert server.binary_logs()[-1][0] not in keys
    # A second pass ships nothing and changes nothing.
    before = {k: FileBackend(state / "archive").stat(k).version for k in keys.values()}
    capsys.readouterr()
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    assert "0 shipped" in capsys.readouterr().out
    assert {k: FileBackend(state / "archive").stat(k).version for k in keys.values()} == before
    # New rotations ship only the new files.
    rotate(server, 2)
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    assert sorted(archived(state)) == closed_binlogs(server)
    # Staging is empty once everything is committed.
    assert list((state / "staging").iterdir()) == []
    # status --json reports it
    capsys.readouterr()
    assert cli(["status", "--json", "--state-dir", str(state)]) == 0
    assert '"committed": 6' in capsys.readouterr().out


def test_crc_mismatch_is_flagged_quarantined_and_counted(
    server: SandboxServer, tmp_path: Path
) -> None:
    names = closed_binlogs(server)
    victim = server.binlog_dir / names[1]
    good = sha(victim)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # a byte inside some event body: its CRC32 no longer matches
    victim.write_bytes(bytes(data))
    state = tmp_path / "state"
    cfg = load(write_config(state, server))
    shipper = Shipper(cfg)
    res = shipper.run_once()
    assert res.flagged == [names[1]]
    assert sorted(res.shipped) == sorted(n for n in names if n != names[1])
    assert shipper.metrics.flagged._value.get() == 1
    row = shipper.manifest.get(names[1])
    assert row is not None and row.state == "flagged"
    assert "checksum mismatch" in (row.error or "")
    assert "/quarantine/" in (row.object_key or "")
    # not archived as if it were good: no normal key for it, and fetch by name refuses
    assert names[1] not in archived(state)
    assert cli(["fetch", names[1], "-o", str(tmp_path / "x"), "--state-dir", str(state)]) == 4
    # but its bytes are kept, decryptable, for forensics
    from shipper.archive import fetch_to_file

    fetch_to_file(
        FileBackend(state / "archive"), row.object_key or "", shipper.providers, tmp_path / "q"
    )
    assert sha(tmp_path / "q") != good and (tmp_path / "q").read_bytes() == bytes(data)
    assert not res.ok
    shipper.close()


def test_binlog_purged_before_shipping_is_a_gap(server: SandboxServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = load(write_config(state, server))
    shipper = Shipper(cfg)
    assert shipper.run_once().ok
    shipped = set(closed_binlogs(server))
    # More binlogs appear; the server purges some of them before the shipper looks again.
    rotate(server, 4)
    new = [n for n in closed_binlogs(server) if n not in shipped]
    server.purge_binary_logs_to(new[2])
    res = shipper.run_once()
    assert res.gaps == new[:2]
    assert sorted(res.shipped) == new[2:]
    rows = {r.name: r.state for r in shipper.manifest.all()}
    assert rows[new[0]] == rows[new[1]] == "gap"
    assert len(shipper.manifest.journal_entries("gap")) == 2
    # A file discovered, then purged before it could be staged, is a gap too.
    rotate(server, 2)
    latest = closed_binlogs(server)
    shipper.manifest.discover(latest[-1])
    (server.binlog_dir / latest[-1]).unlink()  # as if purged between discovery and staging
    res = shipper.run_once()
    assert latest[-1] in res.gaps
    assert latest[-2] in res.shipped
    shipper.close()


def test_purged_after_staging_still_ships(server: SandboxServer, tmp_path: Path) -> None:
    """The hardlinked stage keeps the bytes when the server purges the file."""
    state = tmp_path / "state"
    cfg = load(write_config(state, server))
    shipper = Shipper(cfg)
    names = closed_binlogs(server)
    first = names[0]
    original = sha(server.binlog_dir / first)
    shipper.manifest.discover(first)
    stage(server.binlog_dir / first, shipper.staging / first)
    shipper.manifest.advance(first, "staged")
    server.purge_binary_logs_to(names[1])
    res = shipper.run_once()
    assert first in res.shipped
    assert cli(["fetch", first, "-o", str(tmp_path / "f"), "--state-dir", str(state)]) == 0
    assert sha(tmp_path / "f") == original
    shipper.close()


def test_fetch_with_missing_or_wrong_keyring(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    write_config(state, server)
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    name = closed_binlogs(server)[0]
    keyring = state / "keyring"
    saved = keyring.read_bytes()
    out = tmp_path / "out"
    keyring.unlink()
    capsys.readouterr()
    assert cli(["fetch", name, "-o", str(out), "--state-dir", str(state)]) == 7
    assert str(keyring) in capsys.readouterr().err
    LocalKeyring.create(keyring)  # a different key
    assert cli(["fetch", name, "-o", str(out), "--state-dir", str(state)]) == 7
    assert not out.exists() and list(tmp_path.glob(".out.*")) == []
    keyring.unlink()
    keyring.write_bytes(saved)
    os.chmod(keyring, 0o600)
    assert cli(["fetch", name, "-o", str(out), "--state-dir", str(state)]) == 0


def test_flipped_byte_in_archive_is_an_integrity_error(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    write_config(state, server)
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    name = closed_binlogs(server)[0]
    path = state / "archive" / archived(state)[name]
    data = bytearray(path.read_bytes())
    data[len(data) - 100] ^= 0x40
    path.write_bytes(bytes(data))
    out = tmp_path / "out"
    capsys.readouterr()
    assert cli(["fetch", name, "-o", str(out), "--state-dir", str(state)]) == 3
    assert "error" in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_bad_config_value_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'state_dir = "/tmp/x"\ncompression_level = "max"\n'
        '[[targets]]\nurl = "file:///tmp/a"\n[[keys]]\nprovider = "local"\n'
        'path = "/tmp/k"\n'
    )
    assert cli(["run", "--once", "--config", str(cfg)]) == 2
    assert "compression_level" in capsys.readouterr().err


def test_state_dir_not_writable(server: SandboxServer, tmp_path: Path) -> None:
    blocker = tmp_path / "plainfile"
    blocker.write_text("")
    state = tmp_path / "state"
    cfg = load(write_config(state, server))
    from dataclasses import replace

    with pytest.raises(StateError, match="cannot be created"):
        Shipper(replace(cfg, state_dir=blocker / "state"))
    if os.geteuid() != 0:  # root ignores mode bits; the case above covers root
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(StateError, match="not writable"):
            Shipper(replace(cfg, state_dir=ro))


def test_dry_run_lists_pending_with_keys(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    state = tmp_path / "state"
    write_config(state, server, tenant="dry")
    capsys.readouterr()
    assert cli(["run", "--dry-run", "--state-dir", str(state)]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = closed_binlogs(server)
    assert [p["binlog"] for p in doc["pending"]] == names
    for p in doc["pending"]:
        (key,) = p["keys"].values()
        assert key.startswith("dry/mysql/11/") and key.endswith(p["binlog"] + ".zst.enc")
        assert p["size"] == (server.binlog_dir / p["binlog"]).stat().st_size
    assert not (state / "archive").exists()  # nothing uploaded


def test_watch_mode_ships_as_the_server_rotates(server: SandboxServer, tmp_path: Path) -> None:
    """`run` (no --once) ships on a file event long before its poll interval, stops on SIGTERM."""
    import signal
    import subprocess
    import sys
    import time

    state = tmp_path / "state"
    write_config(state, server, extra="poll_interval = 600")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipper", "run", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while sorted(archived(state)) != closed_binlogs(server):
            assert time.monotonic() < deadline, "initial pass did not ship"
            time.sleep(0.2)
        rotate(server, 2)  # the poll interval is 10 minutes: only the watcher can notice
        deadline = time.monotonic() + 30
        while sorted(archived(state)) != closed_binlogs(server):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "watcher did not ship the new binlogs"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    with Manifest(state / "manifest.sqlite") as m:
        assert all(r.state == "committed" for r in m.all())


def test_warns_when_unarchived_binlog_is_near_expiry(server: SandboxServer, tmp_path: Path) -> None:
    server.execute("SET GLOBAL binlog_expire_logs_seconds = 1800")
    try:
        state = tmp_path / "state"
        cfg = load(write_config(state, server))  # purge_warning_seconds defaults to 3600
        shipper = Shipper(cfg)
        res = shipper.run_once()
        assert res.warnings and all("may purge it in" in w for w in res.warnings)
        assert len(res.warnings) == len(closed_binlogs(server))
        assert res.ok  # a warning, and the files shipped
        assert shipper.metrics.purge_risk._value.get() == len(res.warnings)
        shipper.close()
    finally:
        server.execute("SET GLOBAL binlog_expire_logs_seconds = 0")


def test_prefix_verification_authenticates_the_first_chunk(
    server: SandboxServer, tmp_path: Path
) -> None:
    """verify = "prefix" proves an object decryptable from a ranged read of its head."""
    from dataclasses import replace

    from shipper.errors import IntegrityError

    state = tmp_path / "state"
    cfg = replace(load(write_config(state, server)), verify="prefix")
    shipper = Shipper(cfg)
    assert shipper.run_once().ok
    backend = FileBackend(state / "archive")
    key = archived(state)[closed_binlogs(server)[0]]
    shipper.writer.verify_prefix(backend, key, backend.stat(key).size)
    path = state / "archive" / key
    data = bytearray(path.read_bytes())
    header_size = len(data) - 200 if len(data) < 600 else 600
    data[header_size] ^= 0x10  # inside chunk 0 (or the header): must not verify
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        shipper.writer.verify_prefix(backend, key, len(data))
    shipper.close()


def test_reset_master_reuses_names_without_overwriting(
    server: SandboxServer, tmp_path: Path
) -> None:
    """After RESET MASTER the server writes new files under old names: they are archived
    as a new lineage beside the old objects, which stay untouched."""
    state = tmp_path / "state"
    cfg = load(write_config(state, server))
    shipper = Shipper(cfg)
    assert shipper.run_once().ok
    old_keys = archived(state)
    backend = FileBackend(state / "archive")
    old = {k: (backend.stat(k).version, backend.stat(k).sha256) for k in old_keys.values()}
    server.execute("RESET MASTER")
    rotate(server, 2)
    new_names = closed_binlogs(server)
    assert set(new_names) <= set(old_keys)  # the names are reused
    new_sha = {n: sha(server.binlog_dir / n) for n in new_names}
    res = shipper.run_once()
    assert sorted(res.shipped) == new_names
    # old objects untouched
    assert {k: (backend.stat(k).version, backend.stat(k).sha256) for k in old} == old
    conflicts = shipper.manifest.journal_entries("lineage_conflict")
    changes = shipper.manifest.journal_entries("lineage_change")
    assert sorted(e["binlog"] for e in conflicts) == new_names
    assert sorted(e["binlog"] for e in changes) == new_names
    rows = [r for r in shipper.manifest.all() if r.name in new_names]
    assert sorted((r.name, r.lineage, r.state) for r in rows) == sorted(
        [(n, 0, "committed") for n in new_names] + [(n, 1, "committed") for n in new_names]
    )
    for n in new_names:
        latest = shipper.manifest.get(n)
        assert latest is not None and ".lineage-" in (latest.object_key or "")
        out = tmp_path / "f" / n
        assert cli(["fetch", n, "-o", str(out), "--state-dir", str(state)]) == 0
        assert sha(out) == new_sha[n]  # fetch follows the manifest to the newest lineage
    assert shipper.metrics.lineage._value.get() == len(new_names)
    shipper.close()


def test_unreachable_server_names_the_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipper.keys.local import LocalKeyring

    state = tmp_path / "state"
    state.mkdir()
    LocalKeyring.create(state / "keyring")
    (state / "config.toml").write_text(
        f'state_dir = "{state}"\n[mysql]\nsocket = "{tmp_path}/no.sock"\n'
        f'[[targets]]\nurl = "file://{state}/archive"\n'
        f'[[keys]]\nprovider = "local"\npath = "{state}/keyring"\n'
    )
    assert cli(["run", "--once", "--state-dir", str(state)]) == 10
    assert f"{tmp_path}/no.sock" in capsys.readouterr().err
    assert not (state / "archive").exists()


def test_object_copied_under_another_tenant_fails_to_decrypt(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same keyring, same bucket: an object copied to tenant B's prefix (or renamed to
    another binlog) must not decrypt as B's, because its context names tenant A."""
    state = tmp_path / "state"
    write_config(state, server, tenant="alice")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    names = closed_binlogs(server)
    backend = FileBackend(state / "archive")
    key = archived(state)[names[0]]
    stolen = key.replace("alice/", "bob/", 1)
    renamed = key.replace(names[0], "mysql-bin.999999")
    for k in (stolen, renamed):
        with backend.open(key) as f:
            backend.put(k, f, size=backend.stat(key).size, metadata=backend.stat(key).metadata)
    capsys.readouterr()
    for k in (stolen, renamed):
        out = tmp_path / "out"
        rc = cli(["fetch", names[0], "--key", k, "-o", str(out), "--state-dir", str(state)])
        assert rc == 3
        assert "differs from the expected" in capsys.readouterr().err
        assert not out.exists()
    assert (
        cli(
            ["fetch", names[0], "--key", key, "-o", str(tmp_path / "ok"), "--state-dir", str(state)]
        )
        == 0
    )


@pytest.mark.skipif(
    not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == os.stat("/tmp").st_dev,
    reason="needs /dev/shm on another filesystem than the binlogs",
)
def test_state_dir_on_another_filesystem_stages_by_copy(server: SandboxServer) -> None:
    """A hardlink cannot cross filesystems: staging copies (temp name + rename), 0600."""
    import shutil
    import tempfile

    state = Path(tempfile.mkdtemp(prefix="bs-state-", dir="/dev/shm"))
    try:
        cfg = load(write_config(state, server))
        shipper = Shipper(cfg)
        name = closed_binlogs(server)[0]
        dst = shipper.staging / name
        stage(server.binlog_dir / name, dst)
        assert os.stat(dst).st_ino != os.stat(server.binlog_dir / name).st_ino  # a copy
        assert sha(dst) == sha(server.binlog_dir / name)
        assert oct(os.stat(dst).st_mode & 0o777) == "0o600"
        assert not list(shipper.staging.glob("*.copying"))
        dst.unlink()
        assert shipper.run_once().ok
        assert sorted(archived(state)) == closed_binlogs(server)
        shipper.close()
    finally:
        shutil.rmtree(state, ignore_errors=True)
