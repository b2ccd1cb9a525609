"""Every operation as a generator of commands, with no I/O.

An operation yields :mod:`commands <mongo_results.core.commands>` and is sent
each one's reply; an executor's error is thrown into it. The managers only
carry commands to an executor, so every store runs the very same decisions
(see :mod:`mongo_results.core.runloop`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from ..errors import InvalidArgumentError, MongoResultsError, StoreUnavailableError
from .behaviors import SetBehavior
from .commands import (
    BY_ID,
    Batch,
    Delete,
    Drop,
    Find,
    FindOne,
    ListCollections,
    Operation,
    ask,
)
from .encoding import encode_stored, exact_times
from .filters import FOREIGN, MONGODB, OURS, id_range, prefix_filter, scoped, sort_spec, translate
from .ids import ResultId, canonical_id, canonical_ids, canonical_prefix
from .knowledge import ID_ONLY, StoreKnowledge, utc
from .large import bucket, by_file, delete_one, drop_bucket, file_of, filled
from .names import CLAIMS, FAILURES, collection_name, validate_namespace
from .profiles import EngineProfile
from .reads import (
    Pages,
    bson_order,
    check_batch_size,
    choose_document,
    each_batch,
    in_order,
    load,
    load_model,
    loader,
    not_found,
    report_skipped,
    skipping,
)
from .writes import SetManyProgress, SetPlan, plan_encoded, plan_set, write_bulk, write_set

__all__ = ["BATCH", "Operation", "Operations", "StoredRecord"]

R = TypeVar("R")

BATCH = 1000  # items per bulk write or $in query: bounded memory, few round trips


# An import's record: (id, model type, stored data, namespace, created_at, updated_at).
# id, model type, data, namespace, created_at, updated_at, exact_times (as a document holds them)
StoredRecord = tuple[ResultId, str, Mapping[str, Any], str, "datetime | None", "datetime | None", Any]


class Operations(StoreKnowledge):
    """The operations of one store, and what the process has learnt of it (:class:`Learned`)."""

    def _write(self, plan: SetPlan, engine: EngineProfile) -> Operation[bool]:
        yield from self._prepare(plan.namespace, engine)
        return (yield from write_set(self.prefix, plan))

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior,
        namespace: str | None,
        strict: bool,
        *,
        secrets: bool | None = None,
    ) -> Operation[bool]:
        """One atomic command per decision; see SetPlan for reading the answer (``secrets``: the store's by default)."""
        engine = yield from self.learn_engine()
        at = self.clock()
        secrets = self.store_secrets if secrets is None else secrets
        plan = plan_set(
            result_id,
            data,
            behavior,
            namespace,
            strict,
            store_secrets=secrets,
            engine=engine,
            at=at,
            models=self.models,
        )
        return (yield from self._write(plan, engine))

    def store(
        self,
        result_id: ResultId,
        model_type: str,
        data: Mapping[str, Any],
        behavior: SetBehavior,
        namespace: str,
        *,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
        times: Any = None,
    ) -> Operation[bool]:
        """Like ``set`` for data already in stored form (an import): no model class needed.

        ``created_at``/``updated_at``: the times to keep (an export's); None for now. ``times``:
        the data's ``exact_times``.
        """
        engine = yield from self.learn_engine()
        record = (result_id, model_type, data, namespace, created_at, updated_at, times)
        plan = self._stored_plan(record, behavior, engine)
        return (yield from self._write(plan, engine))

    def _stored_plan(self, record: StoredRecord, behavior: SetBehavior, engine: EngineProfile) -> SetPlan:
        result_id, model_type, data, namespace, created_at, updated_at, times = record
        encoded = encode_stored(model_type, data, decimal128=engine.decimal128, times=exact_times(times))
        at = self.clock() if updated_at is None else utc(updated_at)
        created = None if created_at is None else utc(created_at)
        return plan_encoded(result_id, encoded, behavior, namespace, engine=engine, at=at, created=created)

    def store_many(
        self, records: Sequence[StoredRecord], behavior: SetBehavior
    ) -> Operation[list[bool | BaseException]]:
        """``store`` for many records: one bulk write per namespace and 1,000 records, each decided as ``store`` does.

        Per record, what ``store`` returns or raises; SetManyInterruptedError if the store becomes
        unreachable part of the way.
        """
        progress = SetManyProgress([None] * len(records))
        try:
            engine = yield from self.learn_engine()
            pending: dict[int, SetPlan] = {}
            for i, record in enumerate(records):
                try:
                    plan = self._stored_plan(record, behavior, engine)
                    collection_name(self.prefix, plan.namespace)
                    pending[i] = plan
                except (MongoResultsError, ValueError, TypeError) as exc:
                    progress.outcomes[i] = exc  # refused before anything is sent
            yield from write_bulk(self.prefix, engine, pending, progress, lambda ns: self._prepare(ns, engine), BATCH)
        except StoreUnavailableError as exc:
            raise progress.interrupted(exc) from exc
        return [outcome for outcome in progress.outcomes if outcome is not None]

    def set_many(
        self,
        items: Mapping[str, BaseModel] | Iterable[tuple[ResultId, BaseModel]],
        behavior: SetBehavior,
        namespace: str | None,
        *,
        secrets: bool | None = None,
        raise_errors: bool = False,
    ) -> Operation[list[bool | BaseException]]:
        """``set`` for many items: one unordered bulk write per namespace and batch, same atomicity per item.

        Per item, what ``set`` returns or raises (``raise_errors``: raise the first such error
        once every item is decided). If the store becomes unreachable part of the way,
        SetManyInterruptedError says per item what is known.
        """
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        progress = SetManyProgress([None] * len(pairs))
        secrets = self.store_secrets if secrets is None else secrets
        try:
            outcomes = yield from self._set_many(pairs, behavior, namespace, secrets, progress)
        except StoreUnavailableError as exc:
            raise progress.interrupted(exc) from exc
        if raise_errors:
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        return outcomes

    def _set_many(
        self,
        pairs: list[tuple[ResultId, BaseModel]],
        behavior: SetBehavior,
        namespace: str | None,
        secrets: bool,
        progress: SetManyProgress,
    ) -> Operation[list[bool | BaseException]]:
        engine = yield from self.learn_engine()
        pending: dict[int, SetPlan] = {}
        at = self.clock()  # one call, one time: the clock is read once
        resolved: dict[type, str] = {}  # a class's namespace, looked up in ``models`` once per call
        checked: set[str] = set()  # namespaces that name one of this store's collections
        for i, (rid, model) in enumerate(pairs):
            ns = namespace if namespace is not None else resolved.get(type(model))
            try:
                plan = plan_set(
                    rid, model, behavior, ns, False, store_secrets=secrets, engine=engine, at=at, models=self.models
                )
                if plan.namespace not in checked:
                    collection_name(self.prefix, plan.namespace)
                    checked.add(plan.namespace)
            except (MongoResultsError, ValueError, TypeError) as exc:
                progress.outcomes[i] = exc  # refused before anything is sent
                continue
            pending[i] = plan
            resolved.setdefault(type(model), plan.namespace)
        yield from write_bulk(self.prefix, engine, pending, progress, lambda ns: self._prepare(ns, engine), BATCH)
        decided = [outcome for outcome in progress.outcomes if outcome is not None]
        assert len(decided) == len(progress.outcomes), "every item is decided"
        return decided

    def documents(self, prefix: ResultId | None, namespace: str | None, *, with_data: bool) -> Operation[list[Any]]:
        """The stored documents under a prefix, sorted by id (envelopes only unless ``with_data``)."""
        query = {**OURS, **prefix_filter(prefix)}  # foreign documents are skipped
        projection = None if with_data else {"data": 0}
        found: list[Any] = []
        for collection in (yield from self.collections(namespace)):
            found += yield from ask(Find(collection, query, projection))
        found.sort(key=in_order)
        return (yield from filled(self.prefix, found)) if with_data else found

    def get_many(
        self,
        result_ids: Sequence[ResultId],
        model_class: type[BaseModel] | None,
        namespace: str | None,
        *,
        on_error: str = "raise",
        skipped: list[tuple[str, Exception]] | None = None,
    ) -> Operation[list[BaseModel]]:
        """``get`` for many ids, in their order: one ``$in`` query per namespace and batch.

        ``on_error="skip"`` leaves out results that no longer load, lists them in ``skipped``
        and notes their count.
        """
        rids: list[ResultId] = list(canonical_ids(result_ids, "get_many"))  # checked at the call, before any I/O
        return self._get_many(rids, model_class, namespace, skipping(on_error, skipped))

    def _get_many(
        self,
        result_ids: list[ResultId],
        model_class: type[BaseModel] | None,
        namespace: str | None,
        skipped: list[tuple[str, Exception]] | None,
    ) -> Operation[list[BaseModel]]:
        rids = [canonical_id(r) for r in result_ids]
        wanted = sorted(set(rids))
        found: dict[str, list[dict[str, Any]]] = {}
        for collection in (yield from self.collections(namespace)):
            yield from self._find_in(collection, wanted, found)
        chosen = [choose_document(r, found[r], model_class) for r in wanted if r in found]
        complete = {doc["_id"]: doc for doc in (yield from filled(self.prefix, chosen))}
        missing = [r for r in rids if r not in complete]  # not stored, or deleted while their files were read
        if missing:
            raise not_found(missing)
        loaded = [load(complete[r], model_class, namespace, skipped, self.models) for r in rids]
        yield from report_skipped(skipped)
        return [model for model in loaded if model is not None]

    def _find_in(self, collection: str, wanted: list[str], found: dict[str, list[dict[str, Any]]]) -> Operation[None]:
        for start in range(0, len(wanted), BATCH):
            for doc in (yield from ask(Find(collection, {"_id": {"$in": wanted[start : start + BATCH]}}))):
                found.setdefault(doc["_id"], []).append(doc)

    def iter_documents(
        self,
        prefix: ResultId | None,
        namespace: str | None,
        batch_size: int,
        *,
        with_data: bool = True,
        where: dict[str, Any] | None = None,
    ) -> Operation[None]:
        """Batch the stored documents under a prefix in id order across namespaces.

        Only those matching the stored-document filter ``where``; keyset pages, so memory stays flat.
        """
        query = scoped(prefix, where)
        projection = None if with_data else {"data": 0}
        yield from self._pages((yield from self.collections(namespace)), query, batch_size, projection, with_data)

    def _pages(
        self,
        collections: list[str],
        query: dict[str, Any],
        batch_size: int,
        projection: dict[str, int] | None,
        with_data: bool,
    ) -> Operation[bool]:
        """Stream the collections' pages merged in id order; whether any document was streamed."""
        pages = {c: Pages(c, query, batch_size, projection) for c in collections}
        streamed = False
        while True:
            for pager in pages.values():
                if not pager.buffer and not pager.done:
                    pager.take((yield pager.next_page()))
            live = [p for p in pages.values() if p.buffer]
            if not live:
                return streamed
            streamed = True
            # Whatever sorts at or before the smallest last id still to be continued is final.
            frontier = min((p.buffer[-1]["_id"] for p in live if not p.done), default=None)
            released = sorted((d for p in live for d in p.release(frontier)), key=in_order)
            if not with_data:
                yield Batch(released)
                continue
            for part in by_file(released):  # memory holds one large result at a time
                yield Batch((yield from filled(self.prefix, part)))

    def iter_results(
        self,
        prefix: ResultId | None,
        model_class: type[BaseModel] | None,
        namespace: str | None,
        batch_size: int,
        *,
        on_error: str = "raise",
        skipped: list[tuple[str, Exception]] | None = None,
    ) -> Operation[None]:
        """Batch ``(id, model)`` under a prefix in id order across namespaces (``on_error``: as for get_many)."""
        # on_error and batch_size are checked at the call, before the first batch is asked for.
        check_batch_size(batch_size)
        return self._iter_results(prefix, model_class, namespace, batch_size, skipping(on_error, skipped))

    def _iter_results(
        self,
        prefix: ResultId | None,
        model_class: type[BaseModel] | None,
        namespace: str | None,
        batch_size: int,
        skipped: list[tuple[str, Exception]] | None,
    ) -> Operation[None]:
        pages = self.iter_documents(prefix, namespace, batch_size)
        yield from each_batch(pages, loader(model_class, namespace, skipped, self.models))
        yield from report_skipped(skipped)

    def get(
        self, result_id: ResultId, model_class: type[BaseModel] | None, namespace: str | None
    ) -> Operation[BaseModel]:
        """The result, from every namespace unless one is named."""
        rid = canonical_id(result_id)
        doc = choose_document(rid, (yield from self._lookup(rid, namespace, None)), model_class)
        if file_of(doc) is not None:
            complete = yield from filled(self.prefix, [doc])
            if not complete:  # deleted while its file was read
                raise not_found([rid])
            doc = complete[0]
        return load_model(doc, rid, model_class, namespace, self.models)

    def exists(self, result_id: ResultId, namespace: str | None) -> Operation[bool]:
        """Whether any namespace (or the named one) holds the id."""
        return bool((yield from self._lookup(canonical_id(result_id), namespace, {"_id": 1}, cached=True)))

    def list_ids(self, prefix: ResultId | None, namespace: str | None) -> Operation[list[str]]:
        """Sorted ids under a prefix: one index-backed query per namespace."""
        query, under = id_range(prefix)
        ids: set[str] = set()
        for docs in (yield from self.read_each(namespace, lambda c: Find(c, query, ID_ONLY))):
            ids.update(i for doc in docs if under(i := doc["_id"]))
        return sorted(ids)

    def delete(self, result_id: ResultId, namespace: str | None) -> Operation[bool]:
        """Delete from every namespace (or the named one); whether anything was deleted."""
        rid = canonical_id(result_id)
        deleted = 0
        engine = yield from self.learn_engine()
        # Listed now, not from the cache: a delete reaches every namespace that holds the id.
        for collection in (yield from self.collections(namespace)):
            deleted += yield from delete_one(self.prefix, collection, rid, engine)
        return deleted > 0

    def clear(self) -> Operation[None]:
        """Delete this store's results, claims and failures.

        A collection is dropped only when nothing foreign is in it and it is not sharded (a sharded
        one is emptied: dropping it would silently undo ``shard``).
        """
        engine = yield from self.learn_engine()
        for collection in (yield from self.collections(None)):
            foreign = (yield from ask(FindOne(collection, FOREIGN, {"_id": 1}))) is not None
            if foreign or (yield from self.sharded(collection, engine)):
                yield from ask(Delete(collection, OURS, many=True))  # someone else's documents, or the cluster's key
            else:
                yield from ask(Drop(collection))
        listed = yield from ask(ListCollections())
        kept = []
        for name in (bucket(self.prefix) + ".files", bucket(self.prefix) + ".chunks"):
            if name in listed and (yield from self.sharded(name, engine)):
                yield from ask(Delete(name, {}, many=True))
                kept.append(name)
        yield from drop_bucket(self.prefix, [c for c in listed if c not in kept])
        yield from ask(Delete(self.prefix + CLAIMS, {}, many=True))  # a dead run's cells are free again
        yield from ask(Delete(self.prefix + FAILURES, {}, many=True))
        self.learned.forget()

    def find(
        self,
        where: Mapping[str, Any] | None,
        prefix: ResultId | None,
        model_class: type[BaseModel] | None,
        *,
        namespace: str | None = None,
        sort: Iterable[tuple[str, int]] | None = None,
        limit: int | None = None,
        on_error: str = "raise",
        skipped: list[tuple[str, Exception]] | None = None,
    ) -> Operation[None]:
        """Batch ``(id, model)`` of the results ``where`` matches, in id order unless ``sort`` says otherwise."""
        # on_error is checked at the call; the rest when the first batch is asked for.
        return self._find(where, prefix, model_class, namespace, sort, limit, skipping(on_error, skipped))

    def _find(
        self,
        where: Mapping[str, Any] | None,
        prefix: ResultId | None,
        model_class: type[BaseModel] | None,
        namespace: str | None,
        sort: Iterable[tuple[str, int]] | None,
        limit: int | None,
        skipped: list[tuple[str, Exception]] | None,
    ) -> Operation[None]:
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise InvalidArgumentError(f"limit is a count of results, not {limit!r}")
        spec = sort_spec(sort, model_class)
        # Checked before the engine is asked for: a filter no store can run sends nothing.
        translated = translate(where or {}, model_class, MONGODB)
        if limit == 0:  # PyMongo's "no limit"; here, as in the signature, no results
            canonical_prefix(prefix)
            if namespace is not None:
                validate_namespace(namespace)
            return
        engine = yield from self.learn_engine()
        if not (engine.decimal128 and engine.elem_match_fields):  # what the first translation assumed
            translated = translate(where or {}, model_class, engine)
        if not spec and limit is None:  # in id order: keyset pages, memory stays flat
            yield from each_batch(
                self.iter_documents(prefix, namespace, 500, where=translated),
                loader(model_class, namespace, skipped, self.models),
            )
            yield from report_skipped(skipped)
            return
        found: list[dict[str, Any]] = []
        query, order = scoped(prefix, translated), spec + BY_ID
        for collection in (yield from self.collections(namespace)):
            found += yield from ask(Find(collection, query, None, order, limit or 0))
        # One query per namespace, each in order; merged here the way the server orders them.
        for field, direction in reversed(spec + BY_ID):
            found.sort(key=lambda d: bson_order(_at(d, field)), reverse=direction < 0)
        found = found[:limit] if limit is not None else found
        yield Batch((yield from loader(model_class, namespace, skipped, self.models)(found)))
        yield from report_skipped(skipped)


def _at(document: Mapping[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value
