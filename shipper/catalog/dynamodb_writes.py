"""The DynamoDB catalog's writes: each one conditional, and what its condition did.

Every write is a conditional UpdateItem/PutItem whose condition makes it
idempotent (a redelivered event changes nothing) and monotonic (a copy's state
never moves backwards). A failed condition (:class:`~shipper.catalog.dynamodb_sdk.ConditionFailed`)
is a domain :class:`Outcome`, never an exception. Each condition is commented
where it is written; all of them, and the schema: docs/catalog.md.

These are the write half of :class:`~shipper.catalog.dynamodb.DynamoCatalog`,
whose methods of the same names call them with the catalog itself, the
:class:`~shipper.catalog.dynamodb_sdk.Table` every request goes through.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
from typing import Any

from shipper.catalog.dynamodb_items import (
    BinlogEntry,
    CopyState,
    ItemRef,
    item_for_key,
    registry_item,
)
from shipper.catalog.dynamodb_sdk import ConditionFailed, Table

# the catalog's logger: what a write logs is the catalog's, as before the split
log = logging.getLogger("shipper.catalog.dynamodb")


class Outcome(enum.Enum):
    """What a conditional write did."""

    #: the item (or this copy's state) was written
    WRITTEN = "written"
    #: the condition said it is already so (a redelivery) or further along: nothing changed
    UNCHANGED = "unchanged"
    #: the item describes a different file at this key: nothing changed
    CONFLICT = "conflict"


def put_binlog(t: Table, entry: BinlogEntry) -> Outcome:
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
        old = t._update(
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
    except ConditionFailed:
        log.error(
            "catalog %s: %s is already described with another plaintext SHA-256; not changing it",
            t.url,
            entry.object_key,
        )
        return Outcome.CONFLICT
    _register(t, ref)
    return Outcome.UNCHANGED if "plaintext_sha256" in old else Outcome.WRITTEN


def put_backup(t: Table, key: str, record: Any) -> Outcome:
    """Record a backup from its record object at ``key`` (a :class:`BackupRecord`)."""
    ref = item_for_key(key)
    doc = json.dumps(record.to_json(), sort_keys=True, separators=(",", ":"))
    try:
        t._update(
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
    except ConditionFailed:
        return Outcome.UNCHANGED
    _register(t, ref)
    return Outcome.WRITTEN


def record_copy(t: Table, key: str, copy: CopyState) -> tuple[Outcome, CopyState | None]:
    """Record the state of the copy of ``key`` in ``copy.cloud``.

    Returns the outcome and, when nothing changed, the copy state already stored.
    """
    ref = item_for_key(key)
    item = copy.to_item()
    try:
        t._update(
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
    except ConditionFailed as e:
        old = e.old.get(ref.attr(copy.cloud))
        return Outcome.UNCHANGED, (
            CopyState.from_item(copy.cloud, old) if isinstance(old, dict) else None
        )
    return Outcome.WRITTEN, None


def _register(t: Table, ref: ItemRef) -> None:
    """The server's entry in the tenant's registry (what ``DynamoCatalog.servers`` reads)."""
    pk, sk = registry_item(ref.tenant, ref.server_id)
    with contextlib.suppress(ConditionFailed):
        t._call(
            "put_item",
            TableName=t.table,
            Item=t._dump({"pk": pk, "sk": sk, "server_id": ref.server_id}),
            # Written once per server; afterwards the condition fails and nothing changes.
            ConditionExpression="attribute_not_exists(pk)",
        )
