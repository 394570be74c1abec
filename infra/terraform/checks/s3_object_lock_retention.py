"""BLS_AWS_1: an S3 Object Lock configuration must set a default retention.

checkov's own CKV_AWS_143 only reads the inline ``object_lock_configuration``
block of ``aws_s3_bucket`` (AWS provider < 4). Since provider 4 the retention
lives in ``aws_s3_bucket_object_lock_configuration``, which nothing checks:
a configuration with no ``rule`` (or a rule without mode or period) leaves new
objects unlocked while the bucket looks protected.
"""

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

MODES = ("COMPLIANCE", "GOVERNANCE")


def _first(conf: dict[str, Any], key: str) -> Any:
    """checkov wraps every attribute and block in a list; take its one value."""
    value = conf.get(key)
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _positive(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value > 0
    if isinstance(value, str):
        try:
            return float(value) > 0
        except ValueError:
            return False
    return False


class S3ObjectLockDefaultRetention(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure S3 Object Lock configuration sets a default retention (mode and period)",
            id="BLS_AWS_1",
            categories=(CheckCategories.BACKUP_AND_RECOVERY,),
            supported_resources=("aws_s3_bucket_object_lock_configuration",),
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        self.evaluated_keys = ["rule/[0]/default_retention"]
        # object_lock_enabled is optional; when present it must say Enabled.
        enabled = _first(conf, "object_lock_enabled")
        if enabled is not None and enabled != "Enabled":
            return CheckResult.FAILED
        rule = _first(conf, "rule")
        if not isinstance(rule, dict):
            return CheckResult.FAILED
        retention = _first(rule, "default_retention")
        if not isinstance(retention, dict):
            return CheckResult.FAILED
        if _first(retention, "mode") not in MODES:
            return CheckResult.FAILED
        if _positive(_first(retention, "days")) or _positive(_first(retention, "years")):
            return CheckResult.PASSED
        return CheckResult.FAILED


check = S3ObjectLockDefaultRetention()
