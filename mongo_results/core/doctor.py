"""``doctor``: what a store is, and whether its collections, indexes, validators and files are as they should be."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .claims import check_claims
from .commands import (
    EVERY,
    CollectionOptions,
    CountDocuments,
    Delete,
    DeleteFile,
    EnsureIndexes,
    Find,
    Leftovers,
    ListCollections,
    ListIndexes,
    Refused,
    SetValidator,
    ShardKeyOf,
    ask,
)
from .filters import FOREIGN, OURS
from .large import bucket, file_of, orphaned
from .operations import Operation, Operations
from .profiles import EngineProfile
from .shard_keys import RESULTS, KeyRule, describe
from .validators import validator_command

__all__ = ["Report", "diagnose"]


_NOTES = {
    "mongomock": "the embedded store lives in this process's memory and ends with it; it has no validators",
    "files": "one JSON file per result; the file store has no validators",
}


@dataclass
class Report:
    """What ``doctor`` found: one line per check, and how many problems are left.

    ``str(report)`` is the report as ``mongo-results doctor`` prints it.

    Attributes:
        lines: One line per check (``problem:``, ``fixed:`` or ``note:`` lines under each).
        problems: How many problems are left; 0 when the store is sound.
    """

    lines: list[str] = field(default_factory=list)
    problems: int = 0

    def __str__(self) -> str:
        found = "no problems found" if not self.problems else f"{self.problems} problem(s) found"
        return "\n".join([*self.lines, found])


def diagnose(ops: Operations, *, fix: bool) -> Operation[Report]:
    """Check every namespace of the store (and, with ``fix``, create what is missing)."""
    engine = yield from ops.learn_engine()
    report = Report([f"{ops.where}: {engine.label}"])
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
        report.lines.append(f"{title}: {(yield from ask(CountDocuments(collection, OURS)))} results")
        foreign = 0 if engine.one_keyspace else (yield from ask(CountDocuments(collection, FOREIGN)))
        if foreign:
            report.lines.append(
                f"  note: {foreign} document(s) here are not results (written by another tool?); "
                "listing, reading, export and clear() leave them alone"
            )
        yield from _check_indexes(ops, collection, fix, report)
        if engine.validators and ops.validation != "off":
            yield from _check_validator(ops, ns, engine, fix, report)
        if engine.sharding:
            yield from _check_sharding(collection, RESULTS, report)
    if engine.max_document is not None:
        yield from _check_files(ops.prefix, names, ops.clock(), fix, report)
    if engine.temp_files:
        yield from _check_leftovers(fix, report)
    for line in (yield from check_claims(ops, fix)):
        report.lines.append(line)
        report.problems += line.startswith("  problem:")
    return report


def _check_leftovers(fix: bool, report: Report) -> Operation[None]:
    """Temporary files of writers killed mid-write: never read as results, but they take space."""
    found = yield from ask(Leftovers(remove=fix))
    if not found:
        return
    what = f"{len(found)} temporary file(s) of writers killed mid-write"
    if fix:
        report.lines.append(f"  fixed: removed {what}")
    else:
        report.problems += len(found)
        report.lines.append(f"  problem: {what}; run `mongo-results doctor --fix`")


def _list_foreign(report: Report) -> Operation[None]:
    """Files that are not results (truncated, or someone else's): named, since reads skip them."""
    found = yield from ask(Find(EVERY, FOREIGN))
    if found:
        report.lines.append(
            f"  note: {len(found)} .json file(s) are not results; list_ids lists them, reads skip them, get names them:"
        )
        report.lines += [f"    {doc['_id']}: {doc.get('source', 'no envelope')}" for doc in found[:20]]
        if len(found) > 20:
            report.lines.append(f"    ... and {len(found) - 20} more")


def _check_indexes(ops: Operations, collection: str, fix: bool, report: Report) -> Operation[None]:
    have = set((yield from ask(ListIndexes(collection))))
    for index in ops.indexes_of(collection[len(ops.prefix) :]):
        if index.name in have:
            report.lines.append(f"  ok: index {index.name}")
        elif fix:
            refused = yield from ask(EnsureIndexes(collection, (index,)))
            _fixed(report, f"created index {index.name}", refused)
        else:
            report.problems += 1
            report.lines.append(f"  problem: index {index.name} is missing; run `mongo-results doctor --fix`")


def _fixed(report: Report, what: str, refused: object) -> None:
    """A repair done, or refused by the server (a user without the right: doctor --fix is an administrator's)."""
    if isinstance(refused, Refused):
        report.problems += 1
        report.lines.append(f"  problem: could not fix: the server refused it (code {refused.code}): {refused.message}")
    else:
        report.lines.append(f"  fixed: {what}")


def _check_validator(
    ops: Operations, namespace: str, engine: EngineProfile, fix: bool, report: Report
) -> Operation[None]:
    collection = ops.prefix + namespace
    options = ((yield from ask(CollectionOptions(collection))) or {}).get("options") or {}
    installed = options.get("validator")
    command, note = validator_command(collection, namespace, ops.validation, engine, ops.models)
    models = list(ops.models.in_namespace(namespace))
    if note:
        report.lines.append(f"  note: {note}")
    if installed and (not models or installed == command["validator"]):
        report.lines.append(f"  ok: validator ({options.get('validationAction', 'error')})")
        return
    what = "is missing" if not installed else "does not match the registered models"
    if fix:
        refused = yield from ask(SetValidator(collection, command))
        _fixed(report, f"installed the validator for {len(models)} registered model(s) ({ops.validation})", refused)
        return
    hint = "" if models else " (pass --import your.models so the models are registered)"
    report.problems += 1
    report.lines.append(f"  problem: validator {what}; run `mongo-results --import your.models doctor --fix`{hint}")


def _check_files(prefix: str, names: list[str], now: datetime, fix: bool, report: Report) -> Operation[None]:
    """GridFS files of results over 16 MiB: every result's file is there, and no file is left unnamed."""
    name = bucket(prefix)
    if not {name + ".files", name + ".chunks"} & set((yield from ask(ListCollections()))):
        return
    files = {doc["_id"] for doc in (yield from ask(Find(name + ".files", {}, {"_id": 1})))}
    chunked = {doc.get("files_id") for doc in (yield from ask(Find(name + ".chunks", {}, {"files_id": 1})))}
    named: dict[object, str] = {}
    for ns in names:
        for doc in (yield from ask(Find(prefix + ns, {"gridfs": {"$exists": True}}, {"gridfs.file_id": 1}))):
            named[file_of(doc)] = doc["_id"]
    report.lines.append(f"{name}: {len(files)} file(s) holding the large fields of results over 16 MiB")
    lost = sorted(rid for file_id, rid in named.items() if file_id not in files)
    if lost:
        report.problems += len(lost)
        report.lines.append(f"  problem: {len(lost)} result(s) lost their file; get raises CorruptResultError:")
        report.lines += [f"    {rid}" for rid in lost[:20]]
    unnamed, young = orphaned(files, set(named), now)
    partial, young_chunks = orphaned({f for f in chunked if f not in files}, set(), now)
    if young or young_chunks:
        report.lines.append(
            f"  note: {young + young_chunks} file(s) no result names yet: writes in progress, left alone"
        )
    if not unnamed and not partial:
        return
    what = f"{len(unnamed)} file(s) no result names and {len(partial)} incomplete upload(s)"
    if fix:
        for file_id in unnamed:
            yield from ask(DeleteFile(name, file_id))
        if partial:
            yield from ask(Delete(name + ".chunks", {"files_id": {"$in": partial}}, many=True))
        report.lines.append(f"  fixed: removed {what}")
    else:
        report.problems += len(unnamed) + len(partial)
        report.lines.append(f"  problem: {what} (left by interrupted writes); run `mongo-results doctor --fix`")


def _check_sharding(collection: str, rule: KeyRule, report: Report) -> Operation[None]:
    """How the collection is sharded; a key that lets two shards hold one id is a problem."""
    found = yield from ask(ShardKeyOf(collection))
    if not isinstance(found, dict):
        what = "not sharded" if found is None else "sharding unknown (the server's config is not readable)"
        report.lines.append(f"  ok: {what}")
    elif rule.keeps_unique(found):
        report.lines.append(f"  ok: sharded on {describe(found)}")
    else:
        report.problems += 1
        report.lines.append(
            f"  problem: sharded on {describe(found)}: two shards can each hold a result under one id, so "
            "writes here are refused; reshard it on _id (reshardCollection)"
        )
