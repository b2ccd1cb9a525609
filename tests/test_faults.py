"""The server stops in the middle of a parallel ingest, then comes back on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient, monitoring
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    OperationFailure,
    PyMongoError,
)

from mongo_results import (
    AsyncMongoBackend,
    AsyncResultsManager,
    MongoBackend,
    MongoResultsError,
    ResultNotFoundError,
    ResultsManager,
    SetBehavior,
    register_model,
)
from mongo_results.core import commands as cmd
from mongo_results.core import operations
from mongo_results.errors import (
    OutcomeUnknownError,
    RejectedByServerError,
    SetManyInterruptedError,
    StoreUnavailableError,
)
from mongo_results.stores.pymongo_calls import TRANSIENT_CODES, call_for, error_reply, is_transient, translate

from .conftest import running
from .models import Metrics
from .servers import DocumentDB, FerretDB, Server, Sharded

THREADS = 8


@pytest.fixture(scope="module", params=["ferretdb2", "ferretdb1"])
def faulty_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server of this module's own, since its tests stop and start it (the run's servers are not touched)."""
    if request.param == "ferretdb2":
        yield from running(DocumentDB, DocumentDB.name)
    else:
        yield from running(FerretDB, FerretDB.name)


@pytest.fixture
def own_server(faulty_server: Server) -> Iterator[Server]:
    """The module's server, up and empty for each test: what a test stopped or froze is started again."""
    yield faulty_server
    with contextlib.suppress(Exception):
        faulty_server.freeze(False)  # SIGCONT: harmless when it was not frozen
    client: MongoClient[dict[str, Any]]
    try:
        with MongoClient(faulty_server.uri, serverSelectionTimeoutMS=1000, socketTimeoutMS=5000) as client:
            client.list_database_names()  # reaches PostgreSQL under FerretDB 2.5, where ping does not
    except PyMongoError:
        faulty_server.start()  # killed, stopped, or its PostgreSQL stopped: all of it again, same data
    with MongoClient(faulty_server.uri, serverSelectionTimeoutMS=10_000) as client:
        for name in client.list_database_names():
            if name not in ("admin", "config", "local"):
                client.drop_database(name)


@pytest.mark.parametrize("how", ["terminate", "kill"])
def test_server_stops_mid_ingest_and_comes_back(own_server: Server, how: str) -> None:
    uri = own_server.uri + "?serverSelectionTimeoutMS=1500"
    rm = ResultsManager(backend=MongoBackend(uri, database="faults"))
    written: list[str] = []
    errors: list[BaseException] = []

    def ingest(t: int) -> None:
        i = 0
        while True:
            rid = f"ingest/{t}/{i}"
            try:
                rm.set(rid, Metrics(loss=i, accuracy=t, step=i))
            except BaseException as exc:  # the one error each caller must end with
                errors.append(exc)
                return
            written.append(rid)
            i += 1

    threads = [threading.Thread(target=ingest, args=(t,), daemon=True) for t in range(THREADS)]
    for t in threads:
        t.start()
    while len(written) < 200:
        time.sleep(0.01)
    stopped = time.monotonic()
    own_server.kill() if how == "kill" else own_server.stop()
    for t in threads:
        t.join(60)  # a hang would show here, not a slow test
    assert not any(t.is_alive() for t in threads), "a caller hung after the server stopped"
    print(f"\n{how}: {len(written)} stored, every caller failed within {time.monotonic() - stopped:.2f} s of the stop")
    assert len(errors) == THREADS
    assert all(isinstance(e, StoreUnavailableError) and isinstance(e, ConnectionError) for e in errors), errors
    assert all(f"127.0.0.1:{own_server.port}" in str(e) for e in errors)
    with pytest.raises(ConnectionError, match=r"within 1\.5 s"):
        rm.list_ids()

    own_server.start()  # same port, same state directory
    assert rm.set("after/restart", Metrics(loss=1, accuracy=1)) is True  # the same manager object
    stored = set(rm.list_ids("ingest"))
    assert set(written) <= stored  # nothing acknowledged was lost
    client: MongoClient[dict[str, Any]]
    with MongoClient(own_server.uri) as client:  # one bulk read: FerretDB 1.x scans for each _id lookup
        docs: list[dict[str, Any]] = list(client.faults["results.default"].find({"_id": {"$in": sorted(stored)}}))
    assert len(docs) == len(stored)
    for doc in docs:  # no partial document: every stored one is whole and valid
        writer, i = map(int, doc["_id"].split("/")[1:])
        assert doc["path"] == doc["_id"].split("/") and doc["model_type"] == "Metrics"
        assert Metrics.model_validate(doc["data"]) == Metrics(loss=i, accuracy=writer, step=i)
    rm.close()


