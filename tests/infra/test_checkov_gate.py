"""checkov passes every check on infra/terraform and samplerepo, skips
aside, and the custom checks did run on the real buckets."""

from __future__ import annotations

import pytest

from tests.infra.checkov_run import CHECKOV, results, run_checkov
from tests.infra.tftree import ROOT

pytestmark = pytest.mark.skipif(
    not CHECKOV.exists(), reason=".venv-checkov is missing: `make infra-check` creates it"
)


def _config_skips() -> list[str]:
    lines = (ROOT / "infra/terraform/checkov.yaml").read_text().splitlines()
    start = lines.index("skip-check:")
    skips = []
    for line in lines[start + 1 :]:
        s = line.strip()
        if s.startswith("- "):
            skips.append(s[2:].split()[0])
        elif s and not s.startswith("#"):
            break
    return skips


@pytest.fixture(scope="module")
def verdicts() -> dict[tuple[str, str], str]:
    # the same skip list as `make infra-check`, without its quiet mode, so
    # passed checks are reported too
    skips = ",".join(_config_skips())
    out: dict[tuple[str, str], str] = {}
    for d in (ROOT / "infra" / "terraform", ROOT / "samplerepo"):
        out.update(results(run_checkov(d, "--skip-check", skips)))
    return out


def test_no_check_fails(verdicts: dict[tuple[str, str], str]) -> None:
    failed = sorted(k for k, v in verdicts.items() if v == "FAILED")
    assert failed == []


def test_the_skip_list_stays_short(verdicts: dict[tuple[str, str], str]) -> None:
    inline = {k for k, v in verdicts.items() if v == "SKIPPED"}
    assert len(_config_skips()) <= 5
    assert len({check for check, _ in inline}) <= 10, sorted(inline)


@pytest.mark.parametrize(
    ("check", "resource"),
    [
        ("BLS_AWS_1", "aws_s3_bucket_object_lock_configuration.archive"),
        ("BLS_AWS_2", "aws_s3_bucket.archive"),
        ("BLS_GCP_1", "google_storage_bucket.archive"),
        ("BLS_GCP_1", "google_storage_bucket.ops"),
    ],
)
def test_custom_checks_pass_on_the_archive_buckets(
    verdicts: dict[tuple[str, str], str], check: str, resource: str
) -> None:
    assert verdicts.get((check, resource)) == "PASSED"
