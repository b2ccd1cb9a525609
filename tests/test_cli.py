"""The mongo-results command line, on the file store, the embedded store and the real server."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from pydantic import BaseModel
from pymongo import MongoClient

from mongo_results import MongoBackend, ResultsManager, register_model
from mongo_results.cli import main
from mongo_results.core import knowledge
from mongo_results.errors import InvalidUriError, StoreUnavailableError

from .commands import CommandLog
from .models import Metrics


@pytest.fixture(params=["file", "mongomock", "server"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return str(tmp_path / "store")
    if request.param == "mongomock":
        return f"mongomock://localhost/cli_{uuid.uuid4().hex[:8]}"
    base, name = request.getfixturevalue("server_db")
    return f"{str(base).rstrip('/')}/{name}"


def run(*argv: str, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return main(list(argv), out=out), out.getvalue()
    finally:
        sys.stdin = old


def filled(uri: str) -> ResultsManager:
    register_model(Metrics, namespace="training")
    rm = ResultsManager(uri)
    for i in range(3):
        rm.set(f"sweep/lr=0.1/seed={i}/metrics", Metrics(loss=i / 10, accuracy=0.9, step=i))
    rm.set("sweep/lr=0.3/seed=0/metrics", Metrics(loss=0.5, accuracy=0.5))
    return rm


def test_ls_table_and_json(uri: str) -> None:
    filled(uri).close()
    code, out = run("--uri", uri, "ls", "sweep/lr=0.1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "MODEL", "NAMESPACE", "UPDATED"]
    assert [line.split()[0] for line in lines[2:]] == [f"sweep/lr=0.1/seed={i}/metrics" for i in range(3)]
    assert all(line.split()[1:3] == ["Metrics", "training"] for line in lines[2:])
    code, out = run("--uri", uri, "ls", "--json")
    rows = json.loads(out)
    assert len(rows) == 4 and rows[0]["model_type"] == "Metrics" and rows[0]["updated_at"].startswith("20")


def test_show_prints_envelope_and_data(uri: str) -> None:
    filled(uri).close()
    code, out = run("--uri", uri, "show", "sweep/lr=0.1/seed=2/metrics")
    assert code == 0
    shown = json.loads(out)
    assert shown["id"] == "sweep/lr=0.1/seed=2/metrics" and shown["namespace"] == "training"
    assert shown["data"] == {"loss": 0.2, "accuracy": 0.9, "step": 2}
    assert set(shown) == {"id", "namespace", "model_type", "created_at", "updated_at", "data"}


def test_rm_ids_and_prefix(uri: str) -> None:
    filled(uri).close()
    assert run("--uri", uri, "rm", "sweep/lr=0.3/seed=0/metrics", stdin="n\n")[0] == 1  # declined
    code, out = run("--uri", uri, "rm", "--yes", "sweep/lr=0.3/seed=0/metrics")
    assert code == 0 and out == "removed sweep/lr=0.3/seed=0/metrics\n"
    code, out = run("--uri", uri, "rm", "--prefix", "sweep/lr=0.1", stdin="y\n")
    assert code == 0 and out.count("removed ") == 3
    assert run("--uri", uri, "rm", "--yes", "no/such")[0] == 1
    assert json.loads(run("--uri", uri, "ls", "--json")[1]) == []


def test_export_then_import_is_lossless(uri: str, tmp_path: Path) -> None:
    from .models import KitchenSink

    register_model(KitchenSink)
    rm = filled(uri)
    rm.set("types/all", KitchenSink())
    rm.close()
    out = io.StringIO()
    assert main(["--uri", uri, "export"], out=out) == 0
    dump = tmp_path / "results.jsonl"
    dump.write_text(out.getvalue())
    assert len(dump.read_text().splitlines()) == 5
    target = str(tmp_path / "copy")
    code, summary = run("--uri", target, "import", str(dump))
    assert code == 0 and summary.strip().endswith("5 written, 0 skipped, 0 failed")
    copy = ResultsManager(target)
    assert copy.get("types/all") == KitchenSink()
    assert copy.get("sweep/lr=0.1/seed=1/metrics") == Metrics(loss=0.1, accuracy=0.9, step=1)
    code, summary = run("--uri", target, "import", str(dump))  # again: everything is there already
    assert summary.strip().endswith("0 written, 5 skipped, 0 failed")


@pytest.mark.real_server
def test_import_writes_in_bulk_and_keeps_the_times(server_db: tuple[str, str], tmp_path: Path) -> None:
    """Before: one command per record (457 results/s), and every created_at and updated_at replaced."""
    from pymongo import monitoring

    base, name = server_db
    source = f"{base.rstrip('/')}/{name}"
    with ResultsManager(source) as rm:
        rm.set_many({f"bulk/{i:04d}": Metrics(loss=i, accuracy=0) for i in range(2_500)})
        before = {d["_id"]: (d["created_at"], d["updated_at"]) for d in rm.admin.documents("bulk", with_data=False)}
    out = io.StringIO()
    assert main(["--uri", source, "export", "bulk"], out=out) == 0
    dump = tmp_path / "bulk.jsonl"
    dump.write_text(out.getvalue())
    log = CommandLog()
    monitoring.register(log)  # the command line opens its own client
    target = f"{base.rstrip('/')}/{name}_copy"
    try:
        assert main(["--uri", target, "import", str(dump)], out=io.StringIO()) == 0
        sent = log.take()
        assert sent.count("insert") + sent.count("update") == 3  # 1,000 records per bulk write
        with ResultsManager(target) as copy:
            after = {
                d["_id"]: (d["created_at"], d["updated_at"]) for d in copy.admin.documents("bulk", with_data=False)
            }
            copy.clear()
        assert after == before
    finally:
        log.active = False  # a registered listener cannot be taken back
        client: MongoClient[dict[str, Any]]
        with MongoClient(base) as client:
            client.drop_database(f"{name}_copy")


def test_import_a_results_manager_tree(uri: str, tmp_path: Path) -> None:
    tree = tmp_path / "old"
    for i in range(4):
        path = tree / "runs" / f"{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"loss": i / 4, "accuracy": 1.0, "step": i}
        path.write_text(json.dumps({"model_type": "Metrics", "namespace": "training", "data": data}))
    (tree / "broken.json").write_text(json.dumps({"namespace": "training", "data": {}}))
    code, summary = run("--uri", uri, "import", str(tree))
    assert code == 1 and "4 written, 0 skipped, 1 failed" in summary
    register_model(Metrics, namespace="training")
    rm = ResultsManager(uri)
    assert rm.list_ids("runs") == [f"runs/{i}" for i in range(4)]
    assert rm.get("runs/2") == Metrics(loss=0.5, accuracy=1.0, step=2)
    rm.close()


def test_stats(uri: str) -> None:
    filled(uri).close()
    code, out = run("--uri", uri, "stats")
    assert code == 0
    row = out.splitlines()[2].split()
    assert row[:3] == ["training", "Metrics", "4"]
    assert out.splitlines()[-1].startswith("4 results in 1 (namespace, model) groups")


def test_doctor_on_the_server(server_db: tuple[str, str], server_engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    base, name = server_db
    uri = base.rstrip("/") + "/" + name
    filled(uri).close()
    code, out = run("--uri", uri, "doctor")
    assert code == 0, out
    label = {"ferretdb1": "FerretDB v1.24", "ferretdb2": "FerretDB v2.5"}.get(server_engine, "MongoDB")
    assert f"database '{name}'" in out and label in out
    assert "results.training: 4 results" in out and "ok: index _id_" in out
    if server_engine == "ferretdb1":
        assert "does not enforce collection validators" in out
    else:
        assert "ok: validator (warn)" in out
    # A store opened with path_index=True wants the path index, which this one lacks.
    every = knowledge.indexes(True)
    monkeypatch.setattr(knowledge, "indexes", lambda _: every)
    code, out = run("--uri", uri, "doctor")
    assert code == 1 and "problem: index path_segments is missing; run `mongo-results doctor --fix`" in out
    code, out = run("--uri", uri, "doctor", "--fix")
    assert code == 0 and "fixed: created index path_segments" in out


def test_usage_and_errors_are_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONGO_RESULTS_URI", raising=False)
    assert run("ls")[0] == 2
    assert capsys.readouterr().err.startswith("mongo-results: error: no store")
    assert run("--uri", "redis://x", "ls")[0] == 2
    assert run("--uri", "mongomock://x/y", "rm")[0] == 2
    assert run("--uri", "mongodb://127.0.0.1:9/db?serverSelectionTimeoutMS=200", "ls")[0] == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 3
        and "Traceback" not in err
        and "StoreUnavailableError: Cannot reach MongoDB at 127.0.0.1:9" in err
    )
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_module_and_console_script(tmp_path: Path) -> None:
    class _Unused(BaseModel):
        pass

    for cmd in ([sys.executable, "-m", "mongo_results"], [str(Path(sys.executable).with_name("mongo-results"))]):
        proc = subprocess.run(
            [*cmd, "--uri", str(tmp_path), "ls", "--json"], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == []


def test_doctor_finds_and_removes_a_killed_writers_temporary_files(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ResultsManager(store).set("a/b", Metrics(loss=1, accuracy=1))
    (store / "a" / ".0123456789abcdef.tmp").write_text('{"torn')
    code, out = run("--uri", str(store), "doctor")
    assert code == 1 and "problem: 1 temporary file(s) of writers killed mid-write" in out
    code, out = run("--uri", str(store), "doctor", "--fix")
    assert code == 0 and "fixed: removed 1 temporary file(s)" in out
    assert not (store / "a" / ".0123456789abcdef.tmp").exists()


PASSWORDS = ["S3cret/PW", "p@ss", "pa:ss", "pa?ss", "pa#ss", "plain-Pw1"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_no_password_is_ever_shown(password: str, capsys: pytest.CaptureFixture[str]) -> None:
    escaped = f"mongodb://alice:{quote_plus(password)}@127.0.0.1:9/db?serverSelectionTimeoutMS=200"
    secrets = (password, quote_plus(password))
    backend = MongoBackend(escaped)
    shown = [repr(backend), backend._hosts, repr(ResultsManager(escaped).backend)]
    with pytest.raises(StoreUnavailableError) as info:
        ResultsManager(backend=backend).list_ids()
    shown.append(str(info.value))
    assert run("--uri", escaped, "ls")[0] == 1
    raw = escaped.replace(quote_plus(password), password)
    if raw != escaped:  # unescaped, the password would be read as part of the host
        with pytest.raises(InvalidUriError) as refused:
            MongoBackend(raw)
        shown.append(str(refused.value))
        assert run("--uri", raw, "ls")[0] == 2
    captured = capsys.readouterr()
    shown += [captured.out, captured.err]
    assert not [text for text in shown for secret in secrets if secret in text], shown


def test_an_srv_name_that_does_not_resolve_is_unavailable_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = "mongodb+srv://alice:pw@cluster0.example.invalid/db"
    with pytest.raises(StoreUnavailableError, match=r"cluster0\.example\.invalid"):
        ResultsManager(uri).list_ids()
    assert run("--uri", uri, "ls")[0] == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and ":pw@" not in err


def test_import_reports_bad_records_by_line_and_imports_the_rest(
    uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = {"id": "imp/{}", "namespace": "default", "model_type": "Metrics", "data": {"loss": 1.0, "accuracy": 0.5}}
    deep = "[" * 100_000 + "]" * 100_000
    lines = [
        json.dumps({**good, "id": "imp/1"}),
        "42",  # JSON, not an object
        "[1, 2]",
        '{"namespace": "default", "model_type": "Metrics", "data": {}}',  # no id
        json.dumps({**good, "id": "imp/nul", "data": {"a\u0000b": 1.0}}),  # a NUL in a data key
        deep,  # nesting too deep to parse
        "{not json",
        json.dumps({**good, "id": "imp/2"}),
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    code, out = run("--uri", uri, "import", str(source))
    err = capsys.readouterr().err
    assert code == 1
    assert out.strip().endswith("2 written, 0 skipped, 6 failed")
    for number in (2, 3, 4, 5, 6, 7):
        assert f"{source}:{number}: " in err, err
    reported = [line for line in err.splitlines() if line.startswith("mongo-results: ")]
    assert len(reported) == 6 and "Traceback" not in err, reported
    assert ResultsManager(uri).list_ids("imp") == ["imp/1", "imp/2"]


CLI = [sys.executable, "-m", "mongo_results"]


@pytest.mark.parametrize(
    ("target", "code", "says"),
    [
        ("mongodb://", 2, "Must provide at least one hostname"),
        ("{server}/a.b", 1, "InvalidNamespaceError"),
        ("{server}/my db", 2, "Bad database name"),
    ],
)
def test_bad_uris_and_names_are_one_line(target: str, code: int, says: str, request: pytest.FixtureRequest) -> None:
    if "{server}" in target:
        base = str(request.getfixturevalue("server_uri")).rstrip("/")
        target = target.format(server=base)
    proc = subprocess.run([*CLI, "--uri", target, "ls"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and says in proc.stderr


def test_import_reports_each_bad_line_by_number(tmp_path: Path) -> None:
    register_model(Metrics, namespace="training")
    good = json.dumps(
        {
            "id": "ok/1",
            "namespace": "training",
            "model_type": "Metrics",
            "data": {"loss": 1.0, "accuracy": 1.0, "step": 0},
        }
    )
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(["42", "[1, 2]", good, '{"model_type": "Metrics"}']) + "\n")
    proc = subprocess.run(
        [*CLI, "--uri", str(tmp_path / "store"), "import", str(source)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{source}:1: not a JSON object but int" in proc.stderr
    assert f"{source}:2: not a JSON object but list" in proc.stderr
    assert f"{source}:4: no id" in proc.stderr
    assert "1 written, 0 skipped, 3 failed" in proc.stdout


def test_export_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    rm = ResultsManager(tmp_path)
    rm.set_many({f"p/{i}": Metrics(loss=i, accuracy=0) for i in range(3000)})
    proc = subprocess.run(
        f"{sys.executable} -m mongo_results --uri {tmp_path} export | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(proc.stdout)["id"] == "p/0"
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_models_are_imported_from_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "mymodels.py").write_text(
        "from pydantic import BaseModel\nfrom mongo_results import register_model\n\n"
        "@register_model(namespace='mine')\nclass Mine(BaseModel):\n    x: int\n"
    )
    proc = subprocess.run(
        [*CLI, "--uri", str(tmp_path), "--import", "mymodels", "ls"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr


def test_an_empty_answer_says_there_is_nothing(uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    filled(uri).close()
    capsys.readouterr()
    assert run("--uri", uri, "ls", "--namespace", "nosuch") == (0, "")
    assert "no results in namespace 'nosuch'" in capsys.readouterr().err
    assert run("--uri", uri, "ls", "nothing/here")[0] == 0
    assert "no results under 'nothing/here'" in capsys.readouterr().err


def test_the_command_line_waits_its_own_shorter_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--uri", "mongodb://127.0.0.1:9/db", "--timeout", "0.4", "ls")[0] == 1
    assert "within 0.4 s" in capsys.readouterr().err
    assert run("--uri", "mongodb://127.0.0.1:9/db?serverSelectionTimeoutMS=300", "ls")[0] == 1  # the URI's own wins
    assert "within 0.3 s" in capsys.readouterr().err


def test_doctor_on_the_embedded_store_says_what_it_is() -> None:
    code, out = run("--uri", "mongomock://localhost/doc", "doctor")
    assert code == 0 and "embedded store lives in this process's memory" in out


def test_validate_names_each_result_that_no_longer_loads(uri: str) -> None:
    filled(uri).close()
    rm = ResultsManager(uri)
    rm.admin.store("old/1", "Metrics", {"loss": "not a number", "accuracy": 1.0}, namespace="training")
    rm.close()
    code, out = run("--uri", uri, "validate")
    assert code == 1
    assert "old/1: ValidationError: loss: Input should be a valid number" in out
    assert "Metrics: 1 failing" in out and out.splitlines()[-1] == "5 results checked, 1 failing"
    code, out = run("--uri", uri, "validate", "--prefix", "sweep")
    assert code == 0 and out.splitlines()[-1] == "4 results checked, 0 failing"


def test_import_a_line_that_is_not_utf8_costs_that_line_only(tmp_path: Path) -> None:
    record = {"namespace": "default", "model_type": "Metrics", "data": {"loss": 1.0, "accuracy": 1.0}}
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        json.dumps({**record, "id": "u/1"}).encode()
        + b"\n"
        + json.dumps({**record, "id": "u/\u00e9"}, ensure_ascii=False).encode("latin-1")  # one byte 0xe9: not UTF-8
        + b"\n"
        + json.dumps({**record, "id": "u/2"}, ensure_ascii=False).encode()
        + b"\n"
    )
    store = tmp_path / "store"
    proc = subprocess.run(
        [*CLI, "--uri", str(store), "import", str(source)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{source}:2: not UTF-8 (byte 0xe9 at column " in proc.stderr
    assert "2 written, 0 skipped, 1 failed" in proc.stdout
    assert ResultsManager(store).list_ids("u") == ["u/1", "u/2"]


def _one_line(proc: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.returncode == code and says in proc.stderr, proc.stderr


def test_a_port_that_is_not_a_number_is_a_usage_error() -> None:
    proc = subprocess.run(
        [*CLI, "--uri", "mongodb://localhost:abc/db", "ls"], capture_output=True, text=True, timeout=60
    )
    _one_line(proc, 2, "mongo-results: error: Cannot use the MongoDB URI for localhost:abc: Port contains non-digit")
    with pytest.raises(InvalidUriError, match="Port contains non-digit"):
        ResultsManager("mongodb://localhost:abc/db").list_ids()


def test_a_models_module_that_does_not_import_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def (\n")
    (tmp_path / "raising.py").write_text("raise KeyError('no config')\n")
    for module, says in (("broken", "SyntaxError: invalid syntax"), ("raising", "KeyError: 'no config'")):
        proc = subprocess.run(
            [*CLI, "--uri", str(tmp_path), "--import", module, "ls"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        _one_line(proc, 2, f"mongo-results: error: cannot import --import {module}: {says}")


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_a_closed_stdout_is_one_line_and_a_closed_stderr_keeps_the_exit_code(tmp_path: Path) -> None:
    ResultsManager(tmp_path / "store").set("a/b", Metrics(loss=1, accuracy=1))
    cli = " ".join(CLI)
    _one_line(_shell(f"{cli} --uri store ls >&-", tmp_path), 1, "standard output is closed")
    assert _shell(f"{cli} --uri store ls nothing/here >&-", tmp_path).returncode == 0  # nothing to write
    assert _shell(f"{cli} --uri nowhere ls 2>&-", tmp_path).returncode == 2
    assert _shell(f"{cli} --uri store show a/c 2>&-", tmp_path).returncode == 1
    proc = _shell(f"{cli} --uri store export 2>&-", tmp_path)  # its count goes to the closed stderr
    assert proc.returncode == 0 and json.loads(proc.stdout)["id"] == "a/b"
    (tmp_path / "in.jsonl").write_text(proc.stdout)
    imported = _shell(f"{cli} --uri copy import in.jsonl 2>&-", tmp_path)  # a progress bar on the closed stderr
    assert imported.returncode == 0 and "1 written" in imported.stdout
    assert ResultsManager(tmp_path / "copy").get("a/b", Metrics) == Metrics(loss=1, accuracy=1)


def test_a_symlink_loop_in_the_file_store_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ResultsManager(store).set("ok", Metrics(loss=1, accuracy=1))
    (store / "a.json").symlink_to("b.json")
    (store / "b.json").symlink_to("a.json")
    (store / "d1").symlink_to("d2")
    (store / "d2").symlink_to("d1")
    proc = subprocess.run([*CLI, "--uri", str(store), "rm", "-y", "a"], capture_output=True, text=True, timeout=60)
    _one_line(proc, 1, "a.json is in a loop of symbolic links")
    record = {"id": "d1/x", "namespace": "default", "model_type": "Metrics", "data": {"loss": 1.0, "accuracy": 1.0}}
    (tmp_path / "in.jsonl").write_text(json.dumps(record) + "\n")
    proc = subprocess.run(
        [*CLI, "--uri", str(store), "import", str(tmp_path / "in.jsonl")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "in.jsonl:1: " in proc.stderr and "x.json is in a loop of symbolic links" in proc.stderr
    assert ResultsManager(store).list_ids() == ["ok"]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("timeoutMS=700", "within 0.7 s"),
        ("timeoutMS=700&serverSelectionTimeoutMS=60000", "within 0.7 s"),  # timeoutMS replaces it
        ("timeoutMS=0&serverSelectionTimeoutMS=600", "within 0.6 s"),  # 0: no overall timeout
    ],
)
def test_a_timeout_message_states_the_timeout_in_force(query: str, says: str) -> None:
    uri = f"mongodb://127.0.0.1:9/db?{query}"
    proc = subprocess.run([*CLI, "--uri", uri, "ls"], capture_output=True, text=True, timeout=120)
    _one_line(proc, 1, f"StoreUnavailableError: Cannot reach MongoDB at 127.0.0.1:9 {says}:")
    with pytest.raises(StoreUnavailableError, match=says):
        ResultsManager(uri).list_ids()


def test_claims_lists_the_live_claims_and_progress_counts_a_sweep(uri: str) -> None:
    rm = filled(uri)
    claim = rm.claim("sweep/lr=0.3/seed=1/metrics", lease=600)
    assert claim is not None
    code, text = run("--uri", uri, "claims", "sweep")
    assert code == 0 and "sweep/lr=0.3/seed=1/metrics" in text and claim.owner in text and "min" in text
    code, text = run("--uri", uri, "claims", "sweep", "--json")
    [record] = json.loads(text)
    assert record["id"] == "sweep/lr=0.3/seed=1/metrics" and 590 < record["expires_in"] <= 600
    code, text = run("--uri", uri, "progress", "sweep", "--expect", "8")
    assert code == 1 and "4/8 stored (50%), 1 running, 0 failed, 3 left" in text  # not finished: exit 1
    claim.release()
    code, text = run("--uri", uri, "claims")
    assert code == 0 and text == ""
    code, text = run("--uri", uri, "progress", "sweep", "--expect", "4")
    assert code == 0 and "4/4 stored (100%), 0 running, 0 failed, 0 left" in text


def test_failures_lists_failed_cells_and_reset_forgets_them(uri: str) -> None:
    rm = filled(uri)
    for _ in range(2):
        claim = rm.claim("sweep/lr=0.9/seed=0/metrics", lease=600)
        assert claim is not None
        with pytest.raises(ZeroDivisionError), claim:
            print(1 / 0)
    code, text = run("--uri", uri, "failures", "sweep")
    assert code == 0 and "sweep/lr=0.9/seed=0/metrics" in text and "ZeroDivisionError" in text
    assert text.splitlines()[0].split() == ["ID", "ATTEMPTS", "ERROR", "MESSAGE", "FAILED", "AT"]
    [record] = json.loads(run("--uri", uri, "failures", "--json")[1])
    assert record["attempts"] == 2 and record["message"] == "division by zero" and "1 / 0" in record["traceback"]
    code, text = run("--uri", uri, "progress", "sweep", "--expect", "5")
    assert code == 1 and "4/5 stored (80%), 0 running, 1 failed, 0 left" in text
    code, text = run("--uri", uri, "progress", "sweep", "--expect", "5", "--watch")
    assert code == 1 and "1 failed" in text  # over: nothing left to run, but not every cell stored
    assert run("--uri", uri, "failures", "--reset") == (0, "forgot 1 failed cell(s)\n")
    assert run("--uri", uri, "failures") == (0, "")


def test_claims_watch_shows_the_claims_until_its_time_is_up(tmp_path: Path) -> None:
    store = tmp_path / "store"
    rm = ResultsManager(store)
    claim = rm.claim("grid/1", lease=600)
    assert claim is not None
    watch = subprocess.run(
        [*CLI, "--uri", str(store), "claims", "--watch", "--interval", "0.5", "--for", "0.6"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert watch.returncode == 0 and not watch.stderr
    looks = [line for line in watch.stdout.splitlines() if "live claim(s)" in line]
    assert len(looks) >= 2 and all(line.endswith("1 live claim(s)") for line in looks)
    assert watch.stdout.count("grid/1") == len(looks)


def _watching(store: Path) -> subprocess.Popen[str]:
    """``progress --watch`` over six results, once it has looked at the store (its first line is out)."""
    watch = subprocess.Popen(
        [*CLI, "--uri", str(store), "progress", "grid", "--expect", "6", "--watch", "--interval", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None
    first = watch.stdout.readline()  # not a tty: one line per look
    assert "0/6 stored" in first, first
    return watch


def test_progress_follows_a_running_sweep_until_it_is_done(tmp_path: Path) -> None:
    store = tmp_path / "store"
    rm = ResultsManager(store)
    register_model(Metrics)
    watch = _watching(store)  # it has looked once: the sweep starts after, so it looks at least twice
    for i in range(6):
        rm.set(f"grid/{i}", Metrics(loss=i, accuracy=0))
    out, err = watch.communicate(timeout=60)
    assert (
        watch.returncode == 0
        and out.splitlines()[-1].endswith("6/6 stored (100%), 0 running, 0 failed, 0 left")
        and not err
    )


def test_ctrl_c_ends_a_watch_quietly(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ResultsManager(store)
    watch = _watching(store)
    watch.send_signal(signal.SIGINT)
    _, err = watch.communicate(timeout=60)
    assert watch.returncode == 0 and "Traceback" not in err and err == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["--expect", "-1"],
        ["--expect", "3", "--interval", "0.1"],
        ["--expect", "x"],
        ["--expect", "3", "--interval", "inf"],  # before: a traceback
        ["--expect", "3", "--interval", "1e300"],
        ["--expect", "3", "--interval", "nan"],  # before: exit 1
        ["--expect", "3", "--watch", "--for", "nan"],  # before: never stopped
    ],
)
def test_progress_refuses_bad_numbers_in_one_line(tmp_path: Path, argv: list[str]) -> None:
    ResultsManager(tmp_path / "store")
    proc = subprocess.run(
        [*CLI, "--uri", str(tmp_path / "store"), "progress", "grid", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error:" in proc.stderr.strip().splitlines()[-1]  # argparse's usage, then one line saying what is wrong


def test_progress_never_rounds_an_unfinished_sweep_up_to_100(tmp_path: Path) -> None:
    register_model(Metrics)
    rm = ResultsManager(tmp_path / "store")
    rm.set_many({f"grid/{i}": Metrics(loss=i, accuracy=0) for i in range(199)})
    code, out = run("--uri", str(tmp_path / "store"), "progress", "grid", "--expect", "200")
    assert code == 1 and "199/200 stored (99%)" in out
