"""``make functions`` (functions/build.py): the Lambda zip holds the handlers Terraform
names, the shipper package and its runtime dependencies, no tests and no boto3, within the
Lambda limits and byte-identical when rebuilt; dist/functions/gcp/ is main.py + shipper/ +
requirements.txt, and functions-framework serves it as Cloud Build would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.functions.gcp.conftest import EVENTS, ROOT, serve, stop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, str(ROOT / "functions" / "build.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_lambda_zip_holds_handlers_shipper_and_dependencies_only(dist: tuple[Path, str]) -> None:
    out, printed = dist
    z = out / "aws-lambda.zip"
    with zipfile.ZipFile(z) as f:
        names = f.namelist()
        unzipped = sum(i.file_size for i in f.infolist())
    tops = {n.split("/")[0] for n in names}
    assert "functions/aws/verify_replicate.py" in names
    assert "functions/aws/restore_planner.py" in names
    assert "shipper/fleet/service.py" in names and "shipper/envelope/format.py" in names
    assert {"aws_lambda_powertools", "zstandard", "cryptography", "google"} <= tops
    assert "tests" not in tops and not any("/tests/" in n for n in names if "shipper" in n)
    assert not tops & {"boto3", "botocore", "s3transfer"}
    assert not any(n.endswith(".pyc") for n in names)
    assert z.stat().st_size < 50_000_000 and unzipped < 250_000_000
    assert f"{z}: " in printed and "MB zipped" in printed and "unzipped" in printed


def test_lambda_zip_is_deterministic(dist: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = dist
    again = subprocess.run(
        [sys.executable, str(ROOT / "functions" / "build.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "aws-lambda.zip").read_bytes() == (out / "aws-lambda.zip").read_bytes()


def test_gcp_source_is_served_by_functions_framework(
    dist: tuple[Path, str], tmp_path: Path
) -> None:
    out, printed = dist
    gcp = out / "gcp"
    assert (gcp / "main.py").read_bytes() == (ROOT / "functions/gcp/main.py").read_bytes()
    assert (gcp / "shipper" / "fleet" / "service.py").is_file()
    reqs = (gcp / "requirements.txt").read_text().splitlines()
    names = {r.split("==")[0] for r in reqs if r and not r.startswith("#")}
    assert {"functions-framework", "boto3", "google-cloud-storage", "zstandard"} <= names
    assert "aws-lambda-powertools" not in names
    assert f"{gcp}/: " in printed

    # the built directory, not the repository, is what runs (its shipper first on the path)
    env = {
        **os.environ,
        "PYTHONPATH": str(gcp),
        "ARCHIVE_BUCKET": "some-bucket",
        "CATALOG_TABLE": "t",
        "AWS_REGION": "us-east-1",
        "AWS_CREDENTIALS_MODE": "secret",
        "AWS_CREDENTIALS_JSON": json.dumps(
            {"aws_access_key_id": "x", "aws_secret_access_key": "y"}
        ),
        "AWS_KMS_KEY_ID": "alias/none",
        # nothing is contacted for a key outside the layout; the clients only need building
        "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
    }
    fn = serve(env, tmp_path, source=gcp / "main.py")
    try:
        sample = json.loads((EVENTS / "gcf-storage-cloudevent-input.json").read_text())
        a = fn.structured(sample["data"], event_id=sample["id"])
        assert a.status == 200, a.body
        # folder/Test.cs is outside the archive layout: acknowledged, nothing read
        assert [x["status"] for x in fn.lines() if "status" in x] == ["outside_layout"]
    finally:
        stop(fn)
