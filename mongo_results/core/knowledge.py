"""What the operations know of one store, and the steps that learn it: engine, namespaces, clock, shards.

The collections it lists (a listing that ``exists`` reuses for a second), the ones prepared
(indexes, validator) and proven its own, how they are sharded, and the store's time for
claims. ``Learned`` keeps it per process and target, shared by every manager there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as default
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, cast

from ..errors import InvalidNamespaceError
from .commands import (
    EVERY,
    Asks,
    BuildInfo,
    CollectionOptions,
    Command,
    CreateCollection,
    EnsureIndexes,
    FindOne,
    Index,
    ListCollections,
    Operation,
    Refused,
    ServerTime,
    SetValidator,
    ShardKeyOf,
    Together,
    Written,
    ask,
)
from .filters import OURS
from .names import Models, collection_name, namespaces_in
from .profiles import EngineProfile
from .shard_keys import RESULTS, refusal
from .validators import validator_command
from .writes import now

R = TypeVar("R")

__all__ = ["LISTING_TTL", "Learned", "StoreKnowledge", "has_validator", "ignore_note", "indexes", "refused_step", "utc"]

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


def utc(value: datetime) -> datetime:
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


class StoreKnowledge:
    """What the operations of one store know of it (:class:`Learned`), and the steps that learn it."""

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
            self.engine = EngineProfile.from_build_info((yield from ask(BuildInfo())))
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
            theirs = yield from ask(ServerTime())
            theirs = theirs if theirs.tzinfo is not None else theirs.replace(tzinfo=timezone.utc)
            measured = self._offset = ((before + self.monotonic()) / 2, theirs)
        return measured[1] + timedelta(seconds=self.monotonic() - measured[0])

    def namespaces(self) -> Operation[list[str]]:
        """The namespaces whose collections this store can prove are its own."""
        return (yield from self._ours((yield from ask(ListCollections()))))

    def _ours(self, listed: list[str]) -> Operation[list[str]]:
        found = []
        for namespace in namespaces_in(listed, self.prefix):
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
        if (yield from ask(FindOne(collection, {**OURS, "namespace": namespace}, {"_id": 1}))) is None:
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
        return (yield from self._remember((yield from ask(ListCollections()))))

    def _remember(self, listed: list[str]) -> Operation[list[str]]:
        """The collections of this store's namespaces in a listing, kept as the last listing."""
        names = [self.prefix + ns for ns in (yield from self._ours(listed))]
        self._listed = (self.monotonic(), tuple(names))
        return names

    def read_each(self, namespace: str | None, read: Callable[[str], Asks[R]]) -> Operation[list[R]]:
        """``read`` of each collection :meth:`collections` gives, as listed now, in its order.

        Without a namespace, a store that sends commands together gets the listing and the reads
        of the collections it listed last at once: one round trip where a named namespace takes
        one. A collection new to the listing is read after it; one gone from it is left out.
        """
        listed = self._listed
        if namespace is not None or listed is None or not (yield from self.learn_engine()).together:
            replies = []
            for collection in (yield from self.collections(namespace)):
                replies.append((yield from ask(read(collection))))
            return replies
        sent = yield from ask(Together((ListCollections(), *(cast(Command, read(c)) for c in listed[1]))))
        names = yield from self._remember(sent[0])
        before: dict[str, R] = dict(zip(listed[1], sent[1:], strict=True))
        out = []
        for collection in names:
            out.append(before[collection] if collection in before else (yield from ask(read(collection))))
        return out

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
        if not cached:
            each = yield from self.read_each(namespace, lambda c: FindOne(c, {"_id": rid}, projection))
            return [doc for doc in each if doc is not None]
        searched, fresh = yield from self.recent(namespace)
        found = yield from self._find_each(rid, searched, projection)
        if not found and not fresh:  # a namespace created since that listing may hold it
            found = yield from self._find_each(rid, (yield from self.unseen(searched)), projection)
        return found

    def _find_each(self, rid: str, collections: list[str], projection: Any) -> Operation[list[dict[str, Any]]]:
        found = []
        for collection in collections:
            doc = yield from ask(FindOne(collection, {"_id": rid}, projection))
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
        entry = (
            (yield from ask(CollectionOptions(collection))) if wanted is not None or engine.shard_key_listed else UNREAD
        )
        yield from self.check_shard_key(collection, engine, entry)
        created = False
        if entry is None and wanted is not None:
            reply = yield from ask(CreateCollection(collection, {k: v for k, v in wanted.items() if k != "collMod"}))
            created = isinstance(reply, Written)
            if isinstance(reply, Refused) and reply.code != NAMESPACE_EXISTS:  # exists: created meanwhile
                self.note(refused_step(engine, "create", collection, reply))
        if created:  # made by this store just now: no other store's results can be in it
            self.owned.add(collection)
        else:
            yield from self._claim_collection(namespace)
            if wanted is not None and isinstance(entry, Mapping) and not has_validator(entry, wanted):
                refused = yield from ask(SetValidator(collection, wanted))
                if isinstance(refused, Refused):
                    self.note(refused_step(engine, "collMod", collection, refused))
        extra = tuple(index for index in self.indexes_of(namespace) if index.name != ID_INDEX)
        if extra:
            refused = yield from ask(EnsureIndexes(collection, extra))
            if isinstance(refused, Refused):
                self.note(refused_step(engine, "createIndexes", collection, refused))
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
        other = yield from ask(
            FindOne(collection, {**OURS, "namespace": {"$ne": namespace}}, {"_id": 1, "namespace": 1})
        )
        if other is not None:
            raise InvalidNamespaceError(
                f"Collection {collection!r} holds results of namespace {other.get('namespace')!r}: it belongs to "
                f"another store whose collection prefix overlaps {self.prefix!r}. Give each store a collection "
                "prefix that is not the start of another's (e.g. 'results.' and 'results_v2.')"
            )
        self.owned.add(collection)

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
                entry = yield from ask(CollectionOptions(collection))
            info = entry.get("info") if isinstance(entry, Mapping) else None
            found = info.get("shardKey") if isinstance(info, Mapping) else None
        else:
            found = yield from ask(ShardKeyOf(collection))
        return found if isinstance(found, Mapping) else None
