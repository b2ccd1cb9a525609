"""The MongoDB filters every store is queried with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..ids import ResultId, canonical_prefix

__all__ = ["FOREIGN", "OURS", "page_after", "prefix_filter", "scoped"]

# What every result document has; anything else in our collections (a document added in
# Compass, with an ObjectId) is foreign: listing and reading skip it, clear() leaves it.
OURS: dict[str, Any] = {"_id": {"$type": "string"}, "model_type": {"$type": "string"}, "path": {"$type": "array"}}
FOREIGN: dict[str, Any] = {"$nor": [OURS]}


def prefix_filter(prefix: ResultId | None) -> dict[str, Any]:
    """One ``_id`` range that matches a prefix by whole segments, with no regular expression.

    ``a/b`` matches the id ``a/b`` and every id in ``[a/b/, a/b0)`` (``0`` follows
    ``/``), never ``a/bc``: the range ``[a/b, a/b0)`` less the ids between ``a/b``
    and ``a/b/`` (those that go on with a character below ``/``, such as
    ``a/b-2``), which the server skips in the index. One index bound on every
    engine; an ``$or`` of the id and the range is a bitmap scan on DocumentDB,
    whose time grows with the collection.
    """
    p = canonical_prefix(prefix)
    if not p:
        return {"_id": {"$gte": ""}}  # every string id, and only those: an ObjectId is not ours
    return {"_id": {"$gte": p, "$lt": p + "0"}, "$nor": [{"_id": {"$gt": p, "$lt": p + "/"}}]}


def page_after(query: Mapping[str, Any], last: str) -> dict[str, Any]:
    """The part of a prefix filter after the id ``last``: still one ``_id`` bound."""
    bound = query.get("_id")
    upper = {"$lt": bound["$lt"]} if isinstance(bound, Mapping) and "$lt" in bound else {}
    return {**query, "_id": {"$gt": last, **upper}}


def scoped(prefix: ResultId | None, where: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Our documents under ``prefix`` that match ``where``: one ``_id`` range, the rest beside it."""
    query = {**OURS, **prefix_filter(prefix)}  # foreign documents are skipped
    if where:
        query["$and"] = [dict(where)]  # its own $nor or $or cannot replace the prefix's
    return query
