"""What authenticating a base backup before applying it costs.

    .venv/bin/python bench/bench_restore_base.py [--mb 500] [--rounds 3]

A synthetic backup (half random bytes, half compressible text, about what an
InnoDB datadir gives zstd) is sealed into a file:// target with the local
keyring, as ``backup take`` does. Then, best of ``--rounds``:

* stream (the previous release): decrypt the object straight from the target
  into the consumer (here a sink that discards), one pass;
* spool + authenticate + apply (``restore apply`` now): copy the sealed object
  to the work dir, decrypt it into a hash sink with the key's context and
  compare its SHA-256, then decrypt it again from the spool into the consumer.

The consumer (mbstream, the mariadb client) is left out: it costs the same
both ways, and it is what a restore waits on in practice.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shipper import envelope, objects
from shipper.keys.local import LocalKeyring
from shipper.restore.model import BackupInfo
from shipper.restore.sources import Sources
from shipper.storage.file import FileBackend


class Discard:
    def write(self, b: bytes) -> int:
        return len(b)


def synthetic(path: Path, mb: int) -> str:
    rng = random.Random(1)
    h = hashlib.sha256()
    text = b"".join(b"row %d status=paid amount=%d note=order\n" % (i, i * 7) for i in range(20000))
    with path.open("wb") as f:
        for i in range(mb):
            block = rng.randbytes(1 << 20) if i % 2 else (text * 2)[: 1 << 20]
            f.write(block)
            h.update(block)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-restore-base-") as d:
        root = Path(d)
        kr = LocalKeyring(os.urandom(32), root / "keyring")
        store = FileBackend(root / "archive")
        backup_id = "20261201T000000Z-mariabackup-bench01"
        key = objects.backup_key("bench", 1, backup_id, "mariabackup")
        plain = root / "plain"
        sha = synthetic(plain, args.mb)
        sealed = root / "sealed"
        ctx = objects.context_for_key(key)
        with plain.open("rb") as src, sealed.open("wb") as dst:
            envelope.seal(src, dst, providers=[kr], context=ctx)
        plain.unlink()
        with sealed.open("rb") as f:
            store.put(key, f, size=sealed.stat().st_size, metadata={"plaintext_sha256": sha})
        sealed.unlink()
        b = BackupInfo(
            id=backup_id,
            tool="mariabackup",
            binlog_file="mysql-bin.000001",
            binlog_pos=4,
            object_key=key,
            server_id=1,
            sha256=sha,
        )
        size = store.stat(key).size
        stream, spooled = [], []
        for _ in range(args.rounds):
            t = time.monotonic()
            with contextlib.closing(store.open(key)) as src:
                envelope.unseal(src, cast(Any, Discard()), providers=[kr], expected_context=ctx)
            stream.append(time.monotonic() - t)
            src_ = Sources([store], [kr])
            spool = root / "work" / f"{backup_id}.sealed"
            t = time.monotonic()
            src_.spool_backup(b, spool)
            src_.unseal_spool(b, spool, cast(Any, Discard()))
            spooled.append(time.monotonic() - t)
            spool.unlink()
        mb = args.mb * (1 << 20) / 1e6
        s, p = min(stream), min(spooled)
        print(f"backup: {mb:.0f} MB plaintext, {size / 1e6:.0f} MB sealed")
        print(f"stream (one pass):                {s:6.2f} s  {mb / s:6.0f} MB/s")
        print(f"spool + authenticate + apply:     {p:6.2f} s  {mb / p:6.0f} MB/s")
        print(f"cost of authenticating first:     {p - s:6.2f} s  (x{p / s:.2f})")
        print("all rounds: stream " + ", ".join(f"{x:.2f}" for x in stream))
        print("            spooled " + ", ".join(f"{x:.2f}" for x in spooled))


if __name__ == "__main__":
    main()
