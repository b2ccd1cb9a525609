"""``python -m bench scale``: list_ids time against collection size, with the same matches each time."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from mongo_results import MongoBackend, ResultsManager
from mongo_results.core.filters import prefix_filter

from .datasets import SmallFlat
from .measure import percentile

TARGET = "scale/target"
CHUNK = 10_000


def _fill(rm: ResultsManager[Any], size: int, matches: int) -> None:
    model = SmallFlat(
        name="run",
        status="done",
        host="node-00",
        seed=0,
        step=0,
        epochs=1,
        loss=0.5,
        accuracy=0.5,
        lr=0.1,
        converged=True,
    )
    started = time.perf_counter()
    for start in range(0, size, CHUNK):
        ids = [
            f"{TARGET}/run-{i:07d}" if i < matches else f"scale/other/g{i % 100:02d}/run-{i:07d}"
            for i in range(start, min(size, start + CHUNK))
        ]
        rm.set_many([(rid, model) for rid in ids], raise_errors=True)
        done = min(size, start + CHUNK)
        rate = done / (time.perf_counter() - started)
        print(f"\r  filling {done:,}/{size:,} ({rate:,.0f} results/s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def _nodes(plan: dict[str, Any]) -> list[str]:
    """A PostgreSQL plan (FerretDB) as its node types, with the index each scan uses."""
    here = plan.get("Node Type", "?") + (f" {plan['Index Name']}" if "Index Name" in plan else "")
    return [here, *[n for child in plan.get("Plans", []) for n in _nodes(child)]]


def _stages(plan: dict[str, Any]) -> list[str]:
    """A MongoDB winning plan as its stages."""
    children = [plan["inputStage"]] if "inputStage" in plan else plan.get("inputStages", [])
    return [plan["stage"], *[s for child in children for s in _stages(child)]]


def plans(client: MongoClient[dict[str, Any]], database: str, collection: str, prefix: str) -> list[str]:
    """What the server does for the prefix query: MongoDB's stages, or FerretDB's SQL plan nodes."""
    command = {"find": collection, "filter": prefix_filter(prefix), "projection": {"_id": 1}}
    planner = client[database].command("explain", command, verbosity="queryPlanner")["queryPlanner"]
    return _nodes(planner["Plan"]) if "Plan" in planner else _stages(planner["winningPlan"])


def scale(uri: str, database: str, sizes: list[int], matches: int, repeat: int, out: Path) -> int:
    rows: list[dict[str, Any]] = []
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        for size in sizes:
            prefix = f"scale{size}."
            rm: ResultsManager[Any] = ResultsManager(
                backend=MongoBackend(uri, database=database, collection_prefix=prefix)
            )
            rm.clear()
            print(f"{size:,} results, {matches} under {TARGET!r}", file=sys.stderr)
            _fill(rm, size, matches)
            times: list[float] = []
            started = time.perf_counter()
            while len(times) < repeat and (len(times) < 3 or time.perf_counter() - started < 60):
                t = time.perf_counter()
                found = rm.list_ids(TARGET)
                times.append(time.perf_counter() - t)
                if len(found) != matches:
                    raise AssertionError(f"list_ids found {len(found)}, expected {matches}")
            plan = plans(client, database, prefix + "default", TARGET)
            rows.append(
                {"size": size, "matches": matches, "runs": len(times), "median_s": percentile(times, 50), "plan": plan}
            )
            print(
                f"  list_ids: median {percentile(times, 50) * 1e3:.1f} ms over {len(times)} runs; {plan}",
                file=sys.stderr,
            )
            rm.clear()
            rm.close()
    finally:
        client.close()
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(rows, indent=1))
    lines = [
        "| documents | matches | list_ids median | server's plan |",
        "|---:|---:|---:|---|",
    ]
    for r in rows:
        shown = " > ".join(r["plan"])
        lines.append(f"| {r['size']:,} | {r['matches']} | {r['median_s'] * 1e3:.2f} ms | `{shown}` |")
    (out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