def test_closing_after_the_server_went_away_does_not_wait_for_it(own_server: Server) -> None:
    # Closing sends endSessions, which would wait the whole server-selection timeout (60 s here).
    uri = own_server.uri + "?heartbeatFrequencyMS=500&serverSelectionTimeoutMS=60000"
    sync = ResultsManager(backend=MongoBackend(uri, database="gone"))
    sync.set("a", Metrics(loss=1, accuracy=1))

    async def open_async() -> AsyncResultsManager:
        rm = AsyncResultsManager(backend=AsyncMongoBackend(uri, database="gone"))
        await rm.set("b", Metrics(loss=1, accuracy=1))
        return rm

    loop = asyncio.new_event_loop()
    asynchronous = loop.run_until_complete(open_async())
    own_server.kill()
    sync_client = sync.backend.database().client
    deadline = time.monotonic() + 30
    while sync_client.topology_description.has_readable_server():  # until its monitor has seen it go
        assert time.monotonic() < deadline, "the client never noticed the server had gone"
        time.sleep(0.05)
    closer = threading.Thread(target=sync.close)
    closer.start()
    closer.join(20)
    assert not closer.is_alive(), "close() waited for the server"
    loop.run_until_complete(asyncio.wait_for(asynchronous.close(), 20))
    loop.close()


class KillOnWrite(monitoring.CommandListener):
    """Kills the server as the ``nth`` write command starts: that command is in flight when it dies."""

    def __init__(self, server: Server, nth: int) -> None:
        self.server, self.nth, self.writes = server, nth, 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update"):
            self.writes += 1
            if self.writes == self.nth:
                self.server.kill()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class StopPostgresOnAck(KillOnWrite):
    """Stops PostgreSQL under FerretDB 2.5 as the ``nth`` write command is acknowledged; FerretDB stays up."""

    stopped = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name in ("insert", "update"):
            self.writes += 1
            if self.writes == self.nth:
                assert isinstance(self.server, DocumentDB)
                self.server.stop_postgres()  # before the next command is sent: it meets PostgreSQL gone
                self.stopped = True


