"""Looking after a store: ``upgrade`` (results rewritten after a model changed) and ``doctor``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from ..errors import InvalidArgumentError, UpgradeFailedError, WrongTypeError
from .claims import check_claims
from .commands import (
    EVERY,
    CollectionOptions,
    CountDocuments,
    Delete,
    DeleteFile,
    EnableSharding,
    EnsureIndexes,
    Find,
    Leftovers,
    ListCollections,
    ListIndexes,
    NoMatch,
    Refused,
    SetValidator,
    ShardCollection,
    ShardKeyOf,
    Update,
)
from .encoding import EXACT_TIMES, decode_data, encode_model, exact_times
from .ids import ResultId
from .large import bucket, discard, file_of, file_state, orphaned, put, spill
from .names import CLAIMS, validate_namespace
from .operations import Operation, Operations
from .profiles import EngineProfile, check_engine
from .queries import FOREIGN, OURS, scoped
from .reads import UNREADABLE, each_batch, load_model
from .sharding import CHUNKS, RESULTS, KeyRule, describe, preferred_keys
from .validators import validator_command

__all__ = ["Report", "ShardReport", "Upgraded", "diagnose", "shard", "upgrade", "upgraded_types"]


@dataclass(frozen=True, slots=True)
class Upgraded:
    """What ``upgrade`` did: counts of results, by what happened to them.

    Attributes:
        upgraded: Results rewritten.
        current: Results of the model's own type that already loaded, left alone.
        changed_meanwhile: Results written or deleted by someone else between read and rewrite.
        other_types: Results under the prefix stored as other model types, left alone.
    """

    upgraded: int
    current: int
    changed_meanwhile: int
    other_types: int = 0


def upgraded_types(model_class: type[BaseModel], old_types: Iterable[str]) -> tuple[str, ...]:
    """The model types an upgrade may touch: the class's own name and the old names given."""
    if isinstance(old_types, str) or not all(isinstance(t, str) and t for t in old_types):
        raise InvalidArgumentError(f"old_types takes a list of model type names (e.g. ['RunV1']), not {old_types!r}")
    return tuple(sorted({model_class.__name__, *old_types}))


def upgrade(
    ops: Operations,
    prefix: ResultId | None,
    model_class: type[BaseModel],
    convert: Callable[[dict[str, Any]], BaseModel],
    namespace: str | None,
    batch_size: int,
    *,
    secrets: bool | None = None,
    old_types: Iterable[str] = (),
) -> Operation[Upgraded]:
    """Rewrite results that no longer load into ``model_class`` as ``convert(old data)``.

    Those under ``prefix`` stored as ``model_class`` that no longer load, and every result
    stored as one of ``old_types``.

    Results of other model types are left alone and counted. A result that loads is left
    alone, so a second run does nothing. Each rewrite is one update filtered on the digest
    the result had when read: a result written or deleted meanwhile is not touched (counted
    in ``changed_meanwhile``; run again to take it).
    """
    types = upgraded_types(model_class, old_types)
    old = set(types) - {model_class.__name__}
    engine = yield from ops.learn_engine()
    counts = {"upgraded": 0, "current": 0, "changed": 0, "other": 0}
    for collection in (yield from ops.collections(namespace)):
        counts["other"] += yield CountDocuments(collection, scoped(prefix, {"model_type": {"$nin": list(types)}}))

    def rewrite(documents: list[dict[str, Any]]) -> Operation[list[Any]]:
        for doc in documents:
            if doc["model_type"] not in old:
                try:
                    load_model(doc, doc["_id"], model_class, namespace, ops.models)
                    counts["current"] += 1
                    continue
                except UNREADABLE:
                    pass
            new = _converted(convert, doc, model_class, counts)
            encoded = encode_model(
                new, store_secrets=ops.store_secrets if secrets is None else secrets, decimal128=engine.decimal128
            )
            check_engine(doc["_id"], encoded, engine)
            now = ops.clock()
            fresh = {k: v for k, v in doc.items() if k != "gridfs"}
            fresh.update(model_type=encoded.model_type, data=encoded.data, digest=encoded.digest, updated_at=now)
            spilled = spill(doc["_id"], fresh, encoded, engine.max_document)
            if spilled is not None:
                yield put(ops.prefix, doc["_id"], str(doc.get("namespace")), encoded.digest, spilled)
            collection = ops.prefix + str(doc.get("namespace"))
            # Filtered on what was read: a result rewritten meanwhile (its digest or its file) stays.
            read = {"_id": doc["_id"], "digest": doc["digest"], **file_state(doc)}
            # The whole document, as read and converted: a $set may keep a value equal to the old one.
            answer = yield Update(collection, read, fresh, replace=True)
            if isinstance(answer, NoMatch):
                yield from discard(ops.prefix, spilled.file_id if spilled else None)
            else:
                yield from discard(ops.prefix, file_of(doc))
            counts["changed" if isinstance(answer, NoMatch) else "upgraded"] += 1
        return []

    pages = ops.iter_documents(prefix, namespace, batch_size, where={"model_type": {"$in": list(types)}})
    yield from each_batch(pages, rewrite)
    return Upgraded(counts["upgraded"], counts["current"], counts["changed"], counts["other"])


