"""MongoDB storage shape, connections and errors, on mongomock and the real server."""

from __future__ import annotations

import pickle
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from mongo_results import MongoBackend, ResultsManager, SetBehavior, register_model
from mongo_results.errors import InvalidNamespaceError, StoreUnavailableError

from .models import Metrics


@pytest.fixture(params=["mongomock", "server", "ferretdb1"])
def backend(request: pytest.FixtureRequest) -> Iterator[MongoBackend]:
    if request.param == "mongomock":
        b = MongoBackend(f"mongomock://localhost/shape_{uuid.uuid4().hex[:8]}")
    else:
        uri, name = request.getfixturevalue("server_db" if request.param == "server" else "ferretdb1_db")
        b = MongoBackend(uri, database=name)
    yield b
    ResultsManager(backend=b).clear()
    b.close()


def api(backend: MongoBackend) -> ResultsManager:
    """The manager over a store object (the API lives in the managers)."""
    return ResultsManager(backend=backend)


def raw_db(backend: MongoBackend) -> Database[dict[str, Any]]:
    db: Database[dict[str, Any]] = backend._database()
    return db


def test_document_shape(backend: MongoBackend) -> None:
    register_model(Metrics, namespace="analytics")
    before = datetime.utcnow().replace(microsecond=0)
    api(backend).set("sweep-7/lr=0.1/seed=3/metrics", Metrics(loss=0.5, accuracy=0.9, step=3))
    db = raw_db(backend)
    assert db.list_collection_names() == ["results.analytics"]
    doc = db["results.analytics"].find_one({"_id": "sweep-7/lr=0.1/seed=3/metrics"})
    assert doc is not None
    assert doc["path"] == ["sweep-7", "lr=0.1", "seed=3", "metrics"]
    assert doc["model_type"] == "Metrics" and doc["namespace"] == "analytics"
    assert doc["data"] == {"loss": 0.5, "accuracy": 0.9, "step": 3}
    assert isinstance(doc["created_at"], datetime) and doc["created_at"] >= before
    assert doc["updated_at"] == doc["created_at"]
    assert isinstance(doc["digest"], str) and len(doc["digest"]) == 32


def test_overwrite_keeps_created_at_and_moves_updated_at(backend: MongoBackend) -> None:
    api(backend).set("r", Metrics(loss=1, accuracy=1))
    time.sleep(0.01)
    api(backend).set("r", Metrics(loss=2, accuracy=1), SetBehavior.OVERWRITE)
    doc = raw_db(backend)["results.default"].find_one({"_id": "r"})
    assert doc is not None and doc["data"]["loss"] == 2
    if api(backend).admin.engine().faithful_set:
        assert doc["updated_at"] > doc["created_at"]
    else:  # FerretDB 1.x: overwrites replace the document (README, engine compatibility)
        assert doc["updated_at"] == doc["created_at"]


def test_the_path_index_only_when_asked_for(backend: MongoBackend) -> None:
    api(backend).set("r", Metrics(loss=1, accuracy=1))
    assert set(raw_db(backend)["results.default"].index_information()) == {"_id_"}  # each index slows writes
    assert backend._uri is not None
    opted = MongoBackend(backend._uri, database=backend.database_name, path_index=True)
    api(opted).set("r2", Metrics(loss=1, accuracy=1))
    assert set(raw_db(backend)["results.default"].index_information()) == {"_id_", "path_segments"}
    opted.close()


def test_clear_touches_only_its_own_collections(backend: MongoBackend) -> None:
    db = raw_db(backend)
    db["notes"].insert_one({"x": 1})
    db["resultsx"].insert_one({"x": 1})
    api(backend).set("r", Metrics(loss=1, accuracy=1), namespace="a")
    api(backend).set("r", Metrics(loss=1, accuracy=1), namespace="b")
    api(backend).clear()
    assert sorted(db.list_collection_names()) == ["notes", "resultsx"]
    db.drop_collection("notes")
    db.drop_collection("resultsx")


def test_collection_prefix_is_configurable(backend: MongoBackend) -> None:
    other = MongoBackend(raw_db(backend).client, database=backend.database_name, collection_prefix="runs.")
    api(other).set("r", Metrics(loss=1, accuracy=1))
    assert "runs.default" in raw_db(backend).list_collection_names()
    assert api(backend).list_ids() == []
    api(other).clear()


def test_uri_database_and_default() -> None:
    assert MongoBackend("mongodb://h:1/mydb?tls=false").database_name == "mydb"
    assert MongoBackend("mongodb://h:1").database_name == "mongo_results"
    assert MongoBackend("mongodb://h:1/?x=y").database_name == "mongo_results"


def test_a_client_passed_in_is_used_and_not_closed(server_db: tuple[str, str]) -> None:
    uri, name = server_db
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri) as client:
        backend = MongoBackend(client, database=name)
        api(backend).set("r", Metrics(loss=1, accuracy=1))
        backend.close()
        assert client[name]["results.default"].count_documents({}) == 1  # still open
        assert api(MongoBackend(client[name])).list_ids() == ["r"]


