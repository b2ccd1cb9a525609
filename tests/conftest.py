"""Fixtures: one manager per backend, a fresh store per test, a real server per run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from mongo_results import MongoBackend, ResultsManager, clear_registry

from .ferretdb import FerretDB

BACKENDS = ["file", "mongomock", "server"]


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
    if kind == "file":
        return ResultsManager(tmp_path / "store")
    if kind == "mongomock":
        return ResultsManager(f"mongomock://localhost/t_{uuid.uuid4().hex[:12]}")
    uri, name = request.getfixturevalue("server_db")
    return ResultsManager(backend=MongoBackend(uri, database=name))


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
    if kind == "mongomock":
        manager.clear()
    manager.close()


@pytest.fixture
def engine(kind: str, request: pytest.FixtureRequest) -> str:
    """The engine behind ``rm``: file, mongomock, ferretdb or mongodb."""
    return str(request.getfixturevalue("server_engine")) if kind == "server" else kind


def needs_mongodb_semantics(engine: str, what: str) -> None:
    """Skip on FerretDB 1.x for a documented engine difference (README compatibility table)."""
    if engine == "ferretdb":
        pytest.skip(f"FerretDB 1.x {what}; runs against genuine MongoDB (MONGODB_URI)")
