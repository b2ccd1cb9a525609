"""``find``'s filters and sorts over results' data, evaluated in Python as MongoDB evaluates them.

The filters are those ``core/filters.py`` lets through: the comparison operators, ``$in``,
``$nin``, ``$exists``, ``$not``, ``$all``, ``$elemMatch``, ``$size``, ``$type`` and the logical
operators, on dotted paths that traverse arrays. Values compare within BSON's type brackets
(numbers with numbers, whatever their type), documents field by field in order, and a sort
orders the brackets as MongoDB does (null, numbers, strings, documents, arrays, binary,
ObjectId, booleans, dates), an array by its least element ascending and its greatest
descending. ``tests/test_find.py`` holds the file and embedded stores to the reference
server's answers on random filters and sorts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from functools import cmp_to_key
from typing import Any

from bson import ObjectId
from bson.decimal128 import Decimal128

from ..errors import InvalidArgumentError
from .evaluation import all_clauses

__all__ = ["evaluate", "ordered"]

_MISSING = object()
_NUMBERS = (int, float, Decimal)
# BSON's sort order of types, as brackets: values of one bracket compare with each other only.
_NULL, _NUMBER, _STRING, _OBJECT, _ARRAY, _BINARY, _OBJECT_ID, _BOOL, _DATE, _OTHER = range(10)


# bool before the numbers: True is an int to Python, not to BSON.
_BRACKETS: tuple[tuple[Any, int], ...] = (
    (bool, _BOOL),
    (_NUMBERS, _NUMBER),
    (str, _STRING),
    (Mapping, _OBJECT),
    (list, _ARRAY),
    (bytes, _BINARY),
    (ObjectId, _OBJECT_ID),
    (datetime, _DATE),
)


def _bracket(value: Any) -> int:
    if value is None or value is _MISSING:
        return _NULL
    for kinds, bracket in _BRACKETS:
        if isinstance(value, kinds):
            return bracket
    return _OTHER


def _plain(value: Any) -> Any:
    """BSON's Decimal128 as a Decimal, and dates as naive UTC (as BSON holds them): Python compares these."""
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _number_cmp(a: Any, b: Any) -> int:
    a_nan, b_nan = _is_nan(a), _is_nan(b)
    if a_nan or b_nan:  # NaN is equal to NaN and less than every other number
        return 0 if a_nan and b_nan else (-1 if a_nan else 1)
    return int(a > b) - int(a < b)


def _is_nan(value: Any) -> bool:
    return bool(value != value)  # float NaN and Decimal NaN alike


def _cmp(a: Any, b: Any) -> int:
    """BSON's total order: by bracket, then within it."""
    ka, kb = _bracket(a), _bracket(b)
    if ka != kb:
        return (ka > kb) - (ka < kb)
    if ka == _NULL:
        return 0
    if ka == _NUMBER:
        return _number_cmp(a, b)
    if ka == _OBJECT:
        for (ak, av), (bk, bv) in zip(a.items(), b.items(), strict=False):
            found = (ak > bk) - (ak < bk) or _cmp(av, bv)
            if found:
                return found
        return (len(a) > len(b)) - (len(a) < len(b))
    if ka == _ARRAY:
        for av, bv in zip(a, b, strict=False):
            found = _cmp(av, bv)
            if found:
                return found
        return (len(a) > len(b)) - (len(a) < len(b))
    if ka == _OTHER:
        raise InvalidArgumentError(f"this store cannot compare {type(a).__name__} values")
    return int(a > b) - int(a < b)


def _equal(a: Any, b: Any) -> bool:
    return _bracket(a) == _bracket(b) and _cmp(a, b) == 0


def _values(value: Any, path: list[str]) -> Iterator[Any]:
    """The values a dotted path reaches, through arrays as MongoDB goes (``_MISSING`` where it ends)."""
    if not path:
        yield value
        return
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping):
        yield from _values(value[head], rest) if head in value else iter([_MISSING])
    elif isinstance(value, list):
        if head.isdigit() and int(head) < len(value):  # a position, and fields of the documents inside
            yield from _values(value[int(head)], rest)
        documents = [item for item in value if isinstance(item, Mapping)]
        for item in documents:
            yield from _values(item, path)
        if not documents and not head.isdigit():
            yield _MISSING
    else:
        yield _MISSING


def _each(values: list[Any]) -> Iterator[Any]:
    """The values a condition meets: each value, and each element of each array among them."""
    for value in values:
        yield value
        if isinstance(value, list):
            yield from value


def _compares(op: str) -> Callable[[int], bool]:
    return {"$gt": lambda c: c > 0, "$gte": lambda c: c >= 0, "$lt": lambda c: c < 0, "$lte": lambda c: c <= 0}[op]


def _check(op: str, arg: Any) -> None:
    """Refuse what a server refuses: such a filter has no answer, so none is made up."""
    if op in ("$in", "$nin", "$all") and not isinstance(arg, list):
        raise InvalidArgumentError(f"{op} needs an array, not {arg!r}")
    if op == "$not" and not _operators(arg):
        raise InvalidArgumentError(f"$not needs a document of operators, not {arg!r}")
    if op == "$size" and not (isinstance(arg, _NUMBERS) and not isinstance(arg, bool) and arg >= 0 and int(arg) == arg):
        raise InvalidArgumentError(f"$size needs a whole number >= 0, not {arg!r}")
    if op == "$elemMatch" and not (isinstance(arg, Mapping) and arg):
        raise InvalidArgumentError(f"$elemMatch needs a non-empty document, not {arg!r}")


