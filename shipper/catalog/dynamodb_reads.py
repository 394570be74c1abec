"""How the DynamoDB catalog reads every binlog of a server quickly: few values per item,
and the partition's binlog keys split into ranges queried at once.

**Few values.** A plan needs, per binlog, what ``plan_inputs`` holds (one string,
written with the description: :func:`shipper.catalog.dynamodb_items.plan_inputs`),
the host's word and the state of each copy. :data:`PROJECTION` asks for exactly
that: 9 paths and about 10 values per item instead of 21 paths and 25 values, so
DynamoDB sends a third of the bytes and there is a third as much to decode (and
botocore does not walk it at all: :func:`shipper.catalog.dynamodb_sdk.query_raw`).
An item without a ``plan_inputs`` this code reads (described by an earlier
release, or holding only a copy so far) is read again with
:data:`FULL_PROJECTION` (:func:`decode` returns None for it).

**Ranges at once.** DynamoDB answers a Query in pages of 1 MB *of stored items*
(a projection does not make a page hold more), so 10,000 binlogs of 1.3 KB are 14
pages, one after the other. Sort keys are ``B#{lineage}#{sequence:010d}#{YYYYMM}``,
so sequences of the plain lineage (``0``) are key ranges: after the first page,
:func:`read_all` asks for the highest sequence (one item), splits what is left
into up to ``workers`` ranges by sequence, and queries them at the same time,
with every other lineage (one more range). The ranges are disjoint and cover
every ``B#`` key (no sort key equals a boundary: each ends in ``#YYYYMM``), and
their items are put back together in sort-key order, so the answer is exactly
the single Query's. A server with one page of binlogs costs one Query, as before.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shipper.catalog.dynamodb_items import (
    CLOUDS,
    PLAN_FIELDS,
    PLAN_INPUTS,
    UNVERIFIED,
    VERIFIED,
    binlog_from_attrs,
    binlog_state,
    from_plan_inputs,
)
from shipper.restore.model import ArchivedBinlog

#: every binlog key of a partition; the plain lineage's; every other lineage's
ALL = ("B#", "B$")
PLAIN = ("B#0#", "B#0$")
OTHERS = ("B#0$", "B$")
_MAX_SEQUENCE = 10**10 - 1  # the sort key's ten digits

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
FULL_PROJECTION = _projection(["sk", *PLAN_FIELDS, "host_state"])


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


# ---------------------------------------------------------------------- ranges

Page = tuple[list[dict[str, Any]], dict[str, Any] | None]
#: one Query page of the partition's keys in [low, high]: (low, high, exclusive start,
#: forward, limit) -> (raw items, LastEvaluatedKey)
PageFn = Callable[[str, str, dict[str, Any] | None, bool, int | None], Page]


def sequence_of(sk: str) -> int:
    """The sequence of a binlog sort key ``B#{lineage}#{sequence:010d}#...``."""
    return int(sk.split("#")[2])


def split(after: int, top: int, per_page: int, workers: int) -> list[str]:
    """Sort-key boundaries that cut the plain lineage's sequences after ``after`` up to
    ``top`` into at most ``workers`` ranges of whole pages (``per_page`` binlogs each),
    as few as take the fewest rounds of pages. (A page is counted a tenth short: items
    further on can be bigger, with longer GTID sets, and a range one item over a whole
    number of pages costs one more round.)"""
    pages = math.ceil((top - after) / max(per_page * 9 // 10, 1))
    if pages <= 1 or workers <= 1:
        return []
    rounds = math.ceil(pages / workers)
    count = math.ceil(pages / rounds)
    step = math.ceil((top - after) / count)
    cuts = (after + 1 + i * step for i in range(1, count))
    return [f"{PLAIN[0]}{c:010d}" for c in cuts if c <= _MAX_SEQUENCE]


def _rest(page: PageFn, low: str, high: str, start: dict[str, Any] | None) -> list[Any]:
    """Every item in [low, high] after ``start``, page by page."""
    out: list[Any] = []
    while True:
        items, start = page(low, high, start, True, None)
        out += items
        if not start:
            return out


def read_all(page: PageFn, workers: int) -> list[dict[str, Any]]:
    """Every binlog item of the partition, in sort-key order (see the module's docstring)."""
    first, start = page(*ALL, None, True, None)
    if not start or workers <= 1 or not PLAIN[0] <= start["sk"]["S"] < PLAIN[1]:
        # one page is all there is, or the plain lineage ended inside it, or no
        # parallelism is wanted: the rest page by page, as one Query would
        return first + (_rest(page, *ALL, start) if start else [])
    with ThreadPoolExecutor(workers) as pool:
        others = pool.submit(_rest, page, *OTHERS, None)
        top, _ = page(*PLAIN, None, False, 1)
        after = sequence_of(start["sk"]["S"])
        cuts = split(after, sequence_of(top[0]["sk"]["S"]) if top else after, len(first), workers)
        bounds = [PLAIN[0], *cuts, PLAIN[1]]
        # the first range goes on after the first page; each other starts at its boundary
        ranges = [
            pool.submit(_rest, page, lo, hi, start if i == 0 else None)
            for i, (lo, hi) in enumerate(itertools.pairwise(bounds))
        ]
        out = list(first)
        for f in [*ranges, others]:
            out += f.result()
    return out
