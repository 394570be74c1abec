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


def _python312() -> str | None:
    """A Python 3.12 on this machine (the Lambda zip's runtime), if there is one."""
    import glob
    import shutil

    found = shutil.which("python3.12")
    candidates = sorted(glob.glob("/root/.pyenv/versions/3.12*/bin/python3.12"))
    for exe in [*candidates, found]:
        if exe and subprocess.run([exe, "-c", "pass"], capture_output=True).returncode == 0:
            return exe
    return None


def test_lambda_zip_imports_and_seals_on_python_3_12(
    dist: tuple[Path, str], tmp_path: Path
) -> None:
    """The zip's compiled wheels are cp312 (the Lambda runtime's): a Python 3.12 imports
    both handlers from the unzipped package and seals and opens an envelope with them
    (zstandard and cryptography native code), with boto3 where the runtime has it."""
    exe = _python312()
    if exe is None:
        pytest.skip("no Python 3.12 on this machine to run the cp312 package with")
    out, _ = dist
    task = tmp_path / "task"  # /var/task
    with zipfile.ZipFile(out / "aws-lambda.zip") as f:
        f.extractall(task)
    # the runtime's own boto3 (pure Python), as Lambda puts it on the path
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    import importlib.util

    for mod in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"):
        spec = importlib.util.find_spec(mod)
        assert spec is not None and spec.origin is not None, mod
        src = Path(spec.origin)
        src = src.parent if src.name == "__init__.py" else src
        (runtime / src.name).symlink_to(src)
    code = f"""
import io, sys
sys.path[:0] = [{str(task)!r}, {str(runtime)!r}]
assert sys.version_info[:2] == (3, 12), sys.version
import functions.aws.verify_replicate, functions.aws.restore_planner
import cryptography, zstandard
from shipper import envelope
from shipper.keys.local import LocalKeyring
keys = [LocalKeyring.create({str(tmp_path / "keyring")!r})]
ctx = {{"tenant": "t", "server_id": "1", "binlog": "mysql-bin.000001"}}
sealed, plain = io.BytesIO(), b"binlog bytes " * 100000
envelope.seal(io.BytesIO(plain), sealed, providers=keys, context=ctx)
out = io.BytesIO()
sealed.seek(0)
envelope.unseal(sealed, out, providers=keys, expected_context=[ctx])
assert out.getvalue() == plain
print(cryptography.__file__)
print(zstandard.__file__)
"""
    done = subprocess.run([exe, "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # the native modules came from the zip, not from this test's environment
    assert all(line.startswith(str(task)) for line in done.stdout.split())
