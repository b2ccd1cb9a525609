"""Sweeps on joblib, Dask and Ray: a model class sent by value keeps its namespace.

These frameworks pickle what a script defines by value (cloudpickle), so a worker gets the
class without its ``register_model`` having run there. Each sweep is a script run as
``__main__`` in a subprocess, as a user runs one: 40 results stored by the workers, then
read back without a model class, by fresh workers and by the script itself.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from pydantic import BaseModel
from pymongo import MongoClient
from pymongo.database import Database

from mongo_results import (
    ResultsManager,
    clear_registry,
    find_model_namespace,
    get_indexes,
    get_model_class,
    get_namespaces,
    register_model,
)

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json
import sys

from pydantic import BaseModel

from mongo_results import MongoBackend, ResultsManager, register_model


@register_model(namespace="evaluation")
class Score(BaseModel):
    seed: int
    loss: float


def expected(seed):
    return Score(seed=seed, loss=1 / (seed + 1))


def store(rm, seed):
    return rm.set(f"sweep/seed={seed}/score", expected(seed))


def read(rm, seed):
    try:
        return rm.get(f"sweep/seed={seed}/score") == expected(seed)  # no model class: the registry's
    except Exception as exc:
        return type(exc).__name__


{framework}

if __name__ == "__main__":
    where = json.loads(sys.argv[1])
    rm = ResultsManager(where["path"]) if "path" in where else ResultsManager(
        backend=MongoBackend(where["uri"], database=where["database"])
    )
    written = sweep(store, rm, range(40))
    fresh_workers()
    read_in_workers = sweep(read, rm, range(40))
    read_in_parent = [read(rm, seed) for seed in range(40)]
    ids = rm.list_ids("sweep")
    print(json.dumps({
        "written": sum(written),
        "namespaces": sorted(d["namespace"] for d in rm.admin.documents("sweep", with_data=False)),
        "listed": rm.list_ids("sweep", namespace="evaluation") == ids and len(ids),
        "read_in_workers": sorted(set(read_in_workers), key=str),
        "read_in_parent": sorted(set(read_in_parent), key=str),
    }))
    done()
"""

JOBLIB = """
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor


def sweep(function, rm, seeds):
    return Parallel(n_jobs=2, backend="loky")(delayed(function)(rm, seed) for seed in seeds)


def fresh_workers():
    get_reusable_executor().shutdown(wait=True)  # the reads run in workers that never stored


def done():
    pass
"""

DASK = """
from distributed import Client

client = Client(sys.argv[2])  # the test's cluster, as a script submits to a running one


def sweep(function, rm, seeds):
    seeds = list(seeds)
    return client.gather(client.map(function, [rm] * len(seeds), seeds, pure=False))


def fresh_workers():
    # The reads run on a second cluster, whose workers never stored (a restart of the first
    # one can leave a cancelled task that never finishes).
    global client
    client.close()
    client = Client(sys.argv[3])


def done():
    client.close()
"""

DASK_OWN_CLUSTER = """
from distributed import Client, LocalCluster


def sweep(function, rm, seeds):
    seeds = list(seeds)
    with (
        LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        return client.gather(client.map(function, [rm] * len(seeds), seeds, pure=False))


def fresh_workers():
    pass  # each sweep starts its own


def done():
    pass
"""

RAY = """
import ray

ray.init(address=sys.argv[2], logging_level="error")


def sweep(function, rm, seeds):
    remote = ray.remote(function)
    return ray.get([remote.remote(rm, seed) for seed in seeds])


def fresh_workers():
    pass  # a Ray worker runs many tasks; the reads come from the cluster's pool as it is


def done():
    ray.shutdown()
"""


