"""``python -m bench overhead``: what mongo_results adds per call, with no server at all.

The operations are generators that take every decision without I/O, so they can
be driven with canned replies: what is timed is validation, encoding, the
digest, planning and reading the reply, against the Python work of the
hand-written PyMongo contender (``{"_id": id, **model_dump()}`` and
``model_validate``). Neither side includes the driver's BSON encoding or the
network, which cost the same per byte for both.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bson

from mongo_results import SetBehavior
from mongo_results.core.commands import BulkWrite, Command, Find, FindOne, Insert, ListCollections, Written
from mongo_results.core.drive import run
from mongo_results.core.operations import Operation, Operations
from mongo_results.core.profiles import EngineProfile
from mongo_results.registry import MODELS

from .datasets import KINDS, Dataset, dataset
from .measure import percentile

ENGINES = {
    "mongodb": EngineProfile(),
    "ferretdb2": EngineProfile.from_build_info({"ferretdb": {"version": "v2.5.0"}}),
    "ferretdb1": EngineProfile.from_build_info({"ferretdbVersion": "v1.24.2"}),
}


def _drive(operation: Operation[Any], answer: Callable[[Command], Any]) -> Any:
    return run(operation, answer)


def _ops(engine: EngineProfile) -> Operations:
    ops = Operations("results.", models=MODELS, engine=engine)
    ops.indexed.add("default")  # the indexes exist and the collection is proven ours: only the steady state is timed
    ops.owned.add("results.default")
    return ops


def tasks(ds: Dataset, engine: EngineProfile) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """Per task: (the PyMongo contender's Python work, mongo_results' operation), both over the dataset."""
    stored: dict[str, Any] = {}  # the documents as the driver hands them back
    for rid, model in ds.pairs:
        _drive(_ops(engine).set(rid, model, SetBehavior.RAISE_IF_EXISTS, None, False, secrets=False), _keep(stored))
    raw = {rid: bson.decode(bson.encode({"_id": rid, **m.model_dump()})) for rid, m in ds.pairs}
    names = ["results.default"]

    def answer(command: Command) -> Any:
        if isinstance(command, ListCollections):
            return names
        if isinstance(command, FindOne):
            return stored[command.filter["_id"]]
        if isinstance(command, Find):
            return [stored[i] for i in command.filter["_id"]["$in"]]
        if isinstance(command, BulkWrite):
            return [Written(True)] * len(command.writes)
        return Written(True)

    def set_one() -> list[Any]:
        ops = _ops(engine)
        return [
            _drive(ops.set(rid, model, SetBehavior.RAISE_IF_EXISTS, None, False, secrets=False), answer)
            for rid, model in ds.pairs
        ]

    def get_one() -> list[Any]:
        ops = _ops(engine)
        return [_drive(ops.get(rid, ds.model, None), answer) for rid in ds.ids]

    return {
        "create one": (lambda: [{"_id": r, **m.model_dump()} for r, m in ds.pairs], set_one),
        "find by id": (lambda: [ds.model.model_validate(raw[r]) for r in ds.ids], get_one),
        "bulk create": (
            lambda: [{"_id": r, **m.model_dump()} for r, m in ds.pairs],
            lambda: _drive(_ops(engine).set_many(ds.pairs, SetBehavior.RAISE_IF_EXISTS, None, secrets=False), answer),
        ),
        "bulk read": (
            lambda: [ds.model.model_validate(raw[r]) for r in ds.ids],
            lambda: _drive(_ops(engine).get_many(ds.ids, ds.model, None), answer),
        ),
    }


def _keep(into: dict[str, Any]) -> Callable[[Command], Any]:
    def answer(command: Command) -> Any:
        assert isinstance(command, Insert)
        into[command.document["_id"]] = bson.decode(bson.encode(command.document))
        return Written(True)

    return answer


def _best(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return percentile(times, 50)


def overhead(count: int, rounds: int, engine_name: str, out: Path) -> int:
    engine = ENGINES[engine_name]
    rows = [
        f"Client CPU per result with canned replies (no server, no driver), {engine_name} engine flags, "
        f"median of {rounds} rounds of {count}:",
        "",
        "| model | task | hand-written PyMongo | mongo_results | added |",
        "|---|---|---:|---:|---:|",
    ]
    for kind in KINDS:
        ds = dataset(kind, count, 5)
        for task, (raw, ours) in tasks(ds, engine).items():
            # Side by side, alternating, so both see the same machine.
            a = b = float("inf")
            for _ in range(3):
                a, b = min(a, _best(raw, rounds)), min(b, _best(ours, rounds))
            a, b = a / count * 1e6, b / count * 1e6
            rows.append(f"| {kind} | {task} | {a:.1f} µs | {b:.1f} µs | +{b - a:.1f} µs |")
            print(rows[-1], file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    (out / "overhead.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0
