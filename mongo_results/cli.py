"""``mongo-results``: look at, move and check stored results from a terminal.

Exit codes: 0 success, 1 some items (or checks) failed, 2 usage error. Errors
are one line on stderr; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import bson
from bson import json_util

from ._targets import check_uri, is_uri
from ._terminal import Progress, table
from .backends.file import FileBackend
from .backends.mongo import MongoBackend
from .behaviors import SetBehavior
from .encoding import JSON_OPTIONS, unescape_tree
from .errors import MongoResultsError
from .manager import open_backend
from .registry import DEFAULT_NAMESPACE

__all__ = ["main"]

Store = FileBackend | MongoBackend
EXPORT_FIELDS = ("id", "namespace", "model_type", "created_at", "updated_at", "data")


class UsageError(Exception):
    """Bad arguments: exit code 2."""


def _when(value: object) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else "-"


def open_store(uri: str | None, *, create: bool = False) -> Store:
    if not uri:
        raise UsageError("no store: pass --uri or set MONGO_RESULTS_URI (a directory or a mongodb:// URI)")
    if is_uri(uri):
        try:
            check_uri(uri)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    elif not create and not Path(uri).is_dir():
        raise UsageError(f"no file store at {uri!r}")
    store: Store = open_backend(uri, create_if_missing=create)
    return store


def cmd_ls(args: argparse.Namespace, out: TextIO) -> int:
    docs = open_store(args.uri).documents(args.prefix, args.namespace, with_data=False)
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
    }


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args.uri)
    docs = [
        d for d in store.documents(args.id, args.namespace) if d["_id"] == "/".join(p for p in args.id.split("/") if p)
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
    store = open_store(args.uri)
    if args.prefix is not None:
        ids = sorted({d["_id"] for d in store.documents(args.prefix, args.namespace, with_data=False)})
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
    docs = open_store(args.uri).documents(args.prefix, args.namespace)
    progress = Progress(len(docs), "export", unit="results")
    for doc in docs:
        out.write(json_util.dumps(_export_record(doc), json_options=JSON_OPTIONS, ensure_ascii=False) + "\n")
        progress.advance()
    sys.stderr.write(f"exported {len(docs)} results\n")
    return 0


def _records(source: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """``(where, record)`` for each record, or ``(where, why it is not one)``: one bad line stops nothing."""
    if source.is_dir():
        for doc in FileBackend(source, create_if_missing=False).documents():
            yield f"{source}/{doc['_id']}", _export_record(doc)
        return
    with open(source, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{source}:{number}"
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


def cmd_import(args: argparse.Namespace, out: TextIO) -> int:
    source = Path(args.source)
    if not source.exists():
        raise UsageError(f"no such file or directory: {source}")
    store = open_store(args.uri, create=True)
    records = list(_records(source))
    behavior = SetBehavior(args.behavior)
    written = skipped = failed = 0
    progress = Progress(len(records), "import", unit="results")
    for where, record in records:
        try:
            if isinstance(record, str):
                raise MongoResultsError(record)
            namespace = args.namespace or record.get("namespace") or DEFAULT_NAMESPACE
            model_type: Any = record.get("model_type")  # checked by store(): a record may lack it
            data: Any = record.get("data")
            if store.store(record["id"], model_type, data, behavior, namespace):
                written += 1
            else:
                skipped += 1
        except (MongoResultsError, ValueError, TypeError, KeyError, FileExistsError, RecursionError) as exc:
            failed += 1
            sys.stderr.write(f"mongo-results: {where}: {exc}\n")
        progress.advance()
    out.write(f"imported from {source}: {written} written, {skipped} skipped, {failed} failed\n")
    return 1 if failed else 0


def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    docs = open_store(args.uri).documents(args.prefix)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for doc in docs:
        groups.setdefault((str(doc.get("namespace")), str(doc.get("model_type"))), []).append(doc)
    rows = []
    for (ns, model), members in sorted(groups.items()):
        size = sum(len(bson.encode(d)) for d in members)
        oldest = min((d["created_at"] for d in members if d.get("created_at")), default=None)
        newest = max((d["updated_at"] for d in members if d.get("updated_at")), default=None)
        rows.append((ns, model, str(len(members)), _when(oldest), _when(newest), f"{size:,}"))
    if rows:
        out.write("\n".join(table(rows, ("NAMESPACE", "MODEL", "RESULTS", "OLDEST", "NEWEST", "BYTES"))) + "\n")
    total = sum(len(bson.encode(d)) for d in docs)
    out.write(f"{len(docs)} results in {len(groups)} (namespace, model) groups, {total:,} bytes\n")
    return 0


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    from ._doctor import diagnose

    problems = diagnose(open_store(args.uri), fix=args.fix, out=out)
    out.write("no problems found\n" if not problems else f"{problems} problem(s) found\n")
    return 1 if problems else 0


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
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("ls", help="ids under a prefix, with type, namespace and update time")
    ls.add_argument("prefix", nargs="?")
    ls.add_argument("--namespace")
    ls.add_argument("--json", action="store_true", help="JSON for scripts")
    ls.set_defaults(run=cmd_ls)

    show = sub.add_parser("show", help="one result as JSON, with its envelope")
    show.add_argument("id")
    show.add_argument("--namespace")
    show.set_defaults(run=cmd_show)

    rm = sub.add_parser("rm", help="remove results (asks first unless --yes)")
    rm.add_argument("ids", nargs="*")
    rm.add_argument("--prefix")
    rm.add_argument("--namespace")
    rm.add_argument("--yes", "-y", action="store_true")
    rm.set_defaults(run=cmd_rm)

    export = sub.add_parser("export", help="results as JSON lines on stdout")
    export.add_argument("prefix", nargs="?")
    export.add_argument("--namespace")
    export.set_defaults(run=cmd_export)

    imp = sub.add_parser("import", help="store an export file, or a results_manager / file-store directory")
    imp.add_argument("source")
    imp.add_argument("--behavior", choices=[b.value for b in SetBehavior], default=SetBehavior.SKIP_IF_EXISTS.value)
    imp.add_argument("--namespace", help="store everything in this namespace instead of each record's")
    imp.set_defaults(run=cmd_import)

    stats = sub.add_parser("stats", help="counts per namespace and model type, ages and size")
    stats.add_argument("prefix", nargs="?")
    stats.set_defaults(run=cmd_stats)

    doctor = sub.add_parser("doctor", help="check the connection, engine, indexes and validators")
    doctor.add_argument("--fix", action="store_true", help="create missing indexes and install validators")
    doctor.set_defaults(run=cmd_doctor)
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    out = out if out is not None else sys.stdout
    try:
        for module in args.modules:
            importlib.import_module(module)
        code: int = args.run(args, out)
        return code
    except UsageError as exc:
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
