"""``dynamodb://TABLE``: the fleet's catalog, written by the host and the functions.

Reads are Query calls on one partition (``T#{tenant}#S#{server_id}``), never a
Scan or a bucket listing; :attr:`DynamoCatalog.requests` counts them. Every
write is a conditional UpdateItem/PutItem whose condition makes it idempotent
(a redelivered event changes nothing) and monotonic (a copy's state never
moves backwards); a failed condition is a domain :class:`Outcome`, never an
exception. Items and keys: :mod:`shipper.catalog.dynamodb_items`; the schema and
every condition: docs/catalog.md.

The boto3 client is injected (``client=``) or built from ``region`` /
``endpoint_url``; SDK errors become :class:`~shipper.errors.StorageError`
naming the table (``transient`` for throttling and 5xx).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

from shipper.catalog import dynamodb_sdk as sdk
from shipper.catalog.dynamodb_items import (
    US,
    BinlogEntry,
    CopyState,
    Item,
    ItemRef,
    item_for_key,
    partition,
    registry_item,
    sort_binlogs,
)
from shipper.catalog.dynamodb_reads import FULL_PROJECTION, PROJECTION, Page, decode, read_all
from shipper.errors import ConfigError
from shipper.restore.model import ArchivedBinlog, BackupInfo

log = logging.getLogger(__name__)

OPTIONS = {"client", "region", "endpoint_url", "cloud"}


class Outcome(enum.Enum):
    """What a conditional write did."""

    #: the item (or this copy's state) was written
    WRITTEN = "written"
    #: the condition said it is already so (a redelivery) or further along: nothing changed
    UNCHANGED = "unchanged"
    #: the item describes a different file at this key: nothing changed
    CONFLICT = "conflict"


class _ConditionFailed(Exception):
    def __init__(self, old: Mapping[str, Any]) -> None:
        self.old = dict(old)


class DynamoCatalog:
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
        if not table:
            raise ConfigError("catalog url needs a table: dynamodb://TABLE")
        self.table = table
        self.url = f"dynamodb://{table}"
        self.cloud = cloud
        self.client = client if client is not None else sdk.make_client(region, endpoint_url)
        #: binlog key ranges queried at once (dynamodb_reads); 1: page after page
        self.workers = workers
        #: items per Query page (DynamoDB's Limit); None: DynamoDB's 1 MB pages. Tests
        #: set it to page through a few items.
        self.page_limit = page_limit
        #: DynamoDB requests made (Query pages and writes), and the seconds spent in them
        #: (summed: requests made at once each count their own)
        self.requests = 0
        self.request_seconds = 0.0
        self._lock = threading.Lock()
        self._confirmed: set[str] = set()
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._ser = TypeSerializer()
        self._de = TypeDeserializer()

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

    def put_binlog(self, entry: BinlogEntry) -> Outcome:
        """Describe a binlog file (create its item, or find it already described)."""
        ref = item_for_key(entry.object_key)
        attrs = entry.attributes()
        names = {f"#a{i}": k for i, k in enumerate(attrs)}
        values = {f":a{i}": v for i, v in enumerate(attrs.values())}
        sets = [f"#a{i} = if_not_exists(#a{i}, :a{i})" for i in range(len(attrs))]
        if entry.host_state:
            names["#hs"], values[":hs"] = "host_state", entry.host_state
            sets.append("#hs = if_not_exists(#hs, :hs)")
        values[":sha"] = entry.plaintext_sha256
        names["#sha"] = "plaintext_sha256"
        try:
            old = self._update(
                ref,
                UpdateExpression="SET " + ", ".join(sets),
                # Either nobody described this item yet (it is new, or only a copy
                # was recorded so far: an index's event can come first), or it
                # describes the same file (same plaintext SHA-256: a redelivery, or
                # the host and a function both describing it). if_not_exists keeps
                # every value already stored, so a repeat changes nothing. A
                # different file at the same key fails the condition: CONFLICT.
                ConditionExpression="attribute_not_exists(#sha) OR #sha = :sha",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
            )
        except _ConditionFailed:
            log.error(
                "catalog %s: %s is already described with another plaintext SHA-256; "
                "not changing it",
                self.url,
                entry.object_key,
            )
            return Outcome.CONFLICT
        self._register(ref)
        return Outcome.UNCHANGED if "plaintext_sha256" in old else Outcome.WRITTEN

    def put_backup(self, key: str, record: Any) -> Outcome:
        """Record a backup from its record object at ``key`` (a :class:`BackupRecord`)."""
        ref = item_for_key(key)
        doc = json.dumps(record.to_json(), sort_keys=True, separators=(",", ":"))
        try:
            self._update(
                ref,
                UpdateExpression="SET #rec = :rec, #rev = :rev, #kind = :kind, "
                "#t = :t, #sid = :sid, #bid = :bid",
                # Only a later revision of the record replaces the stored one
                # (records are append-only; revision N+1 is the backup's next state),
                # so a redelivered or late event for an older revision changes nothing.
                ConditionExpression="attribute_not_exists(#rev) OR #rev < :rev",
                ExpressionAttributeNames={
                    "#rec": "record",
                    "#rev": "revision",
                    "#kind": "kind",
                    "#t": "tenant",
                    "#sid": "server_id",
                    "#bid": "backup_id",
                },
                ExpressionAttributeValues={
                    ":rec": doc,
                    ":rev": int(record.revision),
                    ":kind": "backup",
                    ":t": ref.tenant,
                    ":sid": ref.server_id,
                    ":bid": str(record.id),
                },
            )
        except _ConditionFailed:
            return Outcome.UNCHANGED
        self._register(ref)
        return Outcome.WRITTEN

    def record_copy(self, key: str, copy: CopyState) -> tuple[Outcome, CopyState | None]:
        """Record the state of the copy of ``key`` in ``copy.cloud``.

        Returns the outcome and, when nothing changed, the copy state already stored.
        """
        ref = item_for_key(key)
        item = copy.to_item()
        try:
            self._update(
                ref,
                UpdateExpression="SET #c = :c",
                # No state recorded for this copy yet, or the stored one ranks lower
                # (unverified 0 < verified 1 < integrity_failed / lineage_conflict 2):
                # a state never moves backwards, a repeat of the same state changes
                # nothing, and rank 2 is terminal for this copy.
                ConditionExpression="attribute_not_exists(#c) OR #c.#rank < :rank",
                ExpressionAttributeNames={"#c": ref.attr(copy.cloud), "#rank": "rank"},
                ExpressionAttributeValues={":c": item, ":rank": item["rank"]},
            )
        except _ConditionFailed as e:
            old = e.old.get(ref.attr(copy.cloud))
            return Outcome.UNCHANGED, (
                CopyState.from_item(copy.cloud, old) if isinstance(old, dict) else None
            )
        return Outcome.WRITTEN, None

    def _register(self, ref: ItemRef) -> None:
        """The server's entry in the tenant's registry (what :meth:`servers` reads)."""
        pk, sk = registry_item(ref.tenant, ref.server_id)
        with contextlib.suppress(_ConditionFailed):
            self._call(
                "put_item",
                TableName=self.table,
                Item=self._dump({"pk": pk, "sk": sk, "server_id": ref.server_id}),
                # Written once per server; afterwards the condition fails and nothing changes.
                ConditionExpression="attribute_not_exists(pk)",
            )

    # ------------------------------------------------------------------ SDK edge

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
            r = self._call("query", sdk.query_raw, TableName=self.table, **page_kw)
            yield r.get("Items", [])
            start = r.get("LastEvaluatedKey")
            if not start:
                return

    def _query(self, **kw: Any) -> Iterator[dict[str, Any]]:
        for page in self._pages(**kw):
            for raw in page:
                yield self._load(raw)

    def _dump(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(sdk.plain(v)) for k, v in values.items()}

    def _load(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {k: sdk.native(self._de.deserialize(v)) for k, v in raw.items()}

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
            if sdk.code(e) == "ConditionalCheckFailedException":
                old = getattr(e, "response", {}).get("Item", {})
                raise _ConditionFailed(self._load(old)) from e
            raise sdk.error(e, self.url, self.table, op) from e
        finally:
            with self._lock:
                self.request_seconds += time.monotonic() - started
