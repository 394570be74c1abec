"""Cloud Function: verify every object that lands in the GCS archive bucket, copy it to S3,
record both copies in the DynamoDB catalog.

Served by functions-framework for the CloudEvent
``google.cloud.storage.object.v1.finalized`` (Eventarc, retry policy "retry"):
the mirror of ``functions/aws/verify_replicate.py`` for GCS-primary tenants, and
for objects the shipper wrote to GCS while its AWS circuit was open.

The function is an adapter: typed event view (:class:`FinalizedObject`) ->
:class:`shipper.fleet.service.VerifyReplicate` (the same service the Lambda
runs; the replica is S3, created with ``If-None-Match: *``) -> structured JSON
log lines. Cloud Run turns each JSON line on stdout into a log entry whose
``jsonPayload`` is the line; the log-based metrics of
``infra/terraform/modules/gcp-archive/monitoring.tf`` count the entries whose
``jsonPayload.event`` is ``verified``, ``replicated``, ``integrity_failed``,
``lineage_conflicts`` or ``replication_failed``, labelled with
``jsonPayload.tenant`` and ``jsonPayload.server``. So an object gives one line
per metric it counts towards (a replicated object: ``verified`` then
``replicated``), and no other line carries ``event``.

Returning is the acknowledgement; raising makes functions-framework answer 500
and Eventarc redeliver the event (with backoff, for up to 24 hours). The
function raises only when the object is not to blame: a data key that cannot be
unwrapped, or a storage or catalog error (a failed copy to S3 is logged as
``replication_failed`` first). A tampered object, one deleted before its event
arrived, and a key outside the archive layout are outcomes: logged, recorded
where there is something to record, acknowledged.

Environment (infra/terraform/README.md, "Function contracts"): ``ARCHIVE_BUCKET``,
``REPLICA_S3_BUCKET`` (empty: verify only), ``AWS_REGION``, ``CATALOG_TABLE``,
``METRICS_NAMESPACE``, ``AWS_CREDENTIALS_MODE`` (``workload_identity`` with
``AWS_ROLE_ARN`` and ``AWS_WEB_IDENTITY_AUDIENCE``, or ``secret`` with
``AWS_CREDENTIALS_JSON``; see :mod:`shipper.fleet.aws_credentials`). The data
key is unwrapped by ``KMS_KEY_NAME`` (GCP KMS: one or more key names, comma-separated,
one per tenant key) and/or ``AWS_KMS_KEY_ID`` (AWS KMS,
for dual-cloud tenants). ``AWS_ENDPOINT_URL`` and ``STORAGE_EMULATOR_HOST`` point
it at emulators (the tests).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import functions_framework
from werkzeug.exceptions import InternalServerError

from shipper.errors import ConfigError, ShipperError
from shipper.fleet.aws_credentials import configure_aws_credentials, refresh_token
from shipper.fleet.service import ReplicationFailed, Result, Store, VerifyReplicate

FINALIZED = "google.cloud.storage.object.v1.finalized"

#: the events the log-based metrics count (monitoring.tf, local.function_events)
METRIC_EVENTS = ("verified", "replicated", "integrity_failed", "lineage_conflicts")
REPLICATION_FAILED = "replication_failed"


class NotAFinalizedObject(ShipperError):
    """A CloudEvent that names no finalized GCS object: the trigger is misconfigured."""


@dataclass(frozen=True)
class FinalizedObject:
    """The typed view of a ``google.cloud.storage.object.v1.finalized`` CloudEvent: the
    object resource GCS sends as its data (the name is not URL-encoded)."""

    event_id: str
    bucket: str
    name: str
    generation: str
    size: int

    @classmethod
    def of(cls, attributes: Mapping[str, Any], data: Any) -> FinalizedObject:
        if attributes.get("type") != FINALIZED:
            raise NotAFinalizedObject(
                f"CloudEvent {attributes.get('id')!r} is of type {attributes.get('type')!r}, "
                f"not {FINALIZED}: check the function's event trigger"
            )
        if not isinstance(data, Mapping) or not data.get("bucket") or not data.get("name"):
            keys = sorted(data)[:8] if isinstance(data, Mapping) else type(data).__name__
            raise NotAFinalizedObject(
                f"CloudEvent {attributes.get('id')!r} carries no GCS object resource "
                f"(data: {keys}): check the function's event trigger"
            )
        return cls(
            event_id=str(attributes.get("id", "")),
            bucket=str(data["bucket"]),
            name=str(data["name"]),
            generation=str(data.get("generation", "")),
            size=int(data.get("size") or 0),
        )


def log_line(event: str | None, message: str, *, severity: str = "INFO", **fields: Any) -> None:
    """One structured log entry: Cloud Run reads ``severity`` and ``message`` and keeps the
    rest as ``jsonPayload``. Written whole, in one call, so lines never interleave."""
    line: dict[str, Any] = {"severity": severity, "message": message}
    if event is not None:
        line["event"] = event
    line.update(fields)
    sys.stdout.write(json.dumps(line, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()


class JsonLogFormatter(logging.Formatter):
    """The shipper package's own log records as structured lines (never with ``event``,
    so the metrics count each outcome once)."""

    _SKIP = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        # Python's level names are Cloud Logging's severities (DEBUG ... CRITICAL)
        line: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        for k, v in record.__dict__.items():
            if k not in self._SKIP and k != "event":
                line[k] = v
        if record.exc_info and record.exc_info[1] is not None:
            # the error by name, never a traceback in the log
            e = record.exc_info[1]
            line["error"] = f"{type(e).__name__}: {e}"
        return json.dumps(line, default=str, sort_keys=True)


def configure_logging() -> None:
    h = logging.StreamHandler(sys.stdout)
    h.setFormatter(JsonLogFormatter())
    root = logging.getLogger("shipper")
    root.handlers[:] = [h]
    root.setLevel(logging.INFO)
    root.propagate = False


def report(obj: FinalizedObject, result: Result, namespace: str) -> None:
    """The outcome as log lines: one per metric it counts towards, then its status."""
    base = {
        "tenant": result.tenant or "unknown",
        "server": result.server or "unknown",
        "key": obj.name,
        "bucket": obj.bucket,
        "generation": obj.generation,
        "event_id": obj.event_id,
        "namespace": namespace,
        "status": result.status,
    }
    for name in METRIC_EVENTS:
        n = int(result.counts.get(name, 0))
        for _ in range(n):
            severity = "ERROR" if name in ("integrity_failed", "lineage_conflicts") else "INFO"
            extra = {"bytes": int(result.counts.get("bytes", 0))} if name == "verified" else {}
            msg = f"{name}: {obj.bucket}/{obj.name}"
            if result.detail and severity == "ERROR":
                msg += f": {result.detail}"
            log_line(name, msg, severity=severity, **base, **extra)
    log_line(
        None,
        f"{result.status}: {obj.bucket}/{obj.name}",
        seconds=round(float(result.counts.get("seconds", 0.0)), 6),
        **base,
    )


def make_function(
    service: VerifyReplicate | Callable[[], VerifyReplicate],
    *,
    namespace: str | None = None,
) -> Callable[[Any], dict[str, Any]]:
    """The function body over ``service`` (or a function building it on first use); takes
    a ``cloudevents.http.CloudEvent`` and returns the outcome (status and counts)."""

    def get() -> VerifyReplicate:
        return service if isinstance(service, VerifyReplicate) else service()

    ns = namespace or os.environ.get("METRICS_NAMESPACE") or "BinlogShipper"

    def accept(cloud_event: Any) -> tuple[FinalizedObject, VerifyReplicate]:
        attributes = cloud_event.get_attributes()
        try:
            obj = FinalizedObject.of(attributes, cloud_event.get_data())
            svc = get()  # the first event builds it: a bad environment is named here
            if obj.bucket != svc.source.bucket:
                raise ConfigError(
                    f"event for bucket {obj.bucket!r}, but this function verifies "
                    f"{svc.source.bucket!r} (ARCHIVE_BUCKET): check the event trigger's filter"
                )
        except ShipperError as e:
            log_line(
                None,
                f"event not handled, it will be retried: {e}",
                severity="ERROR",
                event_id=str(attributes.get("id", "")),
                subject=str(attributes.get("subject", "")),
            )
            raise
        return obj, svc

    def run(cloud_event: Any) -> dict[str, Any]:
        obj, svc = accept(cloud_event)
        started = time.monotonic()
        try:
            result = svc.process(obj.name)
        except ShipperError as e:
            if isinstance(e, ReplicationFailed):
                log_line(
                    REPLICATION_FAILED,
                    f"{REPLICATION_FAILED}: {obj.bucket}/{obj.name}: {e}",
                    severity="ERROR",
                    key=obj.name,
                    bucket=obj.bucket,
                    event_id=obj.event_id,
                    **_tenant_server(obj.name),
                )
            else:
                log_line(
                    None,
                    f"not done, the event will be retried: {obj.bucket}/{obj.name}: {e}",
                    severity="ERROR",
                    key=obj.name,
                    event_id=obj.event_id,
                    seconds=round(time.monotonic() - started, 6),
                    **_tenant_server(obj.name),
                )
            raise
        report(obj, result, ns)
        return {"key": obj.name, "status": result.status, "counts": dict(result.counts)}

    return run


def _tenant_server(key: str) -> dict[str, str]:
    from shipper.catalog.dynamodb_items import item_for_key

    try:
        ref = item_for_key(key)
    except ShipperError:
        return {"tenant": "unknown", "server": "unknown"}
    return {"tenant": ref.tenant, "server": str(ref.server_id)}


def gcp_key_names(env: Mapping[str, str]) -> list[str]:
    """``KMS_KEY_NAME``: the archive's own GCP key and every tenant module's
    ``envelope-TENANT`` key, comma-separated (infra/terraform gcp-archive sets it).
    Unwrapping picks, among them, the key an envelope names."""
    return [n.strip() for n in env.get("KMS_KEY_NAME", "").split(",") if n.strip()]


def service_from_env(env: Mapping[str, str]) -> VerifyReplicate:
    """The service the deployed function runs, from its environment."""
    from shipper.catalog.dynamodb import DynamoCatalog
    from shipper.keys import KeyProvider, make_provider
    from shipper.storage import open_backend

    def need(name: str) -> str:
        v = env.get(name, "")
        if not v:
            raise ConfigError(f"environment variable {name} is not set (see docs/functions.md)")
        return v

    bucket = need("ARCHIVE_BUCKET")
    table = need("CATALOG_TABLE")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    endpoint = env.get("AWS_ENDPOINT_URL") or None
    configure_aws_credentials(env)
    source = Store(open_backend(f"gs://{bucket}", {}), "gcp", bucket)
    replica = None
    if s3 := env.get("REPLICA_S3_BUCKET", ""):
        replica = Store(
            open_backend(f"s3://{s3}", {"endpoint_url": endpoint, "region": region}), "aws", s3
        )
    providers: list[KeyProvider] = []
    for name in gcp_key_names(env):
        providers.append(make_provider({"provider": "gcp-kms", "key_name": name}))
    if key_id := env.get("AWS_KMS_KEY_ID", ""):
        providers.append(
            make_provider(
                {
                    "provider": "aws-kms",
                    "key_id": key_id,
                    "region": region,
                    "endpoint_url": endpoint,
                }
            )
        )
    if not providers:
        raise ConfigError(
            "neither KMS_KEY_NAME (GCP KMS) nor AWS_KMS_KEY_ID (AWS KMS) is set: the function "
            "cannot unwrap any object's data key (see docs/functions.md)"
        )
    catalog = DynamoCatalog(table, region=region, endpoint_url=endpoint)
    name = env.get("K_SERVICE", "verify-replicate")
    return VerifyReplicate(source, replica, providers, catalog, by=f"cloudfunction:{name}")


# --------------------------------------------------------------------------- entry point

_service: VerifyReplicate | None = None


def _default() -> VerifyReplicate:
    global _service
    if _service is None:  # built on the first event, reused while the instance is warm
        configure_logging()
        _service = service_from_env(os.environ)
    return _service


_run = make_function(_default)


@functions_framework.cloud_event
def verify_replicate(cloud_event: Any) -> None:
    """Entry point (infra/terraform: ``entry_point = "verify_replicate"``)."""
    try:
        try:
            refresh_token()
        except ShipperError as e:
            log_line(None, f"event not handled, it will be retried: {e}", severity="ERROR")
            raise
        _run(cloud_event)
    except ShipperError as e:
        # An HTTP error is answered by Flask without a traceback (any other exception
        # is logged with one); the error line above names the object and the cause,
        # and the 500 is what makes Eventarc redeliver the event.
        raise InternalServerError(description=str(e)) from e
