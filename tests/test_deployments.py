"""Where users run it: TLS and SCRAM credentials, a user with only the readWrite role, workers that
unpickle the manager per task, several event loops, and a sync manager inside a running loop.

The reference server here runs with TLS only and authentication on. FerretDB does not enforce a
user's roles, so what a ``readWrite`` user may send is checked from PyMongo's command log: the
commands of every read, write and claim call are all in MongoDB's ``readWrite`` role.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient, monitoring

from mongo_results import (
    AsyncMongoBackend,
    AsyncResultsManager,
    MongoBackend,
    ResultsManager,
    SetBehavior,
    register_model,
)
from mongo_results.errors import AccessDeniedError, StoreUnavailableError

from .commands import CommandLog
from .conftest import running
from .models import Metrics
from .servers import SecureDocumentDB

pytestmark = pytest.mark.real_server
ROOT = Path(__file__).resolve().parent.parent

# The actions of MongoDB's readWrite role, as commands (the server's documentation of the role),
# and what every client may send (handshake, sessions, buildInfo).
READ_WRITE = {
    "find", "getMore", "killCursors", "insert", "update", "delete", "findAndModify", "aggregate", "count",
    "distinct", "listCollections", "listIndexes", "create", "createIndexes", "drop", "dropIndexes",
    "collStats", "dbStats", "dbHash", "renameCollection",
}  # fmt: skip
ANYONE = {"hello", "isMaster", "ismaster", "buildInfo", "ping", "endSessions", "saslStart", "saslContinue"}


@pytest.fixture(autouse=True)
def _metrics() -> None:
    register_model(Metrics)


@pytest.fixture(scope="module")
def secure() -> Iterator[SecureDocumentDB]:
    """FerretDB 2.5 on DocumentDB with TLS only and SCRAM, and a user with the readWrite role."""
    yield from running(SecureDocumentDB, SecureDocumentDB.name)


@pytest.fixture
def fresh(secure: SecureDocumentDB) -> Iterator[str]:
    """The readWrite user's URI on a new database (FerretDB gives every user every database)."""
    uri = secure.uri_for(secure.user, secure.password, f"t_{uuid.uuid4().hex[:12]}")
    yield uri
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(client.get_database().name)


def every_call(rm: ResultsManager, tag: str) -> None:
    """Each read, write and claim call once, checked as it goes."""
    model = Metrics(loss=0.5, accuracy=0.9, step=1)
    assert rm.set(f"{tag}/a", model)
    assert rm.set(f"{tag}/a", model, SetBehavior.SKIP_IF_EXISTS) is False
    assert rm.set_many({f"{tag}/b": model, f"{tag}/c": model}) == [True, True]
    assert rm.get(f"{tag}/a") == model and rm.exists(f"{tag}/b")
    assert rm.get_many([f"{tag}/b", f"{tag}/c"]) == [model, model]
    assert [rid for rid, _ in rm.iter_results(tag)] == rm.list_ids(tag) == [f"{tag}/a", f"{tag}/b", f"{tag}/c"]
    assert [rid for rid, _ in rm.find({"loss": {"$lt": 1}}, tag)] == [f"{tag}/a", f"{tag}/b", f"{tag}/c"]
    assert rm.missing([f"{tag}/a", f"{tag}/d"]) == [f"{tag}/d"]
    claim = rm.claim(f"{tag}/d", lease=30)
    assert claim is not None and [c["result_id"] for c in rm.claims(tag)] == [f"{tag}/d"]
    with claim:
        assert claim.renew()
        rm.set(f"{tag}/d", model)
    assert rm.claim(f"{tag}/d") is None  # stored
    assert rm.delete(f"{tag}/d")
    failing = rm.claim(f"{tag}/e", lease=30)
    assert failing is not None
    try:
        with failing:
            raise ArithmeticError("diverged")
    except ArithmeticError:
        pass
    assert [f["result_id"] for f in rm.failures(tag)] == [f"{tag}/e"]
    assert rm.reset_failures(tag) == 1


# -- TLS and credentials


def test_every_call_works_over_tls_with_credentials(fresh: str) -> None:
    with ResultsManager(fresh) as rm:
        every_call(rm, "tls")
        rm.clear()
        assert rm.list_ids() == []


def test_the_async_manager_works_over_tls_with_credentials(fresh: str) -> None:
    async def main() -> list[str]:
        async with AsyncResultsManager(fresh) as rm:
            await rm.set("a/1", Metrics(loss=1, accuracy=1))
            assert await rm.get("a/1") == Metrics(loss=1, accuracy=1)
            claim = await rm.claim("a/2")
            assert claim is not None
            await claim.release()
            return await rm.list_ids("a")

    assert asyncio.run(main()) == ["a/1"]


