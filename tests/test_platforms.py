"""Platforms: the library imports and works where ``fcntl`` and ``os.register_at_fork`` do not exist.

Windows has neither. Here they are taken away from a fresh interpreter before the import, as
Windows would lack them: MongoDB and the embedded store work, and a file store without any file
lock is refused when it is opened, never at import. The Windows lock itself (``msvcrt``) is
type-checked by ``make typecheck`` (mypy ``--platform win32``), which CI runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

WITHOUT = """
import os
import sys

sys.modules["fcntl"] = None  # "import fcntl" now raises ImportError, as on Windows
del os.register_at_fork, os.fork  # neither exists on Windows (the standard library checks for fork)

import json

from pydantic import BaseModel

import mongo_results
from mongo_results import ResultsManager, register_model
from mongo_results.errors import UnsupportedPlatformError


@register_model
class Metrics(BaseModel):
    loss: float


said = {}
for name, uri in [("embedded", "mongomock://localhost/platforms"), ("server", sys.argv[1] or None)]:
    if uri is None:
        continue
    with ResultsManager(uri) as rm:
        rm.set("a/1", Metrics(loss=1))
        claim = rm.claim("a/2")
        claim.release()
        said[name] = [rm.get("a/1") == Metrics(loss=1), rm.list_ids("a"), rm.missing(["a/1", "a/2"])]
        rm.clear()
try:
    ResultsManager(sys.argv[2])
    said["file"] = "opened"
except UnsupportedPlatformError as exc:
    said["file"] = [isinstance(exc, NotImplementedError), str(exc)]
print(json.dumps(said))
"""


def run_without_posix_modules(server: str, tmp_path: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-W", "error", "-c", WITHOUT, server, str(tmp_path / "store")]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.real_server
def test_without_fcntl_and_register_at_fork(server_db: tuple[str, str], tmp_path: Path) -> None:
    uri, name = server_db
    said = run_without_posix_modules(f"{uri.rstrip('/')}/{name}", tmp_path)
    assert said["embedded"] == said["server"] == [True, ["a/1"], ["a/2"]]
    file_store = said["file"]
    assert isinstance(file_store, list)
    refused, message = file_store
    assert refused is True and "needs a file lock" in str(message) and "mongodb://" in str(message)
    assert not (tmp_path / "store").exists()  # refused before anything was made


def test_the_file_store_locks_where_fcntl_is(tmp_path: Path) -> None:
    """The lock is exclusive between processes: a second holder waits for the first."""
    from mongo_results.stores.locks import holding, open_lock

    path = tmp_path / "lock"
    probe = (
        "import sys, fcntl; fd = open(sys.argv[1], 'a'); fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')"
    )
    with holding(open_lock(path)):
        busy = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True)
        assert busy.returncode != 0 and "BlockingIOError" in busy.stderr
    free = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True)
    assert free.stdout.strip() == "free"
