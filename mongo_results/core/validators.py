"""``$jsonSchema`` validators generated from the registered models of a namespace.

MongoDB Compass shows them in its Validation tab; with ``validationAction:
"warn"`` (the default here) a foreign write that breaks them is logged by the
server, with ``"error"`` it is refused. The envelope is always checked; each
model's ``data`` is checked field by field where its JSON Schema maps to BSON
types, and left open where it does not ($ref-less unions of mixed kinds, Any).
"""

from __future__ import annotations

from decimal import Decimal
from types import UnionType
from typing import Any, Union, get_args, get_origin

import bson
from pydantic import BaseModel, TypeAdapter

from .names import Models
from .profiles import EngineProfile

__all__ = ["ENVELOPE", "data_schema", "namespace_validator", "validator_command"]

ENVELOPE: dict[str, Any] = {
    "_id": {"bsonType": "string"},
    "path": {"bsonType": "array", "items": {"bsonType": "string"}},
    "model_type": {"bsonType": "string"},
    "namespace": {"bsonType": "string"},
    "data": {"bsonType": "object"},
    "digest": {"bsonType": "string"},
    "created_at": {"bsonType": "date"},
    "updated_at": {"bsonType": "date"},
}

_ENVELOPE_ONLY: dict[str, Any] = {"bsonType": "object", "required": list(ENVELOPE), "properties": ENVELOPE}

# JSON Schema "format" of a string -> the BSON type the encoding stores it as.
_BINARY_FORMATS = {"binary", "base64", "uuid", "uuid1", "uuid3", "uuid4", "uuid5"}


def _bson_types(schema: dict[str, Any], defs: dict[str, Any]) -> list[str] | None:
    """The BSON types a value with this JSON Schema is stored as, or None when unsure."""
    if "$ref" in schema:
        target = defs.get(schema["$ref"].rsplit("/", 1)[-1])
        return _bson_types(target, defs) if target is not None else None
    if "anyOf" in schema:
        found: list[str] = []
        for option in schema["anyOf"]:
            types = _bson_types(option, defs)
            if types is None:
                return None
            found += [t for t in types if t not in found]
        return found
    kind = schema.get("type")
    if kind == "integer":
        return ["long", "string"]  # beyond 64 bits an int is stored as its digits
    if kind == "number":
        return ["double"]
    if kind == "boolean":
        return ["bool"]
    if kind == "null":
        return ["null"]
    if kind == "array":
        return ["array"]
    if kind == "object":
        return ["object"]
    if kind == "string":
        if schema.get("format") in _BINARY_FORMATS:
            return ["binData"]
        if schema.get("format") == "date-time":
            return ["date", "string"]  # text: as stored before BSON dates
        if schema.get("format") == "decimal" or "pattern" in schema:
            return None  # decimals: Decimal128, or text beyond 34 digits / on FerretDB
        return ["string"]
    return None


def _members(annotation: Any) -> list[Any]:
    """The members of a union annotation (or the annotation itself)."""
    if get_origin(annotation) in (Union, UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def data_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The ``$jsonSchema`` of one model's stored ``data`` (keyed by field name, as stored)."""
    properties: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        # Per field, so defaults (which need not be JSON) and aliases play no part.
        annotation: Any = field.annotation
        schema = TypeAdapter(annotation).json_schema(mode="validation")
        types = _bson_types(schema, schema.get("$defs", {}))
        if types and Decimal in _members(annotation):
            types.append("decimal")  # JSON Schema says number-or-string; the store has Decimal128
        properties[name] = {"bsonType": types} if types else {}
    required = [name for name, field in model.model_fields.items() if field.is_required()]
    out: dict[str, Any] = {"bsonType": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


def namespace_validator(namespace: str, models: Models) -> dict[str, Any]:
    """The validator of ``results.<namespace>``: the envelope, and ``data`` per registered model type."""
    schema: dict[str, Any] = {
        "bsonType": "object",
        "required": list(ENVELOPE),
        "properties": {**ENVELOPE, "namespace": {"bsonType": "string", "enum": [namespace]}},
    }
    schema["properties"]["gridfs"] = {"bsonType": "object"}  # a result over 16 MiB: see core/large.py
    registered = models.in_namespace(namespace)
    if registered:
        schema["oneOf"] = [_model_branch(name, model) for name, model in sorted(registered.items())] + [
            {"properties": {"model_type": {"not": {"enum": sorted(registered)}}}}
        ]
    return {"$jsonSchema": schema}


def _model_branch(name: str, model: type[BaseModel]) -> dict[str, Any]:
    """The checks of one model type; a result with a GridFS file has only some of its fields in ``data``."""
    data = data_schema(model)
    required = data.pop("required", None)
    branch: dict[str, Any] = {"properties": {"model_type": {"enum": [name]}, "data": data}}
    if required:
        branch["anyOf"] = [{"required": ["gridfs"]}, {"properties": {"data": {"required": required}}}]
    return branch


def _restrict(schema: Any, keywords: frozenset[str], dropped: set[str]) -> Any:
    """``schema`` with only ``keywords`` left, at every depth; what went is added to ``dropped``."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in keywords:
            dropped.add(key)
        elif key == "properties":
            out[key] = {name: _restrict(sub, keywords, dropped) for name, sub in value.items()}
        else:
            out[key] = _restrict(value, keywords, dropped)
    return out


def validator_command(
    collection: str, namespace: str, action: str, engine: EngineProfile, models: Models
) -> tuple[dict[str, Any], str | None]:
    """The ``collMod`` that installs the namespace's validator, and a note of what the engine leaves out.

    Where the engine evaluates only some ``$jsonSchema`` keywords (DocumentDB),
    the others are removed rather than sent: it would accept them, then refuse
    every write. Where the full validator is over the engine's size limit, the
    envelope alone is checked. The note says which, so nothing is dropped silently.
    """
    validator = namespace_validator(namespace, models)
    notes = []
    if engine.schema_keywords is not None:
        dropped: set[str] = set()
        validator = {"$jsonSchema": _restrict(validator["$jsonSchema"], engine.schema_keywords, dropped)}
        if dropped:
            notes.append(f"it does not evaluate the $jsonSchema keywords {', '.join(sorted(dropped))}, left out")
    limit = engine.max_validator_bytes
    if limit is not None and len(bson.encode(validator)) > limit:
        keywords = engine.schema_keywords
        envelope = _ENVELOPE_ONLY if keywords is None else _restrict(_ENVELOPE_ONLY, keywords, set())
        validator = {"$jsonSchema": envelope}
        notes.append(f"the per-model checks are over its {limit // 1024} KB validator limit, so only the envelope is")
    note = f"{engine.label}: {collection}'s validator checks BSON types; " + "; ".join(notes) if notes else None
    command = {"collMod": collection, "validator": validator, "validationAction": action}
    return command, note
