"""Sweeps that finish: failed cells recorded and bounded, leases kept alive while work runs, nothing left behind.

Every test runs on every store, the sharded cluster included, sync and async (``rm``), and the
ones that need several processes on every store several processes can share (``shared_store``).
"""

from __future__ import annotations

import asyncio
import enum
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mongo_results import AsyncClaim, MongoBackend, ResultsManager, register_model

from .conftest import BACKENDS, FAST, SyncView
from .models import Metrics

M = Metrics(loss=1, accuracy=1)
STORE_KINDS = BACKENDS if FAST else [*BACKENDS, "sharded", "async-sharded"]  # the sharded cluster too


class Boom(RuntimeError):
    pass


def work(rm: Any, claim: Any, body: Callable[[], Any] = lambda: None, seconds: float = 0.0) -> None:
    """``with claim:`` (``async with`` for an async one): ``seconds`` of work with the heartbeat on, then ``body``."""
    if isinstance(claim, AsyncClaim):

        async def run() -> None:
            async with claim:
                await asyncio.sleep(seconds)
                result = body()
                if asyncio.iscoroutine(result):
                    await result

        rm.loop.run_until_complete(run())
    else:
        with claim:
            time.sleep(seconds)
            body()


def fail(message: str) -> Callable[[], None]:
    def body() -> None:
        raise Boom(message)

    return body


def test_a_failing_cell_is_recorded_and_the_exception_goes_on(rm: ResultsManager) -> None:
    register_model(Metrics)
    claim = rm.claim("sweep/a", lease=60)
    assert claim is not None
    with pytest.raises(Boom, match="no convergence"):
        work(rm, claim, fail("no convergence"))
    [failure] = rm.failures()
    assert failure["result_id"] == "sweep/a" and failure["namespace"] is None
    assert failure["error"] == f"{Boom.__module__}.Boom" and failure["message"] == "no convergence"
    assert "raise Boom(message)" in failure["traceback"] and failure["traceback"].endswith("no convergence")
    assert failure["attempts"] == 1 and failure["owner"] == claim.owner
    assert failure["failed_at"].tzinfo is not None
    assert rm.claims() == []  # the claim was let go
    assert rm.missing(["sweep/a"]) == ["sweep/a"]  # nothing stored


def test_attempts_are_bounded_across_workers_and_reset_offers_the_cell_again(rm: ResultsManager) -> None:
    register_model(Metrics)
    for attempt in (1, 2):
        claim = rm.claim("sweep/a", lease=60, max_attempts=2)
        assert claim is not None, f"attempt {attempt} is offered"
        with pytest.raises(Boom):
            work(rm, claim, fail(f"attempt {attempt}"))
    assert rm.failures()[0]["attempts"] == 2 and rm.failures()[0]["message"] == "attempt 2"
    assert rm.claim("sweep/a", lease=60, max_attempts=2) is None  # failed for good
    cells = ["sweep/a", "sweep/b"]
    taken = list(rm.claim_each(cells, lease=60, max_attempts=2))
    assert [c.result_id for c in taken] == ["sweep/b"]  # the loop ends: b done, a failed
    work(rm, taken[0], lambda: taken[0].set(M))
    assert rm.missing(cells) == ["sweep/a"] and [f["result_id"] for f in rm.failures("sweep")] == ["sweep/a"]
    again = rm.claim("sweep/a", lease=60, max_attempts=None)  # no bound: offered
    assert again is not None
    work(rm, again)  # a plain release, no failure: its record goes
    assert rm.failures() == []
    assert rm.reset_failures() == 0


def test_reset_failures_under_a_prefix_forgets_only_those(rm: ResultsManager) -> None:
    register_model(Metrics)
    for rid in ("a/1", "a/2", "b/1"):
        with pytest.raises(Boom):
            work(rm, rm.claim(rid, lease=60), fail(rid))
    assert [f["result_id"] for f in rm.failures("a")] == ["a/1", "a/2"]
    assert rm.reset_failures("a") == 2
    assert [f["result_id"] for f in rm.failures()] == ["b/1"]
    rm.clear()  # ends every claim and failure of the store
    assert rm.failures() == [] and rm.claims() == []


