"""What reading a backup's contents as it streams costs: the dump and xbstream scanners.

    .venv/bin/python bench/bench_backup_scan.py [--mb 256] [--repeat 3] [XBSTREAM_FILE]

``backup take`` and ``backup verify`` feed every plaintext byte of a backup
to a scanner (shipper/restore/contents.py) in the 1 MiB pieces the envelope
reads. This measures each scanner alone, in MB/s of plaintext, on generated
streams: a dump with extended INSERT lines (mysqldump's default), a dump of
one short INSERT per line (``--skip-extended-insert``: the worst case, one
Python step per line), and an xbstream in mariabackup's chunk shape (10 MiB
payload chunks, CRC-32 checked). An xbstream file from a real ``mariabackup
--stream=xbstream`` may be given too. Compare with ``seal`` (~220 MB/s,
bench_envelope.py): the scanner runs in the same thread, before the seal.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shipper.restore.contents import DumpScanner, XbstreamScanner

PIECE = 1 << 20


def dump(mb: int, line: bytes) -> bytes:
    head = b"-- MariaDB dump\nCREATE DATABASE `shop`;\nUSE `shop`;\n"
    return head + line * (mb * 1_000_000 // len(line)) + b"-- Dump completed on 2026\n"


def xbstream(mb: int) -> bytes:
    out = bytearray()
    payload = os.urandom(1 << 20) * 10  # 10 MiB: mariabackup's chunk size for data files
    n = 0
    while len(out) < mb * 1_000_000:
        path = f"shop/t{n}.ibd".encode()
        head = b"XBSTCK01\0P" + struct.pack("<I", len(path)) + path
        out += head + struct.pack("<QQI", len(payload), 0, zlib.crc32(payload)) + payload
        out += b"XBSTCK01\0E" + struct.pack("<I", len(path)) + path
        n += 1
    return bytes(out)


def run(
    name: str, data: bytes, make: type[DumpScanner] | type[XbstreamScanner], repeat: int
) -> None:
    best = float("inf")
    for _ in range(repeat):
        s = make()
        t = time.perf_counter()
        for i in range(0, len(data), PIECE):
            s.feed(data[i : i + PIECE])
        best = min(best, time.perf_counter() - t)
    print(f"{name:<44} {len(data) / 1e6:8.1f} MB  {len(data) / 1e6 / best:8.0f} MB/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("xbstream_file", nargs="?", type=Path)
    a = ap.parse_args()
    ext = b"INSERT INTO `t` VALUES " + b"(1,'" + b"x" * 200 + b"')," * 4000 + b"(2,'y');\n"
    run("dump, extended INSERT lines (~800 KB)", dump(a.mb, ext), DumpScanner, a.repeat)
    short = b"INSERT INTO `t` VALUES (12345,'a short row of text');\n"
    run("dump, one short INSERT per line (58 B)", dump(a.mb, short), DumpScanner, a.repeat)
    run("xbstream, 10 MiB payload chunks", xbstream(a.mb), XbstreamScanner, a.repeat)
    if a.xbstream_file:
        run(
            f"xbstream {a.xbstream_file.name}",
            a.xbstream_file.read_bytes(),
            XbstreamScanner,
            a.repeat,
        )


if __name__ == "__main__":
    main()
