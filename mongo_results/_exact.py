"""Encoders for models whose round trip is exact by construction, compiled once per class.

``encode_model`` proves every encoding by reading it back through the model
class. For a class built only from str, int, float, bool, None, lists, str-keyed
dicts and nested models of the same kind, with no validators, constraints,
serializers, computed or extra fields, that proof holds for any instance whose
values (nested models included) have exactly the declared types: such an
instance comes back equal. The encoder reads the instance, checks those types
as it goes and gives up on the first surprise (a model mutated without
validation, a subclass instance in a field, an int beyond 64 bits, a key that
needs escaping), and the caller falls back to the general, verified path.

Each class also gets a canonicaliser that yields exactly what
``encoding._canonical`` would (sorted keys), for the content digest.

The verified path's comparison of a model with the one rebuilt from its
stored form (``model_difference``) lives here too.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime, time
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple

from bson.int64 import Int64
from pydantic import BaseModel

__all__ = ["Compiled", "Mismatch", "difference", "exact_encoder", "model_difference"]

Fn = Callable[[Any], Any]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ABSENT = object()  # a field missing from an instance (model_construct without it)
_LEAF_KEYS = {"type", "metadata", "ref"}
_FIELD_KEYS = {"type", "schema", "metadata", "frozen", "validation_alias", "serialization_alias"}
_MODEL_KEYS = {"type", "cls", "config", "custom_init", "metadata", "ref", "root_model", "schema", "generic_origin"}
_FIELDS_KEYS = {"type", "fields", "computed_fields", "model_name"}
# Model settings that cannot change how a value of exactly its declared type validates. Any
# other (str_to_lower, str_max_length, allow_inf_nan, ...) may: such a class takes the verified path.
_NEUTRAL_CONFIG = {
    "title",
    "extra_fields_behavior",
    "validate_by_alias",
    "validate_by_name",
    "loc_by_alias",
    "revalidate_instances",
    "from_attributes",
    "hide_input_in_errors",
    "validation_error_cause",
    "cache_strings",
}


class Compiled(NamedTuple):
    """``encode`` turns an instance into stored data; ``canon`` (None: the identity) orders it for the digest.

    ``keyed``: the schema holds a dict somewhere, whose stored keys may be escaped.
    """

    encode: Fn
    canon: Fn | None
    keyed: bool = False


class Mismatch(Exception):
    """A value is not of the type its schema declares: use the verified path."""


class _NotExact(Exception):
    pass


def _str(v: Any) -> Any:
    if type(v) is not str:
        raise Mismatch
    return v


def _int(v: Any) -> Any:
    if type(v) is not int or not _INT64_MIN <= v <= _INT64_MAX:
        raise Mismatch
    return Int64(v)


def _float(v: Any) -> Any:
    if type(v) is not float:
        raise Mismatch
    return v if v == v else math.nan  # one NaN, so the stored data is already canonical


def _bool(v: Any) -> Any:
    if type(v) is not bool:
        raise Mismatch
    return v


def _key(k: Any) -> str:
    if type(k) is not str or "%" in k or "." in k or "\x00" in k or k.startswith("$"):
        raise Mismatch
    return k


_LEAVES = {"str": Compiled(_str, None), "int": Compiled(_int, None), "bool": Compiled(_bool, None)}
_LEAVES["float"] = Compiled(_float, None)
# A leaf's exact type, for checking many values of one kind at once (C loops, not calls).
_TYPE = {_LEAVES["str"]: str, _LEAVES["int"]: int, _LEAVES["float"]: float, _LEAVES["bool"]: bool}


_GROUP = 8  # leaf fields of one kind from which checking them together pays


def _leaves(values: Iterable[Any], kind: type) -> tuple[Any, ...] | list[Any]:
    """Values all exactly of ``kind`` (ints within Int64) in stored form; else Mismatch."""
    values = tuple(values)
    if not values:
        return values
    if set(map(type, values)) != {kind}:
        raise Mismatch
    if kind is int:
        if min(values) < _INT64_MIN or max(values) > _INT64_MAX:
            raise Mismatch
        return list(map(Int64, values))
    if kind is float:
        return [v if v == v else math.nan for v in values]  # one NaN: the data is already canonical
    return values


def _values(values: Iterable[Any], enc: Fn, kind: type | None) -> list[Any]:
    """Encoded items of a list or dict: leaves a kind at a time, anything else one call each."""
    return [enc(x) for x in values] if kind is None else list(_leaves(values, kind))


def _apply(canon: Fn | None, v: Any) -> Any:
    return v if canon is None else canon(v)


def _compile(schema: Mapping[str, Any], refs: Mapping[str, Mapping[str, Any]], seen: frozenset[str]) -> Compiled:
    kind, keys = schema["type"], set(schema)
    if kind in _LEAVES and keys <= _LEAF_KEYS:
        return _LEAVES[kind]
    if kind == "definitions":
        refs = {**refs, **{d["ref"]: d for d in schema["definitions"]}}
        return _compile(schema["schema"], refs, seen)
    if kind == "definition-ref":
        ref = schema["schema_ref"]
        if ref in seen or ref not in refs:  # recursive models take the verified path
            raise _NotExact
        return _compile(refs[ref], refs, seen | {ref})
    if kind == "default" and keys <= {"type", "schema", "default", "default_factory", "metadata", "ref"}:
        return _compile(schema["schema"], refs, seen)
    if kind == "nullable" and keys <= {"type", "schema", "metadata", "ref"}:
        return _nullable(_compile(schema["schema"], refs, seen))
    if kind == "list" and keys <= {"type", "items_schema", "metadata", "ref"} and "items_schema" in keys:
        return _list(_compile(schema["items_schema"], refs, seen))
    if kind == "dict" and keys <= {"type", "keys_schema", "values_schema", "metadata", "ref"}:
        if "keys_schema" not in keys or "values_schema" not in keys:
            raise _NotExact
        if _compile(schema["keys_schema"], refs, seen) is not _LEAVES["str"]:
            raise _NotExact
        return _dict(_compile(schema["values_schema"], refs, seen))
    if kind == "model" and keys <= _MODEL_KEYS:
        return _model(schema, refs, seen | ({schema["ref"]} if "ref" in schema else set()))
    raise _NotExact


def _nullable(inner: Compiled) -> Compiled:
    enc, can, _ = inner

    def canon(v: Any) -> Any:
        return None if v is None else _apply(can, v)

    return Compiled(lambda v: None if v is None else enc(v), None if can is None else canon, inner.keyed)


def _list(item: Compiled) -> Compiled:
    enc, can, _ = item
    kind = _TYPE.get(item)

    def encode(v: Any) -> Any:
        if type(v) is not list:
            raise Mismatch
        return _values(v, enc, kind)

    return Compiled(encode, None if can is None else lambda v: [can(x) for x in v], item.keyed)


def _dict(value: Compiled) -> Compiled:
    enc, can, _ = value
    kind = _TYPE.get(value)

    def encode(v: Any) -> Any:
        if type(v) is not dict:
            raise Mismatch
        keys = "".join(_leaves(v, str))
        if "%" in keys or "." in keys or "\x00" in keys or "$" in keys:  # may need escaping
            raise Mismatch
        return dict(zip(v, _values(v.values(), enc, kind), strict=True))

    return Compiled(encode, lambda v: {k: _apply(can, v[k]) for k in sorted(v)}, True)


def _model(schema: Mapping[str, Any], refs: Mapping[str, Mapping[str, Any]], seen: frozenset[str]) -> Compiled:
    inner = schema["schema"]
    if (
        schema.get("custom_init")
        or schema.get("root_model")
        or schema.get("config", {}).get("extra_fields_behavior") == "allow"
        or not set(schema.get("config", {})) <= _NEUTRAL_CONFIG
        or inner["type"] != "model-fields"
        or not set(inner) <= _FIELDS_KEYS
        or inner.get("computed_fields")
    ):
        raise _NotExact
    fields: dict[str, Compiled] = {}
    for name, field in inner["fields"].items():
        if field["type"] != "model-field" or not set(field) <= _FIELD_KEYS:
            raise _NotExact
        try:
            _key(name)
        except Mismatch:
            raise _NotExact from None  # a field name that needs escaping (create_model allows any)
        fields[name] = _compile(field["schema"], refs, seen)
    names = list(fields)
    # Many leaf fields of one kind are checked and converted together, in C loops; the rest
    # one call per field, which is cheaper for a handful.
    groups = [(kind, tuple(n for n, c in fields.items() if _TYPE.get(c) is kind)) for kind in (str, int, float, bool)]
    leaves = [(kind, group, _getter(group)) for kind, group in groups if len(group) >= _GROUP]
    grouped = {name for _, group, _ in leaves for name in group}
    others = [(name, c.encode) for name, c in fields.items() if name not in grouped]

    cls = schema["cls"]

    def encode(model: Any) -> Any:
        # The instance, not its dump: a dump of a subclass in a field of its base class
        # drops the subclass's fields, which only the instance's exact type shows.
        if type(model) is not cls:
            raise Mismatch
        v = model.__dict__
        if list(v) != names:
            raise Mismatch
        out = dict(v)
        for kind, group, get in leaves:
            stored = _leaves(get(v), kind)
            if kind is int or kind is float:  # str and bool are stored as they are
                out.update(zip(group, stored, strict=True))
        for name, enc in others:
            out[name] = enc(v[name])
        return out

    ordered = sorted(names)
    canons = [(name, c.canon) for name, c in fields.items() if c.canon is not None]
    keyed = any(c.keyed for c in fields.values())
    if names == ordered and not canons:
        return Compiled(encode, None, keyed)
    get_ordered = _getter(tuple(ordered))

    def canon(v: Any) -> Any:
        out = dict(zip(ordered, get_ordered(v), strict=True))
        for name, can in canons:
            out[name] = can(v[name])
        return out

    return Compiled(encode, canon, keyed)


def _getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A C-speed ``lambda d: tuple(d[n] for n in names)``."""
    if len(names) == 1:
        name = names[0]
        return lambda d: (d[name],)
    return itemgetter(*names)


