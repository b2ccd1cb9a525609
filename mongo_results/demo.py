"""The main job: a parallel hyper-parameter sweep stored with KEEP_EXISTING, then a job array with claims.

    python -m mongo_results.demo                      # embedded store, no server
    python -m mongo_results.demo --uri mongodb://localhost:27017/demo

Worker processes train a small logistic-regression model per configuration.
With a server or a directory each worker stores its own result; the embedded
mongomock store lives in this process, so there the workers hand results back
and this process stores them. A second pass over the same sweep, as a re-run
after a crash would be, asks ``missing()`` which runs are left and trains only those.

Then a job array: the same worker started several times, each claiming the cells
it computes (``claim_each``), as a cluster's array job would. One cell always fails:
its failure is recorded, tried twice in all, and listed at the end. One worker is
killed mid-cell; its claim's heartbeat stops, and once the short lease runs out
another worker finishes the cell. No cell is computed twice to the end. Claims need
a store every worker reaches: on the embedded store this part runs on a temporary
directory.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from .core.behaviors import SetBehavior
from .manager import ResultsManager
from .registry import register_model
from .terminal import Progress, table

SWEEP = "sweep-demo"
SNAPSHOT = datetime(2026, 11, 1, tzinfo=timezone.utc)


class RunConfig(BaseModel):
    learning_rate: float
    batch_size: int
    seed: int
    epochs: int = 15
    dataset_snapshot: datetime = SNAPSHOT


class EpochStats(BaseModel):
    epoch: int
    loss: float
    accuracy: float


@register_model(namespace="demo")
class RunResult(BaseModel):
    config: RunConfig
    history: list[EpochStats]
    final_loss: float
    final_accuracy: float
    best_epoch: int


def result_id(cfg: RunConfig) -> str:
    return f"{SWEEP}/lr={cfg.learning_rate}/batch={cfg.batch_size}/seed={cfg.seed}/metrics"


def sweep(seeds: int = 8) -> list[RunConfig]:
    return [
        RunConfig(learning_rate=lr, batch_size=b, seed=s)
        for lr in (0.3, 0.1, 0.03, 0.01)
        for b in (16, 64, 256)
        for s in range(seeds)
    ]


def train(cfg: RunConfig) -> RunResult:
    """Mini-batch SGD on a synthetic, seeded classification problem: deterministic per config."""
    rng = random.Random(cfg.seed)
    dim, n = 8, 1200
    truth = [rng.gauss(0, 1) for _ in range(dim)]
    xs = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(n)]
    ys = [1.0 if sum(w * x for w, x in zip(truth, row, strict=True)) + rng.gauss(0, 0.5) > 0 else 0.0 for row in xs]
    w = [0.0] * dim
    history: list[EpochStats] = []
    order = list(range(n))
    for epoch in range(cfg.epochs):
        rng.shuffle(order)
        for start in range(0, n, cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            grad = [0.0] * dim
            for i in batch:
                p = 1 / (1 + math.exp(-sum(a * b for a, b in zip(w, xs[i], strict=True))))
                for k in range(dim):
                    grad[k] += (p - ys[i]) * xs[i][k]
            w = [wk - cfg.learning_rate * g / len(batch) for wk, g in zip(w, grad, strict=True)]
        loss = correct = 0.0
        for row, y in zip(xs, ys, strict=True):
            p = min(max(1 / (1 + math.exp(-sum(a * b for a, b in zip(w, row, strict=True)))), 1e-12), 1 - 1e-12)
            loss -= y * math.log(p) + (1 - y) * math.log(1 - p)
            correct += (p > 0.5) == (y == 1.0)
        history.append(EpochStats(epoch=epoch, loss=round(loss / n, 6), accuracy=round(correct / n, 4)))
    best = min(history, key=lambda h: h.loss)
    return RunResult(
        config=cfg,
        history=history,
        final_loss=history[-1].loss,
        final_accuracy=history[-1].accuracy,
        best_epoch=best.epoch,
    )


def train_and_store(rm: ResultsManager | None, cfg: RunConfig) -> tuple[RunResult | None, bool | None]:
    """Runs in a worker: train, and store when the worker can reach the store itself."""
    result = train(cfg)
    if rm is None:
        return result, None
    return None, rm.set(result_id(cfg), result, SetBehavior.KEEP_EXISTING)


def run_pass(rm: ResultsManager, configs: list[RunConfig], workers: int, label: str) -> tuple[int, int, float]:
    """One pass over the sweep; returns (written, skipped, seconds)."""
    embedded = _is_embedded(rm)
    written = skipped = 0
    progress = Progress(len(configs), label, unit="runs")
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(train_and_store, None if embedded else rm, cfg): cfg for cfg in configs}
        for future in as_completed(futures):
            result, stored = future.result()
            if result is not None:  # embedded store: this process writes
                stored = rm.set(result_id(futures[future]), result, SetBehavior.KEEP_EXISTING)
            written += bool(stored)
            skipped += not stored
            progress.advance()
    return written, skipped, time.monotonic() - started


def _is_embedded(rm: ResultsManager) -> bool:
    return bool(getattr(rm.backend, "embedded", False))  # a MongoBackend on mongomock://


def summary(rm: ResultsManager) -> list[str]:
    """Mean final loss per (learning rate, batch size), read back by prefix."""
    groups: dict[tuple[float, int], list[RunResult]] = {}
    for rid in rm.list_ids(SWEEP):
        run = rm.get(rid, RunResult)
        groups.setdefault((run.config.learning_rate, run.config.batch_size), []).append(run)
    rows = sorted(
        (
            (
                f"lr={lr} batch={b}",
                str(len(runs)),
                f"{statistics.mean(r.final_loss for r in runs):.4f}",
                f"{statistics.stdev(r.final_loss for r in runs):.4f}" if len(runs) > 1 else "-",
                f"{statistics.mean(r.final_accuracy for r in runs):.3f}",
                f"seed={min(runs, key=lambda r: r.final_loss).config.seed}",
            )
            for (lr, b), runs in groups.items()
        ),
        key=lambda row: float(row[2]),
    )
    return table(rows, ("configuration", "runs", "mean loss", "std", "accuracy", "best"), numbers_right=True)


ARRAY = "sweep-demo-array"
LEASE = 3.0  # seconds: kept alive by the heartbeat while a cell runs; a dead worker's is free 3 s later
ATTEMPTS = 2  # a cell that fails this many times is left for a person to look at
DIVERGES = 30.0  # the learning rate of the cell that always fails


class DivergedError(ArithmeticError):
    """The training's loss is not a number any more."""


