"""Point-in-time restore: replay throughput, ours vs the raw `mariadb-binlog | mariadb` pipe.

    .venv/bin/python bench/bench_restore.py [--mb 200] [--rows-per-tx 10]

1. A throwaway MariaDB takes a mariabackup base backup (`backup take`), then a
   write-heavy workload writes >= MB of ROW binlogs (each transaction inserts
   and updates a few rows, as an OLTP write load does); the shipper archives
   them (zstd + AES-256-GCM, file://).
2. The base backup is restored three times, each into its own datadir:
   * raw: the plaintext binlogs, still on the source host, replayed with
     `mariadb-binlog --start-position=P FILES --stop-position=S | mariadb`;
   * ours: `restore apply --to latest` (fetch, verify, decrypt, decompress,
     replay through the server's replication applier);
   * ours, pipe path: `restore apply --to latest --replay pipe`.
3. Each restored server's CHECKSUM TABLE must match the source's.

Throughput = replayed binlog bytes / (time from the first binlog byte fetched
or read to the applied stop); the base-backup restore is excluded from all three.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shipper import config as config_mod
from shipper.cli import main as cli
from shipper.config import MySQLConfig
from shipper.keys.local import LocalKeyring
from shipper.pipeline.ship import Shipper
from shipper.restore.server import RestoreServer
from shipper.restore.tools import find_tool, run_sql
from shipper.sandbox import SandboxServer

PROC = """
CREATE PROCEDURE bench.load(n INT, k INT)
BEGIN
  DECLARE i INT DEFAULT 0;
  WHILE i < n DO
    START TRANSACTION;
    INSERT INTO bench.orders (customer, status, note, amount)
      SELECT FLOOR(RAND()*100000), 'new',
             CONCAT_WS(' ', MD5(RAND()), 'order', MD5(RAND()), REPEAT('x', FLOOR(RAND()*64))),
             RAND()*1000
      FROM seq_1_to_1000 LIMIT k;
    UPDATE bench.orders SET status = 'paid', amount = amount + 1
      WHERE id >= LAST_INSERT_ID() AND id < LAST_INSERT_ID() + k;
    COMMIT;
    SET i = i + 1;
  END WHILE;
