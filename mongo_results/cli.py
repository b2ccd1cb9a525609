"""``mongo-results``: look at, move and check stored results from a terminal.

Exit codes: 0 success, 1 some items (or checks) failed, 2 usage error. Errors
are one line on stderr; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import io
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import bson
from bson import json_util
from pydantic import ValidationError

from .core.behaviors import SetBehavior
from .core.encoding import EXACT_TIMES, JSON_OPTIONS, unescape_tree
from .core.operations import StoredRecord
from .core.reads import UNREADABLE, load_model
from .errors import InvalidArgumentError, InvalidShardKeyError, InvalidUriError, MongoResultsError
from .manager import ResultsManager
from .registry import DEFAULT_NAMESPACE, MODELS
from .stores import MongoBackend
from .stores.mongo import check_uri, is_uri
from .terminal import Progress, table

__all__ = ["main"]
EXPORT_FIELDS = ("id", "namespace", "model_type", "created_at", "updated_at", "data", EXACT_TIMES)


class UsageError(Exception):
    """Bad arguments: exit code 2."""


def seconds(text: str) -> float:
    """A command line's number of seconds: a finite number (nan, inf and 1e999 are refused, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds")
    return value


def _when(value: object) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else "-"


def open_store(args: argparse.Namespace, *, create: bool = False) -> ResultsManager:
    uri: str | None = args.uri
    if not uri:
        raise UsageError("no store: pass --uri or set MONGO_RESULTS_URI (a directory or a mongodb:// URI)")
    if not is_uri(uri):
        if not create and not Path(uri).is_dir():
            raise UsageError(f"no file store at {uri!r}")
        return ResultsManager(uri, create_if_missing=create)
    try:
        check_uri(uri)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # A terminal should not wait 30 s in silence: the command line's own default, unless the URI sets one.
    options: dict[str, Any] = {}
    if "serverselectiontimeoutms=" not in uri.lower():
        options["serverSelectionTimeoutMS"] = int(args.timeout * 1000)
    backend = MongoBackend(uri, **options)
    if sys.stderr.isatty() and not backend.embedded:
        sys.stderr.write(f"mongo-results: {backend._where.replace('connected', 'connecting')} ...\n")
    return ResultsManager(backend=backend)


def _nothing(store: ResultsManager, args: argparse.Namespace) -> None:
    under = f" under {args.prefix!r}" if args.prefix else ""
    within = f" in namespace {args.namespace!r}" if getattr(args, "namespace", None) else ""
    where = getattr(store.backend, "where", repr(store.backend))
    sys.stderr.write(f"mongo-results: no results{under}{within} ({where})\n")


def cmd_ls(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args)
    docs = store.admin.documents(args.prefix, args.namespace, with_data=False)
    if not docs:
        _nothing(store, args)
    rows = [(d["_id"], str(d.get("model_type")), str(d.get("namespace")), _when(d.get("updated_at"))) for d in docs]
    if args.json:
        keys = ("id", "model_type", "namespace", "updated_at")
        out.write(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=2) + "\n")
    elif rows:
        out.write("\n".join(table(rows, ("ID", "MODEL", "NAMESPACE", "UPDATED"))) + "\n")
    return 0


def _export_record(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "namespace": doc.get("namespace", DEFAULT_NAMESPACE),
        "model_type": doc.get("model_type"),
        "created_at": doc.get("created_at"),
        "updated_at": doc.get("updated_at"),
        "data": doc.get("data"),
        **({EXACT_TIMES: doc[EXACT_TIMES]} if doc.get(EXACT_TIMES) else {}),
    }


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args)
    docs = [
        d
        for d in store.admin.documents(args.id, args.namespace)
        if d["_id"] == "/".join(p for p in args.id.split("/") if p)
    ]
    if not docs:
        raise MongoResultsError(f"no result {args.id!r}")
    if len(docs) > 1:
        names = ", ".join(str(d.get("namespace")) for d in docs)
        raise MongoResultsError(f"{args.id!r} is in several namespaces ({names}); pass --namespace")
    record = _export_record(docs[0])
    record["data"] = unescape_tree(record["data"])
    out.write(json_util.dumps(record, json_options=JSON_OPTIONS, indent=2, ensure_ascii=False) + "\n")
    return 0