def _operator(op: str, arg: Any, values: list[Any]) -> bool:
    _check(op, arg)
    if op == "$eq":
        return any(_equal(v, arg) for v in _each(values)) or (arg is None and _MISSING in values)
    if op == "$ne":
        return not _operator("$eq", arg, values)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        holds = _compares(op)
        if arg is None:  # null is only equal to null: $gte and $lte match it (and a missing field)
            return op in ("$gte", "$lte") and _operator("$eq", None, values)
        bracket = _bracket(arg)
        return any(_bracket(v) == bracket and holds(_cmp(v, arg)) for v in _each(values) if v is not _MISSING)
    if op == "$in":
        return any(_operator("$eq", a, values) for a in arg)
    if op == "$nin":
        return not _operator("$in", arg, values)
    if op == "$exists":
        return any(v is not _MISSING for v in values) == bool(arg)
    if op == "$not":
        return not _condition(arg, values)
    if op == "$all":
        return all(_operator("$eq", a, values) for a in arg)
    if op == "$size":
        return any(isinstance(v, list) and len(v) == arg for v in values)
    if op == "$elemMatch":
        return any(isinstance(v, list) and any(_element(e, arg) for e in v) for v in values)
    if op == "$type":
        return any(_is_type(v, arg) for v in _each(values) if v is not _MISSING)
    raise InvalidArgumentError(f"this store does not evaluate {op}")


_TYPES = {"string": _STRING, "object": _OBJECT, "array": _ARRAY, "bool": _BOOL, "date": _DATE, "null": _NULL}


def _is_type(value: Any, kind: Any) -> bool:
    if kind in ("double", "int", "long", "decimal", "number"):
        wanted = {"double": float, "int": int, "long": int, "decimal": Decimal, "number": _NUMBERS}[kind]
        return isinstance(value, wanted) and not isinstance(value, bool)  # type: ignore[arg-type]
    if kind not in _TYPES:
        raise InvalidArgumentError(f"this store does not evaluate $type {kind!r}")
    return _bracket(value) == _TYPES[kind]


def _operators(condition: Any) -> bool:
    return isinstance(condition, Mapping) and bool(condition) and all(str(k).startswith("$") for k in condition)


def _condition(condition: Any, values: list[Any]) -> bool:
    if _operators(condition):
        return all(_operator(op, arg, values) for op, arg in condition.items())
    return _operator("$eq", condition, values)


def _element(element: Any, condition: Mapping[str, Any]) -> bool:
    """Whether one array element meets ``$elemMatch``'s condition: operators on it, or a filter of its fields."""
    if _operators(condition) and not any(k in ("$and", "$or", "$nor") for k in condition):
        # Operators apply to the element itself, not through it: an array element is not opened.
        return all(
            not _element(element, arg) if op == "$not" else _operator(op, arg, [element])
            for op, arg in condition.items()
        )
    return isinstance(element, Mapping) and _matches(element, condition)


def _dotted(document: Mapping[str, Any], key: str, condition: Any) -> bool:
    return _condition(condition, list(_values(document, key.split("."))))


def _matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    return all_clauses(document, query, _dotted, _matches)


def evaluate(query: Mapping[str, Any], document: Mapping[str, Any]) -> bool:
    """Whether ``document`` matches the MongoDB filter ``query`` (the operators ``find`` passes)."""
    try:
        return _matches(_plain(document), _plain(query))
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"this store cannot evaluate the filter {dict(query)!r}: {exc}") from exc


def _sort_value(document: Mapping[str, Any], field: str, direction: int) -> Any:
    """The value a document sorts by: an array by its least element ascending, its greatest descending."""
    found = [v for v in _values(document, field.split(".")) if v is not _MISSING]
    candidates: list[Any] = []
    for value in found:
        if isinstance(value, list):
            candidates.extend(value) if value else candidates.append(_MISSING)  # [] sorts before null
        else:
            candidates.append(value)
    if not candidates:
        return None
    key = cmp_to_key(_cmp)
    return min(candidates, key=key) if direction > 0 else max(candidates, key=key)


def ordered(documents: list[dict[str, Any]], sort: tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    """``documents`` in MongoDB's order for ``sort``; documents that tie keep their order."""
    plain = [(_plain(d), d) for d in documents]
    for field, direction in reversed(sort):  # stable: the first key decides last
        values = [(_sort_value(p, field, direction), i) for i, (p, _) in enumerate(plain)]
        by_value: Callable[[tuple[Any, int], tuple[Any, int]], int] = lambda a, b: _cmp(a[0], b[0])  # noqa: E731
        order = sorted(values, key=cmp_to_key(by_value), reverse=direction < 0)
        plain = [plain[i] for _, i in order]
    return [d for _, d in plain]