def interrupt_set_many(
    uri: str,
    killer: KillOnWrite,
    items: list[tuple[str, Metrics]],
    behavior: SetBehavior,
    flavour: str,
    database: str = "bulk",
) -> SetManyInterruptedError:
    """Run set_many through a client whose listener kills the server; the error it ends with."""
    armed = killer.nth
    killer.nth = 0  # not during the warm-up
    if flavour == "sync":
        client: Any = MongoClient(uri, event_listeners=[killer])
        rm = ResultsManager(backend=MongoBackend(client, database=database))
        rm.set("warm/up", Metrics(loss=0, accuracy=0))  # the namespace's first write, before counting
        killer.writes, killer.nth = 0, armed
        try:
            rm.set_many(items, behavior)
        except SetManyInterruptedError as exc:
            return exc
        finally:
            client.close()
        raise AssertionError("set_many went through a dead server")

    async def run() -> SetManyInterruptedError:
        aclient: Any = AsyncMongoClient(uri, event_listeners=[killer])
        arm = AsyncResultsManager(backend=AsyncMongoBackend(aclient[database]))
        await arm.set("warm/up", Metrics(loss=0, accuracy=0))
        killer.writes, killer.nth = 0, armed
        try:
            await arm.set_many(items, behavior)
        except SetManyInterruptedError as exc:
            return exc
        finally:
            await aclient.close()
        raise AssertionError("set_many went through a dead server")

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("behavior", list(SetBehavior))
def test_server_killed_during_set_many(
    own_server: Server, behavior: SetBehavior, flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five write commands, the third killed in flight. FerretDB 1.x takes one command per upsert
    # and scans its table for each: fewer items there.
    count, batch = (160, 40) if isinstance(own_server, FerretDB) else (1500, 300)
    monkeypatch.setattr(operations, "BATCH", batch)
    items = [(f"bulk/{i:05d}", Metrics(loss=i, accuracy=0, step=i)) for i in range(count)]
    uri = own_server.uri + "?serverSelectionTimeoutMS=1500"
    killer = KillOnWrite(own_server, nth=3)
    error = interrupt_set_many(uri, killer, items, behavior, flavour)
    assert isinstance(error, ConnectionError) and f"127.0.0.1:{own_server.port}" in str(error)
    decided = [i for i, outcome in enumerate(error.outcomes) if outcome is not None]
    assert error.unknown, "the command in flight is unknown"
    assert sorted([*decided, *error.unknown, *error.not_sent]) == list(range(len(items)))
    assert all(error.outcomes[i] is True for i in decided)  # a fresh store: every decided item was written

    own_server.start()  # same port, same data
    rm = ResultsManager(backend=MongoBackend(uri, database="bulk"))
    stored = set(rm.list_ids("bulk"))
    assert {items[i][0] for i in decided} <= stored  # nothing acknowledged was lost
    assert not {items[i][0] for i in error.not_sent} & stored  # nothing unsent was written
    retry = [items[i] for i in sorted([*error.unknown, *error.not_sent])]
    outcomes = rm.set_many(retry, behavior)  # an exact retry: only what is not known to be stored
    for (rid, _), outcome in zip(retry, outcomes, strict=True):
        if rid in stored:  # an unknown item that had been applied: the same content is there
            if behavior is SetBehavior.RAISE_IF_EXISTS:
                assert isinstance(outcome, FileExistsError), (rid, outcome)
            else:  # True: overwritten, or the same content; False: left as it is
                expected = behavior in (SetBehavior.OVERWRITE, SetBehavior.RAISE_IF_DIFFERENT)
                assert outcome is expected, (rid, behavior, outcome)
        else:
            assert outcome is True, (rid, outcome)
    assert rm.list_ids("bulk") == [rid for rid, _ in items]
    assert rm.get_many([rid for rid, _ in items], Metrics) == [m for _, m in items]
    rm.close()


def test_a_write_whose_answer_never_came_is_outcome_unknown(own_server: Server) -> None:
    uri = own_server.uri + "?socketTimeoutMS=1500&serverSelectionTimeoutMS=1500"
    rm = ResultsManager(backend=MongoBackend(uri, database="frozen"))
    rm.set("warm/up", Metrics(loss=0, accuracy=0))
    own_server.freeze(True)  # the command is sent; no answer comes
    try:
        with pytest.raises(OutcomeUnknownError, match="may have been applied") as info:
            rm.set("frozen/1", Metrics(loss=1, accuracy=1))
    finally:
        own_server.freeze(False)
    assert isinstance(info.value, StoreUnavailableError) and isinstance(info.value, ConnectionError)
    # The write may be applied once the server resumes, at any moment, even after a read here:
    # the retry the message advises is safe either way, and the result is stored once.
    rm.set("frozen/1", Metrics(loss=1, accuracy=1), SetBehavior.SKIP_IF_EXISTS)
    assert rm.get("frozen/1", Metrics) == Metrics(loss=1, accuracy=1)
    assert rm.list_ids("frozen") == ["frozen/1"]
    rm.close()


@pytest.mark.parametrize("nth", [1, 2, 3])  # its chunks, its files document, the result's document
def test_server_killed_while_a_large_result_is_written(own_server: Server, nth: int) -> None:
    from .test_large import Scan, _after_grace, sized

    uri = own_server.uri + "?serverSelectionTimeoutMS=1500"
    killer = KillOnWrite(own_server, nth=0)  # armed after the warm-up
    client: MongoClient[dict[str, Any]] = MongoClient(uri, event_listeners=[killer])
    rm = ResultsManager(backend=MongoBackend(client, database="large"))
    rm.set("warm/up", Metrics(loss=0, accuracy=0))
    ops = rm.backend._operations()
    ops.engine = dataclasses.replace(rm.admin.engine(), max_document=64 * 1024)  # GridFS for 300 kB
    killer.writes, killer.nth = 0, nth
    big = sized("s", b"k" * 300_000)
    with pytest.raises(StoreUnavailableError):
        rm.set("s", big)
    client.close()

    own_server.start()  # same port, same data
    again = ResultsManager(backend=MongoBackend(uri, database="large"))
    if again.exists("s"):  # the last write was applied before the server died
        assert again.get("s", Scan) == big
    else:
        with pytest.raises(ResultNotFoundError):
            again.get("s", Scan)
    _after_grace(again)
    again.admin.doctor(fix=True)
    files = again.backend.database()["results._gridfs.files"].count_documents({})
    assert files == int(again.exists("s")) and "problem:" not in str(again.admin.doctor())
    # The write the error advises is safe to repeat, and writes only when the first did not.
    applied = again.exists("s")
    assert again.set("s", big, SetBehavior.SKIP_IF_EXISTS) is not applied
    assert again.get("s", Scan) == big
    again.close()


@pytest.fixture(scope="module")
def documentdb_alone() -> Iterator[DocumentDB]:
    """A reference server of these tests' own: its PostgreSQL is stopped under it."""
    yield from running(DocumentDB, DocumentDB.name)


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("behavior", [SetBehavior.SKIP_IF_EXISTS, SetBehavior.RAISE_IF_DIFFERENT])
def test_postgresql_stopped_during_set_many_is_an_interruption_not_a_refusal(
    documentdb_alone: DocumentDB, behavior: SetBehavior, flavour: str
) -> None:
    server = documentdb_alone
    database = f"pg_{uuid.uuid4().hex[:8]}"
    items = [(f"bulk/{i:05d}", Metrics(loss=i, accuracy=0, step=i)) for i in range(5000)]
    uri = server.uri + "?serverSelectionTimeoutMS=1500"
    stopper = StopPostgresOnAck(server, nth=1)
    rm = ResultsManager(backend=MongoBackend(uri, database=database))
    rm.set("alone/0", Metrics(loss=0, accuracy=0))  # its namespace prepared: a later set sends only its write
    try:
        error = interrupt_set_many(uri, stopper, items, behavior, flavour, database)
        assert stopper.stopped
        # FerretDB reports PostgreSQL gone as InternalError (code 1): unavailable, not refused.
        assert isinstance(error.__cause__, OutcomeUnknownError) and "is unavailable for now (code 1:" in str(error)
        assert not isinstance(error, ValueError)
        decided = [i for i, outcome in enumerate(error.outcomes) if outcome is not None]
        print(f"\n{len(decided)} written, {len(error.unknown)} unknown, {len(error.not_sent)} not sent: {error}")
        assert decided and error.unknown and error.not_sent
        assert sorted([*decided, *error.unknown, *error.not_sent]) == list(range(len(items)))
        assert all(error.outcomes[i] is True for i in decided)  # a fresh database: every decided item was written
        with pytest.raises(StoreUnavailableError, match="unavailable for now") as read:
            rm.list_ids("bulk")
        assert not isinstance(read.value, (OutcomeUnknownError, ValueError))  # a read applies nothing
        with pytest.raises(OutcomeUnknownError, match="may have been applied"):
            rm.set("alone/1", Metrics(loss=1, accuracy=1), behavior)
    finally:
        server.start_postgres()

    stored = set(rm.list_ids("bulk"))
    assert {items[i][0] for i in decided} <= stored  # nothing acknowledged was lost
    assert not {items[i][0] for i in error.not_sent} & stored  # nothing unsent was written
    retry = [items[i] for i in sorted([*error.unknown, *error.not_sent])]
    outcomes = rm.set_many(retry, behavior)  # an exact retry: only what is not known to be stored
    for (rid, _), outcome in zip(retry, outcomes, strict=True):
        assert outcome is True or (rid in stored and outcome is False), (rid, outcome)
    assert rm.list_ids("bulk") == [rid for rid, _ in items]
    assert rm.backend.database()["results.default"].count_documents({"_id": {"$regex": "^bulk/"}}) == len(items)
    assert rm.get_many([rid for rid, _ in items], Metrics) == [m for _, m in items]
    rm.close()


class StopWorkerOnAck(KillOnWrite):
    """Stops one Citus worker's PostgreSQL (``-m immediate``) as the ``nth`` write is acknowledged."""

    stopped = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name in ("insert", "update"):
            self.writes += 1
            if self.writes == self.nth:
                assert isinstance(self.server, Sharded)
                self.server.stop_worker("worker1")
                self.stopped = True


@pytest.fixture(scope="module")
def sharded_alone() -> Iterator[Sharded]:
    """A sharded cluster of these tests' own: one of its workers is stopped under it."""
    # An acknowledged write must survive the worker's stop.
    yield from running(Sharded, Sharded.name, then=Sharded.durable)


@pytest.mark.parametrize("behavior", [SetBehavior.RAISE_IF_EXISTS, SetBehavior.SKIP_IF_EXISTS])
def test_a_worker_node_stopped_during_set_many_is_an_interruption_and_the_retry_stores_each_id_once(
    sharded_alone: Sharded, behavior: SetBehavior, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sharded_alone
    database = f"w_{uuid.uuid4().hex[:8]}"
    uri = server.uri + "?serverSelectionTimeoutMS=1500"
    monkeypatch.setattr(operations, "BATCH", 400)  # five write commands: one written, one cut, three not sent
    items = [(f"bulk/{i:05d}", Metrics(loss=i, accuracy=0, step=i)) for i in range(2000)]
    rm = ResultsManager(backend=MongoBackend(uri, database=database))
    assert rm.admin.shard(namespace="default").problems == 0  # the results spread over both workers
    stopper = StopWorkerOnAck(server, nth=1)
    try:
        error = interrupt_set_many(uri, stopper, items, behavior, "sync", database)
        assert stopper.stopped
        # The coordinator lost its worker (PostgreSQL's connection failure, per write of the bulk):
        # unavailable, not refused, so no item is reported as refused.
        assert isinstance(error.__cause__, OutcomeUnknownError) and "connection to the remote node" in str(error)
        decided = [i for i, outcome in enumerate(error.outcomes) if outcome is not None]
        print(f"\n{len(decided)} written, {len(error.unknown)} unknown, {len(error.not_sent)} not sent: {error}")
        assert decided and error.unknown and error.not_sent
        assert sorted([*decided, *error.unknown, *error.not_sent]) == list(range(len(items)))
        assert all(error.outcomes[i] is True for i in decided)
        with pytest.raises(StoreUnavailableError, match="unavailable for now"):
            rm.list_ids("bulk")  # half the shards are gone: no partial listing
    finally:
        server.start_worker("worker1")

    stored = _listed_when_back(rm, "bulk")
    assert {items[i][0] for i in decided} <= stored
    assert not {items[i][0] for i in error.not_sent} & stored
    retry = [items[i] for i in sorted([*error.unknown, *error.not_sent])]
    outcomes = rm.set_many(retry, behavior)
    for (rid, _), outcome in zip(retry, outcomes, strict=True):
        if rid in stored:  # an unknown item that had been applied, on the worker that stayed up
            assert outcome is False or isinstance(outcome, FileExistsError), (rid, outcome)
        else:
            assert outcome is True, (rid, outcome)
    assert rm.list_ids("bulk") == [rid for rid, _ in items]
    # Each id once, across both workers: the shard key is _id.
    assert rm.backend.database()["results.default"].count_documents({"_id": {"$regex": "^bulk/"}}) == len(items)
    assert rm.get_many([rid for rid, _ in items], Metrics) == [m for _, m in items]
    rm.close()


def _listed_when_back(rm: ResultsManager, prefix: str) -> set[str]:
    """The ids under ``prefix`` once the restarted worker answers again (its pool drops dead connections)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return set(rm.list_ids(prefix))
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


FERRETDB_BACKEND_GONE = [  # what FerretDB 2.5 answered (code 1, InternalError) with its PostgreSQL stopped
    "terminating connection due to administrator command",
    "the database system is shutting down",
    "[msg_listcollections.go:42 handler.(*Handler).msgListCollections] [pool.go:86 documentdb.(*Pool).Acquire] "
    "failed to connect to `user=postgres database=postgres`:\n\t127.0.0.1:5432 (127.0.0.1): dial error: "
    "dial tcp 127.0.0.1:5432: connect: connection refused",
    "context canceled",  # FerretDB itself stopped (SIGTERM) while a command was in flight
]


def _failure(code: int, message: str = "gone", labels: tuple[str, ...] = ()) -> OperationFailure:
    details = {"ok": 0.0, "errmsg": message, "code": code, "errorLabels": list(labels)}
    return OperationFailure(message, code=code, details=details)


@pytest.mark.parametrize(
    "failure",
    [
        *[_failure(code) for code in sorted(TRANSIENT_CODES)],
        _failure(2, labels=("RetryableWriteError",)),
        _failure(2, labels=("TransientTransactionError",)),
        *[_failure(1, message) for message in FERRETDB_BACKEND_GONE],
    ],
    ids=lambda f: f"{f.code}-{str(f)[:20]}",
)
def test_a_server_unavailable_for_now_is_not_a_refusal(failure: OperationFailure) -> None:
    read = translate(failure, "h:1", 1.0, cmd.FindOne("c", {"_id": "a"}))
    assert type(read) is StoreUnavailableError and "h:1 is unavailable for now" in str(read)
    write = translate(failure, "h:1", 1.0, cmd.Insert("c", {"_id": "a"}))
    assert isinstance(write, OutcomeUnknownError) and "may have been applied" in str(write)
    bulk = cmd.BulkWrite("c", (cmd.Insert("c", {"_id": "a"}),))
    assert error_reply(bulk, call_for(bulk), failure) is None  # never read as per-write refusals


def test_a_citus_worker_out_of_reach_is_not_a_refusal() -> None:
    # What a bulk's writes routed to a stopped worker answered: PostgreSQL's 08006 in DocumentDB's coding.
    message = (
        "connection to the remote node postgres@127.0.0.1:54440 failed with the following error: Connection refused"
    )
    failure = BulkWriteError({"writeErrors": [{"index": 1, "code": 100663808, "errmsg": message}], "nInserted": 1})
    assert is_transient(failure) and not isinstance(translate(failure, "h", 1.0, cmd.BulkWrite("c", ())), ValueError)


def test_a_bulk_cut_short_in_one_of_its_writes_is_not_a_refusal() -> None:
    bulk = cmd.BulkWrite("c", (cmd.Insert("c", {"_id": "a"}), cmd.Insert("c", {"_id": "b"})))
    details = {"writeErrors": [{"index": 1, "code": 1, "errmsg": FERRETDB_BACKEND_GONE[0]}], "nInserted": 1}
    failure = BulkWriteError(details)
    assert error_reply(bulk, call_for(bulk), failure) is None
    assert isinstance(translate(failure, "h:1", 1.0, bulk), OutcomeUnknownError)


@pytest.mark.parametrize("failure", [_failure(1, "an internal error of the engine"), _failure(2, "bad value")])
def test_a_refusal_stays_a_refusal(failure: OperationFailure) -> None:
    assert isinstance(translate(failure, "h:1", 1.0, cmd.Insert("c", {"_id": "a"})), RejectedByServerError)


@pytest.mark.parametrize(
    "failure",
    [
        AutoReconnect("injected: connection reset"),  # the transient kinds: NetworkTimeout and the rest alike
        OperationFailure("injected: refused", code=2),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_driver_that_fails_at_any_call_raises_only_library_errors(
    server_db: tuple[str, str], failure: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every driver call of a sweep's calls, failing in turn: each failure reaches the caller translated."""
    from .test_file import _every_kind_of_call

    register_model(Metrics)
    uri, name = server_db
    calls, nth = 0, 0
    invoke = MongoBackend._invoke

    def failing(self: MongoBackend, db: Any, call: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == nth:
            raise failure
        return invoke(self, db, call)

    monkeypatch.setattr(MongoBackend, "_invoke", failing)
    rm = ResultsManager(backend=MongoBackend(uri, database=name))
    _every_kind_of_call(rm)  # counts the driver calls of the whole sweep
    total = calls
    assert total > 20, total
    for armed in range(1, total + 1):
        nth = 0
        rm.clear()
        calls, nth = 0, armed
        raised = _every_kind_of_call(rm)
        leaked = [e for e in raised if not isinstance(e, MongoResultsError)]
        assert not leaked, f"driver call {armed} of {total}: {leaked[0]!r}"
    rm.close()