def test_an_interrupt_is_no_failure(rm: ResultsManager) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        work(rm, rm.claim("a", lease=60), interrupt)
    assert rm.failures() == [] and rm.claims() == []


def test_max_attempts_below_one_is_refused_before_any_io(rm: ResultsManager) -> None:
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="max_attempts"):
            rm.claim("a", max_attempts=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_attempts"):
            list(rm.claim_each(["a"], max_attempts=bad))  # type: ignore[arg-type]
    assert rm.claims() == []


def test_a_heartbeat_keeps_a_short_lease_alive_while_the_work_runs(rm: ResultsManager, tmp_path: Path) -> None:
    register_model(Metrics)
    claim = rm.claim("long/1", lease=0.9)
    assert claim is not None
    seen: list[Any] = []

    def done_and_checked() -> Any:
        # Two leases later, the cell is still this worker's: no one else could take it.
        if isinstance(rm, SyncView):  # inside the manager's loop: awaited there

            async def check() -> None:
                seen.append(await rm.manager.claim("long/1", lease=60))
                seen.append([c["owner"] for c in await rm.manager.claims("long")])

            return check()
        seen.append(rm.claim("long/1", lease=60))
        seen.append([c["owner"] for c in rm.claims("long")])
        return None

    work(rm, claim, done_and_checked, seconds=1.8)
    assert seen == [None, [claim.owner]]
    assert rm.claims() == []  # the block's end let it go: the heartbeat stopped
    taken = rm.claim("long/1", lease=60)
    assert taken is not None
    work(rm, taken)


def test_expired_claims_are_removed_by_claims_and_by_the_next_taker(rm: ResultsManager) -> None:
    left = rm.claim("gone/1", lease=0.3)  # a worker that ends without letting go
    assert left is not None
    deadline = time.monotonic() + 30
    while "expired claim" not in str(rm.admin.doctor()):
        assert time.monotonic() < deadline, "the lease did not run out"
        time.sleep(0.05)
    assert rm.claims() == []  # and it is gone from the store
    assert "expired claim" not in str(rm.admin.doctor())


WORKER = textwrap.dedent(
    """
    import sys, time
    from mongo_results import MongoBackend, ResultsManager
    kind, where, database = sys.argv[1], sys.argv[2], sys.argv[3]
    rm = ResultsManager(where) if kind == "file" else ResultsManager(backend=MongoBackend(where, database=database))
    claim = rm.claim("cell/1", lease=float(sys.argv[4]))
    assert claim is not None
    with claim:
        print("holding", flush=True)
        time.sleep(600)
    """
)


def _spec(store: ResultsManager) -> tuple[str, str, str]:
    backend: Any = store.backend
    if isinstance(backend, MongoBackend):
        return "server", str(backend._uri), str(backend.database_name)
    return "file", str(backend.base_dir), "-"  # no database: a placeholder argument


@pytest.mark.real_server
def test_a_stopped_worker_loses_its_cell_after_the_lease_and_a_looping_worker_takes_it(
    shared_store: ResultsManager, tmp_path: Path
) -> None:
    lease = 1.0
    kind, where, database = _spec(shared_store)
    holder = subprocess.Popen(
        [sys.executable, "-c", WORKER, kind, where, database, str(lease)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        assert shared_store.claim("cell/1", lease=60) is None  # alive: its heartbeat keeps the cell
        os.kill(holder.pid, signal.SIGSTOP)  # stopped: no more heartbeats
        stopped = time.monotonic()
        taken = []
        for claim in shared_store.claim_each(["cell/0", "cell/1"], lease=60):  # waits for the held cell
            taken.append((claim.result_id, time.monotonic() - stopped))
            with claim:
                shared_store.set(claim.result_id, M)
        assert [rid for rid, _ in taken] == ["cell/0", "cell/1"]
        # Taken once the lease ran out (a renewal may have just gone out) and well before anything like a poll's end.
        assert taken[1][1] < lease + 5, f"taken {taken[1][1]:.2f} s after the worker stopped"
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert shared_store.missing(["cell/0", "cell/1"]) == []


def test_heartbeats_add_no_command_to_set_and_get(server_db: tuple[str, str]) -> None:
    from .commands import CommandLog

    register_model(Metrics)
    uri, name = server_db
    log = CommandLog({"hello", "isMaster", "ismaster", "ping", "endSessions", "buildInfo"})
    from pymongo import MongoClient

    client: Any = MongoClient(uri, event_listeners=[log])
    rm = ResultsManager(backend=MongoBackend(client, database=name))
    rm.set("warm", M)
    claim = rm.claim("cell/1", lease=30)  # a beat every 10 s: none during the calls below
    assert claim is not None
    with claim:
        log.take()
        claim.set(M)
        rm.get("cell/1", namespace="default")
        sent = log.take()
    assert sent == ["insert", "find"], sent  # the set and the get, nothing of the heartbeat's
    rm.close()
    client.close()


def test_a_view_of_the_failures_is_readable_in_compass(server_db: tuple[str, str]) -> None:
    from pymongo import MongoClient

    uri, name = server_db
    rm = ResultsManager(backend=MongoBackend(uri, database=name))
    with pytest.raises(Boom), rm.claim("cell/1", lease=60) as claim:  # type: ignore[union-attr]
        raise Boom("diverged")
    client: Any = MongoClient(uri)
    doc = client[name]["results._failures"].find_one({"_id": "cell/1"})
    assert doc["attempts"] == 1 and doc["message"] == "diverged" and doc["owner"] == claim.owner
    assert doc["failed_at"].year >= 2026 and "Boom" in doc["error"]
    client.close()
    rm.close()


class Axis(str, enum.Enum):
    sgd = "sgd"
    adam = "adam"


class Level(enum.IntEnum):
    low = 1
    high = 2


class Trial(BaseModel):
    loss: float
    optimizer: Axis
    level: Level


def test_a_sweep_as_a_table_splits_its_ids_into_typed_columns(rm: ResultsManager) -> None:
    register_model(Trial)
    for lr in (0.1, 0.3):
        for seed in (1, 2):
            rm.set(f"sweep/lr={lr}/seed={seed}/run", Trial(loss=lr * seed, optimizer=Axis.sgd, level=Level.high))
    rm.set("sweep/baseline", Trial(loss=1.0, optimizer=Axis.adam, level=Level.low))
    table = rm.to_arrow("sweep", Trial, id_fields=True)
    assert table.column_names == ["id", "lr", "seed", "loss", "optimizer", "level"]
    assert str(table.schema.field("lr").type) == "double" and str(table.schema.field("seed").type) == "int64"
    assert table.column("seed").to_pylist() == [None, 1, 2, 1, 2]  # the baseline has no seed
    by_lr = rm.to_polars("sweep", Trial, id_fields=["lr"]).group_by("lr").len().sort("lr", nulls_last=True)
    assert by_lr.rows() == [(0.1, 2), (0.3, 2), (None, 1)]
    frame = rm.to_dataframe("sweep", Trial, id_fields=["seed"])
    assert list(frame.columns) == ["seed", "loss", "optimizer", "level"]
    assert frame.loc["sweep/lr=0.3/seed=2/run", "seed"] == 2
    # Enums come out as members, as model_dump gives them (str and int enums too).
    assert frame.loc["sweep/baseline", "optimizer"] is Axis.adam and frame.loc["sweep/baseline", "level"] is Level.low
    assert rm.to_dataframe("sweep").loc["sweep/baseline", "level"] is Level.low
    with pytest.raises(ValueError, match="also a column"):
        rm.to_arrow("sweep", Trial, id_fields=["loss"])
    for bad in ("lr", ["lr", "lr"], ["a=b"], [1]):
        with pytest.raises(ValueError, match="id_fields"):
            rm.to_arrow("sweep", Trial, id_fields=bad)  # type: ignore[arg-type]
