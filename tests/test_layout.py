"""The package's shape: one API in two managers, optional dependencies loaded only when used."""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

import mongo_results
import mongo_results.admin as admin_module
import mongo_results.manager as manager_module
from mongo_results import AsyncMongoBackend, AsyncResultsManager, ResultsManager, SetBehavior
from mongo_results.admin import Admin, AsyncAdmin

from .models import Metrics

PACKAGE = Path(mongo_results.__file__).parent


def _public(cls: type) -> set[str]:
    """The public members, less the v0.1 spellings kept with a DeprecationWarning."""
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and getattr(member, "__deprecated__", None) is None
    }


# The v0.1 spellings of the administrative calls, kept on both managers.
MOVED = {"documents", "iter_documents", "store", "upgrade", "engine", "doctor", "shard"}


@pytest.mark.parametrize(("sync_cls", "async_cls"), [(ResultsManager, AsyncResultsManager), (Admin, AsyncAdmin)])
def test_the_sync_and_async_classes_have_the_same_methods_and_parameters(sync_cls: type, async_cls: type) -> None:
    assert _public(sync_cls) == _public(async_cls)
    for name in _public(sync_cls) - {"admin", "backend", "close"}:
        sync, awaited = getattr(sync_cls, name), getattr(async_cls, name)
        assert inspect.signature(sync).parameters == inspect.signature(awaited).parameters, name
    if sync_cls is ResultsManager:
        assert _public(Admin) == MOVED
        for name in MOVED:
            for cls, admin in ((ResultsManager, Admin), (AsyncResultsManager, AsyncAdmin)):
                moved = getattr(cls, name)
                assert "manager.admin" in moved.__deprecated__, name
                assert inspect.signature(moved).parameters == inspect.signature(getattr(admin, name)).parameters


def test_the_v01_spellings_of_the_administrative_calls_still_work_with_a_warning(tmp_path: Path) -> None:
    rm = ResultsManager(tmp_path)
    rm.set("a/1", Metrics(loss=1, accuracy=0.5))
    with pytest.warns(DeprecationWarning, match=r"manager\.admin\.documents\(\)") as caught:
        documents = rm.documents("a")
    assert documents == rm.admin.documents("a") and documents[0]["_id"] == "a/1"
    assert caught[0].filename == __file__  # pointed at the caller's line

    async def awaited() -> None:
        arm = AsyncResultsManager(tmp_path)
        with pytest.warns(DeprecationWarning, match=r"manager\.admin\.doctor\(\)"):
            report = await arm.doctor()
        assert str(report) == str(await arm.admin.doctor())
        with pytest.warns(DeprecationWarning, match=r"manager\.admin\.iter_documents\(\)"):
            ids = [d["_id"] async for d in arm.iter_documents()]
        assert ids == ["a/1"]

    asyncio.run(awaited())


# Public members of ResultsManager that AsyncResultsManager does not derive, each written on both sides:
HAND_WRITTEN = {
    "admin": "a property: the administrative calls, Admin or AsyncAdmin",
    "backend": "a property of ManagerBase, shared by both as it is",
    "close": "no operation: the store releases its clients itself (awaited on the async side)",
    "get": "the async get keeps the overload returning the manager's own T, which a ParamSpec wrapper loses",
    "claim": "the async claim is an AsyncClaim, whose renew and release are awaited: a derived method is typed Claim",
    "claim_each": "the async claims come as an async iterator of AsyncClaim, typed so",
}
# Callables an operation's construction may use besides the core's builders.
BUILDERS_OUTSIDE_THE_CORE = {
    "ProgressBar": "to_dataframe's progress callback: it draws only when called, mid-run",
    "_worker": "the host and process that take a claim: no I/O, read at each call (a forked worker is another)",
}


