"""The GCP side of the fleet on emulators: an object lands in fake-gcs-server; the test
builds the CloudEvent Eventarc would send from the object resource fake-gcs-server
returns and POSTs it (binary or structured mode) to functions/gcp/main.py served by a
real functions-framework HTTP server (a subprocess on a random port, configured only
through its environment, as deployed); the function replicates to moto S3 and records
in DynamoDB on moto. Its stdout is kept: it is the structured log the log-based
metrics count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shipper.catalog.dynamodb import DynamoCatalog
from shipper.keys.aws_kms import AwsKmsProvider
from shipper.storage import StorageBackend, open_backend
from tests.functions.aws.conftest import archive_binlog, create_catalog_table
from tests.services.cloud import FakeGcs, Moto, _wait_http, free_port, unique

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "binlogs"
EVENTS = ROOT / "tests" / "events"
FINALIZED = "google.cloud.storage.object.v1.finalized"


def object_resource(gcs: FakeGcs, bucket: str, name: str) -> dict[str, Any]:
    """The object resource (JSON API) fake-gcs-server returns: what a finalize event carries."""
    quoted = urllib.parse.quote(name, safe="")
    with urllib.request.urlopen(f"{gcs.endpoint_url}/storage/v1/b/{bucket}/o/{quoted}") as r:
        return dict(json.load(r))


@dataclass(frozen=True)
class Answer:
    status: int
    body: str


@dataclass
class Function:
    """functions-framework serving functions/gcp/main.py:verify_replicate."""

    url: str
    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    #: log lines already returned by :meth:`new_lines`
    seen: int = 0

    def post(self, headers: dict[str, str], body: bytes) -> Answer:
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return Answer(r.status, r.read().decode())
        except urllib.error.HTTPError as e:
            return Answer(e.code, e.read().decode())

    def binary(self, resource: dict[str, Any], *, event_id: str | None = None) -> Answer:
        """Binary content mode: the attributes as ``ce-`` headers, the resource as the body
        (how Eventarc delivers to Cloud Run)."""
        a = attributes(resource, event_id)
        headers = {f"ce-{k}": v for k, v in a.items()}
        headers["Content-Type"] = "application/json"
        return self.post(headers, json.dumps(resource).encode())

    def structured(self, resource: dict[str, Any], *, event_id: str | None = None) -> Answer:
        """Structured content mode: one JSON document, the resource as ``data``."""
        doc = {**attributes(resource, event_id), "datacontenttype": "application/json"}
        doc["data"] = resource
        return self.post({"Content-Type": "application/cloudevents+json"}, json.dumps(doc).encode())

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.stdout.read_text().splitlines():
            raw = raw.strip()
            if raw.startswith("{"):
                out.append(json.loads(raw))
        return out

    def new_lines(self) -> list[dict[str, Any]]:
        got = self.lines()
        new, self.seen = got[self.seen :], len(got)
        return new


def attributes(resource: dict[str, Any], event_id: str | None = None) -> dict[str, str]:
    """The CloudEvent attributes GCS sets for a finalized object (see the real sample,
    tests/events/gcf-storage-cloudevent-input.json)."""
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "type": FINALIZED,
        "source": f"//storage.googleapis.com/projects/_/buckets/{resource['bucket']}",
        "subject": f"objects/{resource['name']}",
        "time": str(resource.get("updated") or resource.get("timeCreated") or ""),
    }


def metric_events(lines: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(event, tenant, server) of the lines a log-based metric counts: monitoring.tf's
    filter is ``jsonPayload.event="NAME"``, labels EXTRACT(jsonPayload.tenant|server)."""
    counted = {"verified", "replicated", "integrity_failed", "lineage_conflicts"}
    counted.add("replication_failed")
    return [
        (str(x["event"]), str(x["tenant"]), str(x["server"]))
        for x in lines
        if x.get("event") in counted
    ]


