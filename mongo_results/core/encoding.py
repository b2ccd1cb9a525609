"""Models to BSON and back, exactly: what is stored reads back as the very same model.

Values BSON has no type for are stored in a form that round-trips (Decimal128 or a string, a
tuple as a list, ...), and ``encode_model`` proves each encoding by reading it back.

A datetime is stored as a BSON date (UTC, to the millisecond), so Compass and mongosh filter
and sort it as a date. What a date cannot hold (microseconds, a UTC offset, a naive value) is
kept beside the data, in the document's ``exact_times``: ``[{path, text}]``, the value's ISO
text at its dotted path in ``data``, and reading puts it back. The content digest is taken over
each datetime's ISO text, the form earlier versions stored, so it does not depend on the form.
"""

from __future__ import annotations

import hashlib
import math
import re
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal, DecimalException
from enum import Enum
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

import bson
from bson.binary import Binary, UuidRepresentation
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.errors import InvalidDocument
from bson.int64 import Int64
from bson.json_util import JSONMode, JSONOptions
from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ..errors import CorruptResultError, LossyValueError, UnsupportedTypeError

__all__ = [
    "CODEC_OPTIONS",
    "Compiled",
    "EXACT_TIMES",
    "EncodedModel",
    "JSON_OPTIONS",
    "Mismatch",
    "content_digest",
    "decode_data",
    "difference",
    "encode_model",
    "encode_stored",
    "encode_value",
    "encode_verified",
    "exact_times",
    "Encoders",
    "exact_encoder",
    "map_keys",
    "model_difference",
    "unescape_tree",
    "validate_data",
]

CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict, uuid_representation=UuidRepresentation.STANDARD
)
JSON_OPTIONS = JSONOptions(json_mode=JSONMode.RELAXED, uuid_representation=UuidRepresentation.STANDARD)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ESCAPED = re.compile(r"%(25|2E|24|00)")

T = TypeVar("T", bound=BaseModel)


class EncodedModel(NamedTuple):
    """A model ready to store: its type name, BSON-ready data and content digest.

    A named tuple, not a frozen dataclass: as immutable, and built several times faster, once per result.
    """

    model_type: str
    data: dict[str, Any]
    digest: str
    size: int  # bytes of the canonical BSON of the data, a close lower bound of the document size
    times: tuple[tuple[str, str], ...] = ()  # (path, ISO text) of each datetime a BSON date does not hold


EXACT_TIMES = "exact_times"  # the document field that holds them, as [{"path": ..., "text": ...}]


def escape_key(key: str) -> str:
    """Make a dict key safe on every engine: ``%``, ``.``, NUL and a leading ``$`` are %-escaped."""
    if not ("%" in key or "." in key or "\x00" in key or key.startswith("$")):
        return key
    key = key.replace("%", "%25").replace(".", "%2E").replace("\x00", "%00")
    return "%24" + key[1:] if key.startswith("$") else key


