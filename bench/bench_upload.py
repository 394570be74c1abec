"""Upload throughput: our backends vs the SDKs' own upload helpers, same server.

    .venv/bin/python bench/bench_upload.py [--small 20] [--large 2] [--rounds 3]

Writes a set of binlog-sized files (default 20 x 8 MiB and 2 x 100 MiB of
incompressible bytes, like encrypted envelopes) to a temp dir, then uploads the
whole set, file after file, with

* S3:  ``S3Backend.put``  vs  boto3 ``upload_file`` (s3transfer), to one moto server
* GCS: ``GCSBackend.put`` vs ``blob.upload_from_filename``, to one fake-gcs-server

Both emulators run in their own process (moto in a subprocess so the server
does not share this interpreter's GIL with the client). Rounds alternate the
order of the two contenders; the median round is reported. Objects are deleted
after each round so the in-memory servers do not grow.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services.cloud import _wait_http, free_port, start_fake_gcs  # noqa: E402

MiB = 1 << 20


def make_files(d: Path, small: int, large: int) -> list[Path]:
    files = []
    block = os.urandom(MiB)  # random-ish: rotate a random block per MiB (fast, incompressible)
    for i, size in enumerate([8 * MiB] * small + [100 * MiB] * large):
        p = d / f"mysql-bin.{i + 1:06d}"
        with p.open("wb") as f:
            for j in range(size // MiB):
                f.write(block[j % 997 :] + block[: j % 997])
        files.append(p)
    return files


def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_s3(files: list[Path], rounds: int) -> dict[str, list[float]]:
    import boto3
    from boto3.s3.transfer import TransferConfig

    from shipper.storage.s3 import S3Backend

    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/moto-api/", proc)
        s3 = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x").client(
            "s3", region_name="us-east-1", endpoint_url=url
        )
        bucket = "bench-" + uuid.uuid4().hex[:8]
        s3.create_bucket(Bucket=bucket)
        ours = S3Backend(bucket, "ours", client=s3)
        cfg = TransferConfig()  # s3transfer defaults: 8 MiB threshold/parts, 10 threads

        def run_ours() -> None:
            for p in files:
                with p.open("rb") as f:
                    ours.put(p.name, f, size=p.stat().st_size, metadata={"binlog_name": p.name})

        def run_boto() -> None:
            for p in files:
                s3.upload_file(str(p), bucket, f"boto/{p.name}", Config=cfg)

        def clean() -> None:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for o in page.get("Contents", []):
                    s3.delete_object(Bucket=bucket, Key=o["Key"])

        return _rounds(rounds, {"S3Backend.put": run_ours, "boto3 upload_file": run_boto}, clean)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def bench_gcs(files: list[Path], rounds: int, chunk: int | None) -> dict[str, list[float]]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from shipper.storage.gcs import GCSBackend

    proc, url = start_fake_gcs()
    try:
        client = storage.Client(
            project="bench",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": url},
        )
        bucket = client.create_bucket("bench-" + uuid.uuid4().hex[:8])
        # --gcs-chunk sets the same resumable chunk size on both sides; by default
        # each uses its own default (both 100 MiB)
        ours = GCSBackend(
            bucket.name, "ours", client=client, **({"chunk_size": chunk * MiB} if chunk else {})
        )

        def run_ours() -> None:
            for p in files:
                with p.open("rb") as f:
                    ours.put(p.name, f, size=p.stat().st_size, metadata={"binlog_name": p.name})

        def run_lib() -> None:
            for p in files:
                blob = bucket.blob(f"lib/{p.name}", chunk_size=chunk * MiB if chunk else None)
                blob.metadata = {"binlog_name": p.name}
                blob.upload_from_filename(str(p), if_generation_match=0)

        def clean() -> None:
            for b in client.list_blobs(bucket.name):
                b.delete()

        return _rounds(
            rounds, {"GCSBackend.put": run_ours, "blob.upload_from_filename": run_lib}, clean
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _rounds(
    n: int, contenders: dict[str, Callable[[], None]], clean: Callable[[], None]
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for r in range(n):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(timed(contenders[name]))
            clean()
    return times


def report(title: str, total: int, times: dict[str, list[float]]) -> None:
    (ours, ours_t), (ref, _) = times.items()
    mbs = {k: total / MiB / statistics.median(v) for k, v in times.items()}
    print(f"\n{title}: {total / MiB:.0f} MiB per round, median of {len(ours_t)} rounds")
    for k, v in times.items():
        rounds = ", ".join(f"{t:.2f}s" for t in v)
        print(f"  {k:28s} {mbs[k]:8.1f} MiB/s   ({rounds})")
    print(f"  ratio ours/reference        {mbs[ours] / mbs[ref]:8.2f}   (target >= 0.90)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=20, help="number of 8 MiB files")
    ap.add_argument("--large", type=int, default=2, help="number of 100 MiB files")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["s3", "gcs"])
    ap.add_argument("--gcs-chunk", type=int, help="MiB per resumable chunk, both sides")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as d:
        files = make_files(Path(d), a.small, a.large)
        total = sum(p.stat().st_size for p in files)
        print(
            f"{len(files)} files ({a.small} x 8 MiB, {a.large} x 100 MiB), python "
            f"{sys.version.split()[0]}, {os.cpu_count()} CPUs"
        )
        if a.only in (None, "s3"):
            report("S3 on moto server", total, bench_s3(files, a.rounds))
        if a.only in (None, "gcs"):
            chunk = f", {a.gcs_chunk} MiB chunks" if a.gcs_chunk else ""
            report(f"GCS on fake-gcs-server{chunk}", total, bench_gcs(files, a.rounds, a.gcs_chunk))


if __name__ == "__main__":
    main()
