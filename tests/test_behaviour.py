"""The behavioural suite: every test runs against every backend."""

from __future__ import annotations

import math
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Union

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from mongo_results import (
    MongoResultsError,
    ResultExistsError,
    ResultNotFoundError,
    ResultsManager,
    SetBehavior,
    register_model,
)
from mongo_results.errors import (
    AmbiguousResultError,
    InvalidIdError,
    InvalidNamespaceError,
    LossyValueError,
    SkippedResultsWarning,
    UnsupportedTypeError,
    UpgradeFailedError,
)

from .conftest import SyncView, make_manager, needs_mongodb_semantics
from .models import KitchenSink, Metrics, Other, Point

RID = "sweep-7/lr=0.1/seed=3/metrics"
A = Metrics(loss=0.25, accuracy=0.9, step=1)
B = Metrics(loss=0.5, accuracy=0.8, step=2)

# The README's set-behaviour table: behaviour -> stored state -> (return value or exception, what is stored afterwards)
TABLE: dict[SetBehavior, dict[str, tuple[object, str]]] = {
    SetBehavior.RAISE_IF_EXISTS: {
        "nothing": (True, "new"),
        "same": (FileExistsError, "old"),
        "different": (FileExistsError, "old"),
    },
    SetBehavior.RAISE_IF_DIFFERENT: {
        "nothing": (True, "new"),
        "same": (True, "old"),
        "different": (FileExistsError, "old"),
    },
    SetBehavior.SKIP_IF_EXISTS: {"nothing": (True, "new"), "same": (False, "old"), "different": (True, "new")},
    SetBehavior.OVERWRITE: {"nothing": (True, "new"), "same": (True, "new"), "different": (True, "new")},
    SetBehavior.KEEP_EXISTING: {"nothing": (True, "new"), "same": (False, "old"), "different": (False, "old")},
}


@pytest.fixture(autouse=True)
def _models() -> None:
    register_model(Metrics)
    register_model(KitchenSink)
    register_model(Point)
    register_model(Other)


@pytest.mark.parametrize("behavior", list(SetBehavior))
@pytest.mark.parametrize("state", ["nothing", "same", "different"])
def test_set_behaviour_table(rm: ResultsManager, behavior: SetBehavior, state: str) -> None:
    old = A
    new = A if state == "same" else B
    if state != "nothing":
        assert rm.set(RID, old) is True
    expected, after = TABLE[behavior][state]
    if expected is FileExistsError:
        with pytest.raises(FileExistsError) as info:
            rm.set(RID, new, behavior)
        assert isinstance(info.value, ResultExistsError)
        assert info.value.result_id == RID
        assert info.value.namespace == "default"
    else:
        assert rm.set(RID, new, behavior) is expected
    assert rm.get(RID) == (new if after == "new" else old)
    assert rm.list_ids() == [RID]


@pytest.mark.parametrize("behavior", [SetBehavior.OVERWRITE, SetBehavior.SKIP_IF_EXISTS])
def test_overwrite_where_only_keys_change(rm: ResultsManager, behavior: SetBehavior) -> None:
    class Counts(BaseModel):
        by_name: dict[str, int]

    register_model(Counts)
    rm.set("counts", Counts(by_name={"a": 1, "b": 2}))
    assert rm.set("counts", Counts(by_name={"b": 1, "a": 2}), behavior) is True
    assert rm.get("counts") == Counts(by_name={"b": 1, "a": 2})
    assert rm.set("counts", Counts(by_name={"c": 1, "d": 2}), behavior) is True
    assert rm.get("counts") == Counts(by_name={"c": 1, "d": 2})


def test_round_trip_returns_the_registered_class(rm: ResultsManager) -> None:
    rm.set(RID, A)
    got = rm.get(RID)
    assert type(got) is Metrics
    assert got == A
    assert rm.get(RID, Metrics) == A


def test_every_supported_type_round_trips(rm: ResultsManager) -> None:
    sink = KitchenSink()
    assert rm.set("types/all", sink)
    got = rm.get("types/all")
    assert got == sink
    assert got.model_dump() == sink.model_dump()
    assert type(got.huge) is int and got.huge == 2**200


