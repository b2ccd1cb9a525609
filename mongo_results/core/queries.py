"""``find``: a filter over a model's own fields, translated to the stored document.

Callers write MongoDB's query language over the fields of their model
(``{"loss": {"$lt": 0.2}}``, ``{"config.seed": {"$in": [1, 2]}}``); the core
checks the fields against the model, encodes each value exactly as a field
of that type is stored, and puts the path under ``data.``.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from ..encoding import encode_value, escape_key
from ..errors import InvalidArgumentError
from ..ids import ResultId
from .commands import BY_ID, Batch, Find
from .filters import scoped
from .loading import loader, report_skipped
from .operations import Operation, Operations
from .ordering import bson_order
from .pages import each_batch

__all__ = ["OPERATORS", "find", "translate"]

OPERATORS = frozenset(
    {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not", "$all", "$elemMatch", "$size"}
)
LOGICAL = ("$and", "$or", "$nor")


def translate(where: Mapping[str, Any], model_class: type[BaseModel] | None, *, decimal128: bool) -> dict[str, Any]:
    """The stored-document filter for ``where`` (fields checked against ``model_class`` when given)."""
    return _query(where, model_class, decimal128, "data.")


def _query(where: Any, model: Any, decimal128: bool, under: str) -> dict[str, Any]:
    if not isinstance(where, Mapping):
        raise InvalidArgumentError(f"a filter is a dict of fields and conditions, not {type(where).__name__}")
    out: dict[str, Any] = {}
    for key, condition in where.items():
        if key in LOGICAL:
            if not isinstance(condition, list) or not condition:
                raise InvalidArgumentError(f"{key} takes a non-empty list of filters")
            out[key] = [_query(q, model, decimal128, under) for q in condition]
        elif not isinstance(key, str) or key.startswith("$"):
            raise InvalidArgumentError(f"unknown operator {key!r}: use {', '.join(sorted(OPERATORS | set(LOGICAL)))}")
        else:
            kind = _field(model, key)
            out[under + ".".join(escape_key(p) for p in key.split("."))] = _condition(condition, kind, decimal128)
    return out


def _condition(condition: Any, kind: Any, decimal128: bool) -> Any:
    if not (isinstance(condition, Mapping) and condition and all(str(k).startswith("$") for k in condition)):
        return encode_value(condition, decimal128=decimal128)
    out: dict[str, Any] = {}
    for op, arg in condition.items():
        if op not in OPERATORS:
            raise InvalidArgumentError(f"unknown operator {op!r}: use {', '.join(sorted(OPERATORS))}")
        if op in ("$in", "$nin", "$all"):
            if not isinstance(arg, (list, tuple, set, frozenset)):
                raise InvalidArgumentError(f"{op} takes a list of values")
            out[op] = [encode_value(v, decimal128=decimal128) for v in arg]
        elif op == "$exists":
            out[op] = bool(arg)
        elif op == "$size":
            out[op] = int(arg)
        elif op == "$not":
            out[op] = _condition(arg, kind, decimal128)
        elif op == "$elemMatch":
            item = _item(kind)
            operators = isinstance(arg, Mapping) and all(str(k).startswith("$") for k in arg)
            out[op] = _condition(arg, item, decimal128) if operators else _query(arg, _model(item), decimal128, "")
        else:
            out[op] = encode_value(arg, decimal128=decimal128)
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


def _sort(sort: Iterable[tuple[str, int]] | None, model: Any) -> tuple[tuple[str, int], ...]:
    spec: list[tuple[str, int]] = []
    for item in sort or ():
        if not (isinstance(item, tuple) and len(item) == 2 and item[1] in (1, -1) and isinstance(item[0], str)):
            raise InvalidArgumentError(f"sort takes (field, 1 | -1) pairs, not {item!r}")
        _field(model, item[0])
        if any(field == "data." + item[0] for field, _ in spec):
            raise InvalidArgumentError(f"sort names {item[0]!r} twice")
        spec.append(("data." + ".".join(escape_key(p) for p in item[0].split(".")), item[1]))
    return tuple(spec)


def find(
    ops: Operations,
    where: Mapping[str, Any] | None,
    prefix: ResultId | None,
    model_class: type[BaseModel] | None,
    namespace: str | None,
    sort: Iterable[tuple[str, int]] | None,
    limit: int | None,
    skipped: list[tuple[str, Exception]] | None,
) -> Operation[None]:
    """Batch ``(id, model)`` of the results ``where`` matches, in id order unless ``sort`` says otherwise."""
    engine = yield from ops.learn_engine()
    translated = translate(where or {}, model_class, decimal128=engine.decimal128)
    spec = _sort(sort, model_class)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise InvalidArgumentError(f"limit is a count of results, not {limit!r}")
    if not spec and limit is None:  # in id order: keyset pages, memory stays flat
        yield from each_batch(
            ops.iter_documents(prefix, namespace, 500, where=translated), loader(model_class, namespace, skipped)
        )
        report_skipped(skipped)
        return
    found: list[dict[str, Any]] = []
    for collection in (yield from ops.collections(namespace)):
        found += yield Find(collection, scoped(prefix, translated), None, spec + BY_ID, limit or 0)
    # One query per namespace, each in order; merged here the way the server orders them.
    for field, direction in reversed(spec + BY_ID):
        found.sort(key=lambda d: bson_order(_at(d, field)), reverse=direction < 0)
    found = found[:limit] if limit is not None else found
    yield Batch((yield from loader(model_class, namespace, skipped)(found)))
    report_skipped(skipped)


def _at(document: Mapping[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value
