"""Permission and configuration checks for a target, without writing anything.

``preflight(backend, key_providers=...)`` answers "would shipping here work?"
for ``run --dry-run``. Each answer is a :class:`Check` whose status is

* ``ok``      -- the service said yes (the detail says what it reported),
* ``denied``  -- the service said no, or the target cannot work as configured
                 (missing bucket, Object Lock asked for but not enabled, key refused),
* ``unknown`` -- we could not find out (network error, the caller may not read
                 that setting, the endpoint does not implement the call).

Nothing here writes an object. Key providers are exercised with a throwaway
data key and a context that names no real object.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from shipper.errors import KeyProviderError
from shipper.storage.base import StorageBackend

Status = Literal["ok", "denied", "unknown"]
PREFLIGHT_CONTEXT = {"purpose": "binlog-shipper-preflight"}
_DENIED_CODES = {
    "403",
    "AccessDenied",
    "AccessDeniedException",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "AllAccessDisabled",
}
GCS_PERMISSIONS = ("storage.objects.create", "storage.objects.get", "storage.objects.list")


@dataclass(frozen=True)
class Check:
    target: str
    name: str
    status: Status
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def preflight(backend: StorageBackend, *, key_providers: Iterable[Any] = ()) -> list[Check]:
    scheme = backend.url.split("://", 1)[0]
    checks: list[Check]
    if scheme == "s3":
        checks = _s3(backend)
    elif scheme == "gs":
        checks = _gcs(backend)
    elif scheme == "file":
        checks = [_file(backend)]
    else:
        checks = [Check(backend.url, "writable", "ok", "in-memory backend")]
    checks.extend(_key(p) for p in key_providers)
    return checks


# --------------------------------------------------------------------------- keys


def _key(provider: Any) -> Check:
    target = f"{provider.kind}:{provider.key_id}"
    dek = secrets.token_bytes(32)
    try:
        wrapped = provider.wrap(dek, PREFLIGHT_CONTEXT)
        if provider.unwrap(wrapped, PREFLIGHT_CONTEXT) != dek:
            return Check(target, "key usable", "denied", "unwrap returned a different key")
    except KeyProviderError as e:
        status: Status = "unknown" if _transient(e.__cause__) else "denied"
        return Check(target, "key usable", status, str(e))
    return Check(target, "key usable", "ok", "wrapped and unwrapped a test data key")


def _transient(cause: BaseException | None) -> bool:
    """Network trouble or a 5xx: we did not learn whether the key is usable."""
    if cause is None:
        return False
    status = _http_status(cause)
    if status is not None:
        return status >= 500 or status == 429
    name = type(cause).__name__
    return any(w in name for w in ("Connect", "Timeout", "Endpoint", "ServiceUnavailable"))


def _http_status(e: BaseException) -> int | None:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        s = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(s) if s else None
    code = getattr(e, "code", None)
    if isinstance(code, int):
        return code
    s = getattr(response, "status_code", None)
    return s if isinstance(s, int) else None


def _code(e: BaseException) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or str(_http_status(e) or "")
    status = _http_status(e)
    return str(status) if status else type(e).__name__


def _classify(e: BaseException) -> Status:
    code = _code(e)
    if code in _DENIED_CODES or _http_status(e) in (401, 403):
        return "denied"
    return "unknown"


def _why(e: BaseException) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', '')}: {err.get('Message', '')}".strip(": ")
    return str(getattr(e, "message", None) or e).splitlines()[0]


# --------------------------------------------------------------------------- S3


def _s3(b: Any) -> list[Check]:
    s3, bucket, t = b.client, b.bucket, b.url
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception as e:
        if _code(e) in ("404", "NoSuchBucket", "NotFound"):
            return [Check(t, "bucket reachable", "denied", f"bucket {bucket} does not exist")]
        return [Check(t, "bucket reachable", _classify(e), _why(e))]
    checks = [Check(t, "bucket reachable", "ok", f"head_bucket {bucket}")]

    try:
        s3.list_objects_v2(Bucket=bucket, Prefix=b.prefix, MaxKeys=1)
        checks.append(Check(t, "list objects", "ok", f"prefix {b.prefix or '/'}"))
    except Exception as e:
        checks.append(Check(t, "list objects", _classify(e), _why(e)))

    try:
        state = s3.get_bucket_versioning(Bucket=bucket).get("Status") or "Disabled"
        checks.append(Check(t, "versioning", "ok", f"versioning {state}"))
    except Exception as e:
        checks.append(Check(t, "versioning", "unknown", f"cannot read: {_why(e)}"))

    checks.append(_s3_object_lock(b))
    if b.sse_kms_key_id:
        checks.append(_s3_sse_kms(b))
    return checks


def _s3_object_lock(b: Any) -> Check:
    t = b.url
    try:
        cfg = b.client.get_object_lock_configuration(Bucket=b.bucket)["ObjectLockConfiguration"]
    except Exception as e:
        if _code(e) == "ObjectLockConfigurationNotFoundError":
            if b.object_lock_mode:
                return Check(
                    t,
                    "object lock",
                    "denied",
                    f"object_lock_mode={b.object_lock_mode} is configured but bucket "
                    f"{b.bucket} has no Object Lock (it can only be set at creation)",
                )
            return Check(t, "object lock", "ok", "Object Lock not enabled")
        return Check(t, "object lock", "unknown", f"cannot read: {_why(e)}")
    enabled = cfg.get("ObjectLockEnabled") == "Enabled"
    rule = cfg.get("Rule", {}).get("DefaultRetention")
    detail = "Object Lock enabled" if enabled else "Object Lock not enabled"
    if rule:
        detail += f", default {rule.get('Mode')} {rule.get('Days') or rule.get('Years')}"
        detail += " days" if rule.get("Days") else " years"
    if b.object_lock_mode:
        detail += f"; shipper sets {b.object_lock_mode} for {b.object_lock_days} days"
        if not enabled:
            return Check(t, "object lock", "denied", detail)
    return Check(t, "object lock", "ok", detail)


def _s3_sse_kms(b: Any) -> Check:
    import boto3

    target = f"{b.url} sse-kms:{b.sse_kms_key_id}"
    kms = boto3.session.Session().client("kms", region_name=b.region, endpoint_url=b.endpoint_url)
    try:
        kms.generate_data_key(
            KeyId=b.sse_kms_key_id, KeySpec="AES_256", EncryptionContext=PREFLIGHT_CONTEXT
        )
    except Exception as e:
        status: Status = (
            "denied"
            if _code(e)
            in _DENIED_CODES
            | {"NotFoundException", "DisabledException", "KMSInvalidStateException"}
            else "unknown"
        )
        return Check(target, "kms key usable", status, _why(e))
    return Check(target, "kms key usable", "ok", "GenerateDataKey succeeded")


# --------------------------------------------------------------------------- GCS


def _gcs(b: Any) -> list[Check]:
    t, bucket = b.url, b.bucket
    try:
        bucket.reload()
    except Exception as e:
        if _http_status(e) == 404:
            return [
                Check(t, "bucket reachable", "denied", f"bucket {b.bucket_name} does not exist")
            ]
        return [Check(t, "bucket reachable", _classify(e), _why(e))]
    checks = [Check(t, "bucket reachable", "ok", f"bucket {b.bucket_name}")]

    try:
        granted = set(bucket.test_iam_permissions(list(GCS_PERMISSIONS)))
    except Exception as e:
        # The bucket answered just now, so a 404 here means the endpoint has no
        # testIamPermissions (fake-gcs-server): probe what can be probed read-only.
        reason = (
            "endpoint does not implement testIamPermissions"
            if _http_status(e) == 404
            else f"testIamPermissions failed: {_why(e)}"
        )
        checks.extend(_gcs_probes(b, reason))
    else:
        for perm in GCS_PERMISSIONS:
            ok = perm in granted
            checks.append(
                Check(
                    t,
                    perm,
                    "ok" if ok else "denied",
                    "granted" if ok else "not granted to the caller",
                )
            )

    period = bucket.retention_period
    if period:
        locked = " (locked)" if bucket.retention_policy_locked else " (not locked)"
        checks.append(Check(t, "retention policy", "ok", f"retention {int(period)} s{locked}"))
    else:
        checks.append(Check(t, "retention policy", "ok", "no retention policy"))
    return checks


def _gcs_probes(b: Any, reason: str) -> list[Check]:
    t = b.url
    out = [
        Check(
            t,
            "storage.objects.create",
            "unknown",
            f"{reason}; create cannot be probed without writing",
        )
    ]
    try:
        next(iter(b.client.list_blobs(b.bucket_name, prefix=b.prefix, max_results=1)), None)
        out.append(Check(t, "storage.objects.list", "ok", f"{reason}; probe: list succeeded"))
    except Exception as e:
        out.append(Check(t, "storage.objects.list", _classify(e), _why(e)))
    probe = b.bucket.blob(b.prefix + ".binlog-shipper-preflight-" + secrets.token_hex(8))
    try:
        probe.reload()
        out.append(Check(t, "storage.objects.get", "ok", f"{reason}; probe: get succeeded"))
    except Exception as e:
        if _http_status(e) == 404:
            out.append(
                Check(
                    t,
                    "storage.objects.get",
                    "ok",
                    f"{reason}; probe: get of a missing name answered 404, not 403",
                )
            )
        else:
            out.append(Check(t, "storage.objects.get", _classify(e), _why(e)))
    return out


# --------------------------------------------------------------------------- file


def _file(b: Any) -> Check:
    root = Path(b.root)
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return Check(b.url, "writable", "denied", f"{probe} is not a directory")
    if os.access(probe, os.W_OK | os.X_OK):
        what = "exists" if probe == root else f"can be created under {probe}"
        return Check(b.url, "writable", "ok", f"{root} {what} and is writable")
    return Check(b.url, "writable", "denied", f"{probe} is not writable by uid {os.getuid()}")
