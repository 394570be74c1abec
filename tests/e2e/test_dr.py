"""DR end to end: the archive alone restores the database.

A real MariaDB ships to moto S3, fake GCS and a file:// target at once
(direct_dual), with a mariabackup base backup in the middle and more binlog
rotations after it; the workload records ``CHECKSUM TABLE`` after every
transaction (the helpers of test_pitr.py). Then the state dir is deleted. On a
new state dir holding only the config and the keyring, ``restore plan`` and
``restore apply --from`` each target, to a time and to ``latest``, must give the
recorded checksums -- and every target, and the host manifest before it was
lost, must give the same plan.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipper.cli import main as cli
from shipper.keys import make_provider
from shipper.keys.local import LocalKeyring
from shipper.manifest import Manifest
from shipper.restore.model import iso_us
from shipper.sandbox import SandboxServer
from tests.e2e.test_pitr import TABLES, World, check_time_boundary, checksums, run_cli, workload
from tests.helpers import load
from tests.services.cloud import FakeGcs, Moto

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]


@dataclass
class DR:
    w: World
    state: Path  # the new state dir: config + keyring, nothing else
    urls: dict[str, str]  # scheme -> target URL
    backup_id: str
    backup_done: float
    time_target: str
    manifest_plans: dict[str, dict[str, Any]]  # target -> plan made on the shipping host


def _config(state: Path, server: SandboxServer, urls: dict[str, str], moto: Moto) -> str:
    return f"""
tenant = "dr"
state_dir = "{state}"

[mysql]
socket = "{server.socket_path}"
user = "root"

[routing]
primary = "aws"
direct_dual = true

[[targets]]
url = "{urls["s3"]}"
endpoint_url = "{moto.endpoint_url}"
region = "{moto.region}"

[[targets]]
url = "{urls["gs"]}"

[[targets]]
url = "{urls["file"]}"

[[keys]]
provider = "local"
path = "{state / "keyring"}"
"""


def _plan(state: Path, target: str, source: str | None, capsys: Any) -> dict[str, Any]:
    args = ["restore", "plan", "--to", target, "--state-dir", str(state), "--json"]
    rc, out, err = run_cli([*args, "--from", source] if source else args, capsys)
    assert rc == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def _manifest_plan(state: Path, target: str) -> dict[str, Any]:
    """What the shipping host plans from its manifest (no --from)."""
    from shipper.cli.restore import make_plan, open_source

    cfg = load(state / "config.toml")
    ns = argparse.Namespace(to=target, ambiguous="exclude", backup_id=None)
    backend = open_source(cfg, None)
    return make_plan(ns, cfg, backend, [make_provider(k) for k in cfg.keys]).to_dict()


@pytest.fixture(scope="module")
def dr(
    mariadb_factory: Callable[..., SandboxServer],
    moto: Moto,
    fake_gcs: FakeGcs,
    tmp_path_factory: pytest.TempPathFactory,
) -> DR:
    root = tmp_path_factory.mktemp("dr")
    server = mariadb_factory(server_id=41)
    urls = {
        "s3": f"s3://{moto.bucket(versioning=True)}/archive",
        "gs": f"gs://{fake_gcs.bucket()}/archive",
        "file": f"file://{root / 'file-archive'}",
    }
    host = root / "host-state"
    host.mkdir()
    LocalKeyring.create(host / "keyring")
    (host / "config.toml").write_text(_config(host, server, urls, moto))
    server.execute(*(f"CREATE DATABASE IF NOT EXISTS {t.split('.')[0]}" for t in TABLES))
    for t in TABLES:
        server.execute(
            f"CREATE TABLE {t} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "v VARCHAR(200), n INT) ENGINE=InnoDB"
        )
    w = World(server, host)
    rng = random.Random(20261201)
    workload(w, 30, rng, rotate_every=15)
    assert cli(["backup", "take", "--tool", "mariabackup", "--state-dir", str(host)]) == 0
    backup_done = time.time()
    workload(w, 60, rng, rotate_every=20)  # 3 more rotations after the backup
    server.flush_binary_logs()
    assert cli(["run", "--once", "--state-dir", str(host)]) == 0
    with Manifest(host / "manifest.sqlite") as m:
        (backup,) = m.backups()
    time_target = _time_target(w, backup_done)
    manifest_plans = {t: _manifest_plan(host, t) for t in (time_target, "latest")}
    # The host is lost: only the config and the key survive (the key escrowed elsewhere).
    state = root / "dr-state"
    state.mkdir()
    shutil.copy2(host / "keyring", state / "keyring")
    shutil.rmtree(host)
    (state / "config.toml").write_text(_config(state, server, urls, moto))
    w.state = state
    return DR(w, state, urls, backup["id"], backup_done, time_target, manifest_plans)


def _time_target(w: World, after: float) -> str:
    """A time between two transactions well after the backup (same one every call)."""
    later = [m for m in w.moments if m.begin > after + 0.5]
    mid = later[len(later) // 2]
    return iso_us(int((mid.after + 0.002) * 1_000_000))


def test_every_target_alone_gives_the_hosts_plan(
    dr: DR, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sorted(p.name for p in dr.state.iterdir()) == ["config.toml", "keyring"]
    for target, want in dr.manifest_plans.items():
        for url in dr.urls.values():
            assert _plan(dr.state, target, url, capsys) == want, (url, target)
    assert want["backup"]["id"] == dr.backup_id and len(want["binlogs"]) >= 3
    assert not (dr.state / "manifest.sqlite").exists()
    # No --from and no manifest: the first target is scanned, and stderr says so.
    rc, out, err = run_cli(
        ["restore", "plan", "--to", "latest", "--state-dir", str(dr.state), "--json"], capsys
    )
    assert rc == 0 and json.loads(out) == dr.manifest_plans["latest"]
    assert "no state manifest" in err and dr.urls["s3"] in err
    for url in dr.urls.values():
        rc, out, err = run_cli(
            ["backup", "list", "--state-dir", str(dr.state), "--from", url, "--json"], capsys
        )
        assert rc == 0, err
        assert [(r["id"], r["verification"]["state"]) for r in json.loads(out)] == [
            (dr.backup_id, "verified")
        ]


def _apply(
    dr: DR, target: str, url: str, tmp: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], dict[str, int]]:
    base = tmp / f"r-{len(list(tmp.iterdir()))}"
    args = [
        "restore",
        "apply",
        "--to",
        target,
        "--from",
        url,
        "--state-dir",
        str(dr.state),
        "--datadir",
        str(base / "data"),
        "--json",
    ]
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    restored = SandboxServer(base_dir=base, server_id=99)
    restored.start()
    try:
        return json.loads(out)["plan"], checksums(restored)
    finally:
        restored.stop()


@pytest.mark.parametrize("scheme", ["s3", "gs", "file"])
def test_restore_from_each_target_alone(
    dr: DR, scheme: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w, url = dr.w, dr.urls[scheme]
    plan, sums = _apply(dr, dr.time_target, url, tmp_path, capsys)
    t = dt_seconds(dr.time_target)
    k = check_time_boundary(w, plan, t)
    assert sums == w.moments[k].checksums, (url, plan)
    assert w.moments[k].begin > dr.backup_done  # replayed past the backup, not the backup alone
    plan, sums = _apply(dr, "latest", url, tmp_path, capsys)
    assert plan["gtid_position"] == w.moments[-1].gtid
    assert sums == w.moments[-1].checksums


def dt_seconds(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
