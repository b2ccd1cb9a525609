"""Throwaway MongoDB-wire servers for the tests and the bench, and the ladder that picks one.

- :class:`DocumentDB`: FerretDB 2.5 on PostgreSQL 15 + DocumentDB, the reference
  server, built and started by the engine kit beside the repository
  (``../shared/engines/documentdb``, or ``$DOCUMENTDB_ENGINE_KIT``); needs root.
- :class:`FerretDB`: FerretDB 1.24 on SQLite, a light second engine (Go only).
  Its module leaves out ``build/version/version.txt``, which its own task
  runner generates; a plain ``go install`` builds a binary that panics at
  start, so the module source is built in a writable copy with that file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

VERSION = "v1.24.2"
MODULE = "github.com/FerretDB/FerretDB"
REPO = Path(__file__).resolve().parent.parent


class Server(Protocol):
    """What the tests need of a server they started: its address, and ways to stop it."""

    port: int

    @property
    def uri(self) -> str: ...

    def start(self) -> Server: ...

    def kill(self) -> None: ...

    def stop(self) -> None: ...

    def freeze(self, frozen: bool) -> None: ...

    def close(self) -> None: ...


def cache_root() -> Path:
    """Where the tools the tests build are kept between runs (``MONGO_RESULTS_CACHE``)."""
    root = os.environ.get("MONGO_RESULTS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mongo_results"
    )
    return Path(root)


def cache_dir() -> Path:
    return cache_root() / f"ferretdb-{VERSION}"


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


def terminate(process: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """Stop a process gracefully (SIGTERM), killing it if it is still there after ``grace`` seconds."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs: a zombie (ended, not yet reaped by its new parent) does not."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the process table
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(uri: str, timeout: float, alive: Callable[[], str | None]) -> None:
    """Ping until the server answers; ``alive`` returns why it cannot any more, or None."""
    from pymongo import MongoClient

    deadline = time.monotonic() + timeout
    while True:
        died = alive()
        if died:
            raise RuntimeError(died)
        try:
            client: MongoClient[dict[str, object]]
            with MongoClient(uri, serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{uri} did not answer ping in {timeout}s") from None
            time.sleep(0.1)


class FerretDB:
    """One FerretDB 1.24 process on 127.0.0.1 with its state in a temporary directory."""

    name = "FerretDB 1.24 (SQLite)"

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
        def alive() -> str | None:
            assert self.process is not None
            code = self.process.poll()
            return None if code is None else f"FerretDB exited with {code}: {self.log_tail()}"

        try:
            wait_ready(self.uri, timeout, alive)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {self.log_tail()}") from None

    def log_tail(self) -> str:
        path = self.state / "ferretdb.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def kill(self) -> None:
        """Crash the server (SIGKILL): no graceful shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def freeze(self, frozen: bool) -> None:
        """Suspend (SIGSTOP) or resume (SIGCONT) the server: it keeps its connections and answers nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM); FerretDB serves open connections for ~3 s meanwhile."""
        terminate(self.process)
        self.process = None

    def close(self) -> None:
        """End the server and remove its data: killed, not drained, since nothing of it is kept."""
        self.kill()
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self) -> FerretDB:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def documentdb_kit() -> Path:
    """The engine kit that builds and starts FerretDB 2.5 on PostgreSQL + DocumentDB."""
    given = os.environ.get("DOCUMENTDB_ENGINE_KIT")
    return Path(given) if given else REPO.parent / "shared" / "engines" / "documentdb"


class DocumentDB:
    """FerretDB 2.5 in front of PostgreSQL 15 + DocumentDB, from the engine kit (needs root).

    ``kill`` and ``stop`` end FerretDB alone (SIGKILL, SIGTERM), as a crash of the
    server process would; ``start`` after them brings the same data back on the
    same port. ``close`` stops PostgreSQL too and removes the data.
    """

    name = "FerretDB 2.5 (PostgreSQL + DocumentDB)"
    label = "documentdb"  # the data directory's prefix
    kit_variable = "DOCUMENTDB_ENGINE_KIT"

    @staticmethod
    def find_kit() -> Path:
        return documentdb_kit()

    def __init__(self, port: int | None = None) -> None:
        self.kit = self.find_kit()
        if not (self.kit / "start").is_file():
            raise RuntimeError(f"no engine kit at {self.kit} (set {self.kit_variable})")
        if os.geteuid() != 0:
            raise RuntimeError("the DocumentDB engine kit needs root (apt-get, make install)")
        self.port = port or free_port()
        self.pg_port = self.free_pg_port()
        # PostgreSQL runs as the postgres user: its directory must be reachable by it.
        self.state = Path(tempfile.mkdtemp(prefix=f"{self.label}-", dir="/tmp"))
        self.state.chmod(0o755)

    def free_pg_port(self) -> int:
        return free_port()

    @property
    def uri(self) -> str:
        return self.plain_uri

    @property
    def plain_uri(self) -> str:
        """The kit's FerretDB: no TLS, no authentication."""
        return f"mongodb://127.0.0.1:{self.port}/"

    def _kit(self, script: str, *args: str, timeout: float) -> None:
        done = subprocess.run(
            [str(self.kit / script), str(self.state), *args], capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.kit / script} failed ({done.returncode}): {done.stderr[-2000:]}")

    def start(self, timeout: float = 60.0) -> DocumentDB:
        self._kit("stop", timeout=60)  # after kill or stop: PostgreSQL is still up, start wants it down
        # The first build compiles PostgreSQL extensions and FerretDB: minutes, once per machine.
        self._kit("start", str(self.port), str(self.pg_port), timeout=1800)
        wait_ready(self.plain_uri, timeout, lambda: None)
        return self

    def _signal(self, sig: signal.Signals) -> None:
        pid_file = self.state / "ferretdb.pid"
        if not pid_file.is_file():
            return
        pid = int(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            for _ in range(1000):  # FerretDB drains open connections for a few seconds on SIGTERM
                if not _alive(pid):
                    break
                time.sleep(0.01)
            else:
                os.kill(pid, signal.SIGKILL)
        # Gone: the kit's stop would otherwise wait on it until its parent reaps it (seconds, as a zombie).
        if not _alive(pid):
            pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """Crash FerretDB (SIGKILL): no graceful shutdown."""
        self._signal(signal.SIGKILL)

    def freeze(self, frozen: bool) -> None:
        """Suspend (SIGSTOP) or resume (SIGCONT) FerretDB: it keeps its connections and answers nothing."""
        os.kill(int((self.state / "ferretdb.pid").read_text()), signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        """Stop FerretDB gracefully (SIGTERM)."""
        self._signal(signal.SIGTERM)

    def _pg_ctl(self, action: str, *, check: bool = True) -> int:
        options = {
            "start": f"-l '{self.state}/postgres.log' -w -t 60",
            "stop": "-m fast -w",
            "halt": "-m immediate -w",
            "status": "",
        }[action]
        action = "stop" if action == "halt" else action
        command = f"/usr/lib/postgresql/15/bin/pg_ctl -D '{self.state}/data' {options} {action}"
        done = subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], capture_output=True, timeout=90)
        if check and done.returncode != 0:
            raise RuntimeError(f"pg_ctl {action} failed ({done.returncode}): {done.stderr[-2000:]!r}")
        return done.returncode

    def stop_postgres(self) -> None:
        """Stop the PostgreSQL under FerretDB (fast: open transactions are rolled back); FerretDB stays up."""
        self._pg_ctl("stop")

    def start_postgres(self, timeout: float = 60.0) -> None:
        """Start PostgreSQL again and wait until FerretDB reaches it (its pool drops the dead connections)."""
        from pymongo import MongoClient

        if self._pg_ctl("status", check=False) != 0:  # not running: a test that failed may have started it
            self._pg_ctl("start")
        deadline = time.monotonic() + timeout
        client: MongoClient[dict[str, object]]
        with MongoClient(self.uri, serverSelectionTimeoutMS=2000) as client:
            answered = 0
            while answered < 5:  # in a row: each may meet another of the pool's dead connections
                try:
                    client.list_database_names()
                    answered += 1
                except Exception:
                    answered = 0
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def close(self) -> None:
        """End both servers and remove their data: killed, not drained, since nothing of it is kept."""
        try:
            self.kill()
            if (self.state / "data" / "postmaster.pid").exists():
                self._pg_ctl("halt", check=False)
            self._kit("stop", timeout=60)  # whatever is left
        finally:
            shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self) -> DocumentDB:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def reference_server() -> tuple[str, Server | None, str]:
    """The engine ladder: ``(uri, server started here or None, how it was chosen)``.

    ``MONGODB_URI`` when set; else FerretDB 2.5 on DocumentDB (under ``CI=true``
    it must start); else FerretDB 1.24 on SQLite, which needs no root.
    """
    uri = os.environ.get("MONGODB_URI")
    if uri:
        return uri, None, "MONGODB_URI"
    server: Server | None = None
    try:
        server = DocumentDB()
        return server.start().uri, server, DocumentDB.name
    except Exception as exc:
        if server is not None:
            server.close()
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"CI needs the reference server, FerretDB 2.5 on DocumentDB: {exc}") from exc
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fallback = FerretDB().start()
        return fallback.uri, fallback, f"{FerretDB.name}, because FerretDB 2.5 could not start: {reason}"