def test_unreachable_server_fails_fast_without_the_password() -> None:
    rm = ResultsManager("mongodb://alice:pa55w0rd@127.0.0.1:9/db?serverSelectionTimeoutMS=300")
    started = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        rm.set("r", Metrics(loss=1, accuracy=1))
    assert time.monotonic() - started < 5
    assert isinstance(info.value, StoreUnavailableError)
    message = str(info.value)
    assert "127.0.0.1:9" in message and "within 0.3 s" in message
    assert "pa55w0rd" not in message and "alice" not in message
    with pytest.raises(ConnectionError):
        rm.list_ids()
    rm.close()


def test_unsupported_scheme() -> None:
    with pytest.raises(ValueError, match="Unsupported store URI scheme 'redis'"):
        ResultsManager("redis://localhost/0")
    with pytest.raises(ValueError, match="base_dir or backend"):
        ResultsManager()


def test_unpicklable_backends_say_why(server_uri: str) -> None:
    with pytest.raises(TypeError, match="embedded mongomock"):
        pickle.dumps(ResultsManager("mongomock://localhost/x"))
    client: MongoClient[dict[str, Any]]
    with MongoClient(server_uri) as client, pytest.raises(TypeError, match="build it from a URI"):
        pickle.dumps(MongoBackend(client))


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), [1.0, float("inf")], [[1.0]]], ids=str)
def test_ferretdb1_refusals_come_before_sending(ferretdb1_db: tuple[str, str], value: Any) -> None:
    """FerretDB 1.x refuses ±inf and nested arrays, and drops the connection on NaN: refused here first."""
    from pydantic import BaseModel

    class F(BaseModel):
        f: float | list[float] | list[list[float]]

    uri, name = ferretdb1_db
    backend = MongoBackend(uri, database=name)
    with pytest.raises(ValueError, match=r"FerretDB v1\.24\.2 cannot store field f"):
        api(backend).set("bad", F(f=value))
    [refused] = api(backend).set_many([("bad", F(f=value))])
    assert isinstance(refused, ValueError) and "cannot store field" in str(refused)
    assert api(backend).list_ids() == []
    assert api(backend).set("fine", F(f=1.0))  # the connection survives
    backend.close()


def test_foreign_documents_are_skipped_and_left_alone(backend: MongoBackend) -> None:
    api(backend).set("a/1", Metrics(loss=1, accuracy=1))
    api(backend).set("a/2", Metrics(loss=2, accuracy=1))
    coll = raw_db(backend)["results.default"]
    coll.insert_one({"name": "added in Compass"})  # an ObjectId _id
    coll.insert_one({"_id": "a/3", "note": "no envelope"})
    assert api(backend).list_ids() == ["a/1", "a/2", "a/3"]  # string ids only: no TypeError sorting an ObjectId
    assert [rid for rid, _ in api(backend).iter_results("a", Metrics, batch_size=1)] == ["a/1", "a/2"]
    assert [rid for rid, _ in api(backend).iter_results(None, Metrics, batch_size=1)] == ["a/1", "a/2"]
    assert [d["_id"] for d in api(backend).admin.documents()] == ["a/1", "a/2"]
    api(backend).clear()
    assert api(backend).list_ids() == []  # ours went; the collection, with no result left, is not a namespace
    assert coll.count_documents({}) == 2


def test_clear_leaves_a_foreign_collection_that_shares_the_prefix(backend: MongoBackend) -> None:
    assert backend._uri is not None
    short = MongoBackend(backend._uri, database=backend.database_name, collection_prefix="s")
    db = raw_db(backend)
    db["sessions"].insert_one({"_id": "abc", "user": "x"})
    api(short).set("r", Metrics(loss=1, accuracy=1), namespace="runs")
    api(short).clear()
    assert sorted(db.list_collection_names()) == ["sessions"]
    assert db["sessions"].find_one({"_id": "abc"}) == {"_id": "abc", "user": "x"}
    db.drop_collection("sessions")
    short.close()


def test_stores_whose_prefixes_nest_never_see_each_other(backend: MongoBackend) -> None:
    assert backend._uri is not None
    inner = MongoBackend(backend._uri, database=backend.database_name, collection_prefix="results.v2.")
    outer, nested = api(backend), api(inner)
    nested.set("n/1", Metrics(loss=1, accuracy=1))
    nested.set("n/2", Metrics(loss=2, accuracy=1), namespace="runs")
    outer.set("o/1", Metrics(loss=3, accuracy=1))
    assert outer.list_ids() == ["o/1"] and nested.list_ids() == ["n/1", "n/2"]
    assert not outer.exists("n/1") and [rid for rid, _ in outer.iter_results(None, Metrics)] == ["o/1"]
    assert outer.list_ids(namespace="v2.default") == []  # by name: still not its own
    with pytest.raises(FileNotFoundError):
        outer.get("n/1", Metrics, namespace="v2.default")
    assert not outer.delete("n/1", namespace="v2.default")
    # Writing into the other store's collection is refused before anything is written.
    with pytest.raises(ValueError, match="another store whose collection prefix overlaps"):
        outer.set("x", Metrics(loss=0, accuracy=0), namespace="v2.default")
    outer.clear()
    assert outer.list_ids() == [] and nested.list_ids() == ["n/1", "n/2"]
    assert nested.get("n/2", Metrics) == Metrics(loss=2, accuracy=1)
    nested.clear()
    assert nested.list_ids() == []
    inner.close()