def serve(env: dict[str, str], tmp: Path, source: Path | None = None) -> Function:
    port = free_port()
    out, err = tmp / "function.stdout", tmp / "function.stderr"
    ff = Path(sys.executable).parent / "functions-framework"
    cmd = [
        str(ff),
        "--source",
        str(source or ROOT / "functions" / "gcp" / "main.py"),
        "--target",
        "verify_replicate",
        "--signature-type",
        "cloudevent",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(cmd, env=env, stdout=o, stderr=e, cwd=tmp)
    try:
        _wait_http(f"http://127.0.0.1:{port}/", proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return Function(f"http://127.0.0.1:{port}/", proc, out, err)


def stop(fn: Function) -> None:
    fn.proc.terminate()
    try:
        fn.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        fn.proc.kill()
        fn.proc.wait()


def function_env(
    moto: Moto, gcs: FakeGcs, *, bucket: str, replica: str, table: str, kms_key: str
) -> dict[str, str]:
    """The deployed function's environment (infra/terraform gcp-archive, local.aws_env),
    with the emulators' endpoints; credentials through the ``secret`` mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "ARCHIVE_BUCKET": bucket,
            "REPLICA_S3_BUCKET": replica,
            "AWS_REGION": moto.region,
            "CATALOG_TABLE": table,
            "METRICS_NAMESPACE": "BinlogShipper",
            "AWS_CREDENTIALS_MODE": "secret",
            "AWS_CREDENTIALS_JSON": json.dumps(
                {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
            ),
            "AWS_KMS_KEY_ID": kms_key,
            "AWS_ENDPOINT_URL": moto.endpoint_url,
            "STORAGE_EMULATOR_HOST": gcs.endpoint_url,
            "K_SERVICE": "test-verify-replicate",
            "PYTHONUNBUFFERED": "1",
            # this checkout's shipper package, as `make functions` ships it beside main.py:
            # the server runs in a temp dir, where `import shipper` would otherwise find
            # whatever checkout the venv's editable install points at
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
        }
    )
    return env


@dataclass
class GcpFleet:
    moto: Moto
    gcs: FakeGcs
    bucket: str
    s3_bucket: str
    table: str
    kms_key: str
    source: StorageBackend
    replica: StorageBackend
    provider: AwsKmsProvider
    catalog: DynamoCatalog
    fn: Function
    tmp: Path
    keys: list[str] = field(default_factory=list)

    def archive(self, fixture: str, *, name: str, server_id: int = 7, tenant: str = "acme") -> str:
        """Seal and upload a fixture binlog (and its index) to GCS as the shipper does."""
        return archive_binlog(
            self.source, [self.provider], FIXTURES / fixture, self.tmp, name, server_id, tenant
        )

    def resource(self, key: str) -> dict[str, Any]:
        return object_resource(self.gcs, self.bucket, key)

    def deliver(self, key: str, *, mode: str = "binary") -> Answer:
        res = self.resource(key)
        return self.fn.binary(res) if mode == "binary" else self.fn.structured(res)

    def item(self, key: str) -> Any:
        return self.catalog.item(key)


def start_fleet(
    moto: Moto,
    gcs: FakeGcs,
    tmp: Path,
    *,
    replica_exists: bool = True,
    function_key: str | None = None,
) -> GcpFleet:
    """Buckets, key, table and a function serving them (``replica_exists=False``: the
    replica bucket is named but not created yet, so every copy to S3 fails;
    ``function_key``: the KMS key the function is given, when not the archive's)."""
    bucket = gcs.bucket()
    s3_bucket = moto.bucket(versioning=True) if replica_exists else unique("bs")
    kms_key = moto.kms_key()
    table = unique("catalog")
    create_catalog_table(moto.client("dynamodb"), table)
    env = function_env(
        moto, gcs, bucket=bucket, replica=s3_bucket, table=table, kms_key=function_key or kms_key
    )
    fn = serve(env, tmp)
    return GcpFleet(
        moto,
        gcs,
        bucket,
        s3_bucket,
        table,
        kms_key,
        open_backend(f"gs://{bucket}", {}),
        open_backend(
            f"s3://{s3_bucket}", {"endpoint_url": moto.endpoint_url, "region": moto.region}
        ),
        AwsKmsProvider(kms_key, region=moto.region, endpoint_url=moto.endpoint_url),
        DynamoCatalog(table, client=moto.client("dynamodb")),
        fn,
        tmp,
    )


@pytest.fixture
def gcp_fleet(moto: Moto, fake_gcs: FakeGcs, tmp_path: Path) -> Iterator[GcpFleet]:
    f = start_fleet(moto, fake_gcs, tmp_path)
    try:
        yield f
    finally:
        stop(f.fn)