def test_non_finite_floats_round_trip(rm: ResultsManager, engine: str) -> None:
    needs_mongodb_semantics(engine, "refuses ±Infinity and NaN doubles")

    class Floats(BaseModel):
        values: list[float]

    register_model(Floats)
    rm.set("floats", Floats(values=[math.inf, -math.inf, math.nan, -0.0]))
    got = rm.get("floats", Floats).values
    assert got[:2] == [math.inf, -math.inf] and math.isnan(got[2])
    assert math.copysign(1.0, got[3]) == -1.0


def test_nested_arrays_round_trip(rm: ResultsManager, engine: str) -> None:
    needs_mongodb_semantics(engine, "refuses arrays nested in arrays")

    class Matrix(BaseModel):
        rows: list[list[float]]

    register_model(Matrix)
    rm.set("matrix", Matrix(rows=[[1.0, 2.0], [3.0, 4.0]]))
    assert rm.get("matrix") == Matrix(rows=[[1.0, 2.0], [3.0, 4.0]])


def test_nul_in_strings_round_trips(rm: ResultsManager) -> None:
    rm.set("nul", Other(name="a\x00b"))
    assert rm.get("nul", Other).name == "a\x00b"


def test_missing_result(rm: ResultsManager) -> None:
    with pytest.raises(FileNotFoundError) as info:
        rm.get("no/such/result")
    assert isinstance(info.value, ResultNotFoundError)
    assert not rm.exists("no/such/result")
    assert rm.delete("no/such/result") is False


def test_exists_delete_clear(rm: ResultsManager) -> None:
    rm.set("a/b", A)
    rm.set("a/c", B)
    assert rm.exists("a/b") and rm.exists(["a", "b"])
    assert rm.delete("a/b") is True
    assert not rm.exists("a/b")
    assert rm.list_ids() == ["a/c"]
    rm.clear()
    assert rm.list_ids() == []
    assert rm.set("a/c", B) is True  # usable after clear


def test_ids_with_segments_that_start_with_a_dot_are_ids_like_any_other(rm: ResultsManager) -> None:
    rm.set("runs/.warmup", A)
    rm.set(".a/b", B)
    rm.set("runs/1", B)
    assert rm.get("runs/.warmup") == A and rm.get(".a/b") == B
    assert rm.exists("runs/.warmup") and rm.exists(".a/b")
    assert rm.list_ids() == [".a/b", "runs/.warmup", "runs/1"]
    assert rm.list_ids("runs") == ["runs/.warmup", "runs/1"] and rm.list_ids(".a") == [".a/b"]
    assert [rid for rid, _ in rm.iter_results()] == [".a/b", "runs/.warmup", "runs/1"]
    assert rm.delete("runs/.warmup") and not rm.exists("runs/.warmup")
    rm.clear()
    assert rm.list_ids() == [] and not rm.exists(".a/b")


@pytest.mark.parametrize("spelling", ["a//b/", ["a", "b"], ["a/b"], "/a/b", ("a", "", "b")])
def test_id_spellings_are_one_id(rm: ResultsManager, spelling: object) -> None:
    rm.set("a/b", A)
    assert rm.exists(spelling)  # type: ignore[arg-type]
    assert rm.get(spelling) == A  # type: ignore[call-overload]
    assert rm.list_ids() == ["a/b"]


BAD_IDS = ["", "/", "//", "a/./b", "a/../b", "..", "a\x00b", "x" * 256, "/".join(["y" * 200] * 6), ["a", 1], [None], 42]


@pytest.mark.parametrize("bad", BAD_IDS, ids=lambda v: repr(v)[:20])
def test_invalid_ids_are_refused_before_writing(rm: ResultsManager, bad: object) -> None:
    with pytest.raises(ValueError) as info:
        rm.set(bad, A)  # type: ignore[arg-type]
    assert isinstance(info.value, InvalidIdError)
    assert rm.list_ids() == []
    with pytest.raises(ValueError):
        rm.get(bad)  # type: ignore[call-overload]


def test_longest_valid_segment_and_id(rm: ResultsManager) -> None:
    seg = "é" * 125  # 250 UTF-8 bytes: the longest segment every backend (file names too) holds
    rm.set(["x", seg], A)
    assert rm.list_ids() == [f"x/{seg}"]
    long_id = "/".join(["z" * 100] * 10)  # 1009 bytes
    rm.set(long_id, A)
    assert rm.get(long_id) == A


