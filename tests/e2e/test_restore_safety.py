"""Restores that must not go wrong: swapped or corrupt objects, a populated server, SIGKILL.

One source server (real MariaDB) ships to two file:// targets; two mysqldump
backups and a mariabackup are taken between workload steps. Each test works on
a copy of that state (manifest, keyring, both archives), so what one test
breaks in an archive no other test sees.

The password used for target accounts, ``p#a"s's\\word``, has every character
MariaDB's option-file syntax treats specially (comment, both quotes, escape).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipper.cli import main as cli
from shipper.manifest import Manifest
from shipper.pipeline.ship import Shipper
from shipper.restore.tools import Conn, find_tool, run_sql
from shipper.sandbox import SandboxServer
from tests.helpers import World, checksums, fill_binlogs, load, run_cli, workload, write_config

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

PASSWORD = "p#a\"s's\\word"
ACCOUNT = "keeper"


@dataclass
class Safety:
    w: World
    dumps: list[str]  # mysqldump backup ids, oldest first; the last one holds app.big
    second: Path  # the second target's directory


@pytest.fixture(scope="module")
def safety(
    mariadb_factory: Callable[..., SandboxServer], tmp_path_factory: pytest.TempPathFactory
) -> Safety:
    server = mariadb_factory(server_id=31)
    root = tmp_path_factory.mktemp("safety")
    state = root / "state"
    second = root / "archive2"
    config = write_config(state, server, tenant="safe")
    with config.open("a") as f:
        f.write(f'\n[[targets]]\nurl = "file://{second}"\n')
    server.execute(
        "CREATE DATABASE app",
        *(
            f"CREATE TABLE app.{t} (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(200), n INT)"
            for t in ("a", "b")
        ),
    )
    w = World(server, state)
    rng = random.Random(31)
    workload(w, 30, rng, rotate_every=10)
    dumps = []
    for _ in range(2):
        assert cli(["backup", "take", "--tool", "mysqldump", "--state-dir", str(state)]) == 0
        workload(w, 20, rng, rotate_every=10)
    assert cli(["backup", "take", "--tool", "mariabackup", "--state-dir", str(state)]) == 0
    workload(w, 10, rng, rotate_every=0)
    fill_binlogs(server, 2, mb=3.0)  # something for the applier to chew on when killed
    # ... and a dump large enough to be killed while it loads.
    assert cli(["backup", "take", "--tool", "mysqldump", "--state-dir", str(state)]) == 0
    workload(w, 5, rng, rotate_every=0)
    server.flush_binary_logs()
    shipper = Shipper(load(config))
    try:
        assert shipper.run_once().ok
    finally:
        shipper.close()
    with Manifest(state / "manifest.sqlite") as m:
        dumps = [b["id"] for b in m.backups() if b["tool"] == "mysqldump"]
        w.backups = {b["tool"]: b["id"] for b in m.backups()}
    assert len(dumps) == 3
    return Safety(w, dumps, second)


def clone(s: Safety, dest: Path) -> tuple[Path, Path, Path]:
    """A private copy of the state dir and both archives: (state, archive 1, archive 2)."""
    state = dest / "state"
    shutil.copytree(s.w.state, state, ignore=shutil.ignore_patterns("restore", "lock"))
    shutil.copytree(s.second, dest / "archive2")
    text = (s.w.state / "config.toml").read_text()
    text = text.replace(str(s.second), str(dest / "archive2")).replace(str(s.w.state), str(state))
    (state / "config.toml").write_text(text)
    return state, state / "archive", dest / "archive2"


def backup_key(state: Path, backup_id: str) -> str:
    with Manifest(state / "manifest.sqlite") as m:
        (row,) = [b for b in m.backups() if b["id"] == backup_id]
    return str(row["object_key"])


def replace_file(path: Path, data: bytes) -> None:
    """What another writer (or an S3 copy) would leave at the key."""
    tmp = path.with_name(path.name + ".swap")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def flip_byte(path: Path, at: float) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x40
    replace_file(path, bytes(data))


def apply_args(state: Path, backup: str, work: Path, *where: str) -> list[str]:
    return [
        "restore",
        "apply",
        "--to",
        "latest",
        "--state-dir",
        str(state),
        "--backup",
        backup,
        "--work-dir",
        str(work),
        *where,
    ]


def restored_checksums(base: Path) -> dict[str, int]:
    server = SandboxServer(base_dir=base, server_id=97)
    server.start()
    try:
        return checksums(server)
    finally:
        server.stop()


# -- the target server of --target-dsn tests


@dataclass
class TargetView:
    """What must not change on a target server that a restore refused."""

    databases: list[str]
    tables: dict[str, int]
    grants: list[str]


def populated_target(factory: Callable[..., SandboxServer], server_id: int) -> SandboxServer:
    t = factory(server_id=server_id)
    t.execute(
        f"CREATE USER '{ACCOUNT}'@'localhost' IDENTIFIED BY {_sql_str(PASSWORD)}",
        f"GRANT ALL ON *.* TO '{ACCOUNT}'@'localhost' WITH GRANT OPTION",
        "CREATE DATABASE keep",
        "CREATE TABLE keep.t (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO keep.t VALUES (1, 'mine'), (2, 'also mine')",
    )
    return t


def _sql_str(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def view(t: SandboxServer) -> TargetView:
    dbs = sorted(str(r[0]) for r in t.query("SHOW DATABASES"))
    tables = ["mysql.global_priv", "mysql.db", "mysql.tables_priv", "mysql.proxies_priv"]
    if "keep" in dbs:
        tables.append("keep.t")
    sums = {str(r[0]): int(r[1] or 0) for r in t.query(f"CHECKSUM TABLE {', '.join(tables)}")}
    grants = [str(r[0]) for r in t.query(f"SHOW GRANTS FOR '{ACCOUNT}'@'localhost'")]
    return TargetView(dbs, sums, grants)


def dsn(t: SandboxServer) -> str:
    return f"socket={t.socket_path},user={ACCOUNT},password={PASSWORD}"


def account_logs_in(t: SandboxServer) -> bool:
    conn = Conn(socket=str(t.socket_path), user=ACCOUNT, password=PASSWORD)
    return run_sql(conn, "SELECT CURRENT_USER()") == [[f"{ACCOUNT}@localhost"]]


def option_files(*dirs: Path) -> list[Path]:
    found: list[Path] = []
    for d in dirs:
        if d.exists():
            found += [p for p in d.rglob("*.cnf") if PASSWORD.encode() in p.read_bytes()]
            found += list(d.glob("binlog-shipper-cnf-*"))
    return found


# -- authenticate before applying; fall back to the other target


def test_backup_object_swapped_with_another(
    safety: Safety, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older backup copied over a newer one's key (object and metadata, as an S3 copy
    would): the context bound to the key refuses it; the intact copy in the second
    target is used and the fallback is reported; swapped in both: refused."""
    state, first, second = clone(safety, tmp_path)
    old, new = safety.dumps[:2]
    k_old, k_new = backup_key(state, old), backup_key(state, new)
    for suffix in ("", ".meta.json"):
        replace_file(first / (k_new + suffix), (first / (k_old + suffix)).read_bytes())
    rc, _, err = run_cli(
        [*apply_args(state, new, tmp_path / "w1", "--datadir", str(tmp_path / "r1" / "data"))],
        capsys,
    )
    assert rc == 0, err
    assert f"{k_new} failed verification in file://{first}" in err
    assert f"reading it from file://{second}" in err
    assert restored_checksums(tmp_path / "r1") == safety.w.moments[-1].checksums
    for suffix in ("", ".meta.json"):
        replace_file(second / (k_new + suffix), (second / (k_old + suffix)).read_bytes())
    data = tmp_path / "r2" / "data"
    rc, _, err = run_cli(apply_args(state, new, tmp_path / "w2", "--datadir", str(data)), capsys)
    assert rc == 3, err
    assert "no configured target holds an intact copy" in err and "differs from the expected" in err
    assert not data.exists() or not any(data.iterdir())  # nothing was restored