def run_sweep(tmp_path: Path, framework: str, where: dict[str, str], *extra: str) -> dict[str, Any]:
    script = tmp_path / "sweep.py"
    script.write_text(SCRIPT.replace("{framework}", textwrap.dedent(framework)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script), json.dumps(where), *extra],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def check(report: dict[str, Any]) -> None:
    assert report["namespaces"] == ["evaluation"] * 40  # before the fix: ["default"] * 40
    assert report["written"] == 40
    assert report["listed"] == 40
    assert report["read_in_workers"] == [True]  # before: ["ModelNotRegisteredError"]
    assert report["read_in_parent"] == [True]


def in_server_collections(uri: str, database: str) -> dict[str, int]:
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri) as client:
        db: Database[dict[str, Any]] = client[database]
        names = [name for name in db.list_collection_names() if name.startswith("results.")]
        return {name: db[name].count_documents({}) for name in names}


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[tuple[str, str]]:
    """Two Dask clusters of two worker processes each, for the module's sweeps: their schedulers'
    addresses (the second runs the reads)."""
    from distributed import LocalCluster

    options: dict[str, Any] = {"n_workers": 2, "processes": True, "threads_per_worker": 1, "dashboard_address": ":0"}
    with LocalCluster(**options) as writes, LocalCluster(**options) as reads:
        yield writes.scheduler_address, reads.scheduler_address


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """One local Ray cluster (two CPUs) for the module's sweeps: its address."""
    ray = pytest.importorskip("ray")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Ray's own, at start-up: not what these tests look at
        context = ray.init(num_cpus=2, include_dashboard=False, logging_level="error")
    yield context.address_info["gcs_address"]
    ray.shutdown()


FRAMEWORKS = ["joblib", "dask", "ray"]


