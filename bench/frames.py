"""``python -m bench frames``: stored results into a DataFrame, against PyMongoArrow as the floor.

The same 200,000 small results (``--count``) are read on the reference server by PyMongoArrow's
``find_arrow_all`` + ``to_pandas`` (the floor: MongoDB's own BSON→Arrow decoder, no checks), by
PyMongo + ``pandas.json_normalize``, by Beanie's idiomatic ``find_all().to_list()`` then a DataFrame
of the ``model_dump``s, and by mongo_results' ``to_arrow``, ``to_dataframe`` and ``to_polars``,
sync and async. Each read runs in a fresh process (peak RSS over the baseline is its memory),
in interleaved rounds; the median is reported with its ratio to the floor.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pymongo import MongoClient

from mongo_results import MongoBackend, ResultsManager, SetBehavior, register_model

NAMESPACE = "frames"
COLLECTION = f"results.{NAMESPACE}"
BEANIE = "beanie_frames"
READERS = [
    "PyMongoArrow find_arrow_all + to_pandas",
    "PyMongo + json_normalize",
    "Beanie find_all + DataFrame",
    "to_arrow",
    "to_dataframe",
    "to_polars",
    "async to_arrow",
    "async to_dataframe",
]


class Small(BaseModel):
    seed: int
    lr: float
    loss: float
    accuracy: float
    optimizer: str
    converged: bool
    finished_at: datetime


def small(i: int) -> Small:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return Small(
        seed=i, lr=10 ** -(i % 5), loss=1 / (i + 1), accuracy=(i % 1000) / 1000, optimizer=("sgd", "adam")[i % 2],
        converged=i % 3 == 0, finished_at=start + timedelta(seconds=i),
    )  # fmt: skip


def fill(uri: str, database: str, count: int) -> None:
    """The results, written once by mongo_results and once by Beanie's layout (plain fields, BSON dates)."""
    register_model(Small, namespace=NAMESPACE)
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    db = client[database]
    if db[COLLECTION].estimated_document_count() == count and db[BEANIE].estimated_document_count() == count:
        return
    client.drop_database(database)
    rm = ResultsManager(backend=MongoBackend(uri, database=database))
    step = 20_000
    for start in range(0, count, step):
        rm.set_many(
            [(f"sweep/{i:07d}", small(i)) for i in range(start, min(count, start + step))], SetBehavior.OVERWRITE
        )
        db[BEANIE].insert_many(
            [{"_id": f"sweep/{i:07d}", **small(i).model_dump()} for i in range(start, min(count, start + step))]
        )
    rm.close()
    client.close()


def read(reader: str, uri: str, database: str) -> dict[str, Any]:
    """One read in this process: seconds, peak RSS over the baseline, and the result's own size."""
    import pandas
    import pyarrow as pa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        from pymongoarrow.api import Schema, find_arrow_all
    register_model(Small, namespace=NAMESPACE)
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    collection = client[database][COLLECTION]
    rm = ResultsManager(backend=MongoBackend(uri, database=database))
    rm.list_ids("none")  # connected before the clock starts
    loop = asyncio.new_event_loop()
    run: Any
    if reader == "PyMongoArrow find_arrow_all + to_pandas":
        data = pa.struct([("seed", pa.int64()), ("lr", pa.float64()), ("loss", pa.float64()),
                          ("accuracy", pa.float64()), ("optimizer", pa.string()), ("converged", pa.bool_()),
                          ("finished_at", pa.string())])  # fmt: skip
        schema = Schema({"_id": pa.string(), "data": data})

        def run() -> Any:
            return find_arrow_all(collection, {}, schema=schema).flatten().to_pandas()
    elif reader == "PyMongo + json_normalize":

        def run() -> Any:
            return pandas.json_normalize(list(collection.find({}, {"data": 1})))
    elif reader == "Beanie find_all + DataFrame":
        from beanie import Document, init_beanie
        from pymongo import AsyncMongoClient

        class Doc(Document, Small):
            id: str  # type: ignore[assignment]

            class Settings:
                name = BEANIE

        aclient: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        loop.run_until_complete(init_beanie(database=aclient[database], document_models=[Doc]))

        def run() -> Any:
            docs = loop.run_until_complete(Doc.find_all().to_list())
            return pandas.DataFrame([d.model_dump() for d in docs])
    elif reader.startswith("async "):
        from mongo_results import AsyncMongoBackend, AsyncResultsManager

        arm = AsyncResultsManager(backend=AsyncMongoBackend(uri, database=database))
        loop.run_until_complete(arm.list_ids("none"))
        method = getattr(arm, reader.removeprefix("async "))

        def run() -> Any:
            return loop.run_until_complete(method(None, Small, NAMESPACE))
    else:
        method = getattr(rm, reader)

        def run() -> Any:
            return method(None, Small, NAMESPACE)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    if isinstance(out, pa.Table):
        size = out.nbytes
    elif hasattr(out, "estimated_size"):
        size = out.estimated_size()
    else:
        size = int(out.memory_usage(deep=True).sum())
    return {"seconds": seconds, "peak": peak * 1024, "size": size, "rows": len(out)}


def frames(uri: str, database: str, count: int, rounds: int, label: str, out: Path) -> int:
    fill(uri, database, count)
    runs: dict[str, list[dict[str, Any]]] = {r: [] for r in READERS}
    for round_ in range(rounds):
        order = READERS[round_ % len(READERS) :] + READERS[: round_ % len(READERS)]  # interleaved, rotated
        for reader in order:
            done = subprocess.run(
                [sys.executable, "-m", "bench.frames", reader, uri, database],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            got = json.loads(done.stdout.strip().splitlines()[-1])
            assert got["rows"] == count, (reader, got)
            runs[reader].append(got)
    floor = statistics.median(r["seconds"] for r in runs[READERS[0]])
    rows = [
        f"Stored results into a DataFrame: {count:,} small results (7 fields), {label}, median of {rounds} "
        "interleaved runs, each in a fresh process:",
        "",
        "| reader | seconds | × PyMongoArrow | peak memory | result's size | peak / size |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for reader in READERS:
        seconds = statistics.median(r["seconds"] for r in runs[reader])
        peak = statistics.median(r["peak"] for r in runs[reader])
        size = runs[reader][0]["size"]
        rows.append(
            f"| {reader} | {seconds:.2f} | {seconds / floor:.2f}× | {peak / 2**20:,.0f} MiB | "
            f"{size / 2**20:,.0f} MiB | {peak / size:.1f} |"
        )
    text = "\n".join(rows) + "\n"
    (out / "frames.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    print(json.dumps(read(*sys.argv[1:4])))
