"""BLS_GCP_1: a GCS bucket must have a retention policy.

Nothing in checkov checks one. Without it any principal with
storage.objects.delete can remove (or, with create, replace) an archived
object at once; with it, no object can be deleted or replaced before it is
``retention_period`` seconds old, and a locked policy cannot be shortened.
Locking stays optional (``is_locked``): it is irreversible.
"""

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

ONE_DAY = 86400


def _first(conf: dict[str, Any], key: str) -> Any:
    """checkov wraps every attribute and block in a list; take its one value."""
    value = conf.get(key)
    if isinstance(value, list):
        return value[0] if value else None
    return value


class GCSBucketRetentionPolicy(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure GCS bucket has a retention policy of at least one day",
            id="BLS_GCP_1",
            categories=(CheckCategories.BACKUP_AND_RECOVERY,),
            supported_resources=("google_storage_bucket",),
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        self.evaluated_keys = ["retention_policy/[0]/retention_period"]
        policy = _first(conf, "retention_policy")
        if not isinstance(policy, dict):
            return CheckResult.FAILED
        period = _first(policy, "retention_period")
        if isinstance(period, bool):
            return CheckResult.FAILED
        try:
            seconds = float(period)
        except (TypeError, ValueError):
            # An expression checkov could not resolve: not provably compliant.
            return CheckResult.FAILED
        return CheckResult.PASSED if seconds >= ONE_DAY else CheckResult.FAILED


check = GCSBucketRetentionPolicy()