def test_list_ids_matches_whole_segments(rm: ResultsManager) -> None:
    for rid in ["a/b", "a/b/c", "a/b/c/d", "a/bc", "a/b0", "a/b-", "a", "b/a/b"]:
        rm.set(rid, A)
    assert rm.list_ids("a/b") == ["a/b", "a/b/c", "a/b/c/d"]
    assert rm.list_ids(["a", "b"]) == ["a/b", "a/b/c", "a/b/c/d"]
    assert rm.list_ids("a/b/") == ["a/b", "a/b/c", "a/b/c/d"]
    assert rm.list_ids("a") == ["a", "a/b", "a/b-", "a/b/c", "a/b/c/d", "a/b0", "a/bc"]
    assert rm.list_ids("") == rm.list_ids(None) == sorted(rm.list_ids())
    assert rm.list_ids("zzz") == []


def test_siblings_that_sort_between_a_prefix_and_its_children_are_not_listed(rm: ResultsManager) -> None:
    # Ids that go on from "a/b" with a character below "/" sort between "a/b" and "a/b/...".
    siblings = ["a/b!", "a/b 1", "a/b-2", "a/b-2/x", "a/b.5", "a/b./y", "a/b+"]
    children = ["a/b", *(f"a/b/{i:02d}" for i in range(7))]
    for rid in siblings + children:
        rm.set(rid, A)
    assert rm.list_ids("a/b") == sorted(children)
    assert [rid for rid, _ in rm.iter_results("a/b", batch_size=2)] == sorted(children)  # pages go past them
    assert rm.list_ids("a/b-2") == ["a/b-2", "a/b-2/x"]


@pytest.mark.parametrize("odd", [".*", "a.b", "$where", "(x)", "[ab]", "^", "x|y", "\\", "{$gt: ''}", "✓ ü"])
def test_prefix_characters_are_literal(rm: ResultsManager, odd: str) -> None:
    rm.set(f"{odd}/1", A)
    rm.set(f"{odd}x/2", A)
    rm.set("plain/3", A)
    assert rm.list_ids(odd) == [f"{odd}/1"]


def test_list_ids_sorted_and_unique(rm: ResultsManager) -> None:
    ids = [f"s/{i % 7}/{i}" for i in range(40)]
    for rid in reversed(ids):
        rm.set(rid, A, SetBehavior.OVERWRITE)
        rm.set(rid, A, SetBehavior.OVERWRITE)
    assert rm.list_ids("s") == sorted(set(ids))


def test_registered_namespace_is_used(rm: ResultsManager) -> None:
    @register_model(namespace="analytics")
    class Event(BaseModel):
        name: str

    rm.set("e/1", Event(name="click"))
    assert rm.get("e/1") == Event(name="click")
    assert rm.list_ids(namespace="analytics") == ["e/1"]
    assert rm.list_ids(namespace="default") == []
    assert rm.exists("e/1", namespace="analytics")


def test_strict_namespace(rm: ResultsManager) -> None:
    class Shared(BaseModel):
        v: int

    register_model(Shared, namespace="ns1")
    register_model(Shared, namespace="ns2")
    assert rm.set("shared/1", Shared(v=1))  # non-strict picks one
    with pytest.raises(ValueError, match=r"^Cannot automatically determine namespace"):
        rm.set("shared/2", Shared(v=2), strict_namespace=True)
    assert not rm.exists("shared/2")
    assert rm.set("shared/3", Shared(v=3), namespace="ns2", strict_namespace=True)


def test_same_id_in_two_namespaces(rm: ResultsManager, kind: str) -> None:
    rm.set("dup", A, namespace="one")
    if kind.endswith("file"):
        # One id is one file: the second namespace meets the first result.
        with pytest.raises(FileExistsError):
            rm.set("dup", Other(name="x"), namespace="two")
        return
    rm.set("dup", Other(name="x"), namespace="two")
    assert rm.list_ids() == ["dup"]
    with pytest.raises(ValueError, match="one, two") as info:
        rm.get("dup")
    assert isinstance(info.value, AmbiguousResultError)
    assert rm.get("dup", namespace="two") == Other(name="x")
    assert rm.get("dup", Metrics) == A  # the model class says which
    assert rm.delete("dup", namespace="one") is True
    assert rm.get("dup") == Other(name="x")


