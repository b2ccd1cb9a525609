"""Every operation as a generator of commands, with no I/O.

An operation yields :mod:`commands <mongo_results.core.commands>` and is sent
each one's reply; an executor's error is thrown into it. The managers only
carry commands to an executor, so every store runs the very same decisions
(see :mod:`mongo_results.core.runloop`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as default
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from pydantic import BaseModel

from ..errors import InvalidArgumentError, InvalidNamespaceError, MongoResultsError, StoreUnavailableError
from .behaviors import SetBehavior
from .commands import (
    BY_ID,
    EVERY,
    Batch,
    BuildInfo,
    CollectionOptions,
    CreateCollection,
    Delete,
    Drop,
    EnsureIndexes,
    Find,
    FindOne,
    Index,
    ListCollections,
    Operation,
    Refused,
    ServerTime,
    SetValidator,
    ShardKeyOf,
    Written,
)
from .encoding import encode_stored, exact_times
from .filters import FOREIGN, MONGODB, OURS, id_range, prefix_filter, scoped, sort_spec, translate
from .ids import ResultId, canonical_id, canonical_ids, canonical_prefix
from .large import bucket, by_file, delete_one, drop_bucket, file_of, filled
from .names import CLAIMS, FAILURES, Models, collection_name, namespaces_in, validate_namespace
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
from .shard_keys import RESULTS, refusal
from .validators import validator_command
from .writes import SetManyProgress, SetPlan, now, plan_encoded, plan_set, write_bulk, write_set

__all__ = ["BATCH", "LISTING_TTL", "Learned", "Operation", "Operations", "StoredRecord", "indexes"]

R = TypeVar("R")

BATCH = 1000  # items per bulk write or $in query: bounded memory, few round trips
# ``exists`` without a namespace searches the namespaces listed up to this long ago (plus those this
# process created since): a "yes" cannot change with a namespace created since, and a "no" lists
# again first. Every other read lists every time, as its answer could change.
LISTING_TTL = 1.0
CLOCK_CHECK = 60.0  # seconds between measures of the store's clock against ours
ID_ONLY = {"_id": 1}  # with a filter on _id alone, the _id index answers without reading the documents
ID_INDEX = "_id_"  # every collection has it: asking for it would only create the collection
NAMESPACE_EXISTS = 48  # MongoDB's code for a create that met an existing collection
UNAUTHORIZED = 13  # MongoDB's code for a command the user's roles do not allow
UNREAD = object()  # a collection's options not read (the engine has nothing to tell from them)


def has_validator(entry: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a collection's ``listCollections`` entry shows the validator and action of ``wanted`` (a collMod)."""
    options = entry.get("options") or {}
    return bool(
        options.get("validator") == wanted["validator"]
        and options.get("validationAction", "error") == wanted["validationAction"]
    )


def refused_step(engine: EngineProfile, command: str, collection: str, reply: Refused) -> str:
    """What to tell when the server refuses an optional step of preparing a collection."""
    right = {"collMod": "collMod (in MongoDB's dbAdmin role, not in readWrite)"}.get(command, command)
    why = "the user lacks the right " + right if reply.code == UNAUTHORIZED else f"code {reply.code}: {reply.message}"
    return (
        f"{engine.label} refused {command} on {collection} ({why}); writes go on without it. An administrator "
        "can install the validator and indexes with `mongo-results --import your.models doctor --fix`."
    )


def ignore_note(message: str) -> None:
    """The default for what the user should know: nothing (the stores pass their own)."""


# An import's record: (id, model type, stored data, namespace, created_at, updated_at).
# id, model type, data, namespace, created_at, updated_at, exact_times (as a document holds them)
StoredRecord = tuple[ResultId, str, Mapping[str, Any], str, "datetime | None", "datetime | None", Any]


