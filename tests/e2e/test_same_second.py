"""The issue's scenario on a real MariaDB: rotations inside the target's second.

Three commits, FLUSH BINARY LOGS, three, FLUSH, three, FLUSH, all in one second S (the
last FLUSH also opens a file that holds no transaction). ``restore plan --to S.500Z``
must report all nine as stamped in S, and with ``--ambiguous include`` say it applies
all nine, which is what its stop does.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest

from shipper.binlog import scan_file
from shipper.cli import main as cli
from shipper.restore.model import iso_us
from shipper.sandbox import SandboxServer
from tests.helpers import write_config

pytestmark = pytest.mark.mariadb


def nine_commits_in_one_second(server: SandboxServer) -> tuple[int, list[str]]:
    """Returns (S, the binlogs written in S); retries when the batch straddles a second."""
    for _ in range(10):
        while time.time() % 1 > 0.05:  # start right after a second begins
            time.sleep(0.005)
        before = [n for n, _ in server.binary_logs()]
        with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
            for batch in range(3):
                for i in range(3):
                    cur.execute("INSERT INTO app.s (v) VALUES (%s)", (f"{batch}-{i}",))
                cur.execute("FLUSH BINARY LOGS")
        logs = [n for n, _ in server.binary_logs()]
        written = [n for n in logs if n not in before or n == before[-1]][:3]
        stamps = {
            t.commit_us // 1_000_000
            for n in written
            for t in scan_file(server.binlog_dir / n).index
        }
        if len(stamps) == 1:
            return stamps.pop(), written
    pytest.skip("could not fit nine commits and three rotations into one second")


def test_plan_counts_a_second_split_by_rotations(
    mariadb_factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    server = mariadb_factory(server_id=41)
    server.execute(
        "CREATE DATABASE app",
        "CREATE TABLE app.s (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))",
    )
    state = tmp_path / "state"
    write_config(state, server, tenant="sec")
    assert cli(["backup", "take", "--tool", "mysqldump", "--state-dir", str(state)]) == 0
    server.flush_binary_logs()
    s, written = nine_commits_in_one_second(server)
    assert sum(len(scan_file(server.binlog_dir / n).index) for n in written) == 9
    server.flush_binary_logs()  # close the empty file opened in S, so it is archived too
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    capsys.readouterr()
    target = iso_us(s * 1_000_000 + 500_000)

    def plan(policy: str) -> dict:  # type: ignore[type-arg]
        rc = cli(["restore", "plan", "--to", target, "--ambiguous", policy, "--json",
                  "--state-dir", str(state)])  # fmt: skip
        assert rc == 0
        return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]

    incl = plan("include")
    assert incl["precision"]["same_second"] == 9
    assert incl["precision"]["included"] == 9
    assert "no transaction is stamped" not in incl["precision"]["note"]
    assert incl["stop"]["file"] == written[-1]
    assert incl["restores_to"].startswith(iso_us(s * 1_000_000)[:19])

    excl = plan("exclude")
    assert (excl["precision"]["same_second"], excl["precision"]["included"]) == (9, 0)
    assert excl["restores_to"] is None or excl["restores_to"] < iso_us(s * 1_000_000)
