"""Encoders for models whose round trip is exact by construction, compiled once per class.

``encode_model`` proves every encoding by reading it back through the model
class. For a class built only from str, int, float, bool, None, lists, str-keyed
dicts and nested models of the same kind, with no validators, constraints,
serializers, computed or extra fields, that proof holds for any dump whose
values have exactly the declared types: such a dump comes back identical.
The encoder checks those types as it goes and gives up on the first surprise
(a model mutated without validation, an int beyond 64 bits, a key that needs
escaping), and the caller falls back to the general, verified path.

Each class also gets a canonicaliser that yields exactly what
``encoding._canonical`` would (sorted keys, one NaN), for the content digest.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from bson.int64 import Int64
from pydantic import BaseModel

__all__ = ["Compiled", "Mismatch", "exact_encoder"]

Fn = Callable[[Any], Any]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_LEAF_KEYS = {"type", "metadata", "ref"}
_FIELD_KEYS = {"type", "schema", "metadata", "frozen", "validation_alias", "serialization_alias"}
_MODEL_KEYS = {"type", "cls", "config", "custom_init", "metadata", "ref", "root_model", "schema", "generic_origin"}
_FIELDS_KEYS = {"type", "fields", "computed_fields", "model_name"}


class Compiled(NamedTuple):
    """``encode`` turns a dump into stored data; ``canon`` (None: the identity) orders it for the digest."""

    encode: Fn
    canon: Fn | None


class Mismatch(Exception):
    """A dumped value is not of the type its schema declares: use the verified path."""


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
    return v


def _bool(v: Any) -> Any:
    if type(v) is not bool:
        raise Mismatch
    return v


def _one_nan(v: Any) -> Any:
    return v if v == v else math.nan


def _key(k: Any) -> str:
    if type(k) is not str or "%" in k or "." in k or "\x00" in k or k.startswith("$"):
        raise Mismatch
    return k


_LEAVES = {"str": Compiled(_str, None), "int": Compiled(_int, None), "bool": Compiled(_bool, None)}
_LEAVES["float"] = Compiled(_float, _one_nan)


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
    enc, can = inner

    def canon(v: Any) -> Any:
        return None if v is None else _apply(can, v)

    return Compiled(lambda v: None if v is None else enc(v), None if can is None else canon)


def _list(item: Compiled) -> Compiled:
    enc, can = item

    def encode(v: Any) -> Any:
        if type(v) is not list:
            raise Mismatch
        return [enc(x) for x in v]

    return Compiled(encode, None if can is None else lambda v: [can(x) for x in v])


def _dict(value: Compiled) -> Compiled:
    enc, can = value

    def encode(v: Any) -> Any:
        if type(v) is not dict:
            raise Mismatch
        return {_key(k): enc(x) for k, x in v.items()}

    return Compiled(encode, lambda v: {k: _apply(can, v[k]) for k in sorted(v)})


def _model(schema: Mapping[str, Any], refs: Mapping[str, Mapping[str, Any]], seen: frozenset[str]) -> Compiled:
    inner = schema["schema"]
    if (
        schema.get("custom_init")
        or schema.get("root_model")
        or schema.get("config", {}).get("extra_fields_behavior") == "allow"
        or inner["type"] != "model-fields"
        or not set(inner) <= _FIELDS_KEYS
        or inner.get("computed_fields")
    ):
        raise _NotExact
    fields: dict[str, Compiled] = {}
    for name, field in inner["fields"].items():
        if field["type"] != "model-field" or not set(field) <= _FIELD_KEYS:
            raise _NotExact
        fields[name] = _compile(field["schema"], refs, seen)
    names = list(fields)
    encoders = list(fields.items())

    def encode(v: Any) -> Any:
        if type(v) is not dict or list(v) != names:
            raise Mismatch
        return {name: enc(v[name]) for name, (enc, _) in encoders}

    ordered = sorted(fields.items())
    if names == sorted(names) and all(c.canon is None for c in fields.values()):
        return Compiled(encode, None)
    return Compiled(encode, lambda v: {name: _apply(c.canon, v[name]) for name, c in ordered})


_cache: weakref.WeakKeyDictionary[type[BaseModel], Compiled | None] = weakref.WeakKeyDictionary()


def exact_encoder(cls: type[BaseModel]) -> Compiled | None:
    """The compiled encoder of a model class's dump, or None when the class needs the verified path."""
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
