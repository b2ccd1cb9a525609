"""``python -m bench sweeps``: a sweep's workers on the reference server, heartbeats on.

- Claims per second: four worker processes each claim and release (``with claim:``, its
  heartbeat on) the free cells of a grid of their own, as the workers of a large sweep do.
- Cells per second: four worker processes run the documented loop (``claim_each``, ``with
  claim:`` and its heartbeat, ``claim.set``) over one shared grid; each cell is claimed,
  stored and released once, and workers that meet on a cell cost each other a command.
- A heartbeat's hold: a worker computes for three leases; another polls ``claim`` meanwhile.
- Takeover: a worker holding a cell is stopped (SIGSTOP); a worker in its ``claim_each`` loop
  takes the cell, and the time from the stop is measured.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import statistics
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pymongo import MongoClient

from mongo_results import MongoBackend, ResultsManager, register_model


class Cell(BaseModel):
    x: int


def _manager(uri: str, database: str) -> ResultsManager:
    register_model(Cell)
    return ResultsManager(backend=MongoBackend(uri, database=database))


WORK = 0.01  # seconds of work per cell of the shared grid


def _sweep(uri: str, database: str, cells: int, own: int | None, namespace: str | None, start: Any, done: Any) -> None:
    rm = _manager(uri, database)
    grid = [f"grid/{'' if own is None else f'{own}/'}{i:06d}" for i in range(cells)]
    rm.claims()  # connected, and the store's clock read, before the timing
    start.wait()
    count = 0
    for claim in rm.claim_each(grid, lease=60, namespace=namespace):
        with claim:
            if own is None:
                time.sleep(WORK)
                claim.set(Cell(x=count))
            count += 1
    done.put(count)
    rm.close()


def _cells_per_second(
    uri: str, database: str, workers: int, cells: int, own: bool, namespace: str | None = None
) -> tuple[float, list[int]]:
    """Cells per second over all workers: each on a grid of its own (claim and release), or one grid (and set)."""
    ctx = multiprocessing.get_context("spawn")
    start, done = ctx.Event(), ctx.Queue()
    each = cells // workers if own else cells
    procs = [
        ctx.Process(target=_sweep, args=(uri, database, each, i if own else None, namespace, start, done))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    time.sleep(2.0)  # the processes import and connect before the clock starts
    began = time.perf_counter()
    start.set()
    counts = [done.get(timeout=600) for _ in procs]
    seconds = time.perf_counter() - began
    for p in procs:
        p.join()
    assert sum(counts) == (each * workers if own else cells), counts  # each cell taken once
    return sum(counts) / seconds, counts


def _hold(uri: str, database: str, rid: str, lease: float, work: float, ready: Any, leaving: Any) -> None:
    rm = _manager(uri, database)
    claim = rm.claim(rid, lease=lease)
    assert claim is not None
    with claim:
        ready.set()
        time.sleep(work)
        leaving.set()  # what comes after the work is not the heartbeat's to hold
    rm.close()


def _heartbeat_holds(uri: str, database: str, lease: float, work: float) -> int:
    """How many of another worker's ``claim`` calls took the cell while its holder worked (0 is right)."""
    ctx = multiprocessing.get_context("spawn")
    ready, leaving = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(uri, database, "held/1", lease, work, ready, leaving))
    holder.start()
    ready.wait(60)
    rm = _manager(uri, database)
    stolen = 0
    while not leaving.is_set():
        claim = rm.claim("held/1", lease=lease)
        if claim is not None:
            stolen += 1
            claim.release()
        time.sleep(0.1)
    holder.join()
    rm.close()
    return stolen


def _takeover(uri: str, database: str, lease: float, rid: str) -> float:
    ctx = multiprocessing.get_context("spawn")
    ready, leaving = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(uri, database, rid, lease, 600, ready, leaving))
    holder.start()
    ready.wait(60)
    rm = _manager(uri, database)
    os.kill(holder.pid or 0, signal.SIGSTOP)
    stopped = time.perf_counter()
    taken = None
    for claim in rm.claim_each([rid], lease=60):
        taken = time.perf_counter() - stopped
        with claim:
            claim.set(Cell(x=1))
    holder.kill()
    holder.join()
    rm.close()
    assert taken is not None
    return taken


def sweeps(uri: str, database: str, cells: int, label: str, out: Path) -> int:
    MongoClient(uri).drop_database(database)
    claimed = {
        (n, ns): _cells_per_second(uri, f"{database}_{n}", n, cells, True, ns)[0]
        for n in (1, 4)
        for ns in ("default", None)
        if MongoClient(uri).drop_database(f"{database}_{n}") is None
    }
    rate, counts = _cells_per_second(uri, database, 4, cells, own=False)
    one, _ = _cells_per_second(uri, f"{database}_one", 1, cells // 4, own=False)
    for name in (f"{database}_one", f"{database}_1", f"{database}_4"):
        MongoClient(uri).drop_database(name)
    stolen = _heartbeat_holds(uri, database, lease=2.0, work=6.0)
    takeovers = [_takeover(uri, database, 2.0, f"stopped/{i}") for i in range(3)]
    MongoClient(uri).drop_database(database)
    rows = [
        f"A sweep's workers, heartbeats on ({label}; one run):",
        "",
        "| measure | figure |",
        "|---|---:|",
        f"| claims/s claimed and released, 4 workers, a grid each ({cells:,} cells in all), namespace named | "
        f"{claimed[4, 'default']:,.0f} |",
        f"| the same, namespace None | {claimed[4, None]:,.0f} |",
        f"| claims/s claimed and released, 1 worker ({cells:,} cells), namespace named | "
        f"{claimed[1, 'default']:,.0f} |",
        f"| the same, namespace None | {claimed[1, None]:,.0f} |",
        f"| cells/s of a shared grid, 4 workers ({WORK * 1000:g} ms of work, set; {cells:,} cells) | {rate:,.0f} |",
        f"| cells/s of a shared grid, 1 worker ({cells // 4:,} cells) | {one:,.0f} |",
        f"| cells per worker of the shared grid, 4 workers | {', '.join(map(str, sorted(counts)))} |",
        f"| another worker's claims that took a cell held 6 s under a 2 s lease | {stolen} |",
        f"| takeover after SIGSTOP, 2 s lease (median of 3; each) | {statistics.median(takeovers):.2f} s "
        f"({', '.join(f'{t:.2f}' for t in takeovers)}) |",
    ]
    text = "\n".join(rows) + "\n"
    (out / "sweeps.md").write_text(text)
    print(text)
    return 0