def _confirm(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def cmd_rm(args: argparse.Namespace, out: TextIO) -> int:
    if bool(args.ids) == (args.prefix is not None):
        raise UsageError("rm takes result ids, or --prefix P, not both")
    store = open_store(args)
    if args.prefix is not None:
        ids = sorted({d["_id"] for d in store.admin.documents(args.prefix, args.namespace, with_data=False)})
        if not ids:
            out.write(f"nothing under {args.prefix!r}\n")
            return 0
        if not args.yes and not _confirm(f"Remove {len(ids)} results under {args.prefix!r}?"):
            sys.stderr.write("nothing removed\n")
            return 1
    else:
        ids = args.ids
        if not args.yes and not _confirm(f"Remove {len(ids)} result(s)?"):
            sys.stderr.write("nothing removed\n")
            return 1
    missing = 0
    for rid in ids:
        if store.delete(rid, args.namespace):
            out.write(f"removed {rid}\n")
        else:
            missing += 1
            sys.stderr.write(f"mongo-results: no result {rid!r}\n")
    return 1 if missing else 0


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args)
    progress = Progress(len(store.list_ids(args.prefix, args.namespace)), "export", unit="results")
    for doc in store.admin.iter_documents(args.prefix, args.namespace):  # page by page: memory stays flat
        out.write(json_util.dumps(_export_record(doc), json_options=JSON_OPTIONS, ensure_ascii=False) + "\n")
        progress.advance()
    if not progress.done:
        _nothing(store, args)
    sys.stderr.write(f"exported {progress.done} results\n")
    return 0


def _records(source: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """``(where, record)`` for each record, or ``(where, why it is not one)``: one bad line stops nothing."""
    if source.is_dir():
        tree = ResultsManager(source, create_if_missing=False)
        results = tree.admin.iter_documents()
        found = next(results, None)
        for rid in tree.list_ids():  # every .json file, in id order: those that are not results are reported
            if found is not None and found["_id"] == rid:
                yield f"{source}/{rid}.json", _export_record(found)
                found = next(results, None)
            else:
                yield f"{source}/{rid}.json", "not a result (no model_type or data)"
        return
    with open(source, "rb") as lines:  # decoded line by line: one bad byte costs its line, not the file
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            where = f"{source}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield where, f"not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
                continue
            try:
                record = json_util.loads(line, json_options=JSON_OPTIONS)
            except (ValueError, RecursionError) as exc:
                yield where, f"not a JSON record ({str(exc)[:200] or type(exc).__name__})"
                continue
            if not isinstance(record, dict):
                yield where, f"not a JSON object but {type(record).__name__}"
            elif not isinstance(record.get("id"), (str, list)):
                yield where, "no id"
            else:
                yield where, record


def _count(source: Path) -> int:
    """How many records an import has, read ahead so the progress bar has a total."""
    if source.is_dir():
        return len(ResultsManager(source, create_if_missing=False).list_ids())
    with open(source, "rb") as lines:
        return sum(1 for line in lines if line.strip())


def cmd_import(args: argparse.Namespace, out: TextIO) -> int:
    source = Path(args.source)
    if not source.exists():
        raise UsageError(f"no such file or directory: {source}")
    store = open_store(args, create=True)
    behavior = SetBehavior(args.behavior)
    counts = Counter[str]()
    progress = Progress(_count(source), "import", unit="results")
    batch: list[tuple[str, StoredRecord]] = []

    def flush() -> None:
        # One bulk write per namespace and 1,000 records, each decided as store() decides it.
        outcomes = store.admin._store_many([record for _, record in batch], behavior) if batch else []
        for (where, _), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                counts["failed"] += 1
                sys.stderr.write(f"mongo-results: {where}: {outcome}\n")
            else:
                counts["written" if outcome else "skipped"] += 1
            progress.advance()
        batch.clear()

    for where, record in _records(source):
        try:
            if isinstance(record, str):
                raise MongoResultsError(record)
            namespace = args.namespace or record.get("namespace") or DEFAULT_NAMESPACE
            model_type: Any = record.get("model_type")  # checked when planned: a record may lack it
            data: Any = record.get("data")
            times = [_time(record.get(k), k) for k in ("created_at", "updated_at")]  # kept: the format is lossless
            exact = record.get(EXACT_TIMES)
            batch.append((where, (record["id"], model_type, data, namespace, *times, exact)))
        except (MongoResultsError, ValueError, TypeError, KeyError, RecursionError) as exc:
            counts["failed"] += 1
            sys.stderr.write(f"mongo-results: {where}: {exc}\n")
            progress.advance()
        if len(batch) >= 1000:
            flush()
    flush()
    written, skipped, failed = counts["written"], counts["skipped"], counts["failed"]
    out.write(f"imported from {source}: {written} written, {skipped} skipped, {failed} failed\n")
    return 1 if failed else 0


def _time(value: Any, name: str) -> datetime | None:
    """An export's time (a date, as Extended JSON gives it back), or None for a record without one."""
    if value is None or isinstance(value, datetime):
        return value
    raise InvalidArgumentError(f"{name} is {type(value).__name__}, not a date")


def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    groups: dict[tuple[str, str], list[Any]] = {}  # -> [count, oldest, newest, bytes]
    for doc in open_store(args).admin.iter_documents(args.prefix):  # page by page: memory stays flat
        group = groups.setdefault((str(doc.get("namespace")), str(doc.get("model_type"))), [0, None, None, 0])
        created, updated = doc.get("created_at"), doc.get("updated_at")
        group[0] += 1
        group[1] = created if group[1] is None or (created and created < group[1]) else group[1]
        group[2] = updated if group[2] is None or (updated and updated > group[2]) else group[2]
        group[3] += len(bson.encode(doc))
    rows = [
        (ns, m, str(n), _when(old), _when(new), f"{size:,}") for (ns, m), (n, old, new, size) in sorted(groups.items())
    ]
    if rows:
        out.write("\n".join(table(rows, ("NAMESPACE", "MODEL", "RESULTS", "OLDEST", "NEWEST", "BYTES"))) + "\n")
    count, total = sum(g[0] for g in groups.values()), sum(g[3] for g in groups.values())
    out.write(f"{count} results in {len(groups)} (namespace, model) groups, {total:,} bytes\n")
    return 0


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        error = exc.errors()[0]
        return f"{'.'.join(map(str, error['loc'])) or '(model)'}: {error['msg']}"
    return " ".join(str(exc).split())


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args)
    checked, failing = 0, Counter[str]()
    for doc in store.admin.iter_documents(args.prefix, args.namespace):  # page by page
        checked += 1
        try:
            load_model(doc, doc["_id"], None, None, MODELS)
        except UNREADABLE as exc:
            failing[str(doc.get("model_type"))] += 1
            out.write(f"{doc['_id']}: {type(exc).__name__}: {_first_error(exc)}\n")
    for model, count in sorted(failing.items()):
        out.write(f"{model}: {count} failing\n")
    out.write(f"{checked} results checked, {sum(failing.values())} failing\n")
    unknown = sorted(m for m in failing if not MODELS.everywhere(m))
    if unknown and not args.modules:
        out.write(
            f"hint: {', '.join(unknown)} is not registered here: pass --import your.models "
            "(the module that registers your models) to check results against their classes\n"
        )
    return 1 if failing else 0


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args)
    report = store.admin.doctor(fix=args.fix)
    out.write(f"{report}\n")
    return 1 if report.problems else 0


