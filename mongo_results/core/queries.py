"""``find``: a filter over a model's own fields, translated to the stored document.

Callers write MongoDB's query language over the fields of their model
(``{"loss": {"$lt": 0.2}}``, ``{"config.seed": {"$in": [1, 2]}}``); the core
checks the fields against the model, encodes each value exactly as a field
of that type is stored, and puts the path under ``data.``.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping
from typing import Any, Union, get_args, get_origin

import bson
from pydantic import BaseModel

from ..encoding import CODEC_OPTIONS, encode_value, escape_key
from ..errors import InvalidArgumentError
from ..ids import ResultId, canonical_prefix
from .commands import BY_ID, Batch, Find
from .engine import Engine
from .filters import scoped
from .loading import loader, report_skipped
from .names import validate_namespace
from .operations import Operation, Operations
from .ordering import bson_order
from .pages import each_batch

__all__ = ["MAX_DEPTH", "MAX_FILTER_BYTES", "OPERATORS", "find", "translate"]

OPERATORS = frozenset(
    {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not", "$all", "$elemMatch", "$size"}
)
LOGICAL = ("$and", "$or", "$nor")
# MongoDB's limit on nesting in a BSON document, where each dict or list is a level; deeper filters
# overflow the stack of the Python evaluator long before a server refuses them.
MAX_DEPTH = 100
MAX_FILTER_BYTES = 16 * 1024 * 1024  # a server's largest document: the find command carries the filter
_CONTAINERS = (list, tuple, set, frozenset)
MONGODB = Engine()


def translate(where: Mapping[str, Any], model_class: type[BaseModel] | None, engine: Engine) -> dict[str, Any]:
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


def _query(where: Any, model: Any, engine: Engine, under: str) -> dict[str, Any]:
    if not isinstance(where, Mapping):
        raise InvalidArgumentError(f"a filter is a dict of fields and conditions, not {type(where).__name__}")
    out: dict[str, Any] = {}
    for key, condition in where.items():
        if key in LOGICAL:
            if not isinstance(condition, list) or not condition:
                raise InvalidArgumentError(f"{key} takes a non-empty list of filters")
            out[key] = [_query(q, model, engine, under) for q in condition]
        elif not isinstance(key, str) or key.startswith("$"):
            raise InvalidArgumentError(f"unknown operator {key!r}: use {', '.join(sorted(OPERATORS | set(LOGICAL)))}")
        else:
            kind = _field(model, key)
            out[under + ".".join(escape_key(p) for p in key.split("."))] = _condition(condition, kind, engine)
    return out


def _operators(condition: Any) -> bool:
    """Whether ``condition`` is a document of operators (else a value to compare with)."""
    if not isinstance(condition, Mapping) or not condition:
        return False
    dollars = [str(k).startswith("$") for k in condition]
    if any(dollars) and not all(dollars):
        raise InvalidArgumentError(f"a condition mixes operators and fields: {sorted(map(str, condition))}")
    return all(dollars)


def _condition(condition: Any, kind: Any, engine: Engine) -> Any:
    if not _operators(condition):
        return encode_value(condition, decimal128=engine.decimal128)
    out: dict[str, Any] = {}
    for op, arg in condition.items():
        if op not in OPERATORS:
            raise InvalidArgumentError(f"unknown operator {op!r}: use {', '.join(sorted(OPERATORS))}")
        if op in ("$in", "$nin", "$all"):
            if not isinstance(arg, _CONTAINERS):
                raise InvalidArgumentError(f"{op} takes a list of values, not {arg!r}")
            if op == "$all" and not arg:  # MongoDB matches nothing, mongomock everything
                raise InvalidArgumentError("$all takes a non-empty list of values")
            out[op] = [encode_value(v, decimal128=engine.decimal128) for v in arg]
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
            out[op] = _condition(arg, kind, engine)
        elif op == "$elemMatch":
            if not isinstance(arg, Mapping) or not arg:
                # The servers match arrays holding a document or array; mongomock every non-empty array.
                raise InvalidArgumentError(f"$elemMatch takes a non-empty filter or document of operators, not {arg!r}")
            item = _item(kind)
            if _operators(arg):
                out[op] = _condition(arg, item, engine)
            elif engine.elem_match_fields:
                out[op] = _query(arg, _model(item), engine, "")
            else:
                raise InvalidArgumentError(
                    f"{engine.label} answers nothing to $elemMatch of fields ({dict(arg)!r}); dotted fields "
                    "(list.field) match there, each on any element"
                )
        else:
            out[op] = encode_value(arg, decimal128=engine.decimal128)
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
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise InvalidArgumentError(f"limit is a count of results, not {limit!r}")
    spec = _sort(sort, model_class)
    # Checked before the engine is asked for: a filter no store can run sends nothing.
    translated = translate(where or {}, model_class, MONGODB)
    if limit == 0:  # PyMongo's "no limit"; here, as in the signature, no results
        canonical_prefix(prefix)
        if namespace is not None:
            validate_namespace(namespace)
        return
    engine = yield from ops.learn_engine()
    if not (engine.decimal128 and engine.elem_match_fields):  # what the first translation assumed
        translated = translate(where or {}, model_class, engine)
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
