"""Staging never changes the server's files, and ship-time checks on the binlog itself.

Real binlogs in a real binlog dir (see binlog_host.py), the real pipeline, a
file:// archive; the non-owner runs drop to another uid in a subprocess, the
out-of-space run mounts its own 1 MiB tmpfs in a private mount namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipper import archive, objects
from shipper.binlog import scan_file
from shipper.keys import make_provider
from shipper.manifest import Manifest
from shipper.pipeline.stage import stage
from shipper.storage.file import FileBackend
from tests.integration.binlog_host import MARIADB, Host, fixture, make_host, run_pass_as

NOBODY = 65534
OTHER = 12345  # the "server's" uid: neither root nor the shipper


def identity(path: Path) -> tuple[int, int, int, int, int]:
    """What staging must never change on the server's file: mode, owner, links, inode."""
    st = os.lstat(path)
    return (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_ino)


def archived_keys(host: Host) -> dict[str, str]:
    out = {}
    for info in FileBackend(host.archive).list():
        base = info.key.rsplit("/", 1)[-1]
        if base.endswith(objects.OBJECT_SUFFIX) and not base.endswith(objects.INDEX_SUFFIX):
            out[".".join(base.split(".")[:2])] = info.key  # mysql-bin.NNNNNN[.sha12|.lineage-]
    return out


def fetched(host: Host, key: str, dest: Path) -> bytes:
    providers = [make_provider(k) for k in host.cfg.keys]
    archive.fetch_to_file(FileBackend(host.archive), key, providers, dest)
    return dest.read_bytes()


@pytest.fixture()
def shared_tmp() -> Iterator[Path]:
    """A temp dir every uid can traverse (pytest's tmp_path is 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix="bs-staging-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changes file owners and uids")


def give_to(host: Host, uid: int) -> None:
    """The state dir, archive and keyring belong to the shipper's uid."""
    host.archive.mkdir(exist_ok=True)
    for p in (host.state_dir, host.archive, host.root / "keyring", host.config_path):
        os.chown(p, uid, uid)


def server_owned(host: Host, mode: int = 0o640) -> None:
    """The binlog dir and its files belong to another uid, as a server's do."""
    os.chown(host.binlog_dir, OTHER, OTHER)
    host.binlog_dir.chmod(0o755)
    for p in host.binlog_dir.iterdir():
        os.chown(p, OTHER, OTHER, follow_symlinks=False)
        if not p.is_symlink():
            p.chmod(mode)


# --------------------------------------------------------------------------- symlinks


def test_symlink_in_binlog_dir_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    host = make_host(tmp_path, [fixture(n) for n in MARIADB])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "precious"
    target.write_bytes(fixture(MARIADB[1]))
    target.chmod(0o644)
    link = host.binlog_dir / host.names[1]
    link.unlink()
    link.symlink_to(target)
    before = identity(target)

    result = host.ship()

    assert identity(target) == before  # never chmodded, never linked
    assert link.is_symlink()
    assert sorted(result.shipped) == [host.names[0], host.names[2]]
    assert list(result.failed) == [host.names[1]]
    msg = result.failed[host.names[1]]
    assert str(link) in msg and "symlink" in msg
    assert not list((host.state_dir / "staging").iterdir())
    with Manifest(host.state_dir / "manifest.sqlite") as m:
        row = m.get(host.names[1])
        assert row is not None and row.state == "discovered"
        assert row.error is not None and "symlink" in row.error


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_non_regular_file_in_binlog_dir_is_refused(tmp_path: Path, kind: str) -> None:
    host = make_host(tmp_path, [fixture(n) for n in MARIADB])
    odd = host.binlog_dir / host.names[1]
    odd.unlink()
    if kind == "fifo":
        os.mkfifo(odd)  # opening it blocking would hang the shipper forever
    else:
        odd.mkdir()
    result = host.ship()
    assert sorted(result.shipped) == [host.names[0], host.names[2]]
    assert "not a regular file" in result.failed[host.names[1]]
    assert str(odd) in result.failed[host.names[1]]


