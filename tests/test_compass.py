"""A real MongoDB client reads our data as MongoDB Compass shows it.

The Node.js driver lists the collections and ``mongodb-schema`` (the library of
Compass's Schema tab) analyses the documents of a sweep stored on the real server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mongo_results import MongoBackend, ResultsManager, SetBehavior, register_model
from mongo_results.demo import RunResult, result_id, sweep, train

NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture(scope="session")
def node_check() -> Path:
    """The check script, with its npm packages installed from the lockfile (CI must have them)."""
    try:
        if shutil.which("node") is None or shutil.which("npm") is None:
            raise RuntimeError("Node.js and npm are not installed")
        if not (NODE_DIR / "node_modules" / "mongodb-schema").is_dir():
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, capture_output=True, timeout=600
            )
    except (RuntimeError, subprocess.SubprocessError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the Compass check, but its npm packages could not be installed: {exc}")
        pytest.skip(f"Node.js packages unavailable: {exc}")
    return NODE_DIR / "compass_check.js"


def test_compass_sees_one_type_per_field(node_check: Path, server_db: tuple[str, str]) -> None:
    uri, name = server_db
    register_model(RunResult, namespace="demo")
    rm = ResultsManager(backend=MongoBackend(uri, database=name))
    for cfg in sweep(seeds=2)[:12]:
        rm.set(result_id(cfg), train(cfg), SetBehavior.SKIP_IF_EXISTS)
    rm.close()
    proc = subprocess.run(["node", str(node_check), uri, name], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["collections"] == ["results.demo"]
    schema = report["schemas"]["results.demo"]
    assert schema["count"] == 12
    fields = schema["fields"]
    assert fields["_id"] == ["String"]
    assert fields["path"] == ["Array"] and fields["path[]"] == ["String"]
    assert fields["model_type"] == ["String"] and fields["namespace"] == ["String"]
    assert fields["created_at"] == ["Date"] and fields["updated_at"] == ["Date"]
    assert fields["data.config.batch_size"] == ["Long"] and fields["data.final_loss"] == ["Double"]
    assert fields["data.history[]"] == ["Document"]
    data_fields = {path: types for path, types in fields.items() if path.startswith("data.")}
    assert len(data_fields) > 10
    assert all(len(types) == 1 for types in data_fields.values()), data_fields
