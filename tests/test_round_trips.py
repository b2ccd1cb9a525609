"""Each single-namespace operation is one command to the server (PyMongo command monitoring)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from mongo_results import MongoBackend, ResultsManager, SetBehavior
from mongo_results.core import knowledge, operations
from mongo_results.core.filters import prefix_filter

from .commands import CommandLog
from .models import Metrics

# Handshakes, monitoring and session clean-up are not the operation's commands.
NOT_OURS = {"hello", "isMaster", "ismaster", "ping", "endSessions", "buildInfo", "saslStart", "saslContinue"}


class Recorder(CommandLog):
    """The commands of ``get``, ``set``...: the driver's and the engine's look (buildInfo) left out."""

    def __init__(self) -> None:
        super().__init__(NOT_OURS)


@pytest.fixture
def watched(either_db: tuple[str, str]) -> Iterator[tuple[ResultsManager, Recorder, str]]:
    uri, name = either_db
    recorder = Recorder()
    client: MongoClient[dict[str, Any]] = MongoClient(uri, event_listeners=[recorder])
    backend = ResultsManager(backend=MongoBackend(client, database=name))
    backend.set("warmup", Metrics(loss=0, accuracy=0))  # engine check and index creation happen once
    recorder.take()
    yield backend, recorder, backend.admin.engine().name
    client.close()


A = Metrics(loss=1, accuracy=1)
B = Metrics(loss=2, accuracy=2)


@pytest.mark.parametrize("behavior", list(SetBehavior))
@pytest.mark.parametrize("state", ["nothing", "same", "different"])
def test_set_is_one_command(watched: tuple[ResultsManager, Recorder, str], behavior: SetBehavior, state: str) -> None:
    backend, recorder, _ = watched
    if state != "nothing":
        backend.set("r", A)
        recorder.take()
    with contextlib.suppress(FileExistsError):
        backend.set("r", A if state == "same" else B, behavior)
    names = recorder.take()
    inserts = (SetBehavior.RAISE_IF_EXISTS, SetBehavior.KEEP_EXISTING)
    expected = ["insert"] if behavior in inserts else ["update"]
    # A duplicate key from an upsert filtered on the digest may be a lost insert race: the same
    # update command probes what it should mean. FerretDB 1.x leaves a multi-statement update's
    # counts out when one statement fails, so there it is confirmed by repeating the command
    # (SKIP_IF_EXISTS reads instead: a result with a GridFS file may be in the way too).
    if not backend.admin.engine().bulk_updates and (behavior, state) == (SetBehavior.SKIP_IF_EXISTS, "same"):
        expected = ["update", "find"]
    elif not backend.admin.engine().bulk_updates and (behavior, state) == (SetBehavior.RAISE_IF_DIFFERENT, "different"):
        expected = ["update", "update"]
    assert names == expected


def test_reads_and_deletes_in_one_namespace_are_one_command(watched: tuple[ResultsManager, Recorder, str]) -> None:
    backend, recorder, _ = watched
    backend.set("r", A)
    recorder.take()
    assert backend.get("r", Metrics, namespace="default") == A
    assert recorder.take() == ["find"]
    assert backend.exists("r", namespace="default")
    assert recorder.take() == ["find"]
    assert backend.delete("r", namespace="default")
    assert recorder.take() == ["findAndModify"]  # the deleted document says whether it had a GridFS file
    assert not backend.delete("r", namespace="default")
    assert recorder.take() == ["findAndModify"]


def test_without_a_namespace_one_command_per_namespace(watched: tuple[ResultsManager, Recorder, str]) -> None:
    backend, recorder, _ = watched
    backend.set("r", A)
    backend.set("r", B, namespace="other")
    recorder.take()
    assert backend.get("r", Metrics, namespace="other") == B
    recorder.take()
    assert backend.exists("r")
    assert recorder.take()[0] == "listCollections"
    assert backend.delete("r")
    assert recorder.take() == ["listCollections", "findAndModify", "findAndModify"]  # delete lists every time


def test_only_exists_reuses_a_recent_listing_of_namespaces(watched: tuple[ResultsManager, Recorder, str]) -> None:
    """A "yes" cannot change with a namespace created since; any other answer could, so it lists afresh."""
    backend, recorder, _ = watched
    backend.set("r", A)
    assert backend.exists("r")
    recorder.take()
    for _ in range(3):
        assert backend.exists("r")
    assert recorder.take() == ["find"] * 3  # no listCollections within LISTING_TTL
    assert backend.get("r", Metrics) == A
    # Another namespace may hold "r" too (ambiguous): listed again, at once with the read.
    assert sorted(recorder.take()) == ["find", "listCollections"]
    assert not backend.exists("missing")
    assert recorder.take() == ["find", "listCollections"]  # "not found" is only said after listing again


def test_a_namespace_created_elsewhere_is_found_before_saying_not_found(
    watched: tuple[ResultsManager, Recorder, str], either_db: tuple[str, str]
) -> None:
    backend, _, _ = watched
    assert not backend.exists("elsewhere/1")  # this connection has now listed the namespaces
    uri, name = either_db
    other = ResultsManager(backend=MongoBackend(uri, database=name))
    other.set("elsewhere/1", B, namespace="brand-new")
    other.close()
    assert backend.exists("elsewhere/1")
    assert backend.get("elsewhere/1", Metrics) == B
    assert backend.list_ids("elsewhere") == ["elsewhere/1"]


def test_list_ids_is_one_query_per_namespace(watched: tuple[ResultsManager, Recorder, str]) -> None:
    backend, recorder, _ = watched
    for i in range(250):  # more than one batch
        backend.set(f"many/{i:03d}", A)
    backend.set("many/x", A, namespace="other")
    recorder.take()
    assert len(backend.list_ids("many")) == 251
    names = recorder.take()
    assert names[0] == "listCollections"
    assert names.count("find") == 2  # results.default and results.other
    assert set(names[1:]) <= {"find", "getMore"}
    assert len(backend.list_ids("many", namespace="default")) == 250
    assert set(recorder.take()) <= {"find", "getMore"}


def test_reads_without_a_namespace_list_the_namespaces_then_query_each(
    watched: tuple[ResultsManager, Recorder, str],
) -> None:
    """Every time: a namespace another process created a moment ago could add to the answer.

    ``get`` and ``list_ids`` send the listing with the reads of the namespaces listed last (see
    tests/test_together.py), in whichever order their threads reach the server.
    """
    backend, recorder, _ = watched
    backend.set("s/1", A)
    backend.set("s/2", B, namespace="other")
    recorder.take()
    for _ in range(2):
        assert backend.list_ids("s") == ["s/1", "s/2"]
        assert sorted(recorder.take()) == ["find", "find", "listCollections"]
        assert backend.get_many(["s/1"], Metrics) == [A]
        assert recorder.take() == ["listCollections", "find", "find"]
        assert [m for _, m in backend.iter_results("s", Metrics)] == [A, B]
        assert recorder.take() == ["listCollections", "find", "find"]
        assert [m for _, m in backend.find({"loss": {"$gt": 0}}, "s", Metrics)] == [A, B]
        assert recorder.take() == ["listCollections", "find", "find"]


def test_bulk_reads_and_writes_are_batched(
    watched: tuple[ResultsManager, Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, recorder, _ = watched
    monkeypatch.setattr(operations, "BATCH", 100)  # three batches without thousands of documents
    items = [(f"bulk/{i:03d}", Metrics(loss=i, accuracy=0)) for i in range(250)]
    assert backend.set_many(items, SetBehavior.SKIP_IF_EXISTS) == [True] * 250
    names = recorder.take()
    bulk = backend.admin.engine().bulk_updates
    assert names.count("update") == (3 if bulk else 250)  # one bulk write per batch; one each on FerretDB
    inserts = [(f"new/{i:03d}", Metrics(loss=i, accuracy=0)) for i in range(250)]
    assert backend.set_many(inserts) == [True] * 250
    assert recorder.take().count("insert") == 3  # RAISE_IF_EXISTS is a bulk insert on every engine
    got = backend.get_many([rid for rid, _ in reversed(items)], Metrics)
    assert [m.model_dump()["loss"] for m in got] == [float(i) for i in reversed(range(250))]
    names = recorder.take()
    assert names[0] == "listCollections" and names.count("find") == 3  # one $in query per batch


def test_bulk_writes_stay_under_the_servers_batch_cap(
    watched: tuple[ResultsManager, Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, recorder, _ = watched
    cap = backend.admin.engine().max_write_batch
    if cap >= 100_000:
        pytest.skip(f"no cap below the advertised 100,000 writes a command is known for {backend.admin.engine().label}")
    monkeypatch.setattr(operations, "BATCH", 100_000)  # the engine's own cap is what limits a command
    count = cap + 1_000
    items = [(f"cap/{i:06d}", Metrics(loss=i, accuracy=0)) for i in range(count)]
    assert backend.set_many(items) == [True] * count  # FerretDB 2.5 refuses a command of over 25,000
    assert recorder.take().count("insert") == 2
    assert len(backend.list_ids("cap")) == count


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *[n for child in plan.get("Plans", []) for n in _plan_nodes(child)]]


def test_list_ids_reads_the_id_index_and_what_the_reference_server_does_with_it(server_db: tuple[str, str]) -> None:
    uri, name = server_db
    rm = ResultsManager(backend=MongoBackend(uri, database=name))
    rm.set_many([(f"cov/{i:03d}", A) for i in range(50)] + [("cov-2/x", A), ("cov.5", A), ("other/1", A)])
    assert rm.list_ids("cov") == [f"cov/{i:03d}" for i in range(50)]
    db = rm.backend.database()
    query = prefix_filter("cov")
    assert set(query) == {"_id", "$nor"}  # on _id alone, projected on _id alone: a covered query on MongoDB
    planner = db.command(
        "explain",
        {"find": "results.default", "filter": query, "projection": knowledge.ID_ONLY},
        verbosity="queryPlanner",
    )["queryPlanner"]
    if "Plan" not in planner:  # MongoDB: the _id index answers, no document is fetched
        assert "FETCH" not in str(planner["winningPlan"]) and "COLLSCAN" not in str(planner["winningPlan"])
        return
    # DocumentDB: a range of the _id_ btree, never a scan of the table. It has no index-only scan for it:
    # the filter is checked again on each document row (`document @>= ...`), so the rows in the range are
    # read; the bench's large against small "list by prefix" shows what that costs.
    nodes = _plan_nodes(planner["Plan"])
    scans = [n for n in nodes if "Scan" in n["Node Type"]]
    assert [(n["Node Type"], n.get("Index Name")) for n in scans] == [("Index Scan", "_id_")]
    assert "object_id" in scans[0]["Index Cond"] and "document" in scans[0]["Filter"]
    rm.close()