def _converted(
    convert: Callable[[dict[str, Any]], BaseModel],
    doc: dict[str, Any],
    model_class: type[BaseModel],
    counts: dict[str, int],
) -> BaseModel:
    """``convert(old data)``, checked; a failure names the result and what was already rewritten."""
    rid = doc["_id"]
    try:
        new = convert(decode_data(doc["data"], exact_times(doc.get(EXACT_TIMES))))
    except Exception as exc:
        raise UpgradeFailedError(rid, counts["upgraded"], exc) from exc
    if not isinstance(new, model_class):
        kind = type(new).__name__
        raise WrongTypeError(
            f"convert returned a {kind} for {rid!r}, not a {model_class.__name__} "
            f"({counts['upgraded']} result(s) upgraded before it)"
        )
    return new


# -- ``doctor``: what a store is, and whether its collections, indexes and validators are as they should be.

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
    found = yield Leftovers(remove=fix)
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
            refused = yield EnsureIndexes(collection, (index,))
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
    options = ((yield CollectionOptions(collection)) or {}).get("options") or {}
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
        refused = yield SetValidator(collection, command)
        _fixed(report, f"installed the validator for {len(models)} registered model(s) ({ops.validation})", refused)
        return
    hint = "" if models else " (pass --import your.models so the models are registered)"
    report.problems += 1
    report.lines.append(f"  problem: validator {what}; run `mongo-results --import your.models doctor --fix`{hint}")


def _check_files(prefix: str, names: list[str], now: datetime, fix: bool, report: Report) -> Operation[None]:
    """GridFS files of results over 16 MiB: every result's file is there, and no file is left unnamed."""
    name = bucket(prefix)
    if not {name + ".files", name + ".chunks"} & set((yield ListCollections())):
        return
    files = {doc["_id"] for doc in (yield Find(name + ".files", {}, {"_id": 1}))}
    chunked = {doc.get("files_id") for doc in (yield Find(name + ".chunks", {}, {"files_id": 1}))}
    named: dict[object, str] = {}
    for ns in names:
        for doc in (yield Find(prefix + ns, {"gridfs": {"$exists": True}}, {"gridfs.file_id": 1})):
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
            yield DeleteFile(name, file_id)
        if partial:
            yield Delete(name + ".chunks", {"files_id": {"$in": partial}}, many=True)
        report.lines.append(f"  fixed: removed {what}")
    else:
        report.problems += len(unnamed) + len(partial)
        report.lines.append(f"  problem: {what} (left by interrupted writes); run `mongo-results doctor --fix`")


def _check_sharding(collection: str, rule: KeyRule, report: Report) -> Operation[None]:
    """How the collection is sharded; a key that lets two shards hold one id is a problem."""
    found = yield ShardKeyOf(collection)
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


# -- ``shard``: the store's collections sharded on keys that keep every id unique across shards.

# Why a store cannot be sharded, by engine: the truthful answer where there is nothing to shard.
_UNSHARDABLE = {
    "files": "the file store is one directory, on one machine or one shared file system",
    "mongomock": "the embedded store lives in this process's memory",
}
COMMAND_NOT_FOUND = 59
# The server shards on hashed keys only (DocumentDB): the same field, hashed, is tried next.
_HASHED_ONLY = "hashed"


