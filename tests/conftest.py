"""Fixtures: one manager per backend, a fresh store per test, a real server per run."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import pytest
from pymongo import MongoClient

from mongo_results import AsyncMongoBackend, AsyncResultsManager, MongoBackend, ResultsManager, clear_registry

from .servers import FerretDB, Sharded, reference_server

# "server" is the reference server (MONGODB_URI, else FerretDB 2.5 on DocumentDB);
# "ferretdb1" is FerretDB 1.24 on SQLite, the light second engine; "sharded" is the reference
# engine on a Citus coordinator and two workers, each store's collections sharded by ``shard``
# before use (it runs the parts of the suite that sharding could change, not all of it).
# `make check` (MONGO_RESULTS_TIER=fast) runs the stores that need no server, for the edit loop;
# `make test` and CI run every store.
FAST = os.environ.get("MONGO_RESULTS_TIER") == "fast"
SYNC = ["file", "mongomock"] if FAST else ["file", "mongomock", "server", "ferretdb1"]
ASYNC = (
    ["async-file", "async-mongomock"]
    if FAST
    else ["async-file", "async-mongomock", "async-server", "motor-server", "async-ferretdb1"]
)
BACKENDS = SYNC + ASYNC
SERVERS: dict[str, str] = {}  # what each server fixture runs on, for the run's summary


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for role, what in SERVERS.items():
        terminalreporter.write_line(f"{role}: {what}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not FAST:
        return
    # Servers (a server started by `running` skips there too), and the modules that start
    # worker pools and clusters (Dask, Ray, loky) for seconds a test: `make test` runs them.
    servers = {"server_uri", "ferretdb1_uri", "sharded_uri", "server_db", "ferretdb1_db", "sharded_db", "either_db"}
    kinds = ("server", "ferretdb1", "sharded")
    pools = ("tests.test_frameworks", "tests.test_demo")
    skip = pytest.mark.skip(reason="needs a server or a cluster: `make check` runs what needs none, `make test` all")
    for item in items:
        named = getattr(item, "callspec", None)
        params = " ".join(map(str, named.params.values())) if named is not None else ""
        if (
            item.get_closest_marker("real_server")
            or servers & set(getattr(item, "fixturenames", ()))
            or any(kind in params for kind in kinds)
            or getattr(getattr(item, "module", None), "__name__", "") in pools
        ):
            item.add_marker(skip)


def _server_failed(what: str, exc: BaseException) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs the real-server tests, but {what} could not start: {exc}")
    pytest.skip(f"{what} could not be built or started here ({exc}); set MONGODB_URI for the reference server")


class Startable(Protocol):
    def start(self) -> object: ...

    def close(self) -> None: ...


S = TypeVar("S", bound=Startable)


def running(
    make: Callable[[], S], what: str, *, then: Callable[[S], object] = lambda s: None, tries: int = 1
) -> Iterator[S]:
    """A server (or proxy) started for some tests and closed after them.

    One that cannot be built or started skips its tests here and fails them under CI; ``tries``
    starts it again (a cluster's first set-up can time out on a loaded machine).
    """
    if FAST:
        pytest.skip(f"needs {what}: `make check` runs what needs no server, `make test` all")
    for attempt in range(1, tries + 1):
        try:
            server = make()
        except Exception as exc:
            _server_failed(what, exc)
        try:
            server.start()
            then(server)
            break
        except Exception as exc:
            server.close()
            if attempt == tries:
                _server_failed(what, exc)
    try:
        yield server
    finally:
        server.close()


class Awaiting:
    """Calls an async object's methods on an event loop, as if they were sync."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.target, self.loop = target, loop

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.target, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if hasattr(result, "__aiter__"):  # iter_results: collect the async iterator

                async def collect() -> list[Any]:
                    return [item async for item in result]

                return iter(self.loop.run_until_complete(collect()))
            return self.loop.run_until_complete(result)

        return call


class SyncView(Awaiting):
    """Drives an AsyncResultsManager on a private event loop, so the one suite runs it too."""

    def __init__(self, make: Callable[[], Awaitable[AsyncResultsManager]]) -> None:
        loop = asyncio.new_event_loop()
        super().__init__(loop.run_until_complete(make()), loop)
        self.manager = self.target

    @property
    def backend(self) -> Any:
        return self.manager.backend

    @backend.setter
    def backend(self, value: Any) -> None:
        self.manager.backend = value

    @property
    def admin(self) -> Awaiting:
        return Awaiting(self.manager.admin, self.loop)

    def shutdown(self) -> None:
        self.loop.run_until_complete(self.manager.close())
        self.loop.close()


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    clear_registry()
    yield
    clear_registry()


@pytest.fixture(scope="session")
def server_uri() -> Iterator[str]:
    """The reference server: MONGODB_URI, else FerretDB 2.5 on DocumentDB (mandatory under CI=true),
    else FerretDB 1.24."""
    try:
        uri, server, how = reference_server()
    except Exception as exc:
        _server_failed("the reference server", exc)
    SERVERS["reference server"] = how
    yield uri
    if server is not None:
        server.close()


@pytest.fixture(scope="session")
def ferretdb1_uri() -> Iterator[str]:
    """FerretDB 1.24 on SQLite, the second engine (mandatory under CI=true)."""
    for server in running(FerretDB, FerretDB.name):
        SERVERS["second engine"] = FerretDB.name
        yield server.uri


@pytest.fixture(scope="session")
def sharded_uri() -> Iterator[str]:
    """The sharded cluster: FerretDB 2.5 on DocumentDB over Citus, two workers (mandatory under CI=true)."""
    for server in running(Sharded, Sharded.name, tries=2):
        SERVERS["sharded cluster"] = Sharded.name
        yield server.uri


def engine_label(uri: str) -> str:
    """``mongodb``, ``ferretdb1`` or ``ferretdb2``, told apart by buildInfo."""
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        info = client.admin.command("buildInfo")
    if "ferretdbVersion" in info:
        return "ferretdb1"
    return "ferretdb2" if "ferretdb" in info else "mongodb"


@pytest.fixture(scope="session")
def server_engine(server_uri: str) -> str:
    """The reference server's engine: ``mongodb``, ``ferretdb2`` (or ``ferretdb1`` off CI)."""
    return engine_label(server_uri)


def _fresh_db(uri: str) -> Iterator[tuple[str, str]]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield uri, name
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(name)


@pytest.fixture
def server_db(server_uri: str) -> Iterator[tuple[str, str]]:
    """A fresh database on the reference server, dropped afterwards: (uri, database name)."""
    yield from _fresh_db(server_uri)


@pytest.fixture
def ferretdb1_db(ferretdb1_uri: str) -> Iterator[tuple[str, str]]:
    """A fresh database on FerretDB 1.24, dropped afterwards: (uri, database name)."""
    yield from _fresh_db(ferretdb1_uri)


@pytest.fixture
def sharded_db(sharded_uri: str) -> Iterator[tuple[str, str]]:
    """A fresh database on the sharded cluster whose store is sharded before use: (uri, database name).

    ``shard`` shards the default namespace's collection, the GridFS chunks and the claims; other
    namespaces a test writes to stay unsharded, on the coordinator, as they would on MongoDB.
    """
    for uri, name in _fresh_db(sharded_uri):
        with ResultsManager(backend=MongoBackend(uri, database=name)) as manager:
            report = manager.admin.shard(namespace="default")
        assert report.problems == 0 and len(report.keys) == 3, str(report)
        yield uri, name


def _db_for(kind: str) -> str:
    if kind.endswith("sharded"):
        return "sharded_db"
    return "ferretdb1_db" if kind.endswith("ferretdb1") else "server_db"


@pytest.fixture(params=["server", "ferretdb1", "sharded"])
def either_db(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A fresh database on the reference server, then on FerretDB 1.24."""
    return cast(tuple[str, str], request.getfixturevalue(_db_for(str(request.param))))


def make_manager(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> ResultsManager:
    """A manager of this kind on a fresh store; async kinds come wrapped in a SyncView."""
    mock_uri = f"mongomock://localhost/t_{uuid.uuid4().hex[:12]}"
    if kind == "file":
        return ResultsManager(tmp_path / "store")
    if kind == "mongomock":
        return ResultsManager(mock_uri)
    if kind in ("server", "ferretdb1", "sharded"):
        uri, name = request.getfixturevalue(_db_for(kind))
        return ResultsManager(backend=MongoBackend(uri, database=name))

    async def make() -> AsyncResultsManager:
        if kind == "async-file":
            return AsyncResultsManager(tmp_path / "store")
        if kind == "async-mongomock":
            return AsyncResultsManager(mock_uri)
        uri, name = request.getfixturevalue(_db_for(kind))
        if kind in ("async-server", "async-ferretdb1", "async-sharded"):
            return AsyncResultsManager(backend=AsyncMongoBackend(uri, database=name))
        from motor.motor_asyncio import AsyncIOMotorClient

        motor: Any = AsyncIOMotorClient(uri)
        request.addfinalizer(motor.close)
        return AsyncResultsManager(backend=AsyncMongoBackend(motor[name]))

    return cast(ResultsManager, SyncView(make))


@pytest.fixture(params=["file", "server", "ferretdb1", "sharded"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> ResultsManager:
    """A store several processes can share: a directory, or a database on a server or the sharded cluster."""
    return make_manager(str(request.param), request, tmp_path)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``kind`` (and so ``rm``): the module's STORE_KINDS, else BACKENDS, unless the test names its own."""
    if "kind" not in metafunc.fixturenames:
        return
    named = (str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize"))
    if any("kind" in (n.strip() for n in names.split(",")) for names in named):
        return
    metafunc.parametrize("kind", getattr(metafunc.module, "STORE_KINDS", BACKENDS))  # test_sweeps adds sharded


@pytest.fixture
def rm(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ResultsManager]:
    manager = make_manager(kind, request, tmp_path)
    yield manager
    if kind.endswith("mongomock"):
        manager.clear()
    if isinstance(manager, SyncView):
        manager.shutdown()
    else:
        manager.close()


@pytest.fixture
def engine(kind: str, request: pytest.FixtureRequest) -> str:
    """The engine behind ``rm``: file, mongomock, ferretdb1, ferretdb2 (also the sharded cluster's) or mongodb."""
    if kind.endswith("ferretdb1"):
        return "ferretdb1"
    if kind.endswith("sharded"):
        return "ferretdb2"
    return str(request.getfixturevalue("server_engine")) if kind.endswith("server") else kind


def needs_mongodb_semantics(engine: str, what: str) -> None:
    """Skip on FerretDB 1.x for a documented engine difference (README, engine compatibility)."""
    if engine == "ferretdb1":
        pytest.skip(f"FerretDB 1.x {what}; runs on the reference server and on MongoDB")
