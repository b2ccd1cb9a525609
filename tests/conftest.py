"""Fixtures: one manager per backend, a fresh store per test, a real server per run."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from pymongo import MongoClient

from mongo_results import AsyncMongoBackend, AsyncResultsManager, MongoBackend, ResultsManager, clear_registry

from .ferretdb import FerretDB

SYNC = ["file", "mongomock", "server"]
ASYNC = ["async-file", "async-mongomock", "async-server", "motor-server"]
BACKENDS = SYNC + ASYNC


class SyncView:
    """Drives an AsyncResultsManager on a private event loop, so the one suite runs it too."""

    def __init__(self, make: Callable[[], Awaitable[AsyncResultsManager]]) -> None:
        self.loop = asyncio.new_event_loop()
        self.manager = self.loop.run_until_complete(make())

    @property
    def backend(self) -> Any:
        return self.manager.backend

    @backend.setter
    def backend(self, value: Any) -> None:
        self.manager.backend = value

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.manager, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if hasattr(result, "__aiter__"):  # iter_results: collect the async iterator

                async def collect() -> list[Any]:
                    return [item async for item in result]

                return iter(self.loop.run_until_complete(collect()))
            return self.loop.run_until_complete(result)

        return call

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
    """MONGODB_URI when set, else a FerretDB started for this run (mandatory under CI=true)."""
    uri = os.environ.get("MONGODB_URI")
    if uri:
        yield uri
        return
    try:
        server = FerretDB().start()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the real-server tests, but FerretDB could not start: {exc}")
        pytest.skip(f"no MongoDB-wire server: FerretDB could not be built or started ({exc}); set MONGODB_URI")
    yield server.uri
    server.close()


@pytest.fixture(scope="session")
def server_engine(server_uri: str) -> str:
    """``ferretdb`` or ``mongodb``, told apart by buildInfo's ``ferretdbVersion``."""
    client: MongoClient[dict[str, Any]]
    with MongoClient(server_uri, serverSelectionTimeoutMS=5000) as client:
        return "ferretdb" if "ferretdbVersion" in client.admin.command("buildInfo") else "mongodb"


@pytest.fixture
def server_db(server_uri: str) -> Iterator[tuple[str, str]]:
    """A fresh database on the real server, dropped afterwards: (uri, database name)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield server_uri, name
    client: MongoClient[dict[str, Any]]
    with MongoClient(server_uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(name)


def make_manager(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> ResultsManager:
    """A manager of this kind on a fresh store; async kinds come wrapped in a SyncView."""
    mock_uri = f"mongomock://localhost/t_{uuid.uuid4().hex[:12]}"
    if kind == "file":
        return ResultsManager(tmp_path / "store")
    if kind == "mongomock":
        return ResultsManager(mock_uri)
    if kind == "server":
        uri, name = request.getfixturevalue("server_db")
        return ResultsManager(backend=MongoBackend(uri, database=name))

    async def make() -> AsyncResultsManager:
        if kind == "async-file":
            return AsyncResultsManager(tmp_path / "store")
        if kind == "async-mongomock":
            return AsyncResultsManager(mock_uri)
        uri, name = request.getfixturevalue("server_db")
        if kind == "async-server":
            return AsyncResultsManager(backend=AsyncMongoBackend(uri, database=name))
        from motor.motor_asyncio import AsyncIOMotorClient

        motor: Any = AsyncIOMotorClient(uri)
        request.addfinalizer(motor.close)
        return AsyncResultsManager(backend=AsyncMongoBackend(motor[name]))

    return cast(ResultsManager, SyncView(make))


@pytest.fixture(params=["file", "server"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> ResultsManager:
    """A store several processes can share: a directory, or a database on the real server."""
    return make_manager(str(request.param), request, tmp_path)


@pytest.fixture(params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


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
    """The engine behind ``rm``: file, mongomock, ferretdb or mongodb."""
    return str(request.getfixturevalue("server_engine")) if kind.endswith("server") else kind


def needs_mongodb_semantics(engine: str, what: str) -> None:
    """Skip on FerretDB 1.x for a documented engine difference (README compatibility table)."""
    if engine == "ferretdb":
        pytest.skip(f"FerretDB 1.x {what}; runs against genuine MongoDB (MONGODB_URI)")