def _hands_over(function: ast.FunctionDef, module: Any = manager_module) -> str:
    """``_run`` or ``_stream`` if the method's body is a docstring and ``return self._run(<operation>)``."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    assert len(body) == 1 and isinstance(body[0], ast.Return), f"{function.name}: more than a hand-over"
    call = body[0].value
    assert isinstance(call, ast.Call) and len(call.args) == 1 and not call.keywords, function.name
    target = call.func
    assert isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name), function.name
    assert target.value.id == "self" and target.attr in ("_run", "_stream"), function.name
    operation = call.args[0]
    ops_calls = {
        id(node.func.value)
        for node in ast.walk(operation)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_ops"
        if not node.args and not node.keywords
    }
    for node in ast.walk(operation):
        assert not isinstance(node, (ast.Await, ast.Yield, ast.YieldFrom, ast.Lambda, ast.NamedExpr)), function.name
        # self only as self._ops(): the store's operations, built with no I/O
        if isinstance(node, ast.Name) and node.id == "self":
            assert id(node) in ops_calls, f"{function.name}: uses self other than through self._ops()"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            builder = getattr(module, node.func.id)
            assert node.func.id in BUILDERS_OUTSIDE_THE_CORE or builder.__module__.startswith("mongo_results.core."), (
                f"{function.name}: {node.func.id} is no operation builder of the core"
            )
    return target.attr


@pytest.mark.parametrize(
    ("sync_cls", "async_cls", "module"),
    [(ResultsManager, AsyncResultsManager, manager_module), (Admin, AsyncAdmin, admin_module)],
)
def test_every_sync_method_only_hands_its_operation_over_and_the_async_one_is_derived(
    sync_cls: type, async_cls: type, module: Any
) -> None:
    """The rule the async manager rests on: a sync method builds its operation and hands it to _run or _stream.

    AsyncResultsManager (and AsyncAdmin) takes each such method as it is (``awaitable`` for
    ``_run``, ``streaming`` for ``_stream``), so a sync method that did anything else would do
    it unawaited.
    """
    tree = ast.parse(inspect.getsource(sync_cls))
    [cls] = tree.body
    assert isinstance(cls, ast.ClassDef)
    methods = {
        node.name: node
        for node in cls.body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
        if not any(isinstance(d, ast.Name) and d.id in ("overload", "property") for d in node.decorator_list)
    }
    assert set(methods) | ({"admin", "backend"} if sync_cls is ResultsManager else set()) == _public(sync_cls)
    for name, function in methods.items():
        derived = async_cls.__dict__[name]
        if name in HAND_WRITTEN:
            assert getattr(derived, "__wrapped__", None) is None, f"{name} is derived: take it off HAND_WRITTEN"
            if name == "close":
                continue
        hand_over = _hands_over(function, module)
        if name in HAND_WRITTEN:
            continue
        assert derived.__wrapped__ is sync_cls.__dict__[name], name
        if hand_over == "_run":
            assert inspect.iscoroutinefunction(derived), f"{name}: runs its operation, so awaitable() it"
        else:
            assert not inspect.iscoroutinefunction(derived), f"{name}: streams, so streaming() it"
            assert inspect.signature(sync_cls.__dict__[name]).return_annotation.startswith("Iterator"), name


LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """lint-imports on the package under ``root``, with the contracts of its pyproject.toml."""
    args = [str(LINT_IMPORTS), "--no-cache", *(f"--contract={c}" for c in contracts)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold() -> None:
    """pyproject.toml's [tool.importlinter] contracts: the layers, a pure core, the driver in the stores."""
    proc = _lint_imports(PACKAGE.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


# Each contract, broken on purpose in a copy of the package: a contract that cannot fail proves nothing.
PURE_CORE = ["pymongo", "mongomock", "motor", "gridfs", "warnings", "os", "pathlib", "socket"]
VIOLATIONS = [
    ("core/names.py", "from ..stores import open_backend", "layers"),
    ("core/ids.py", "from .. import manager", "layers"),
    ("stores/adapter.py", "from ..manager import ResultsManager", "layers"),
    ("registry.py", "from .stores import FileBackend", "layers"),
    ("errors.py", "from .core import ids", "layers"),
    *[("core/ids.py", f"import {name}", "pure-core") for name in PURE_CORE],
    ("core/reads.py", "from ..registry import MODELS", "pure-core"),
    ("core/reads.py", "from ..terminal import Progress", "pure-core"),
    ("manager.py", "import pymongo", "driver-in-stores"),
    ("cli.py", "from gridfs import GridFSBucket", "driver-in-stores"),
]


@pytest.mark.parametrize(("module", "line", "contract"), VIOLATIONS)
def test_each_contract_catches_a_violation(tmp_path: Path, module: str, line: str, contract: str) -> None:
    shutil.copytree(PACKAGE, tmp_path / "mongo_results", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PACKAGE.parent / "pyproject.toml", tmp_path / "pyproject.toml")
    assert _lint_imports(tmp_path, contract).returncode == 0
    with (tmp_path / "mongo_results" / module).open("a") as file:
        file.write(f"\n{line}  # noqa\n")
    proc = _lint_imports(tmp_path, contract)
    assert proc.returncode != 0 and "1 broken" in proc.stdout, proc.stdout + proc.stderr


def test_a_mongodb_store_loads_no_optional_dependency() -> None:
    code = (
        "import sys, asyncio\n"
        "from mongo_results import ResultsManager, AsyncResultsManager\n"
        "from mongo_results.errors import StoreUnavailableError\n"
        "rm = ResultsManager('mongodb://127.0.0.1:9/x?serverSelectionTimeoutMS=100')\n"
        "try:\n    rm.exists('a')\nexcept StoreUnavailableError:\n    pass\n"
        "async def main():\n"
        "    arm = AsyncResultsManager('mongodb://127.0.0.1:9/x?serverSelectionTimeoutMS=100')\n"
        "    try:\n        await arm.exists('a')\n    except StoreUnavailableError:\n        pass\n"
        "    await arm.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mongomock', 'motor', 'tqdm')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


class SeedStyleBackend:
    """A backend as ``results_manager`` users wrote them: models in a dict."""

    def __init__(self) -> None:
        self.stored: dict[str, Any] = {}

    def set(self, result_id: str, data: Any, behavior: SetBehavior, namespace: Any, strict: bool) -> bool:
        if result_id in self.stored and behavior is SetBehavior.RAISE_IF_EXISTS:
            raise FileExistsError(result_id)
        self.stored[result_id] = data
        return True

    def get(self, result_id: str, model_class: Any = None, namespace: Any = None) -> Any:
        if result_id not in self.stored:
            raise FileNotFoundError(result_id)
        return self.stored[result_id]

    def exists(self, result_id: str) -> bool:
        return result_id in self.stored

    def list_ids(self, prefix: str | None = None) -> list[str]:
        return sorted(r for r in self.stored if prefix is None or r == prefix or r.startswith(prefix + "/"))

    def delete(self, result_id: str) -> bool:
        return self.stored.pop(result_id, None) is not None

    def clear(self) -> None:
        self.stored.clear()


def test_a_seed_style_backend_works_through_the_adapter() -> None:
    seed = SeedStyleBackend()
    rm = ResultsManager(backend=seed)
    assert rm.backend is seed
    assert rm.set("a/1", Metrics(loss=1, accuracy=1)) and rm.exists("a/1")
    with pytest.raises(FileExistsError):
        rm.set("a/1", Metrics(loss=2, accuracy=1))
    assert rm.set_many({"a/2": Metrics(loss=2, accuracy=1)}) == [True]
    assert rm.get("a/2") == Metrics(loss=2, accuracy=1)
    assert rm.list_ids("a") == ["a/1", "a/2"]
    assert [rid for rid, _ in rm.iter_results("a", batch_size=1)] == ["a/1", "a/2"]
    with pytest.raises(ValueError, match="takes no namespace"):
        rm.list_ids("a", namespace="other")
    assert rm.delete("a/1") and rm.list_ids() == ["a/2"]
    rm.clear()
    assert seed.stored == {}

    async def awaited() -> list[str]:
        arm = AsyncResultsManager(backend=seed)
        await arm.set("b", Metrics(loss=1, accuracy=1))
        return await arm.list_ids()

    assert asyncio.run(awaited()) == ["b"]


def test_an_object_that_is_no_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="lacks"):
        ResultsManager(backend=object())


def test_each_event_loops_client_is_closed_with_close_or_the_loop(server_db: tuple[str, str]) -> None:
    uri, name = server_db
    backend = AsyncMongoBackend(uri, database=name)
    rm = AsyncResultsManager(backend=backend)
    opened: list[Any] = []

    async def use(step: int) -> None:
        await rm.set(f"loop/{step}", Metrics(loss=step, accuracy=0))
        opened.append(backend._client)

    asyncio.run(use(1))  # the loop ends without close(): its shutdown closes the client
    assert opened[0]._closed

    async def use_and_close() -> None:
        await use(2)
        await rm.close()
        assert opened[1]._closed

    asyncio.run(use_and_close())
    assert opened[0] is not opened[1]


def test_the_wheel_holds_every_module_and_the_type_marker(tmp_path: Path) -> None:
    """The README's install from a built wheel: every subpackage is in it."""
    source = tmp_path / "source"  # a copy: building leaves build/ behind, and must not see an old one
    shutil.copytree(PACKAGE, source / "mongo_results", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PACKAGE.parent / name, source / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    [wheel] = tmp_path.glob("mongo_results-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")} | {"mongo_results/py.typed"}
    assert expected <= names, sorted(expected - names)


def test_every_error_raised_on_purpose_is_a_library_error() -> None:
    builtins = ("ValueError", "TypeError", "KeyError", "RuntimeError", "LookupError", "FileExistsError")
    for path in PACKAGE.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("raise ") and "pragma: no cover" not in stripped:
                name = stripped[len("raise ") :].split("(", 1)[0]
                assert name not in builtins, f"{path.relative_to(PACKAGE)}:{number}: {stripped}"


def test_a_dict_instead_of_a_model_is_a_library_type_error(tmp_path: Path) -> None:
    rm = ResultsManager(tmp_path)
    with pytest.raises(TypeError, match="pydantic model instance") as info:
        rm.set("a", {"x": 1})  # type: ignore[arg-type]
    assert isinstance(info.value, mongo_results.MongoResultsError) and not rm.list_ids()


def test_the_module_map_names_every_module_and_nothing_else() -> None:
    """docs/development.md's map of the package: a newcomer finds each module there, with what it holds."""
    text = (PACKAGE.parent / "docs" / "development.md").read_text()
    block = text.split("```\nmongo_results/\n", 1)[1].split("```", 1)[0]
    mapped, folder = set(), ""
    for line in block.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.endswith("/"):
            folder = name
        elif name.endswith(".py"):
            mapped.add(folder + name if line.startswith("    ") else name)
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")}
    assert mapped - modules == set(), "the map names modules that are gone"
    # Package markers that only mark a folder need no line (core/__init__.py is empty).
    assert modules - mapped - {"core/__init__.py", "__main__.py"} == set(), "modules missing from the map"


def test_the_errors_moved_to_mongo_results_errors_still_import_from_the_top_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"import LossyValueError from mongo_results\.errors"):
        from mongo_results import LossyValueError
    assert LossyValueError is mongo_results.errors.LossyValueError
    assert "LossyValueError" not in mongo_results.__all__ and "ResultExistsError" in mongo_results.__all__
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        mongo_results.Nothing  # noqa: B018