@pytest.mark.parametrize(
    ("prefix", "namespace"),
    [
        ("results._", "gridfs.files"),  # another store's GridFS bucket: its clear() would drop these
        ("results._", "gridfs.chunks"),
        ("results._", "claims"),  # another store's claims: its sweep would never end
        ("other.", "my_claims"),  # the claims of a store with prefix "other.my"
        ("runs", "_gridfs.files"),
    ],
)
def test_no_store_writes_where_another_keeps_its_own_collections(
    backend: MongoBackend, prefix: str, namespace: str
) -> None:
    """Before: store B (prefix "results._") wrote into store A's bucket and claims; A's clear() dropped B's results."""
    assert backend._uri is not None
    other = MongoBackend(backend._uri, database=backend.database_name, collection_prefix=prefix)
    owner = api(backend)
    owner.set("a", Metrics(loss=1, accuracy=1))
    claim = owner.claim("cell", lease=60)
    before = sorted(raw_db(backend).list_collection_names())
    with pytest.raises(InvalidNamespaceError, match=r"never results collections|holds results over 16 MiB"):
        api(other).set("b", Metrics(loss=2, accuracy=2), namespace=namespace)
    with pytest.raises(InvalidNamespaceError):
        api(other).list_ids(namespace=namespace)
    assert sorted(raw_db(backend).list_collection_names()) == before  # nothing was written
    assert api(other).list_ids() == []  # and the owner's claims are no results of the other's
    assert claim is not None
    claim.release()
    owner.clear()
    other.close()


def test_a_collection_that_only_shares_the_prefix_is_not_a_namespace(backend: MongoBackend) -> None:
    assert backend._uri is not None
    short = MongoBackend(backend._uri, database=backend.database_name, collection_prefix="s")
    db = raw_db(backend)
    db["settings"].insert_many([{"_id": "theme", "value": "dark"}, {"_id": "lang", "value": "en"}])
    db["sessions"].create_index("at")  # an empty collection of another tool's
    api(short).set("r", Metrics(loss=1, accuracy=1), namespace="runs")
    assert api(short).list_ids() == ["r"]  # not "lang" and "theme" from namespace "ettings"
    assert [rid for rid, _ in api(short).iter_results(None, Metrics)] == ["r"]
    assert not api(short).exists("theme")
    api(short).clear()
    assert sorted(db.list_collection_names()) == ["sessions", "settings"]
    assert db["settings"].count_documents({}) == 2
    assert "at_1" in db["sessions"].index_information()
    db.drop_collection("settings")
    db.drop_collection("sessions")
    short.close()


def test_a_view_that_shares_the_prefix_is_left_alone(server_db: tuple[str, str]) -> None:
    uri, name = server_db
    backend = MongoBackend(uri, database=name)
    db = raw_db(backend)
    api(backend).set("r", Metrics(loss=1, accuracy=1))
    db.command("create", "results.view", viewOn="results.default", pipeline=[])
    assert api(backend).list_ids() == ["r"]  # once, not again through the view
    api(backend).clear()
    assert "results.view" in db.list_collection_names()
    backend.close()


def test_a_command_rolled_back_for_another_transaction_is_sent_again_and_an_upload_cleaned_first() -> None:
    """Under load the sharded cluster's PostgreSQL answered "deadlock detected" (code 1): nothing was applied."""
    from pymongo.errors import OperationFailure

    from mongo_results.core import commands as cmd
    from mongo_results.stores.pymongo_calls import resend_after

    deadlock = OperationFailure("deadlock detected", code=1, details={"errmsg": "deadlock detected", "code": 1})
    upload = cmd.PutFile("results._gridfs", "F", "x", b"...", {})
    undo = resend_after(upload, deadlock)
    assert undo is not None and [(c.method, c.args) for c in undo] == [("delete", ("F",))]  # its chunks so far
    assert resend_after(cmd.DeleteFile("results._gridfs", "F"), deadlock) == []
    assert resend_after(cmd.Find("results.default", {}), deadlock) == []
    assert resend_after(cmd.Upsert("results.default", {}, {}), deadlock) is None  # the core reads its Conflict
    refused = OperationFailure("bad value", code=2, details={"errmsg": "bad value", "code": 2})
    assert resend_after(upload, refused) is None
