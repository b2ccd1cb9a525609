"""``mongo-results doctor``: what is connected, and whether our collections are as they should be."""

from __future__ import annotations

from typing import Any, TextIO

from ._core import OURS, Engine, namespaces_in
from ._operations import indexes
from .backends.file import FileBackend
from .backends.mongo import MongoBackend
from .registry import get_models_in_namespace
from .validation import validator_command

__all__ = ["diagnose"]


def _check_files(store: FileBackend, fix: bool, out: TextIO) -> int:
    docs = store.documents(with_data=False)
    out.write(f"file store at {store.base_dir}: {len(docs)} results\n")
    broken = [d["_id"] for d in docs if not d.get("model_type")]
    for rid in broken:
        out.write(f"  problem: {rid} has no model_type: rewrite it with `mongo-results import` or delete it\n")
    leftovers = len(store.leftovers())
    if leftovers and fix:
        out.write(f"  fixed: removed {store.remove_leftovers()} temporary file(s) of writers killed mid-write\n")
    elif leftovers:
        out.write(
            f"  problem: {leftovers} temporary file(s) of writers killed mid-write; run `mongo-results doctor --fix`\n"
        )
    return len(broken) + (leftovers if not fix else 0)


def diagnose(store: FileBackend | MongoBackend, *, fix: bool, out: TextIO) -> int:
    """Write a report; return the number of problems left."""
    if isinstance(store, FileBackend):
        return _check_files(store, fix, out)
    engine = store.engine()  # connects, or raises StoreUnavailableError with the hosts
    db = store.database()
    out.write(f"connected to {store.hosts}, database {store.database_name!r}: {engine.label}\n")
    if not engine.validators:
        out.write(f"  note: {engine.label} does not enforce collection validators; they are skipped\n")
    names = namespaces_in(db.list_collection_names(), store.collection_prefix)
    if not names:
        out.write(f"  no {store.collection_prefix}* collections yet\n")
    problems = 0
    for ns in names:
        coll = db[store.collection_prefix + ns]
        foreign = coll.count_documents({"$nor": [OURS]})
        out.write(f"{coll.name}: {coll.count_documents(OURS)} results\n")
        if foreign:
            out.write(
                f"  note: {foreign} document(s) here are not results (written by another tool?); "
                "listing, reading, export and clear() leave them alone\n"
            )
        have = set(coll.index_information())
        for index in indexes(store.path_index):
            name = index.document["name"]
            if name in have:
                out.write(f"  ok: index {name}\n")
            elif fix:
                coll.create_indexes([index])
                out.write(f"  fixed: created index {name}\n")
            else:
                problems += 1
                out.write(f"  problem: index {name} is missing; run `mongo-results doctor --fix`\n")
        if engine.validators:
            problems += _check_validator(db, coll.name, ns, store.validation, engine, fix, out)
    return problems


def _check_validator(db: Any, name: str, namespace: str, action: str, engine: Engine, fix: bool, out: TextIO) -> int:
    info: dict[str, Any] = next(iter(db.list_collections(filter={"name": name})), {})
    options = info.get("options", {})
    installed = options.get("validator")
    command, note = validator_command(name, namespace, action, engine)
    models = get_models_in_namespace(namespace)
    if note:
        out.write(f"  note: {note}\n")
    if installed and (not models or installed == command["validator"]):
        out.write(f"  ok: validator ({options.get('validationAction', 'error')})\n")
        return 0
    what = "is missing" if not installed else "does not match the registered models"
    if fix:
        db.command(command)
        out.write(f"  fixed: installed the validator for {len(models)} registered model(s) ({action})\n")
        return 0
    hint = "" if models else " (pass --import your.models so the models are registered)"
    out.write(f"  problem: validator {what}; run `mongo-results --import your.models doctor --fix`{hint}\n")
    return 1
