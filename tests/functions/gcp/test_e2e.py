"""End to end, GCS-primary: a real MariaDB ships (``backup take``, ``run --once``, aws-kms
key, ``[catalog]``) to fake-gcs-server; each object's finalize CloudEvent, built from the
resource fake-gcs-server returns, is POSTed to the Cloud Function in its functions-framework
server, which verifies it, copies it to moto S3 and records it in DynamoDB (moto). The
catalog then plans what the host's manifest plans."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipper.catalog.dynamodb import DynamoCatalog
from shipper.cli import main as cli
from shipper.manifest import Manifest
from shipper.sandbox import SandboxServer
from shipper.storage import StorageBackend, open_backend
from tests.e2e.test_dr import _manifest_plan
from tests.e2e.test_pitr import TABLES, World, run_cli, workload
from tests.functions.aws.conftest import create_catalog_table
from tests.functions.gcp.conftest import (
    Answer,
    Function,
    function_env,
    metric_events,
    object_resource,
    serve,
    stop,
)
from tests.services.cloud import FakeGcs, Moto, unique

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]


def _config(state: Path, server: SandboxServer, bucket: str, moto: Moto, kms: str, ddb: str) -> str:
    return f"""
tenant = "gfleet"
state_dir = "{state}"

[mysql]
socket = "{server.socket_path}"
user = "root"

[[targets]]
url = "gs://{bucket}"

[[keys]]
provider = "aws-kms"
key_id = "{kms}"
region = "{moto.region}"
endpoint_url = "{moto.endpoint_url}"

[catalog]
url = "dynamodb://{ddb}"
region = "{moto.region}"
endpoint_url = "{moto.endpoint_url}"
"""


@dataclass
class GWorld:
    w: World
    bucket: str
    source: StorageBackend
    replica: StorageBackend
    catalog: DynamoCatalog
    fn: Function
    answers: dict[str, Answer]
    keys: list[str]


@pytest.fixture(scope="module")
def gworld(
    mariadb_factory: Callable[..., SandboxServer],
    moto: Moto,
    fake_gcs: FakeGcs,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GWorld]:
    root = tmp_path_factory.mktemp("gfleet")
    server = mariadb_factory(server_id=61)
    bucket = fake_gcs.bucket()
    s3_bucket = moto.bucket(versioning=True)
    kms = moto.kms_key()
    table = unique("catalog")
    create_catalog_table(moto.client("dynamodb"), table)
    state = root / "state"
    state.mkdir()
    server.execute(*(f"CREATE DATABASE IF NOT EXISTS {t.split('.')[0]}" for t in TABLES))
    for t in TABLES:
        server.execute(
            f"CREATE TABLE {t} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "v VARCHAR(200), n INT) ENGINE=InnoDB"
        )
    w = World(server, state)
    rng = random.Random(20261209)
    workload(w, 20, rng, rotate_every=10)
    (state / "config.toml").write_text(_config(state, server, bucket, moto, kms, table))
    assert cli(["backup", "take", "--tool", "mariabackup", "--state-dir", str(state)]) == 0
    workload(w, 30, rng, rotate_every=10)
    server.flush_binary_logs()
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0

    env = function_env(moto, fake_gcs, bucket=bucket, replica=s3_bucket, table=table, kms_key=kms)
    fn = serve(env, root)
    source = open_backend(f"gs://{bucket}", {})
    keys = sorted(i.key for i in source.list(""))
    answers = {}
    for n, key in enumerate(keys):
        res = object_resource(fake_gcs, bucket, key)
        answers[key] = fn.binary(res) if n % 2 else fn.structured(res)
    try:
        yield GWorld(
            w,
            bucket,
            source,
            open_backend(
                f"s3://{s3_bucket}", {"endpoint_url": moto.endpoint_url, "region": moto.region}
            ),
            DynamoCatalog(table, client=moto.client("dynamodb")),
            fn,
            answers,
            keys,
        )
    finally:
        stop(fn)


def test_every_object_is_verified_replicated_and_recorded(gworld: GWorld) -> None:
    g = gworld
    assert {k: a.status for k, a in g.answers.items()} == dict.fromkeys(g.keys, 200)
    assert any(k.endswith(".idx.zst.enc") for k in g.keys)
    assert any("/backups/" in k and ".record" in k for k in g.keys)
    for k in g.keys:
        assert g.replica.open(k).read() == g.source.open(k).read(), k
    with Manifest(g.w.state / "manifest.sqlite") as m:
        committed = {r.name for r in m.all() if r.state == "committed"}
    binlogs = g.catalog.binlogs("gfleet", 61)
    assert {b.name for b in binlogs} == committed and len(committed) >= 3
    for b in binlogs:
        item = g.catalog.item(b.object_key or "")
        assert {c: s.state for c, s in item.copies.items()} == {
            "gcp": "verified",
            "aws": "verified",
        }
        assert item.copies["aws"].by == "cloudfunction:test-verify-replicate"
        assert item.attrs["host_state"] == "committed"
    (bk,) = g.catalog.backups("gfleet", 61)
    rec = g.catalog.item(bk.object_key or "")
    assert rec.copies["aws"].state == "verified" and rec.record_copies["aws"].state == "verified"

    # one verified and one replicated line per object, labelled with tenant and server
    events = metric_events(g.fn.lines())
    n = len(g.keys)
    assert sorted(events) == sorted(
        [("replicated", "gfleet", "61")] * n + [("verified", "gfleet", "61")] * n
    )


def test_the_catalog_plans_what_the_manifest_plans(
    gworld: GWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    state = gworld.w.state
    want: Any = json.loads(json.dumps(_manifest_plan(state, "latest"), default=str))
    rc, out, err = run_cli(
        [
            "restore",
            "plan",
            "--to",
            "latest",
            "--catalog",
            f"dynamodb://{gworld.catalog.table}",
            "--state-dir",
            str(state),
            "--json",
        ],
        capsys,
    )
    assert rc == 0, err
    assert json.loads(out) == want
