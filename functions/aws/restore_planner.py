"""Lambda: plan a point-in-time restore from the DynamoDB catalog.

Input: ``{"tenant": "acme", "server_id": 1, "target": {"time": "2026-11-24T10:41:07Z"}}``
(or ``{"gtid": "0-1-532"}``, ``{"position": "mysql-bin.000042:1234"}``, ``"latest"``;
optional ``"ambiguous"`` and ``"backup_id"`` as the CLI's flags).

Output: the plan, exactly the JSON ``restore plan --json`` prints (the CLI's own
:func:`shipper.cli.restore.plan_from_catalog` and ``Plan.to_dict``), or
``{"refused": {"reason", "message", "window"}}`` when the archive cannot reach
the target (with its recoverable window), or ``{"error": message}`` for bad
input. It reads the catalog (Query, never Scan) and only the transaction
indexes the plan needs, from ``ARCHIVE_BUCKET`` (kms:Decrypt on ``KMS_KEY_ID``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from shipper.catalog.dynamodb import DynamoCatalog
from shipper.cli.restore import plan_from_catalog
from shipper.errors import ConfigError, ShipperError
from shipper.keys import KeyProvider
from shipper.restore.planner import AMBIGUOUS_POLICIES, PlanRefused
from shipper.storage import StorageBackend

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "binlog-restore-planner"))
tracer = Tracer()
# the shipper package's own log records (INTEGRITY FAILED, LINEAGE CONFLICT...) go out
# through the same JSON formatter, so CloudWatch Logs sees one structured stream
copy_config_to_registered_loggers(source_logger=logger, include={"shipper"})

TARGET_KINDS = ("time", "gtid", "position")


@dataclass
class Planner:
    """What a plan is made from: the catalog, and the archive the indexes are read from."""

    catalog: DynamoCatalog
    backend: StorageBackend
    providers: list[KeyProvider]

    def plan(self, request: Mapping[str, Any]) -> dict[str, Any]:
        tenant, server_id, target = parse_request(request)
        ambiguous = str(request.get("ambiguous") or "exclude")
        if ambiguous not in AMBIGUOUS_POLICIES:
            raise ConfigError(f"ambiguous must be one of {', '.join(AMBIGUOUS_POLICIES)}")
        plan = plan_from_catalog(
            self.catalog,
            tenant,
            server_id,
            target,
            self.backend,
            self.providers,
            ambiguous=ambiguous,
            backup_id=request.get("backup_id") or None,
        )
        # the CLI prints with default=str: the same conversion, so the same JSON
        return json.loads(json.dumps(plan.to_dict(), default=str))  # type: ignore[no-any-return]


def parse_request(request: Mapping[str, Any]) -> tuple[str, int, str]:
    tenant = request.get("tenant")
    if not isinstance(tenant, str) or not tenant:
        raise ConfigError('the request needs "tenant": "NAME"')
    sid = request.get("server_id")
    if isinstance(sid, bool) or not isinstance(sid, int | str) or not str(sid).isdigit():
        raise ConfigError('the request needs "server_id": N (the server to restore)')
    target = request.get("target")
    if target == "latest":
        return tenant, int(sid), "latest"
    if isinstance(target, Mapping) and len(target) == 1:
        kind, text = next(iter(target.items()))
        if kind in TARGET_KINDS and isinstance(text, str) and text:
            return tenant, int(sid), text
    raise ConfigError(
        'the request needs "target": "latest" or {"time": ISO-8601 with offset} | '
        '{"gtid": SET} | {"position": "FILE:POS"}'
    )


def make_handler(
    planner: Planner | Callable[[], Planner],
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    def get() -> Planner:
        return planner if isinstance(planner, Planner) else planner()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        p = get()
        before = p.catalog.requests
        try:
            out = p.plan(event)
        except PlanRefused as e:
            window = e.window.to_dict() if e.window is not None else None
            logger.warning("refused", extra={"reason": e.reason, "window": window})
            return {"refused": {"reason": e.reason, "message": str(e), "window": window}}
        except ShipperError as e:
            logger.error("error", extra={"error": str(e)})
            return {"error": str(e)}
        logger.info("planned", extra={"dynamodb_requests": p.catalog.requests - before})
        return out

    traced = tracer.capture_lambda_handler(handler)
    wrapped: Callable[[dict[str, Any], Any], dict[str, Any]]
    wrapped = logger.inject_lambda_context(traced)
    return wrapped


def planner_from_env(env: Mapping[str, str]) -> Planner:
    from shipper.keys.aws_kms import AwsKmsProvider
    from shipper.storage import open_backend

    def need(name: str) -> str:
        v = env.get(name, "")
        if not v:
            raise ConfigError(f"environment variable {name} is not set (see the function's docs)")
        return v

    endpoint = env.get("AWS_ENDPOINT_URL") or None
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    backend = open_backend(
        f"s3://{need('ARCHIVE_BUCKET')}", {"endpoint_url": endpoint, "region": region}
    )
    catalog = DynamoCatalog(need("CATALOG_TABLE"), region=region, endpoint_url=endpoint)
    provider = AwsKmsProvider(need("KMS_KEY_ID"), region=region, endpoint_url=endpoint)
    return Planner(catalog, backend, [provider])


_planner: Planner | None = None


def _default() -> Planner:
    global _planner
    if _planner is None:
        _planner = planner_from_env(os.environ)
    return _planner


_handler = make_handler(_default)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (infra/terraform names it): the service from the environment."""
    return _handler(event, context)
