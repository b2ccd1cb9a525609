"""Every MongoDB operation as a generator of driver commands, with no I/O.

An operation yields :class:`Command` values and receives each one's reply
(a ``DuplicateKeyError`` is thrown back into it instead). The sync and async
shells only execute commands, so both run the very same decisions:

    flow = Flow(ops.get("a/b", None, None))
    command = flow.start()
    while command is not None:
        command = flow.resume(*execute(command))
    return flow.result
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pymongo import ASCENDING, IndexModel, InsertOne, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ._core import (
    EMBEDDED,
    OURS,
    Engine,
    SetPlan,
    choose_document,
    load_model,
    namespaces_in,
    not_found,
    now,
    page_after,
    plan_encoded,
    plan_set,
    prefix_filter,
    validate_namespace,
)
from .behaviors import SetBehavior
from .encoding import encode_stored
from .errors import MongoResultsError, RejectedByServerError, SetManyInterruptedError, StoreUnavailableError
from .ids import ResultId, canonical_id
from .validation import validator_command

__all__ = ["Command", "Flow", "Operations", "Progress", "indexes"]

R = TypeVar("R")
log = logging.getLogger("mongo_results")
_said: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(message)


# MongoDB's own unique ``_id`` index holds one result per id and namespace and serves get,
# exists and list_ids. Asking for it creates the collection (so a validator can be installed)
# and is a no-op once it exists. The multikey ``path`` index, for any-segment filters in
# Compass, is opt-in: on DocumentDB it made bulk inserts about three times slower.
ID_INDEX = IndexModel([("_id", ASCENDING)], name="_id_")
PATH_INDEX = IndexModel([("path", ASCENDING)], name="path_segments")


def indexes(path_index: bool) -> list[IndexModel]:
    """The indexes of every namespace collection."""
    return [ID_INDEX, PATH_INDEX] if path_index else [ID_INDEX]


@dataclass(frozen=True, slots=True)
class Emit:
    """Not a driver call: items the operation hands to its caller (streaming reads)."""

    items: list[Any]


@dataclass(frozen=True, slots=True)
class Command:
    """One driver call: ``method`` on a collection (or on the database when None)."""

    collection: str | None
    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def returns_cursor(self) -> bool:
        return self.method == "find"

    def driver_args(self) -> tuple[Any, ...]:
        """The arguments for a real driver: bulk requests become PyMongo request objects."""
        if self.method != "bulk_write":
            return self.args
        kinds = {"insert_one": InsertOne, "update_one": UpdateOne, "replace_one": ReplaceOne}
        requests = [kinds[m](*a) if m == "insert_one" else kinds[m](*a, upsert=True) for m, a in self.args[0]]
        return (requests,)


Operation = Generator["Command | Emit", Any, R]
BATCH = 1000  # items per bulk write or $in query: bounded memory, few round trips
# get and exists search the namespaces listed up to this long ago, and list again before
# answering "not found"; everything that must see every namespace (list_ids, delete,
# get_many, iter_results, clear) lists them every time.
LISTING_TTL = 1.0


@dataclass
class Progress:
    """How far a ``set_many`` got: each item's outcome once decided, and the items sent but undecided."""

    outcomes: list[bool | BaseException | None] = field(default_factory=list)
    sent: set[int] = field(default_factory=set)

    def interrupted(self, exc: StoreUnavailableError) -> SetManyInterruptedError:
        """The error for a ``set_many`` cut short by ``exc``, saying per item what is known."""
        unknown = sorted(self.sent)
        decided = sum(o is not None for o in self.outcomes)
        return SetManyInterruptedError(
            f"{exc} [set_many: {decided} of {len(self.outcomes)} items decided, {len(unknown)} sent with "
            "an unknown outcome, the rest not sent; see .outcomes, .unknown and .not_sent]",
            list(self.outcomes),
            unknown,
        )


class Flow(Generic[R]):
    """Steps an operation: hands out its commands and feeds it their replies."""

    def __init__(self, operation: Operation[R]) -> None:
        self._operation = operation
        self.result: R

    def _step(self, send: Any, error: BaseException | None) -> Command | Emit | None:
        try:
            return self._operation.throw(error) if error is not None else self._operation.send(send)
        except StopIteration as stop:
            self.result = stop.value
            return None

    def start(self) -> Command | Emit | None:
        """The first command, or None when the operation needs none."""
        return self._step(None, None)

    def resume(self, reply: Any, error: BaseException | None = None) -> Command | Emit | None:
        """Feed a reply (or a DuplicateKeyError); the next command, or None when done."""
        return self._step(reply, error)


