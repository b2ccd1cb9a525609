"""``make bench`` keeps working: every contender runs every task and is checked, on the real server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bench import report
from bench.__main__ import contenders
from bench.contenders import TASKS, RawPyMongo
from bench.datasets import KINDS, Dataset, dataset
from bench.large import large
from bench.measure import percentile, run
from bench.overhead import ENGINES, overhead, tasks
from bench.scale import scale


def test_percentiles_are_the_specifications_nearest_rank() -> None:
    times = [float(t) for t in range(10, 0, -1)]
    assert [percentile(times, p) for p in (10, 50, 90, 99)] == [1.0, 5.0, 9.0, 9.0]


def test_datasets_are_the_same_every_time() -> None:
    assert dataset("nested", 5, 2) == dataset("nested", 5, 2)
    assert len({rid.rsplit("/", 1)[0] for rid in dataset("small", 6, 3).ids}) == 3


@pytest.mark.real_server
def test_every_contender_runs_every_task(server_db: tuple[str, str], tmp_path: Path) -> None:
    uri, name = server_db
    loop = asyncio.new_event_loop()
    field = []
    try:
        field = contenders(uri, loop, None, name)
        results = run(field, [dataset(kind, 6, 2) for kind in KINDS], iterations=1, min_seconds=0)
    finally:
        for c in field:
            c.close()
        loop.close()
    names = {"PyMongo", "mongo_results", "mongo_results, namespace named", "PyMongo async", "mongo_results async"}
    names |= {"Beanie", "ODMantic", "file store"}
    assert set(results.times) == {(k, t, n) for k in KINDS for t in TASKS for n in names}
    table = report.medians_table(results)
    assert all(name in table for name in names)
    assert len(report.targets(results)) == len(KINDS) * 8
    report.chart(results, tmp_path / "chart.png", "smoke")
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.real_server
def test_scale_counts_the_same_matches_at_every_size(
    server_db: tuple[str, str], server_engine: str, tmp_path: Path
) -> None:
    uri, name = server_db
    assert scale(uri, name, [30, 300], matches=10, repeat=1, out=tmp_path) == 0
    assert "| 300 | 10 |" in (tmp_path / "scale.md").read_text()
    rows = json.loads((tmp_path / "scale.json").read_text())
    if server_engine != "ferretdb1":  # FerretDB 1.x (SQLite) scans: it has no _id index to use
        scan = "Index Scan _id_" if server_engine == "ferretdb2" else "IXSCAN"
        assert all(any(scan in step for step in row["plan"]) for row in rows), rows


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_the_overhead_run_does_the_same_work_as_the_floor(engine: str, tmp_path: Path) -> None:
    ds = dataset("nested", 12, 3)
    work = tasks(ds, ENGINES[engine])
    for task in ("find by id", "bulk read"):
        floor, ours = work[task]
        assert ours() == floor() == [m for _, m in ds.pairs]
    for task in ("create one", "bulk create"):
        assert work[task][1]() == [True] * 12
    assert overhead(4, 2, engine, tmp_path) == 0
    table = (tmp_path / "overhead.md").read_text()
    assert all(f"| {kind} | {task} |" in table for kind in KINDS for task in work)


@pytest.mark.real_server
def test_a_contender_that_writes_nothing_fails_the_run(server_db: tuple[str, str]) -> None:
    class Lazy(RawPyMongo):
        name = "lazy"

        def create_one(self, ds: Dataset) -> None:
            pass  # answers nothing, as a write does, and stores nothing

    uri, name = server_db
    lazy = Lazy(uri, name)
    try:
        with pytest.raises(AssertionError, match="lazy, create one, then list by prefix: listed 0 ids"):
            run([lazy], [dataset("small", 4, 2)], iterations=1, min_seconds=0)
    finally:
        lazy.close()


@pytest.mark.real_server
def test_large_round_trips_a_result_over_16_mib_on_every_store(server_db: tuple[str, str], tmp_path: Path) -> None:
    uri, name = server_db
    assert large(uri, name, [17], "server", tmp_path) == 0
    table = (tmp_path / "large.md").read_text()
    for store in ("file store", "embedded", "server (MongoClient)", "server (AsyncMongoClient)"):
        assert f"| {store} | 17 MiB |" in table


@pytest.mark.real_server
def test_latency_times_each_call_through_a_delaying_proxy_and_counts_its_round_trips(
    server_db: tuple[str, str], tmp_path: Path
) -> None:
    from bench.latency import latency

    uri, name = server_db
    assert latency(uri, name, [5], 2, "server", tmp_path) == 0
    table = (tmp_path / "latency.md").read_text()
    assert "| set (new id) | 5 ms |" in table and "| 1 / 1 |" in table
    rows = [line for line in table.splitlines() if line.startswith("| a claimed cell")]
    # Per cell: the claim, the set, the release; and the grid's look (stored, failed, finished
    # marks that have served) shared by its cells: 3 commands for 10 cells, 3 for 20.
    assert len(rows) == 3, rows
    assert rows[0].endswith("| 3 / 3.3 |") and rows[1].endswith("| 3 / 3.15 |"), rows
    assert rows[2].endswith("| 3 | met |"), rows
    assert "| get (every namespace) at 5 ms ≤ 1.05" in table


@pytest.mark.real_server
def test_profile_puts_each_contenders_time_in_buckets(server_db: tuple[str, str], tmp_path: Path) -> None:
    from bench.profile import BUCKETS, bucket, profile

    assert bucket("~", "<method 'recv_into' of '_socket.socket' objects>") == "waiting on the server"
    assert bucket("~", "<built-in method bson._cbson._dict_to_bson>") == "BSON codec"
    assert bucket("/x/site-packages/mongo_results/core/encoding.py", "encode_model") == "mongo_results"
    uri, name = server_db
    assert profile(uri, name, "small", "bulk read", ["PyMongo", "mongo_results"], 6, 2, tmp_path) == 0
    lines = (tmp_path / "profile-small-bulk-read.md").read_text().splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("| ")]
    rows = {row[0]: row[1:] for row in cells}
    assert len(rows) == len(BUCKETS) + 3  # the header, each bucket, other, total
    assert rows["mongo_results"][0] == "0.0 (0%)"  # raw PyMongo runs no library code
    assert not rows["mongo_results"][1].endswith("(0%)")
    assert not rows["BSON codec"][0].endswith("(0%)")
