"""The README's Python blocks run as a user would paste them (with warnings as errors).

The manual's blocks (docs/*.md) are run by tests/test_docs.py the same way.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BENCHMARKS = ROOT / "docs" / "benchmarks.md"  # the manual's page that shows bench/results
MARK = "<!-- needs-server -->\n"


def python_blocks(needs_server: bool) -> list[str]:
    found = re.finditer(r"(<!-- needs-server -->\n)?```python\n(.*?)```", README.read_text(), flags=re.S)
    return [m.group(2) for m in found if bool(m.group(1)) == needs_server]


def run_script(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = cwd / "readme.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, "-W", "error", str(script)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_quickstart_runs(tmp_path: Path) -> None:
    blocks = python_blocks(needs_server=False)
    assert len(blocks) >= 3
    proc = run_script("\n\n".join(blocks), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "sweep-7/lr=0.1/seed=3/metrics default" in proc.stdout
    assert "run 1: 8 results written" in proc.stdout and "run 2: 0 results written" in proc.stdout
    assert (tmp_path / "results-dir" / "sweep-8" / "seed=0" / "trial.json").is_file()


def test_each_block_runs_on_its_own(tmp_path: Path) -> None:
    for number, block in enumerate(python_blocks(needs_server=False), 1):
        where = tmp_path / str(number)
        where.mkdir()
        proc = run_script(block, where)
        assert proc.returncode == 0, f"block {number} alone:\n{proc.stderr}"


def test_server_quickstarts_run_against_the_server(server_uri: str, tmp_path: Path) -> None:
    blocks = python_blocks(needs_server=True)
    assert len(blocks) == 1  # AsyncMongoClient (Motor's is in docs/asyncio.md, a MongoDB URI's in docs/storage.md)
    base = server_uri.split("?")[0].rstrip("/")
    out = ""
    try:
        for block in blocks:  # each on its own
            proc = run_script(block.replace("mongodb://localhost:27017", base), tmp_path)
            assert proc.returncode == 0, proc.stderr
            out += proc.stdout
    finally:
        client: MongoClient[dict[str, object]]
        with MongoClient(base) as client:
            client.drop_database("quickstart")
    assert "['svc/2026-11-28/latency']" in out


def test_the_speed_tables_are_the_committed_bench_results() -> None:
    """`make bench` writes bench/results/*.md; the manual's Benchmarks page shows exactly those files."""
    text = BENCHMARKS.read_text()
    found = re.findall(r"<!-- (bench/results/[\w-]+\.md) -->\n(.*?)<!-- end -->", text, flags=re.S)
    assert {name for name, _ in found} == {
        "bench/results/results.md",
        "bench/results/scale.md",
        "bench/results/overhead.md",
        "bench/results/large.md",
        "bench/results/frames.md",
        "bench/results/sharded.md",
        "bench/results/workers.md",
        "bench/results/sweeps.md",
        "bench/results/latency.md",
        "bench/results/profile-small-bulk-create.md",
        "bench/results/profile-large-bulk-read.md",
        "bench/results/profile-small-find-by-id.md",
    }
    for name, shown in found:
        assert shown.strip() == (ROOT / name).read_text().strip(), f"docs/benchmarks.md differs from {name}"


def test_the_chart_is_the_committed_bench_chart() -> None:
    """The site shows docs/assets/chart.png, the copy `make bench` makes of bench/results/chart.png."""
    assert "](assets/chart.png)" in BENCHMARKS.read_text()
    shown, made = ROOT / "docs" / "assets" / "chart.png", ROOT / "bench" / "results" / "chart.png"
    assert shown.read_bytes() == made.read_bytes(), "run `make bench`, or copy bench/results/chart.png"
