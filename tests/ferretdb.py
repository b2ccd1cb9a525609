"""Build, start and stop a throwaway FerretDB 1.24 (SQLite handler) for tests.

FerretDB's module leaves out ``build/version/version.txt``, which its own task
runner generates; a plain ``go install`` therefore builds a binary that panics
at start. We build the same module source, downloaded from the Go module
proxy, in a writable copy with that one file written.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

VERSION = "v1.24.2"
MODULE = "github.com/FerretDB/FerretDB"


def cache_dir() -> Path:
    root = os.environ.get("MONGO_RESULTS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mongo_results"
    )
    return Path(root) / f"ferretdb-{VERSION}"


def build(log: bool = True) -> Path:
    """The FerretDB binary, built once and cached."""
    binary = cache_dir() / "ferretdb"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("Go is not installed; FerretDB is built from source with it")
    if log:
        print(f"building FerretDB {VERSION} (first run only, a few minutes)...", flush=True)
    info = json.loads(
        subprocess.run([go, "mod", "download", "-json", f"{MODULE}@{VERSION}"], check=True, capture_output=True).stdout
    )
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "src")
        shutil.copytree(info["Dir"], src)
        for path in src.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        (src / "build/version/version.txt").write_text(VERSION + "\n")
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        subprocess.run([go, "build", "-trimpath", "-o", str(partial), "./cmd/ferretdb"], cwd=src, check=True)
        partial.replace(binary)
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FerretDB:
    """One FerretDB process on 127.0.0.1 with its state in a temporary directory."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = build()
        self.port = port or free_port()
        self.state = Path(tempfile.mkdtemp(prefix="ferretdb-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 60.0) -> FerretDB:
        args = [
            str(self.binary),
            "--handler=sqlite",
            f"--sqlite-url=file:{self.state}/",
            f"--state-dir={self.state}",
            f"--listen-addr=127.0.0.1:{self.port}",
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=warn",
        ]
        with open(self.state / "ferretdb.log", "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        from pymongo import MongoClient

        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"FerretDB exited with {self.process.returncode}: {self.log_tail()}")
            try:
                client: MongoClient[dict[str, object]]
                with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
                    client.admin.command("ping")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"FerretDB did not answer ping in {timeout}s: {self.log_tail()}") from None
                time.sleep(0.1)

    def log_tail(self) -> str:
        path = self.state / "ferretdb.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def kill(self) -> None:
        """Crash the server (SIGKILL): no graceful shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        """Stop gracefully (SIGTERM); FerretDB serves open connections for ~3 s meanwhile."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self) -> FerretDB:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