def array_cells() -> list[RunConfig]:
    cells = [
        RunConfig(learning_rate=lr, batch_size=b, seed=0, epochs=8) for lr in (0.3, 0.1, 0.03) for b in (16, 64, 256)
    ]
    return [*cells, RunConfig(learning_rate=DIVERGES, batch_size=64, seed=0, epochs=8)]


def train_cell(cfg: RunConfig) -> RunResult:
    if cfg.learning_rate >= DIVERGES:
        raise DivergedError(f"loss diverged at epoch 1 (learning rate {cfg.learning_rate:g})")
    return train(cfg)


def cell_id(cfg: RunConfig) -> str:
    return f"{ARRAY}/lr={cfg.learning_rate}/batch={cfg.batch_size}/metrics"


def array_worker(target: str, log: str, name: str) -> None:
    """One task of the job array: claim a free cell, compute it, store it; until the sweep is done.

    ``claim_each`` ends when every cell is stored or has failed ``ATTEMPTS`` times; it waits for
    cells other workers hold, so a dead worker's cell is taken once its lease runs out.
    """
    rm: ResultsManager = ResultsManager(target)
    cells = {cell_id(cfg): cfg for cfg in array_cells()}
    with open(log, "a", encoding="utf-8") as out:
        for claim in rm.claim_each(cells, lease=LEASE, namespace="demo", max_attempts=ATTEMPTS):
            out.write(f"{name} took {claim.result_id}\n")
            out.flush()
            try:
                with claim:
                    claim.set(train_cell(cells[claim.result_id]))
            except DivergedError:
                out.write(f"{name} failed {claim.result_id}\n")  # recorded in failures(): the loop goes on
            else:
                out.write(f"{name} stored {claim.result_id}\n")
            out.flush()


