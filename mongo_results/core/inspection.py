"""``doctor``: what a store is, and whether its collections, indexes and validators are as they should be."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import get_models_in_namespace
from .commands import EVERY, CountDocuments, EnsureIndexes, Find, ListIndexes, ReadValidator, SetValidator
from .engine import Engine
from .filters import FOREIGN, OURS
from .operations import Operation, Operations
from .validators import validator_command

__all__ = ["Report", "diagnose"]

_NOTES = {
    "mongomock": "the embedded store lives in this process's memory and ends with it; it has no validators",
    "files": "one JSON file per result; the file store has no validators",
}


@dataclass
class Report:
    """What ``doctor`` found: one line per check, and how many problems are left."""

    lines: list[str] = field(default_factory=list)
    problems: int = 0

    def __str__(self) -> str:
        found = "no problems found" if not self.problems else f"{self.problems} problem(s) found"
        return "\n".join([*self.lines, found])


def diagnose(ops: Operations, where: str, *, fix: bool) -> Operation[Report]:
    """Check every namespace of the store (and, with ``fix``, create what is missing)."""
    engine = yield from ops.learn_engine()
    report = Report([f"{where}: {engine.label}"])
    if engine.name in _NOTES:
        report.lines.append(f"  note: {_NOTES[engine.name]}")
    elif not engine.validators:
        report.lines.append(f"  note: {engine.label} does not enforce collection validators; they are skipped")
    names = yield from ops.namespaces()
    if not names:
        report.lines.append(f"  no {ops.prefix}* collections yet" if not engine.one_keyspace else "  no results yet")
    if engine.one_keyspace:
        yield from _list_foreign(report)
    for ns in names:
        collection = ops.prefix + ns
        title = f"namespace {ns}" if engine.one_keyspace else collection
        report.lines.append(f"{title}: {(yield CountDocuments(collection, OURS))} results")
        foreign = 0 if engine.one_keyspace else (yield CountDocuments(collection, FOREIGN))
        if foreign:
            report.lines.append(
                f"  note: {foreign} document(s) here are not results (written by another tool?); "
                "listing, reading, export and clear() leave them alone"
            )
        yield from _check_indexes(ops, collection, fix, report)
        if engine.validators and ops.validation != "off":
            yield from _check_validator(ops, ns, engine, fix, report)
    return report


def _list_foreign(report: Report) -> Operation[None]:
    """Files that are not results (truncated, or someone else's): named, since reads skip them."""
    found = yield Find(EVERY, FOREIGN)
    if found:
        report.lines.append(
            f"  note: {len(found)} .json file(s) are not results; list_ids lists them, reads skip them, get names them:"
        )
        report.lines += [f"    {doc['_id']}: {doc.get('source', 'no envelope')}" for doc in found[:20]]
        if len(found) > 20:
            report.lines.append(f"    ... and {len(found) - 20} more")


def _check_indexes(ops: Operations, collection: str, fix: bool, report: Report) -> Operation[None]:
    have = set((yield ListIndexes(collection)))
    for index in ops.indexes_of(collection[len(ops.prefix) :]):
        if index.name in have:
            report.lines.append(f"  ok: index {index.name}")
        elif fix:
            yield EnsureIndexes(collection, (index,))
            report.lines.append(f"  fixed: created index {index.name}")
        else:
            report.problems += 1
            report.lines.append(f"  problem: index {index.name} is missing; run `mongo-results doctor --fix`")


def _check_validator(ops: Operations, namespace: str, engine: Engine, fix: bool, report: Report) -> Operation[None]:
    collection = ops.prefix + namespace
    options = yield ReadValidator(collection)
    installed = options.get("validator")
    command, note = validator_command(collection, namespace, ops.validation, engine)
    models = get_models_in_namespace(namespace)
    if note:
        report.lines.append(f"  note: {note}")
    if installed and (not models or installed == command["validator"]):
        report.lines.append(f"  ok: validator ({options.get('validationAction', 'error')})")
        return
    what = "is missing" if not installed else "does not match the registered models"
    if fix:
        yield SetValidator(collection, command)
        report.lines.append(
            f"  fixed: installed the validator for {len(models)} registered model(s) ({ops.validation})"
        )
        return
    hint = "" if models else " (pass --import your.models so the models are registered)"
    report.problems += 1
    report.lines.append(f"  problem: validator {what}; run `mongo-results --import your.models doctor --fix`{hint}")