@pytest.mark.parametrize("bad", ["", "a b", "$x", "a/b", "x" * 65, ".hidden", "a..b", "tab\t", "runs.", "a\x00"])
def test_invalid_namespace_is_refused(rm: ResultsManager, bad: str) -> None:
    with pytest.raises(ValueError) as info:
        rm.set("n/1", A, namespace=bad)
    assert isinstance(info.value, InvalidNamespaceError)
    for read in (rm.get, rm.exists, rm.delete):  # the same rule before any read, on every store
        with pytest.raises(InvalidNamespaceError):
            read("n/1", namespace=bad)
    with pytest.raises(InvalidNamespaceError):
        rm.list_ids(namespace=bad)
    assert rm.list_ids() == []


def test_unregistered_model_type(rm: ResultsManager) -> None:
    class Unlisted(BaseModel):
        v: int

    rm.set("u/1", Unlisted(v=1))
    with pytest.raises(ValueError, match=r"'Unlisted' is not registered.*default"):
        rm.get("u/1")
    assert rm.get("u/1", Unlisted) == Unlisted(v=1)


def test_stale_data_names_the_result(rm: ResultsManager) -> None:
    rm.set("stale/1", Other(name="x"))
    with pytest.raises(ValidationError, match="stale/1"):
        rm.get("stale/1", Metrics)


