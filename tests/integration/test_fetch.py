"""``fetch -o`` writes to what the user named and never replaces it.

Through the CLI over a real file:// archive shipped from real binlogs. Never
against a system path: the device node is our own null device in a temp dir.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shipper import config as config_mod
from shipper.cli import main as cli
from shipper.config import MySQLConfig
from tests.integration.binlog_host import MARIADB, Host, fixture, make_host


@pytest.fixture()
def host(tmp_path: Path) -> Host:
    h = make_host(tmp_path / "host", [fixture(n) for n in MARIADB[:2]])
    result = h.ship()
    assert sorted(result.shipped) == h.names
    return h


def fetch(host: Host, *extra: str, name: str | None = None) -> int:
    return cli(["fetch", name or host.names[0], "--config", str(host.config_path), *extra])


def original(host: Host, name: str | None = None) -> bytes:
    return fixture(MARIADB[host.names.index(name or host.names[0])])


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_fetch_to_a_device_node_writes_through_it(host: Host, tmp_path: Path) -> None:
    """The /dev/null incident: the node must still be the same char device afterwards."""
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    node.chmod(0o666)
    before = os.lstat(node)
    assert fetch(host, "-o", str(node)) == 0
    after = os.lstat(node)
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_mode, after.st_uid, after.st_gid, after.st_rdev, after.st_ino) == (
        before.st_mode,
        before.st_uid,
        before.st_gid,
        before.st_rdev,
        before.st_ino,
    )
    assert leftovers(tmp_path) == []


def test_fetch_to_a_fifo_streams_the_exact_bytes(host: Host, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o600)
    got = bytearray()

    def reader() -> None:
        with open(fifo, "rb") as f:
            got.extend(f.read())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    assert fetch(host, "-o", str(fifo)) == 0
    t.join(timeout=60)
    assert bytes(got) == original(host)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_fetch_to_stdout(host: Host) -> None:
    argv = ["fetch", host.names[1], "-o", "-", "--config", str(host.config_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "shipper", *argv],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == original(host, host.names[1])
    assert b"verified, written to stdout" in proc.stderr


def test_existing_file_is_refused_without_force_then_replaced(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"the user's file")
    assert fetch(host, "-o", str(out)) == 5
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == b"the user's file"
    assert fetch(host, "-o", str(out), "--force") == 0
    assert out.read_bytes() == original(host)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_symlink_to_a_file_writes_the_target_and_keeps_the_link(host: Host, tmp_path: Path) -> None:
    target = tmp_path / "real"
    target.write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert fetch(host, "-o", str(link)) == 5  # the target is an existing regular file
    assert target.read_bytes() == b"old"
    assert fetch(host, "-o", str(link), "--force") == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == original(host)
    # a dangling link: its target is created, the link stays a link
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "new-target")
    assert fetch(host, "-o", str(dangling)) == 0
    assert dangling.is_symlink()
    assert (tmp_path / "new-target").read_bytes() == original(host)


def test_new_path_is_created_private(host: Host, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "dir" / "binlog"
    assert fetch(host, "-o", str(out)) == 0
    assert out.read_bytes() == original(host)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_directory_is_refused(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fetch(host, "-o", str(tmp_path)) == 2
    assert "is a directory" in capsys.readouterr().err


def test_tampered_object_leaves_the_destination_untouched(host: Host, tmp_path: Path) -> None:
    obj = next(
        p
        for p in host.archive.rglob(f"{host.names[0]}.zst.enc")
        if not p.name.endswith(".meta.json")
    )
    blob = bytearray(obj.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    obj.chmod(0o600)
    obj.write_bytes(bytes(blob))
    out = tmp_path / "out"
    out.write_bytes(b"keep me")
    assert fetch(host, "-o", str(out), "--force") == 3
    assert out.read_bytes() == b"keep me"
    assert leftovers(tmp_path) == []
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # nothing opens the FIFO: if fetch tried to write, it would block here forever
    assert fetch(host, "-o", str(fifo)) == 3
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_fetch_with_a_state_dir_of_only_config_and_keyring(host: Host, tmp_path: Path) -> None:
    """A DR machine: the config and the key, no manifest. The archive listing finds it."""
    dr = tmp_path / "dr"
    dr.mkdir()
    (dr / "keyring").write_bytes((host.root / "keyring").read_bytes())
    (dr / "keyring").chmod(0o600)
    (dr / "config.toml").write_text(
        config_mod.render_default(
            dr,
            tenant="t1",
            mysql=MySQLConfig(),
            archive_url=f"file://{host.archive}",
            keyring=dr / "keyring",
        )
    )
    out = tmp_path / "out"
    rc = cli(["fetch", host.names[1], "-o", str(out), "--state-dir", str(dr)])
    assert rc == 0
    assert out.read_bytes() == original(host, host.names[1])
    assert sorted(p.name for p in dr.iterdir()) == ["config.toml", "keyring"]


def test_fetch_to_a_unix_socket_sends_the_exact_bytes(host: Host, tmp_path: Path) -> None:
    path = tmp_path / "sock"
    got = bytearray()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        srv.bind(str(path))
        srv.listen(1)

        def serve() -> None:
            conn, _ = srv.accept()
            with conn:
                while data := conn.recv(1 << 16):
                    got.extend(data)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        assert fetch(host, "-o", str(path)) == 0
        t.join(timeout=60)
    assert bytes(got) == original(host)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
