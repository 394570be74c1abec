"""Ordered parallel shipping against a real MariaDB: binlogs are sealed, uploaded and
verified at once, and committed strictly in sequence order."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from shipper.cli import main as cli
from shipper.manifest import Manifest
from shipper.sandbox import SandboxServer
from tests.helpers import closed_binlogs, fill_binlogs, rotate, write_config

pytestmark = pytest.mark.mariadb


@pytest.fixture(scope="module")
def mixed(mariadb_factory) -> SandboxServer:  # type: ignore[no-untyped-def]
    """Large and small binlogs interleaved: 40 MB, then six small ones, twice."""
    s = mariadb_factory(server_id=31, max_binlog_size=256 << 20)
    for _ in range(2):
        fill_binlogs(s, 1, mb=40)
        rotate(s, 6, rows=20)
    return s


def test_commits_follow_the_sequence_while_work_overlaps(
    mixed: SandboxServer, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    write_config(state, mixed, tenant="par", extra="workers = 4")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    names = closed_binlogs(mixed)
    assert len(names) == 14
    with Manifest(state / "manifest.sqlite") as m:
        rows = sorted(m.all(), key=lambda r: r.sequence)
        verified = {
            r.name: m.placements(r.name)[f"file://{state / 'archive'}"].verified_at for r in rows
        }
    assert [r.name for r in rows] == names
    assert all(r.state == "committed" for r in rows)
    committed = [r.committed_at for r in rows]
    assert committed == sorted(committed), "a binlog was committed before an earlier one"
    # the work really overlapped: the small binlogs after the first large one (handed
    # to the pool with it) were verified on the target before it was, yet committed
    # after it
    big = [r for r in rows if (r.size or 0) > 16 << 20]
    assert [r.name for r in big] == [names[0], names[7]]
    assert all(verified[n] < verified[names[0]] for n in names[1:4])  # type: ignore[operator]
    # and each is the server's file, byte for byte
    for name in (names[0], names[1], names[-1]):
        out = tmp_path / "fetched" / name
        assert cli(["fetch", name, "-o", str(out), "--state-dir", str(state)]) == 0
        want = hashlib.sha256((mixed.binlog_dir / name).read_bytes()).hexdigest()
        assert hashlib.sha256(out.read_bytes()).hexdigest() == want


def test_one_worker_ships_the_same_archive(mixed: SandboxServer, tmp_path: Path) -> None:
    # workers = 1 is the sequential baseline: same result, nothing overtakes
    state = tmp_path / "state"
    write_config(state, mixed, tenant="par", extra="workers = 1")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    with Manifest(state / "manifest.sqlite") as m:
        rows = sorted(m.all(), key=lambda r: r.sequence)
        url = f"file://{state / 'archive'}"
        verified = [m.placements(r.name)[url].verified_at for r in rows]
    assert [r.state for r in rows] == ["committed"] * 14
    assert verified == sorted(verified)  # type: ignore[type-var]
