"""Lambda: verify every object that lands in the archive bucket, copy it to GCS, record both.

Event: an SQS batch (the event source mapping has ``ReportBatchItemFailures``)
whose bodies are S3 ``ObjectCreated`` notifications, or EventBridge "Object
Created" events (also accepted when invoked directly by an EventBridge rule).
``s3:TestEvent`` (sent when the notification is configured) is skipped. Keys in
S3 notifications are URL-encoded: decoded once, here.

The handler is an adapter: typed event view (Powertools event data classes) ->
:class:`shipper.fleet.service.VerifyReplicate` -> one EMF metric set per object
(namespace ``BinlogShipper``, dimensions ``tenant`` and ``server``). A record
whose object raised (KMS denied, a storage or catalog error) is reported in
``batchItemFailures`` alone, so SQS redelivers it and, past ``maxReceiveCount``,
moves it to the dead-letter queue; the rest of the batch is done.

Environment (infra/terraform/README.md, "Function contracts"): ``ARCHIVE_BUCKET``,
``CATALOG_TABLE``, ``REPLICA_GCS_BUCKET`` (empty: verify only),
``METRICS_NAMESPACE``, ``GCP_CREDENTIAL_CONFIG`` (external_account JSON), and
``KMS_KEY_ID`` (the archive's KMS key; the function needs kms:Decrypt on it).
``AWS_ENDPOINT_URL`` and ``STORAGE_EMULATOR_HOST`` point it at emulators.
Tests build the service themselves and call :func:`make_handler`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes import S3Event, SQSRecord
from aws_lambda_powertools.utilities.data_classes.s3_event import (
    S3EventBridgeNotificationEvent,
)

from shipper.errors import ConfigError, ShipperError
from shipper.fleet.service import Result, Store, VerifyReplicate

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "binlog-verify-replicate"))
tracer = Tracer()
# the shipper package's own log records (INTEGRITY FAILED, LINEAGE CONFLICT...) go out
# through the same JSON formatter, so CloudWatch Logs sees one structured stream
copy_config_to_registered_loggers(source_logger=logger, include={"shipper"})

_UNITS = {
    "verified": MetricUnit.Count,
    "replicated": MetricUnit.Count,
    "integrity_failed": MetricUnit.Count,
    "lineage_conflicts": MetricUnit.Count,
    "bytes": MetricUnit.Bytes,
    "seconds": MetricUnit.Seconds,
}


class NotAnObjectEvent(ShipperError):
    """A message that is no S3 object event: it goes to the dead-letter queue to be seen."""


def objects_in(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(bucket, key) of every created object an event names (keys decoded)."""
    if body.get("Event") == "s3:TestEvent":
        return []
    if "detail-type" in body:
        eb = S3EventBridgeNotificationEvent(dict(body))
        if eb.detail_type != "Object Created":
            return []
        # the data class decodes the key (unquote_plus) itself
        return [(eb.detail.bucket.name, eb.detail.object.key)]
    if "Records" in body:
        return [
            (r.s3.bucket.name, unquote_plus(r.s3.get_object.key))
            for r in S3Event(dict(body)).records
            if r.event_name.startswith("ObjectCreated")
        ]
    raise NotAnObjectEvent(f"not an S3 object event: keys {sorted(body)[:8]}")


def emit(result: Result, namespace: str) -> None:
    """One EMF blob for one object: every metric, dimensions tenant and server only."""
    m = EphemeralMetrics(namespace=namespace, service="")
    m.add_dimension(name="tenant", value=result.tenant or "unknown")
    m.add_dimension(name="server", value=result.server or "unknown")
    for name, unit in _UNITS.items():
        m.add_metric(name=name, unit=unit, value=float(result.counts.get(name, 0)))
    m.flush_metrics()


def make_handler(
    service: VerifyReplicate | Callable[[], VerifyReplicate],
    *,
    namespace: str | None = None,
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda handler over ``service`` (or a function building it on first use)."""

    def get() -> VerifyReplicate:
        return service if isinstance(service, VerifyReplicate) else service()

    ns = namespace or os.environ.get("METRICS_NAMESPACE") or "BinlogShipper"

    def one(bucket: str, key: str) -> Result:
        svc = get()
        if bucket != svc.source.bucket:
            raise ConfigError(
                f"event for bucket {bucket!r}, but this function verifies {svc.source.bucket!r} "
                "(ARCHIVE_BUCKET): check the bucket notification"
            )
        result = svc.process(key)
        logger.info(
            result.status,
            extra={"key": key, "tenant": result.tenant, "server": result.server, **result.counts},
        )
        emit(result, ns)
        return result

    def record_handler(record: SQSRecord) -> list[str]:
        return [one(b, k).status for b, k in objects_in(record.json_body)]

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = event.get("Records") or []
        if records and records[0].get("eventSource") == "aws:sqs":
            processor = BatchProcessor(event_type=EventType.SQS)
            return process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )  # type: ignore[return-value]
        # an EventBridge rule (or S3) invoking the function directly: no batch to report
        return {"statuses": [one(b, k).status for b, k in objects_in(event)]}

    traced = tracer.capture_lambda_handler(handler)
    wrapped: Callable[[dict[str, Any], Any], dict[str, Any]]
    wrapped = logger.inject_lambda_context(traced)
    return wrapped


def service_from_env(env: Mapping[str, str]) -> VerifyReplicate:
    """The service the deployed function runs, from its environment."""
    from shipper.catalog.dynamodb import DynamoCatalog
    from shipper.keys.aws_kms import AwsKmsProvider
    from shipper.storage import open_backend

    def need(name: str) -> str:
        v = env.get(name, "")
        if not v:
            raise ConfigError(f"environment variable {name} is not set (see the function's docs)")
        return v

    endpoint = env.get("AWS_ENDPOINT_URL") or None
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    bucket = need("ARCHIVE_BUCKET")
    source = Store(
        open_backend(f"s3://{bucket}", {"endpoint_url": endpoint, "region": region}), "aws", bucket
    )
    replica = None
    if gcs := env.get("REPLICA_GCS_BUCKET", ""):
        _gcp_credentials(env)
        # 16 MiB resumable chunks (the library's default is 100 MiB): the chunk is
        # buffered in memory, and the function should stay well inside 256 MB
        replica = Store(open_backend(f"gs://{gcs}", {"chunk_size": 16 << 20}), "gcp", gcs)
    provider = AwsKmsProvider(need("KMS_KEY_ID"), region=region, endpoint_url=endpoint)
    catalog = DynamoCatalog(need("CATALOG_TABLE"), region=region, endpoint_url=endpoint)
    name = env.get("AWS_LAMBDA_FUNCTION_NAME", "verify-replicate")
    return VerifyReplicate(source, replica, [provider], catalog, by=f"lambda:{name}")


def _gcp_credentials(env: Mapping[str, str]) -> None:
    """GCP_CREDENTIAL_CONFIG (workload identity federation, no secret) -> a file google-auth
    finds through GOOGLE_APPLICATION_CREDENTIALS."""
    cfg = env.get("GCP_CREDENTIAL_CONFIG", "")
    if cfg and not os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        path = "/tmp/gcp-credential-config.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cfg)
        os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = path


_service: VerifyReplicate | None = None


def _default() -> VerifyReplicate:
    global _service
    if _service is None:  # built on the first event, reused while the sandbox is warm
        _service = service_from_env(os.environ)
    return _service


_handler = make_handler(_default)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (infra/terraform names it): the service from the environment."""
    return _handler(event, context)
