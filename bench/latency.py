"""``python -m bench latency``: single calls at a real network's latency, against raw PyMongo doing the same.

Toxiproxy sits between the clients and the reference server and delays every reply by
``--ms`` (1 and 20 by default). For each call on a prepared store (its collection, indexes
and engine known, as in a worker after its first call): the median time over ``--rounds``
rounds, raw PyMongo's for the same work, their ratio, and how many commands each sent (its
round trips), from PyMongo's command log. At 20 ms a round trip dominates everything else,
so the ratio is the round trips' ratio.
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
from tests.commands import CommandLog
from tests.toxiproxy import Toxiproxy

NAMESPACE = "latency"
COLLECTION = f"results.{NAMESPACE}"


@register_model(namespace=NAMESPACE)
class Trial(BaseModel):
    lr: float
    seed: int
    loss: float


Call = Callable[[int], Any]
CELLS = 10  # a claimed cell is timed over a grid of this many, as claim_each takes them


def _calls(rm: ResultsManager, raw: Any) -> dict[str, tuple[Call, Call, int]]:
    """Each call as (mongo_results, raw PyMongo, items per call), given the round's number."""
    trial = Trial(lr=0.1, seed=3, loss=0.25)
    doc = {"lr": 0.1, "seed": 3, "loss": 0.25}

    def claimed_cells(n: int) -> None:
        for claim in rm.claim_each([f"cell/{n}/{i}" for i in range(CELLS)], lease=60, namespace=NAMESPACE):
            with claim:
                claim.set(trial)

    def raw_cells(n: int) -> None:  # per cell: take it, store the result, let it go
        claims = raw.database["raw_claims"]
        for i in range(CELLS):
            claims.insert_one({"_id": f"cell/{n}/{i}", "owner": "bench"})
            raw.insert_one({"_id": f"cell/{n}/{i}", "data": doc})
            claims.delete_one({"_id": f"cell/{n}/{i}", "owner": "bench"})

    return {
        "set (new id)": (
            lambda n: rm.set(f"new/{n}", trial, namespace=NAMESPACE),
            lambda n: raw.insert_one({"_id": f"new/{n}", "data": doc}),
            1,
        ),
        "set (OVERWRITE)": (
            lambda n: rm.set("same", trial, SetBehavior.OVERWRITE, namespace=NAMESPACE),
            lambda n: raw.replace_one({"_id": "same"}, {"data": doc}, upsert=True),
            1,
        ),
        "get (namespace named)": (
            lambda n: rm.get("same", Trial, namespace=NAMESPACE),
            lambda n: Trial.model_validate(raw.find_one({"_id": "same"})["data"]),
            1,
        ),
        "get (every namespace)": (
            lambda n: rm.get("same"),
            lambda n: Trial.model_validate(raw.find_one({"_id": "same"})["data"]),
            1,
        ),
        "exists": (
            lambda n: rm.exists("same", namespace=NAMESPACE),
            lambda n: raw.find_one({"_id": "same"}, {"_id": 1}) is not None,
            1,
        ),
        "list_ids (100 ids)": (
            lambda n: rm.list_ids("page", namespace=NAMESPACE),
            lambda n: [d["_id"] for d in raw.find({"_id": {"$gte": "page/", "$lt": "page0"}}, {"_id": 1})],
            1,
        ),
        f"a claimed cell (claim_each over {CELLS}: claim, set, release)": (claimed_cells, raw_cells, CELLS),
    }


def _timed(call: Call, n: int, log: CommandLog) -> tuple[float, int]:
    log.commands()
    started = time.perf_counter()
    call(n)
    return time.perf_counter() - started, len(log.commands())


def latency(uri: str, database: str, delays: list[int], rounds: int, label: str, out: Path) -> int:
    """Run every call at every delay; write ``latency.md``. Returns the exit code."""
    proxy = Toxiproxy().start()
    rows = []
    try:
        port = proxy.proxy("bench", uri.split("//", 1)[1].split("/", 1)[0])
        delayed = f"mongodb://127.0.0.1:{port}/"
        for ms in delays:
            if ms:
                proxy.add_toxic("bench", "latency", latency=ms)
            ours_log, raw_log = CommandLog(), CommandLog()
            ours_client: MongoClient[dict[str, Any]]
            raw_client: MongoClient[dict[str, Any]]
            with (
                MongoClient(delayed, event_listeners=[ours_log]) as ours_client,
                MongoClient(delayed, event_listeners=[raw_log]) as raw_client,
            ):
                ours_client.drop_database(database)
                rm = ResultsManager(backend=MongoBackend(ours_client, database=database))
                raw: Any = raw_client[database]["raw"]
                rm.set_many(
                    [(f"page/{i:03d}", Trial(lr=0.1, seed=i, loss=0.5)) for i in range(100)], namespace=NAMESPACE
                )
                raw.insert_many([{"_id": f"page/{i:03d}", "data": {"seed": i}} for i in range(100)])
                calls = _calls(rm, raw)
                for ours, theirs, _ in calls.values():  # warm: the store prepared, the pools open
                    ours(-1)
                    theirs(-1)
                for name, (ours, theirs, per) in calls.items():
                    mine, others = [], []
                    for n in range(rounds):  # interleaved: both meet the same moment of the machine
                        mine.append(_timed(ours, n, ours_log))
                        others.append(_timed(theirs, n, raw_log))
                    rows.append(
                        (
                            name,
                            ms,
                            statistics.median(t for t, _ in others) * 1000 / per,
                            statistics.median(t for t, _ in mine) * 1000 / per,
                            max(c for _, c in others) / per,
                            max(c for _, c in mine) / per,
                        )
                    )
                rm.close()
                ours_client.drop_database(database)
            if ms:
                proxy.request("DELETE", "/proxies/bench/toxics/latency_downstream")
    finally:
        proxy.stop()
    lines = [
        f"Single calls through Toxiproxy adding each reply's delay, {label}; medians of {rounds} interleaved "
        "rounds on a prepared store. Round trips: the most commands one call sent (a claimed cell: per cell, "
        "with claim_each's look for stored and failed cells and served finished marks shared by the grid).",
        "",
        "| call | added latency | raw PyMongo | mongo_results | × raw | round trips (raw / ours) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, ms, raw_ms, our_ms, raw_trips, our_trips in rows:
        ratio = our_ms / raw_ms
        lines.append(
            f"| {name} | {ms} ms | {raw_ms:.2f} ms | {our_ms:.2f} ms | {ratio:.2f}× | {raw_trips:g} / {our_trips:g} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.md").write_text(text)
    return 0
