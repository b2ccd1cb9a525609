"""The $jsonSchema validators accept every document the library writes, and say what they check."""

from __future__ import annotations

import itertools
from typing import Any

import bson
from hypothesis import given, settings
from pydantic import BaseModel

from mongo_results import register_model
from mongo_results._core import plan_set
from mongo_results.behaviors import SetBehavior
from mongo_results.validation import namespace_validator

from .models import KitchenSink, Metrics
from .strategies import models

COUNTER = itertools.count()
BSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "long": (bson.Int64,),
    "double": (float,),
    "bool": (bool,),
    "null": (type(None),),
    "array": (list,),
    "object": (dict,),
    "date": (__import__("datetime").datetime,),
    "binData": (bytes, bson.Binary),
    "decimal": (bson.Decimal128,),
}


def matches(value: Any, schema: dict[str, Any]) -> bool:
    """The subset of $jsonSchema that the generated validators use."""
    if "bsonType" in schema:
        kinds = schema["bsonType"] if isinstance(schema["bsonType"], list) else [schema["bsonType"]]
        if not any(isinstance(value, BSON_TYPES[k]) and not (k == "long" and isinstance(value, bool)) for k in kinds):
            return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "not" in schema and matches(value, schema["not"]):
        return False
    if isinstance(value, dict):
        if any(key not in value for key in schema.get("required", [])):
            return False
        for key, sub in schema.get("properties", {}).items():
            if key in value and not matches(value[key], sub):
                return False
    if isinstance(value, list) and "items" in schema and not all(matches(v, schema["items"]) for v in value):
        return False
    return not ("oneOf" in schema and sum(matches(value, s) for s in schema["oneOf"]) != 1)


def stored(model: BaseModel, namespace: str = "default") -> dict[str, Any]:
    """A document as the server returns it."""
    doc = plan_set("a/b", model, SetBehavior.OVERWRITE, namespace, False).document
    return bson.decode(bson.encode(doc))


def test_validator_checks_envelope_and_data_types() -> None:
    register_model(Metrics, namespace="training")
    schema = namespace_validator("training")["$jsonSchema"]
    assert set(schema["required"]) == {
        "_id",
        "path",
        "model_type",
        "namespace",
        "data",
        "digest",
        "created_at",
        "updated_at",
    }
    metrics = next(s for s in schema["oneOf"] if s["properties"]["model_type"]["enum"] == ["Metrics"])
    assert metrics["properties"]["data"]["properties"]["loss"] == {"bsonType": ["double"]}
    assert metrics["properties"]["data"]["required"] == ["loss", "accuracy"]
    doc = stored(Metrics(loss=1, accuracy=1), "training")
    assert matches(doc, schema)
    doc["data"]["loss"] = "high"  # a foreign writer's mistake
    assert not matches(doc, schema)
    doc = stored(Metrics(loss=1, accuracy=1), "training")
    del doc["created_at"]
    assert not matches(doc, schema)


def test_every_supported_type_passes_its_validator() -> None:
    register_model(KitchenSink)
    assert matches(stored(KitchenSink()), namespace_validator("default")["$jsonSchema"])


@settings(max_examples=150, deadline=None)
@given(models())
def test_generated_models_pass_their_validator(model: BaseModel) -> None:
    ns = f"gen{next(COUNTER)}"
    register_model(type(model), namespace=ns)
    assert matches(stored(model, ns), namespace_validator(ns)["$jsonSchema"])


def test_unregistered_types_are_not_refused() -> None:
    class Stranger(BaseModel):
        v: int

    register_model(Metrics)
    assert matches(stored(Stranger(v=1)), namespace_validator("default")["$jsonSchema"])
