"""The $jsonSchema validators accept every document the library writes, and say what they check."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import bson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, create_model
from pymongo.errors import OperationFailure

from mongo_results import MongoBackend, ResultsManager, register_model
from mongo_results.core.behaviors import SetBehavior
from mongo_results.core.profiles import EngineProfile
from mongo_results.core.validators import ENVELOPE, namespace_validator, validator_command
from mongo_results.core.writes import now, plan_set
from mongo_results.registry import MODELS

from .models import KitchenSink, Metrics
from .strategies import models, same

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
    doc = plan_set("a/b", model, SetBehavior.OVERWRITE, namespace, False, at=now(), models=MODELS).document
    return bson.decode(bson.encode(doc))


def test_validator_checks_envelope_and_data_types() -> None:
    register_model(Metrics, namespace="training")
    schema = namespace_validator("training", MODELS)["$jsonSchema"]
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
    # Required fields are required in data unless the result keeps some of them in a GridFS file.
    assert metrics["anyOf"] == [
        {"required": ["gridfs"]},
        {"properties": {"data": {"required": ["loss", "accuracy"]}}},
    ]
    doc = stored(Metrics(loss=1, accuracy=1), "training")
    assert matches(doc, schema)
    doc["data"]["loss"] = "high"  # a foreign writer's mistake
    assert not matches(doc, schema)
    doc = stored(Metrics(loss=1, accuracy=1), "training")
    del doc["created_at"]
    assert not matches(doc, schema)


def test_every_supported_type_passes_its_validator() -> None:
    register_model(KitchenSink)
    assert matches(stored(KitchenSink()), namespace_validator("default", MODELS)["$jsonSchema"])


@settings(max_examples=150, deadline=None)
@given(models())
def test_generated_models_pass_their_validator(model: BaseModel) -> None:
    ns = f"gen{next(COUNTER)}"
    register_model(type(model), namespace=ns)
    assert matches(stored(model, ns), namespace_validator(ns, MODELS)["$jsonSchema"])


def test_unregistered_types_are_not_refused() -> None:
    class Stranger(BaseModel):
        v: int

    register_model(Metrics)
    assert matches(stored(Stranger(v=1)), namespace_validator("default", MODELS)["$jsonSchema"])


FERRETDB2 = EngineProfile.from_build_info({"ferretdb": {"version": "v2.5.0"}})


def keywords(schema: Any) -> set[str]:
    """Every $jsonSchema keyword used at any depth (property names are not keywords)."""
    if not isinstance(schema, dict):
        return set()
    found = set(schema)
    for key, value in schema.items():
        subs = value.values() if key == "properties" else value if isinstance(value, list) else [value]
        found |= {k for sub in subs for k in keywords(sub)}
    return found


def wide_model(fields: int) -> type[BaseModel]:
    model: type[BaseModel] = create_model("Wide", **{f"s{i:03d}": (str, "x") for i in range(fields)})  # type: ignore[call-overload]
    return model


def test_mongodb_gets_the_whole_validator() -> None:
    register_model(Metrics, namespace="training")
    command, note = validator_command("results.training", "training", "error", EngineProfile(), MODELS)
    assert command == {"collMod": "results.training", "validator": namespace_validator("training", MODELS)} | {
        "validationAction": "error"
    }
    assert note is None


def test_documentdb_gets_only_the_keywords_it_evaluates_and_says_which_went() -> None:
    register_model(Metrics, namespace="training")
    command, note = validator_command("results.training", "training", "warn", FERRETDB2, MODELS)
    assert keywords(command["validator"]["$jsonSchema"]) <= {"bsonType", "properties", "items"}
    assert note is not None and "enum, oneOf, required" in note and "results.training" in note
    assert matches(stored(Metrics(loss=1, accuracy=1), "training"), command["validator"]["$jsonSchema"])


def test_a_validator_over_the_engines_size_limit_checks_the_envelope_alone() -> None:
    register_model(wide_model(400), namespace="wide")
    full, _ = validator_command("results.wide", "wide", "warn", EngineProfile(), MODELS)
    assert len(bson.encode(full["validator"])) > 10 * 1024
    limited = dataclasses.replace(EngineProfile(), max_validator_bytes=10 * 1024)  # all keywords, a size limit
    small, note = validator_command("results.wide", "wide", "warn", limited, MODELS)
    assert len(bson.encode(small["validator"])) <= 10 * 1024
    assert small["validator"]["$jsonSchema"]["properties"] == ENVELOPE
    assert small["validator"]["$jsonSchema"]["required"] == list(ENVELOPE)
    assert note is not None and "10 KB validator limit" in note
    # On DocumentDB the keywords it lacks go first, which leaves the envelope's types: small enough.
    restricted, note = validator_command("results.wide", "wide", "warn", FERRETDB2, MODELS)
    assert len(bson.encode(restricted["validator"])) <= 10 * 1024
    assert note is not None and "validator limit" not in note


@pytest.fixture
def validating(server_db: tuple[str, str], server_engine: str) -> Iterator[Callable[[str], ResultsManager]]:
    """Backends on the reference server with validators installed (``validation=`` as given)."""
    if server_engine == "ferretdb1":
        pytest.skip("the reference server fell back to FerretDB 1.x here, which does not enforce validators")
    opened: list[ResultsManager] = []

    def make(action: str) -> ResultsManager:
        uri, name = server_db
        opened.append(ResultsManager(backend=MongoBackend(uri, database=name, validation=action)))
        return opened[-1]

    yield make
    for backend in opened:
        backend.close()


@pytest.mark.parametrize("action", ["error", "warn"])
def test_the_server_enforces_the_validator_and_our_documents_pass_it(
    validating: Callable[[str], ResultsManager], action: str, caplog: pytest.LogCaptureFixture
) -> None:
    ns = f"enforced-{action}"
    register_model(KitchenSink, namespace=ns)
    register_model(Metrics, namespace=ns)
    backend = validating(action)
    with caplog.at_level(logging.WARNING, "mongo_results"):
        assert backend.set("kitchen", KitchenSink(), namespace=ns)
        assert backend.set("m", Metrics(loss=1, accuracy=1), namespace=ns)
        items = [(f"m/{i}", Metrics(loss=i, accuracy=1)) for i in range(3)]
        assert backend.set_many(items, SetBehavior.OVERWRITE, namespace=ns) == [True] * 3
        assert backend.set("m", Metrics(loss=2, accuracy=1), SetBehavior.SKIP_IF_EXISTS, namespace=ns)
    db = backend.backend.database()
    options = next(db.list_collections(filter={"name": f"results.{ns}"}))["options"]
    assert options["validationAction"] == action
    engine = backend.admin.engine()
    if engine.schema_keywords is not None:  # DocumentDB: what it lacks is left out, and said
        assert keywords(options["validator"]["$jsonSchema"]) <= engine.schema_keywords
        assert any("does not evaluate the $jsonSchema keywords" in r.getMessage() for r in caplog.records)
    else:
        assert options["validator"] == namespace_validator(ns, MODELS)
    foreign = {"_id": "foreign", "path": "not an array", "model_type": 7, "data": "text"}
    if action == "error":
        with pytest.raises(OperationFailure):
            db[f"results.{ns}"].insert_one(foreign)
        assert "foreign" not in backend.list_ids()
    else:
        db[f"results.{ns}"].insert_one(foreign)  # accepted; the server logs the failure
        assert "foreign" in backend.list_ids()
    assert backend.get("kitchen", KitchenSink) == KitchenSink()


def test_a_model_whose_validator_is_over_the_limit_is_still_stored(
    validating: Callable[[str], ResultsManager],
) -> None:
    wide = wide_model(400)
    register_model(wide, namespace="wide")
    backend = validating("error")
    assert backend.set("w", wide(), namespace="wide")
    assert backend.get("w", wide) == wide()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_models_pass_the_servers_validator(
    validating: Callable[[str], ResultsManager], data: st.DataObject
) -> None:
    model = data.draw(models())
    ns = f"gen{next(COUNTER)}"
    register_model(type(model), namespace=ns)
    backend = validating("error")
    assert backend.set("g", model, namespace=ns)
    assert same(backend.get("g", type(model), namespace=ns).model_dump(), model.model_dump())
