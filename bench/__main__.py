"""``python -m bench``: mongo_results against raw PyMongo, Beanie, ODMantic and the file store.

python -m bench                      # all contenders, on the reference server started for the run
python -m bench --ops 10000 --iterations 100 --min-seconds 60   # the specification's sizes
MONGODB_URI=mongodb://host/ python -m bench
python -m bench scale                # list_ids: 10,000 vs 1,000,000 documents, same 100 matches
python -m bench overhead             # the library's own CPU per call, with no server
python -m bench large                # results over 16 MiB, set and got on every store
python -m bench claims               # claim_each over free ids, missing() over 100,000 ids
python -m bench sweeps               # 4 workers' cells/s with heartbeats, takeover after SIGSTOP
python -m bench frames               # 200,000 results into a DataFrame, against PyMongoArrow (--count 1000000)
python -m bench sharded              # the sharded cluster against the single-node server, with explain
python -m bench workers              # per-task workers (joblib, Dask, Ray), several event loops, commands per call
python -m bench latency              # single calls through Toxiproxy at 1 and 20 ms, against raw PyMongo, round trips
python -m bench profile --kind large --task "bulk read"   # where one task's client time goes, in buckets
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from mongo_results.core.profiles import EngineProfile

from .contenders import (
    TASKS,
    Contender,
    RawAsyncPyMongo,
    RawPyMongo,
    file_store,
    mongo_results_named,
    mongo_results_sync,
)
from .datasets import KINDS, dataset

OUT = Path(__file__).resolve().parent / "results"
DATABASE = "mongo_results_bench"


@contextlib.contextmanager
def server(uri: str | None) -> Iterator[str]:
    """The given server, or the test suite's engine ladder: FerretDB 2.5 on DocumentDB, else FerretDB 1.24."""
    if uri:
        yield uri
        return
    from tests.servers import reference_server

    found, started, how = reference_server()
    print(f"server: {how}", file=sys.stderr)
    try:
        yield found
    finally:
        if started is not None:
            started.close()