def framework_args(name: str, request: pytest.FixtureRequest) -> tuple[str, tuple[str, ...]]:
    if name == "joblib":
        return JOBLIB, ()
    if name == "dask":
        return DASK, tuple(request.getfixturevalue("dask_cluster"))
    return RAY, (request.getfixturevalue("ray_cluster"),)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_sweep_on_the_file_store(framework: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    code, extra = framework_args(framework, request)
    check(run_sweep(tmp_path, code, {"path": str(tmp_path / "store")}, *extra))
    stored = json.loads((tmp_path / "store" / "sweep" / "seed=7" / "score.json").read_text())
    assert stored["namespace"] == "evaluation"


@pytest.mark.real_server
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_sweep_on_the_server(
    framework: str, request: pytest.FixtureRequest, server_db: tuple[str, str], tmp_path: Path
) -> None:
    code, extra = framework_args(framework, request)
    uri, name = server_db
    check(run_sweep(tmp_path, code, {"uri": uri, "database": name}, *extra))
    assert in_server_collections(uri, name) == {"results.evaluation": 40}


def test_a_script_that_starts_its_own_dask_cluster(tmp_path: Path) -> None:
    """Its workers are spawned: each imports the script again, then gets the class by value too."""
    check(run_sweep(tmp_path, DASK_OWN_CLUSTER, {"path": str(tmp_path / "store")}))


# -- The rules, with a class unpickled by value in a fresh process (where it was never registered).


@pytest.fixture(scope="module")
def fresh_process() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def elsewhere(
    pool: ProcessPoolExecutor, task: Callable[..., Any], *args: Any, first: Callable[[], object] = lambda: None
) -> Any:
    """``task(*args)`` in the fresh process, sent by value as joblib and Dask send it, after ``first()`` ran there.

    Returns ``(answer, the messages of the warnings raised)``.
    """
    return pool.submit(_run_by_value, cloudpickle.dumps(first), cloudpickle.dumps((task, args))).result()


def _run_by_value(first: bytes, payload: bytes) -> Any:
    clear_registry()  # the process serves every test of the module
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cloudpickle.loads(first)()
        task, args = cloudpickle.loads(payload)
        answer = task(*args)
    return answer, [str(w.message) for w in caught]


def model(name: str, base: type[BaseModel] = BaseModel, module: str = __name__, **fields: type) -> type[BaseModel]:
    """A model class no module holds, so sent by value (and built here: pydantic keeps the
    namespace a class is defined in, and a test's holds the process pool, which does not pickle)."""
    return type(name, (base,), {"__annotations__": fields, "__module__": module})


def test_a_class_in_several_namespaces_picks_as_where_it_was_registered(
    fresh_process: ProcessPoolExecutor, tmp_path: Path
) -> None:
    register_model(model("Other", x=int), namespace="zeta")

    Shared = model("Shared", v=int)
    register_model(Shared, namespace="alpha")
    register_model(Shared, namespace="zeta")  # this registry's order: zeta (created first), alpha
    register_model(Shared)
    assert find_model_namespace(Shared) == "zeta"
    rm = ResultsManager(tmp_path / "store")

    def store(rm: ResultsManager) -> tuple[str | None, str, str]:
        rm.set("picked", Shared(v=1))
        refused = "stored"
        try:
            rm.set("strict", Shared(v=2), strict_namespace=True)
        except ValueError as exc:
            refused = str(exc)
        return find_model_namespace(Shared), rm.admin.documents("picked")[0]["namespace"], refused

    def alpha_first() -> None:  # there the registry's order is alpha, zeta
        register_model(model("Before", y=int), namespace="alpha")

    (there, stored, refused), said = elsewhere(fresh_process, store, rm, first=alpha_first)
    assert there == stored == "zeta"
    assert refused.startswith("Cannot automatically determine namespace for Shared")
    assert not rm.exists("strict") and said == []


REPLACING = "Model 'Score' is already registered in namespace 'evaluation'. Replacing it with a new class"


@pytest.mark.parametrize(
    ("module", "there", "said"),
    [
        # The same definition met twice: a spawned Dask worker imports the script as __mp_main__.
        ("__main__", {"module": "__mp_main__", "seed": int, "loss": float}, []),
        ("lab.models", {"module": "lab.models", "seed": int, "loss": float}, []),
        # Another class of the same structure: replaced as a re-registration is, with its warning.
        ("lab.models", {"module": "other", "seed": int, "loss": float}, [REPLACING]),
        ("__main__", {"module": "lab.models", "seed": int, "loss": float}, [REPLACING]),
    ],
)
def test_a_class_of_the_same_name_is_never_silently_replaced(
    module: str, there: dict[str, Any], said: list[str], fresh_process: ProcessPoolExecutor, tmp_path: Path
) -> None:
    Score = register_model(model("Score", module=module, seed=int, loss=float), namespace="evaluation")
    rm = ResultsManager(tmp_path / "store")

    def meet(rm: ResultsManager) -> tuple[bool, bool]:
        return get_model_class("Score", "evaluation") is Score, rm.set("s", Score(seed=1, loss=0))

    def register_there() -> None:
        register_model(model("Score", **there), namespace="evaluation")

    (found, stored), warned = elsewhere(fresh_process, meet, rm, first=register_there)
    assert found and stored and rm.admin.documents("s")[0]["namespace"] == "evaluation"
    assert [w[: len(REPLACING)] for w in warned] == said


def test_a_clashing_class_of_the_same_name_is_refused(fresh_process: ProcessPoolExecutor, tmp_path: Path) -> None:
    Score = register_model(model("Score", seed=int, loss=float), namespace="evaluation")
    rm = ResultsManager(tmp_path / "store")

    def meet(rm: ResultsManager) -> list[str]:
        seen = []
        for attempt in (lambda: get_model_class("Score", "evaluation"), lambda: rm.set("s", Score(seed=1, loss=0))):
            try:
                seen.append(repr(attempt()))
            except ValueError as exc:
                seen.append(f"{type(exc).__name__}: {exc}")
        return seen

    def other_fields() -> None:
        register_model(model("Score", seed=int), namespace="evaluation")

    (get, store), said = elsewhere(fresh_process, meet, rm, first=other_fields)
    assert get.startswith("ModelConflictError: Model 'Score' is already registered in namespace 'evaluation'")
    assert store.startswith("InvalidNamespaceError: Cannot automatically determine namespace for Score")
    assert "already registered in namespace 'evaluation' with different fields" in store
    assert not rm.exists("s") and said == []


def test_what_travels_is_the_registration_as_it_stands(fresh_process: ProcessPoolExecutor) -> None:
    Score = register_model(model("Score", loss=float), namespace="evaluation", indexes=["loss"])
    Subscore = model("Subscore", Score)  # inherits the class, not its registration
    Cleared = register_model(model("Cleared", x=int), namespace="gone")
    clear_registry("gone")

    def look(*classes: type[BaseModel]) -> tuple[list[str | None], list[str], list[tuple[str, int]]]:
        return [find_model_namespace(c) for c in classes], sorted(get_namespaces()), get_indexes("evaluation")

    (found, namespaces, indexes), said = elsewhere(fresh_process, look, Score, Subscore, Cleared)
    assert found == [find_model_namespace(c) for c in (Score, Subscore, Cleared)] == ["evaluation", None, None]
    assert namespaces == ["evaluation"] and indexes == [("loss", 1)] and said == []


# -- Models as scripts write them: nested classes, enums, generics and unions defined in __main__.

MATRIX = """
import enum
import json
import os
import sys
from typing import Annotated, Generic, Literal, Optional, TypeVar, Union

from pydantic import BaseModel, Field

from tests.models import Point  # an importable module, as the workers have it
from mongo_results import MongoBackend, ResultsManager, register_model


class Kind(str, enum.Enum):
    CNN = "cnn"
    MLP = "mlp"


class Config(BaseModel):
    lr: float
    kind: Kind


T = TypeVar("T")


class Box(BaseModel, Generic[T]):
    item: T


class Cat(BaseModel):
    pet: Literal["cat"] = "cat"
    lives: int


class Dog(BaseModel):
    pet: Literal["dog"] = "dog"
    good: bool


@register_model(namespace="matrix")
class Flat(BaseModel):
    seed: int
    loss: float


@register_model(namespace="matrix")
class Nested(BaseModel):
    config: Config


@register_model(namespace="matrix")
class WithEnum(BaseModel):
    kind: Kind


@register_model(namespace="matrix")
class ListOfModels(BaseModel):
    history: list[Config]


@register_model(namespace="matrix")
class OptionalNested(BaseModel):
    config: Optional[Config] = None


@register_model(namespace="matrix")
class WithGeneric(BaseModel):
    box: Box[Config]


@register_model(namespace="matrix")
class Discriminated(BaseModel):
    animal: Annotated[Union[Cat, Dog], Field(discriminator="pet")]


@register_model(namespace="matrix")
class FromModule(BaseModel):
    point: Point


def results(seed):
    config = Config(lr=0.1 * seed, kind=Kind.CNN if seed % 2 else Kind.MLP)
    return {
        "flat": Flat(seed=seed, loss=1 / (seed + 1)),
        "nested": Nested(config=config),
        "enum": WithEnum(kind=config.kind),
        "list": ListOfModels(history=[config, config]),
        "optional": OptionalNested(config=config if seed % 2 else None),
        "generic": WithGeneric(box=Box[Config](item=config)),
        "union": Discriminated(animal=Cat(lives=seed) if seed % 2 else Dog(good=True)),
        "module": FromModule(point=Point(x=seed, y=seed / 2)),
    }


def store(rm, seed):
    return sum(rm.set(f"m/seed={seed}/{kind}", model) for kind, model in results(seed).items())


def run(framework, rm, seeds):
    if framework == "joblib":
        from joblib import Parallel, delayed

        return Parallel(n_jobs=2, backend="loky")(delayed(store)(rm, s) for s in seeds)
    if framework == "dask":
        from distributed import Client

        with Client(sys.argv[3]) as client:
            return client.gather(client.map(store, [rm] * len(seeds), seeds, pure=False))
    if framework == "dask-script":  # its workers import this script again, as __mp_main__
        from distributed import Client, LocalCluster

        options = {"n_workers": 2, "processes": True, "threads_per_worker": 1, "dashboard_address": ":0"}
        with LocalCluster(**options) as cluster, Client(cluster) as client:
            return client.gather(client.map(store, [rm] * len(seeds), seeds, pure=False))
    if framework == "ray":
        import ray

        # Ray's workers see the modules a job ships with it (here, the path of the importable one).
        shipped = {"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}}
        ray.init(address=sys.argv[3], logging_level="error", runtime_env=shipped)
        try:
            return ray.get([ray.remote(store).remote(rm, s) for s in seeds])
        finally:
            ray.shutdown()
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(framework)) as pool:
        return list(pool.map(store, [rm] * len(seeds), seeds))


if __name__ == "__main__":
    where = json.loads(sys.argv[1])
    rm = ResultsManager(backend=MongoBackend(where["uri"], database=where["database"]))
    seeds = list(range(4))
    written = run(sys.argv[2], rm, seeds)
    expected = {f"m/seed={s}/{k}": m for s in seeds for k, m in results(s).items()}
    read = {rid: rm.get(rid) for rid in rm.list_ids("m")}
    print(json.dumps({
        "written": sum(written),
        "equal": read == expected,
        "classes": sorted({type(m).__name__ for m in read.values()}),
        "namespaces": sorted({d["namespace"] for d in rm.admin.documents("m", with_data=False)}),
    }))
"""


@pytest.mark.real_server
@pytest.mark.parametrize("framework", ["joblib", "dask", "dask-script", "ray", "spawn", "forkserver"])
def test_models_a_script_defines_on_every_framework(
    framework: str, request: pytest.FixtureRequest, server_db: tuple[str, str], tmp_path: Path
) -> None:
    """Nested models, enums, lists of models, generics and unions from ``__main__``: stored once, read back equal.

    Before, a class that arrived by value (joblib, Dask, Ray) met the registry's copy of its
    nested classes as other objects, and every ``set`` failed with ModelConflictError.
    """
    uri, name = server_db
    extra: tuple[str, ...] = ()
    if framework == "dask":
        extra = (request.getfixturevalue("dask_cluster")[0],)
    elif framework == "ray":
        extra = (request.getfixturevalue("ray_cluster"),)
    script = tmp_path / "sweep.py"
    script.write_text(MATRIX)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script), json.dumps({"uri": uri, "database": name}), framework, *extra],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {
        "written": 32,
        "equal": True,
        "classes": sorted(
            [
                "Discriminated",
                "Flat",
                "FromModule",
                "ListOfModels",
                "Nested",
                "OptionalNested",
                "WithEnum",
                "WithGeneric",
            ]
        ),
        "namespaces": ["matrix"],
    }


def test_a_nested_class_that_really_differs_is_still_refused(
    fresh_process: ProcessPoolExecutor, tmp_path: Path
) -> None:
    """Compared by definition, not identity: a nested class with other fields is another class."""
    Inner = model("Inner", module="__main__", x=int)
    Outer = register_model(model("Outer", module="__main__", inner=Inner), namespace="evaluation")
    rm = ResultsManager(tmp_path / "store")

    def meet(rm: ResultsManager) -> str:
        try:
            rm.set("o", Outer(inner=Inner(x=1)))
        except ValueError as exc:
            return f"{type(exc).__name__}: {exc}"
        return "stored"

    def other_inner() -> None:
        there = model("Inner", module="__mp_main__", x=str)
        register_model(model("Outer", module="__mp_main__", inner=there), namespace="evaluation")

    said, _ = elsewhere(fresh_process, meet, rm, first=other_inner)
    assert "different type for field 'inner'" in said and not rm.exists("o")