# --------------------------------------------------------------------------- ownership


@needs_root
def test_root_stages_a_servers_file_without_changing_it(shared_tmp: Path) -> None:
    """The hardlink IS the server's inode: no chmod, so its mode and owner stay."""
    host = make_host(shared_tmp / "h", [fixture(n) for n in MARIADB])
    server_owned(host, 0o640)
    src = host.binlog_dir / host.names[0]
    before = identity(src)
    dst = host.state_dir / "staging" / host.names[0]
    dst.parent.mkdir(mode=0o700)
    stage(src, dst)
    st = os.stat(src)
    assert (st.st_mode, st.st_uid, st.st_gid) == before[:3]  # mode 0640, owner OTHER
    assert st.st_nlink == 2 and os.stat(dst).st_ino == st.st_ino  # a hardlink, unmodified
    dst.unlink()

    result = host.ship()
    assert sorted(result.shipped) == host.names and not result.failed
    for name in host.names:
        assert identity(host.binlog_dir / name)[:4] == (*before[:3], 1)


@needs_root
def test_non_owner_under_protected_hardlinks_stages_by_copy_and_ships(shared_tmp: Path) -> None:
    """As a non-owner, fs.protected_hardlinks refuses the link (EPERM): copy, ship."""
    host = make_host(shared_tmp / "h", [fixture(n) for n in MARIADB])
    server_owned(host, 0o644)
    give_to(host, NOBODY)
    before = {n: identity(host.binlog_dir / n) for n in host.names}
    src = host.binlog_dir / host.names[0]
    staged = host.state_dir / "staging" / host.names[0]
    host.state_dir.joinpath("staging").mkdir(mode=0o700)
    os.chown(host.state_dir / "staging", NOBODY, NOBODY)

    out = run_pass_as(host, NOBODY, stage=(src, staged))

    assert "stage_error" not in out, out
    if Path("/proc/sys/fs/protected_hardlinks").read_text().strip() == "1":
        assert out["staged_ino"] != before[host.names[0]][4]  # a copy, not a link
    assert sorted(out["shipped"]) == host.names, out
    assert not out["failed"]
    assert {n: identity(host.binlog_dir / n) for n in host.names} == before
    keys = archived_keys(host)
    for name in host.names:
        assert fetched(host, keys[name], shared_tmp / f"out-{name}") == fixture(
            MARIADB[host.names.index(name)]
        )


@needs_root
def test_unreadable_binlog_is_a_clear_error_and_the_rest_ships(shared_tmp: Path) -> None:
    host = make_host(shared_tmp / "h", [fixture(n) for n in MARIADB])
    server_owned(host, 0o644)
    locked = host.binlog_dir / host.names[1]
    locked.chmod(0o000)
    give_to(host, NOBODY)
    before = identity(locked)

    out = run_pass_as(host, NOBODY)

    assert sorted(out["shipped"]) == [host.names[0], host.names[2]], out
    msg = out["failed"][host.names[1]]
    assert str(locked) in msg and "not readable" in msg and "read access" in msg
    assert identity(locked) == before


# --------------------------------------------------------------------------- no space

_ENOSPC_RUNNER = """
import json, subprocess, sys
from pathlib import Path
state = Path(sys.argv[1])
subprocess.run(["mount", "--make-rprivate", "/"], check=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(state)],
               check=True)
from tests.integration.binlog_host import Host
host = Host(**{k: (Path(v) if k != "names" else v) for k, v in json.loads(sys.argv[2]).items()})
r = host.ship()
staging = sorted(p.name for p in (state / "staging").iterdir())
print(json.dumps({"shipped": r.shipped, "failed": r.failed, "staging": staging}))
"""