class Operations:
    """The operations of one store over one connection, and what that connection has learnt."""

    def __init__(
        self,
        collection_prefix: str,
        *,
        engine: Engine | None = None,
        validation: str = "warn",
        path_index: bool = False,
    ) -> None:
        self.prefix = collection_prefix
        self.indexes = indexes(path_index)
        self.validation = validation  # validationAction: "warn", "error", or "off" for no validator
        self.engine = engine  # asked of the server once per connection
        self.indexed: set[str] = set()  # namespaces whose indexes this connection has created
        self._listed: tuple[float, tuple[str, ...]] | None = None  # (when, namespaces) of the last listing

    def learn_engine(self) -> Operation[Engine]:
        """Ask the server what it is (once per connection)."""
        self.engine = Engine.from_build_info((yield Command(None, "command", ("buildInfo",))))
        return self.engine

    def _namespaces(self, namespace: str | None) -> Operation[list[str]]:
        """The named namespace, or all of them as listed now."""
        if namespace is not None:
            return [validate_namespace(namespace)]
        names = namespaces_in((yield Command(None, "list_collection_names")), self.prefix)
        self._listed = (time.monotonic(), tuple(names))
        return names

    def _lookup(self, rid: str, namespace: str | None, projection: Any) -> Operation[list[tuple[str, Any]]]:
        """``(namespace, document)`` for each namespace holding the id; never "none" from an old listing."""
        listed = self._listed
        if namespace is None and listed is not None and time.monotonic() - listed[0] < LISTING_TTL:
            searched, fresh = list(listed[1]), False
        else:
            searched, fresh = (yield from self._namespaces(namespace)), True
        found = yield from self._find_each(rid, searched, projection)
        if not found and not fresh:  # a namespace created since that listing may hold it
            known = set(searched)
            found = yield from self._find_each(
                rid, [n for n in (yield from self._namespaces(None)) if n not in known], projection
            )
        return found

    def _find_each(self, rid: str, namespaces: list[str], projection: Any) -> Operation[list[tuple[str, Any]]]:
        found = []
        for ns in namespaces:
            doc = yield Command(self.prefix + ns, "find_one", ({"_id": rid}, projection))
            if doc is not None:
                found.append((ns, doc))
        return found

    def _engine(self) -> Operation[Engine]:
        return self.engine if self.engine is not None else (yield from self.learn_engine())

    def _prepare(self, namespace: str, engine: Engine) -> Operation[None]:
        """Indexes (and the validator, where the engine has them) once per namespace and connection."""
        if namespace in self.indexed:
            return
        collection = self.prefix + namespace
        yield Command(collection, "create_indexes", (self.indexes,))
        if self.validation != "off":
            if engine.validators:
                command, note = validator_command(collection, namespace, self.validation, engine)
                if note:
                    _say_once(note)
                yield Command(None, "command", (command,))
            elif engine.name != EMBEDDED.name:  # the embedded store has none by design
                _say_once(f"{engine.label} does not enforce collection validators; {collection} has none")
        self.indexed.add(namespace)
        listed = self._listed
        if listed is not None and namespace not in listed[1]:  # this connection just created it
            self._listed = (listed[0], tuple(sorted((*listed[1], namespace))))

    def _write(self, plan: SetPlan, engine: Engine) -> Operation[bool]:
        yield from self._prepare(plan.namespace, engine)
        collection = self.prefix + plan.namespace
        for attempt in range(1, plan.attempts + 1):
            try:
                if plan.method == "insert_one":
                    yield Command(collection, "insert_one", (plan.document,))
                    return plan.outcome(duplicate=False, upserted=True)
                reply = yield Command(collection, plan.method, (plan.filter, plan.update), {"upsert": True})
                return plan.outcome(duplicate=False, upserted=reply.upserted_id is not None)
            except DuplicateKeyError:
                if attempt == plan.attempts:
                    return plan.outcome(duplicate=True, upserted=False)
        raise AssertionError("unreachable")  # pragma: no cover

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior,
        namespace: str | None,
        strict: bool,
        *,
        secrets: bool,
    ) -> Operation[bool]:
        """One atomic command per decision (SPEC §2.2); see SetPlan for reading the answer."""
        engine = yield from self._engine()
        plan = plan_set(result_id, data, behavior, namespace, strict, store_secrets=secrets, engine=engine)
        return (yield from self._write(plan, engine))

    def store(
        self, result_id: ResultId, model_type: str, data: Mapping[str, Any], behavior: SetBehavior, namespace: str
    ) -> Operation[bool]:
        """Like ``set`` for data already in stored form (an import): no model class needed."""
        engine = yield from self._engine()
        encoded = encode_stored(model_type, data, decimal128=engine.decimal128)
        return (yield from self._write(plan_encoded(result_id, encoded, behavior, namespace, engine=engine), engine))

    def documents(self, prefix: ResultId | None, namespace: str | None, *, with_data: bool) -> Operation[list[Any]]:
        """The stored documents under a prefix, sorted by id (envelopes only unless ``with_data``)."""
        query = {**OURS, **prefix_filter(prefix)}  # foreign documents are skipped
        found: list[Any] = []
        for ns in (yield from self._namespaces(namespace)):
            found += yield Command(self.prefix + ns, "find", (query, None if with_data else {"data": 0}))
        return sorted(found, key=lambda d: (d["_id"], str(d.get("namespace"))))

    def set_many(
        self,
        items: Mapping[str, BaseModel] | Iterable[tuple[ResultId, BaseModel]],
        behavior: SetBehavior,
        namespace: str | None,
        *,
        secrets: bool,
        progress: Progress | None = None,
    ) -> Operation[list[bool | BaseException]]:
        """``set`` for many items: one unordered bulk write per namespace and batch, same atomicity per item.

        ``progress`` is kept up to date as items are sent and decided, for the caller to report
        if the store becomes unreachable part of the way.
        """
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        progress = progress if progress is not None else Progress()
        outcomes = progress.outcomes = [None] * len(pairs)
        sent = progress.sent
        engine = yield from self._engine()
        pending: dict[int, SetPlan] = {}
        at = now()  # one call, one time: the clock is read once
        resolved: dict[type, str] = {}  # a class's namespace, looked up in the registry once per call
        for i, (rid, model) in enumerate(pairs):
            ns = namespace if namespace is not None else resolved.get(type(model))
            try:
                plan = plan_set(rid, model, behavior, ns, False, store_secrets=secrets, engine=engine, at=at)
            except (MongoResultsError, ValueError, TypeError) as exc:
                outcomes[i] = exc  # refused before anything is sent
                continue
            pending[i] = plan
            resolved.setdefault(type(model), plan.namespace)
        if not engine.bulk_updates:  # one atomic command per update, each read exactly as set reads it
            for i, plan in [(i, plan) for i, plan in pending.items() if plan.method != "insert_one"]:
                del pending[i]
                sent.add(i)
                try:
                    outcomes[i] = yield from self._write(plan, engine)
                except MongoResultsError as exc:
                    outcomes[i] = exc
                sent.discard(i)
        attempt = 1
        while pending:
            again: dict[int, SetPlan] = {}
            for ns in sorted({plan.namespace for plan in pending.values()}):
                yield from self._prepare(ns, engine)
                group = [i for i, plan in pending.items() if plan.namespace == ns]
                size = min(BATCH, engine.max_write_batch)
                for start in range(0, len(group), size):
                    batch = group[start : start + size]
                    sent.update(batch)  # until decided: a lost race awaiting its confirmation stays here
                    done = yield from self._bulk(ns, [pending[i] for i in batch])
                    for i, (duplicate, upserted, error) in zip(batch, done, strict=True):
                        plan = pending[i]
                        if duplicate and attempt < plan.attempts:
                            again[i] = plan
                            continue
                        try:
                            outcomes[i] = error or plan.outcome(duplicate=duplicate, upserted=upserted)
                        except MongoResultsError as exc:
                            outcomes[i] = exc
                        sent.discard(i)
            pending, attempt = again, attempt + 1
        decided = [outcome for outcome in outcomes if outcome is not None]
        assert len(decided) == len(outcomes), "every item is decided"
        return decided

    def _bulk(self, namespace: str, plans: list[SetPlan]) -> Operation[list[tuple[bool, bool, BaseException | None]]]:
        """One unordered bulk write; per plan: (duplicate key?, upserted?, other server error)."""
        requests = [plan.request() for plan in plans]
        try:
            reply = yield Command(self.prefix + namespace, "bulk_write", (requests,), {"ordered": False})
            upserted, errors = set(reply.upserted_ids or {}), {}
        except BulkWriteError as exc:
            upserted = {u["index"] for u in exc.details.get("upserted", [])}
            errors = {e["index"]: e for e in exc.details.get("writeErrors", [])}
        out: list[tuple[bool, bool, BaseException | None]] = []
        for i, plan in enumerate(plans):
            error = errors.get(i)
            if error is not None and error.get("code") != 11000:
                message = f"server refused {plan.result_id!r} (code {error.get('code')}): {error.get('errmsg')}"
                out.append((False, False, RejectedByServerError(message)))
            else:
                out.append((error is not None, plan.method == "insert_one" or i in upserted, None))
        return out

    def get_many(
        self, result_ids: Sequence[ResultId], model_class: type[BaseModel] | None, namespace: str | None
    ) -> Operation[list[BaseModel]]:
        """``get`` for many ids, in their order: one ``$in`` query per namespace and batch."""
        rids = [canonical_id(r) for r in result_ids]
        wanted = sorted(set(rids))
        found: dict[str, list[tuple[str, Any]]] = {}
        for ns in (yield from self._namespaces(namespace)):
            for start in range(0, len(wanted), BATCH):
                docs = yield Command(self.prefix + ns, "find", ({"_id": {"$in": wanted[start : start + BATCH]}},))
                for doc in docs:
                    found.setdefault(doc["_id"], []).append((ns, doc))
        missing = [r for r in rids if r not in found]
        if missing:
            raise not_found(missing)
        return [load_model(choose_document(r, found[r], model_class), r, model_class, namespace) for r in rids]

    def iter_results(
        self, prefix: ResultId | None, model_class: type[BaseModel] | None, namespace: str | None, batch_size: int
    ) -> Operation[None]:
        """Emit ``(id, model)`` pages under a prefix: keyset pages on ``_id``, so memory stays flat."""
        query = {**OURS, **prefix_filter(prefix)}  # foreign documents are skipped
        options = {"sort": [("_id", 1)], "limit": batch_size}
        for ns in (yield from self._namespaces(namespace)):
            page = query
            while True:
                docs = yield Command(self.prefix + ns, "find", (page,), options)
                yield Emit([(d["_id"], load_model(d, d["_id"], model_class, namespace)) for d in docs])
                if len(docs) < batch_size:
                    break
                page = page_after(query, docs[-1]["_id"])

    def get(
        self, result_id: ResultId, model_class: type[BaseModel] | None, namespace: str | None
    ) -> Operation[BaseModel]:
        """The result, from every namespace unless one is named."""
        rid = canonical_id(result_id)
        found = yield from self._lookup(rid, namespace, None)
        return load_model(choose_document(rid, found, model_class), rid, model_class, namespace)

    def exists(self, result_id: ResultId, namespace: str | None) -> Operation[bool]:
        """Whether any namespace (or the named one) holds the id."""
        return bool((yield from self._lookup(canonical_id(result_id), namespace, {"_id": 1})))

    def list_ids(self, prefix: ResultId | None, namespace: str | None) -> Operation[list[str]]:
        """Sorted ids under a prefix: one index-backed query per namespace."""
        query = prefix_filter(prefix)
        ids: set[str] = set()
        for ns in (yield from self._namespaces(namespace)):
            docs = yield Command(self.prefix + ns, "find", (query, {"_id": 1}))
            ids.update(doc["_id"] for doc in docs)
        return sorted(ids)

    def delete(self, result_id: ResultId, namespace: str | None) -> Operation[bool]:
        """Delete from every namespace (or the named one); whether anything was deleted."""
        rid = canonical_id(result_id)
        deleted = False
        for ns in (yield from self._namespaces(namespace)):
            reply = yield Command(self.prefix + ns, "delete_one", ({"_id": rid},))
            deleted = deleted or reply.deleted_count > 0
        return deleted

    def clear(self) -> Operation[None]:
        """Delete this store's results: a collection is dropped only when nothing foreign is in it."""
        for ns in (yield from self._namespaces(None)):
            collection = self.prefix + ns
            if (yield Command(collection, "find_one", ({"$nor": [OURS]}, {"_id": 1}))) is None:
                yield Command(None, "drop_collection", (collection,))
            else:  # someone else's documents (or a collection that only shares our prefix)
                yield Command(collection, "delete_many", (OURS,))
        self.indexed.clear()
        self._listed = None