_cache: weakref.WeakKeyDictionary[type[BaseModel], Compiled | None] = weakref.WeakKeyDictionary()


def exact_encoder(cls: type[BaseModel]) -> Compiled | None:
    """The compiled encoder of a model class's instances, or None when the class needs the verified path."""
    try:
        return _cache[cls]
    except KeyError:
        pass
    try:
        compiled: Compiled | None = _compile(cls.__pydantic_core_schema__, {}, frozenset())
    except (_NotExact, KeyError, TypeError):
        compiled = None
    _cache[cls] = compiled
    return compiled


def _came_back(a: Any, b: Any, path: str) -> str:
    return f"{path}: {a!r} would come back as {b!r}"


def difference(a: Any, b: Any, path: str) -> str | None:
    """Where a value and the one rebuilt from its stored form differ, or None when they are equal.

    Stricter than ``==`` where ``==`` forgives a change: types must match, NaN equals NaN,
    decimals keep their digits, and times their UTC offset.
    """
    if type(a) is not type(b):
        return _came_back(a, b, path)
    if isinstance(a, BaseModel):
        return model_difference(a, b, path)
    if isinstance(a, dict):
        if len(a) != len(b):
            return f"{path}: keys {list(a)!r} would come back as {list(b)!r}"
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
            where = f"{path}.{ka}" if path else str(ka)
            found = difference(ka, kb, f"{where}<key>") or difference(va, vb, where)
            if found:
                return found
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return _came_back(a, b, path)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(a, (set, frozenset)):
        if a == b:
            return None
        # NaN is never equal to itself: a set of them is equal when the rest is and the count is.
        nans = [sum(1 for v in s if isinstance(v, float) and math.isnan(v)) for s in (a, b)]
        rest = [{v for v in s if not (isinstance(v, float) and math.isnan(v))} for s in (a, b)]
        return None if nans[0] == nans[1] and rest[0] == rest[1] else _came_back(a, b, path)
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return None
    if isinstance(a, Decimal):
        return None if a.compare_total(b) == 0 else _came_back(a, b, path)
    if isinstance(a, (datetime, time)) and a.utcoffset() != b.utcoffset():
        return _came_back(a, b, path)  # equal instants with another offset are not the same value
    if is_dataclass(a):
        return difference(
            {f.name: getattr(a, f.name) for f in fields(a)}, {f.name: getattr(b, f.name) for f in fields(a)}, path
        )
    return None if a == b else _came_back(a, b, path)


def model_difference(a: BaseModel, b: BaseModel, path: str) -> str | None:
    """Field by field as pydantic's ``==`` compares models (fields, extra and private values)."""
    prefix = f"{path}." if path else ""
    da, db = a.__dict__, b.__dict__
    for name in type(a).__pydantic_fields__:
        found = difference(da.get(name, _ABSENT), db.get(name, _ABSENT), prefix + name)
        if found:
            return found
    extra = a.__pydantic_extra__, b.__pydantic_extra__
    if extra[0] != extra[1]:
        found = difference(extra[0] or {}, extra[1] or {}, path)
        if found:
            return f"{found} (an extra field)"
    private = a.__pydantic_private__, b.__pydantic_private__
    if private[0] != private[1]:
        found = difference(private[0] or {}, private[1] or {}, path)
        if found:
            return f"{found} (a private attribute, which is not stored)"
    return None
