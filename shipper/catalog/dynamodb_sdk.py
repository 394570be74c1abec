"""The SDK edge of the DynamoDB catalog: the client, number conversion, error mapping.

The one place botocore's DynamoDB errors become the project's: ``PermissionDenied``
naming the action the caller lacks, ``StorageError`` naming the table (``transient``
for throttling and 5xx). ``ConditionalCheckFailedException`` is not an error at all:
:mod:`shipper.catalog.dynamodb` turns it into an ``Outcome``.
"""

from __future__ import annotations

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
