"""How the DynamoDB catalog reads every binlog of a server quickly: few values per item.

**Few values.** A plan needs, per binlog, what ``plan_inputs`` holds (one string,
written with the description: :func:`shipper.catalog.dynamodb_items.plan_inputs`),
the host's word and the state of each copy. :data:`PROJECTION` asks for exactly
that: 9 paths and about 10 values per item instead of 21 paths and 25 values, so
DynamoDB sends a third of the bytes and botocore walks a third of the values.
An item without a ``plan_inputs`` this code reads (described by an earlier
release, or holding only a copy so far) is read again with
:data:`FULL_PROJECTION` (:func:`decode` returns None for it).
"""

from __future__ import annotations

from typing import Any

from shipper.catalog.dynamodb_items import (
    CLOUDS,
    PLAN_INPUTS,
    UNVERIFIED,
    VERIFIED,
    binlog_from_attrs,
    binlog_state,
    from_plan_inputs,
)
from shipper.restore.model import ArchivedBinlog

_COPY_SLOTS = [f"{slot}_{c}" for slot in ("copy", "index_copy") for c in CLOUDS]


def _projection(attrs: list[str]) -> dict[str, Any]:
    return {
        "ProjectionExpression": ", ".join(
            [f"#p{i}" for i in range(len(attrs))] + [f"#c{i}.#st" for i in range(len(_COPY_SLOTS))]
        ),
        "ExpressionAttributeNames": {
            **{f"#p{i}": a for i, a in enumerate(attrs)},
            **{f"#c{i}": a for i, a in enumerate(_COPY_SLOTS)},
            "#st": "state",
        },
    }


#: what a plan reads of a binlog item: its key, ``plan_inputs``, the host's word, and
#: the state of each copy (a copy's other fields are for audits, not plans)
PROJECTION = _projection(["sk", PLAN_INPUTS, "host_state"])
#: the same for an item without ``plan_inputs``: the attributes themselves
FULL_PROJECTION = _projection(
    [
        "sk",
        "kind",
        "server_id",
        "binlog_name",
        "first_event_us",
        "last_event_us",
        "gtid_previous",
        "gtid_set",
        "object_key",
        "index_key",
        "plaintext_size",
        "plaintext_sha256",
        "file_status",
        "server_uuid",
        "host_state",
    ]
)


class Read:
    """One binlog as a plan reads it, and the archive keys its verified copies confirm."""

    __slots__ = ("binlog", "confirmed")

    def __init__(self, binlog: ArchivedBinlog, confirmed: list[str]) -> None:
        self.binlog = binlog
        self.confirmed = confirmed


def _states(raw: dict[str, Any], slot: str) -> dict[str, str]:
    out = {}
    for c in CLOUDS:
        m = raw.get(f"{slot}_{c}")
        if m is not None:
            out[c] = m.get("M", {}).get("state", {}).get("S", UNVERIFIED)
    return out


def decode(raw: dict[str, Any], cloud: str) -> Read | None:
    """A binlog item as :data:`PROJECTION` returns it (DynamoDB's wire format, which
    botocore leaves as it is: ``{"S": ...}``), or None when it has no ``plan_inputs``
    this code reads. The same state and values as
    :meth:`~shipper.catalog.dynamodb_items.Item.to_binlog` of the whole item."""
    text = raw.get(PLAN_INPUTS, {}).get("S")
    attrs = from_plan_inputs(text) if text is not None else None
    if attrs is None:
        return None
    host = raw.get("host_state", {}).get("S")
    if host is not None:
        attrs["host_state"] = host
    copies, index_copies = _states(raw, "copy"), _states(raw, "index_copy")
    binlog = binlog_from_attrs(attrs, binlog_state(attrs, copies, index_copies, cloud))
    confirmed = []
    if copies.get(cloud) == VERIFIED and binlog.object_key:
        confirmed.append(binlog.object_key)
    if index_copies.get(cloud) == VERIFIED and attrs.get("index_key"):
        confirmed.append(str(attrs["index_key"]))
    return Read(binlog, confirmed)