END
"""


DURABLE = ["--innodb-flush-log-at-trx-commit=1", "--innodb-doublewrite=1"]
STOCK = "raw pipe, server on MariaDB's durable defaults"


def cli_json(args: list[str]) -> Any:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli(args)
    if rc != 0:
        raise SystemExit(f"binlog-shipper {' '.join(args[:2])} failed with exit {rc}")
    return json.loads(buf.getvalue())


def checksum(sock: str) -> str:
    from shipper.restore.tools import Conn

    return run_sql(Conn(socket=sock), "CHECKSUM TABLE bench.orders")[0][1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--rows-per-tx", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2, help="runs per path (best is reported)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument(
        "--durable",
        action="store_true",
        help="all three servers with InnoDB's durable defaults (flush at commit, doublewrite)",
    )
    ap.add_argument(
        "--server-option",
        action="append",
        default=[],
        help="extra mariadbd option for our restores (e.g. --slave-parallel-threads=4)",
    )
    ap.add_argument(
        "--stock-raw",
        action="store_true",
        help="also time the raw pipe into a server on MariaDB's durable defaults",
    )
    args = ap.parse_args()
    if args.durable:
        args.server_option += DURABLE
    tmp = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    server = SandboxServer(base_dir=tmp / "src", server_id=31, max_binlog_size=64 << 20)
    try:
        server.start()
        state = tmp / "state"
        state.mkdir()
        LocalKeyring.create(state / "keyring")
        (state / "config.toml").write_text(
            config_mod.render_default(
                state,
                tenant="bench",
                mysql=MySQLConfig(socket=str(server.socket_path)),
                archive_url=f"file://{tmp / 'archive'}",
                keyring=state / "keyring",
            )
        )
        server.execute(
            "CREATE DATABASE bench",
            "CREATE TABLE bench.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "customer INT, status VARCHAR(16), note VARCHAR(512), "
            "amount DECIMAL(12,2))",
            PROC,
        )
        sd = ["--state-dir", str(state)]
        backup = cli_json(["backup", "take", "--tool", "mariabackup", "--json", *sd])
        print(f"base backup {backup['id']} at {backup['binlog_file']}:{backup['binlog_pos']}")
        t = time.monotonic()
        start_bytes = sum(s for _, s in server.binary_logs())
        while sum(s for _, s in server.binary_logs()) - start_bytes < args.mb << 20:
            server.execute(f"CALL bench.load(2000, {args.rows_per_tx})")
        server.flush_binary_logs()
        print(f"workload: {time.monotonic() - t:.1f}s")
        source_sum = checksum(str(server.socket_path))
        t = time.monotonic()
        shipper = Shipper(config_mod.load(state / "config.toml"))
        try:
            assert shipper.run_once().ok
        finally:
            shipper.close()
        print(f"shipped in {time.monotonic() - t:.1f}s")
        plan = cli_json(["restore", "plan", "--to", "latest", "--json", *sd])
        steps = plan["binlogs"]
        nbytes = sum(
            (s["stop"] if s["stop"] is not None else s["size"]) - s["start"] for s in steps
        )
        print(
            f"plan: {len(steps)} binlogs, {nbytes / 1e6:.1f} MB to replay, stop "
            f"{plan['stop']['file']}:{plan['stop']['position']}"
        )

        base_pos = f"{backup['binlog_file']}:{backup['binlog_pos']}"
        files = [str(server.binlog_dir / s["name"]) for s in steps]
        opts = [f"--server-option={o}" for o in args.server_option]

        def apply(d: Path, target: str, extra: list[str]) -> dict[str, float]:
            doc = cli_json(
                [
                    "restore",
                    "apply",
                    "--to",
                    target,
                    "--datadir",
                    str(d / "data"),
                    "--work-dir",
                    str(d / "work"),
                    "--json",
                    *extra,
                    *sd,
                ]
            )
            return doc["result"]["seconds"]  # type: ignore[no-any-return]

        def raw_run(d: Path, server_args: list[str]) -> tuple[float, str]:
            # Base only (target = the backup's own position), then the pipe by hand.
            apply(d, base_pos, [])
            srv = RestoreServer(d / "data", extra_args=server_args)
            try:
                srv.start()
                t = time.monotonic()
                with srv.conn.args() as a:
                    dec = subprocess.Popen(
                        [
                            find_tool("mariadb-binlog"),
                            f"--start-position={steps[0]['start']}",
                            f"--stop-position={plan['stop']['position']}",
                            *files,
                        ],
                        stdout=subprocess.PIPE,
                    )
                    subprocess.run(
                        [find_tool("mariadb"), *a, "--binary-mode"], stdin=dec.stdout, check=True
                    )
                    assert dec.stdout is not None
                    dec.stdout.close()
                    assert dec.wait() == 0
                return time.monotonic() - t, checksum(str(srv.socket))
            finally:
                srv.close()

        def ours_run(d: Path, extra: list[str]) -> tuple[float, str]:
            secs = apply(d, "latest", extra)
            srv = RestoreServer(d / "data")
            try:
                srv.start()
                # fetch, verify, decrypt, decompress (and the applier's server start) included
                return secs["replay"], checksum(str(srv.socket))
            finally:
                srv.close()

        paths = {
            "raw mariadb-binlog | mariadb (plaintext)": lambda d: raw_run(d, args.server_option),
            "ours: restore apply (applier)": lambda d: ours_run(d, opts),
            "ours: restore apply --replay pipe": lambda d: ours_run(d, ["--replay", "pipe", *opts]),
        }
        if args.stock_raw:
            # What a DBA gets typing the pipe into a server on MariaDB's own defaults
            # (durable commits, doublewrite), beside ours on its restore settings.
            paths[STOCK] = lambda d: raw_run(d, [*args.server_option, *DURABLE])
        runs: dict[str, list[float]] = {k: [] for k in paths}
        sums: dict[str, set[str]] = {k: set() for k in paths}
        for r in range(args.rounds):  # alternate, so background load hits every path alike
            for n, (label, fn) in enumerate(paths.items()):
                d = tmp / f"run-{r}-{n}"
                secs, ck = fn(d)
                runs[label].append(secs)
                sums[label].add(ck)
                shutil.rmtree(d, ignore_errors=True)
                print(f"round {r + 1}: {label}: {secs:.1f}s", flush=True)

        mb = nbytes / 1e6
        raw_best = min(runs["raw mariadb-binlog | mariadb (plaintext)"])
        print()
        print(
            f"replayed {mb:.1f} MB of ROW binlogs ({len(steps)} files), {args.rows_per_tx} "
            f"row(s) inserted + updated per transaction; best of {args.rounds}"
        )
        print("| path | best s | MB/s | vs raw | all runs (s) | checksum |")
        print("|---|---:|---:|---:|---|---|")
        for label, times in runs.items():
            best = min(times)
            cell = label.replace("|", "\\|")
            print(
                f"| {cell} | {best:.1f} | {mb / best:.1f} | {raw_best / best:.2f}x | "
                f"{', '.join(f'{x:.1f}' for x in times)} | {', '.join(sorted(sums[label]))} |"
            )
        if args.stock_raw:
            stock = min(runs[STOCK])
            for label in list(paths)[1:3]:
                print(f"{label} vs {STOCK}: {stock / min(runs[label]):.2f}x")
        print(f"source checksum {source_sum}")
        ok = all(v == {source_sum} for v in sums.values())
        print("checksums equal" if ok else "CHECKSUM MISMATCH")
        return 0 if ok else 1
    finally:
        server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