def unescape_key(key: str) -> str:
    """Invert :func:`escape_key`."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), key) if "%" in key else key


def _key(key: object, path: str, opts: _Options) -> str:
    if isinstance(key, str) and not isinstance(key, Enum):
        return escape_key(key)
    # Non-string keys (ints, enums, UUIDs...) are stored as text; pydantic parses them back
    # from the dict's key type, and verification proves it did.
    encoded = to_jsonable_python(key) if isinstance(key, datetime) else _encode(key, f"{path}.<key>", opts)
    if isinstance(encoded, (dict, list)):
        raise UnsupportedTypeError(f"field {path!r}: a dict key of type {type(key).__name__} cannot be stored")
    if isinstance(encoded, Binary) and encoded.subtype == 4:
        encoded = str(encoded.as_uuid())
    return escape_key(str(encoded))


def _sort_key(value: Any) -> tuple[int, Any]:
    # Numbers and text in natural order (readable in Compass); anything else, NaN included,
    # by its BSON bytes, which is total and the same in every process.
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, datetime):  # by text: two values in one millisecond are one date
        return (3, to_jsonable_python(value))
    return (2, bson.encode({"v": value}, codec_options=CODEC_OPTIONS))


def _encode(value: Any, path: str, opts: _Options) -> Any:
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str or kind is float:
        return value
    if kind is int:
        return Int64(value) if _INT64_MIN <= value <= _INT64_MAX else str(value)
    if isinstance(value, Enum):
        return _encode(value.value, path, opts)
    if isinstance(value, dict):
        return {_key(k, path, opts): _encode(v, f"{path}.{k}" if path else str(k), opts) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{path}[{i}]", opts) for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        # Sorted so equal sets give equal documents (and digests) in every process.
        return sorted((_encode(v, f"{path}[]", opts) for v in value), key=_sort_key)
    if isinstance(value, int):
        return _encode(int(value), path, opts)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Decimal):
        if not opts.decimal128:
            return str(value)
        try:
            stored = Decimal128(value)
        except DecimalException:
            return str(value)  # beyond Decimal128's 34 digits: exact as text
        # 35 digits whose last is a zero fit after rounding, but would come back without that zero.
        return stored if stored.to_decimal().compare_total(value) == 0 else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, UUID):
        return Binary.from_uuid(value)
    if isinstance(value, datetime):
        opts.dates = True
        return value  # a date once the tree is whole (split_dates), its sets sorted by text
    if _is_pure_path(kind):
        return str(value)
    if isinstance(value, (SecretStr, SecretBytes)):
        if not opts.secrets:
            raise UnsupportedTypeError(
                f"field {path!r} is a {kind.__name__}; secrets are not stored unless the store is "
                "created with store_secrets=True (they would be kept in clear text)"
            )
        return _encode(value.get_secret_value(), path, opts)
    try:
        jsonable = to_jsonable_python(value)
    except PydanticSerializationError as exc:
        raise UnsupportedTypeError(f"field {path!r}: cannot store a value of type {kind.__name__}") from exc
    return _encode(jsonable, path, opts)


def _is_pure_path(kind: type) -> bool:
    """``isinstance(value, pathlib.PurePath)`` by the class's ancestry: the core does not import pathlib."""
    return any(base.__name__ == "PurePath" and base.__module__ == "pathlib" for base in kind.__mro__)


@dataclass(slots=True)
class _Options:
    secrets: bool
    decimal128: bool
    dates: bool = False  # set when the tree holds a datetime


def _date(value: datetime) -> datetime:
    """The BSON date of a datetime, as PyMongo reads it back: naive UTC, to the millisecond."""
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=None, microsecond=value.microsecond // 1000 * 1000)


def _held(value: datetime) -> bool:
    """Whether the BSON date, read back as UTC, is the very value (else its text is kept too)."""
    return value.microsecond % 1000 == 0 and value.tzinfo is not None and value.utcoffset() == timedelta(0)


def split_dates(value: Any) -> tuple[Any, tuple[tuple[str, str], ...]]:
    """An encoded tree with its datetimes as BSON dates, and the (path, text) of those a date does not hold."""
    times: list[tuple[str, str]] = []

    def walk(v: Any, path: str) -> Any:
        kind = type(v)
        if kind is dict:
            return {k: walk(x, f"{path}.{k}" if path else k) for k, x in v.items()}
        if kind is list:
            return [walk(x, f"{path}.{i}" if path else str(i)) for i, x in enumerate(v)]
        if isinstance(v, datetime):
            if not _held(v):
                times.append((path, to_jsonable_python(v)))
            try:
                return _date(v)
            except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC: no datetime, no BSON date
                raise LossyValueError(f"{path}: {v.isoformat()} is outside the dates a store can hold in UTC") from None
        return v

    return walk(value, ""), tuple(times)


def exact_times(stored: Any) -> tuple[tuple[str, str], ...]:
    """A document's ``exact_times`` field as (path, text) pairs; a malformed one is a CorruptResultError."""
    if stored is None:
        return ()
    try:
        return tuple((str(t["path"]), str(t["text"])) for t in stored if isinstance(t["text"], str))
    except (TypeError, KeyError) as exc:
        raise CorruptResultError(f"{EXACT_TIMES} is not a list of {{path, text}}: {str(stored)[:200]}") from exc


