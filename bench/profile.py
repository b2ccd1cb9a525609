"""``python -m bench profile``: where one task's client time goes, per contender, in buckets.

Each contender runs the task ``--rounds`` times under cProfile, on the bench's own datasets and
collections (filled first, as ``python -m bench`` fills them for the read tasks). Each function's
own time is put in one bucket: waiting on the server, the driver's BSON codec, the rest of the
driver, pydantic, mongo_results, the event loop, and everything else. cProfile slows Python
functions more than C ones, so the shares are what to compare, side by side, not the totals. A
builtin outside the buckets (hashing, a dict's methods) counts for the bucket of its main caller.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
from collections import Counter
from pathlib import Path

from .contenders import WRITES, Contender
from .datasets import dataset

WAITING = ("recv_into", "'recv'", "sendall", "select", "poll", "epoll", "kqueue", "'acquire' of '_thread")
# Python functions go by the package they are in; C functions (cProfile's "~") by their name.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("waiting on the server", ()),
    ("BSON codec", ("/bson/", "_cbson", "bson.", "_cmessage")),
    ("PyMongo, other", ("/pymongo/",)),
    ("pydantic", ("/pydantic", "pydantic_core")),
    ("mongo_results", ("/mongo_results/",)),
    ("the event loop", ("/asyncio/",)),
    ("Beanie / ODMantic / Motor", ("/beanie/", "/odmantic/", "/motor/")),
]


def bucket(file: str, function: str) -> str:
    where = function if file == "~" else file
    if file == "~" and any(w in function for w in WAITING):
        return "waiting on the server"
    for name, needles in BUCKETS:
        if any(n in where for n in needles):
            return name
    return "other"


def _profiled(contender: Contender, task: str, kind: str, count: int, rounds: int) -> Counter[str]:
    ds = dataset(kind, count, 10)
    contender.prepare(ds)
    if task not in WRITES:
        contender.reset(ds)
        contender.run("bulk create", ds)
    profile = cProfile.Profile()
    for _ in range(rounds):
        if task in WRITES:
            contender.reset(ds)
        profile.enable()
        contender.run(task, ds)
        profile.disable()
    stats = pstats.Stats(profile)
    spent: Counter[str] = Counter()
    for (file, _, function), (_, _, own, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        found = bucket(file, function)
        if found == "other" and file == "~" and callers:  # a builtin (hashing, dict work): its main caller's
            (caller_file, _, caller), _ = max(callers.items(), key=lambda item: item[1][2])
            found = bucket(caller_file, caller)
        spent[found] += own
    return spent


def profile(uri: str, database: str, kind: str, task: str, names: list[str], count: int, rounds: int, out: Path) -> int:
    from .__main__ import contenders

    loop = asyncio.new_event_loop()
    field = contenders(uri, loop, set(names), database)
    try:
        spent = {c.name: _profiled(c, task, kind, count, rounds) for c in field if c.name in names}
    finally:
        for c in field:
            c.close()
        loop.close()
    buckets = [name for name, _ in BUCKETS] + ["other"]
    lines = [
        f"Where the client's time goes: {kind} × {count}, {task}, {rounds} rounds under cProfile"
        " (own time per bucket, ms per round, and its share):",
        "",
        "| bucket | " + " | ".join(spent) + " |",
        "|---|" + "---:|" * len(spent),
    ]
    for b in buckets:
        cells = [f"{s[b] / rounds * 1e3:.1f} ({s[b] / max(sum(s.values()), 1e-9):.0%})" for s in spent.values()]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    lines.append("| total | " + " | ".join(f"{sum(s.values()) / rounds * 1e3:.1f}" for s in spent.values()) + " |")
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    slug = f"profile-{kind}-{task.replace(' ', '-')}.md"
    (out / slug).write_text(text + "\n")
    print(text)
    return 0