@dataclass
class ShardReport:
    """What ``shard`` did: one line per collection, the key each is sharded on now, and problems left.

    ``str(report)`` is the report as ``mongo-results shard`` prints it.

    Attributes:
        lines: One line per collection (``sharded on``, ``already sharded on``, ``problem:``, ``note:``).
        keys: The shard key of each collection sharded now, by collection name.
        problems: How many collections are left unsharded or sharded on a key that breaks uniqueness.
    """

    lines: list[str] = field(default_factory=list)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: int = 0

    def __str__(self) -> str:
        found = "done" if not self.problems else f"{self.problems} problem(s) left"
        return "\n".join([*self.lines, found])


def shard(ops: Operations, namespace: str | None, key: Any = None) -> Operation[ShardReport]:
    """Shard the results collections on ``_id``, the GridFS chunks on their file id and the claims on their id.

    Every namespace collection of the store, and ``namespace`` (created when it does not exist
    yet). A collection already sharded on a right key is left as it is; one sharded on another
    key is reported, never changed. ``key`` None tries ranged keys first and hashed ones where
    the server supports only those.
    """
    ranged, hashed = preferred_keys(key)
    if namespace is not None:
        validate_namespace(namespace)
    engine = yield from ops.learn_engine()
    report = ShardReport([f"{ops.where}: {engine.label}"])
    if not engine.sharding:
        why = _UNSHARDABLE.get(engine.name, f"{engine.label} has no sharding")
        report.lines.append(f"  nothing to shard: {why}")
        return report
    answer = yield EnableSharding()
    if isinstance(answer, Refused):
        if answer.code == COMMAND_NOT_FOUND:
            report.lines.append("  nothing to shard: the server is not a sharded cluster (it has no enableSharding)")
        else:
            report.problems += 1
            report.lines.append(f"  problem: the server refused enableSharding (code {answer.code}): {answer.message}")
        return report
    names = yield from ops.namespaces()
    if namespace is not None and namespace not in names:
        names = sorted([*names, namespace])
    if not names:
        report.lines.append(
            "  note: no namespace collections yet; shard again after the first write, or name one with --namespace"
        )
    targets = [(ops.prefix + ns, RESULTS) for ns in names]
    targets += [(bucket(ops.prefix) + ".chunks", CHUNKS), (ops.prefix + CLAIMS, RESULTS)]
    for collection, rule in targets:
        yield from _shard_one(collection, rule, ranged, hashed, report)
    ops.keys_checked.clear()  # read again before the next write
    return report


def _shard_one(collection: str, rule: KeyRule, ranged: bool, hashed: bool, report: ShardReport) -> Operation[None]:
    found = yield ShardKeyOf(collection)
    if isinstance(found, dict):
        if rule.keeps_unique(found):
            report.keys[collection] = found
            report.lines.append(f"{collection}: already sharded on {describe(found)}")
        else:
            report.problems += 1
            report.lines.append(
                f"{collection}: problem: sharded on {describe(found)}, which lets two shards each hold "
                f"one id; left as it is (reshard it on {describe(rule.ranged)} or {describe(rule.hashed)})"
            )
        return
    tries = [(k, u) for k, u, wanted in ((rule.ranged, rule.unique, ranged), (rule.hashed, False, hashed)) if wanted]
    refused: Refused | None = None
    for index, (wanted_key, unique) in enumerate(tries):
        answer = yield ShardCollection(collection, wanted_key, unique)
        if not isinstance(answer, Refused):
            report.keys[collection] = dict(wanted_key)
            after = f" (the server refused {describe(rule.ranged)}: {refused.message})" if refused is not None else ""
            report.lines.append(f"{collection}: sharded on {describe(wanted_key)}{after}")
            return
        refused = answer
        if _HASHED_ONLY not in answer.message.lower() or index == len(tries) - 1:
            break
    assert refused is not None
    report.problems += 1
    report.lines.append(
        f"{collection}: problem: the server refused to shard it (code {refused.code}): {refused.message}"
    )