def sharded_kit() -> Path:
    """The engine kit that builds and starts the same engine on a Citus coordinator and two workers."""
    given = os.environ.get("DOCUMENTDB_SHARDED_ENGINE_KIT")
    return Path(given) if given else REPO.parent / "shared" / "engines" / "documentdb-sharded"


class Sharded(DocumentDB):
    """FerretDB 2.5 in front of DocumentDB's distributed mode on Citus: a coordinator and two workers.

    Collections are hash-sharded (8 shards, 4 on each worker) once ``shardCollection`` names
    them; unsharded ones live on the coordinator. ``stop_worker``/``start_worker`` stop one
    worker's PostgreSQL under a running cluster, as a node failure would.
    """

    name = "FerretDB 2.5 (DocumentDB on Citus: a coordinator and two workers)"
    label = "sharded"
    kit_variable = "DOCUMENTDB_SHARDED_ENGINE_KIT"

    @staticmethod
    def find_kit() -> Path:
        return sharded_kit()

    def free_pg_port(self) -> int:
        # The kit puts the workers on the two ports after the coordinator's: all three must be free.
        return _free_run(3)

    def _worker_ctl(self, worker: str, action: str) -> None:
        data = self.state / worker / "data"
        options = {"start": f"-l '{self.state}/{worker}/postgres.log' -w -t 60", "stop": "-m immediate -w"}[action]
        command = f"/usr/lib/postgresql/15/bin/pg_ctl -D '{data}' {options} {action}"
        done = subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], capture_output=True, timeout=90)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {action} of {worker} failed ({done.returncode}): {done.stderr[-2000:]!r}")

    def durable(self) -> None:
        """Acknowledge a commit only once its WAL is written (the kit trades that for speed).

        With ``synchronous_commit = off``, a worker stopped with ``-m immediate`` loses writes it
        had acknowledged: measured, and a property of that setting, not of the library.
        """
        for offset in range(3):
            command = (
                f"psql -h 127.0.0.1 -p {self.pg_port + offset} -U postgres -d postgres -q "
                "-c 'ALTER SYSTEM SET synchronous_commit = on' -c 'SELECT pg_reload_conf()'"
            )
            subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], check=True, capture_output=True)

    def stop_worker(self, worker: str = "worker1") -> None:
        """Stop one worker's PostgreSQL at once (``-m immediate``: no shutdown checkpoint), as a crash would."""
        self._worker_ctl(worker, "stop")

    def start_worker(self, worker: str = "worker1") -> None:
        """Start the worker again (it replays its write-ahead log), and wait until the cluster answers."""
        self._worker_ctl(worker, "start")


