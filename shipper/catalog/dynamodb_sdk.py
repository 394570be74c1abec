"""The SDK edge of the DynamoDB catalog: the client, number conversion, error mapping,
and :class:`Table`, through which every request of the catalog goes.

The one place botocore's DynamoDB errors become the project's: ``PermissionDenied``
naming the action the caller lacks, ``StorageError`` naming the table (``transient``
for throttling and 5xx). ``ConditionalCheckFailedException`` is not an error at all:
:class:`Table` raises it as :class:`ConditionFailed`, carrying the item as it was, and
the writes (:mod:`shipper.catalog.dynamodb_writes`) turn it into an ``Outcome``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from shipper.catalog.dynamodb_items import ItemRef
from shipper.errors import ConfigError, PermissionDenied, StorageError

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


class ConditionFailed(Exception):
    """A conditional write's condition failed: ``old`` is the item as it was."""

    def __init__(self, old: Mapping[str, Any]) -> None:
        self.old = dict(old)


class Table:
    """One DynamoDB table as the catalog talks to it: every request goes through
    :meth:`_call` (counted and timed, from any thread; errors mapped by :func:`error`),
    values are converted both ways (:meth:`_dump`, :meth:`_load`), and a Query is read
    page after page (:meth:`_pages`). :class:`~shipper.catalog.dynamodb.DynamoCatalog`
    is one, with the catalog's reads and writes on top."""

    def __init__(
        self,
        table: str,
        *,
        client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        page_limit: int | None = None,
    ) -> None:
        if not table:
            raise ConfigError("catalog url needs a table: dynamodb://TABLE")
        self.table = table
        self.url = f"dynamodb://{table}"
        self.client = client if client is not None else make_client(region, endpoint_url)
        #: items per Query page (DynamoDB's Limit); None: DynamoDB's 1 MB pages. Tests
        #: set it to page through a few items.
        self.page_limit = page_limit
        #: DynamoDB requests made (Query pages and writes), and the seconds spent in them
        #: (summed: requests made at once each count their own)
        self.requests = 0
        self.request_seconds = 0.0
        self._lock = threading.Lock()
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._ser = TypeSerializer()
        self._de = TypeDeserializer()

    def _key(self, ref: ItemRef) -> dict[str, Any]:
        return {"pk": {"S": ref.pk}, "sk": {"S": ref.sk}}

    def _update(self, ref: ItemRef, **kw: Any) -> dict[str, Any]:
        kw["ExpressionAttributeValues"] = self._dump(kw["ExpressionAttributeValues"])
        r = self._call(
            "update_item",
            TableName=self.table,
            Key=self._key(ref),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
            **kw,
        )
        return self._load(r.get("Attributes", {}))

    def _pages(self, **kw: Any) -> Iterator[list[dict[str, Any]]]:
        """Every page of a Query, as DynamoDB sends the items (``{"S": ...}`` values)."""
        kw["ExpressionAttributeValues"] = self._dump(kw["ExpressionAttributeValues"])
        start: dict[str, Any] | None = None
        while True:
            page_kw = dict(kw, ExclusiveStartKey=start) if start else kw
            if self.page_limit:
                page_kw = dict(page_kw, Limit=self.page_limit)
            r = self._call("query", query_raw, TableName=self.table, **page_kw)
            yield r.get("Items", [])
            start = r.get("LastEvaluatedKey")
            if not start:
                return

    def _query(self, **kw: Any) -> Iterator[dict[str, Any]]:
        for page in self._pages(**kw):
            for raw in page:
                yield self._load(raw)

    def _dump(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(plain(v)) for k, v in values.items()}

    def _load(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {k: native(self._de.deserialize(v)) for k, v in raw.items()}

    def _call(
        self, op: str, via: Callable[..., dict[str, Any]] | None = None, **kw: Any
    ) -> dict[str, Any]:
        """One request ``op`` (``via(client, **kw)`` when given), from any thread: reads
        query key ranges at once."""
        started = time.monotonic()
        with self._lock:
            self.requests += 1
        try:
            if via is not None:
                return via(self.client, **kw)
            return getattr(self.client, op)(**kw)  # type: ignore[no-any-return]
        except Exception as e:
            if code(e) == "ConditionalCheckFailedException":
                old = getattr(e, "response", {}).get("Item", {})
                raise ConditionFailed(self._load(old)) from e
            raise error(e, self.url, self.table, op) from e
        finally:
            with self._lock:
                self.request_seconds += time.monotonic() - started
