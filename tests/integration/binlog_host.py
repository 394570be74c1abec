"""A host without a server: real binlog files in a binlog dir, a state dir, a file archive.

``Shipper.ship_pass`` takes the server's state as a value (what SHOW BINARY LOGS
and SHOW MASTER STATUS said), so the pipeline runs over any files a test puts
in the binlog dir: damaged ones, symlinks, files owned by another user. The
pass can also run in a subprocess as another uid (``run_pass_as``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipper import config as config_mod
from shipper.config import Config, MySQLConfig
from shipper.keys.local import LocalKeyring
from shipper.pipeline.discover import ServerState
from shipper.pipeline.ship import PassResult, Shipper

BINLOGS = Path(__file__).parents[1] / "fixtures" / "binlogs"
#: one MariaDB server's real binlogs (CRC32, GTIDs), small enough to ship fast
MARIADB = [
    "mdbpoc__domain_id_0_mariadb-repl-bin.000001",
    "mdbpoc__domain_id_0_mariadb-repl-bin.000009",
    "mdbpoc__domain_id_0_mariadb-repl-bin.000010",
]


@dataclass
class Host:
    root: Path
    binlog_dir: Path
    state_dir: Path
    archive: Path
    config_path: Path
    names: list[str]  # the closed binlogs, in order; an active one follows them

    @property
    def cfg(self) -> Config:
        return config_mod.load(self.config_path)

    def server_state(self) -> ServerState:
        listed = [*self.names, self.active]
        sizes = []
        for n in listed:
            try:
                sizes.append((n, os.lstat(self.binlog_dir / n).st_size))
            except FileNotFoundError:
                sizes.append((n, 0))
        return ServerState(
            binlogs=tuple(sizes),
            active=self.active,
            log_bin_basename=str(self.binlog_dir / "mysql-bin"),
            server_id=1,
            server_uuid="",
            version="10.11.0-MariaDB",
            expire_seconds=0,
        )

    @property
    def active(self) -> str:
        return f"mysql-bin.{len(self.names) + 1:06d}"

    def ship(self) -> PassResult:
        shipper = Shipper(self.cfg)
        try:
            with shipper.locked():
                return shipper.ship_pass(self.server_state(), self.binlog_dir)
        finally:
            shipper.close()


def make_host(root: Path, contents: list[bytes], *, archive: Path | None = None) -> Host:
    """A binlog dir holding ``contents`` as mysql-bin.000001... (closed) plus an active
    file, a state dir with config and keyring, and a file:// archive."""
    root.mkdir(parents=True, exist_ok=True)
    binlog_dir = root / "binlogs"
    binlog_dir.mkdir()
    names = []
    for i, data in enumerate([*contents, contents[-1]], start=1):
        name = f"mysql-bin.{i:06d}"
        (binlog_dir / name).write_bytes(data)
        if i <= len(contents):
            names.append(name)
    state = root / "state"
    state.mkdir()
    archive = archive or root / "archive"
    keyring = root / "keyring"
    LocalKeyring.create(keyring)
    text = config_mod.render_default(
        state,
        tenant="t1",
        mysql=MySQLConfig(socket=str(root / "no-server.sock"), binlog_dir=str(binlog_dir)),
        archive_url=f"file://{archive}",
        keyring=keyring,
    )
    config_path = root / "config.toml"
    config_path.write_text(text)
    return Host(root, binlog_dir, state, archive, config_path, names)


def fixture(name: str) -> bytes:
    return (BINLOGS / name).read_bytes()


# Everything the pass needs is imported before root is dropped: the interpreter and
# its standard library live under /root (0700), which the other uid cannot read.
_RUNNER = """
import json, os, sys
from pathlib import Path
import shipper.storage.file, shipper.keys.local, shipper.envelope, shipper.manifest
import encodings.idna, zstandard, sqlite3
from shipper.config import load
from shipper.pipeline.discover import ServerState
from shipper.pipeline.ship import Shipper
from shipper.pipeline.stage import stage
from shipper.errors import ShipperError
args = json.loads(sys.argv[1])
os.setgroups([])
os.setgid(args["uid"])
os.setuid(args["uid"])
out = {}
if args.get("stage"):
    src, dst = (Path(p) for p in args["stage"])
    try:
        stage(src, dst)
        out["staged_ino"] = os.stat(dst).st_ino
        dst.unlink()
    except ShipperError as e:
        out["stage_error"] = str(e)
state = ServerState(**{k: (tuple(tuple(x) for x in v) if k == "binlogs" else v)
                       for k, v in args["state"].items()})
shipper = Shipper(load(args["config"]))
r = shipper.ship_pass(state, Path(args["binlog_dir"]))
shipper.close()
out.update(shipped=r.shipped, flagged=r.flagged, failed=r.failed, gaps=r.gaps)
print(json.dumps(out))
"""


def run_pass_as(host: Host, uid: int, *, stage: tuple[Path, Path] | None = None) -> dict[str, Any]:
    """One ship pass in a subprocess running as ``uid`` (optionally staging one file
    first): what it shipped, flagged and failed."""
    st = host.server_state()
    args: dict[str, Any] = {
        "uid": uid,
        "config": str(host.config_path),
        "binlog_dir": str(host.binlog_dir),
        "state": {
            "binlogs": [list(b) for b in st.binlogs],
            "active": st.active,
            "log_bin_basename": st.log_bin_basename,
            "server_id": st.server_id,
            "server_uuid": st.server_uuid,
            "version": st.version,
            "expire_seconds": st.expire_seconds,
        },
    }
    if stage:
        args["stage"] = [str(p) for p in stage]
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stderr"] = proc.stderr
    return result
