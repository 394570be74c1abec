"""Base backups a DBA can trust, against a real MariaDB: privileges checked before the
tool starts, incomplete backups refused, record objects written, verify, delete and
re-recording from the archive."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from shipper.cli import main as cli
from shipper.keys.local import LocalKeyring
from shipper.manifest import Manifest
from shipper.records import latest_record_keys, latest_records, read_record
from shipper.sandbox import SandboxServer
from shipper.storage.file import FileBackend
from tests.helpers import rotate, write_config

pytestmark = pytest.mark.mariadb

README = Path(__file__).resolve().parents[2] / "README.md"
TENANT = "bk"


@pytest.fixture(scope="module")
def server(mariadb_factory) -> SandboxServer:  # type: ignore[no-untyped-def]
    s = mariadb_factory(server_id=31)
    rotate(s, 2, table="app.t")
    s.execute("CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY)")
    s.execute("INSERT INTO shop.orders VALUES (1), (2)")
    return s


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def readme_privileges() -> list[str]:
    """The privileges README.md's "The MySQL user needs ..." line asks for (MariaDB's)."""
    text = " ".join(README.read_text().split())
    m = re.search(r"The MySQL user needs (.+?) and must be able to read", text)
    assert m, "README.md lost its 'The MySQL user needs ...' line"
    # "`REPLICATION CLIENT` (MySQL) or `BINLOG MONITOR` (MariaDB)": take MariaDB's
    named = re.findall(r"`([A-Z ]+)`(?: \((\w+)\))?", m[1])
    return [p for p, flavour in named if flavour in ("", "MariaDB")]


def readme_user(server: SandboxServer, state: Path, name: str) -> Path:
    privs = readme_privileges()
    assert privs == ["BINLOG MONITOR"]
    server.execute(
        f"CREATE USER IF NOT EXISTS '{name}'@'localhost' IDENTIFIED BY 'pw-{name}'",
        f"GRANT {', '.join(privs)} ON *.* TO '{name}'@'localhost'",
    )
    path = write_config(state, server, tenant=TENANT)
    (state / "mysql.password").write_text(f"pw-{name}\n")
    text = path.read_text().replace('user = "root"', f'user = "{name}"')
    text = text.replace('password_file = ""', f'password_file = "{state / "mysql.password"}"')
    path.write_text(text)
    return path


def nothing_recorded(state: Path) -> None:
    with Manifest(state / "manifest.sqlite") as m:
        assert m.backups() == []
    archive = state / "archive"
    assert not archive.exists() or list(FileBackend(archive).list()) == []
    assert list((state / "backups").glob("*.spool")) == []


def test_readme_grants_mysqldump_is_refused_naming_what_is_missing(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    readme_user(server, state, "shipper")
    rc, _, err = run(["backup", "take", "--tool", "mysqldump", "--state-dir", str(state)], capsys)
    assert rc == 12, err
    for p in ("SELECT", "SHOW VIEW", "TRIGGER", "LOCK TABLES", "EVENT", "PROCESS", "RELOAD"):
        assert p in err
    assert "user shipper@localhost lacks" in err
    assert (
        "GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, PROCESS, RELOAD, SHOW DATABASES "
        "ON *.* TO 'shipper'@'localhost';" in err
    )
    assert "Nothing was backed up or recorded" in err
    nothing_recorded(state)


def test_readme_grants_mariabackup_is_refused(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    readme_user(server, state, "shipper2")
    rc, _, err = run(["backup", "take", "--tool", "mariabackup", "--state-dir", str(state)], capsys)
    assert rc == 12, err
    assert "GRANT RELOAD, PROCESS, LOCK TABLES ON *.* TO 'shipper2'@'localhost';" in err
    assert "BINLOG MONITOR" not in err.split("lacks", 1)[1].split("(", 1)[0]
    nothing_recorded(state)
    # The printed GRANT is enough.
    server.execute("GRANT RELOAD, PROCESS, LOCK TABLES ON *.* TO 'shipper2'@'localhost'")
    rc, out, err = run(
        ["backup", "take", "--tool", "mariabackup", "--state-dir", str(state), "--json"], capsys
    )
    assert rc == 0, err
    assert {"app", "shop"} <= set(json.loads(out)["extra"]["databases"])


def test_granted_user_takes_a_dump_the_fix_works(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    readme_user(server, state, "shipper3")
    rc, _, err = run(["backup", "take", "--tool", "mysqldump", "--state-dir", str(state)], capsys)
    grant = next(line.strip() for line in err.splitlines() if line.strip().startswith("GRANT"))
    server.execute(grant.rstrip(";"))
    rc, out, err = run(
        ["backup", "take", "--tool", "mysqldump", "--state-dir", str(state), "--json"], capsys
    )
    assert rc == 0, err
    row = json.loads(out)
    assert {"app", "shop"} <= set(row["extra"]["databases"])


@pytest.mark.parametrize(
    ("tool", "option"),
    [
        ("mariabackup", "[mariabackup]\ndatabases-exclude=shop"),
        ("mysqldump", "[mysqldump]\nignore-database=shop"),
    ],
    ids=["mariabackup", "mysqldump"],
)
def test_a_backup_missing_a_database_is_refused_not_recorded(
    server: SandboxServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tool: str,
    option: str,
) -> None:
    # An option file the tool reads (here ~/.my.cnf) quietly leaves a database out:
    # the tool succeeds, and the backup would be the newest base without it.
    home = tmp_path / "home"
    home.mkdir()
    (home / ".my.cnf").write_text(option + "\n")
    monkeypatch.setenv("HOME", str(home))
    state = tmp_path / "state"
    write_config(state, server, tenant=TENANT)
    rc, _, err = run(["backup", "take", "--tool", tool, "--state-dir", str(state)], capsys)
    assert rc == 12, err
    assert f"is incomplete: it holds no shop (the {tool} backup holds app)" in err
    assert "Nothing was uploaded or recorded" in err
    nothing_recorded(state)


def test_take_records_verify_tamper_and_the_planner_refuses(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    write_config(state, server, tenant=TENANT)
    # The server lists every datadir directory as a database; one holding no table and
    # no db.opt has nothing for mariabackup to copy, and is not asked of the backup.
    stray = server.datadir / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("not a table\n")
    try:
        rc, out, err = run(
            ["backup", "take", "--tool", "mariabackup", "--state-dir", str(state), "--json"],
            capsys,
        )
    finally:
        shutil.rmtree(stray)
    assert rc == 0, err
    row = json.loads(out)
    bid = row["id"]
    store = FileBackend(state / "archive")
    keyring = [LocalKeyring.load(state / "keyring")]
    (rec,) = latest_records(store, keyring, TENANT)
    assert (rec.id, rec.revision, rec.verification.state) == (bid, 1, "verified")
    assert (rec.binlog_file, rec.binlog_pos, rec.gtid_set) == (
        row["binlog_file"],
        row["binlog_pos"],
        row["gtid_set"],
    )
    assert rec.plaintext_sha256 == row["sha256"] and rec.object_key == row["object_key"]
    assert {"app", "shop"} <= set(rec.databases)

    rotate(server, 1, table="app.t")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    rc, out, err = run(
        ["restore", "plan", "--to", "latest", "--json", "--state-dir", str(state)], capsys
    )
    assert rc == 0, err
    assert json.loads(out)["backup"]["id"] == bid

    rc, out, err = run(["backup", "verify", bid, "--state-dir", str(state)], capsys)
    assert rc == 0, err
    assert "verified" in out and "record revision 2" in out

    path = state / "archive" / row["object_key"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    rc, out, err = run(["backup", "verify", bid, "--state-dir", str(state)], capsys)
    assert rc == 3, err
    assert "failed" in out and f"backup {bid} failed verification" in err
    (rec,) = latest_records(store, keyring, TENANT)
    assert (rec.revision, rec.verification.state) == (3, "failed")
    assert rec.verification.by == "backup verify" and "authenticate" in rec.verification.detail
    with Manifest(state / "manifest.sqlite") as m:
        (cached,) = m.backups()
    assert cached["extra"]["verification"] == "failed"

    rc, _, err = run(["restore", "plan", "--to", "latest", "--state-dir", str(state)], capsys)
    assert rc == 12
    assert f"{bid} (failed)" in err and "failed verification" in err


def test_delete_keeps_the_records_and_register_from_archive_rebuilds_the_catalogue(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    archive = tmp_path / "archive"
    write_config(state, server, tenant=TENANT, archive=f"file://{archive}")
    ids = []
    for _ in range(2):
        rc, out, err = run(
            ["backup", "take", "--tool", "mysqldump", "--state-dir", str(state), "--json"], capsys
        )
        assert rc == 0, err
        ids.append(json.loads(out))
    keep, gone = ids

    rc, out, err = run(["backup", "delete", gone["id"], "--state-dir", str(state)], capsys)
    assert rc == 0, err
    assert f"deleted data object {gone['object_key']}" in out
    assert "record revision 2 says deleted" in out and "removed backup" in out
    store = FileBackend(archive)
    keys = {i.key for i in store.list()}
    assert gone["object_key"] not in keys and keep["object_key"] in keys
    keyring = [LocalKeyring.load(state / "keyring")]
    first = [k for k in keys if gone["id"] in k and k.endswith(".record.zst.enc")]
    assert read_record(store, first[0], keyring).verification.state == "verified"
    assert latest_record_keys(store, TENANT)[gone["id"]].endswith(".record-2.zst.enc")
    rc, _, err = run(["backup", "verify", gone["id"], "--state-dir", str(state)], capsys)
    assert rc == 4 and "was deleted" in err

    # The host is lost: state dir gone; the keyring was backed up (README says so).
    saved = tmp_path / "keyring.saved"
    shutil.copy2(state / "keyring", saved)
    shutil.rmtree(state)
    state.mkdir()
    shutil.copy2(saved, state / "keyring")
    write_config(state, server, tenant=TENANT, archive=f"file://{archive}")
    rc, out, _ = run(["backup", "list", "--state-dir", str(state), "--json"], capsys)
    assert json.loads(out) == []

    rc, out, err = run(
        ["backup", "register", "--from-archive", keep["id"], "--state-dir", str(state)], capsys
    )
    assert rc == 0, err
    assert f"registered backup {keep['id']} (mysqldump) from its record" in out
    rc, _, err = run(
        ["backup", "register", "--from-archive", gone["id"], "--state-dir", str(state)], capsys
    )
    assert rc == 12 and "was deleted" in err
    rc, out, _ = run(["backup", "list", "--state-dir", str(state), "--json"], capsys)
    (row,) = json.loads(out)
    for k in ("id", "tool", "binlog_file", "binlog_pos", "gtid_set", "object_key", "sha256"):
        assert row[k] == keep[k]
    assert row["extra"]["consistent_at"] == pytest.approx(keep["extra"]["consistent_at"])
    assert row["extra"]["verification"] == "verified"
    rc, out, err = run(["backup", "verify", keep["id"], "--state-dir", str(state)], capsys)
    assert rc == 0, err
    # Registering again refreshes the cache from the newest record (revision 2 now).
    rc, out, err = run(
        ["backup", "register", "--from-archive", keep["id"], "--state-dir", str(state)], capsys
    )
    assert rc == 0 and "re-registered" in out and "(revision 2, verified)" in out
    rc, out, _ = run(["backup", "list", "--state-dir", str(state), "--json"], capsys)
    (row,) = json.loads(out)
    assert row["extra"]["record_revision"] == 2


def test_register_file_writes_an_unverified_record(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    write_config(state, server, tenant=TENANT)
    info = tmp_path / "xtrabackup_binlog_info"
    info.write_text("mysql-bin.000002\t1234\t0-31-9\n")
    args = ["backup", "register", str(info), "--id", "ext1", "--state-dir", str(state)]
    rc, out, err = run(args, capsys)
    assert rc == 0, err
    assert "record written to file://" in out
    store = FileBackend(state / "archive")
    (rec,) = latest_records(store, [LocalKeyring.load(state / "keyring")], TENANT)
    assert (rec.id, rec.server_id, rec.binlog_pos, rec.gtid_set) == ("ext1", 31, 1234, "0-31-9")
    assert rec.object_key is None and rec.location == str(tmp_path)
    assert rec.verification.state == "unverified"
    rc, _, err = run(args, capsys)
    assert rc == 12 and "already registered" in err
    rc, _, err = run(["backup", "verify", "ext1", "--state-dir", str(state)], capsys)
    assert rc == 12 and "without an archived object" in err


def test_privileges_through_the_users_default_role_count(
    server: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    readme_user(server, state, "viarole")
    server.execute(
        "CREATE ROLE IF NOT EXISTS backup_role",
        "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO backup_role",
        "GRANT backup_role TO 'viarole'@'localhost'",
        "SET DEFAULT ROLE backup_role FOR 'viarole'@'localhost'",
    )
    rc, out, err = run(
        ["backup", "take", "--tool", "mariabackup", "--state-dir", str(state)], capsys
    )
    assert rc == 0, err
    assert "verified, record written" in out
