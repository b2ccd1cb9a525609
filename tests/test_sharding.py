"""Sharding: ``shard`` on every store, reads across shards in id order, and why the shard key must be ``_id``.

The cluster is FerretDB 2.5 on DocumentDB over Citus (a coordinator and two workers, 8 hashed
shards); the race, node-failure, GridFS, claims and contract tests run there too, from their
own modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from mongo_results import MongoBackend, ResultExistsError, ResultsManager, SetBehavior, register_model
from mongo_results.cli import main
from mongo_results.errors import InvalidShardKeyError

from .models import Metrics
from .servers import citus_tasks


def _drop(uri: str, name: str) -> None:
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri) as client:
        client.drop_database(name)


@pytest.fixture(autouse=True)
def _models() -> None:
    register_model(Metrics)


def test_the_file_and_embedded_stores_have_nothing_to_shard(tmp_path: Path) -> None:
    for rm in (ResultsManager(tmp_path / "files"), ResultsManager("mongomock://localhost/shard_none")):
        report = rm.admin.shard(namespace="default")
        assert report.problems == 0 and report.keys == {} and "nothing to shard" in str(report)
        with pytest.raises(InvalidShardKeyError):
            rm.admin.shard(key={"digest": "hashed"})  # refused on every store, before any I/O
        rm.close()


def test_a_single_server_is_not_a_sharded_cluster(server_db: tuple[str, str]) -> None:
    uri, name = server_db
    with ResultsManager(backend=MongoBackend(uri, database=name)) as rm:
        report = rm.admin.shard()
        assert report.problems == 0 and report.keys == {} and "nothing to shard" in str(report)


def test_shard_on_the_cluster_then_again_and_doctor_says_how(sharded_uri: str, tmp_path: Path) -> None:
    name = "shard_cli"
    _drop(sharded_uri, name)
    uri = sharded_uri.rstrip("/") + f"/{name}"
    out = tmp_path / "out.txt"
    with open(out, "w") as stream:
        assert main(["--uri", uri, "shard", "--namespace", "runs"], stream) == 0
    text = out.read_text()
    # This engine shards on hashed keys only: the ranged form is asked first, as on MongoDB.
    assert 'results.runs: sharded on {_id: "hashed"} (the server refused {_id: 1}' in text
    assert 'results._gridfs.chunks: sharded on {files_id: "hashed"}' in text
    assert 'results._claims: sharded on {_id: "hashed"}' in text
    with open(out, "w") as stream:
        assert main(["--uri", uri, "shard", "--namespace", "runs"], stream) == 0
    assert out.read_text().count("already sharded") == 3
    with open(out, "w") as stream:
        assert main(["--uri", uri, "shard", "--key", '{"digest": "hashed"}'], stream) == 2  # a usage error
        assert main(["--uri", uri, "shard", "--key", "[1]"], stream) == 2  # before: 1
    with ResultsManager(uri) as rm:
        rm.set("a", Metrics(loss=1, accuracy=1), namespace="runs")
        assert 'ok: sharded on {_id: "hashed"}' in str(rm.admin.doctor())
    _drop(sharded_uri, name)


def test_reads_across_shards_come_in_id_order(sharded_db: tuple[str, str]) -> None:
    uri, name = sharded_db
    rm = ResultsManager(backend=MongoBackend(uri, database=name))
    ids = [f"sweep/lr={lr}/seed={seed}" for lr in (0.1, 0.01, 1) for seed in range(40)]
    rm.set_many([(rid, Metrics(loss=i, accuracy=0, step=i)) for i, rid in enumerate(ids)])
    db = rm.backend.database()
    nodes = set().union(
        *(citus_tasks(db.command("explain", {"find": "results.default", "filter": {"_id": rid}}))[1] for rid in ids)
    )
    assert len(nodes) == 2  # the ids live on both workers
    tasks, _ = citus_tasks(
        db.command("explain", {"find": "results.default", "filter": {"_id": {"$gte": "sweep/", "$lt": "sweep0"}}})
    )
    assert tasks == 8  # a prefix is a range of _id: under a hashed key, every shard is asked
    assert rm.list_ids("sweep") == sorted(ids)
    assert rm.list_ids("sweep/lr=0.1") == sorted(i for i in ids if i.startswith("sweep/lr=0.1/"))
    assert [rid for rid, _ in rm.iter_results("sweep", batch_size=7)] == sorted(ids)
    assert [rid for rid, _ in rm.find({"step": {"$gte": 0}}, "sweep")] == sorted(ids)
    top = rm.find({}, "sweep", model_class=Metrics, sort=[("step", -1)], limit=5)
    assert [m.step for _, m in top] == [119, 118, 117, 116, 115]
    rm.close()


def test_a_collection_sharded_on_another_key_stores_one_id_twice_and_the_library_refuses_it(
    sharded_uri: str,
) -> None:
    name = "shard_other_key"
    client: MongoClient[dict[str, Any]] = MongoClient(sharded_uri)
    client.drop_database(name)
    db = client[name]
    # Measured: with the key on another field, each shard keeps _id unique among its own documents only.
    client.admin.command("shardCollection", f"{name}.raw", key={"v": "hashed"})
    for v in range(8):
        db["raw"].insert_one({"_id": "same", "v": v})
    assert db["raw"].count_documents({"_id": "same"}) > 1
    # The library's own collection, sharded on its digest by someone else: two different results
    # under one id would each succeed under RAISE_IF_EXISTS, on their own shards.
    client.admin.command("shardCollection", f"{name}.results.default", key={"digest": "hashed"})
    rm = ResultsManager(backend=MongoBackend(sharded_uri, database=name))
    outcomes: list[bool | Exception] = []
    for step in range(8):
        try:
            outcomes.append(rm.set("one/id", Metrics(loss=1, accuracy=1, step=step), SetBehavior.RAISE_IF_EXISTS))
        except InvalidShardKeyError as exc:
            outcomes.append(exc)
        except ResultExistsError:
            outcomes.append(False)
    assert all(isinstance(o, InvalidShardKeyError) for o in outcomes)  # never success twice: never written
    assert db["results.default"].count_documents({}) == 0
    report = rm.admin.doctor()
    assert "results.default" not in str(report) or "problem: sharded on {digest" in str(report)
    assert rm.admin.shard(namespace="default").problems == 1  # reported, never changed
    rm.close()
    client.drop_database(name)
    client.close()


def test_clear_keeps_the_store_sharded(sharded_db: tuple[str, str]) -> None:
    """Before: clear() dropped the collections, which silently undid shard()."""
    uri, name = sharded_db
    with ResultsManager(backend=MongoBackend(uri, database=name)) as rm:
        rm.set("a", Metrics(loss=1, accuracy=1))
        assert rm.claim("cell") is not None
        rm.clear()
        assert rm.list_ids() == [] and rm.claims() == []
        report = rm.admin.shard(namespace="default")
        assert report.problems == 0 and str(report).count("already sharded") == 3, str(report)