def test_the_command_line_works_over_tls_with_credentials(fresh: str) -> None:
    with ResultsManager(fresh) as rm:
        rm.set("cli/1", Metrics(loss=1, accuracy=1))
    env = {**os.environ, "MONGO_RESULTS_URI": fresh}
    done = subprocess.run(
        [sys.executable, "-m", "mongo_results", "ls", "--json", "cli"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "cli/1" in done.stdout


def test_a_wrong_password_is_one_clear_error_without_the_password(secure: SecureDocumentDB) -> None:
    wrong = "not-the-password-%s3cr3t"
    uri = secure.uri_for(secure.user, wrong)
    with pytest.raises(AccessDeniedError) as caught, ResultsManager(uri) as rm:
        rm.set("x", Metrics(loss=1, accuracy=1))
    message = str(caught.value)
    assert "authentication failed" in message and "127.0.0.1" in message
    assert wrong not in message and "s3cr3t" not in message and secure.password not in message
    assert isinstance(caught.value, PermissionError)
    env = {**os.environ, "MONGO_RESULTS_URI": uri}
    done = subprocess.run([sys.executable, "-m", "mongo_results", "ls"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "authentication failed" in done.stderr and "s3cr3t" not in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_an_untrusted_certificate_is_one_clear_error(secure: SecureDocumentDB, tmp_path: Path) -> None:
    other_ca = tmp_path / "other.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=another CA",
         "-keyout", str(tmp_path / "other.key"), "-out", str(other_ca)],
        check=True, capture_output=True,
    )  # fmt: skip
    uri = secure.uri_for(secure.user, secure.password, tlsCAFile=str(other_ca), serverSelectionTimeoutMS="1000")
    with pytest.raises(StoreUnavailableError) as caught, ResultsManager(uri) as rm:
        rm.get("x")
    message = str(caught.value)
    assert "certificate is not trusted" in message and "within 1 s" in message
    assert secure.password not in message and "p%40ss" not in message


# -- A readWrite user: the commands of every call


def test_a_new_store_is_set_up_with_read_write_commands_only(fresh: str) -> None:
    """The first write creates the collection with its validator: create, not collMod."""
    log = CommandLog()
    with ResultsManager(backend=MongoBackend(fresh, event_listeners=[log])) as rm:
        every_call(rm, "rw")
        sent = set(log.take())
    assert "create" in sent and "collMod" not in sent
    assert sent <= READ_WRITE | ANYONE, sent - READ_WRITE - ANYONE
    client: MongoClient[dict[str, Any]]
    with MongoClient(fresh) as client:
        [entry] = client.get_database().list_collections(filter={"name": "results.default"})
    assert "$jsonSchema" in entry["options"]["validator"]  # installed by create


def _a_worker_process(uri: str, pickled: bytes, count: int) -> list[str]:
    """A fresh process, as a Dask or Ray worker is: the manager arrives pickled with each task."""
    log = CommandLog()
    monitoring.register(log)
    for i in range(count):
        rm = pickle.loads(pickled)
        assert rm.set(f"task/{i}", Metrics(loss=i, accuracy=0))
    return log.take()


def test_workers_that_unpickle_the_manager_per_task_pay_the_set_up_once(fresh: str) -> None:
    """Ten managers unpickled in one process: the store is learnt once, then one command per set."""
    with ResultsManager(fresh) as rm:
        rm.set("prepared", Metrics(loss=0, accuracy=0))  # an administrator, or an earlier worker
        pickled = pickle.dumps(rm)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        sent = pool.submit(_a_worker_process, fresh, pickled, 10).result()
    assert Counter(sent)["insert"] == 10
    assert len(sent) <= 13, sent  # before: six commands per task (buildInfo, 2 find, createIndexes, collMod...)
    assert set(sent) <= READ_WRITE | ANYONE and "collMod" not in sent


def test_a_worker_on_a_prepared_store_sends_only_reads_and_writes(fresh: str) -> None:
    with ResultsManager(fresh) as rm:
        every_call(rm, "before")
    log = CommandLog()
    with ResultsManager(backend=MongoBackend(fresh, event_listeners=[log])) as rm:
        every_call(rm, "after")
        sent = set(log.take())
    assert sent <= {"find", "getMore", "insert", "update", "delete", "findAndModify", "listCollections", "buildInfo"}


# -- Several event loops, and a sync manager inside one


def test_one_async_manager_on_several_event_loops(server_db: tuple[str, str]) -> None:
    """Three threads, each with its own loop: one client per loop, the store learnt once."""
    uri, name = server_db
    log = CommandLog()
    rm = AsyncResultsManager(backend=AsyncMongoBackend(uri, database=name, event_listeners=[log]))
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def thread(t: int) -> None:
        async def main() -> None:
            start.wait()
            for i in range(30):
                await rm.set(f"loop{t}/{i}", Metrics(loss=i, accuracy=t))
            await rm.close()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    sent = Counter(log.take())
    assert sent["insert"] == 90
    # At most once per loop (the three start together); before, again on every switch of loop.
    assert sent["buildInfo"] <= 3 and sent["listCollections"] <= 3
    with ResultsManager(backend=MongoBackend(uri, database=name)) as check:
        assert len(check.list_ids()) == 90


@pytest.mark.parametrize("kind", ["file", "mongomock", "server"])
def test_a_sync_manager_inside_a_running_loop(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """As in a FastAPI handler or a notebook cell: the sync calls block the loop, and work."""
    from .conftest import make_manager

    rm = make_manager(kind, request, tmp_path)

    async def handler() -> Metrics:
        rm.set("h", Metrics(loss=1, accuracy=1))
        return rm.get("h", Metrics)

    assert asyncio.run(handler()) == Metrics(loss=1, accuracy=1)
    rm.close()


def test_await_in_a_running_loop_as_a_notebook_cell_does(server_db: tuple[str, str]) -> None:
    """A notebook's cells share one running loop: each ``await`` reuses the loop's client."""
    uri, name = server_db
    log = CommandLog()
    rm = AsyncResultsManager(backend=AsyncMongoBackend(uri, database=name, event_listeners=[log]))

    async def cells() -> None:
        for i in range(3):  # three cells, one loop
            await rm.set(f"cell/{i}", Metrics(loss=i, accuracy=0))
        assert await rm.list_ids("cell") == ["cell/0", "cell/1", "cell/2"]
        await rm.close()

    asyncio.run(cells())
    assert Counter(log.take())["buildInfo"] == 1
