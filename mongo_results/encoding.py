"""Pydantic models to BSON-ready data and back (the README's "How each type is stored").

The encoding is value-directed and lossless by construction: native BSON types
where they are exact (Int64, double, Decimal128, Binary for bytes and UUID,
embedded documents and arrays), pydantic's own string form for everything
else it serialises (dates, times, durations, paths, IP addresses, URLs).
``encode_model`` then rebuilds the model from its output and refuses it
unless that equals the model it was given (models, not dumps: a dump can
leave out or alter what the model holds), so a model is either stored
faithfully or not at all. Classes whose round trip is exact by
construction skip the read-back (``_exact``), with the same result.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, DecimalException
from enum import Enum
from pathlib import PurePath
from typing import Any, TypeVar
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

from ._exact import Mismatch, exact_encoder, model_difference
from .errors import CorruptResultError, LossyValueError, UnsupportedTypeError

__all__ = [
    "CODEC_OPTIONS",
    "JSON_OPTIONS",
    "EncodedModel",
    "content_digest",
    "decode_data",
    "encode_stored",
    "map_keys",
    "encode_model",
    "encode_value",
    "encode_verified",
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


@dataclass(frozen=True, slots=True)
class EncodedModel:
    """A model ready to store: its type name, BSON-ready data and content digest."""

    model_type: str
    data: dict[str, Any]
    digest: str
    size: int  # bytes of the canonical BSON of the data, a close lower bound of the document size


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
    encoded = _encode(key, f"{path}.<key>", opts)
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
    if isinstance(value, PurePath):
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


@dataclass(frozen=True, slots=True)
class _Options:
    secrets: bool
    decimal128: bool


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
    if kind is float and value != value:
        # Every store but the embedded one hands back a new NaN object; verification must see
        # one too, or an Enum whose value is NaN passes by identity here and never reads back.
        return float("nan")
    return value


def decode_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Turn stored data back into the Python values pydantic validates."""
    return {unescape_key(k): _decode(v) for k, v in data.items()}


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
    return value


def _canonical_bytes(model_type: str, data: Mapping[str, Any]) -> bytes:
    return bson.encode({"t": model_type, "d": _canonical(dict(data))}, codec_options=CODEC_OPTIONS)


def content_digest(model_type: str, data: Mapping[str, Any]) -> str:
    """Digest of a model type and its stored data, independent of dict key order and int width."""
    return hashlib.sha256(_canonical_bytes(model_type, data)).hexdigest()[:32]


def encode_value(value: Any, *, decimal128: bool = True) -> Any:
    """One value as a field of that type is stored, so a filter on it matches the stored form."""
    return _encode(value, "value", _Options(False, decimal128))


def encode_model(model: BaseModel, *, store_secrets: bool = False, decimal128: bool = True) -> EncodedModel:
    """Encode a model for storage, proving it reads back equal.

    ``decimal128=False`` stores decimals as exact text, for engines without Decimal128.

    Raises:
        UnsupportedTypeError: a value of a type that cannot be stored, or a secret without opt-in.
        LossyValueError: a value that would not come back equal.
    """
    try:
        return _encode_model(model, store_secrets, decimal128)
    except UnicodeEncodeError as exc:  # BSON strings are UTF-8: a lone surrogate has no encoding
        raise LossyValueError(
            f"{type(model).__name__} cannot be stored: it holds a string that is not valid Unicode "
            f"(a lone surrogate at {exc.start} of {exc.object[exc.start : exc.start + 8]!r})"
        ) from None


def _encode_model(model: BaseModel, store_secrets: bool, decimal128: bool) -> EncodedModel:
    exact = exact_encoder(type(model))
    if exact is not None:
        try:
            data = exact.encode(model)
        except Mismatch:
            pass
        else:
            canonical = data if exact.canon is None else exact.canon(data)
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
    data: dict[str, Any] = _encode(dumped, "", _Options(store_secrets, decimal128))
    try:
        restored = type(model).model_validate(_fields_of(type(model), decode_data(data)), by_alias=False, by_name=True)
    except ValidationError as exc:
        raise LossyValueError(f"{model_type} cannot be stored faithfully: it does not read back ({exc})") from exc
    # The models, not their dumps: a dump can hide what it leaves out (excluded fields, a
    # subclass's fields, private attributes) or what a serializer changed.
    found = model_difference(model, restored, "")
    if found is not None:
        raise LossyValueError(f"{model_type} cannot be stored faithfully: field {found}")
    raw = _canonical_bytes(model_type, data)
    return EncodedModel(model_type, data, hashlib.sha256(raw).hexdigest()[:32], len(raw))


def encode_stored(model_type: str, data: Mapping[str, Any], *, decimal128: bool = True) -> EncodedModel:
    """Re-encode data read from an export or a file tree (no model class needed).

    Ints become Int64 (one BSON type per field), and decimals become text where
    the engine has no Decimal128; everything else is already in stored form.
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
        return value

    if not isinstance(model_type, str) or not model_type:
        raise CorruptResultError(f"no model type: {model_type!r}")
    if not isinstance(data, Mapping):
        raise CorruptResultError(f"stored data of {model_type} is not a document")
    try:
        normalized: dict[str, Any] = norm(dict(data))
        raw = _canonical_bytes(model_type, normalized)
    except (InvalidDocument, RecursionError, UnicodeEncodeError) as exc:  # a NUL in a key, nesting too deep, ...
        raise CorruptResultError(f"stored data of {model_type} cannot be stored: {str(exc)[:200]}") from None
    return EncodedModel(model_type, normalized, hashlib.sha256(raw).hexdigest()[:32], len(raw))


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
    """Stored data less the computed fields it keeps for queries: validation would take them
    for extra fields (refused with ``extra="forbid"``, kept as extras with ``"allow"``)."""
    computed = model_class.__pydantic_computed_fields__
    return {k: v for k, v in data.items() if k not in computed} if computed else data


def validate_data(model_class: type[T], data: Mapping[str, Any], result_id: str) -> T:
    """Validate stored data into ``model_class``; a failure names the result id."""
    exact = exact_encoder(model_class)
    if exact is not None and not exact.keyed:
        # Data of exact types validates strictly as it is read (Int64 is an int); anything else
        # strict refuses (a Binary, a Decimal128 from an older schema) takes the decoding path.
        try:
            return model_class.model_validate(data, strict=True, by_alias=False, by_name=True)
        except ValidationError:
            pass
    try:
        return model_class.model_validate(_fields_of(model_class, decode_data(data)), by_alias=False, by_name=True)
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