def describe(uri: str, flags: dict[str, Any]) -> dict[str, Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    with client:
        info = client.admin.command("buildInfo")
    return {
        "server": EngineProfile.from_build_info(info).label,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "packages": {p: version(p) for p in ("pymongo", "pydantic", "motor", "beanie", "odmantic")},
        "flags": flags,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def contenders(
    uri: str, loop: asyncio.AbstractEventLoop, only: set[str] | None, database: str = DATABASE
) -> list[Contender]:
    from .contenders import AsyncManager
    from .odms import BeanieContender, ODManticContender

    everyone: list[Contender] = [
        RawPyMongo(uri, database),
        mongo_results_sync(uri, database),
        mongo_results_named(uri, database),
        RawAsyncPyMongo(loop, uri, database),
        AsyncManager(loop, uri, database),
        BeanieContender(loop, uri, database),
        ODManticContender(loop, uri, database),
        file_store(),
    ]
    chosen = [c for c in everyone if only is None or c.name in only or c.name == "PyMongo"]
    for c in everyone:
        if c not in chosen:
            c.close()
    return chosen


def command_line(flags: dict[str, Any]) -> str:
    """The command that regenerates a run with these flags."""
    options = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in flags.items() if value is not None)
    return f"python -m bench {options}"


def compare(args: argparse.Namespace) -> int:
    from . import report
    from .measure import run

    flags = {k: v for k, v in vars(args).items() if k not in ("uri", "out", "command")}
    with server(args.uri) as uri:
        env = describe(uri, flags)
        print(f"{env['server']} · Python {env['python']} · {env['machine']}", file=sys.stderr)
        loop = asyncio.new_event_loop()
        field = contenders(uri, loop, set(args.only.split(",")) if args.only else None)
        try:
            datasets = [dataset(kind, args.ops, args.groups) for kind in args.kinds.split(",")]
            results = run(field, datasets, args.iterations, args.min_seconds)
        finally:
            for c in field:
                c.close()
            loop.close()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"environment": env, **results.to_json()}, indent=1))
    title = f"{env['server']}, Python {env['python']}, {env['machine']} ({env['date']})"
    report.chart(results, args.out / "chart.png", title)
    text = "\n\n".join(
        [
            f"Server: {env['server']}. Client: Python {env['python']}, {env['machine']}. "
            + ", ".join(f"{p} {v}" for p, v in env["packages"].items())
            + f". {args.iterations}+ interleaved rounds per task, {args.groups} prefixes; {env['date']}."
            + f" Command: `{command_line(flags)}`.",
            "Median time per task (ratio to raw PyMongo):",
            report.medians_table(results),
            "Throughput, MB/s (higher is better):",
            report.throughput_table(results),
            "Client CPU per result, µs (ratio to raw PyMongo); the server's time is not in it:",
            report.cpu_table(results),
            "Targets:",
            report.targets_table(results),
        ]
    )
    (args.out / "results.md").write_text(text + "\n")
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    # Stopped with SIGTERM, unwind as on Ctrl-C, so the server started for the run is stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--uri", default=os.environ.get("MONGODB_URI"), help="default: FerretDB 2.5 on DocumentDB started here"
    )
    sub = parser.add_subparsers(dest="command")
    scale = sub.add_parser("scale", help="list_ids time against collection size, with explain")
    scale.add_argument("--sizes", default="10000,1000000")
    scale.add_argument("--matches", type=int, default=100)
    scale.add_argument("--repeat", type=int, default=15)
    scale.add_argument("--out", type=Path, default=OUT)
    extra = sub.add_parser("overhead", help="the library's own CPU per call, with canned replies")
    extra.add_argument("--count", type=int, default=100)
    extra.add_argument("--rounds", type=int, default=20)
    extra.add_argument("--engine", choices=["mongodb", "ferretdb2", "ferretdb1"], default="mongodb")
    extra.add_argument("--out", type=Path, default=OUT)
    big = sub.add_parser("large", help="results over 16 MiB, set and got back on every store")
    big.add_argument("--sizes", default="20,256,1024", help="MiB per result")
    big.add_argument("--out", type=Path, default=OUT)
    claiming = sub.add_parser("claims", help="claim_each over free ids, missing() over many ids")
    claiming.add_argument("--count", type=int, default=10_000)
    claiming.add_argument("--ids", type=int, default=100_000)
    claiming.add_argument("--out", type=Path, default=OUT)
    sweeping = sub.add_parser("sweeps", help="a sweep's workers: cells/s with heartbeats, takeover after a stop")
    sweeping.add_argument("--cells", type=int, default=4000)
    sweeping.add_argument("--out", type=Path, default=OUT)
    framing = sub.add_parser("frames", help="stored results into a DataFrame, against PyMongoArrow")
    framing.add_argument("--count", type=int, default=200_000)
    framing.add_argument("--rounds", type=int, default=3)
    framing.add_argument("--out", type=Path, default=OUT)
    spread = sub.add_parser("sharded", help="the sharded cluster against the single-node server")
    spread.add_argument("--count", type=int, default=20_000)
    spread.add_argument("--rounds", type=int, default=9)
    spread.add_argument("--out", type=Path, default=OUT)
    working = sub.add_parser("workers", help="per-task workers, several event loops, commands per call")
    working.add_argument("--tasks", type=int, default=300)
    working.add_argument("--rounds", type=int, default=3)
    working.add_argument("--out", type=Path, default=OUT)
    delaying = sub.add_parser("latency", help="single calls at 1 and 20 ms of added latency, with round trips")
    delaying.add_argument("--ms", default="1,20", help="comma-separated delays added to every reply")
    delaying.add_argument("--rounds", type=int, default=15)
    delaying.add_argument("--out", type=Path, default=OUT)
    profiling = sub.add_parser("profile", help="where one task's client time goes, per contender, in buckets")
    profiling.add_argument("--kind", choices=sorted(KINDS), default="small")
    profiling.add_argument("--task", choices=TASKS, default="bulk create")
    profiling.add_argument("--contenders", default="PyMongo,mongo_results,PyMongo async,mongo_results async,Beanie")
    profiling.add_argument("--count", type=int, default=500, help="results per round")
    profiling.add_argument("--rounds", type=int, default=10)
    profiling.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--ops", type=int, default=1000, help="operations (documents) per task iteration")
    parser.add_argument("--iterations", type=int, default=10, help="minimum rounds per task")
    parser.add_argument("--min-seconds", type=float, default=0.0, help="keep going (up to 100 rounds) until then")
    parser.add_argument("--groups", type=int, default=10, help="id prefixes the documents are spread over")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--only", help="comma-separated contender names (PyMongo always runs)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.command == "overhead":
        from .overhead import overhead

        return overhead(args.count, args.rounds, args.engine, args.out)
    if args.command == "large":
        from .large import large

        with server(args.uri) as uri:
            label = describe(uri, {})["server"]
            return large(uri, DATABASE, [int(s) for s in args.sizes.split(",")], label, args.out)
    if args.command == "claims":
        from .claims import claims

        with server(args.uri) as uri:
            return claims(uri, DATABASE, args.count, args.ids, describe(uri, {})["server"], args.out)
    if args.command == "sweeps":
        from .sweeps import sweeps

        with server(args.uri) as uri:
            return sweeps(uri, f"{DATABASE}_sweeps", args.cells, describe(uri, {})["server"], args.out)
    if args.command == "workers":
        from .workers import workers

        with server(args.uri) as uri:
            label = describe(uri, {})["server"]
            return workers(uri, f"{DATABASE}_workers", args.tasks, args.rounds, label, args.out)
    if args.command == "latency":
        from .latency import latency

        with server(args.uri) as uri:
            label = describe(uri, {})["server"]
            delays = [int(ms) for ms in args.ms.split(",")]
            return latency(uri, f"{DATABASE}_latency", delays, args.rounds, label, args.out)
    if args.command == "frames":
        from .frames import frames

        with server(args.uri) as uri:
            label = describe(uri, {})["server"]
            return frames(uri, f"{DATABASE}_frames", args.count, args.rounds, label, args.out)
    if args.command == "sharded":
        from tests.servers import Sharded

        from .sharded import sharded

        cluster = Sharded().start()
        try:
            with server(args.uri) as uri:
                return sharded(uri, cluster.uri, DATABASE, args.count, args.rounds, args.out)
        finally:
            cluster.close()
    if args.command == "profile":
        from .profile import profile

        with server(args.uri) as uri:
            names = args.contenders.split(",")
            return profile(uri, f"{DATABASE}_profile", args.kind, args.task, names, args.count, args.rounds, args.out)
    if args.command == "scale":
        from .scale import scale as run_scale

        with server(args.uri) as uri:
            return run_scale(
                uri, DATABASE, [int(s) for s in args.sizes.split(",")], args.matches, args.repeat, args.out
            )
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
