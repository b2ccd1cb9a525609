"""The results as Markdown tables (medians, ratios, targets) and a PNG chart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .contenders import TASKS
from .measure import Results

FLOOR = "PyMongo"
OURS, OURS_ASYNC = "mongo_results", "mongo_results async"
ODMS = ("Beanie", "ODMantic")


def _names(results: Results) -> list[str]:
    return list(dict.fromkeys(name for _, _, name in results.times))


def _kinds(results: Results) -> list[str]:
    return list(dict.fromkeys(kind for kind, _, _ in results.times))


def _table(results: Results, value: Callable[[str, str, str], float], fmt: str, ratios: bool, ops: bool) -> str:
    """One row per (model, task), one column per contender; ``ratios`` adds each value's ratio to raw PyMongo."""
    names = _names(results)
    lines = ["| model | task | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    for kind in _kinds(results):
        for task in TASKS:
            floor = value(kind, task, FLOOR)
            cells = []
            for name in names:
                v = value(kind, task, name)
                ratio = f" ({v / floor:.2f}×)" if ratios and name != FLOOR else ""
                cells.append(fmt.format(v) + ratio)
            label = f"{kind} ×{results.ops[kind]}" if ops else kind
            lines.append(f"| {label} | {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def medians_table(results: Results) -> str:
    """Median milliseconds per task and contender, with the ratio to raw PyMongo."""
    return _table(results, lambda k, t, n: results.median(k, t, n) * 1e3, "{:.1f} ms", ratios=True, ops=True)


def throughput_table(results: Results) -> str:
    """MB/s: the dataset's strict-JSON size over the median time, as the specification scores."""
    return _table(results, results.mb_per_s, "{:.2f}", ratios=False, ops=False)


def cpu_table(results: Results) -> str:
    """Client CPU per result in microseconds (ratio to raw PyMongo): the library's own cost."""
    return _table(results, lambda k, t, n: results.cpu_per_op(k, t, n) * 1e6, "{:.0f}", ratios=True, ops=False)


FLOOR_ASYNC = "PyMongo async"
NOISE = 1.05  # one run's noise: against a peer, or async against sync, up to 5% slower counts as level


def _every_task(target: str, word: str, shares: dict[str, float]) -> tuple[str, str, bool]:
    """A target met when no task's share is over NOISE: the tasks over it, and the worst."""
    over = [t for t, share in shares.items() if share > NOISE]
    worst = max(shares, key=shares.__getitem__)
    verdict = "on every task" if not over else f"{word} on " + ", ".join(over)
    return target, f"{verdict} (worst {worst}: {shares[worst]:.2f}×)", not over


def targets(results: Results) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each of the project's speed targets."""
    out: list[tuple[str, str, bool]] = []
    m = results.median
    names = _names(results)

    def ratio(kind: str, task: str, name: str, floor: str) -> float:
        return m(kind, task, name) / m(kind, task, floor)

    for kind in _kinds(results):
        r = ratio(kind, "bulk create", OURS, FLOOR)
        out.append((f"{kind}: set_many ≤ 1.5× insert_many", f"{r:.2f}×", r <= 1.5))
        for task in ("bulk read", "find by field"):
            sync, aio = ratio(kind, task, OURS, FLOOR), ratio(kind, task, OURS_ASYNC, FLOOR_ASYNC)
            out.append((f"{kind}: {task} ≤ 1.3× raw, sync / async", f"{sync:.2f}× / {aio:.2f}×", max(sync, aio) <= 1.3))
        if FLOOR_ASYNC in names:
            gaps = {t: ratio(kind, t, OURS_ASYNC, FLOOR_ASYNC) / ratio(kind, t, OURS, FLOOR) for t in TASKS}
            out.append(_every_task(f"{kind}: async's ratio to raw async ≤ sync's to raw sync", "worse", gaps))
        for ours in (OURS, OURS_ASYNC):
            for odm in (o for o in ODMS if o in names):
                shares = {t: m(kind, t, ours) / m(kind, t, odm) for t in TASKS}
                out.append(_every_task(f"{kind}: {ours} as fast as {odm} on every task", "slower", shares))
    return out


def targets_table(results: Results) -> str:
    rows = [f"| {t} | {v} | {'met' if ok else '**missed**'} |" for t, v, ok in targets(results)]
    return "\n".join(["| target | measured | |", "|---|---:|---|", *rows])


def chart(results: Results, path: Path, title: str) -> None:
    """Ratio to raw PyMongo per task (log scale), one panel per model kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in _names(results) if n != FLOOR]
    kinds = _kinds(results)
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.8), sharey=True, squeeze=False)
    width = 0.8 / len(names)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for j, name in enumerate(names):
            ratios = [results.median(kind, t, name) / results.median(kind, t, FLOOR) for t in TASKS]
            ax.bar([i + (j - (len(names) - 1) / 2) * width for i in range(len(TASKS))], ratios, width, label=name)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(TASKS)), [t.replace(" ", "\n") for t in TASKS])
        ax.set_title(f"{kind} model ×{results.ops[kind]}")
    axes[0][0].set_ylabel("median time ÷ raw PyMongo (lower is better)")
    axes[0][-1].legend(fontsize="small")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
