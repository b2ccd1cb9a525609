"""``python -m bench sharded``: the same calls on the sharded cluster and on the single-node reference server.

Both servers are started for the run: FerretDB 2.5 on DocumentDB (one PostgreSQL), and the same
engine on Citus (a coordinator and two workers, 8 hashed shards), the store sharded with
``shard()``. Each gets the same data; set, get, set_many, list_ids and find are measured in
rounds that alternate between the two, so load on the machine falls on both alike. Then
``explain`` shows how Citus routes a point read (one task: one shard) and a prefix listing
(a task per shard: a hashed key scatters a range).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pymongo import MongoClient

from mongo_results import MongoBackend, ResultsManager, SetBehavior, register_model


class Run(BaseModel):
    loss: float
    step: int


def _store(uri: str, database: str, sharded: bool) -> ResultsManager:
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri) as client:
        client.drop_database(database)
    rm = ResultsManager(backend=MongoBackend(uri, database=database))
    if sharded:
        report = rm.admin.shard(namespace="default")
        assert report.problems == 0, str(report)
    return rm


def _ms(call: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of ``call`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _calls(
    rm: ResultsManager, data: list[tuple[str, Run]], batch: list[tuple[str, Run]], round: int, count: int
) -> dict[str, Callable[[], object]]:
    """The measured calls of one round on one store."""

    def set_one() -> object:
        return rm.set(f"one/{round}/{time.perf_counter_ns()}", Run(loss=1, step=round))

    def get() -> object:
        return rm.get(data[(round * 37) % count][0], Run)

    def set_many() -> object:
        return rm.set_many(batch, SetBehavior.OVERWRITE)

    def list_ids() -> object:
        return rm.list_ids("sweep-3")

    def find() -> object:
        return list(rm.find({"loss": {"$lt": 0.5}}, "sweep-3", model_class=Run, limit=100))

    return {
        "set (one result)": set_one,
        "get": get,
        "set_many (1,000)": set_many,
        f"list_ids (prefix, {count // 10:,} ids)": list_ids,
        "find (prefix, filter, 100)": find,
    }


def sharded(single_uri: str, sharded_uri: str, database: str, count: int, rounds: int, out: Path) -> int:
    register_model(Run)
    stores = {
        "single node": _store(single_uri, database, False),
        "sharded (2 workers)": _store(sharded_uri, database, True),
    }
    data = [(f"sweep-{i % 10}/seed={i:06d}", Run(loss=i / count, step=i)) for i in range(count)]
    for rm in stores.values():
        rm.set_many(data, SetBehavior.OVERWRITE)
    timings: dict[str, dict[str, list[float]]] = {name: {} for name in stores}
    for round in range(rounds):
        for name, rm in stores.items():  # interleaved: each round measures both
            batch = [(f"many-{round}/{i:05d}", Run(loss=0.5, step=i)) for i in range(1000)]
            ops = _calls(rm, data, batch, round, count)
            for op, call in ops.items():
                timings[name].setdefault(op, []).append(_ms(call, 1 if op.startswith("set_many") else 5))
    single, spread = stores
    rows = [
        f"Sharded cluster against the single-node reference server, one run, {count:,} results loaded, "
        f"median of {rounds} interleaved rounds (ms):",
        "",
        f"| call | {single} | {spread} | ratio |",
        "|---|---:|---:|---:|",
    ]
    for op in timings[single]:
        a, b = statistics.median(timings[single][op]), statistics.median(timings[spread][op])
        rows.append(f"| {op} | {a:.2f} | {b:.2f} | {b / a:.1f}× |")
    rows += ["", "`explain` on the sharded cluster (Citus tasks: one per shard queried):", ""]
    db = stores[spread].backend.database()
    from tests.servers import citus_tasks

    for what, query in (
        ("get: {_id: id}", {"_id": data[0][0]}),
        ("list_ids('sweep-3'): an _id range", {"_id": {"$gte": "sweep-3/", "$lt": "sweep-30"}}),
    ):
        tasks, _ = citus_tasks(db.command("explain", {"find": "results.default", "filter": query}))
        rows.append(f"- {what}: Task Count {tasks} of 8 shards")
    text = "\n".join(rows) + "\n"
    (out / "sharded.md").write_text(text)
    print(text)
    for rm in stores.values():
        rm.close()
    return 0