def _free_run(count: int) -> int:
    """A port with the ``count - 1`` ports after it free too (checked now; good enough for throwaway servers)."""
    for _ in range(100):
        first = free_port()
        if first + count > 65535:
            continue
        try:
            for offset in range(1, count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", first + offset))
            return first
        except OSError:
            continue
    raise RuntimeError("no run of free ports")


def citus_tasks(explain: dict[str, object]) -> tuple[int, set[str]]:
    """From a query's explain on the sharded cluster: Citus's task count and the nodes its tasks ran on.

    One task is one shard: a query routed on the shard key has one, a broadcast one per shard.
    """
    counts: list[int] = []
    nodes: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if "Task Count" in value:
                counts.append(int(value["Task Count"]))
            node = value.get("Node")
            if isinstance(node, str):
                nodes.add(node.split("dbname=")[0].strip())
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(explain)
    return sum(counts), nodes


class SecureDocumentDB(DocumentDB):
    """The reference server as a managed deployment runs: TLS only, and SCRAM authentication.

    FerretDB 2.5 authenticates against PostgreSQL roles (SCRAM-SHA-256); it does not enforce a
    user's roles (every authenticated user may run every command), so what a ``readWrite`` user
    may send is checked from the driver's command log instead. ``user``/``password`` is a user
    made with the ``readWrite`` role on ``database``; ``ca_file`` the CA that signed the
    server's certificate, made here for 127.0.0.1.
    """

    name = "FerretDB 2.5 (PostgreSQL + DocumentDB) with TLS and SCRAM"
    label = "secure"
    user = "worker"
    password = "p@ss:w/rd %secret"  # every character a URI must escape
    database = "lab"

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self.tls = self.state / "tls"
        self.ca_file = self.tls / "ca.pem"

    def start(self, timeout: float = 60.0) -> SecureDocumentDB:
        super().start(timeout)  # the kit's server, without authentication: it creates the user
        from pymongo import MongoClient

        client: MongoClient[dict[str, object]]
        with MongoClient(self.plain_uri, serverSelectionTimeoutMS=5000) as client:
            client[self.database].command(
                "createUser", self.user, pwd=self.password, roles=[{"role": "readWrite", "db": self.database}]
            )
        self.stop()
        self._certificates()
        binary = subprocess.run(
            [str(self.kit / "build")], capture_output=True, text=True, check=True, timeout=1800
        ).stdout.strip()
        args = [
            binary,
            f"--postgresql-url=postgres://postgres@127.0.0.1:{self.pg_port}/postgres",
            "--listen-addr=",
            f"--listen-tls=127.0.0.1:{self.port}",
            f"--listen-tls-cert-file={self.tls / 'server.pem'}",
            f"--listen-tls-key-file={self.tls / 'server.key'}",
            f"--state-dir={self.state / 'ferretdb-state'}",
            "--telemetry=disable",
            "--debug-addr=-",
            "--log-level=warn",
        ]
        with open(self.state / "ferretdb.log", "ab") as log:
            self.process = process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        (self.state / "ferretdb.pid").write_text(str(process.pid))  # the kit's stop ends it
        wait_ready(self.uri, timeout, lambda: None if process.poll() is None else f"FerretDB exited: {self.log()}")
        return self

    def close(self) -> None:
        super().close()
        process = getattr(self, "process", None)
        if process is not None:
            process.kill()
            process.wait()

    def _certificates(self) -> None:
        """A throwaway CA, and a server certificate it signs for 127.0.0.1 and localhost."""
        self.tls.mkdir(exist_ok=True)

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=self.tls, check=True, capture_output=True)

        openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=mongo_results test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        )
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        )
        (self.tls / "ext.cnf").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
        )
        openssl(
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        )

    def uri_for(self, user: str, password: str, database: str | None = None, **options: str) -> str:
        from urllib.parse import quote_plus, urlencode

        query = urlencode({"tls": "true", "tlsCAFile": str(self.ca_file), **options})
        where = f"127.0.0.1:{self.port}/{database or self.database}"
        return f"mongodb://{quote_plus(user)}:{quote_plus(password)}@{where}?{query}"

    @property
    def uri(self) -> str:
        """The ``readWrite`` user's URI, over TLS with the test CA."""
        return self.uri_for(self.user, self.password)

    def log(self) -> str:
        path = self.state / "ferretdb.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""
