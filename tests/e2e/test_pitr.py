"""The proof: point-in-time restores on a real MariaDB equal what the database held.

A workload writes one transaction at a time and records, after each, the
time, the GTID position and ``CHECKSUM TABLE`` of every table. Base backups
(mariabackup and mysqldump) are taken in the middle; writing continues across
more than 5 rotations; the shipper archives everything. Then, for random time
targets, one right at a rotation, GTID and position targets and ``latest``,
each restore into a fresh datadir must give the checksums recorded at the
moment the plan says it restores to -- for both backup tools and both replay
paths.

MariaDB stamps whole seconds, so for a time target the test does not trust the
plan's choice blindly: from its own clock readings around each transaction it
checks the chosen boundary is one the 'exclude' policy allows, then compares
checksums with that boundary's moment.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shipper.cli import main as cli
from shipper.pipeline.ship import Shipper
from shipper.restore.model import iso_us
from shipper.sandbox import SandboxServer
from tests.helpers import TABLES, World, checksums, load, run_cli, workload, write_config

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]


@pytest.fixture(scope="module")
def world(
    mariadb_factory: Callable[..., SandboxServer], tmp_path_factory: pytest.TempPathFactory
) -> World:
    server = mariadb_factory(server_id=21)
    state = tmp_path_factory.mktemp("pitr") / "state"
    write_config(state, server, tenant="pitr")
    server.execute(*(f"CREATE DATABASE IF NOT EXISTS {t.split('.')[0]}" for t in TABLES))
    for t in TABLES:
        server.execute(
            f"CREATE TABLE {t} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "v VARCHAR(200), n INT) ENGINE=InnoDB"
        )
    w = World(server, state)
    rng = random.Random(20261124)
    workload(w, 60, rng, rotate_every=25)
    for tool in ("mariabackup", "mysqldump"):
        rc = cli(["backup", "take", "--tool", tool, "--state-dir", str(state), "--json"])
        assert rc == 0
        workload(w, 10, rng, rotate_every=0)
    w.backups_done = time.time()
    workload(w, 180, rng, rotate_every=30, quiet_after_first_rotation=True)  # 6 rotations
    server.flush_binary_logs()
    shipper = Shipper(load(state / "config.toml"))
    try:
        res = shipper.run_once()
    finally:
        shipper.close()
    assert res.ok, res
    from shipper.manifest import Manifest

    with Manifest(state / "manifest.sqlite") as m:
        for b in m.backups():
            w.backups[b["tool"]] = b["id"]
    assert set(w.backups) == {"mariabackup", "mysqldump"}
    return w


def plan_json(
    w: World, target: str, capsys: pytest.CaptureFixture[str], backup: str | None = None
) -> dict[str, Any]:
    args = ["restore", "plan", "--to", target, "--state-dir", str(w.state), "--json"]
    if backup:
        args += ["--backup", w.backups[backup]]
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def restore(
    w: World, target: str, tool: str, replay: str, tmp: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], dict[str, int]]:
    """Restore to ``target`` from ``tool``'s backup; the plan and the restored checksums."""
    w.restores += 1
    base = tmp / f"r{w.restores}"
    args = [
        "restore",
        "apply",
        "--to",
        target,
        "--state-dir",
        str(w.state),
        "--backup",
        w.backups[tool],
        "--datadir",
        str(base / "data"),
        "--replay",
        replay,
        "--work-dir",
        str(base / "work"),
        "--json",
    ]
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    doc = json.loads(out)
    restored = SandboxServer(base_dir=base, server_id=99)
    restored.start()
    try:
        return doc["plan"], checksums(restored)
    finally:
        restored.stop()


def check_time_boundary(w: World, plan: dict[str, Any], t: float) -> int:
    """The moment a time plan restores to, checked against the policy 'exclude'."""
    k = w.moment_for_gtid(plan["gtid_position"])
    sec = int(t)
    # Transaction k is applied: its stamp (somewhere in [begin, after]) may precede the
    # target's second. Transaction k+1 is not: its stamp may fall in that second or later.
    assert int(w.moments[k].begin) < sec, (k, plan)
    if k + 1 < len(w.moments):
        assert int(w.moments[k + 1].after) >= sec, (k, plan)
    return k