def _utc(value: datetime) -> datetime:
    """A stored time as aware UTC (the driver hands back naive UTC)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def indexes(path_index: bool) -> tuple[Index, ...]:
    """The indexes of every namespace collection.

    MongoDB's own unique ``_id`` index holds one result per id and namespace and serves
    get, exists and list_ids; asking for it creates the collection (so a validator can be
    installed). The multikey ``path`` index, for any-segment filters in Compass, is opt-in:
    on DocumentDB it made bulk inserts about three times slower.
    """
    id_index = Index("_id_", "_id")
    return (id_index, Index("path_segments", "path")) if path_index else (id_index,)


@dataclass
class Learned:
    """What a process has learnt of one store: kept per process and target, shared by its managers.

    A manager unpickled per task (Dask, Ray) finds here what an earlier one in the same process
    learnt, so its first call costs one command, not a connection's set-up again.
    """

    engine: EngineProfile | None = None  # asked of the server once
    indexed: set[str] = default(default_factory=set)  # namespaces whose collection is prepared
    owned: set[str] = default(default_factory=set)  # collections proven this store's
    keys_checked: set[str] = default(default_factory=set)  # collections whose shard key was read
    listed: tuple[float, tuple[str, ...]] | None = None  # (when, collections) of the last listing

    def forget(self) -> None:
        """Forget what a ``clear()`` ends: the collections, and so what was known of them."""
        self.indexed.clear()
        self.owned.clear()
        self.keys_checked.clear()
        self.listed = None


class Operations:
    """The operations of one store, and what the process has learnt of it (:class:`Learned`)."""

    def __init__(
        self,
        collection_prefix: str,
        *,
        models: Models,
        engine: EngineProfile | None = None,
        validation: str = "warn",
        path_index: bool = False,
        store_secrets: bool = False,
        where: str = "",
        clock: Callable[[], datetime] = now,
        monotonic: Callable[[], float] = time.monotonic,
        note: Callable[[str], None] = ignore_note,
        learned: Learned | None = None,
    ) -> None:
        self.prefix = collection_prefix
        self.models = models  # the registered model classes (the registry, handed in by the store)
        self.store_secrets = store_secrets  # the store's setting, kept current by the store
        self.where = where  # the store, for people (doctor's first line)
        self.indexes = indexes(path_index)
        self.validation = validation  # validationAction: "warn", "error", or "off" for no validator
        self.learned = Learned() if learned is None else learned
        if engine is not None:
            self.learned.engine = engine
        self.clock, self.monotonic = clock, monotonic
        self.note = note  # what the user should know once (an engine without validators)
        # (our monotonic clock, the store's time) at the last look at the store's clock
        self._offset: tuple[float, datetime] | None = None
        learned = self.learned
        self.indexed, self.owned, self.keys_checked = learned.indexed, learned.owned, learned.keys_checked

    @property
    def engine(self) -> EngineProfile | None:
        """The server's engine, once asked (shared by the process's managers of this store)."""
        return self.learned.engine

    @engine.setter
    def engine(self, value: EngineProfile | None) -> None:
        self.learned.engine = value

    @property
    def _listed(self) -> tuple[float, tuple[str, ...]] | None:
        return self.learned.listed

    @_listed.setter
    def _listed(self, value: tuple[float, tuple[str, ...]] | None) -> None:
        self.learned.listed = value

    def indexes_of(self, namespace: str) -> tuple[Index, ...]:
        """The store's own indexes and those its registered models ask for on result fields."""
        wanted = [
            Index(f"data.{field}_{direction}", f"data.{field}", direction)
            for field, direction in self.models.indexes(namespace)
        ]
        return (*self.indexes, *wanted)

    def learn_engine(self) -> Operation[EngineProfile]:
        """The server's engine, asked once per connection."""
        if self.engine is None:
            self.engine = EngineProfile.from_build_info((yield BuildInfo()))
        return self.engine

    def server_now(self) -> Operation[datetime]:
        """The store's clock now, as aware UTC: its time when last asked (once a minute), plus the time since.

        The time since is read on the monotonic clock, never on the wall clock: a step of this
        machine's clock (NTP, a resumed VM) changes nothing, and machines whose clocks disagree
        still agree on the store's time, so claims expire by one clock. The error is half a round
        trip; a monotonic clock that stops while the machine sleeps only makes it later, the side
        on which no live claim is taken.
        """
        measured = self._offset
        if measured is None or self.monotonic() - measured[0] > CLOCK_CHECK:
            before = self.monotonic()
            theirs = yield ServerTime()
            theirs = theirs if theirs.tzinfo is not None else theirs.replace(tzinfo=timezone.utc)
            measured = self._offset = ((before + self.monotonic()) / 2, theirs)
        return measured[1] + timedelta(seconds=self.monotonic() - measured[0])

    def namespaces(self) -> Operation[list[str]]:
        """The namespaces whose collections this store can prove are its own."""
        found = []
        for namespace in namespaces_in((yield ListCollections()), self.prefix):
            if (yield from self._owns(namespace)):
                found.append(namespace)
        return found

    def _owns(self, namespace: str) -> Operation[bool]:
        """Whether ``<prefix><namespace>`` holds a result of this store's (proven once per connection).

        A name proves nothing: ``results.`` begins ``results.v2.``, another store's prefix, and a
        foreign collection may start with the prefix. One of our documents that names this
        namespace does: the other store's documents name theirs (``default``, not ``v2.default``).
        """
        collection = self.prefix + namespace
        if collection in self.owned or (self.engine is not None and self.engine.one_keyspace):
            return True
        if (yield FindOne(collection, {**OURS, "namespace": namespace}, {"_id": 1})) is None:
            return False
        self.owned.add(collection)
        return True

    def collections(self, namespace: str | None) -> Operation[list[str]]:
        """The named namespace's collection (if it is this store's), or every collection as listed now."""
        if namespace is not None:
            collection = collection_name(self.prefix, namespace)
            return [collection] if (yield from self._owns(namespace)) else []
        if self.engine is not None and self.engine.one_keyspace:
            return [EVERY]
        names = [self.prefix + ns for ns in (yield from self.namespaces())]
        self._listed = (self.monotonic(), tuple(names))
        return names

    def recent(self, namespace: str | None) -> Operation[tuple[list[str], bool]]:
        """The collections to search and whether that is a listing made now (else one under LISTING_TTL old).

        Only ``exists`` searches an old listing: "yes" from it is true whatever was created
        since, and whoever finds nothing there asks :meth:`unseen` before saying so. Every other
        read lists afresh, since a namespace created since could change its answer.
        """
        listed = self._listed
        if namespace is None and listed is not None and self.monotonic() - listed[0] < LISTING_TTL:
            return list(listed[1]), False
        return (yield from self.collections(namespace)), True

    def unseen(self, searched: list[str]) -> Operation[list[str]]:
        """The collections a listing made now holds that ``searched`` (an old listing) did not."""
        known = set(searched)
        return [c for c in (yield from self.collections(None)) if c not in known]

    def _lookup(
        self, rid: str, namespace: str | None, projection: Any, *, cached: bool = False
    ) -> Operation[list[dict[str, Any]]]:
        """The documents under the id in each namespace (``cached``: any one will do, see :meth:`recent`)."""
        searched, fresh = (
            (yield from self.recent(namespace)) if cached else ((yield from self.collections(namespace)), True)
        )
        found = yield from self._find_each(rid, searched, projection)
        if not found and not fresh:  # a namespace created since that listing may hold it
            found = yield from self._find_each(rid, (yield from self.unseen(searched)), projection)
        return found

    def _find_each(self, rid: str, collections: list[str], projection: Any) -> Operation[list[dict[str, Any]]]:
        found = []
        for collection in collections:
            doc = yield FindOne(collection, {"_id": rid}, projection)
            if doc is not None:
                found.append(doc)
        return found

    def _prepare(self, namespace: str, engine: EngineProfile) -> Operation[None]:
        """Make a namespace's collection ready for writes, once per process and store.

        Only commands of MongoDB's ``readWrite`` role are needed: a collection the library
        creates gets its validator from ``create``; an existing one's options are read
        (``listCollections``) and its validator changed (``collMod``, a ``dbAdmin`` right) only
        when it differs. A refused optional step is one warning and the write goes on.
        """
        if namespace in self.indexed:
            return
        collection = collection_name(self.prefix, namespace)
        if engine.one_keyspace:  # the file store: one tree, nothing to create or index
            self.indexed.add(namespace)
            return
        wanted = self._validator(collection, namespace, engine)
        entry = (yield CollectionOptions(collection)) if wanted is not None or engine.shard_key_listed else UNREAD
        yield from self.check_shard_key(collection, engine, entry)
        created = False
        if entry is None and wanted is not None:
            reply = yield CreateCollection(collection, {k: v for k, v in wanted.items() if k != "collMod"})
            created = isinstance(reply, Written)
            if isinstance(reply, Refused) and reply.code != NAMESPACE_EXISTS:  # exists: created meanwhile
                self.note(refused_step(engine, "create", collection, reply))
        if created:  # made by this store just now: no other store's results can be in it
            self.owned.add(collection)
        else:
            yield from self._claim_collection(namespace)
            if wanted is not None and isinstance(entry, Mapping) and not has_validator(entry, wanted):
                reply = yield SetValidator(collection, wanted)
                if isinstance(reply, Refused):
                    self.note(refused_step(engine, "collMod", collection, reply))
        extra = tuple(index for index in self.indexes_of(namespace) if index.name != ID_INDEX)
        if extra:
            reply = yield EnsureIndexes(collection, extra)
            if isinstance(reply, Refused):
                self.note(refused_step(engine, "createIndexes", collection, reply))
        self.indexed.add(namespace)
        listed = self._listed
        if listed is not None and collection not in listed[1]:  # this process just created it
            self._listed = (listed[0], tuple(sorted((*listed[1], collection))))

    def _validator(self, collection: str, namespace: str, engine: EngineProfile) -> dict[str, Any] | None:
        """The ``collMod`` that installs the namespace's validator, or None where there is none to install."""
        if self.validation == "off":
            return None
        if not engine.validators:
            if engine.name in ("mongodb", "ferretdb"):  # the others have none by design
                self.note(f"{engine.label} does not enforce collection validators; {collection} has none")
            return None
        command, note = validator_command(collection, namespace, self.validation, engine, self.models)
        if note:
            self.note(note)
        return command

    def check_shard_key(self, collection: str, engine: EngineProfile, entry: Any = UNREAD) -> Operation[None]:
        """Refuse to write into a collection sharded on another key than ``_id`` (read once per process).

        There each shard keeps ``_id`` unique only among its own documents: two writers could each
        insert the same id on their shard. A collection sharded after this check is read again by
        the next process. ``entry``: the collection's ``listCollections`` entry, if already read
        (DocumentDB names the shard key there; MongoDB only in ``config``, read on a sharded cluster).
        """
        if not engine.sharding or collection in self.keys_checked:
            return
        found = yield from self.shard_key(collection, engine, entry)
        if found is not None and not RESULTS.keeps_unique(found):
            raise refusal(found, collection)
        self.keys_checked.add(collection)

    def _claim_collection(self, namespace: str) -> Operation[None]:
        """Refuse to write into a collection that holds another store's results (nested prefixes)."""
        collection = self.prefix + namespace
        if collection in self.owned:
            return
        other = yield FindOne(collection, {**OURS, "namespace": {"$ne": namespace}}, {"_id": 1, "namespace": 1})
        if other is not None:
            raise InvalidNamespaceError(
                f"Collection {collection!r} holds results of namespace {other.get('namespace')!r}: it belongs to "
                f"another store whose collection prefix overlaps {self.prefix!r}. Give each store a collection "
                "prefix that is not the start of another's (e.g. 'results.' and 'results_v2.')"
            )
        self.owned.add(collection)

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
        at = self.clock() if updated_at is None else _utc(updated_at)
        created = None if created_at is None else _utc(created_at)
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
        for i, (rid, model) in enumerate(pairs):
            ns = namespace if namespace is not None else resolved.get(type(model))
            try:
                plan = plan_set(
                    rid, model, behavior, ns, False, store_secrets=secrets, engine=engine, at=at, models=self.models
                )
                collection_name(self.prefix, plan.namespace)  # one of this store's collections
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
            found += yield Find(collection, query, projection)
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
            for doc in (yield Find(collection, {"_id": {"$in": wanted[start : start + BATCH]}})):
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
        for collection in (yield from self.collections(namespace)):
            ids.update(i for doc in (yield Find(collection, query, ID_ONLY)) if under(i := doc["_id"]))
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
            foreign = (yield FindOne(collection, FOREIGN, {"_id": 1})) is not None
            if foreign or (yield from self.sharded(collection, engine)):
                yield Delete(collection, OURS, many=True)  # someone else's documents, or the cluster's key
            else:
                yield Drop(collection)
        listed = yield ListCollections()
        kept = []
        for name in (bucket(self.prefix) + ".files", bucket(self.prefix) + ".chunks"):
            if name in listed and (yield from self.sharded(name, engine)):
                yield Delete(name, {}, many=True)
                kept.append(name)
        yield from drop_bucket(self.prefix, [c for c in listed if c not in kept])
        yield Delete(self.prefix + CLAIMS, {}, many=True)  # a dead run's cells are free again
        yield Delete(self.prefix + FAILURES, {}, many=True)
        self.learned.forget()

    def sharded(self, collection: str, engine: EngineProfile) -> Operation[bool]:
        """Whether the server says ``collection`` is sharded (read afresh: another process may have sharded it)."""
        return engine.sharding and (yield from self.shard_key(collection, engine)) is not None

    def shard_key(
        self, collection: str, engine: EngineProfile, entry: Any = UNREAD
    ) -> Operation[Mapping[str, Any] | None]:
        """The key the server says ``collection`` is sharded on, or None.

        DocumentDB names it in the collection's ``listCollections`` entry (``entry``, when already
        read); MongoDB only in ``config.collections``, read behind ``mongos`` alone.
        """
        if engine.shard_key_listed:
            if entry is UNREAD:
                entry = yield CollectionOptions(collection)
            info = entry.get("info") if isinstance(entry, Mapping) else None
            found = info.get("shardKey") if isinstance(info, Mapping) else None
        else:
            found = yield ShardKeyOf(collection)
        return found if isinstance(found, Mapping) else None

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
            found += yield Find(collection, query, None, order, limit or 0)
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
