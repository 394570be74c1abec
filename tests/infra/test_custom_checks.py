"""The custom checkov checks (infra/terraform/checks), run by checkov itself
on small good and bad snippets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.checkov_run import CHECKOV, results, run_checkov

pytestmark = pytest.mark.skipif(
    not CHECKOV.exists(), reason=".venv-checkov is missing: `make infra-check` creates it"
)

SNIPPETS = """
resource "aws_s3_bucket" "locked" {
  bucket              = "locked"
  object_lock_enabled = true
}
resource "aws_s3_bucket_object_lock_configuration" "good" {
  bucket = aws_s3_bucket.locked.id
  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = 35
    }
  }
}

resource "aws_s3_bucket" "years" {
  bucket              = "years"
  object_lock_enabled = true
}
resource "aws_s3_bucket_object_lock_configuration" "years" {
  bucket = aws_s3_bucket.years.id
  rule {
    default_retention {
      mode  = "GOVERNANCE"
      years = 1
    }
  }
}

resource "aws_s3_bucket" "no_rule" {
  bucket              = "no-rule"
  object_lock_enabled = true
}
resource "aws_s3_bucket_object_lock_configuration" "no_rule" {
  bucket = aws_s3_bucket.no_rule.id
}

resource "aws_s3_bucket" "no_period" {
  bucket              = "no-period"
  object_lock_enabled = true
}
resource "aws_s3_bucket_object_lock_configuration" "no_period" {
  bucket = aws_s3_bucket.no_period.id
  rule {
    default_retention {
      mode = "COMPLIANCE"
    }
  }
}

resource "aws_s3_bucket" "bad_mode" {
  bucket              = "bad-mode"
  object_lock_enabled = true
}
resource "aws_s3_bucket_object_lock_configuration" "bad_mode" {
  bucket = aws_s3_bucket.bad_mode.id
  rule {
    default_retention {
      mode = "LEGAL_HOLD"
      days = 35
    }
  }
}

resource "aws_s3_bucket" "unlocked" {
  bucket = "unlocked"
}

resource "aws_s3_bucket" "enabled_without_configuration" {
  bucket              = "enabled-only"
  object_lock_enabled = true
}

resource "aws_s3_bucket" "legacy_inline" {
  bucket = "legacy"
  object_lock_configuration {
    object_lock_enabled = "Enabled"
    rule {
      default_retention {
        mode = "COMPLIANCE"
        days = 35
      }
    }
  }
}

variable "retention_days" {
  type    = number
  default = 35
}

resource "google_storage_bucket" "retained" {
  name     = "retained"
  location = "EU"
  retention_policy {
    retention_period = var.retention_days * 86400
    is_locked        = false
  }
}

resource "google_storage_bucket" "literal" {
  name     = "literal"
  location = "EU"
  retention_policy {
    retention_period = 2592000
  }
}

resource "google_storage_bucket" "no_retention" {
  name     = "no-retention"
  location = "EU"
}

resource "google_storage_bucket" "minute" {
  name     = "minute"
  location = "EU"
  retention_policy {
    retention_period = 60
  }
}
"""


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    d: Path = tmp_path_factory.mktemp("snippets")
    (d / "main.tf").write_text(SNIPPETS)
    return results(run_checkov(d, "--check", "BLS_AWS_1,BLS_AWS_2,BLS_GCP_1"))


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("aws_s3_bucket_object_lock_configuration.good", "PASSED"),
        ("aws_s3_bucket_object_lock_configuration.years", "PASSED"),
        ("aws_s3_bucket_object_lock_configuration.no_rule", "FAILED"),
        ("aws_s3_bucket_object_lock_configuration.no_period", "FAILED"),
        ("aws_s3_bucket_object_lock_configuration.bad_mode", "FAILED"),
    ],
)
def test_bls_aws_1_object_lock_configuration_needs_a_default_retention(
    verdicts: dict[tuple[str, str], str], resource: str, expected: str
) -> None:
    assert verdicts.get(("BLS_AWS_1", resource)) == expected


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("aws_s3_bucket.locked", "PASSED"),
        ("aws_s3_bucket.legacy_inline", "PASSED"),
        ("aws_s3_bucket.unlocked", "FAILED"),
        ("aws_s3_bucket.enabled_without_configuration", "FAILED"),
    ],
)
def test_bls_aws_2_bucket_needs_object_lock_with_a_configuration(
    verdicts: dict[tuple[str, str], str], resource: str, expected: str
) -> None:
    assert verdicts.get(("BLS_AWS_2", resource)) == expected


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("google_storage_bucket.retained", "PASSED"),
        ("google_storage_bucket.literal", "PASSED"),
        ("google_storage_bucket.no_retention", "FAILED"),
        ("google_storage_bucket.minute", "FAILED"),
    ],
)
def test_bls_gcp_1_bucket_needs_a_retention_policy(
    verdicts: dict[tuple[str, str], str], resource: str, expected: str
) -> None:
    assert verdicts.get(("BLS_GCP_1", resource)) == expected
