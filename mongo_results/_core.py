"""The decisions of every MongoDB operation, with no I/O.

Each function turns a call into what to send (collection, filter, update) or
turns what came back into a result or an exception. The sync and async shells
only carry these plans to the driver, so both behave identically.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import bson
from pydantic import BaseModel

from .behaviors import SetBehavior, Stored, outcome
from .encoding import CODEC_OPTIONS, EncodedModel, encode_model, validate_data
from .errors import (
    AmbiguousResultError,
    CorruptResultError,
    DocumentTooLargeError,
    InvalidNamespaceError,
    LossyValueError,
    ModelNotRegisteredError,
    MongoResultsError,
    ResultNotFoundError,
)
from .ids import ResultId, canonical_prefix, segments
from .registry import DEFAULT_NAMESPACE, find_model_in_all_namespaces, find_model_namespace, get_model_class

__all__ = [
    "DEFAULT_COLLECTION_PREFIX",
    "OURS",
    "Engine",
    "MAX_DOCUMENT_BYTES",
    "SetPlan",
    "check_engine",
    "check_size",
    "choose_document",
    "load_model",
    "namespaces_in",
    "not_found",
    "now",
    "optional_namespace",
    "plan_encoded",
    "plan_set",
    "page_after",
    "prefix_filter",
    "resolve_namespace",
    "validate_collection_prefix",
    "validate_namespace",
]

DEFAULT_COLLECTION_PREFIX = "results."
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
# No "." at the end either: "results.runs." is no collection name on MongoDB.
_NAMESPACE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,62}[A-Za-z0-9_\-])?")


@dataclass(frozen=True, slots=True)
class Engine:
    """What the server behind a store can hold, read once from ``buildInfo``.

    The FerretDB profiles are what the suite measured on FerretDB 1.24 (SQLite)
    and 2.5 (PostgreSQL + DocumentDB); see the README's engine table.
    """

    name: str = "mongodb"
    version: str = ""
    decimal128: bool = True
    # FerretDB 1.x refuses ±inf and drops the connection on NaN; it refuses arrays in arrays.
    non_finite: bool = True
    nested_arrays: bool = True
    # FerretDB 1.24's $set skips an embedded document whose values equal the old one's in
    # order, whatever its keys ({"a": 1} -> {"b": 1} is "unchanged"); replace_one is exact.
    faithful_set: bool = True
    validators: bool = True  # collection validators (collMod); FerretDB 1.x does not enforce them
    # $jsonSchema keywords the engine evaluates (None: all of MongoDB's). DocumentDB accepts a
    # validator with others, then refuses every write with "Unknown $jsonSchema keyword".
    schema_keywords: frozenset[str] | None = None
    max_validator_bytes: int | None = None  # DocumentDB refuses a validator over 10 KB
    # FerretDB 1.24 answers a multi-statement update that meets any error without n, nModified
    # or upserted, so per-item outcomes of bulk updates cannot be known there (inserts are fine).
    bulk_updates: bool = True
    max_write_batch: int = 100_000  # FerretDB 2.5 advertises 100,000 and refuses over 25,000

    @property
    def label(self) -> str:
        """The engine for people: ``MongoDB 8.0.4``, ``FerretDB v2.5.0``."""
        return {"ferretdb": "FerretDB", "mongomock": "embedded mongomock"}.get(self.name, "MongoDB") + (
            f" {self.version}" if self.version else ""
        )

    @classmethod
    def from_build_info(cls, info: Mapping[str, Any]) -> Engine:
        """FerretDB 1.x adds ``ferretdbVersion`` to buildInfo, FerretDB 2.x ``ferretdb.version``."""
        v1 = info.get("ferretdbVersion")
        if v1:
            return cls(
                "ferretdb",
                str(v1),
                decimal128=False,
                non_finite=False,
                nested_arrays=False,
                faithful_set=False,
                validators=False,
                bulk_updates=False,
            )
        v2 = info.get("ferretdb")
        if isinstance(v2, Mapping):
            return cls(
                "ferretdb",
                str(v2.get("version", "")),
                schema_keywords=frozenset({"bsonType", "properties", "items"}),
                max_validator_bytes=10 * 1024,
                max_write_batch=25_000,
            )
        return cls("mongodb", str(info.get("version", "")))


EMBEDDED = Engine("mongomock", validators=False)


def _engine_refusal(value: Any, path: str, engine: Engine, in_array: bool = False) -> str | None:
    """Why the engine would refuse (or drop the connection over) this encoded value, if it would."""
    if isinstance(value, float):
        return None if engine.non_finite or math.isfinite(value) else f"{path}: {value} (±inf and NaN)"
    if isinstance(value, dict):
        for k, v in value.items():
            found = _engine_refusal(v, f"{path}.{k}" if path else k, engine)
            if found:
                return found
    elif isinstance(value, list):
        if in_array and not engine.nested_arrays:
            return f"{path}: an array inside an array"
        for i, v in enumerate(value):
            found = _engine_refusal(v, f"{path}[{i}]", engine, True)
            if found:
                return found
    return None


def check_engine(result_id: str, encoded: EncodedModel, engine: Engine) -> None:
    """Refuse, before sending, a value this engine cannot store (FerretDB 1.x)."""
    if engine.non_finite and engine.nested_arrays:
        return
    found = _engine_refusal(encoded.data, "", engine)
    if found:
        raise LossyValueError(f"{engine.label} cannot store field {found} of {result_id!r}; MongoDB can")


def validate_namespace(namespace: object) -> str:
    """Check that a namespace can name a collection on every engine."""
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace) or ".." in namespace:
        raise InvalidNamespaceError(
            f"Invalid namespace {namespace!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter, digit or '_', not ending with '.', with no '..'"
        )
    return namespace


def optional_namespace(namespace: str | None) -> str | None:
    """A read's namespace argument: None (every namespace) or a valid namespace."""
    return None if namespace is None else validate_namespace(namespace)


