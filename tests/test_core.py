"""The no-I/O core: plans and outcomes, tested without any database."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mongo_results import MongoResultsError, ResultExistsError, SetBehavior, canonical_id
from mongo_results.core.behaviors import Stored, outcome, writes
from mongo_results.core.commands import DuplicateKey, Written
from mongo_results.core.filters import page_after, prefix_filter
from mongo_results.core.ids import canonical_prefix, segments
from mongo_results.core.names import namespaces_in
from mongo_results.core.profiles import EngineProfile
from mongo_results.core.writes import SetPlan
from mongo_results.core.writes import plan_set as _plan_set
from mongo_results.errors import InvalidIdError
from mongo_results.registry import MODELS

from .models import Metrics

M = Metrics(loss=1.0, accuracy=0.5)
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def plan_set(*args: Any, **kwargs: Any) -> SetPlan:
    return _plan_set(*args, at=T0, models=MODELS, **kwargs)


def reply(*, duplicate: bool, upserted: bool) -> Written | DuplicateKey:
    return DuplicateKey() if duplicate else Written(upserted)


def test_raise_if_exists_is_a_plain_insert() -> None:
    plan = plan_set("a/b", M, SetBehavior.RAISE_IF_EXISTS, None, False)
    assert plan.insert
    doc = plan.document
    assert doc["created_at"] == doc["updated_at"] == T0  # the clock is the caller's
    assert doc["_id"] == "a/b" and doc["path"] == ["a", "b"]
    assert doc["model_type"] == "Metrics" and doc["namespace"] == "default"
    assert set(doc) == {"_id", "path", "model_type", "namespace", "data", "digest", "created_at", "updated_at"}


def test_skip_if_exists_upserts_unless_the_digest_matches() -> None:
    plan = plan_set("a", M, SetBehavior.SKIP_IF_EXISTS, None, False)
    assert plan.filter == {"_id": "a", "digest": {"$ne": plan.document["digest"]}}
    assert plan.update is not None
    assert plan.update["$setOnInsert"] == {"created_at": plan.document["created_at"]}
    assert "_id" not in plan.update["$set"] and "created_at" not in plan.update["$set"]


def test_raise_if_different_inserts_only() -> None:
    plan = plan_set("a", M, SetBehavior.RAISE_IF_DIFFERENT, None, False)
    assert plan.filter == {"_id": "a", "digest": plan.document["digest"]}
    assert plan.update is not None and list(plan.update) == ["$setOnInsert"]


def test_overwrite_keeps_created_at() -> None:
    plan = plan_set("a", M, SetBehavior.OVERWRITE, None, False)
    assert plan.filter == {"_id": "a"}
    assert plan.update is not None and "created_at" in plan.update["$setOnInsert"]
    assert plan.attempts == 3
    with pytest.raises(MongoResultsError, match="insert races"):
        plan.outcome(DuplicateKey())


@pytest.mark.parametrize(
    "info", [{"version": "8.0.4"}, {"ferretdbVersion": "v1.24.2"}, {"ferretdb": {"version": "v2.5.0"}}]
)
def test_a_duplicate_from_a_digest_filtered_upsert_is_confirmed_on_every_engine(info: dict[str, Any]) -> None:
    # Two upserts of a missing id may both insert; the loser's duplicate key is a lost race,
    # not an answer, unless the repeated command meets it again.
    engine = EngineProfile.from_build_info(info)
    for behavior in (SetBehavior.SKIP_IF_EXISTS, SetBehavior.RAISE_IF_DIFFERENT):
        assert plan_set("a", M, behavior, None, False, engine=engine).attempts == 2
    assert plan_set("a", M, SetBehavior.RAISE_IF_EXISTS, None, False, engine=engine).attempts == 1


@pytest.mark.parametrize(
    ("behavior", "duplicate", "upserted", "expected"),
    [
        (SetBehavior.RAISE_IF_EXISTS, False, True, True),
        (SetBehavior.RAISE_IF_EXISTS, True, False, ResultExistsError),
        (SetBehavior.RAISE_IF_DIFFERENT, False, True, True),  # nothing was there
        (SetBehavior.RAISE_IF_DIFFERENT, False, False, True),  # same content matched
        (SetBehavior.RAISE_IF_DIFFERENT, True, False, ResultExistsError),  # different content
        (SetBehavior.SKIP_IF_EXISTS, False, True, True),
        (SetBehavior.SKIP_IF_EXISTS, False, False, True),  # different content overwritten
        (SetBehavior.SKIP_IF_EXISTS, True, False, False),  # same content: skipped
        (SetBehavior.OVERWRITE, False, True, True),
        (SetBehavior.OVERWRITE, False, False, True),
    ],
)
def test_server_answers_map_to_the_table(
    behavior: SetBehavior, duplicate: bool, upserted: bool, expected: object
) -> None:
    plan = plan_set("a", M, behavior, None, False)
    if expected is ResultExistsError:
        with pytest.raises(ResultExistsError):
            plan.outcome(reply(duplicate=duplicate, upserted=upserted))
    else:
        assert plan.outcome(reply(duplicate=duplicate, upserted=upserted)) is expected


def test_decision_table_matches_spec() -> None:
    b = SetBehavior
    assert [writes(x, Stored.NOTHING) for x in b] == [True] * 5
    assert outcome(b.SKIP_IF_EXISTS, Stored.SAME, "a", "n") is False
    assert not writes(b.SKIP_IF_EXISTS, Stored.SAME)
    assert writes(b.SKIP_IF_EXISTS, Stored.DIFFERENT)
    assert outcome(b.RAISE_IF_DIFFERENT, Stored.SAME, "a", "n") is True
    assert not writes(b.RAISE_IF_DIFFERENT, Stored.SAME)
    with pytest.raises(FileExistsError):
        outcome(b.RAISE_IF_DIFFERENT, Stored.DIFFERENT, "a", "n")
    assert [x.value for x in b] == [
        "raise_if_exists",
        "raise_if_different",
        "overwrite",
        "skip_if_exists",
        "keep_existing",
    ]
    assert (
        not writes(b.KEEP_EXISTING, Stored.DIFFERENT) and outcome(b.KEEP_EXISTING, Stored.DIFFERENT, "a", "n") is False
    )


def test_a_prefix_is_one_id_range_not_a_regex() -> None:
    assert prefix_filter(None) == prefix_filter("") == {"_id": {"$gte": ""}}  # string ids only
    assert prefix_filter("a/.*") == {
        "_id": {"$gte": "a/.*", "$lt": "a/.*0"},
        "$nor": [{"_id": {"$gt": "a/.*", "$lt": "a/.*/"}}],
    }
    assert prefix_filter(["a", "b/"]) == prefix_filter("a/b")


def test_pages_after_an_id_keep_the_bounds() -> None:
    query = prefix_filter("a/b")
    assert page_after(query, "a/b/k") == {"_id": {"$gt": "a/b/k", "$lt": "a/b0"}, "$nor": query["$nor"]}
    assert page_after(prefix_filter(None), "z") == {"_id": {"$gt": "z"}}


def test_canonical_forms() -> None:
    assert canonical_id("a//b/") == canonical_id(["a", "b"]) == canonical_id(["a/b"]) == "a/b"
    assert canonical_prefix("/") == ""
    with pytest.raises(InvalidIdError):
        canonical_prefix("a/../b")


def test_namespaces_from_collection_names() -> None:
    names = ["results.default", "results.analytics", "other", "results.", "resultsx.y"]
    assert namespaces_in(names, "results.") == ["analytics", "default"]


def test_writes_replace_whole_documents_where_set_is_not_faithful() -> None:
    ferret = EngineProfile.from_build_info({"ferretdbVersion": "v1.24.2"})
    for behavior in (SetBehavior.SKIP_IF_EXISTS, SetBehavior.OVERWRITE):
        assert not plan_set("a", M, behavior, None, False).replace
        plan = plan_set("a", M, behavior, None, False, engine=ferret)
        assert plan.replace and plan.update == plan.document
    assert not plan_set("a", M, SetBehavior.RAISE_IF_DIFFERENT, None, False, engine=ferret).replace


def test_engine_profiles() -> None:
    mongodb = EngineProfile.from_build_info({"version": "8.0.4"})
    assert mongodb.decimal128 and mongodb.schema_keywords is None and mongodb.label == "MongoDB 8.0.4"
    ferret2 = EngineProfile.from_build_info({"version": "7.0.77", "ferretdb": {"version": "v2.5.0"}})
    assert ferret2.label == "FerretDB v2.5.0" and ferret2.decimal128 and ferret2.validators
    assert ferret2.max_write_batch == 25_000 and ferret2.max_validator_bytes == 10 * 1024
    ferret = EngineProfile.from_build_info({"version": "7.0.42", "ferretdbVersion": "v1.24.2"})
    assert ferret.name == "ferretdb" and not ferret.decimal128 and not ferret.non_finite
    plan = plan_set("a", Metrics(loss=1, accuracy=1), SetBehavior.OVERWRITE, None, False, engine=ferret)
    assert plan.document["data"]["loss"] == 1.0


def _general(result_id: object) -> tuple[str, ...] | str:
    try:
        return segments([result_id])  # type: ignore[list-item]  # a list always takes the general path
    except InvalidIdError as exc:
        return type(exc).__name__


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab/.\x00é", max_size=12) | st.text(alphabet="a/", min_size=250, max_size=1100))
def test_the_fast_id_path_agrees_with_the_general_one(result_id: str) -> None:
    try:
        fast: tuple[str, ...] | str = segments(result_id)
    except InvalidIdError as exc:
        fast = type(exc).__name__
    assert fast == _general(result_id)