@needs_root
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) to mount a tmpfs")
def test_enospc_in_state_dir_cleans_up_reports_and_continues(shared_tmp: Path) -> None:
    """State dir on a 1 MiB tmpfs (binlogs elsewhere: staging copies). The 3 MiB binlog
    does not fit: the partial copy is removed, the error names the dir and the space
    needed, and the binlogs after it still ship."""
    big = fixture(MARIADB[1]) + bytes(3 << 20)  # a real binlog + zeros: truncated, valid
    host = make_host(shared_tmp / "h", [fixture(MARIADB[0]), big, fixture(MARIADB[2])])
    # one binlog at a time: with several workers, a binlog staged (or its manifest row
    # written) while the big copy fills the 1 MiB disk fails with it, reported the same
    # way, and is retried next pass; which one that is depends on thread timing
    host.config_path.write_text("workers = 1\n" + host.config_path.read_text())
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace here: {probe.stderr.strip()}")
    fields = {k: str(v) if isinstance(v, Path) else v for k, v in vars(host).items()}
    proc = subprocess.run(
        [
            "unshare",
            "-m",
            sys.executable,
            "-c",
            _ENOSPC_RUNNER,
            str(host.state_dir),
            json.dumps(fields),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(Path(__file__).parents[2]),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(out["shipped"]) == [host.names[0], host.names[2]], out
    msg = out["failed"][host.names[1]]
    assert "out of space" in msg and str(host.state_dir / "staging") in msg
    assert f"{len(big)} bytes" in msg
    assert out["staging"] == []  # no partial copy left behind
    assert not list(host.state_dir.iterdir())  # the tmpfs is gone with its namespace


# --------------------------------------------------------------------------- ship-time checks


def test_binlog_with_trailing_zeros_is_archived_and_flagged_truncated(tmp_path: Path) -> None:
    """A pre-allocated/crashed file: real events + 64 KiB of zeros. It ships (not a
    format error forever), at its normal key, byte-identical, marked truncated."""
    good = fixture(MARIADB[1])
    host = make_host(tmp_path, [fixture(MARIADB[0]), good + bytes(64 << 10)])
    result = host.ship()
    name = host.names[1]
    assert sorted(result.shipped) == host.names and not result.failed
    keys = archived_keys(host)
    assert "/quarantine/" not in keys[name]
    assert fetched(host, keys[name], tmp_path / "out") == good + bytes(64 << 10)
    with Manifest(host.state_dir / "manifest.sqlite") as m:
        row = m.get(name)
        assert row is not None and row.state == "committed"
        assert row.file_status == "truncated"
        entries = [e for e in m.journal_entries("truncated") if e["binlog"] == name]
    assert entries and entries[0]["detail"]["truncated_at"] == len(good)


def test_fde_checksum_flag_flipped_is_quarantined_and_flagged(tmp_path: Path) -> None:
    """The FDE says "no checksums" while its events carry CRC32s: quarantined and
    flagged like a CRC failure, never at the normal key."""
    good = fixture(MARIADB[1])
    (size,) = (int.from_bytes(good[13:17], "little"),)
    flipped = bytearray(good)
    assert flipped[4 + size - 5] == 1
    flipped[4 + size - 5] = 0  # checksum_alg: CRC32 -> off
    host = make_host(tmp_path, [fixture(MARIADB[0]), bytes(flipped), fixture(MARIADB[2])])
    assert scan_file(host.binlog_dir / host.names[1]).status == "checksum_flag_mismatch"

    result = host.ship()

    name = host.names[1]
    assert result.flagged == [name]
    assert sorted(result.shipped) == [host.names[0], host.names[2]]
    assert not result.ok  # run --once exits 1
    keys = archived_keys(host)
    assert "/quarantine/" in keys[name]
    normal = [k for k in keys.values() if k.endswith(f"/{name}.zst.enc")]
    assert normal == []
    with Manifest(host.state_dir / "manifest.sqlite") as m:
        row = m.get(name)
        assert row is not None and row.state == "flagged"
        assert row.file_status == "checksum_flag_mismatch"
        assert row.error is not None and "no checksums" in row.error
    assert fetched(host, keys[name], tmp_path / "out") == bytes(flipped)
    assert stat.S_ISREG(os.stat(host.binlog_dir / name).st_mode)