def test_time_targets_mariabackup_applier(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = world
    rng = random.Random(7)
    first = next(i for i, m in enumerate(w.moments) if m.begin > w.backups_done)
    span = (w.moments[first].after, w.moments[-1].begin)
    times = sorted(rng.uniform(*span) for _ in range(5))
    # ... and one right at a rotation: the first whole second after it, in the quiet
    # second the workload left there, restores exactly the rotated binlog's end.
    rotated_at, closed = next(r for r in w.rotations if r[0] > w.backups_done)
    times.append(float(int(rotated_at) + 1))
    seen_shared_second = False
    for t in times:
        target = iso_us(int(t * 1_000_000))
        plan, sums = restore(w, target, "mariabackup", "applier", tmp_path, capsys)
        k = check_time_boundary(w, plan, t)
        assert sums == w.moments[k].checksums, (target, plan)
        if t == times[-1]:
            assert plan["stop"]["file"] == closed and w.moments[k].after < rotated_at
            assert w.moments[k + 1].begin > rotated_at
        prec = plan["precision"]
        assert prec["resolution"] == "second" and prec["policy"] == "exclude"
        if prec["same_second"]:
            seen_shared_second = True
            assert prec["included"] == 0 and "exclude" in prec["note"]
    assert seen_shared_second, "no target fell in a second holding several transactions"


def test_gtid_and_latest_mariabackup_applier(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = world
    k = len(w.moments) - 40
    plan, sums = restore(w, w.moments[k].gtid, "mariabackup", "applier", tmp_path, capsys)
    assert plan["gtid_position"] == w.moments[k].gtid
    assert sums == w.moments[k].checksums
    plan, sums = restore(w, "latest", "mariabackup", "applier", tmp_path, capsys)
    assert plan["gtid_position"] == w.moments[-1].gtid
    assert sums == w.moments[-1].checksums


def test_mysqldump_pipe(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = world
    t = w.moments[-70].after + 0.5
    plan, sums = restore(w, iso_us(int(t * 1_000_000)), "mysqldump", "pipe", tmp_path, capsys)
    assert sums == w.moments[check_time_boundary(w, plan, t)].checksums
    k = len(w.moments) - 25
    plan, sums = restore(w, w.moments[k].gtid, "mysqldump", "pipe", tmp_path, capsys)
    assert plan["gtid_position"] == w.moments[k].gtid and sums == w.moments[k].checksums
    plan, sums = restore(w, "latest", "mysqldump", "pipe", tmp_path, capsys)
    assert sums == w.moments[-1].checksums


def test_mariabackup_pipe_and_mysqldump_applier(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = world
    t = w.moments[-100].after + 0.3
    plan, sums = restore(w, iso_us(int(t * 1_000_000)), "mariabackup", "pipe", tmp_path, capsys)
    assert sums == w.moments[check_time_boundary(w, plan, t)].checksums
    # A FILE:POS target, exact: the end of the transaction a GTID plan stops after.
    k = len(w.moments) - 55
    stop = plan_json(w, w.moments[k].gtid, capsys)["stop"]
    plan, sums = restore(
        w, f"{stop['file']}:{stop['position']}", "mysqldump", "applier", tmp_path, capsys
    )
    assert plan["gtid_position"] == w.moments[k].gtid and sums == w.moments[k].checksums


def test_refusals(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    w = world
    base = ["restore", "plan", "--state-dir", str(w.state), "--to"]
    before = iso_us(int((w.moments[0].begin - 3600) * 1_000_000))
    rc, _, err = run_cli([*base, before], capsys)
    assert rc == 12 and "before" in err and "recoverable window" in err
    after = iso_us(int((time.time() + 3600) * 1_000_000))
    rc, _, err = run_cli([*base, after], capsys)
    assert rc == 12 and "after the newest archived event" in err and "recoverable window" in err
    rc, _, err = run_cli([*base, "2026-11-24T10:41:07"], capsys)
    assert rc == 12 and "no UTC offset" in err
    rc, _, err = run_cli([*base, "0-21-999999"], capsys)
    assert rc == 12 and "not in the archive" in err


def test_backup_list_register_and_plan_text(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = world
    rc, out, _ = run_cli(["backup", "list", "--state-dir", str(w.state), "--json"], capsys)
    rows = json.loads(out)
    assert rc == 0 and {r["tool"] for r in rows} == {"mariabackup", "mysqldump"}
    for r in rows:
        assert r["object_key"].startswith("pitr/mysql/21/backups/") and r["gtid_set"]
    rc, out, _ = run_cli(["backup", "list", "--state-dir", str(w.state)], capsys)
    assert rc == 0 and all(r["id"] in out for r in rows)
    # An external backup, registered from its xtrabackup_binlog_info, in another state dir.
    other = tmp_path / "other"
    write_config(other, w.server)
    info = tmp_path / "xtrabackup_binlog_info"
    info.write_text("mysql-bin.000004\t1234\t0-21-90\n")
    rc, out, err = run_cli(
        [
            "backup",
            "register",
            str(info),
            "--state-dir",
            str(other),
            "--id",
            "ext1",
            "--consistent-at",
            "2026-11-24T01:00:00Z",
        ],
        capsys,
    )
    assert rc == 0, err
    assert "registered backup ext1 (mariabackup) at mysql-bin.000004:1234" in out
    rc, out, _ = run_cli(["backup", "list", "--state-dir", str(other), "--json"], capsys)
    (row,) = json.loads(out)
    assert (row["id"], row["binlog_pos"], row["gtid_set"]) == ("ext1", 1234, "0-21-90")
    # The human plan names the backup, each binlog and the precision.
    rc, out, _ = run_cli(["restore", "plan", "--to", "latest", "--state-dir", str(w.state)], capsys)
    assert rc == 0 and "backup     " in out and "precision  transaction" in out
    assert "window     " in out


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("replay", ["applier", "pipe"])
def test_interrupted_restore_resumes(world: World, tmp_path: Path, replay: str) -> None:
    import argparse

    from shipper.cli.restore import make_plan, open_source
    from shipper.keys import make_provider
    from shipper.restore.executor import ApplyOptions, Executor

    w = world
    k = len(w.moments) - 30
    cfg = load(w.state / "config.toml")
    backend = open_source(cfg, None)
    providers = [make_provider(x) for x in cfg.keys]
    ns = argparse.Namespace(
        to=w.moments[k].gtid, ambiguous="exclude", backup_id=w.backups["mariabackup"]
    )
    plan = make_plan(ns, cfg, backend, providers)
    assert len(plan.steps) >= 3

    def boom(phase: str, done: int, total: int) -> None:
        if phase == "replay":
            raise _Interrupt

    def opts(progress: Any = None) -> ApplyOptions:
        o = ApplyOptions(work_dir=tmp_path / "work", datadir=tmp_path / "r" / "data", replay=replay)
        if progress is not None:
            o.progress = progress
        return o

    with pytest.raises(_Interrupt):
        Executor(plan, backend, providers, opts(boom)).run()
    journal = json.loads((tmp_path / "work" / "restore-state.json").read_text())
    assert journal["base"] is True and not journal.get("done")
    Executor(plan, backend, providers, opts()).run()
    restored = SandboxServer(base_dir=tmp_path / "r", server_id=98)
    restored.start()
    try:
        assert checksums(restored) == w.moments[k].checksums
    finally:
        restored.stop()
    # Done is done: a third run changes nothing.
    assert Executor(plan, backend, providers, opts(boom)).run().stop_pos == plan.stop.offset


def test_mysqldump_pipe_into_an_existing_server(
    world: World,
    mariadb_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    w = world
    target = mariadb_factory(server_id=22)
    k = len(w.moments) - 12
    args = [
        "restore",
        "apply",
        "--to",
        w.moments[k].gtid,
        "--state-dir",
        str(w.state),
        "--backup",
        w.backups["mysqldump"],
        "--target-dsn",
        f"socket={target.socket_path},user=root",
        "--replay",
        "pipe",
        "--work-dir",
        str(tmp_path / "work"),
        "--json",
    ]
    rc, _, err = run_cli(args, capsys)
    assert rc == 0, err
    assert checksums(target) == w.moments[k].checksums
    # The applier needs the datadir; a mariabackup cannot be loaded into a running server.
    rc, _, err = run_cli(
        [*args[:-5], "--replay", "applier", "--work-dir", str(tmp_path / "w2")], capsys
    )
    assert rc == 12 and "--datadir" in err


def test_gap_in_the_archive_is_refused(
    mariadb_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.helpers import rotate

    server = mariadb_factory(server_id=23)
    state = tmp_path / "state"
    write_config(state, server, tenant="gap")
    rotate(server, 1, rows=50)
    assert cli(["backup", "take", "--tool", "mysqldump", "--state-dir", str(state)]) == 0
    rotate(server, 1, rows=50)
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    # Two binlogs are purged before the shipper sees them: a gap.
    rotate(server, 3, rows=50)
    last = server.binary_logs()[-2][0]
    for _ in range(100):  # the server keeps a binlog until its checkpoint is durable
        server.execute(f"PURGE BINARY LOGS TO '{last}'")
        if server.binary_logs()[0][0] == last:
            break
        time.sleep(0.1)
    assert server.binary_logs()[0][0] == last
    cli(["run", "--once", "--state-dir", str(state)])
    rc, out, err = run_cli(["restore", "plan", "--to", "latest", "--state-dir", str(state)], capsys)
    assert rc == 12 and "is missing from the archive" in err, (err, out)
    assert "restore to a point before it, or from a backup taken after it" in err
