"""Every command ends in one actionable line, never a raw traceback (run as a user runs it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shipper.archive import fetch_to_file
from shipper.config import load as load_config
from shipper.keys import make_provider
from shipper.manifest import Manifest
from shipper.storage import open_backend

FIXTURE = Path("/work/shared/fixtures/binlogs/cdcrs__8.0_02_query_bigger_binlog.000733")
#: ~2 MB of --events text: far more than a pipe buffer holds
BIG = Path("/work/shared/fixtures/binlogs/mdbpoc__domain_id_0_mariadb-repl-bin.000002")


def shipper_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "shipper", *args]


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "BINLOG_SHIPPER_DEBUG"}
    e.update(extra)
    return e


def first_line_then_close(cmd: list[str]) -> tuple[str, int, str]:
    """What ``cmd | head -1`` does: read one line, close the pipe, let the writer find out."""
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(), start_new_session=True
    )
    assert p.stdout is not None and p.stderr is not None
    line = p.stdout.readline().decode()
    p.stdout.close()
    err = p.stderr.read().decode()
    return line, p.wait(timeout=120), err


@pytest.fixture()
def state_with_many_rows(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    subprocess.run(shipper_cmd("init", "--state-dir", str(state)), check=True, env=env())
    with Manifest(state / "manifest.sqlite") as m:
        for i in range(1, 5001):  # far more than a pipe buffer of status lines
            m.discover(f"mysql-bin.{i:06d}", size=1 << 20)
    return state


def test_status_into_a_closed_pipe_exits_quietly(state_with_many_rows: Path) -> None:
    line, rc, err = first_line_then_close(
        shipper_cmd("status", "--state-dir", str(state_with_many_rows))
    )
    assert line.startswith("tenant default")
    assert rc == 141
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert err == ""


def test_status_json_into_a_closed_pipe_exits_quietly(state_with_many_rows: Path) -> None:
    line, rc, err = first_line_then_close(
        shipper_cmd("status", "--json", "--state-dir", str(state_with_many_rows))
    )
    assert line.strip() == "{"
    assert (rc, err) == (141, "")


def test_inspect_events_into_a_closed_pipe_exits_quietly() -> None:
    line, rc, err = first_line_then_close(shipper_cmd("inspect", "--events", str(BIG)))
    assert line.startswith("file ")
    assert (rc, err) == (141, "")


def test_shell_pipeline_to_head(state_with_many_rows: Path) -> None:
    cmd = " ".join(shipper_cmd("status", "--state-dir", str(state_with_many_rows))) + " | head -1"
    res = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, env=env()
    )
    assert res.stdout.startswith("tenant default")
    assert res.stderr == ""
    assert res.returncode == 141


def test_an_unexpected_exception_is_one_line_exit_70(tmp_path: Path) -> None:
    # A real command hitting an exception no code path expects: an ASCII-only stdout and a
    # file name that is not ASCII (print raises UnicodeEncodeError, not an OSError).
    odd = tmp_path / "bínlog.000001"
    shutil.copyfile(FIXTURE, odd)
    res = subprocess.run(
        shipper_cmd("inspect", str(odd)),
        capture_output=True,
        env=env(PYTHONIOENCODING="ascii:strict"),
    )
    err = res.stderr.decode("ascii", "replace")
    assert res.returncode == 70
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("binlog-shipper: internal error: UnicodeEncodeError")
    assert "run with --debug for the traceback; please report it" in lines[0]


@pytest.mark.parametrize("how", ["flag", "flag-after", "env"])
def test_debug_prints_the_traceback(tmp_path: Path, how: str) -> None:
    odd = tmp_path / "bínlog.000001"
    shutil.copyfile(FIXTURE, odd)
    args = ["--debug"] if how == "flag" else []
    after = ["--debug"] if how == "flag-after" else []
    extra = {"BINLOG_SHIPPER_DEBUG": "1"} if how == "env" else {}
    res = subprocess.run(
        shipper_cmd(*args, "inspect", str(odd), *after),
        capture_output=True,
        env=env(PYTHONIOENCODING="ascii:strict", **extra),
    )
    err = res.stderr.decode("ascii", "replace")
    assert res.returncode == 70
    assert "Traceback (most recent call last)" in err
    assert "UnicodeEncodeError" in err


def test_os_error_names_the_file(tmp_path: Path) -> None:
    res = subprocess.run(
        shipper_cmd("inspect", str(tmp_path)), capture_output=True, text=True, env=env()
    )
    assert res.returncode == 74
    assert res.stderr == f"binlog-shipper: error: {tmp_path}: Is a directory\n"


def test_shipper_error_is_one_line_with_its_exit_code(tmp_path: Path) -> None:
    res = subprocess.run(
        shipper_cmd("status", "--config", str(tmp_path / "nope.toml")),
        capture_output=True,
        text=True,
        env=env(),
    )
    assert res.returncode == 2
    assert res.stderr.startswith(f"binlog-shipper: error: config file {tmp_path / 'nope.toml'}")
    assert len(res.stderr.splitlines()) == 1


def test_ctrl_c_exits_130_with_one_line(tmp_path: Path) -> None:
    # A "server" that accepts and never greets: the shipper blocks in its MySQL handshake,
    # which is where Ctrl-C lands.
    sock_path = tmp_path / "mysqld.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    listener.listen(1)
    state = tmp_path / "state"
    subprocess.run(
        shipper_cmd("init", "--state-dir", str(state), "--mysql-socket", str(sock_path)),
        check=True,
        env=env(),
        capture_output=True,
    )
    p = subprocess.Popen(
        shipper_cmd("run", "--once", "--state-dir", str(state)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
    )
    try:
        listener.settimeout(60)
        conn, _ = listener.accept()  # the shipper is now waiting for the greeting
        p.send_signal(signal.SIGINT)
        _out, err = p.communicate(timeout=60)
        conn.close()
    finally:
        listener.close()
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err.decode()
    assert err.decode() == "binlog-shipper: interrupted\n"


#: every character a hand-written option file or shell line would mangle, and a non-ASCII one
AWKWARD_PASSWORD = "p#a\"s's\\ wörd ;$x`"


@pytest.mark.mariadb
@pytest.mark.parametrize("via", ["socket", "tcp"])
def test_password_with_hash_quotes_backslash_and_spaces_ships(
    mariadb_factory: Any, tmp_path: Path, via: str
) -> None:
    server = mariadb_factory(server_id=31)
    server.create_user("shipper", AWKWARD_PASSWORD, "BINLOG MONITOR")
    server.write_rows("app.t", rows=50)
    server.flush_binary_logs()
    pw = tmp_path / "mysql.password"
    pw.write_text(AWKWARD_PASSWORD + "\n")  # as `echo ... > file` leaves it
    pw.chmod(0o600)
    where = (
        ["--mysql-socket", str(server.socket_path)]
        if via == "socket"
        else ["--mysql-host", "127.0.0.1", "--mysql-port", str(server.port)]
    )
    state = tmp_path / "state"
    init = [*where, "--mysql-user", "shipper", "--mysql-password-file", str(pw)]
    subprocess.run(shipper_cmd("init", "--state-dir", str(state), *init), check=True, env=env())
    res = subprocess.run(
        shipper_cmd("run", "--once", "--state-dir", str(state)),
        capture_output=True,
        text=True,
        env=env(),
    )
    assert res.returncode == 0, res.stderr
    assert "shipped  mysql-bin.000001" in res.stdout
    assert "0 failed" in res.stdout


@pytest.mark.mariadb
def test_wrong_password_is_one_database_error_line(mariadb_factory: Any, tmp_path: Path) -> None:
    server = mariadb_factory(server_id=32)
    server.create_user("shipper", AWKWARD_PASSWORD, "BINLOG MONITOR")
    pw = tmp_path / "mysql.password"
    pw.write_text("not it\n")
    state = tmp_path / "state"
    subprocess.run(
        shipper_cmd(
            "init",
            "--state-dir",
            str(state),
            "--mysql-socket",
            str(server.socket_path),
            "--mysql-user",
            "shipper",
            "--mysql-password-file",
            str(pw),
        ),
        check=True,
        env=env(),
    )
    res = subprocess.run(
        shipper_cmd("run", "--once", "--state-dir", str(state)),
        capture_output=True,
        text=True,
        env=env(),
    )
    assert res.returncode == 10
    assert res.stderr.startswith("binlog-shipper: error: cannot connect to MySQL/MariaDB at socket")
    assert "Access denied" in res.stderr and "Traceback" not in res.stderr


def documented_grants() -> dict[str, str]:
    """README's Privileges table: command cell -> the MariaDB grants marked (verified)."""
    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text.split("## Privileges", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1].endswith("(verified)"):
            out[cells[0]] = cells[1].removesuffix("(verified)").strip().strip("`")
    return out


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("row", "argv"),
    [
        ("`run`, `run --once`, `run --dry-run`", ["run", "--once"]),
        ("`backup take --tool mysqldump`", ["backup", "take", "--tool", "mysqldump"]),
        ("`backup take --tool mariabackup`", ["backup", "take", "--tool", "mariabackup"]),
    ],
)
def test_documented_grants_are_enough(
    mariadb_factory: Any, tmp_path: Path, row: str, argv: list[str]
) -> None:
    grants = documented_grants()[row]
    server = mariadb_factory(server_id=33)
    server.write_rows("app.t", rows=50)
    server.execute(
        "CREATE TRIGGER app.tr BEFORE INSERT ON app.t FOR EACH ROW SET NEW.v = NEW.v",
        "CREATE VIEW app.vw AS SELECT id FROM app.t",
        "CREATE EVENT app.ev ON SCHEDULE EVERY 1 DAY DO SELECT 1",
    )
    server.flush_binary_logs()
    # a plain password: the tools' option file is the restore code's business
    server.create_user("least", "least-privilege", *(g.strip() for g in grants.split(",")))
    pw = tmp_path / "pw"
    pw.write_text("least-privilege\n")
    state = tmp_path / "state"
    subprocess.run(
        shipper_cmd(
            "init",
            "--state-dir",
            str(state),
            "--mysql-socket",
            str(server.socket_path),
            "--mysql-user",
            "least",
            "--mysql-password-file",
            str(pw),
        ),
        check=True,
        env=env(),
        capture_output=True,
    )
    res = subprocess.run(
        shipper_cmd(*argv, "--state-dir", str(state)), capture_output=True, text=True, env=env()
    )
    assert res.returncode == 0, res.stderr
    if argv[-1] == "mysqldump":
        # enough for a *complete* dump: without TRIGGER or SHOW VIEW it silently loses objects
        listed = subprocess.run(
            shipper_cmd("backup", "list", "--json", "--state-dir", str(state)),
            capture_output=True,
            text=True,
            env=env(),
            check=True,
        )
        key = next(b["object_key"] for b in json.loads(listed.stdout) if b["tool"] == "mysqldump")
        cfg = load_config(state / "config.toml")
        dest = tmp_path / "dump.sql"
        fetch_to_file(
            open_backend(cfg.targets[0].url), key, [make_provider(k) for k in cfg.keys], dest
        )
        sql = dest.read_text(errors="replace")
        for obj in ("TRIGGER app.tr BEFORE INSERT", "VIEW `vw`", "EVENT `ev`"):
            assert obj in sql, obj


def test_an_error_line_reaches_an_ascii_only_terminal(tmp_path: Path) -> None:
    missing = tmp_path / "wörk" / "config.toml"
    res = subprocess.run(
        shipper_cmd("status", "--config", str(missing)),
        capture_output=True,
        env=env(PYTHONIOENCODING="ascii:strict"),
    )
    err = res.stderr.decode("ascii")
    assert res.returncode == 2
    assert err.startswith("binlog-shipper: error: config file ") and "w\\xf6rk" in err


def test_demo_failure_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = subprocess.run(
        [sys.executable, "-m", "shipper.demo", "--dir", str(blocker / "demo")],
        capture_output=True,
        text=True,
        env=env(),
    )
    assert res.returncode == 74
    assert res.stderr == f"binlog-shipper: error: {blocker / 'demo'}: Not a directory\n"


def test_demo_never_deletes_a_directory_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    res = subprocess.run(
        [sys.executable, "-m", "shipper.demo", "--dir", str(precious)],
        capture_output=True,
        text=True,
        env=env(),
    )
    assert res.returncode == 2
    assert f"--dir {precious} exists and was not made by the demo" in res.stderr
    assert (precious / "notes.txt").read_text() == "keep me"
