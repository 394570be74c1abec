"""Parser throughput on a real ~64 MiB ROW binlog, against a bare baseline loop.

    .venv/bin/python bench/bench_parser.py                   # binlog from a sandbox MariaDB
    .venv/bin/python bench/bench_parser.py --workload small  # one-row transactions
    .venv/bin/python bench/bench_parser.py --binlog FILE     # or measure an existing file
    .venv/bin/python bench/bench_parser.py --keep /tmp/b64   # keep the generated binlog

The baseline is the simplest honest loop: the whole file in memory, unpack each
19-byte header and ``zlib.crc32`` each event. ``scan_file`` does more in its
one pass (streamed 4 MiB reads, SHA-256 of the file, FDE/GTID/query bodies, the
transaction index), all on one core (the process is pinned to one CPU).
``base+sha`` is the baseline plus a SHA-256 of the file: the same C work as ours.
``(no hash)`` is a diagnostic: scan_file with its hasher swapped for a no-op.
Best of N runs each, alternating, page cache warm.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shipper.binlog import scan_file

TARGET = 64 << 20


def make_binlog(dest: Path, workload: str) -> None:
    """``rows``: 100-row transactions of 200-byte rows (``SandboxServer.write_rows``).
    ``small``: one-row autocommit transactions of 40-byte rows (many small events)."""
    import contextlib

    from pymysql.constants import CLIENT

    from shipper.sandbox import sandbox

    with sandbox(max_binlog_size=80 << 20) as server:
        if workload == "rows":
            while server.binary_logs()[0][1] < TARGET:
                server.write_rows("bench.t", rows=20_000, payload=200)
        else:
            server.execute(
                "CREATE DATABASE bench",
                "CREATE TABLE bench.s (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64))",
            )
            conn = server.connect(client_flag=CLIENT.MULTI_STATEMENTS)
            with contextlib.closing(conn), conn.cursor() as cur:
                while server.binary_logs()[0][1] < TARGET:
                    batch = ";".join(
                        f"INSERT INTO bench.s (v) VALUES ('{os.urandom(20).hex()}')"
                        for _ in range(2000)
                    )
                    cur.execute(batch)
                    while cur.nextset():
                        pass
        server.flush_binary_logs()
        name = server.binary_logs()[0][0]
        shutil.copyfile(server.binlog_dir / name, dest)


def baseline(path: Path, sha: bool = False) -> tuple[int, int, int]:
    """Bare loop: headers + zlib.crc32 per event. Returns (bytes, events, crc failures)."""
    with open(path, "rb") as f:
        data = f.read()
    if sha:
        hashlib.sha256(data).hexdigest()
    mv = memoryview(data)
    unpack = struct.Struct("<IBIIIH").unpack_from
    crc_at = struct.Struct("<I").unpack_from
    crc32 = zlib.crc32
    pos, n, bad, end = 4, 0, 0, len(data)
    # the FDE: its CRC is over the event with the in-use flag cleared; just skip it
    pos += unpack(data, pos)[3]
    n += 1
    while pos + 19 <= end:
        size = unpack(data, pos)[3]
        if crc32(mv[pos : pos + size - 4]) != crc_at(data, pos + size - 4)[0]:
            bad += 1
        pos += size
        n += 1
    return end, n, bad


def baseline_sha(path: Path) -> tuple[int, int, int]:
    """The bare loop plus SHA-256 of the file (one read): the same C work as scan_file."""
    return baseline(path, sha=True)


class _NoHash:
    def update(self, data: object) -> None:
        pass

    def hexdigest(self) -> str:
        return ""


def ours_no_hash(path: Path) -> tuple[int, int, int]:
    """Diagnostic only: scan_file with its SHA-256 swapped for a no-op, to show where
    the time goes (the API always hashes)."""
    from shipper.binlog import scanner

    real = scanner.hashlib.sha256
    scanner.hashlib.sha256 = _NoHash  # type: ignore[assignment]
    try:
        return ours(path)
    finally:
        scanner.hashlib.sha256 = real


def ours(path: Path) -> tuple[int, int, int]:
    info = scan_file(path)
    return info.size, info.event_count, 0 if info.crc_error_at is None else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--binlog", type=Path, help="measure this file instead of generating one")
    ap.add_argument("--keep", type=Path, help="save the generated binlog here")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--workload", choices=["rows", "small"], default="rows")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    tmp = None
    if args.binlog:
        path = args.binlog
    else:
        tmp = tempfile.mkdtemp(prefix="bench-parser-")
        path = args.keep or Path(tmp) / "mysql-bin.000001"
        t0 = time.perf_counter()
        make_binlog(path, args.workload)
        print(f"generated {path} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    try:
        info = scan_file(path)
        print(
            f"binlog: {info.size / 2**20:.1f} MiB, {info.event_count:,} events, "
            f"{info.transactions:,} transactions, server {info.server_version}, "
            f"checksum {info.checksum}, status {info.status}"
        )
        best: dict[str, float] = {
            "baseline": float("inf"),
            "base+sha": float("inf"),
            "scan_file": float("inf"),
            "(no hash)": float("inf"),
        }
        counts: dict[str, tuple[int, int, int]] = {}
        for _ in range(args.runs):
            for label, fn in (
                ("baseline", baseline),
                ("base+sha", baseline_sha),
                ("scan_file", ours),
                ("(no hash)", ours_no_hash),
            ):
                t0 = time.perf_counter()
                counts[label] = fn(path)
                best[label] = min(best[label], time.perf_counter() - t0)
        assert counts["baseline"][:2] == counts["scan_file"][:2] == counts["(no hash)"][:2]
        assert counts["baseline"][2] == counts["scan_file"][2] == 0
        size, events, _ = counts["scan_file"]
        print(f"{'':10} {'seconds':>8} {'MB/s':>8} {'MiB/s':>8} {'events/s':>12}")
        for label, secs in best.items():
            print(
                f"{label:10} {secs:8.3f} {size / secs / 1e6:8.0f} {size / secs / 2**20:8.0f} "
                f"{events / secs:12,.0f}"
            )
        print(f"ratio scan_file/baseline throughput: {best['baseline'] / best['scan_file']:.2f}x")
        print(f"ratio scan_file/base+sha throughput: {best['base+sha'] / best['scan_file']:.2f}x")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
