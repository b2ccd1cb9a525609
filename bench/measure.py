"""The specification's method: interleaved iterations, nearest-rank percentiles, medians."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .contenders import TASKS, WRITES, Contender
from .datasets import Dataset

PERCENTILES = (10, 25, 50, 75, 90, 95, 98, 99)


def percentile(times: list[float], p: int) -> float:
    """Nearest rank, as the specification defines it: index int(N * p / 100) - 1 of the sorted times."""
    ordered = sorted(times)
    return ordered[max(0, int(len(ordered) * p / 100) - 1)]


@dataclass
class Results:
    """Per (kind, task, contender): every iteration's wall-clock seconds."""

    times: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    cpu: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)  # this process's CPU seconds
    nbytes: dict[str, int] = field(default_factory=dict)
    ops: dict[str, int] = field(default_factory=dict)

    def median(self, kind: str, task: str, name: str) -> float:
        return percentile(self.times[kind, task, name], 50)

    def cpu_per_op(self, kind: str, task: str, name: str) -> float:
        """Median client CPU seconds per result: the library's own cost, whatever the server."""
        return percentile(self.cpu[kind, task, name], 50) / self.ops[kind]

    def mb_per_s(self, kind: str, task: str, name: str) -> float:
        return self.nbytes[kind] / 1e6 / self.median(kind, task, name)

    def to_json(self) -> dict[str, Any]:
        return {
            "nbytes": self.nbytes,
            "ops": self.ops,
            "tasks": [
                {
                    "kind": kind,
                    "task": task,
                    "contender": name,
                    "iterations": len(times),
                    "percentiles": {str(p): percentile(times, p) for p in PERCENTILES},
                    "mb_per_s": self.mb_per_s(kind, task, name),
                    "client_cpu_per_op_s": self.cpu_per_op(kind, task, name),
                }
                for (kind, task, name), times in self.times.items()
            ],
        }


def _check(name: str, task: str, ds: Dataset, out: Any) -> None:
    """A contender that skipped work must not look fast: every answer is compared with the dataset."""
    if task.endswith("list by prefix"):
        if sorted(out) != sorted(ds.ids):
            raise AssertionError(f"{name}, {task}: listed {len(out)} ids, expected {len(ds.ids)}")
        return
    expected = ds.matching() if task.endswith("find by field") else ds.pairs
    if len(out) != len(expected):
        raise AssertionError(f"{name}, {task}: read {len(out)} results, expected {len(expected)}")
    for got, (rid, want) in zip(out[:: max(1, len(out) // 10)], expected[:: max(1, len(out) // 10)], strict=False):
        if got is None or want.model_dump() != {
            k: v for k, v in got.model_dump().items() if k in type(want).model_fields
        }:
            raise AssertionError(f"{name}, {task}: {rid} came back different")


def run(contenders: list[Contender], datasets: list[Dataset], iterations: int, min_seconds: float) -> Results:
    """Each task: ``iterations`` rounds (more while under ``min_seconds``), every contender once per round."""
    results = Results()
    for ds in datasets:
        results.nbytes[ds.kind], results.ops[ds.kind] = ds.nbytes, len(ds.pairs)
        for c in contenders:
            c.prepare(ds)
        for task in TASKS:
            if task not in WRITES:  # the read tasks share one filled collection per contender
                for c in contenders:
                    c.reset(ds)
                    c.run("bulk create", ds)
            started, rounds = time.perf_counter(), 0
            while rounds < iterations or (time.perf_counter() - started < min_seconds and rounds < 100):
                shift = rounds % len(contenders)  # rotate who goes first, so no one always runs on a warm server
                for c in contenders[shift:] + contenders[:shift]:
                    if task in WRITES:
                        c.reset(ds)
                    seconds, cpu, out = c.run(task, ds)
                    if task in WRITES:  # what was written is read back, untimed, and checked
                        for check in ("list by prefix", "bulk read"):
                            _check(c.name, f"{task}, then {check}", ds, c.run(check, ds)[2])
                    else:
                        _check(c.name, task, ds, out)
                    results.times.setdefault((ds.kind, task, c.name), []).append(seconds)
                    results.cpu.setdefault((ds.kind, task, c.name), []).append(cpu)
                rounds += 1
                print(f"\r{ds.kind:>6} · {task:<14} round {rounds}", end="", file=sys.stderr, flush=True)
            print(
                f"\r{ds.kind:>6} · {task:<14} {rounds} rounds in {time.perf_counter() - started:.1f} s", file=sys.stderr
            )
    return results
