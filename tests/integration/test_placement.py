"""Placement per target against a real MariaDB: a lineage conflict on one target
only, backfill of a target added later, routing that says what it will not write,
a damaged manifest, and whole-target storage failures (moto, a closed port)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from shipper.cli import main as cli
from shipper.manifest import Manifest
from shipper.sandbox import SandboxServer
from shipper.storage.file import FileBackend
from tests.helpers import closed_binlogs, rotate, write_config
from tests.services.cloud import Moto, free_port
from tests.unit.test_manifest import damage_a_page

pytestmark = pytest.mark.mariadb


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def binlog_objects(root: Path) -> dict[str, str]:
    """binlog name -> key of every binlog object (not index) in a file archive."""
    out = {}
    for info in FileBackend(root).list():
        base = info.key.rsplit("/", 1)[-1]
        if "/backups/" in info.key or base.endswith(".idx.zst.enc"):
            continue
        if base.endswith(".zst.enc"):
            out[base.split(".zst.enc")[0].split(".lineage-")[0]] = info.key
    return out


def add_target(state: Path, url: str, **options: str) -> None:
    extra = "".join(f'{k} = "{v}"\n' for k, v in options.items())
    with (state / "config.toml").open("a") as f:
        f.write(f'\n[[targets]]\nurl = "{url}"\n{extra}')


def status_json(state: Path, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    capsys.readouterr()
    assert cli(["status", "--json", "--state-dir", str(state)]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_lineage_conflict_on_one_target_only(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Target B already holds *another* server's files under our binlog names (same
    tenant and server id: a rebuilt server). A gets the normal keys, B the lineage
    keys; each placement is recorded, and fetch --from either target returns our bytes."""
    ours, other = mariadb_factory(server_id=41), mariadb_factory(server_id=41)
    a, b = tmp_path / "a", tmp_path / "b"
    state = tmp_path / "state"
    write_config(state, ours, archive=f"file://{a}")
    add_target(state, f"file://{b}")
    ours.execute("CREATE DATABASE app", "CREATE TABLE app.base (id INT PRIMARY KEY)")
    assert cli(["backup", "take", "--tool", "mysqldump", "--state-dir", str(state)]) == 0
    rotate(ours, 2)
    rotate(other, 1, rows=50)
    # the other server ships its mysql-bin.000001 to B first
    write_config(tmp_path / "other", other, archive=f"file://{b}")
    assert cli(["run", "--once", "--state-dir", str(tmp_path / "other")]) == 0
    taken = binlog_objects(b)
    assert set(taken) == set(closed_binlogs(other))
    theirs = {k: FileBackend(b).stat(k).sha256 for k in taken.values()}

    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    names = closed_binlogs(ours)
    with Manifest(state / "manifest.sqlite") as m:
        for name in names:
            row = m.get(name)
            assert row is not None and row.state == "committed"
            placed = m.placements(name)
            assert set(placed) == {f"file://{a}", f"file://{b}"}
            assert all(p.state == "verified" and p.version for p in placed.values())
            key_a, key_b = placed[f"file://{a}"].object_key, placed[f"file://{b}"].object_key
            assert key_a and key_b and ".lineage-" not in key_a
            if name in taken:  # conflict on B only
                assert key_b.startswith(key_a.removesuffix(".zst.enc") + ".lineage-")
            else:
                assert key_b == key_a
            assert row.object_key == key_a
        conflicts = m.journal_entries("lineage_conflict")
        assert {e["binlog"] for e in conflicts} == set(taken) & set(names)
        assert all(e["detail"]["target"] == FileBackend(b).url for e in conflicts)
    # B's other objects are untouched
    assert {k: FileBackend(b).stat(k).sha256 for k in taken.values()} == theirs
    for name in names:
        for target in (a, b):
            out = tmp_path / "out" / target.name / name
            argv = ["fetch", name, "-o", str(out), "--from", f"file://{target}"]
            assert cli([*argv, "--state-dir", str(state)]) == 0
            assert sha(out) == sha(ours.binlog_dir / name), (target, name)
    # restore planned from B replays B's own objects (the lineage key where B had a
    # conflict); planned from A, A's
    with Manifest(state / "manifest.sqlite") as m:
        want = {
            t: {n: m.placements(n)[t].object_key for n in names}
            for t in (f"file://{a}", f"file://{b}")
        }
    for url, keys in want.items():
        capsys.readouterr()
        argv = ["restore", "plan", "--to", "latest", "--from", url, "--json"]
        assert cli([*argv, "--state-dir", str(state)]) == 0
        steps = json.loads(capsys.readouterr().out)["binlogs"]
        assert steps and all(s["object_key"] == keys[s["name"]] for s in steps), url
        assert any(".lineage-" in s["object_key"] for s in steps) == (url == f"file://{b}")
    doc = status_json(state, capsys)
    conflicted = next(r for r in doc["binlogs"] if r["name"] in taken)
    assert conflicted["placements"][f"file://{b}"]["state"] == "lineage"
    assert conflicted["placements"][f"file://{a}"]["state"] == "verified"
    assert conflicted["placements"][f"file://{a}"]["verified_at"].endswith("Z")