def validate_collection_prefix(prefix: str) -> str:
    """Check a collection prefix such as ``results.``."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}", prefix):
        raise ValueError(f"Invalid collection prefix {prefix!r}")
    return prefix


def resolve_namespace(model: BaseModel, namespace: str | None, strict: bool, result_id: str) -> str:
    """The namespace a ``set`` writes to: the argument, else the model's registration, else the default."""
    if namespace is not None:
        return validate_namespace(namespace)
    try:
        found = find_model_namespace(type(model), strict=strict)
    except ValueError as exc:
        raise ValueError(
            f"Cannot automatically determine namespace for {type(model).__name__} when saving to '{result_id}': {exc}"
        ) from exc
    return validate_namespace(found if found is not None else DEFAULT_NAMESPACE)


def namespaces_in(collection_names: Iterable[str], prefix: str) -> list[str]:
    """The namespaces whose collections are among ``collection_names``."""
    return sorted(
        name[len(prefix) :] for name in collection_names if name.startswith(prefix) and len(name) > len(prefix)
    )


def now() -> datetime:
    """The current UTC time at BSON's millisecond precision."""
    return datetime.fromtimestamp(time.time_ns() // 1_000_000 / 1000, timezone.utc)


def check_size(result_id: str, encoded: EncodedModel, document: Mapping[str, Any]) -> None:
    """Refuse a document over MongoDB's 16 MiB limit before it is sent."""
    # The canonical data size is exact for the data; encode the whole document only near the limit.
    if encoded.size + 8 * len(result_id) + 4096 < MAX_DOCUMENT_BYTES:
        return
    size = len(bson.encode(document, codec_options=CODEC_OPTIONS))
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentTooLargeError(result_id, size, MAX_DOCUMENT_BYTES)


@dataclass(frozen=True, slots=True)
class SetPlan:
    """One ``set`` as a single server command, and how to read its answer."""

    result_id: str
    namespace: str
    behavior: SetBehavior
    document: dict[str, Any]
    method: str  # insert_one(document), or update_one / replace_one(filter, update, upsert=True)
    filter: dict[str, Any]
    update: dict[str, Any]  # update operators, or the whole document for replace_one
    attempts: int  # how often a duplicate key is met before it is read as an answer

    def request(self) -> tuple[str, tuple[Any, ...]]:
        """This plan as one ``(method, args)`` request of a bulk write (upserts implied)."""
        if self.method == "insert_one":
            return "insert_one", (self.document,)
        return self.method, (self.filter, self.update)

    def outcome(self, *, duplicate: bool, upserted: bool) -> bool:
        """The value of ``set`` from the server's answer (raises ResultExistsError)."""
        b = self.behavior
        if duplicate and b is SetBehavior.OVERWRITE:
            raise MongoResultsError(f"set of {self.result_id!r} kept losing insert races; nothing was decided")
        if duplicate:
            # The filter did not match a document that does exist: for RAISE_IF_DIFFERENT it
            # holds other content ({_id, digest: d} failed), for SKIP_IF_EXISTS the same
            # ({_id, digest: {$ne: d}} failed).
            stored = {
                SetBehavior.RAISE_IF_EXISTS: Stored.EXISTING,
                SetBehavior.RAISE_IF_DIFFERENT: Stored.DIFFERENT,
                SetBehavior.SKIP_IF_EXISTS: Stored.SAME,
            }[b]
        elif upserted or b is SetBehavior.RAISE_IF_EXISTS:
            stored = Stored.NOTHING
        else:
            stored = {SetBehavior.RAISE_IF_DIFFERENT: Stored.SAME, SetBehavior.SKIP_IF_EXISTS: Stored.DIFFERENT}.get(
                b, Stored.SAME
            )
        return outcome(b, stored, self.result_id, self.namespace)


def plan_set(
    result_id: ResultId,
    data: BaseModel,
    behavior: SetBehavior,
    namespace: str | None,
    strict_namespace: bool,
    *,
    store_secrets: bool = False,
    engine: Engine = EMBEDDED,
    at: datetime | None = None,
) -> SetPlan:
    """Validate and encode one ``set`` and choose its single atomic command (``at``: its time, default now)."""
    segs = segments(result_id)
    if not isinstance(data, BaseModel):
        raise TypeError(f"data must be a pydantic model instance, got {type(data).__name__}")
    rid = "/".join(segs)
    ns = resolve_namespace(data, namespace, strict_namespace, rid)
    encoded = encode_model(data, store_secrets=store_secrets, decimal128=engine.decimal128)
    return _plan(rid, segs, encoded, behavior, ns, engine, at or now())


def plan_encoded(
    result_id: ResultId,
    encoded: EncodedModel,
    behavior: SetBehavior,
    namespace: str,
    *,
    engine: Engine = EMBEDDED,
    at: datetime | None = None,
) -> SetPlan:
    """Choose the single atomic command that stores already-encoded data (a model, or an import)."""
    segs = segments(result_id)
    return _plan("/".join(segs), segs, encoded, behavior, validate_namespace(namespace), engine, at or now())


def _plan(
    rid: str, segs: tuple[str, ...], encoded: EncodedModel, behavior: SetBehavior, ns: str, engine: Engine, t: datetime
) -> SetPlan:
    if type(behavior) is not SetBehavior:
        behavior = SetBehavior(behavior)
    doc: dict[str, Any] = {
        "_id": rid,
        "path": list(segs),
        "model_type": encoded.model_type,
        "namespace": ns,
        "data": encoded.data,
        "digest": encoded.digest,
        "created_at": t,
        "updated_at": t,
    }
    check_size(rid, encoded, doc)
    check_engine(rid, encoded, engine)
    if behavior is SetBehavior.RAISE_IF_EXISTS:
        return SetPlan(rid, ns, behavior, doc, "insert_one", {}, {}, 1)  # an insert has no query phase
    body = {k: v for k, v in doc.items() if k not in ("_id", "created_at")}
    # Keeps created_at; where $set is not faithful the whole document is replaced instead.
    write, method = ({"$set": body, "$setOnInsert": {"created_at": t}}, "update_one")
    if not engine.faithful_set:
        write, method = doc, "replace_one"
    # Two upserts of a missing id can both find nothing and both insert: the loser meets a
    # duplicate key that says nothing about the content. MongoDB retries that by itself only
    # when the filter is equality on the unique index's fields alone, and ours has the digest
    # too; so on every engine the command is repeated once, when its query sees the winner.
    confirm = 2
    if behavior is SetBehavior.OVERWRITE:
        return SetPlan(rid, ns, behavior, doc, method, {"_id": rid}, write, 3)  # a duplicate is a lost race
    if behavior is SetBehavior.SKIP_IF_EXISTS:
        skip = {"_id": rid, "digest": {"$ne": encoded.digest}}
        return SetPlan(rid, ns, behavior, doc, method, skip, write, confirm)
    # RAISE_IF_DIFFERENT: matching {_id, digest} is "same content", a no-op; otherwise the
    # upsert's insert either creates the result or hits the _id index (different content).
    insert_only = {k: v for k, v in doc.items() if k not in ("_id", "digest")}
    filt = {"_id": rid, "digest": encoded.digest}
    return SetPlan(rid, ns, behavior, doc, "update_one", filt, {"$setOnInsert": insert_only}, confirm)


def prefix_filter(prefix: ResultId | None) -> dict[str, Any]:
    """One ``_id`` range that matches a prefix by whole segments, with no regular expression.

    ``a/b`` matches the id ``a/b`` and every id in ``[a/b/, a/b0)`` (``0`` follows
    ``/``), never ``a/bc``: the range ``[a/b, a/b0)`` less the ids between ``a/b``
    and ``a/b/`` (those that go on with a character below ``/``, such as
    ``a/b-2``), which the server skips in the index. One index bound on every
    engine; an ``$or`` of the id and the range is a bitmap scan on DocumentDB,
    whose time grows with the collection.
    """
    p = canonical_prefix(prefix)
    if not p:
        return {"_id": {"$gte": ""}}  # every string id, and only those: an ObjectId is not ours
    return {"_id": {"$gte": p, "$lt": p + "0"}, "$nor": [{"_id": {"$gt": p, "$lt": p + "/"}}]}


# What every result document has; anything else in our collections (a document added in
# Compass, with an ObjectId) is foreign: listing and reading skip it, clear() leaves it.
OURS: dict[str, Any] = {"_id": {"$type": "string"}, "model_type": {"$type": "string"}, "path": {"$type": "array"}}


def page_after(query: Mapping[str, Any], last: str) -> dict[str, Any]:
    """The part of a prefix filter after the id ``last``: still one ``_id`` bound."""
    bound = query.get("_id")
    upper = {"$lt": bound["$lt"]} if isinstance(bound, Mapping) and "$lt" in bound else {}
    return {**query, "_id": {"$gt": last, **upper}}


def not_found(missing: Sequence[str]) -> ResultNotFoundError:
    """The error for ids a bulk read did not find, naming the first."""
    return ResultNotFoundError(missing[0] if len(missing) == 1 else f"{missing[0]} and {len(missing) - 1} more")


def choose_document(
    result_id: str,
    found: Sequence[tuple[str, Mapping[str, Any]]],
    model_class: type[BaseModel] | None,
) -> Mapping[str, Any]:
    """Pick the one stored document a ``get`` means among those found per namespace."""
    if not found:
        raise ResultNotFoundError(result_id)
    if len(found) == 1:
        return found[0][1]
    if model_class is not None:
        same_type = [doc for _, doc in found if doc.get("model_type") == model_class.__name__]
        if len(same_type) == 1:
            return same_type[0]
    raise AmbiguousResultError(result_id, [ns for ns, _ in found])


def load_model(
    document: Mapping[str, Any],
    result_id: str,
    model_class: type[BaseModel] | None,
    namespace: str | None,
) -> BaseModel:
    """Validate a stored envelope into its model class (resolved through the registry if not given)."""
    model_type = document.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise CorruptResultError(f"Stored result {result_id!r} has no model type information")
    if model_class is None:
        lookup = namespace if namespace is not None else str(document.get("namespace") or DEFAULT_NAMESPACE)
        model_class = get_model_class(model_type, lookup)
        if model_class is None:
            matches = find_model_in_all_namespaces(model_type)
            if not matches:
                tried = [lookup] if lookup == DEFAULT_NAMESPACE else [lookup, DEFAULT_NAMESPACE]
                raise ModelNotRegisteredError(
                    f"Model type '{model_type}' is not registered in namespace '{lookup}' or any other "
                    f"namespace. Tried namespaces: {', '.join(tried)}"
                )
            model_class = matches[0][1]
    data = document.get("data")
    if not isinstance(data, Mapping):
        raise CorruptResultError(f"Stored result {result_id!r} has no data document")
    return validate_data(model_class, data, result_id)
