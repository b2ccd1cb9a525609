"""``python -m bench workers``: where users run it: per-task workers, several event loops, commands per call.

- joblib (loky), Dask (a LocalCluster of processes) and Ray each run tasks that get the manager
  pickled with them and store one result: the median time of that ``set``, inside the task.
- One ``AsyncResultsManager`` used from one event loop, then from three threads' loops at once:
  the median time per ``set`` in each.
- The commands a fresh process sends per call on a prepared store, from PyMongo's command log.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pymongo import MongoClient

from mongo_results import (
    AsyncMongoBackend,
    AsyncResultsManager,
    MongoBackend,
    ResultsManager,
    SetBehavior,
    register_model,
)
from tests.commands import CommandLog


@register_model(namespace="bench")
class Cell(BaseModel):
    task: int
    loss: float


def one_set(rm: ResultsManager, task: int) -> float:
    """A task: store one result with the manager it was given; the seconds the set took."""
    started = time.perf_counter()
    rm.set(f"workers/{task:06d}", Cell(task=task, loss=1 / (task + 1)))
    return time.perf_counter() - started


def _joblib(rm: ResultsManager, tasks: list[int]) -> list[float]:
    from joblib import Parallel, delayed

    return list(Parallel(n_jobs=2, backend="loky")(delayed(one_set)(rm, t) for t in tasks))


def _dask(rm: ResultsManager, tasks: list[int]) -> list[float]:
    from distributed import Client, LocalCluster

    options: dict[str, Any] = {"n_workers": 2, "processes": True, "threads_per_worker": 1, "dashboard_address": ":0"}
    with LocalCluster(**options) as cluster, Client(cluster) as client:
        return list(client.gather(client.map(one_set, [rm] * len(tasks), tasks, pure=False)))


def _ray(rm: ResultsManager, tasks: list[int]) -> list[float]:
    import ray

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    try:
        remote = ray.remote(one_set)
        return list(ray.get([remote.remote(rm, t) for t in tasks]))
    finally:
        ray.shutdown()


FRAMEWORKS: dict[str, Callable[[ResultsManager, list[int]], list[float]]] = {
    "joblib (loky)": _joblib,
    "Dask (LocalCluster, processes)": _dask,
    "Ray": _ray,
}


def _loops(uri: str, database: str, per_loop: int) -> tuple[float, float, float, float]:
    """Seconds per set (wall time over sets) and median set, one loop alone, then three loops at once."""
    manager: AsyncResultsManager[Any] = AsyncResultsManager(backend=AsyncMongoBackend(uri, database=database))

    def loop(tag: str, count: int, times: list[float], start: threading.Barrier | None) -> None:
        async def main() -> None:
            if start is not None:
                start.wait()
            for i in range(count):
                began = time.perf_counter()
                await manager.set(f"loops/{tag}/{i}", Cell(task=i, loss=0), SetBehavior.OVERWRITE)
                times.append(time.perf_counter() - began)
            await manager.close()

        asyncio.run(main())

    alone: list[float] = []
    began = time.perf_counter()
    loop("alone", per_loop * 3, alone, None)
    alone_wall = (time.perf_counter() - began) / len(alone)
    together: list[float] = []
    barrier = threading.Barrier(3)
    threads = [threading.Thread(target=loop, args=(f"t{t}", per_loop, together, barrier)) for t in range(3)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    together_wall = (time.perf_counter() - began) / len(together)
    return alone_wall, together_wall, statistics.median(alone), statistics.median(together)


def _commands(uri: str, database: str) -> list[tuple[str, list[str]]]:
    """The commands each call sends from a manager built afresh on a prepared store (the worker's first calls)."""
    with ResultsManager(backend=MongoBackend(uri, database=database)) as admin:
        admin.set("cmd/prepared", Cell(task=0, loss=0))
    names = CommandLog()
    rm = ResultsManager(backend=MongoBackend(uri, database=database, event_listeners=[names]))
    rows = []
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("first set", lambda: rm.set("cmd/a", Cell(task=1, loss=1))),
        ("set", lambda: rm.set("cmd/b", Cell(task=2, loss=1))),
        ("set SKIP_IF_EXISTS, same", lambda: rm.set("cmd/b", Cell(task=2, loss=1), SetBehavior.SKIP_IF_EXISTS)),
        ("get", lambda: rm.get("cmd/a")),
        ("exists", lambda: rm.exists("cmd/a")),
        ("list_ids", lambda: rm.list_ids("cmd")),
        ("missing", lambda: rm.missing(["cmd/a", "cmd/z"])),
        ("claim (free id)", lambda: rm.claim("cmd/z")),
        ("delete", lambda: rm.delete("cmd/b")),
    ]
    for label, call in calls:
        names.take()
        call()
        rows.append((label, names.take()))
    rm.close()
    return rows


def workers(uri: str, database: str, tasks: int, rounds: int, label: str, out: Path) -> int:
    MongoClient(uri).drop_database(database)
    with ResultsManager(backend=MongoBackend(uri, database=database)) as rm:
        rm.set("workers/prepared", Cell(task=-1, loss=0))  # the collection exists: only the workers' cost
        pickled = pickle.loads(pickle.dumps(rm))
        runs: dict[str, list[float]] = {name: [] for name in FRAMEWORKS}
        for _ in range(rounds):  # interleaved: the machine's noise falls on every framework alike
            for name, run in FRAMEWORKS.items():
                runs[name].append(statistics.median(run(pickled, list(range(tasks)))))
                rm.clear()
                rm.set("workers/prepared", Cell(task=-1, loss=0))
        medians = {name: statistics.median(found) for name, found in runs.items()}
    alone, together, alone_median, together_median = _loops(uri, database, tasks // 3 or 1)
    commands = _commands(uri, f"{database}_commands")
    MongoClient(uri).drop_database(f"{database}_commands")
    base = medians["joblib (loky)"]
    rows = [
        f"Per-task workers ({label}; {tasks} tasks each, the manager pickled with each task; the median of "
        f"{rounds} interleaved rounds' medians):",
        "",
        "| framework | median set in a task | × joblib |",
        "|---|---:|---:|",
        *[f"| {name} | {seconds * 1000:.2f} ms | {seconds / base:.2f}× |" for name, seconds in medians.items()],
        "",
        f"One AsyncResultsManager on several event loops, {tasks} sets (time per set: the wall time over the sets):",
        "",
        "| loops | time per set | × one loop | median set (its latency) |",
        "|---|---:|---:|---:|",
        f"| one loop | {alone * 1000:.2f} ms | 1.00× | {alone_median * 1000:.2f} ms |",
        f"| three loops on three threads at once | {together * 1000:.2f} ms | {together / alone:.2f}× "
        f"| {together_median * 1000:.2f} ms |",
        "",
        "Commands per call from a manager built afresh on a prepared store (PyMongo's command log):",
        "",
        "| call | commands |",
        "|---|---|",
        *[f"| {call} | {len(names)}: {', '.join(names)} |" for call, names in commands],
    ]
    text = "\n".join(rows) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "workers.md").write_text(text)
    print(text)
    return 0
