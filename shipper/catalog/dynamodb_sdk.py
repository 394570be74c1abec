"""The SDK edge of the DynamoDB catalog: the client, number conversion, error mapping.

The one place botocore's DynamoDB errors become the project's: ``PermissionDenied``
naming the action the caller lacks, ``StorageError`` naming the table (``transient``
for throttling and 5xx). ``ConditionalCheckFailedException`` is not an error at all:
:mod:`shipper.catalog.dynamodb` turns it into an ``Outcome``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from shipper.errors import PermissionDenied, StorageError

_TRANSIENT = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
}
_DENIED = {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"}


def error(e: BaseException, url: str, table: str, op: str) -> StorageError:
    """The project's error for a failed DynamoDB call."""
    c = code(e)
    where = f"catalog {url}"
    if c in _DENIED:
        return PermissionDenied(
            f"{where}: {op} refused ({c}); the caller needs dynamodb:{_action(op)} on the table"
        )
    if c == "ResourceNotFoundException":
        return StorageError(f"{where}: table {table} does not exist (create it: docs/catalog.md)")
    return StorageError(
        f"{where}: {op} failed: {c or type(e).__name__}: {e}",
        transient=c in _TRANSIENT or _status(e) >= 500 or not c,
    )


def make_client(region: str | None, endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "dynamodb",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )


_raw = threading.local()
_HOOK = "binlog-shipper-raw-query"


def _keep_body(response_dict: dict[str, Any], **_: Any) -> None:
    """botocore's ``before-parse``: keep a Query's JSON body for :func:`query_raw` and hand
    the parser an empty one (as botocore's own handlers rewrite a response there)."""
    if getattr(_raw, "wanted", False) and response_dict.get("status_code", 500) < 300:
        _raw.body = response_dict["body"]
        response_dict["body"] = b"{}"


def query_raw(client: Any, **kw: Any) -> dict[str, Any]:
    """``client.query(**kw)`` with its body read by ``json.loads`` alone.

    botocore walks every attribute value of a response against the service model,
    which for a Query of 10,000 binlogs is most of the CPU a plan spends; the items
    are DynamoDB's wire format either way (``{"S": ...}``; binary values, which
    these reads never ask for, would stay base64). Only Query responses asked for
    here in this thread are touched; an error response is parsed by botocore as
    always, and a botocore without the ``before-parse`` event parses them all.
    """
    client.meta.events.register("before-parse.dynamodb.Query", _keep_body, unique_id=_HOOK)
    _raw.wanted = True
    try:
        r: dict[str, Any] = client.query(**kw)
    finally:
        _raw.wanted = False
        body = _raw.__dict__.pop("body", None)
    if body is not None:
        doc = json.loads(body)
        r["Items"] = doc.get("Items", [])
        if "LastEvaluatedKey" in doc:
            r["LastEvaluatedKey"] = doc["LastEvaluatedKey"]
    return r


def plain(v: Any) -> Any:
    """Floats are not DynamoDB numbers: every number we store is an int."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, float):
        return round(v)
    return v


def native(v: Any) -> Any:
    """Decimal (boto3's number type) back to int."""
    from decimal import Decimal

    if isinstance(v, dict):
        return {k: native(x) for k, x in v.items()}
    if isinstance(v, Decimal):
        return int(v)
    return v


def code(e: BaseException) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _status(e: BaseException) -> int:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def _action(op: str) -> str:
    return "".join(p.capitalize() for p in op.split("_"))