def test_unencodable_value_is_refused(rm: ResultsManager) -> None:
    class Blob:
        pass

    class Holder(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        blob: Blob

    with pytest.raises(TypeError) as info:
        rm.set("bad/1", Holder(blob=Blob()))
    assert isinstance(info.value, (UnsupportedTypeError, MongoResultsError))
    assert rm.list_ids() == []


def test_lossy_value_is_refused(rm: ResultsManager) -> None:
    from datetime import datetime

    class Ambiguous(BaseModel):
        when: Union[str, datetime]  # a datetime would come back as its text

    with pytest.raises(ValueError, match="when") as info:
        rm.set("lossy/1", Ambiguous(when=datetime(2026, 1, 1)))
    assert isinstance(info.value, LossyValueError)
    assert rm.list_ids() == []
    assert rm.set("lossy/2", Ambiguous(when="text"))


def test_secrets_need_opt_in(rm: ResultsManager) -> None:
    class Creds(BaseModel):
        token: SecretStr

    with pytest.raises(TypeError, match="store_secrets"):
        rm.set("creds/1", Creds(token=SecretStr("s3cret")))
    assert rm.list_ids() == []
    rm.backend.store_secrets = True
    rm.set("creds/1", Creds(token=SecretStr("s3cret")))
    assert rm.get("creds/1", Creds).token.get_secret_value() == "s3cret"


def test_not_a_model(rm: ResultsManager) -> None:
    with pytest.raises(TypeError):
        rm.set("x", {"loss": 1})  # type: ignore[arg-type]
    assert rm.list_ids() == []


def test_switching_backend_keeps_the_code(
    rm: ResultsManager, kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    rm.set("s/1", A)
    other = make_manager("async-mongomock" if kind.startswith(("async", "motor")) else "mongomock", request, tmp_path)
    original = rm.backend
    rm.backend = other.backend
    assert rm.list_ids() == []
    rm.set("s/1", B)
    rm.backend = original
    assert rm.get("s/1") == A
    other.clear()
    if isinstance(other, SyncView):
        other.shutdown()


class Lowered(BaseModel):
    model_config = ConfigDict(str_to_lower=True)
    name: str


class Short(BaseModel):
    model_config = ConfigDict(str_max_length=3)
    code: str


class FiniteOnly(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)
    value: float


@pytest.mark.parametrize(
    ("cls", "field", "raw"),
    [(Lowered, "name", "MiXeD"), (Short, "code", "toolong"), (FiniteOnly, "value", float("inf"))],
    ids=["str_to_lower", "str_max_length", "allow_inf_nan"],
)
def test_model_level_rules_are_kept_or_refused(rm: ResultsManager, cls: type[BaseModel], field: str, raw: Any) -> None:
    """A value assigned without validation reads back equal, or is refused before anything is written."""
    model = cls.model_construct(**{field: raw})  # skips validation, as an assignment can
    with pytest.raises(LossyValueError):
        rm.set("cfg/1", model)
    assert rm.list_ids() == []
    valid = cls.model_validate({field: {"name": "MiXeD", "code": "abc", "value": 1.5}[field]})
    assert rm.set("cfg/2", valid)
    assert rm.get("cfg/2", cls) == valid


def test_a_lone_surrogate_is_refused_before_anything_is_written(rm: ResultsManager) -> None:
    class Named(BaseModel):
        name: str

    with pytest.raises(InvalidIdError, match="lone surrogate"):
        rm.set("a/\ud800", A)
    with pytest.raises(LossyValueError, match="lone surrogate"):
        rm.set("a/b", Named(name="x\udfff"))
    with pytest.raises(InvalidIdError):
        rm.list_ids("a/\ud800")
    assert rm.list_ids() == []


def test_a_named_namespace_is_the_only_one_read(rm: ResultsManager) -> None:
    rm.set("n/1", A, namespace="one")
    rm.set("n/2", B, namespace="two")
    assert rm.get("n/1", namespace="one") == A
    with pytest.raises(ResultNotFoundError):
        rm.get("n/1", namespace="two")
    assert rm.get_many(["n/2"], namespace="two") == [B]
    with pytest.raises(FileNotFoundError, match="n/1"):
        rm.get_many(["n/1", "n/2"], namespace="two")
    assert not rm.exists("n/1", namespace="two") and rm.exists("n/1", namespace="one")
    assert [rid for rid, _ in rm.iter_results("n", namespace="two")] == ["n/2"]
    assert rm.delete("n/1", namespace="two") is False and rm.exists("n/1")


def test_iter_results_is_in_id_order_across_namespaces(rm: ResultsManager) -> None:
    for i in range(9):
        rm.set(f"o/{i}", Metrics(loss=i, accuracy=0, step=i), namespace=("one", "two", "three")[i % 3])
    listed = [rid for rid, _ in rm.iter_results("o", Metrics, batch_size=2)]
    assert listed == [f"o/{i}" for i in range(9)]
    assert [d["_id"] for d in rm.admin.documents("o")] == listed


def test_keep_existing_never_touches_what_is_stored(rm: ResultsManager, kind: str) -> None:
    assert rm.set("k/1", A, SetBehavior.KEEP_EXISTING) is True
    before = rm.admin.documents("k/1")[0]
    assert rm.set("k/1", B, SetBehavior.KEEP_EXISTING) is False  # different content: kept, no error
    assert rm.set("k/1", A, SetBehavior.KEEP_EXISTING) is False
    assert rm.get("k/1") == A and rm.admin.documents("k/1")[0]["updated_at"] == before["updated_at"]
    assert rm.set_many({"k/1": B, "k/2": B}, SetBehavior.KEEP_EXISTING) == [False, True]
    assert rm.get("k/1") == A and rm.get("k/2") == B
    if kind.endswith("file"):  # one result per id: another namespace's result is kept too
        assert rm.set("k/1", B, SetBehavior.KEEP_EXISTING, namespace="other") is False


class Before(BaseModel):
    x: int


class After(BaseModel):
    x: int
    y: int  # a required field added after results were stored


def test_results_that_no_longer_load_can_be_skipped_and_are_reported(rm: ResultsManager) -> None:
    rm.set("c/1", Before(x=1))
    rm.set("c/2", After(x=2, y=2))
    rm.set("c/3", Before(x=3))
    with pytest.raises(ValidationError):
        list(rm.iter_results("c", After))
    skipped: list[tuple[str, Exception]] = []
    with pytest.warns(SkippedResultsWarning, match="2 stored result"):
        assert list(rm.iter_results("c", After, on_error="skip", skipped=skipped)) == [("c/2", After(x=2, y=2))]
    assert [rid for rid, _ in skipped] == ["c/1", "c/3"] and isinstance(skipped[0][1], ValidationError)
    with pytest.warns(SkippedResultsWarning, match="1 stored result"):
        assert rm.get_many(["c/3", "c/2"], After, on_error="skip") == [After(x=2, y=2)]
    with pytest.raises(ValueError, match="on_error"):
        rm.get_many(["c/2"], After, on_error="ignore")  # type: ignore[call-overload]


def test_upgrade_rewrites_only_what_no_longer_loads_and_can_run_again(rm: ResultsManager) -> None:
    rm.set("u/1", Before(x=1))
    rm.set("u/2", After(x=2, y=20))
    rm.set("u/3", Before(x=3))
    rm.set("other/1", Before(x=9))

    def convert(old: dict[str, Any]) -> After:
        return After(x=old["x"], y=old["x"] * 10)

    done = rm.admin.upgrade("u", After, convert, old_types=["Before"])
    assert (done.upgraded, done.current, done.changed_meanwhile, done.other_types) == (2, 1, 0, 0)
    assert [m for _, m in rm.iter_results("u", After)] == [After(x=1, y=10), After(x=2, y=20), After(x=3, y=30)]
    assert rm.admin.documents("u/1")[0]["model_type"] == "After"
    assert rm.get("other/1", Before) == Before(x=9)  # outside the prefix: untouched
    again = rm.admin.upgrade("u", After, convert, old_types=["Before"])  # idempotent: an interrupted run is run again
    assert (again.upgraded, again.current) == (0, 3)
    with pytest.raises(TypeError, match="convert returned a Before"):
        rm.admin.upgrade("other", After, lambda old: Before(x=old["x"]), old_types=["Before"])


class Config(BaseModel):
    lr: float


def test_upgrade_leaves_other_model_types_under_the_prefix_alone(rm: ResultsManager) -> None:
    # A sweep's usual layout: several model types under one prefix.
    rm.set("exp/1/config", Config(lr=0.1))
    rm.set("exp/1/metrics", Before(x=1))
    rm.set("exp/2/config", Config(lr=0.2))
    rm.set("exp/2/metrics", After(x=5, y=50))  # stored as After and loads: current

    def convert(old: dict[str, Any]) -> After:
        return After(x=old["x"], y=-1)

    untouched = rm.admin.upgrade("exp", After, convert)  # no old type named: only results stored as After
    assert (untouched.upgraded, untouched.current, untouched.other_types) == (0, 1, 3)
    done = rm.admin.upgrade("exp", After, convert, old_types=["Before"])
    assert (done.upgraded, done.current, done.changed_meanwhile, done.other_types) == (1, 1, 0, 2)
    assert rm.get("exp/1/config", Config) == Config(lr=0.1) and rm.get("exp/2/config", Config) == Config(lr=0.2)
    assert [d["model_type"] for d in rm.admin.documents("exp")] == ["Config", "After", "Config", "After"]
    assert rm.get("exp/1/metrics", After) == After(x=1, y=-1)
    with pytest.raises(ValueError, match="old_types takes a list"):
        rm.admin.upgrade("exp", After, convert, old_types="Before")


def test_upgrade_whose_convert_fails_names_the_result_and_what_was_done(rm: ResultsManager) -> None:
    for i in range(1, 4):
        rm.set(f"f/{i}", Before(x=i))

    def convert(old: dict[str, Any]) -> After:
        if old["x"] == 3:
            raise KeyError("y")
        return After(x=old["x"], y=0)

    with pytest.raises(UpgradeFailedError, match=r"'f/3'.*KeyError.*2 result\(s\) were upgraded") as info:
        rm.admin.upgrade("f", After, convert, old_types=["Before"], batch_size=2)
    assert isinstance(info.value, ValueError) and info.value.result_id == "f/3" and info.value.upgraded == 2
    assert isinstance(info.value.__cause__, KeyError)
    assert [d["model_type"] for d in rm.admin.documents("f")] == ["After", "After", "Before"]  # the first two stay done
    done = rm.admin.upgrade("f", After, lambda old: After(x=old["x"], y=1), old_types=["Before"])
    assert (done.upgraded, done.current) == (1, 2)


def test_a_namespace_another_manager_creates_is_seen_at_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: for up to a second, get() answered one holder's value where two namespaces held the id."""
    same = uuid.uuid4()
    monkeypatch.setattr(uuid, "uuid4", lambda: same)  # both managers on one embedded store too
    first, second = make_manager(kind, request, tmp_path), make_manager(kind, request, tmp_path)
    m, n = Metrics(loss=1, accuracy=1), Metrics(loss=2, accuracy=2)
    try:
        first.set("seen/a", m, namespace="older")
        assert first.list_ids("seen") == ["seen/a"] and first.exists("seen/a")  # listed the namespaces
        second.set("miss/b", m, namespace="brand-new")
        assert first.list_ids("miss") == ["miss/b"]
        assert first.get("miss/b", Metrics) == m
        assert first.get_many(["miss/b"], Metrics) == [m]
        assert [rid for rid, _ in first.iter_results("miss", Metrics)] == ["miss/b"]
        assert [rid for rid, _ in first.find({"loss": 1}, "miss", Metrics)] == ["miss/b"]
        second.set("seen/c", m, namespace="newer")
        assert first.list_ids("seen") == ["seen/a", "seen/c"]  # not "seen/a" alone: the answer is whole
        if kind.endswith("file"):
            return  # one result per id there: the same id cannot be in two namespaces
        second.set("seen/a", n, namespace="newest")
        with pytest.raises(AmbiguousResultError):
            first.get("seen/a")
        assert first.delete("seen/c") and second.list_ids("seen") == ["seen/a"]
    finally:
        for manager in (first, second):
            if isinstance(manager, SyncView):
                manager.shutdown()
            else:
                manager.close()


class Numbers(BaseModel):
    price: Decimal
    zero: float
    either: Union[int, float]


EQUAL_NOT_SAME = [  # each pair equal as numbers, told apart by what get() gives back
    (Numbers(price=Decimal("1.0"), zero=-0.0, either=3), Numbers(price=Decimal("1.00"), zero=0.0, either=3.0)),
    (Numbers(price=Decimal("1.00"), zero=0.0, either=3.0), Numbers(price=Decimal("1.0"), zero=-0.0, either=3)),
]


def same(one: Numbers, other: Numbers) -> bool:
    """Equal and told apart by type, scale and sign, as a user who prints them sees them."""
    return (
        one == other
        and [repr(v) for v in one.model_dump().values()] == [repr(v) for v in other.model_dump().values()]
        and math.copysign(1, one.zero) == math.copysign(1, other.zero)
    )


@pytest.mark.parametrize("behavior", [SetBehavior.OVERWRITE, SetBehavior.SKIP_IF_EXISTS])
@pytest.mark.parametrize(("old", "new"), EQUAL_NOT_SAME)
def test_an_overwrite_with_values_equal_as_numbers_stores_the_new_ones(
    rm: ResultsManager, engine: str, behavior: SetBehavior, old: Numbers, new: Numbers
) -> None:
    """Before: DocumentDB's $set kept the old values (1.0 for 1.00, 0.0 for -0.0, 3 for 3.0) and said True."""
    needs_mongodb_semantics(engine, "stores -0.0 as 0.0, so it refuses -0.0 before writing (test below)")
    register_model(Numbers)
    rm.set("n", old)
    assert rm.set("n", new, behavior) is True
    assert same(rm.get("n", Numbers), new)
    assert rm.set("n", new, SetBehavior.SKIP_IF_EXISTS) is False  # the digest and the data agree
    assert rm.set("n", new, SetBehavior.RAISE_IF_DIFFERENT) is True
    with pytest.raises(FileExistsError):
        rm.set("n", old, SetBehavior.RAISE_IF_DIFFERENT)


def test_negative_zero_comes_back_negative_or_is_refused(rm: ResultsManager, engine: str) -> None:
    register_model(Numbers)
    value = Numbers(price=Decimal(1), zero=-0.0, either=0)
    if engine == "ferretdb1":
        with pytest.raises(LossyValueError, match=r"-0\.0"):
            rm.set("z", value)
        assert not rm.exists("z")
        return
    rm.set("z", value)
    assert math.copysign(1, rm.get("z", Numbers).zero) == -1


def test_upgrade_stores_values_equal_as_numbers_exactly(rm: ResultsManager, engine: str) -> None:
    needs_mongodb_semantics(engine, "stores -0.0 as 0.0, so it refuses -0.0 before writing")
    register_model(Numbers)
    old, new = EQUAL_NOT_SAME[0]
    rm.set("n", old)
    rm.admin.store("m", "Numbers", rm.admin.documents("n")[0]["data"] | {"zero": "not a float"})
    done = rm.admin.upgrade(None, Numbers, lambda data: new)
    assert done.upgraded == 1 and same(rm.get("m", Numbers), new)
