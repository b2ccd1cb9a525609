"""``python -m bench overhead``: what mongo_results adds per call, with no server at all.

The operations are generators that take every decision without I/O, so they can
be driven with canned replies: what is timed is validation, encoding, the
digest, planning and reading the reply, against the Python work of the
hand-written PyMongo contender (``{"_id": id, **model_dump()}`` and
``model_validate``). Neither side includes the driver's BSON encoding or the
network, which cost the same per byte for both.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bson

from mongo_results import SetBehavior
from mongo_results.core.commands import BulkWrite, Command, Find, FindOne, Insert, ListCollections, Together, Written
from mongo_results.core.operations import Operation, Operations
from mongo_results.core.profiles import EngineProfile
from mongo_results.core.runloop import run
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
    # Each dataset's model has a namespace of its own (bench/datasets.py), whose indexes exist and
    # whose collection is proven ours: only the steady state is timed.
    for namespace in ("default", *KINDS):
        ops.indexed.add(namespace)
        ops.owned.add(f"results.{namespace}")
    return ops


def tasks(ds: Dataset, engine: EngineProfile) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """Per task: (the PyMongo contender's Python work, mongo_results' operation), both over the dataset."""
    stored: dict[str, Any] = {}  # the documents as the driver hands them back
    for rid, model in ds.pairs:
        _drive(_ops(engine).set(rid, model, SetBehavior.RAISE_IF_EXISTS, None, False, secrets=False), _keep(stored))
    raw = {rid: bson.decode(bson.encode({"_id": rid, **m.model_dump()})) for rid, m in ds.pairs}
    names = [f"results.{ds.kind}"]

    def answer(command: Command) -> Any:
        if isinstance(command, Together):
            return [answer(c) for c in command.commands]
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


def command_counts(engine: EngineProfile) -> list[tuple[str, list[str]]]:
    """The commands each call sends, run on an embedded database with this engine's flags (two namespaces)."""
    import threading

    import mongomock

    from mongo_results.core.runloop import stream
    from mongo_results.stores.embedded import execute_embedded

    db: Any = mongomock.MongoClient().db
    lock = threading.RLock()
    ops = Operations("results.", models=MODELS, engine=engine, validation="off")
    sent: list[str] = []

    def execute(command: Command) -> Any:
        if isinstance(command, Together):  # one round trip: the commands go at once
            sent.append(" + ".join(type(c).__name__ for c in command.commands) + " at once")
            return [execute_embedded(db, c, lock) for c in command.commands]
        sent.append(type(command).__name__)
        return execute_embedded(db, command, lock)

    def count(operation: Operation[Any]) -> list[str]:
        sent.clear()
        with contextlib.suppress(FileExistsError):
            for _ in stream(operation, execute):
                pass
        return list(sent)

    ds = dataset("small", 2, 1)
    (_, a), (_, b) = ds.pairs
    Small = ds.model
    count(ops.set("x/1", a, SetBehavior.RAISE_IF_EXISTS, "default", False, secrets=False))
    count(ops.set("x/2", a, SetBehavior.RAISE_IF_EXISTS, "other", False, secrets=False))
    rows = []
    for behavior in SetBehavior:
        for state in ("nothing", "same", "different"):
            rid = f"s/{behavior.name}/{state}"
            if state != "nothing":
                count(ops.set(rid, a, SetBehavior.RAISE_IF_EXISTS, "default", False, secrets=False))
            model = b if state == "different" else a
            rows.append(
                (f"set {behavior.name}, {state} stored", count(ops.set(rid, model, behavior, "default", False)))
            )
    rows += [
        ("get, namespace given", count(ops.get("x/1", Small, "default"))),
        ("exists, namespace given", count(ops.exists("x/1", "default"))),
        ("list_ids, namespace given", count(ops.list_ids("x", "default"))),
        ("delete, namespace given", count(ops.delete("s/OVERWRITE/same", "default"))),
        ("delete of nothing, namespace given", count(ops.delete("s/OVERWRITE/same", "default"))),
    ]
    ops._listed = None  # the first read without a namespace lists them
    rows.append(("list_ids, no namespace, first", count(ops.list_ids("x", None))))
    rows += [
        ("list_ids, no namespace, steady", count(ops.list_ids("x", None))),
        ("get, no namespace, steady", count(ops.get("x/1", Small, None))),
        ("get_many, no namespace, steady", count(ops.get_many(["x/1", "x/2"], Small, None))),
        ("iter_results, no namespace, steady", count(ops.iter_results("x", Small, None, 500))),
        ("find, no namespace, steady", count(ops.find({"step": {"$gte": 0}}, "x", Small))),
        ("delete, no namespace", count(ops.delete("x/1", None))),
    ]
    return rows


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
    rows += [
        "",
        f"Commands per call ({engine_name} engine flags; two namespaces; steady: the namespaces were listed "
        f'before; a server\'s executor sends the commands of one "at once" on connections of their own):',
        "",
        "| call | commands | round trips | sent |",
        "|---|---:|---:|---|",
    ]
    for call, sent in command_counts(engine):
        commands = sum(len(s.split(" + ")) for s in sent)
        rows.append(f"| {call} | {commands} | {len(sent)} | {', '.join(sent)} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "overhead.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0