def cmd_shard(args: argparse.Namespace, out: TextIO) -> int:
    key = None
    if args.key is not None:
        try:
            key = json.loads(args.key)
        except json.JSONDecodeError as exc:
            raise UsageError(f'--key takes a JSON document such as \'{{"_id": "hashed"}}\': {exc}') from exc
        if not isinstance(key, dict):
            raise UsageError(f'--key takes a JSON document such as \'{{"_id": "hashed"}}\', not {args.key}')
    try:
        report = open_store(args).admin.shard(args.namespace, key)
    except InvalidShardKeyError as exc:
        raise UsageError(str(exc)) from None
    out.write(f"{report}\n")
    return 1 if report.problems else 0


def _expires(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _claims_table(claims: list[dict[str, Any]], as_json: bool, prefix: str | None) -> str:
    rows = [(c["result_id"], str(c.get("namespace") or "*"), c["owner"], _expires(c["expires_in"])) for c in claims]
    if as_json:
        keys = ("id", "namespace", "owner", "expires_in")
        records = [
            dict(zip(keys, (*r[:3], round(c["expires_in"], 1)), strict=True)) for r, c in zip(rows, claims, strict=True)
        ]
        return json.dumps(records, indent=2) + "\n"
    if rows:
        return "\n".join(table(rows, ("ID", "NAMESPACE", "OWNER", "EXPIRES IN"))) + "\n"
    return f"no live claims{f' under {prefix!r}' if prefix else ''}\n"


def _watch_options(args: argparse.Namespace) -> float | None:
    """The deadline of a watch (None: until Ctrl-C), after checking ``--interval`` and ``--for``."""
    if not 0.5 <= args.interval <= 86_400:
        raise UsageError("--interval is 0.5 seconds to a day: each look is a query per namespace")
    if not 0 <= args.seconds <= 366 * 86_400:
        raise UsageError("--for is a number of seconds, 0 (no end) up to a year")
    return time.monotonic() + args.seconds if args.seconds else None


def cmd_claims(args: argparse.Namespace, out: TextIO) -> int:
    deadline = _watch_options(args)
    store = open_store(args)
    try:
        while True:
            claims = store.claims(args.prefix)
            text = _claims_table(claims, args.json, args.prefix)
            if not args.watch:
                if claims or args.json:
                    out.write(text)
                else:
                    sys.stderr.write(f"mongo-results: {text}")
                return 0
            stamp = datetime.now().strftime("%H:%M:%S")
            out.write(("\x1b[H\x1b[2J" if out.isatty() else "") + f"{stamp}  {len(claims)} live claim(s)\n{text}")
            out.flush()
            if deadline is not None and time.monotonic() >= deadline:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:  # Ctrl-C ends the watch, not the sweep: quietly
        return 0


def cmd_failures(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args)
    if args.reset:
        gone = store.reset_failures(args.prefix)
        out.write(f"forgot {gone} failed cell(s){f' under {args.prefix!r}' if args.prefix else ''}\n")
        return 0
    failures = store.failures(args.prefix)
    if args.json:
        records = [{**f, "failed_at": _when(f["failed_at"])} for f in failures]
        out.write(json.dumps(records, indent=2) + "\n")
    elif failures:
        rows = [
            (
                f["result_id"],
                str(f["attempts"]),
                str(f["error"]).rsplit(".", 1)[-1],
                (str(f["message"]).splitlines() or [""])[0][:60],
                _when(f["failed_at"]),
            )
            for f in failures
        ]
        out.write("\n".join(table(rows, ("ID", "ATTEMPTS", "ERROR", "MESSAGE", "FAILED AT"))) + "\n")
    else:
        sys.stderr.write(f"mongo-results: no failed cells{f' under {args.prefix!r}' if args.prefix else ''}\n")
    return 0


def _progress_line(stored: int, running: int, failed: int, expect: int) -> str:
    share = min(stored / expect, 1.0) if expect else 1.0
    filled = int(30 * share)
    percent = math.floor(share * 100)  # never rounded up: 199 of 200 is 99%, only a finished sweep 100%
    left = max(expect - stored - running - failed, 0)
    return (
        f"[{'#' * filled}{'.' * (30 - filled)}] {stored}/{expect} stored ({percent}%), "
        f"{running} running, {failed} failed, {left} left"
    )


def cmd_progress(args: argparse.Namespace, out: TextIO) -> int:
    if args.expect < 0:
        raise UsageError("--expect is a number of results, 0 or more")
    deadline = _watch_options(args)
    store = open_store(args)
    tty = out.isatty()
    try:
        while True:
            ids = store.list_ids(args.prefix)
            running = len(store.claims(args.prefix))
            stored = set(ids)
            failed = sum(1 for f in store.failures(args.prefix) if f["result_id"] not in stored)
            line = _progress_line(len(ids), running, failed, args.expect)
            # Over when every cell is stored, or stored or failed with no worker left on it.
            finished = len(ids) >= args.expect or (len(ids) + failed >= args.expect and not running)
            if not args.watch or finished or (deadline is not None and time.monotonic() >= deadline):
                out.write(("\r" if tty and args.watch else "") + line + "\n")
                return 0 if len(ids) >= args.expect else 1
            out.write(("\r" + line) if tty else line + "\n")
            out.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:  # Ctrl-C ends the watch, not the sweep: quietly
        out.write("\n")
        return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mongo-results", description="Look at, move and check mongo_results stores.")
    p.add_argument("--uri", default=os.environ.get("MONGO_RESULTS_URI"), help="store: directory or mongodb:// URI")
    p.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module that registers your models (for doctor's validators)",
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=float(os.environ.get("MONGO_RESULTS_TIMEOUT", "5")),
        metavar="SECONDS",
        help="how long to wait for a MongoDB server (default 5, or MONGO_RESULTS_TIMEOUT; a URI's "
        "serverSelectionTimeoutMS wins)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, run: Any, help: str, *, prefix: str | None = "?", namespace: bool = True) -> Any:
        """A subcommand; ``prefix``: "?" an optional positional prefix, "--" a --prefix flag, None none."""
        parser = sub.add_parser(name, help=help)
        if prefix == "?":
            parser.add_argument("prefix", nargs="?")
        elif prefix == "--":
            parser.add_argument("--prefix")
        if namespace:
            parser.add_argument("--namespace")
        parser.set_defaults(run=run)
        return parser

    command("ls", cmd_ls, "ids under a prefix, with type, namespace and update time").add_argument(
        "--json", action="store_true", help="JSON for scripts"
    )
    command("show", cmd_show, "one result as JSON, with its envelope", prefix=None).add_argument("id")
    rm = command("rm", cmd_rm, "remove results (asks first unless --yes)", prefix="--")
    rm.add_argument("ids", nargs="*")
    rm.add_argument("--yes", "-y", action="store_true")
    command("export", cmd_export, "results as JSON lines on stdout")
    imp = command(
        "import", cmd_import, "store an export file, or a results_manager / file-store directory", prefix=None
    )
    imp.add_argument("source")
    imp.add_argument("--behavior", choices=[b.value for b in SetBehavior], default=SetBehavior.SKIP_IF_EXISTS.value)
    command("stats", cmd_stats, "counts per namespace and model type, ages and size", namespace=False)
    command("validate", cmd_validate, "check every stored result against its registered model class", prefix="--")

    claims = command("claims", cmd_claims, "live claims of sweeps' workers: id, owner, expires in", namespace=False)
    claims.add_argument("--json", action="store_true", help="JSON for scripts")
    claims.add_argument("--watch", action="store_true", help="show them again every --interval (Ctrl-C ends)")
    _watching(claims)
    failures = command("failures", cmd_failures, "cells whose work failed: id, attempts, error", namespace=False)
    failures.add_argument("--json", action="store_true", help="JSON for scripts, with each traceback")
    failures.add_argument("--reset", action="store_true", help="forget them, so that workers try the cells again")
    progress = sub.add_parser("progress", help="how many of a sweep's results are stored, running, failed and left")
    progress.add_argument("prefix")
    progress.add_argument("--expect", type=int, required=True, metavar="N", help="the sweep's number of results")
    progress.add_argument("--watch", action="store_true", help="follow the sweep until it is over (Ctrl-C ends)")
    _watching(progress)
    progress.set_defaults(run=cmd_progress)

    doctor = sub.add_parser("doctor", help="check the connection, engine, indexes and validators")
    doctor.add_argument("--fix", action="store_true", help="create missing indexes and install validators")
    doctor.set_defaults(run=cmd_doctor)

    sharding = command(
        "shard",
        cmd_shard,
        "shard the results on _id, large results' chunks and the claims on a sharded cluster",
        prefix=None,
    )
    sharding.add_argument(
        "--key",
        metavar="JSON",
        help='the results\' key: {"_id": 1} or {"_id": "hashed"} (default: ranged if supported)',
    )
    return p


def _watching(command: argparse.ArgumentParser) -> None:
    command.add_argument("--interval", type=seconds, default=2.0, metavar="SECONDS", help="between looks (default 2)")
    command.add_argument(
        "--for", dest="seconds", type=seconds, default=0.0, metavar="SECONDS", help="stop watching after"
    )


class _ClosedOutput(io.StringIO):
    """Standard output that the shell closed (``>&-``): writing to it is the command's one error."""

    def write(self, text: str, /) -> int:
        if not text:
            return 0
        raise OSError(errno.EBADF, "cannot write the output: standard output is closed")


def _standard_streams() -> None:
    """Keep descriptors 0-2 open (on /dev/null) when the shell closed them.

    Otherwise the next file opened takes the number and output meant for the terminal lands
    in it; a closed stderr (``2>&-``) then loses messages, never the exit code.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the life of the process
    if sys.stdin is None:  # `rm` asks there: no answer is "no"
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115


def _import_models(modules: list[str]) -> None:
    if modules and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: your models' module is found where you are
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # the user's module: any error in it is bad input, not ours
            raise UsageError(f"cannot import --import {module}: {type(exc).__name__}: {exc}") from exc


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    stdout_closed = sys.stdout is None
    _standard_streams()
    args = parser().parse_args(argv)
    out = out if out is not None else (_ClosedOutput() if stdout_closed else sys.stdout)
    try:
        _import_models(args.modules)
        code: int = args.run(args, out)
        out.flush()
        return code
    except BrokenPipeError:  # the reader went away (`export | head -1`): end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, InvalidUriError) as exc:
        if args.debug:
            raise
        sys.stderr.write(f"mongo-results: error: {exc}\n")
        return 2
    except (MongoResultsError, OSError, ValueError, ImportError) as exc:
        if args.debug:
            raise
        message = " ".join(str(exc).split())
        sys.stderr.write(f"mongo-results: {type(exc).__name__}: {message}\n")
        return 1