def _put_times(data: dict[str, Any], times: Iterable[tuple[str, str]], *, escaped: bool) -> dict[str, Any]:
    """``data`` with each datetime named in ``times`` replaced by its exact text (in place)."""
    for path, text in times:
        parts = path.split(".")
        node: Any = data
        try:
            for part in parts[:-1]:
                node = node[int(part)] if type(node) is list else node[part if escaped else unescape_key(part)]
            last: Any = int(parts[-1]) if type(node) is list else parts[-1] if escaped else unescape_key(parts[-1])
            held = isinstance(node[last], datetime)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise CorruptResultError(f"{EXACT_TIMES} names {path!r}, which the data does not hold") from exc
        if not held:
            raise CorruptResultError(f"{EXACT_TIMES} names {path!r}, which holds no date")
        node[last] = text
    return data


def _decode(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {unescape_key(k): _decode(v) for k, v in value.items()}
    if kind is list:
        return [_decode(v) for v in value]
    if kind is Int64:
        return int(value)
    if kind is Decimal128:
        return value.to_decimal()
    if kind is Binary:
        return value.as_uuid() if value.subtype == 4 else bytes(value)
    if kind is datetime:  # a BSON date: UTC
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if kind is float and value != value:
        # Every store but the embedded one hands back a new NaN object; verification must see
        # one too, or an Enum whose value is NaN passes by identity here and never reads back.
        return float("nan")
    return value


def decode_data(data: Mapping[str, Any], times: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """Turn stored data (and its ``exact_times``) back into the Python values pydantic validates."""
    decoded = {unescape_key(k): _decode(v) for k, v in data.items()}
    return _put_times(decoded, times, escaped=False) if times else decoded


def _canonical(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {k: _canonical(value[k]) for k in sorted(value)}
    if kind is list:
        return [_canonical(v) for v in value]
    if kind is int:
        return Int64(value) if _INT64_MIN <= value <= _INT64_MAX else str(value)
    if kind is float and math.isnan(value):
        return math.nan  # one bit pattern for every NaN
    if isinstance(value, datetime):  # its ISO text, as stored before dates: digests stay as they were
        return to_jsonable_python(value)
    return value


def _canonical_bytes(model_type: str, data: Mapping[str, Any]) -> bytes:
    return bson.encode({"t": model_type, "d": _canonical(dict(data))}, codec_options=CODEC_OPTIONS)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _stored_bytes(model_type: str, data: Mapping[str, Any], times: Iterable[tuple[str, str]]) -> bytes:
    """The canonical bytes of stored data: its dates as the UTC values they are, with their exact texts put back."""
    tree = map_leaves(dict(data), datetime, _utc)
    return _canonical_bytes(model_type, _put_times(tree, times, escaped=True) if times else tree)


def content_digest(model_type: str, data: Mapping[str, Any], times: Iterable[tuple[str, str]] = ()) -> str:
    """Digest of a model type and its stored data, independent of dict key order, int width and datetime form."""
    return hashlib.sha256(_stored_bytes(model_type, data, times)).hexdigest()[:32]


def encode_value(value: Any, *, decimal128: bool = True, dates: bool = True) -> Any:
    """One value as a field of that type is stored, so a filter on it matches the stored form.

    ``dates=False`` gives datetimes as the ISO text earlier versions stored.
    """
    opts = _Options(False, decimal128)
    encoded = _encode(value, "value", opts)
    if not opts.dates:
        return encoded
    return split_dates(encoded)[0] if dates else map_leaves(encoded, datetime, to_jsonable_python)


def map_leaves(value: Any, kind: type, change: Callable[[Any], Any]) -> Any:
    """``value`` with each leaf of type ``kind``, at any depth, passed through ``change``."""
    if isinstance(value, dict):
        return {k: map_leaves(v, kind, change) for k, v in value.items()}
    if isinstance(value, list):
        return [map_leaves(v, kind, change) for v in value]
    return change(value) if isinstance(value, kind) else value


def encode_model(
    model: BaseModel, *, store_secrets: bool = False, decimal128: bool = True, encoders: Encoders | None = None
) -> EncodedModel:
    """Encode a model for storage, proving it reads back equal.

    ``decimal128=False`` stores decimals as exact text, for engines without Decimal128;
    ``encoders`` keeps each class's compiled encoder between calls (the registry's).

    Raises:
        UnsupportedTypeError: a value of a type that cannot be stored, or a secret without opt-in.
        LossyValueError: a value that would not come back equal.
    """
    try:
        return _encode_model(model, store_secrets, decimal128, encoders or Encoders())
    except UnicodeEncodeError as exc:  # BSON strings are UTF-8: a lone surrogate has no encoding
        raise LossyValueError(
            f"{type(model).__name__} cannot be stored: it holds a string that is not valid Unicode "
            f"(a lone surrogate at {exc.start} of {exc.object[exc.start : exc.start + 8]!r})"
        ) from None


def _encode_model(model: BaseModel, store_secrets: bool, decimal128: bool, encoders: Encoders) -> EncodedModel:
    exact = encoders.exact(type(model))
    if exact is not None:
        try:
            data, canonical = (exact.encode(model),) * 2 if exact.pair is None else exact.pair(model)
        except Mismatch:
            pass
        else:
            raw = bson.encode({"t": type(model).__name__, "d": canonical}, codec_options=CODEC_OPTIONS)
            return EncodedModel(type(model).__name__, data, hashlib.sha256(raw).hexdigest()[:32], len(raw))
    try:
        dumped = model.model_dump()
    except PydanticSerializationError as exc:
        raise UnsupportedTypeError(f"{type(model).__name__} cannot be serialised: {exc}") from exc
    return encode_verified(model, dumped, store_secrets=store_secrets, decimal128=decimal128)


def encode_verified(model: BaseModel, dumped: Any, *, store_secrets: bool, decimal128: bool) -> EncodedModel:
    """The general path: encode by value, rebuild the model from that, and compare it with ``model``."""
    model_type = type(model).__name__
    if not isinstance(dumped, dict):
        # A result's data is a document; a RootModel of a list or a number, or a
        # model_serializer that returns something else, has no field to store it under.
        raise UnsupportedTypeError(
            f"{model_type} serialises to {type(dumped).__name__}, not to a dict of fields: "
            "only models that serialise to a dict can be stored (hold the value in a field)"
        )
    opts = _Options(store_secrets, decimal128)
    data: dict[str, Any] = _encode(dumped, "", opts)
    raw = _canonical_bytes(model_type, data)  # before the split: each datetime's text
    times: tuple[tuple[str, str], ...] = ()
    if opts.dates:
        data, times = split_dates(data)
    try:
        restored = type(model).model_validate(
            _fields_of(type(model), decode_data(data, times)), by_alias=False, by_name=True
        )
    except ValidationError as exc:
        raise LossyValueError(f"{model_type} cannot be stored faithfully: it does not read back ({exc})") from exc
    # The models, not their dumps: a dump can hide what it leaves out (excluded fields, a
    # subclass's fields, private attributes) or what a serializer changed.
    found = model_difference(model, restored, "")
    if found is not None:
        raise LossyValueError(f"{model_type} cannot be stored faithfully: field {found}")
    return EncodedModel(model_type, data, hashlib.sha256(raw).hexdigest()[:32], len(raw), times)


def encode_stored(
    model_type: str, data: Mapping[str, Any], *, decimal128: bool = True, times: Iterable[tuple[str, str]] = ()
) -> EncodedModel:
    """Re-encode data read from an export or a file tree (no model class needed), with its ``exact_times``.

    Ints become Int64 (one BSON type per field), datetimes BSON dates, and decimals
    text where the engine has no Decimal128; everything else is already in stored form.
    """

    def norm(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        if type(value) is int:
            return Int64(value) if _INT64_MIN <= value <= _INT64_MAX else str(value)
        if isinstance(value, Decimal128) and not decimal128:
            return str(value.to_decimal())
        if isinstance(value, UUID):
            return Binary.from_uuid(value)
        if isinstance(value, datetime):
            return _date(value)
        return value

    if not isinstance(model_type, str) or not model_type:
        raise CorruptResultError(f"no model type: {model_type!r}")
    if not isinstance(data, Mapping):
        raise CorruptResultError(f"stored data of {model_type} is not a document")
    try:
        normalized: dict[str, Any] = norm(dict(data))
        times = tuple(times)
        raw = _stored_bytes(model_type, normalized, times)
    except (InvalidDocument, RecursionError, UnicodeEncodeError) as exc:  # a NUL in a key, nesting too deep, ...
        raise CorruptResultError(f"stored data of {model_type} cannot be stored: {str(exc)[:200]}") from None
    return EncodedModel(model_type, normalized, hashlib.sha256(raw).hexdigest()[:32], len(raw), times)


def map_keys(value: Any, rename: Callable[[str], str]) -> Any:
    """``value`` with every dict key, at any depth, passed through ``rename``."""
    if isinstance(value, dict):
        return {rename(k): map_keys(v, rename) for k, v in value.items()}
    if isinstance(value, list):
        return [map_keys(v, rename) for v in value]
    return value


def unescape_tree(value: Any) -> Any:
    """Stored data with its dict keys as the model had them (for display)."""
    return map_keys(value, unescape_key)


def _fields_of(model_class: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """Stored data less the computed fields it keeps for queries.

    Validation would take them for extra fields (refused with ``extra="forbid"``, kept as
    extras with ``"allow"``).
    """
    computed = model_class.__pydantic_computed_fields__
    return {k: v for k, v in data.items() if k not in computed} if computed else data


def validate_data(
    model_class: type[T],
    data: Mapping[str, Any],
    result_id: str,
    times: Iterable[tuple[str, str]] = (),
    *,
    encoders: Encoders | None = None,
) -> T:
    """Validate stored data (and its ``exact_times``) into ``model_class``; a failure names the result id."""
    exact = (encoders or Encoders()).exact(model_class)
    if exact is not None and not exact.keyed and not times:
        # Data of exact types validates strictly as it is read (Int64 is an int); anything else
        # strict refuses (a Binary, a Decimal128 from an older schema) takes the decoding path.
        try:
            return model_class.model_validate(data, strict=True, by_alias=False, by_name=True)
        except ValidationError:
            pass
    try:
        decoded = decode_data(data, times)
        return model_class.model_validate(_fields_of(model_class, decoded), by_alias=False, by_name=True)
    except ValidationError as exc:
        details: list[Any] = [
            {"type": e["type"], "loc": e["loc"], "input": e["input"], **({"ctx": e["ctx"]} if "ctx" in e else {})}
            for e in exc.errors()
        ]
        title = f"{model_class.__name__} (stored result {result_id!r})"
        try:
            renamed = ValidationError.from_exception_data(title, details)
        except (TypeError, ValueError, KeyError):  # an error type pydantic cannot rebuild
            raise exc from None
        raise renamed from exc


# -- Encoders for models whose round trip is exact by construction, compiled once per class.
# ``encode_model`` proves every encoding by reading it back through the model
# class. For a class built only from str, int, float, bool, None, lists, str-keyed
# dicts and nested models of the same kind, with no validators, constraints,
# serializers, computed or extra fields, that proof holds for any instance whose
# values (nested models included) have exactly the declared types: such an
# instance comes back equal. The encoder reads the instance, checks those types
# as it goes and gives up on the first surprise (a model mutated without
# validation, a subclass instance in a field, an int beyond 64 bits, a key that
# needs escaping), and the caller falls back to the general, verified path.
#
# In the same pass it yields exactly what ``encoding._canonical`` would (sorted
# keys, one NaN), for the content digest.
#
# The verified path's comparison of a model with the one rebuilt from its
# stored form (``model_difference``) lives here too.

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
    """``encode`` turns an instance into stored data; ``pair`` into (stored data, canonical form for the digest).

    ``pair`` is None where the canonical form is the stored data itself (keys already sorted).
    ``keyed``: the schema holds a dict somewhere, whose stored keys may be escaped.
    """

    encode: Fn
    pair: Fn | None
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


def _plain_key(k: Any) -> str:
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
    enc, both, keyed = inner
    if both is None:
        return Compiled(lambda v: None if v is None else enc(v), None, keyed)
    return Compiled(lambda v: None if v is None else enc(v), lambda v: (None, None) if v is None else both(v), keyed)


def _list(item: Compiled) -> Compiled:
    enc, both, keyed = item
    kind = _TYPE.get(item)

    def encode(v: Any) -> Any:
        if type(v) is not list:
            raise Mismatch
        return _values(v, enc, kind)

    if both is None:
        return Compiled(encode, None, keyed)

    def pair(v: Any) -> tuple[list[Any], list[Any]]:
        if type(v) is not list:
            raise Mismatch
        if not v:
            return [], []
        stored, canonical = zip(*map(both, v), strict=True)
        return list(stored), list(canonical)

    return Compiled(encode, pair, keyed)


def _dict(value: Compiled) -> Compiled:
    enc, both, _ = value
    kind = _TYPE.get(value)

    def encode(v: Any) -> Any:
        _plain_keys(v)
        return dict(zip(v, _values(v.values(), enc, kind), strict=True))

    def pair(v: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if both is None:
            stored = encode(v)
            return stored, {k: stored[k] for k in sorted(stored)}
        _plain_keys(v)
        pairs = dict(zip(v, map(both, v.values()), strict=True))
        return {k: p[0] for k, p in pairs.items()}, {k: pairs[k][1] for k in sorted(pairs)}

    return Compiled(encode, pair, True)


def _plain_keys(v: Any) -> None:
    """Mismatch unless ``v`` is a dict whose keys are all stored as they are."""
    if type(v) is not dict:
        raise Mismatch
    keys = "".join(_leaves(v, str))
    if "%" in keys or "." in keys or "\x00" in keys or "$" in keys:  # may need escaping
        raise Mismatch


# The checks and conversion of one leaf field, inlined into a class's generated encoder.
_INLINE = {
    str: ["if type({v}) is not str: raise Mismatch"],
    bool: ["if type({v}) is not bool: raise Mismatch"],
    int: ["if type({v}) is not int or not MIN <= {v} <= MAX: raise Mismatch", "{v} = Int64({v})"],
    float: ["if type({v}) is not float: raise Mismatch", "if {v} != {v}: {v} = nan"],  # one NaN
}


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
            _plain_key(name)
        except Mismatch:
            raise _NotExact from None  # a field name that needs escaping (create_model allows any)
        fields[name] = _compile(field["schema"], refs, seen)
    keyed = any(c.keyed for c in fields.values())
    both = list(fields) != sorted(fields) or any(c.pair is not None for c in fields.values())
    return Compiled(*_generate(schema["cls"], fields, both), keyed)


def _generate(cls: type, fields: Mapping[str, Compiled], both: bool) -> tuple[Fn, Fn | None]:
    """One function per class that checks and converts every field in a single pass, with no call per leaf.

    It returns the stored data, and with ``both`` also the canonical form (keys sorted at
    every level) that the digest is taken of, sharing every leaf value with the stored data.
    """
    env: dict[str, Any] = {"cls": cls, "Mismatch": Mismatch, "Int64": Int64, "nan": math.nan, "_leaves": _leaves}
    env.update(MIN=_INT64_MIN, MAX=_INT64_MAX, str=str, int=int, float=float, bool=bool)
    reads, checks, parts = [], [], []
    stored: dict[str, str] = {}  # field -> the expression of its stored value
    canonical: dict[str, str] = {}
    at: dict[str, int] = {}  # expression -> its place in ``parts``, all values in one tuple
    grouped = False
    # Many leaf fields of one kind are checked and converted together, in C loops; the rest
    # inline, which is cheaper for a handful.
    for g, kind in enumerate((str, int, float, bool)):
        group = tuple(n for n, c in fields.items() if _TYPE.get(c) is kind)
        if len(group) < _GROUP:
            continue
        env[f"get{g}"], env[f"kind{g}"] = _getter(group), kind
        reads.append(f"G{g} = _leaves(get{g}(d), kind{g})")
        parts.append(f"*G{g}")
        grouped = True
        for j, name in enumerate(group):
            stored[name] = canonical[name] = f"G{g}[{j}]"
            at[stored[name]] = len(at)
    for i, (name, c) in enumerate(fields.items()):
        if name in stored:
            continue
        v = f"v{i}"
        reads.append(f"{v} = d[{name!r}]")
        stored[name] = canonical[name] = v
        leaf = _TYPE.get(c)
        if leaf is not None:
            checks += [line.format(v=v) for line in _INLINE[leaf]]
        elif c.pair is None:
            env[f"e{i}"] = c.encode
            checks.append(f"{v} = e{i}({v})")
        else:
            env[f"p{i}"] = c.pair
            checks.append(f"{v}, c{i} = p{i}({v})")
            canonical[name] = f"c{i}"
        for e in dict.fromkeys([v, canonical[name]]):
            at[e] = len(at)
            parts.append(e)
    names, ordered = tuple(fields), tuple(sorted(fields))
    if not grouped:  # a literal, cheapest for a handful of fields
        data = "{" + ", ".join(f"{n!r}: {stored[n]}" for n in names) + "}"
        canon = "{" + ", ".join(f"{n!r}: {canonical[n]}" for n in ordered) + "}"
    else:  # many fields: one tuple of every value, put in each order by C calls
        checks.append(f"a = ({', '.join(parts)},)")
        env["names"], env["ordered"] = names, ordered
        env["by_name"] = itemgetter(*(at[stored[n]] for n in names))
        env["by_order"] = itemgetter(*(at[canonical[n]] for n in ordered))
        data, canon = "dict(zip(names, by_name(a)))", "dict(zip(ordered, by_order(a)))"
    # The instance, not its dump: a dump of a subclass in a field of its base class drops the
    # subclass's fields, which only the instance's exact type shows.
    source = "\n".join(
        [
            "def encode(model):",
            "    if type(model) is not cls: raise Mismatch",
            "    d = model.__dict__",
            f"    if len(d) != {len(fields)}: raise Mismatch",
            "    try:",
            *(f"        {line}" for line in reads or ["pass"]),
            "    except KeyError:",
            "        raise Mismatch from None",
            *(f"    {line}" for line in checks),
            f"    return ({data}, {canon})" if both else f"    return {data}",
        ]
    )
    exec(compile(source, f"<encoder of {cls.__qualname__}>", "exec"), env)
    generated: Fn = env["encode"]
    if not both:
        return generated, None
    return (lambda model: generated(model)[0]), generated


def _getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A C-speed ``lambda d: tuple(d[n] for n in names)``."""
    if len(names) == 1:
        name = names[0]
        return lambda d: (d[name],)
    return itemgetter(*names)


def exact_encoder(cls: type[BaseModel]) -> Compiled | None:
    """The compiled encoder of a model class's instances, or None when the class needs the verified path."""
    try:
        return _compile(cls.__pydantic_core_schema__, {}, frozenset())
    except (_NotExact, KeyError, TypeError):
        return None


class Encoders:
    """Each model class's compiled encoder, compiled once: the registry keeps one for its process.

    Keyed weakly, so a class that goes (a test's, a notebook cell's) takes its encoder with it.
    """

    def __init__(self) -> None:
        self._compiled: weakref.WeakKeyDictionary[type[BaseModel], Compiled | None] = weakref.WeakKeyDictionary()

    def exact(self, cls: type[BaseModel]) -> Compiled | None:
        """``exact_encoder(cls)``, compiled on first use."""
        try:
            return self._compiled[cls]
        except KeyError:
            compiled = self._compiled[cls] = exact_encoder(cls)
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
