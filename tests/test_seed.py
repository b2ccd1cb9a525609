"""Backends written for ``results_manager`` under both managers: behaviours, coroutines, signatures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mongo_results import (
    AsyncMongoBackend,
    AsyncResultsBackend,
    AsyncResultsManager,
    MongoBackend,
    MongoResultsError,
    ResultsBackend,
    ResultsManager,
    SetBehavior,
    register_model,
)
from mongo_results.errors import SkippedResultsWarning
from mongo_results.stores.adapter import behavior_enum

from . import seed_backends as seed
from .models import Metrics, Other

A = Metrics(loss=1, accuracy=0.5)
B = Metrics(loss=2, accuracy=0.5)


def stored_file(base: Path, rid: str) -> dict[str, Any]:
    return json.loads((base / f"{rid}.json").read_text())  # type: ignore[no-any-return]


# -- behaviours reach the backend as members of its own enum ---------------------------------


@pytest.mark.parametrize(
    ("behavior", "same", "outcome", "stored"),
    [
        (SetBehavior.RAISE_IF_EXISTS, True, FileExistsError, A),
        (SetBehavior.RAISE_IF_EXISTS, False, FileExistsError, A),
        (SetBehavior.RAISE_IF_DIFFERENT, True, True, A),
        (SetBehavior.RAISE_IF_DIFFERENT, False, FileExistsError, A),
        (SetBehavior.SKIP_IF_EXISTS, True, False, A),
        (SetBehavior.SKIP_IF_EXISTS, False, True, B),
        (SetBehavior.OVERWRITE, True, True, A),
        (SetBehavior.OVERWRITE, False, True, B),
        (SetBehavior.KEEP_EXISTING, True, False, A),
        (SetBehavior.KEEP_EXISTING, False, False, A),
    ],
)
def test_the_seed_file_backend_gives_the_spec_table_outcomes(
    tmp_path: Path, behavior: SetBehavior, same: bool, outcome: Any, stored: Metrics
) -> None:
    register_model(Metrics)
    rm = ResultsManager(backend=seed.FileBackend(tmp_path))
    assert rm.set("run/1", A, behavior) is True  # nothing stored: every behaviour writes
    before = (tmp_path / "run" / "1.json").stat().st_mtime_ns
    new = A if same else B
    if outcome is FileExistsError:
        with pytest.raises(FileExistsError):
            rm.set("run/1", new, behavior)
    else:
        assert rm.set("run/1", new, behavior) is outcome
    assert rm.get("run/1") == stored
    assert stored_file(tmp_path, "run/1") == {
        "model_type": "Metrics",
        "namespace": "default",
        "data": stored.model_dump(),
    }
    if outcome is False:  # skipped: the file was not rewritten
        assert (tmp_path / "run" / "1.json").stat().st_mtime_ns == before


@pytest.mark.parametrize("backend", [seed.MemoryBackend, seed.StrMemoryBackend])
def test_backends_comparing_with_is_get_their_own_members(backend: type[seed.MemoryBackend]) -> None:
    store = backend()
    rm = ResultsManager(backend=store)
    assert rm.set("a", A)
    with pytest.raises(FileExistsError):
        rm.set("a", B)
    assert rm.set("a", A, SetBehavior.SKIP_IF_EXISTS) is False
    with pytest.raises(FileExistsError):
        rm.set("a", B, SetBehavior.RAISE_IF_DIFFERENT)
    assert rm.set("a", B, SetBehavior.SKIP_IF_EXISTS) is True
    assert store.stored == {"a": B}
    assert rm.set_many({"a": A, "b": A}, SetBehavior.KEEP_EXISTING) == [False, True]
    assert store.stored == {"a": B, "b": A}


def test_the_backends_enum_is_found_by_default_annotation_or_module() -> None:
    assert behavior_enum(seed.FileBackend.__new__(seed.FileBackend)) is seed.SetBehavior  # the default
    assert behavior_enum(seed.StrMemoryBackend()) is seed.StrSetBehavior  # the annotation
    assert behavior_enum(seed.MemoryBackend()) is seed.SetBehavior  # the module's SetBehavior

    class Unnamed:
        def set(self, *args: Any) -> bool:
            return True

    assert behavior_enum(Unnamed()) is SetBehavior


def test_a_behaviour_the_backends_enum_lacks_is_refused() -> None:
    class Partial:
        from enum import Enum as _Enum

        class Behavior(_Enum):
            OVERWRITE = "overwrite"

        def set(self, result_id: str, data: Any, behavior: Any = Behavior.OVERWRITE, *rest: Any) -> bool:
            return True

        get = exists = list_ids = delete = clear = set

    rm = ResultsManager(backend=Partial())
    assert rm.set("a", A, SetBehavior.OVERWRITE)
    with pytest.raises(ValueError, match="has no RAISE_IF_EXISTS") as info:
        rm.set("a", A)
    assert isinstance(info.value, MongoResultsError)
    with pytest.raises(ValueError, match="not a SetBehavior"):
        rm.set("a", A, "sometimes")  # type: ignore[arg-type]


# -- coroutine backends ----------------------------------------------------------------------


def test_every_method_awaits_an_async_seed_backend(tmp_path: Path) -> None:
    register_model(Metrics)
    backend = seed.AsyncSqliteBackend(tmp_path / "results.db")

    async def scenario() -> None:
        rm = AsyncResultsManager(backend=backend)
        assert await rm.set("s/1", A) is True
        with pytest.raises(FileExistsError):
            await rm.set("s/1", B)
        assert await rm.set("s/1", A, SetBehavior.RAISE_IF_DIFFERENT) is True
        with pytest.raises(FileExistsError):
            await rm.set("s/1", B, SetBehavior.RAISE_IF_DIFFERENT)
        assert await rm.set("s/1", A, SetBehavior.SKIP_IF_EXISTS) is False
        assert await rm.set("s/1", B, SetBehavior.SKIP_IF_EXISTS) is True
        assert await rm.set("s/1", A, SetBehavior.KEEP_EXISTING) is False
        assert await rm.set("s/1", A, SetBehavior.OVERWRITE) is True
        assert await rm.get("s/1") == A
        outcomes = await rm.set_many({"s/1": B, "s/2": B})
        assert isinstance(outcomes[0], FileExistsError) and outcomes[1] is True
        assert await rm.get_many(["s/2", "s/1"]) == [B, A]
        assert await rm.exists("s/2") and not await rm.exists("s/9")
        assert await rm.list_ids("s") == ["s/1", "s/2"]
        assert [rid async for rid, _ in rm.iter_results("s", batch_size=1)] == ["s/1", "s/2"]
        with pytest.raises(FileNotFoundError):
            await rm.get("s/9")
        assert await rm.delete("s/1") and not await rm.delete("s/1")
        await rm.clear()
        assert await rm.list_ids() == []
        await rm.close()

    asyncio.run(scenario())
    assert backend._run("SELECT id FROM results") == []


def test_a_sync_manager_refuses_an_async_seed_backend(tmp_path: Path) -> None:
    backend = seed.AsyncSqliteBackend(tmp_path / "results.db")
    with pytest.raises(TypeError, match="AsyncResultsManager") as info:
        ResultsManager(backend=backend)
    assert isinstance(info.value, MongoResultsError)
    rm = ResultsManager(backend=seed.MemoryBackend())
    with pytest.raises(TypeError, match="AsyncResultsManager"):
        rm.backend = backend


def test_a_sync_method_that_returns_an_awaitable_is_refused_when_called() -> None:
    class Sneaky(seed.MemoryBackend):
        def exists(self, result_id):
            return asyncio.sleep(0, True)

    with pytest.raises(TypeError, match=r"Sneaky\.exists returned an awaitable"):
        ResultsManager(backend=Sneaky()).exists("a")


def test_calls_that_need_a_store_are_refused_with_a_library_error() -> None:
    rm = ResultsManager(backend=seed.MemoryBackend())
    for call in (lambda: list(rm.find({"loss": 1})), rm.admin.documents, rm.admin.engine, rm.to_dataframe):
        with pytest.raises(TypeError, match="needs a store") as info:
            call()
        assert isinstance(info.value, MongoResultsError)


def test_a_sync_seed_backend_under_the_async_manager(tmp_path: Path) -> None:
    register_model(Metrics)

    async def scenario() -> list[str]:
        rm = AsyncResultsManager(backend=seed.FileBackend(tmp_path))
        assert await rm.set("x/1", A)
        assert await rm.set("x/1", A, SetBehavior.SKIP_IF_EXISTS) is False
        await rm.close()
        return await rm.list_ids()

    assert asyncio.run(scenario()) == ["x/1"]


# -- the seed's get signature ----------------------------------------------------------------


def test_get_many_and_iter_results_call_get_with_the_seeds_signature(tmp_path: Path) -> None:
    register_model(Metrics)
    register_model(Other)
    backend = seed.FileBackend(tmp_path)
    rm = ResultsManager(backend=backend)
    rm.set_many({"g/1": A, "g/2": B, "g/3": Other(name="x")})
    assert rm.get_many(["g/2", "g/1"]) == [B, A]
    assert rm.get_many(["g/1"], Metrics, "default") == [A]
    with pytest.raises(FileNotFoundError):
        rm.get_many(["g/1", "g/9"])
    # g/3 stored as Metrics no longer validates; an unregistered type is a ValueError in the seed
    (tmp_path / "g" / "3.json").write_text(json.dumps({"model_type": "Gone", "namespace": "default", "data": {}}))
    skipped: list[tuple[str, Exception]] = []
    with pytest.warns(SkippedResultsWarning):
        assert rm.get_many(["g/1", "g/3"], on_error="skip", skipped=skipped) == [A]
    assert [rid for rid, _ in skipped] == ["g/3"]
    with pytest.raises(ValueError, match="not registered"):
        rm.get_many(["g/3"])
    skipped = []
    with pytest.warns(SkippedResultsWarning):
        found = list(rm.iter_results("g", batch_size=2, on_error="skip", skipped=skipped))
    assert found == [("g/1", A), ("g/2", B)]
    assert [rid for rid, _ in skipped] == ["g/3"]


# -- writing a backend: the seed's base classes ----------------------------------------------


class DictBackend(ResultsBackend[BaseModel]):
    def __init__(self) -> None:
        self.stored: dict[str, BaseModel] = {}

    def set(
        self,
        result_id: Any,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        if result_id in self.stored:
            if behavior == SetBehavior.RAISE_IF_EXISTS:
                raise FileExistsError(result_id)
            if behavior == SetBehavior.SKIP_IF_EXISTS and self.stored[result_id] == data:
                return False
        self.stored[result_id] = data
        return True

    def get(self, result_id: Any, model_class: Any = None, namespace: str | None = None) -> BaseModel:
        if result_id not in self.stored:
            raise FileNotFoundError(result_id)
        return self.stored[result_id]

    def exists(self, result_id: Any) -> bool:
        return result_id in self.stored

    def list_ids(self, prefix: Any = None) -> list[str]:
        return [r for r in self.stored if prefix is None or r.startswith(f"{prefix}/")]

    def delete(self, result_id: Any) -> bool:
        return self.stored.pop(result_id, None) is not None

    def clear(self) -> None:
        self.stored.clear()


class AsyncDictBackend(AsyncResultsBackend[BaseModel]):
    def __init__(self) -> None:
        self.sync = DictBackend()

    async def set(
        self,
        result_id: Any,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        return self.sync.set(result_id, data, behavior, namespace, strict_namespace)

    async def get(self, result_id: Any, model_class: Any = None, namespace: str | None = None) -> BaseModel:
        return self.sync.get(result_id, model_class, namespace)

    async def exists(self, result_id: Any) -> bool:
        return self.sync.exists(result_id)

    async def list_ids(self, prefix: Any = None) -> list[str]:
        return self.sync.list_ids(prefix)

    async def delete(self, result_id: Any) -> bool:
        return self.sync.delete(result_id)

    async def clear(self) -> None:
        self.sync.clear()


def test_a_subclass_of_results_backend_works_through_backend() -> None:
    import mongo_results.backends

    assert mongo_results.backends.ResultsBackend is ResultsBackend
    with pytest.raises(TypeError, match="abstract"):
        ResultsBackend()  # type: ignore[abstract]
    backend = DictBackend()
    rm = ResultsManager(backend=backend)
    assert rm.set("d/1", A) and rm.set("d/1", A, SetBehavior.SKIP_IF_EXISTS) is False
    with pytest.raises(FileExistsError):
        rm.set("d/1", B)
    # KEEP_EXISTING reaches the backend as RAISE_IF_EXISTS: a backend knows the seed's four only
    assert rm.set("d/1", B, SetBehavior.KEEP_EXISTING) is False and backend.stored["d/1"] == A
    assert rm.get_many(["d/1"]) == [A] and rm.list_ids("d") == ["d/1"]
    assert rm.delete("d/1") and not rm.exists("d/1")

    async def scenario() -> list[str]:
        arm = AsyncResultsManager(backend=AsyncDictBackend())
        assert await arm.set("e/1", A)
        assert await arm.set("e/1", B, SetBehavior.KEEP_EXISTING) is False
        assert await arm.get("e/1") == A
        return await arm.list_ids("e")

    assert asyncio.run(scenario()) == ["e/1"]


# -- from_uri --------------------------------------------------------------------------------


def test_from_uri_builds_the_stores() -> None:
    backend = MongoBackend.from_uri("mongomock://localhost/from_uri_db", collection_prefix="fu_")
    assert isinstance(backend, MongoBackend) and backend.database_name == "from_uri_db"
    rm = ResultsManager(backend=backend)
    assert rm.set("u/1", A) and rm.get("u/1", Metrics) == A
    rm.close()

    async def scenario() -> Metrics:
        arm = AsyncResultsManager(backend=AsyncMongoBackend.from_uri("mongomock://localhost/from_uri_async"))
        await arm.set("u/1", B)
        found = await arm.get("u/1", Metrics)
        await arm.close()
        return found

    assert asyncio.run(scenario()) == B
    with pytest.raises(ValueError, match="Unsupported"):
        MongoBackend.from_uri("/not/a/uri")
    with pytest.raises(TypeError, match="URI string"):
        AsyncMongoBackend.from_uri(42)  # type: ignore[arg-type]


# Found by the contract's state machine (tests/test_contract.py), kept as plain regressions.


def test_the_librarys_id_rules_come_before_the_backend(tmp_path: Path) -> None:
    rm = ResultsManager(backend=seed.FileBackend(tmp_path / "seed"))
    outcomes = rm.set_many([("a/1", Metrics(loss=1, accuracy=1)), ("a/../b", Metrics(loss=2, accuracy=1))])
    assert outcomes[0] is True and isinstance(outcomes[1], ValueError)
    assert not (tmp_path / "seed" / "b.json").exists()  # the seed's backend would have taken it as a path
    with pytest.raises(ValueError, match=r"'\.\.' segment"):
        rm.get("a/../b")
    assert rm.list_ids() == ["a/1"]


def test_a_value_that_is_not_a_model_is_a_type_error_before_the_backend(tmp_path: Path) -> None:
    rm = ResultsManager(backend=seed.FileBackend(tmp_path / "seed"))
    with pytest.raises(TypeError, match="pydantic model"):
        rm.set("c", {"x": 1})  # type: ignore[arg-type]
    [outcome] = rm.set_many([("c", {"x": 1})])  # type: ignore[list-item]
    assert isinstance(outcome, MongoResultsError) and isinstance(outcome, TypeError)
    assert rm.list_ids() == []


def test_list_ids_keeps_the_librarys_promise_over_what_the_backend_lists(tmp_path: Path) -> None:
    rm = ResultsManager(backend=seed.FileBackend(tmp_path / "seed"))
    for rid in ("a", "a/b", "a-1", "b"):
        rm.set(rid, Metrics(loss=1, accuracy=1))
    assert rm.list_ids("a") == ["a", "a/b"]  # the seed's own list_ids("a") has only what is below a/
    assert rm.list_ids("a/") == ["a", "a/b"] and rm.list_ids() == ["a", "a-1", "a/b", "b"]