def test_the_core_asks_each_command_through_ask_so_its_reply_is_typed() -> None:
    """``yield from ask(Find(...))`` is typed by the command's reply; a bare ``yield Find(...)`` is Any."""
    from mongo_results.core import commands

    asking = {
        name for name, value in vars(commands).items() if isinstance(value, type) and issubclass(value, commands.Asks)
    }
    assert {"Find", "Insert", "ShardKeyOf"} <= asking
    bare = []
    for path in sorted((PACKAGE / "core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Yield) and isinstance(node.value, ast.Call):
                called = node.value.func
                if isinstance(called, ast.Name) and called.id in asking:
                    bare.append(f"{path.name}:{node.lineno}: yield {called.id}(...)")
    assert not bare, bare


def test_the_core_keeps_no_state_between_calls(tmp_path: Path) -> None:
    """No module of the core fills a dict, list or set as it works: its caches live with their owners."""
    import importlib
    import weakref

    from .models import Point

    containers = (dict, list, set, weakref.WeakKeyDictionary, weakref.WeakValueDictionary)
    modules = [importlib.import_module(f"mongo_results.core.{p.stem}") for p in (PACKAGE / "core").glob("*.py")]

    def sizes() -> dict[str, int]:
        return {
            f"{module.__name__}.{name}": len(value)
            for module in modules
            for name, value in vars(module).items()
            if isinstance(value, containers) and not name.startswith("__")
        }

    before = sizes()
    for store in (tmp_path / "files", f"mongomock://localhost/state_{os.getpid()}"):
        rm = ResultsManager(store)
        rm.set("s/1", Metrics(loss=1, accuracy=0.5))
        rm.set("p/1", Point(x=1, y=2))
        assert rm.get("s/1", Metrics).loss == 1 and rm.get("p/1", Point).y == 2
        assert [rid for rid, _ in rm.find({"loss": {"$gte": 0}}, "s", Metrics)] == ["s/1"]
        assert rm.to_arrow("s", Metrics).num_rows == 1
        rm.clear()
    assert sizes() == before
