"""``dynamodb://TABLE``: the fleet's catalog, written by the host and the functions.

Reads are Query calls on one partition (``T#{tenant}#S#{server_id}``), never a
Scan or a bucket listing; :attr:`DynamoCatalog.requests` counts them. Every
write is a conditional UpdateItem/PutItem whose condition makes it idempotent
(a redelivered event changes nothing) and monotonic (a copy's state never
moves backwards); a failed condition is a domain :class:`Outcome`, never an
exception. Items and keys: :mod:`shipper.catalog.dynamodb_items`; the schema and
every condition: docs/catalog.md.

This module is the catalog's reads and its interface; the writes are
:mod:`shipper.catalog.dynamodb_writes`, a plan's read of every binlog
:mod:`shipper.catalog.dynamodb_reads`. Every request goes through
:class:`~shipper.catalog.dynamodb_sdk.Table`, which :class:`DynamoCatalog` is:
the boto3 client is injected (``client=``) or built from ``region`` /
``endpoint_url``; SDK errors become :class:`~shipper.errors.StorageError`
naming the table (``transient`` for throttling and 5xx).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from shipper.catalog import dynamodb_sdk as sdk
from shipper.catalog import dynamodb_writes as writes
from shipper.catalog.dynamodb_items import (
    US,
    BinlogEntry,
    CopyState,
    Item,
    item_for_key,
    partition,
    registry_item,
    sort_binlogs,
)
from shipper.catalog.dynamodb_reads import FULL_PROJECTION, PROJECTION, Page, decode, read_all
from shipper.catalog.dynamodb_writes import Outcome as Outcome  # callers import it from here
from shipper.errors import ConfigError
from shipper.restore.model import ArchivedBinlog, BackupInfo

OPTIONS = {"client", "region", "endpoint_url", "cloud"}


class DynamoCatalog(sdk.Table):
    """The DynamoDB catalog: the :class:`~shipper.catalog.base.Catalog` reads and the
    conditional writes. ``cloud`` is where the reader will fetch objects from: its
    verified copies are what :meth:`confirms` answers for."""

    def __init__(
        self,
        table: str,
        *,
        client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        cloud: str = "aws",
        workers: int = 8,
        page_limit: int | None = None,
    ) -> None:
        # the table, the client, page_limit and the request counters (requests,
        # request_seconds): dynamodb_sdk.Table
        super().__init__(
            table, client=client, region=region, endpoint_url=endpoint_url, page_limit=page_limit
        )
        self.cloud = cloud
        #: binlog key ranges queried at once (dynamodb_reads); 1: page after page
        self.workers = workers
        self._confirmed: set[str] = set()

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any] | None = None) -> DynamoCatalog:
        p = urlparse(url)
        if p.scheme != "dynamodb" or not p.netloc or p.path not in ("", "/"):
            raise ConfigError(f"catalog url {url!r}: expected dynamodb://TABLE")
        opts = dict(options or {})
        unknown = set(opts) - OPTIONS
        if unknown:
            raise ConfigError(f"catalog {url!r}: unknown option(s) {sorted(unknown)}")
        return cls(p.netloc, **opts)

    # ------------------------------------------------------------------ reads

    def servers(self, tenant: str) -> list[int]:
        pk, _ = registry_item(tenant, 0)
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
            ExpressionAttributeValues={":pk": pk, ":s": "S#"},
        )
        return sorted(int(i["server_id"]) for i in items)

    def binlogs(
        self,
        tenant: str,
        server_id: int,
        *,
        since: int | None = None,
        until: int | None = None,
    ) -> list[ArchivedBinlog]:
        pk = partition(tenant, server_id)
        self._confirmed.clear()  # a new answer: only what it sees is confirmed
        if since is None and until is None:
            raw = read_all(functools.partial(self._page, pk), self.workers)
        else:
            raw = self._range(pk, since, until)
        return sort_binlogs(self._decode(pk, raw), since, until)

    def _decode(self, pk: str, raw: list[dict[str, Any]]) -> list[ArchivedBinlog]:
        """The binlogs among ``raw`` (items as :data:`PROJECTION` returns them), in order.

        An item without ``plan_inputs`` (described by an earlier release, or only a copy
        recorded so far) is read again with its attributes: one Query over the keys
        from the first such item to the last.
        """
        out: list[ArchivedBinlog | None] = []
        again: dict[str, int] = {}
        for r in raw:
            got = decode(r, self.cloud)
            if got is None:
                again[r["sk"]["S"]] = len(out)
                out.append(None)
                continue
            self._confirmed.update(got.confirmed)
            out.append(got.binlog)
        if again:
            for attrs in self._query(
                KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
                ExpressionAttributeValues={":pk": pk, ":lo": min(again), ":hi": max(again)},
                **FULL_PROJECTION,
            ):
                at = again.get(str(attrs["sk"]))
                if at is None or "plaintext_sha256" not in attrs:
                    continue  # read already, or only a copy so far (its index's event came first)
                item = Item.from_attrs(attrs)
                self._remember(item)
                out[at] = item.to_binlog(self.cloud)
        return [b for b in out if b is not None]

    def _page(
        self,
        pk: str,
        low: str,
        high: str,
        start: dict[str, Any] | None,
        forward: bool,
        limit: int | None,
    ) -> Page:
        """One Query page of the binlog items with sort keys in [low, high]."""
        kw: dict[str, Any] = dict(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues=self._dump({":pk": pk, ":lo": low, ":hi": high}),
            ScanIndexForward=forward,
            **PROJECTION,
        )
        if start:
            kw["ExclusiveStartKey"] = start
        if limit or self.page_limit:
            kw["Limit"] = limit or self.page_limit
        r = self._call("query", sdk.query_raw, **kw)
        return r.get("Items", []), r.get("LastEvaluatedKey")

    def _range(self, pk: str, since: int | None, until: int | None) -> list[dict[str, Any]]:
        """Newest first on ``by_first_event``, stopping after the first item wholly
        before ``since`` (binlogs of one server do not overlap in time)."""
        cond = "pk = :pk"
        values: dict[str, Any] = {":pk": pk}
        if until is not None:
            cond += " AND first_event_us <= :u"
            values[":u"] = until * US
        out = []
        for page in self._pages(
            IndexName="by_first_event",
            KeyConditionExpression=cond,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            **PROJECTION,
        ):
            for raw in page:
                if not raw["sk"]["S"].startswith("B#"):
                    continue
                out.append(raw)
                got = decode(raw, self.cloud)
                # (an item read again later cannot tell where it ends: go on past it)
                if since is not None and got is not None and (got.binlog.last_ts or 0) < since:
                    return out
        return out

    def backups(self, tenant: str, server_id: int) -> list[BackupInfo]:
        out = []
        for attrs in self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :k)",
            ExpressionAttributeValues={":pk": partition(tenant, server_id), ":k": "K#"},
        ):
            item = Item.from_attrs(attrs)
            self._remember(item)
            info = item.to_backup()
            if info is not None:
                out.append(info)
        out.sort(key=lambda b: (b.consistent_at or 0, b.id))
        return out

    def confirms(self, key: str) -> bool:
        return key in self._confirmed

    def item(self, key: str) -> Item | None:
        """The item the object at ``key`` belongs to (GetItem), or None."""
        ref = item_for_key(key)
        r = self._call(
            "get_item",
            TableName=self.table,
            Key=self._key(ref),
            ConsistentRead=True,
        )
        return Item.from_attrs(self._load(r["Item"])) if "Item" in r else None

    def _remember(self, item: Item) -> None:
        """Archive keys whose copy in the reader's cloud verified: the plan need not stat
        them. (The copy's own ``key`` may carry a bucket prefix; these are archive keys.)"""
        a = item.attrs
        for copies, key in (
            (item.copies, a.get("object_key")),
            (item.index_copies, a.get("index_key")),
            (item.record_copies, None),
        ):
            c = copies.get(self.cloud)
            if c is not None and c.state == "verified" and key:
                self._confirmed.add(str(key))
        if a.get("kind") == "backup" and a.get("record"):
            info = item.to_backup()
            c = item.copies.get(self.cloud)
            if info is not None and info.object_key and c is not None and c.state == "verified":
                self._confirmed.add(info.object_key)

    # ------------------------------------------------------------------ writes
    # (dynamodb_writes: each write's condition and what a failed one means)

    def put_binlog(self, entry: BinlogEntry) -> Outcome:
        """Describe a binlog file (create its item, or find it already described)."""
        return writes.put_binlog(self, entry)

    def put_backup(self, key: str, record: Any) -> Outcome:
        """Record a backup from its record object at ``key`` (a :class:`BackupRecord`)."""
        return writes.put_backup(self, key, record)

    def record_copy(self, key: str, copy: CopyState) -> tuple[Outcome, CopyState | None]:
        """Record the state of the copy of ``key`` in ``copy.cloud``.

        Returns the outcome and, when nothing changed, the copy state already stored.
        """
        return writes.record_copy(self, key, copy)
