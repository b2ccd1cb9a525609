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
from pymongo import MongoClient, monitoring

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
CELL = "a claimed cell"
SINGLE = 1.05  # the target for a single call at the largest latency, as a ratio to raw PyMongo


def _calls(rm: ResultsManager, raw: Any) -> dict[str, tuple[Call, Call, int]]:
    """Each call as (mongo_results, raw PyMongo, items per call), given the round's number."""
    trial = Trial(lr=0.1, seed=3, loss=0.25)
    doc = {"lr": 0.1, "seed": 3, "loss": 0.25}

    def claimed_cells(cells: int) -> Call:
        def grid(n: int) -> None:
            for claim in rm.claim_each([f"cell/{cells}/{n}/{i}" for i in range(cells)], lease=60, namespace=NAMESPACE):
                with claim:
                    claim.set(trial)

        return grid

    def raw_cells(cells: int) -> Call:
        def grid(n: int) -> None:  # per cell: take it, store the result, let it go
            claims = raw.database["raw_claims"]
            for i in range(cells):
                claims.insert_one({"_id": f"cell/{cells}/{n}/{i}", "owner": "bench"})
                raw.insert_one({"_id": f"cell/{cells}/{n}/{i}", "data": doc})
                claims.delete_one({"_id": f"cell/{cells}/{n}/{i}", "owner": "bench"})

        return grid

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
        "list_ids (100 ids, every namespace)": (
            lambda n: rm.list_ids("page"),
            lambda n: [d["_id"] for d in raw.find({"_id": {"$gte": "page/", "$lt": "page0"}}, {"_id": 1})],
            1,
        ),
        f"{CELL} (claim_each over {CELLS}: claim, set, release)": (claimed_cells(CELLS), raw_cells(CELLS), CELLS),
        f"{CELL} (claim_each over {2 * CELLS})": (claimed_cells(2 * CELLS), raw_cells(2 * CELLS), 2 * CELLS),
    }


class Spans(CommandLog):
    """Each command's start and end: commands sent at once are one round trip."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: dict[int, list[float]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in self.ignore:
            with self.lock:
                self.spans[event.request_id] = [time.perf_counter(), float("inf")]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        with self.lock:
            if event.request_id in self.spans:
                self.spans[event.request_id][1] = time.perf_counter()

    def round_trips(self) -> int:
        """The most commands that went one after another, each sent once the one before had answered."""
        with self.lock:
            spans, self.spans = sorted(self.spans.values(), key=lambda span: span[1]), {}
        trips, free_at = 0, float("-inf")
        for start, end in spans:  # the longest such chain: greedily, by end
            if start >= free_at:
                trips, free_at = trips + 1, end
        return trips


def _timed(call: Call, n: int, log: Spans) -> tuple[float, int]:
    log.round_trips()
    started = time.perf_counter()
    call(n)
    return time.perf_counter() - started, log.round_trips()


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
            ours_log, raw_log = Spans(), Spans()
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
        "rounds on a prepared store. Round trips: the most commands one call sent one after another, each "
        "once the one before had answered (commands sent at once count once; a claimed cell: per cell, "
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
    lines += ["", "Targets:", "", "| target | measured | |", "|---|---:|---|"]
    top = max(delays)
    by_name = {name: row for name, ms, *row in rows if ms == top}
    for name, (raw_ms, our_ms, _, _) in by_name.items():
        if not name.startswith(CELL):
            ratio = our_ms / raw_ms
            met = "met" if ratio <= SINGLE else "**missed**"
            lines.append(f"| {name} at {top} ms ≤ {SINGLE}× raw | {ratio:.2f}× | {met} |")
    # What one more cell costs: the grid's look (stored and failed cells) is shared by its cells,
    # and made again once it is a second old, so it is measured where both grids take under one.
    low = min(delays)
    small, large = (row[3] for name, ms, *row in rows if ms == low and name.startswith(CELL))
    per_cell = round((large * 2 * CELLS - small * CELLS) / CELLS, 2)
    met = "met" if per_cell <= 3 else "**missed**"
    target = f"{CELL} ≤ 3 round trips: each cell a grid of {2 * CELLS} has over one of {CELLS}, at {low} ms"
    lines.append(f"| {target} | {per_cell:g} | {met} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.md").write_text(text)
    return 0
