"""The main job runs end to end on the embedded store and on a directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from mongo_results.demo import main


@pytest.mark.parametrize("store", ["embedded", "directory"])
def test_demo_sweep(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--seeds", "2", "--workers", "2"]
    if store == "directory":
        args += ["--uri", str(tmp_path / "results")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pass 1: 24 results written, 0 already stored" in out
    assert "pass 2 (a re-run): missing() finds 0 of 24 runs left, 0 trained and written" in out
    assert "6 results under 'sweep-demo/lr=0.1', 24 under 'sweep-demo'" in out
    assert "lr=0.3 batch=16" in out and "mean loss" in out
    assert ('make demo ARGS="--uri ./results"' in out) == (store == "embedded")  # how to keep them
    # The job array: one task killed mid-run, its cell finished by another once the lease ran out;
    # the cell that always fails is tried twice, listed, and the sweep still ends.
    assert "killed while computing sweep-demo-array/" in out
    assert "9 of 10 cells stored, 1 failed; each stored cell computed once to the end" in out
    assert "after the lease ran out" in out and "finished by nobody" not in out
    assert "failed: sweep-demo-array/lr=30.0/batch=64/metrics after 2 attempts: DivergedError: loss diverged" in out


def test_demo_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--workers", "0"])
    assert info.value.code == 2
    assert "--workers and --seeds must be at least 1" in capsys.readouterr().err
