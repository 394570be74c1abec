"""``make demo``: the product's main job, end to end, on embedded defaults.

Starts a throwaway MariaDB with binlogs on, writes rows across several binlog
rotations, initialises a state dir (local archive, local keyring), ships every
closed binlog, shows ``status``, fetches one binlog back and proves it is
byte-identical to the server's file, then stops the server.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

from shipper.cli import guarded
from shipper.cli import main as cli
from shipper.errors import ConfigError
from shipper.sandbox import SandboxServer

_MARKER = ".binlog-shipper-demo"


def _made_by_demo(base: Path) -> bool:
    """The marker, or (a demo dir from before the marker) only what a demo writes."""
    if (base / _MARKER).exists():
        return True
    names = {p.name for p in base.iterdir()}
    return bool(names) and all(
        n in ("mariadb", "shipper") or n.startswith("fetched-") for n in names
    )


def _say(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shipper.demo")
    ap.add_argument("--dir", type=Path, default=Path("demo-state"))
    ap.add_argument("--rows", type=int, default=20000)
    args = ap.parse_args(argv)
    base: Path = args.dir.resolve()
    if base.exists() and any(base.iterdir()):
        # Only a directory an earlier demo made is wiped: --dir may name something precious.
        if not _made_by_demo(base):
            raise ConfigError(
                f"--dir {base} exists and was not made by the demo: name a new directory "
                "(the demo replaces its directory on every run)"
            )
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    (base / _MARKER).write_text("made by `python -m shipper.demo`; it deletes this dir on rerun\n")
    state = base / "shipper"

    _say(f"starting a throwaway MariaDB in {base / 'mariadb'} (binlogs on, 1 MiB max size)")
    server = SandboxServer(base_dir=base / "mariadb", server_id=1, max_binlog_size=1 << 20)
    server.start()
    try:
        print(f"   mariadbd listening on 127.0.0.1:{server.port}, socket {server.socket_path}")
        _say(f"writing {args.rows} rows (about {args.rows * 230 // 1_000_000} MB of ROW events)")
        server.write_rows("shop.orders", rows=args.rows, payload=200)
        server.flush_binary_logs()
        logs = server.binary_logs()
        print(
            f"   the server now has {len(logs)} binlogs: "
            + ", ".join(f"{n} ({s} B)" for n, s in logs)
        )

        _say(f"binlog-shipper init --state-dir {state}")
        rc = cli(
            [
                "init",
                "--state-dir",
                str(state),
                "--tenant",
                "demo",
                "--mysql-socket",
                str(server.socket_path),
            ]
        )
        if rc:
            return rc

        _say("binlog-shipper run --once   (stage, compress, encrypt, upload, verify, commit)")
        rc = cli(["run", "--once", "--state-dir", str(state)])
        if rc:
            return rc

        _say("binlog-shipper status")
        cli(["status", "--state-dir", str(state)])

        name = logs[0][0]
        out = base / f"fetched-{name}"
        _say(f"binlog-shipper fetch {name} -o {out}")
        rc = cli(["fetch", name, "-o", str(out), "--state-dir", str(state)])
        if rc:
            return rc
        original = server.binlog_dir / name
        a, b = _sha(original), _sha(out)
        print(f"   server's file  {original}  sha256 {a}")
        print(f"   fetched copy   {out}  sha256 {b}")
        if a != b:
            print("   MISMATCH: the round trip is not byte-identical", file=sys.stderr)
            return 1
        print("   byte-identical round trip: OK")
    finally:
        _say("stopping MariaDB")
        server.stop()
    _say(
        f"done. The encrypted archive is in {state / 'archive'}; the keyring is "
        f"{state / 'keyring'}; the state manifest is {state / 'manifest.sqlite'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