def test_missing_objects_are_read_from_the_second_target(
    safety: Safety, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, first, second = clone(safety, tmp_path)
    new = safety.dumps[1]
    key = backup_key(state, new)
    rc, out, _ = run_cli(
        ["restore", "plan", "--to", "latest", "--backup", new, "--state-dir", str(state), "--json"],
        capsys,
    )
    steps = json.loads(out)["binlogs"]
    assert rc == 0 and len(steps) >= 3
    binlog = first / steps[1]["object_key"]
    (first / key).unlink()
    (first / (key + ".meta.json")).unlink()
    binlog.unlink()
    binlog.with_name(binlog.name + ".meta.json").unlink()
    rc, out, err = run_cli(
        [
            *apply_args(state, new, tmp_path / "w", "--datadir", str(tmp_path / "r" / "data")),
            "--replay",
            "pipe",
            "--json",
        ],
        capsys,
    )
    assert rc == 0, err
    notices = json.loads(out)["result"]["notices"]
    assert any(f"{key} is missing in file://{first}" in n for n in notices), notices
    assert any(binlog.name in n and f"reading it from file://{second}" in n for n in notices), (
        binlog,
        notices,
    )
    assert "warning: " in err and key in err
    assert restored_checksums(tmp_path / "r") == safety.w.moments[-1].checksums
    # Gone from both: refused before anything is restored.
    (second / key).unlink()
    data = tmp_path / "r2" / "data"
    rc, _, err = run_cli(apply_args(state, new, tmp_path / "w2", "--datadir", str(data)), capsys)
    assert rc == 12 and f"{key} is in the plan but in no configured target" in err, err
    assert not data.exists()


# -- --target-dsn


def test_target_dsn_on_a_populated_server_is_refused(
    safety: Safety,
    mariadb_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = populated_target(mariadb_factory, 32)
    before = view(target)
    args = apply_args(
        safety.w.state,
        safety.dumps[1],
        tmp_path / "w",
        "--target-dsn",
        dsn(target),
        "--replay",
        "pipe",
    )
    rc, out, err = run_cli(args, capsys)
    assert rc == 12 and "already holds user database(s) keep" in err and "--force" in err
    assert view(target) == before
    assert PASSWORD not in out + err


def test_flipped_byte_with_target_dsn_leaves_the_server_untouched(
    safety: Safety,
    mariadb_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A flipped byte at 3/4 of the dump, in both targets: found before the first byte
    reaches the server (--force, so the emptiness check does not stop it first)."""
    state, first, second = clone(safety, tmp_path)
    key = backup_key(state, safety.dumps[1])
    for archive in (first, second):
        flip_byte(archive / key, 0.75)
    target = populated_target(mariadb_factory, 33)
    before = view(target)
    work = tmp_path / "w"
    args = apply_args(
        state, safety.dumps[1], work, "--target-dsn", dsn(target), "--replay", "pipe", "--force"
    )
    rc, out, err = run_cli(args, capsys)
    assert rc == 3 and "failed authentication" in err, err
    assert view(target) == before
    assert PASSWORD not in out + err
    assert not list(work.glob("*.sealed")), "the spool of a refused backup is removed"


def test_target_dsn_with_force_keeps_the_targets_accounts(
    safety: Safety,
    mariadb_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    w = safety.w
    target = populated_target(mariadb_factory, 34)
    before = view(target)
    work = tmp_path / "w"
    k = len(w.moments) - 5
    args = [
        *apply_args(
            w.state, safety.dumps[1], work, "--target-dsn", dsn(target), "--replay", "pipe"
        ),
        "--force",
        "--json",
    ]
    args[args.index("latest")] = w.moments[k].gtid
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    assert checksums(target) == w.moments[k].checksums
    # The target's own account logs in (with the password full of option-file syntax),
    # its grants and the mysql schema are the target's, and its other database is untouched.
    after = view(target)
    assert account_logs_in(target)
    assert after.grants == before.grants
    assert after.tables == before.tables
    assert set(after.databases) == set(before.databases) | {"app"}
    # The password is printed nowhere: output, journal, logs; no option file is left.
    written = (
        out + err + "".join(p.read_text(errors="replace") for p in work.rglob("*") if p.is_file())
    )
    assert PASSWORD not in written
    assert option_files(work) == []
    modes = {p.name: p.stat().st_mode & 0o777 for p in [work, *work.rglob("*")]}
    assert all(m in (0o600, 0o700) for m in modes.values()), modes


def test_password_with_option_file_syntax_works_for_every_tool(
    safety: Safety, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """mariadb, mariadb-dump and mariabackup (through backup take) and mariadb-binlog
    (reading the server's binlog remotely) all log in with ``p#a"s's\\word``."""
    server = safety.w.server
    with contextlib.suppress(Exception):
        server.execute(f"DROP USER '{ACCOUNT}'@'localhost'")
    server.execute(
        f"CREATE USER '{ACCOUNT}'@'localhost' IDENTIFIED BY {_sql_str(PASSWORD)}",
        f"GRANT ALL ON *.* TO '{ACCOUNT}'@'localhost'",
    )
    conn = Conn(socket=str(server.socket_path), user=ACCOUNT, password=PASSWORD)
    assert run_sql(conn, "SELECT CURRENT_USER()") == [[f"{ACCOUNT}@localhost"]]
    state = tmp_path / "state"
    config = write_config(state, server, tenant="pw")
    pw = tmp_path / "password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    text = config.read_text().replace('user = "root"', f'user = "{ACCOUNT}"')
    config.write_text(text.replace('password_file = ""', f'password_file = "{pw}"'))
    for tool in ("mysqldump", "mariabackup"):
        rc, _, err = run_cli(["backup", "take", "--tool", tool, "--state-dir", str(state)], capsys)
        assert rc == 0, err
    first = str(server.query("SHOW BINARY LOGS")[0][0])
    with conn.args() as a:
        res = subprocess.run(
            [
                find_tool("mariadb-binlog"),
                *a,
                "--read-from-remote-server",
                "--stop-position=256",
                first,
            ],
            capture_output=True,
            check=False,
        )
    assert res.returncode == 0, res.stderr
    assert b"Start: binlog" in res.stdout


# -- SIGKILL


def _cli_proc(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shipper", *args],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 300
    while not ready():
        assert proc.poll() is None, f"restore apply exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _journal(work: Path) -> dict[str, object]:
    with contextlib.suppress(FileNotFoundError, ValueError):
        return dict(json.loads((work / "restore-state.json").read_text()))
    return {}


def _alive(record: Path) -> bool:
    pid = int(json.loads(record.read_text())["pid"])
    return (
        Path(f"/proc/{pid}/cmdline").exists()
        and b"mariadbd" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )


@pytest.fixture
def private_tmp(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "tmp"
    d.mkdir()
    yield d


def test_sigkill_during_restore_apply_then_rerun(
    safety: Safety, tmp_path: Path, private_tmp: Path
) -> None:
    """Killed while loading the base, then killed while the applier replays: each rerun
    stops the mariadbd the killed run left (which held the datadir's locks), and the
    last one completes with the right checksums."""
    w = safety.w
    work, data = tmp_path / "w", tmp_path / "r" / "data"
    args = apply_args(w.state, safety.dumps[1], work, "--datadir", str(data))
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    log = tmp_path / "apply.log"
    server_record = work / "restore-server.json"

    proc = _cli_proc(args, env, log)
    _kill_when(
        proc,
        lambda: server_record.exists() and _journal(work).get("base") is False,
        "the base restore's server",
    )
    assert _alive(server_record)  # its mariadbd outlived it, holding the datadir
    proc = _cli_proc(args, env, log)
    _kill_when(proc, lambda: bool(_journal(work).get("applier_started")), "the replay")
    assert _alive(server_record)
    assert _journal(work).get("done") is None

    rerun = subprocess.run(
        [sys.executable, "-m", "shipper", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert rerun.returncode == 0, (rerun.stderr, log.read_text(errors="replace"))
    assert "stopped the restoring mariadbd an interrupted run left" in rerun.stderr
    assert _journal(work).get("done") is True and not server_record.exists()
    assert restored_checksums(tmp_path / "r") == w.moments[-1].checksums
    assert option_files(work, private_tmp) == []
    assert not list(private_tmp.glob("bs-restore-*")), "a killed run's socket dir was left"
    modes = {p.name: p.stat().st_mode & 0o777 for p in [work, *work.rglob("*")]}
    assert all(m in (0o600, 0o700) for m in modes.values()), modes
    first = log.read_text(errors="replace")
    assert "Can't lock" not in first + rerun.stderr


def test_sigkill_while_loading_into_a_target_dsn_then_rerun(
    safety: Safety,
    mariadb_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    private_tmp: Path,
) -> None:
    """Killed while the dump streams into the target: the option file holding the
    target's password is left behind (nothing can remove it at SIGKILL); the rerun
    removes it, loads the dump again and completes."""
    w = safety.w
    target = mariadb_factory(server_id=35)
    target.execute(
        f"CREATE USER '{ACCOUNT}'@'localhost' IDENTIFIED BY {_sql_str(PASSWORD)}",
        f"GRANT ALL ON *.* TO '{ACCOUNT}'@'localhost' WITH GRANT OPTION",
    )
    work = tmp_path / "w"
    args = apply_args(
        w.state, safety.dumps[2], work, "--target-dsn", dsn(target), "--replay", "pipe"
    )
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    log = tmp_path / "apply.log"

    def loading() -> bool:
        j = _journal(work)
        return bool(j.get("base_started")) and not j.get("base") and bool(option_files(work))

    _kill_when(_cli_proc(args, env, log), loading, "the dump load")
    assert option_files(work), "the killed run's option file"
    rerun = subprocess.run(
        [sys.executable, "-m", "shipper", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert rerun.returncode == 0, (rerun.stderr, log.read_text(errors="replace"))
    assert "was interrupted: loading it again" in rerun.stderr
    assert checksums(target) == w.moments[-1].checksums
    assert account_logs_in(target)
    assert option_files(work, private_tmp) == []
    assert PASSWORD not in rerun.stdout + rerun.stderr + log.read_text(errors="replace")


def test_sigkill_inside_a_piped_binlog_starts_clean(
    safety: Safety, tmp_path: Path, private_tmp: Path
) -> None:
    """A binlog half replayed through the pipe cannot be replayed again; into a datadir
    this restore created, the rerun empties it and starts over, and completes."""
    w = safety.w
    work, data = tmp_path / "w", tmp_path / "r" / "data"
    args = apply_args(
        w.state, w.backups["mariabackup"], work, "--datadir", str(data), "--replay", "pipe"
    )
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    log = tmp_path / "apply.log"
    _kill_when(_cli_proc(args, env, log), lambda: bool(_journal(work).get("applying")), "a pipe")
    rerun = subprocess.run(
        [sys.executable, "-m", "shipper", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert rerun.returncode == 0, (rerun.stderr, log.read_text(errors="replace"))
    assert "was partly replayed when the restore was interrupted: starting clean" in rerun.stderr
    assert restored_checksums(tmp_path / "r") == w.moments[-1].checksums
    assert option_files(work, private_tmp) == []