def test_backfill_of_a_target_added_later(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ship to A; the server purges the oldest binlogs; add B. One pass gives B every
    committed binlog: resealed from the server's file where it still has it, copied
    from A where it does not; each verified on B. status shows both targets."""
    server = mariadb_factory(server_id=42)
    rotate(server, 4)
    a, b = tmp_path / "a", tmp_path / "b"
    state = tmp_path / "state"
    write_config(state, server, archive=f"file://{a}")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    names = closed_binlogs(server)
    plain = {n: sha(server.binlog_dir / n) for n in names}
    server.purge_binary_logs_to(names[2])  # 000001 and 000002 are gone from the server
    assert not (server.binlog_dir / names[0]).exists()
    add_target(state, f"file://{b}")

    capsys.readouterr()
    assert cli(["run", "--dry-run", "--state-dir", str(state)]) == 0
    dry = json.loads(capsys.readouterr().out)
    (tb,) = [t for t in dry["targets"] if t["url"] == f"file://{b}"]
    assert tb["written"] and tb["backfill"] == names
    assert not b.exists()  # dry run wrote nothing

    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert f"backfill file://{b}: {len(names)} committed binlog(s)" in out
    assert binlog_objects(b) == binlog_objects(a)  # same keys on both
    for name in names:
        dst = tmp_path / "fetched" / name
        argv = ["fetch", name, "-o", str(dst), "--from", f"file://{b}", "--state-dir", str(state)]
        assert cli(argv) == 0
        assert sha(dst) == plain[name]
        idx = FileBackend(b).stat(binlog_objects(b)[name].replace(".zst.enc", ".idx.zst.enc"))
        assert idx.size > 0  # the transaction index came along
    # purged ones were copied byte for byte from A; the rest resealed (new data key)
    for name in names:
        key = binlog_objects(a)[name]
        same = FileBackend(a).stat(key).sha256 == FileBackend(b).stat(key).sha256
        assert same == (name in names[:2]), name
    doc = status_json(state, capsys)
    assert [t["url"] for t in doc["targets"]] == [f"file://{a}", f"file://{b}"]
    for r in doc["binlogs"]:
        assert {p["state"] for p in r["placements"].values()} == {"verified"}, r["name"]
        assert r["committed_at"].endswith("Z") and "T" in r["first_ts"]
    capsys.readouterr()
    assert cli(["status", "--state-dir", str(state)]) == 0
    table = capsys.readouterr().out
    assert f"[2] file://{b}" in table
    assert all(
        "[1]verified [2]verified" in line for line in table.splitlines() if "mysql-bin." in line
    )
    # the next pass has nothing left to fill
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    assert "backfill" not in capsys.readouterr().out


def test_targets_routing_will_not_write_are_shown_with_a_warning(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """s3:// and gs:// beside primary = "local" used to be dropped without a word."""
    server = mariadb_factory(server_id=43)
    rotate(server, 1)
    state = tmp_path / "state"
    write_config(state, server)
    add_target(state, "s3://elsewhere/p")
    add_target(state, "gs://other/p")
    capsys.readouterr()
    assert cli(["run", "--dry-run", "--state-dir", str(state)]) == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    roles = {t["url"]: (t["role"], t["written"]) for t in doc["targets"]}
    assert roles["s3://elsewhere/p"] == ("unused", False)
    assert roles["gs://other/p"] == ("unused", False)
    assert len(doc["warnings"]) == 2
    assert "warning: target s3://elsewhere/p is not written by this host" in cap.err
    assert "routing.direct_dual = true" in cap.err
    for p in doc["pending"]:
        assert list(p["keys"]) == [f"file://{state / 'archive'}"]
        assert p["first_timestamp"].endswith("Z")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    capsys.readouterr()
    assert cli(["status", "--state-dir", str(state)]) == 0
    cap = capsys.readouterr()
    assert "s3://elsewhere/p  unused, NOT WRITTEN by this host" in cap.out
    assert "[2]not-written [3]not-written" in cap.out
    assert "warning: target gs://other/p is not written by this host" in cap.err


def test_damaged_manifest_is_exit_9_with_guidance_not_a_traceback(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = mariadb_factory(server_id=44)
    rotate(server, 2)
    state = tmp_path / "state"
    write_config(state, server)
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    manifest = state / "manifest.sqlite"
    damage_a_page(manifest)
    for argv in (["status"], ["status", "--json"], ["run", "--once"]):
        capsys.readouterr()
        assert cli([*argv, "--state-dir", str(state)]) == 9, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert f"state manifest {manifest} is damaged" in err
        assert "move it aside" in err and "restore plan --from" in err
    # the advice works: moved aside, the next run re-verifies what is archived
    shutil.move(manifest, tmp_path / "damaged.sqlite")
    capsys.readouterr()
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert f"0 shipped, {len(closed_binlogs(server))} already archived" in out


def _s3_config(state: Path, server: SandboxServer, url: str, endpoint: str) -> None:
    write_config(state, server)
    text = (state / "config.toml").read_text()
    text = text.replace(f'url = "file://{state / "archive"}"', f'url = "{url}"')
    text = text.replace('primary = "local"', 'primary = "aws"')
    (state / "config.toml").write_text(
        text.replace(
            f'url = "{url}"', f'url = "{url}"\nendpoint_url = "{endpoint}"\nregion = "us-east-1"'
        )
    )


@pytest.mark.parametrize("failure", ["missing bucket", "closed port"])
def test_a_target_that_fails_as_a_whole_is_reported_once_and_exits_8(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    failure: str,
) -> None:
    server = mariadb_factory(server_id=45)
    rotate(server, 3)
    state = tmp_path / "state"
    bucket = "bs-not-created-yet"
    endpoint = (
        moto.endpoint_url if failure == "missing bucket" else f"http://127.0.0.1:{free_port()}"
    )
    url = f"s3://{bucket}/archive"
    _s3_config(state, server, url, endpoint)
    capsys.readouterr()
    assert cli(["run", "--once", "--state-dir", str(state)]) == 8
    out = capsys.readouterr().out
    names = closed_binlogs(server)
    target_lines = [line for line in out.splitlines() if line.startswith("TARGET")]
    assert len(target_lines) == 1, out  # once per pass, not once per binlog
    assert url in target_lines[0] and f"{len(names)} binlog(s) not written" in target_lines[0]
    assert "FAILED" not in out
    with Manifest(state / "manifest.sqlite") as m:
        assert {r.name: r.state for r in m.all()} == dict.fromkeys(names, "staged")
        assert all(m.placements(n)[url].state == "failed" for n in names)
    # kept staged, so a purge meanwhile loses nothing; once the bucket exists, it ships
    assert sorted(p.name for p in (state / "staging").iterdir() if p.name in names) == names
    if failure == "missing bucket":
        moto.s3.create_bucket(Bucket=bucket)
        assert cli(["run", "--once", "--state-dir", str(state)]) == 0
        with Manifest(state / "manifest.sqlite") as m:
            assert {r.name: r.state for r in m.all()} == dict.fromkeys(names, "committed")
            assert all(m.placements(n)[url].state == "verified" for n in names)


def test_state_dir_lock_and_staging_are_private(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    server = mariadb_factory(server_id=46)
    rotate(server, 1)
    state = tmp_path / "state"
    write_config(state, server)
    state.chmod(0o755)  # as an older release (or a plain mkdir) left it
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "staging").stat().st_mode & 0o777 == 0o700
    for name in ("lock", "manifest.sqlite", "manifest.sqlite-wal", "manifest.sqlite-shm"):
        p = state / name
        if p.exists():
            assert p.stat().st_mode & 0o777 == 0o600, name


def test_backfill_of_a_target_that_already_holds_the_objects_only_verifies(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """What a manifest migrated from v1 meets (it recorded a placement only for the first
    target): B already holds our objects. Backfill verifies them there and records the
    placements; nothing is uploaded again, nothing replaced."""
    server = mariadb_factory(server_id=47)
    rotate(server, 2)
    a, b = tmp_path / "a", tmp_path / "b"
    both = tmp_path / "both"
    write_config(both, server, archive=f"file://{a}")
    add_target(both, f"file://{b}")
    assert cli(["run", "--once", "--state-dir", str(both)]) == 0
    before = {k: FileBackend(b).stat(k).version for k in binlog_objects(b).values()}
    # a host that knew only A (same keyring, so the objects are readable)
    state = tmp_path / "state"
    state.mkdir()
    shutil.copyfile(both / "keyring", state / "keyring")
    (state / "keyring").chmod(0o600)
    write_config(state, server, archive=f"file://{a}")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    add_target(state, f"file://{b}")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    names = closed_binlogs(server)
    with Manifest(state / "manifest.sqlite") as m:
        assert all(m.placements(n)[f"file://{b}"].state == "verified" for n in names)
    assert {k: FileBackend(b).stat(k).version for k in binlog_objects(b).values()} == before


def test_backfill_places_again_when_one_call_gives_up_while_the_target_answers(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Backfilling an S3 target added later: one binlog's index PUT is throttled more
    times than a call retries (2 attempts), while S3 answers everything else. The
    binlog is placed again, so one pass fills S3 with every committed binlog; the old
    code took S3 out of the pass's backfill at that call and left the rest for later."""
    from tests.services.faultproxy import FaultProxy

    server = mariadb_factory(server_id=43)
    rotate(server, 4)
    state = tmp_path / "state"
    write_config(state, server, archive=f"file://{tmp_path / 'a'}")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    names = closed_binlogs(server)
    bucket = moto.bucket()
    with FaultProxy(moto.endpoint_url, flavor="s3") as proxy:
        add_target(state, f"s3://{bucket}/b", endpoint_url=proxy.url, region="us-east-1")
        cfg = state / "config.toml"
        text = cfg.read_text().replace("direct_dual = false", "direct_dual = true")
        cfg.write_text(text + "\n[resilience]\nretry_attempts = 2\nretry_base = 0.01\n")
        proxy.fail_next(f"/{names[1]}.idx.", times=3)
        capsys.readouterr()
        assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    assert proxy.injected["503"] == 3
    out = capsys.readouterr().out
    assert f"backfill s3://{bucket}/b: {len(names)} committed binlog(s)" in out
    keys = [o["Key"] for o in moto.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    for name in names:
        assert sum(k.endswith(f"/{name}.zst.enc") for k in keys) == 1, keys
        assert sum(k.endswith(f"/{name}.idx.zst.enc") for k in keys) == 1, keys
    doc = status_json(state, capsys)
    for r in doc["binlogs"]:
        assert {p["state"] for p in r["placements"].values()} == {"verified"}, r["name"]