def run_array(target: str, workers: int) -> list[str]:
    """Start the job array, kill one task mid-run, and say what happened."""
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "array.log")
        Path(log).touch()
        ctx = multiprocessing.get_context("spawn")
        tasks = [ctx.Process(target=array_worker, args=(target, log, f"task{i}")) for i in range(1, workers + 1)]
        started = time.monotonic()
        for task in tasks:
            task.start()
        # Kill the first task seen holding a claim on a cell it has not stored: mid-run.
        while any(task.is_alive() for task in tasks) and time.monotonic() - started < 120:
            events = Path(log).read_text(encoding="utf-8").splitlines()
            done = {e.split()[2] for e in events if " stored " in e or " failed " in e}
            healthy = {cell_id(cfg) for cfg in array_cells() if cfg.learning_rate < DIVERGES}
            holding = [e.split() for e in events if " took " in e and e.split()[2] in healthy - done]
            if holding:
                name, _, cell = holding[0]
                tasks[int(name.removeprefix("task")) - 1].kill()  # SIGKILL; TerminateProcess on Windows
                lines.append(f"{name} killed while computing {cell} (its claim runs out {LEASE:g} s later)")
                break
            time.sleep(0.005)
        for task in tasks:
            task.join(300)
        events = Path(log).read_text(encoding="utf-8").splitlines()
    stored = Counter(e.split()[2] for e in events if " stored " in e)
    finishers = {e.split()[2]: e.split()[0] for e in events if " stored " in e}
    cells = [cell_id(cfg) for cfg in array_cells()]
    failures = ResultsManager(target).failures(ARRAY)
    failed = {f["result_id"] for f in failures}
    once = all(stored[c] == 1 for c in cells if c not in failed) and len(stored) + len(failed) == len(cells)
    lines.append(
        f"done in {time.monotonic() - started:.1f} s: {len(stored)} of {len(cells)} cells stored, "
        f"{len(failed)} failed; "
        + ("each stored cell computed once to the end" if once else "SOME CELL COMPUTED TWICE OR LEFT")
    )
    killed = [line.split()[4] for line in lines if " killed " in line]
    if killed:
        lines.append(f"{killed[0]} was finished by {finishers.get(killed[0], 'nobody')} after the lease ran out")
    for f in failures:
        error = str(f["error"]).rsplit(".", 1)[-1]
        lines.append(f"failed: {f['result_id']} after {f['attempts']} attempts: {error}: {f['message']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mongo_results.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--uri",
        default=os.environ.get("MONGO_RESULTS_URI", "mongomock://localhost/mongo_results_demo"),
        help="store: a mongodb:// URI, mongomock:// (default, embedded) or a directory",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="worker processes")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per configuration (12 configurations)")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.seeds < 1:
        parser.error("--workers and --seeds must be at least 1")

    rm: ResultsManager = ResultsManager(args.uri)
    configs = sweep(args.seeds)
    where = "embedded mongomock store (in this process)" if _is_embedded(rm) else repr(rm.backend)
    print(f"Sweep of {len(configs)} training runs on {args.workers} worker processes -> {where}")

    written, skipped, secs = run_pass(rm, configs, args.workers, "pass 1")
    print(f"pass 1: {written} results written, {skipped} already stored ({secs:.1f} s)")
    started = time.monotonic()
    left = set(rm.missing([result_id(cfg) for cfg in configs]))  # a re-run trains only what is missing
    todo = [cfg for cfg in configs if result_id(cfg) in left]
    written, _, _ = run_pass(rm, todo, args.workers, "pass 2") if todo else (0, 0, 0.0)
    print(
        f"pass 2 (a re-run): missing() finds {len(todo)} of {len(configs)} runs left, "
        f"{written} trained and written ({time.monotonic() - started:.1f} s)"
    )

    prefix = f"{SWEEP}/lr=0.1"
    print(f"\n{len(rm.list_ids(prefix))} results under {prefix!r}, {len(rm.list_ids(SWEEP))} under {SWEEP!r}\n")
    print("\n".join(summary(rm)))

    with tempfile.TemporaryDirectory() as scratch:
        target = os.path.join(scratch, "array") if _is_embedded(rm) else args.uri
        place = "a temporary directory (the embedded store is this process's)" if _is_embedded(rm) else "the store"
        tasks = max(args.workers, 2) + 1
        print(f"\nJob array: {tasks} tasks claim the {len(array_cells())} cells of {ARRAY!r} on {place}")
        print("\n".join(run_array(target, tasks)))
    rm.close()
    if _is_embedded(rm):
        print(
            "\nThese results lived in this process's memory and are gone now. To keep them, store them in a "
            "directory\n(or a mongodb:// URI) and look at them with the command line:\n\n"
            '    make demo ARGS="--uri ./results"\n'
            "    .venv/bin/mongo-results --uri ./results ls sweep-demo/lr=0.1\n"
            "    .venv/bin/mongo-results --uri ./results stats"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
