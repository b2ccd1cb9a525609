"""MongoDB filters, projections, updates and sort orders evaluated in Python, for stores without a server.

``matches`` evaluates the core's own filters on the envelope (comparisons,
``$in``/``$nin``, ``$exists``, ``$type``, the logical operators) quickly; a
``find`` over results' data goes to ``bson_query``, which the embedded store
uses too, so both answer alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from ..errors import InvalidArgumentError

__all__ = ["all_clauses", "apply_update", "matches", "project", "touches_data"]

_MISSING = object()
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "array": (list,),
    "object": (dict,),
    "bool": (bool,),
    "date": (datetime,),
    "double": (float,),
    "long": (int,),
    "int": (int,),
}


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (
        (isinstance(a, str) and isinstance(b, str))
        or (isinstance(a, datetime) and isinstance(b, datetime))
        or (isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool))
    )


def _utc(value: Any) -> Any:
    """A date as BSON holds it: naive means UTC, so naive and aware dates compare."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):  # True is not 1 in BSON
        return type(a) is type(b) and a == b
    return bool(a == b)


def _equal(value: Any, wanted: Any) -> bool:
    if value is _MISSING:
        return wanted is None  # {field: null} matches a document without the field
    if isinstance(value, list) and not isinstance(wanted, list):
        return any(_same(v, wanted) for v in value)  # an array matches when one of its elements does
    return _same(value, wanted)


def _compare(check: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    return lambda value, arg: _comparable(value, arg) and check(_utc(value), _utc(arg))


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": _equal,
    "$ne": lambda value, arg: not _equal(value, arg),
    "$gt": _compare(lambda a, b: a > b),
    "$gte": _compare(lambda a, b: a >= b),
    "$lt": _compare(lambda a, b: a < b),
    "$lte": _compare(lambda a, b: a <= b),
    "$in": lambda value, arg: any(_equal(value, a) for a in arg),
    "$nin": lambda value, arg: not any(_equal(value, a) for a in arg),
    "$exists": lambda value, arg: (value is not _MISSING) == bool(arg),
    "$type": lambda value, arg: value is not _MISSING and isinstance(value, _TYPES[arg]) and _not_bool_int(value, arg),
}


def _not_bool_int(value: Any, kind: str) -> bool:
    return not (isinstance(value, bool) and kind in ("int", "long"))


def _condition(value: Any, condition: Any) -> bool:
    if isinstance(condition, Mapping) and condition and all(str(k).startswith("$") for k in condition):
        for op, arg in condition.items():
            check = _OPERATORS.get(op)
            if check is None or (op == "$type" and arg not in _TYPES):
                raise InvalidArgumentError(f"the file store does not evaluate {op} {arg!r}")
            if not check(value, arg):
                return False
        return True
    return _equal(value, condition)


def all_clauses(
    document: Mapping[str, Any],
    query: Mapping[str, Any],
    field: Callable[[Mapping[str, Any], str, Any], bool],
    nested: Callable[[Mapping[str, Any], Mapping[str, Any]], bool],
) -> bool:
    """Whether ``document`` meets every clause of ``query``.

    ``$and``, ``$or`` and ``$nor`` take ``nested`` filters; a field's condition is decided by
    ``field(document, key, condition)``.
    """
    for key, condition in query.items():
        if key == "$and":
            ok = all(nested(document, q) for q in condition)
        elif key == "$or":
            ok = any(nested(document, q) for q in condition)
        elif key == "$nor":
            ok = not any(nested(document, q) for q in condition)
        elif key.startswith("$"):
            raise InvalidArgumentError(f"this store does not evaluate {key!r} in a filter")
        else:
            ok = field(document, key, condition)
        if not ok:
            return False
    return True


def _top_level(document: Mapping[str, Any], key: str, condition: Any) -> bool:
    if "." in key:
        raise InvalidArgumentError(f"the file store does not evaluate {key!r} in the core's filters")
    return _condition(document.get(key, _MISSING), condition)


def matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """Whether ``document`` matches one of the core's own filters (top-level fields of the envelope)."""
    return all_clauses(document, query, _top_level, matches)


def project(document: Mapping[str, Any], projection: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields a projection keeps (inclusive, or exclusive when every value is false)."""
    if not projection:
        return dict(document)
    if any(v for k, v in projection.items() if k != "_id"):
        keep = {k for k, v in projection.items() if v} | ({"_id"} if projection.get("_id", 1) else set())
        return {k: document[k] for k in keep if k in document}
    if projection.get("_id", 1) and all(k == "_id" for k in projection):
        return {"_id": document["_id"]}
    drop = {k for k, v in projection.items() if not v}
    return {k: v for k, v in document.items() if k not in drop}


def apply_update(document: dict[str, Any], update: Mapping[str, Any], *, inserting: bool) -> dict[str, Any]:
    """``document`` after ``$set``, ``$unset``, ``$inc`` (and, when inserting, ``$setOnInsert``) on top-level fields."""
    out = dict(document)
    for op, fields in update.items():
        if op not in ("$set", "$setOnInsert", "$unset", "$inc") or any("." in k or k.startswith("$") for k in fields):
            raise InvalidArgumentError(f"the file store does not apply the update {op} {sorted(fields)}")
        if op == "$unset":
            for k in fields:
                out.pop(k, None)
        elif op == "$inc":
            for k, by in fields.items():
                out[k] = out.get(k, 0) + by
        elif op == "$set" or inserting:
            out.update(fields)
    return out


def touches_data(query: Mapping[str, Any]) -> bool:
    """Whether a filter looks inside results' data (a ``find``), beyond the envelope the core filters on."""
    for key, value in query.items():
        if key in ("$and", "$or", "$nor") and any(touches_data(q) for q in value):
            return True
        if key == "data" or key.startswith("data."):
            return True
    return False
