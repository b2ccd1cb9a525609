"""The filters the store is queried with: prefix ranges, "ours", and ``find``'s where.

For ``find``, callers write MongoDB's query language over the fields of their model
(``{"loss": {"$lt": 0.2}}``, ``{"config.seed": {"$in": [1, 2]}}``); the core
checks the fields against the model, encodes each value exactly as a field
of that type is stored, and puts the path under ``data.``.

A condition on a datetime matches both forms a datetime is stored in: a BSON date, and the
ISO text that versions before 0.2 stored. Each operator is one clause: a value either form
can satisfy is an ``$or`` of the two, one that each form must (``$ne``, ``$nin``, ``$not``)
an ``$and``. Conditions on one field are already independent in MongoDB (each may match
another element of an array), so splitting them changes no answer.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Union, get_args, get_origin

import bson
from pydantic import BaseModel

from ..errors import InvalidArgumentError
from .encoding import CODEC_OPTIONS, encode_value, escape_key
from .ids import ResultId, canonical_prefix
from .profiles import EngineProfile

__all__ = [
    "FOREIGN",
    "MAX_DEPTH",
    "MAX_FILTER_BYTES",
    "OPERATORS",
    "OURS",
    "page_after",
    "id_range",
    "prefix_filter",
    "scoped",
    "sort_spec",
    "translate",
]

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


def id_range(prefix: ResultId | None) -> tuple[dict[str, Any], Callable[[str], bool]]:
    """``list_ids``' query: the bare ``_id`` range ``[p, p0)``, and the test its ids must pass.

    Without ``prefix_filter``'s exclusion the server evaluates nothing beyond the index bounds;
    with it, DocumentDB reads each document in the range to test its ``_id`` again, which took
    a range of 500 results of 200 KB from 85 ms to 140 ms. The ids in the range that go on
    with a character below ``/`` (``p-2``, ``p.x``) are not under ``p`` and are dropped here.
    """
    p = canonical_prefix(prefix)
    if not p:
        return {"_id": {"$gte": ""}}, lambda _: True
    below = p + "/"
    return {"_id": {"$gte": p, "$lt": p + "0"}}, lambda i: i == p or i.startswith(below)


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


# -- find's where: a filter over the model's own fields, as the stored document holds them.

OPERATORS = frozenset(
    {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not", "$all", "$elemMatch", "$size"}
)
LOGICAL = ("$and", "$or", "$nor")
# MongoDB's limit on nesting in a BSON document, where each dict or list is a level; deeper filters
# overflow the stack of the Python evaluator long before a server refuses them.
MAX_DEPTH = 100
MAX_FILTER_BYTES = 16 * 1024 * 1024  # a server's largest document: the find command carries the filter
_CONTAINERS = (list, tuple, set, frozenset)
MONGODB = EngineProfile()


def translate(where: Mapping[str, Any], model_class: type[BaseModel] | None, engine: EngineProfile) -> dict[str, Any]:
    """The stored-document filter for ``where`` on ``engine`` (fields checked against ``model_class`` when given).

    Every filter a store would refuse, or answer differently from the others, is an
    InvalidArgumentError here, before any command is sent.
    """
    _check_shape(where)
    out = _query(where, model_class, engine, "data.")
    size = len(bson.encode(out, codec_options=CODEC_OPTIONS))
    if size > MAX_FILTER_BYTES:
        raise InvalidArgumentError(f"the filter encodes to {size:,} bytes, over the {MAX_FILTER_BYTES:,}-byte limit")
    return out


def _check_shape(where: Any) -> None:
    """Refuse a filter nested too deep, or holding a regular expression; without recursion, however deep."""
    stack: list[tuple[Any, int]] = [(where, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, re.Pattern):
            # Python's, MongoDB's (PCRE) and FerretDB 1's (Go) regular expressions differ: answers would too.
            raise InvalidArgumentError(
                f"find does not take regular expressions ({value.pattern!r}): use $in of exact values, "
                "or filter the results in Python"
            )
        if isinstance(value, Mapping):
            children: Iterable[Any] = value.values()
        elif isinstance(value, _CONTAINERS):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise InvalidArgumentError(f"the filter is nested over {MAX_DEPTH} levels deep (each dict or list is one)")
        stack.extend((child, depth + 1) for child in children)


def _query(where: Any, model: Any, engine: EngineProfile, under: str, dates: bool = True) -> dict[str, Any]:
    if not isinstance(where, Mapping):
        raise InvalidArgumentError(f"a filter is a dict of fields and conditions, not {type(where).__name__}")
    out: dict[str, Any] = {}
    both: list[dict[str, Any]] = []  # clauses on datetimes, over both stored forms
    for key, condition in where.items():
        if key in LOGICAL:
            if not isinstance(condition, list) or not condition:
                raise InvalidArgumentError(f"{key} takes a non-empty list of filters")
            out[key] = [_query(q, model, engine, under, dates) for q in condition]
        elif not isinstance(key, str) or key.startswith("$"):
            raise InvalidArgumentError(f"unknown operator {key!r}: use {', '.join(sorted(OPERATORS | set(LOGICAL)))}")
        else:
            kind = _field(model, key)
            field = under + ".".join(escape_key(p) for p in key.split("."))
            if dates and _has_datetime(condition):
                both.extend(_either_form(field, condition, kind, engine))
            else:
                out[field] = _condition(condition, kind, engine, dates)
    if both:
        out["$and"] = [*out.get("$and", []), *both]
    return out


_EACH_FORM = ("$ne", "$nin", "$not")  # operators each stored form must satisfy


def _either_form(field: str, condition: Any, kind: Any, engine: EngineProfile) -> list[dict[str, Any]]:
    """The clauses of a condition on datetimes, each over the date form and the older text form."""
    parts = [(op, {op: arg}) for op, arg in condition.items()] if _operators(condition) else [("$eq", condition)]
    clauses: list[dict[str, Any]] = []
    for op, part in parts:
        as_date = {field: _condition(part, kind, engine)}
        if not _has_datetime(part):
            clauses.append(as_date)
            continue
        as_text = {field: _condition(part, kind, engine, dates=False)}
        clauses.extend([as_date, as_text] if op in _EACH_FORM else [{"$or": [as_date, as_text]}])
    return clauses


def _has_datetime(value: Any) -> bool:
    if isinstance(value, datetime):
        return True
    if isinstance(value, Mapping):
        return any(_has_datetime(v) for v in value.values())
    if isinstance(value, _CONTAINERS):
        return any(_has_datetime(v) for v in value)
    return False


def _operators(condition: Any) -> bool:
    """Whether ``condition`` is a document of operators (else a value to compare with)."""
    if not isinstance(condition, Mapping) or not condition:
        return False
    dollars = [str(k).startswith("$") for k in condition]
    if any(dollars) and not all(dollars):
        raise InvalidArgumentError(f"a condition mixes operators and fields: {sorted(map(str, condition))}")
    return all(dollars)


def _condition(condition: Any, kind: Any, engine: EngineProfile, dates: bool = True) -> Any:
    if not _operators(condition):
        return encode_value(condition, decimal128=engine.decimal128, dates=dates)
    out: dict[str, Any] = {}
    for op, arg in condition.items():
        if op not in OPERATORS:
            raise InvalidArgumentError(f"unknown operator {op!r}: use {', '.join(sorted(OPERATORS))}")
        if op in ("$in", "$nin", "$all"):
            if not isinstance(arg, _CONTAINERS):
                raise InvalidArgumentError(f"{op} takes a list of values, not {arg!r}")
            if op == "$all" and not arg:  # MongoDB matches nothing, mongomock everything
                raise InvalidArgumentError("$all takes a non-empty list of values")
            out[op] = [encode_value(v, decimal128=engine.decimal128, dates=dates) for v in arg]
        elif op == "$exists":
            if not isinstance(arg, int):  # bools are ints; a string such as "no" would mean True
                raise InvalidArgumentError(f"$exists takes True or False, not {arg!r}")
            out[op] = bool(arg)
        elif op == "$size":
            if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
                raise InvalidArgumentError(f"$size takes a count of elements (an int >= 0), not {arg!r}")
            out[op] = arg
        elif op == "$not":
            if not _operators(arg):
                raise InvalidArgumentError(f"$not takes a document of operators, such as {{'$gt': 1}}, not {arg!r}")
            out[op] = _condition(arg, kind, engine, dates)
        elif op == "$elemMatch":
            if not isinstance(arg, Mapping) or not arg:
                # The servers match arrays holding a document or array; mongomock every non-empty array.
                raise InvalidArgumentError(f"$elemMatch takes a non-empty filter or document of operators, not {arg!r}")
            item = _item(kind)
            if _operators(arg):
                out[op] = _condition(arg, item, engine, dates)
            elif engine.elem_match_fields:
                out[op] = _query(arg, _model(item), engine, "", dates)
            else:
                raise InvalidArgumentError(
                    f"{engine.label} answers nothing to $elemMatch of fields ({dict(arg)!r}); dotted fields "
                    "(list.field) match there, each on any element"
                )
        else:
            out[op] = encode_value(arg, decimal128=engine.decimal128, dates=dates)
    return out


def _unwrap(kind: Any) -> Any:
    """``X`` of ``X | None``; anything else as it is."""
    if get_origin(kind) in (Union, types.UnionType):
        options = [a for a in get_args(kind) if a is not type(None)]
        return options[0] if len(options) == 1 else kind
    return kind


def _model(kind: Any) -> type[BaseModel] | None:
    kind = _unwrap(kind)
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _item(kind: Any) -> Any:
    """The element type of a list, set or tuple field (what MongoDB's array traversal reaches)."""
    kind = _unwrap(kind)
    if get_origin(kind) in (list, set, frozenset, tuple) and get_args(kind):
        return get_args(kind)[0]
    return None


def _field(model: Any, path: str) -> Any:
    """The annotation at a dotted path of ``model``; a clear error for a field it does not have."""
    kind: Any = model
    for part in path.split("."):
        if not part:
            raise InvalidArgumentError(f"empty segment in the field path {path!r}")
        inner = _model(kind) or _model(_item(kind))
        if inner is None:
            if kind is model and model is not None:
                break
            if _item(kind) is not None and part.isdigit():
                kind = _item(kind)  # a list position
                continue
            return None  # a dict, Any, or no model given: nothing more to check
        if part not in inner.model_fields:
            fields = ", ".join(inner.model_fields)
            raise InvalidArgumentError(f"{inner.__name__} has no field {part!r} (in {path!r}); its fields: {fields}")
        kind = inner.model_fields[part].annotation
    return kind


def sort_spec(sort: Iterable[tuple[str, int]] | None, model: Any) -> tuple[tuple[str, int], ...]:
    spec: list[tuple[str, int]] = []
    for item in sort or ():
        if not (isinstance(item, tuple) and len(item) == 2 and item[1] in (1, -1) and isinstance(item[0], str)):
            raise InvalidArgumentError(f"sort takes (field, 1 | -1) pairs, not {item!r}")
        _field(model, item[0])
        if any(field == "data." + item[0] for field, _ in spec):
            raise InvalidArgumentError(f"sort names {item[0]!r} twice")
        spec.append(("data." + ".".join(escape_key(p) for p in item[0].split(".")), item[1]))
    return tuple(spec)
