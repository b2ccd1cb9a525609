"""Writing: each ``set`` as one atomic write, carrying plans out, and set_many's per-item progress."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from pydantic import BaseModel

from ..errors import (
    MongoResultsError,
    RejectedByServerError,
    ResultExistsError,
    SetManyInterruptedError,
    StoreUnavailableError,
    WrongTypeError,
)
from .behaviors import SetBehavior, Stored, outcome
from .commands import (
    BulkWrite,
    Conflict,
    DuplicateKey,
    Failed,
    Find,
    FindOne,
    Insert,
    Operation,
    Refused,
    Update,
    Upsert,
    Write,
    Written,
    ask,
)
from .encoding import EXACT_TIMES, EncodedModel, encode_model
from .ids import ResultId, segments
from .large import Spill, discard, file_of, file_state, put, spill
from .names import Models, resolve_namespace, validate_namespace
from .profiles import EMBEDDED, EngineProfile, check_engine

__all__ = ["SetManyProgress", "SetPlan", "now", "plan_encoded", "plan_set", "write_bulk", "write_set"]


def now() -> datetime:
    """The current UTC time at BSON's millisecond precision."""
    return datetime.fromtimestamp(time.time_ns() // 1_000_000 / 1000, timezone.utc)


class SetPlan(NamedTuple):
    """One ``set`` as a single write, and how to read its answer.

    A named tuple, not a frozen dataclass: as immutable, and built several times faster, once per result.
    """

    result_id: str
    namespace: str
    behavior: SetBehavior
    document: dict[str, Any]
    insert: bool  # a plain insert of ``document``; else an upsert of ``filter`` with ``update``
    filter: dict[str, Any]
    update: Any  # update operators or pipeline (see ``overwrite``), or the whole document when ``replace``
    replace: bool
    attempts: int  # how often a duplicate key is met before it is read as an answer
    spilled: Spill | None = None  # the fields of a result over 16 MiB, for a GridFS file
    # The filter skips a stored result that has a GridFS file, which only a swap may replace.
    guarded: bool = False
    # What a duplicate key means (same content for SKIP_IF_EXISTS, other content for
    # RAISE_IF_DIFFERENT), checked in the write's own command so it needs no second one.
    probe: dict[str, Any] | None = None

    @property
    def replaces(self) -> bool:
        """Whether this write may replace a stored result (else it only ever creates one)."""
        return self.behavior in (SetBehavior.OVERWRITE, SetBehavior.SKIP_IF_EXISTS)

    def stored(self, reply: object) -> bool:
        """Whether, after this reply, ``document`` is the stored result."""
        return isinstance(reply, Written) and (reply.upserted or self.replaces)

    def swap(self, collection: str, current: Mapping[str, Any] | None) -> Write | Update:
        """The write that replaces exactly ``current`` (read just before), or creates the result if None."""
        if current is None:
            return Insert(collection, self.document)
        update = self.update
        if not self.replace and self.spilled is None and file_of(current) is not None:
            update = without_file(update)
        # Pinned to the file it read (the one to remove after); SKIP_IF_EXISTS also to other content.
        pinned = {"_id": self.result_id, **file_state(current)}
        if self.behavior is SetBehavior.SKIP_IF_EXISTS:
            pinned["digest"] = {"$ne": self.document["digest"]}
        return Update(collection, pinned, update, self.replace)

    def write(self, collection: str) -> Write:
        """The command that carries this plan out."""
        if self.insert:
            return Insert(collection, self.document)
        return Upsert(collection, self.filter, self.update, self.replace, self.probe)

    def again(self, reply: object, attempt: int) -> bool:
        """Whether the reply to attempt ``attempt`` is a lost race, to send the write once more."""
        if isinstance(reply, Conflict):  # rolled back for another transaction: nothing was applied
            return attempt < _CONFLICTS
        if not isinstance(reply, DuplicateKey) or reply.namespace not in (None, self.namespace) or reply.probed:
            return False  # an answer; an id held in another namespace (one keyspace), or a probed one, is final
        return attempt < self.attempts

    def decide(self, reply: Written | DuplicateKey | Conflict | Refused | Failed) -> bool | BaseException:
        """One item of a bulk write: the value ``set`` would return, or the exception it would raise."""
        if isinstance(reply, Failed):
            return reply.error
        if isinstance(reply, Conflict):
            return _kept_conflicting(self.result_id, reply)
        if isinstance(reply, Refused):
            return RejectedByServerError(f"server refused {self.result_id!r} (code {reply.code}): {reply.message}")
        try:
            return self.outcome(reply)
        except (MongoResultsError, FileExistsError) as exc:
            return exc

    def outcome(self, reply: Written | DuplicateKey | Conflict) -> bool:
        """The value of ``set`` from the store's answer (raises ResultExistsError)."""
        if isinstance(reply, Conflict):
            raise _kept_conflicting(self.result_id, reply)
        b = self.behavior
        if isinstance(reply, DuplicateKey) and b is SetBehavior.KEEP_EXISTING:
            return outcome(b, Stored.EXISTING, self.result_id, self.namespace)  # whatever is there stays
        if isinstance(reply, DuplicateKey) and reply.namespace not in (None, self.namespace):
            # One result per id (the file store): the id is taken in another namespace.
            raise ResultExistsError(self.result_id, reply.namespace, different=None)
        if isinstance(reply, DuplicateKey) and b is SetBehavior.OVERWRITE:
            raise MongoResultsError(f"set of {self.result_id!r} kept losing insert races; nothing was decided")
        if isinstance(reply, DuplicateKey):
            # The filter did not match a document that does exist: for RAISE_IF_DIFFERENT it
            # holds other content ({_id, digest: d} failed), for SKIP_IF_EXISTS the same
            # ({_id, digest: {$ne: d}} failed).
            stored = {
                SetBehavior.RAISE_IF_EXISTS: Stored.EXISTING,
                SetBehavior.RAISE_IF_DIFFERENT: Stored.DIFFERENT,
                SetBehavior.SKIP_IF_EXISTS: Stored.SAME,
            }[b]
        elif reply.upserted or b in (SetBehavior.RAISE_IF_EXISTS, SetBehavior.KEEP_EXISTING):
            stored = Stored.NOTHING
        else:
            stored = {SetBehavior.RAISE_IF_DIFFERENT: Stored.SAME, SetBehavior.SKIP_IF_EXISTS: Stored.DIFFERENT}.get(
                b, Stored.SAME
            )
        return outcome(b, stored, self.result_id, self.namespace)


Update_ = dict[str, Any] | list[dict[str, Any]]  # update operators, or an update pipeline


def overwrite(doc: dict[str, Any], engine: EngineProfile) -> tuple[Update_ | dict[str, Any], bool]:
    """The update that makes a stored result exactly ``doc``, keeping its ``created_at``; and whether it replaces.

    A server's ``$set`` may keep a stored value that compares equal to the new one (DocumentDB
    keeps ``1.0`` for ``Decimal("1.00")``, ``0.0`` for ``-0.0``, ``3`` for ``3.0``): servers get an
    update pipeline, whose ``$literal`` values are written as encoded. FerretDB 1.x, which has no
    pipelines and whose ``$set`` is not faithful either, gets the whole document (``created_at``
    then restarts); the embedded and file stores apply ``$set`` exactly.
    """
    t = doc["created_at"]
    body = {k: v for k, v in doc.items() if k not in ("_id", "created_at")}
    if not engine.faithful_set:
        return doc, True
    update: Update_
    if engine.pipeline_updates:
        fields = {k: {"$literal": v} for k, v in body.items()}
        update = [{"$set": {**fields, "created_at": {"$ifNull": ["$created_at", t]}}}]
    else:
        update = {"$set": body, "$setOnInsert": {"created_at": t}}
    # The old value's exact times must not outlive it.
    return (update if EXACT_TIMES in doc else unset(update, EXACT_TIMES)), False


def unset(update: Update_, field: str) -> Update_:
    """``update`` that also removes ``field``."""
    if isinstance(update, list):
        return [*update, {"$project": {field: 0}}]  # mongomock has no $unset stage
    return {**update, "$unset": {**update.get("$unset", {}), field: ""}}


def without_file(update: Update_) -> Update_:
    """``update`` that also removes a stored result's GridFS reference (a result no longer over 16 MiB)."""
    return unset(update, "gridfs")


_CONFLICTS = 8  # sends of a write that the server keeps rolling back for other transactions


def _kept_conflicting(result_id: str, reply: Conflict) -> MongoResultsError:
    return MongoResultsError(
        f"set of {result_id!r} was rolled back {_CONFLICTS} times for other writers' transactions "
        f"({reply.message}); nothing was written"
    )


def plan_set(
    result_id: ResultId,
    data: BaseModel,
    behavior: SetBehavior,
    namespace: str | None,
    strict_namespace: bool,
    *,
    at: datetime,
    models: Models,
    store_secrets: bool = False,
    engine: EngineProfile = EMBEDDED,
) -> SetPlan:
    """Validate and encode one ``set`` at time ``at`` and choose its single atomic write."""
    segs = segments(result_id)
    if not isinstance(data, BaseModel):
        raise WrongTypeError(f"data must be a pydantic model instance, got {type(data).__name__}")
    rid = "/".join(segs)
    ns = resolve_namespace(data, namespace, strict_namespace, rid, models)
    encoded = encode_model(data, store_secrets=store_secrets, decimal128=engine.decimal128, encoders=models.encoders)
    return _plan(rid, segs, encoded, behavior, ns, engine, at)


def plan_encoded(
    result_id: ResultId,
    encoded: EncodedModel,
    behavior: SetBehavior,
    namespace: str,
    *,
    at: datetime,
    engine: EngineProfile = EMBEDDED,
    created: datetime | None = None,
) -> SetPlan:
    """Choose the single atomic write that stores already-encoded data (a model, or an import).

    ``at`` is its ``updated_at``; ``created``, when given (an import), its ``created_at`` if it creates the result.
    """
    segs = segments(result_id)
    return _plan("/".join(segs), segs, encoded, behavior, validate_namespace(namespace), engine, at, created)


def _plan(
    rid: str,
    segs: tuple[str, ...],
    encoded: EncodedModel,
    behavior: SetBehavior,
    ns: str,
    engine: EngineProfile,
    t: datetime,
    created: datetime | None = None,
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
        "created_at": t if created is None else created,
        "updated_at": t,
    }
    if encoded.times:
        doc[EXACT_TIMES] = [{"path": path, "text": text} for path, text in encoded.times]
    check_engine(rid, encoded, engine)
    spilled = spill(rid, doc, encoded, engine.max_document)
    if behavior in (SetBehavior.RAISE_IF_EXISTS, SetBehavior.KEEP_EXISTING):
        return SetPlan(rid, ns, behavior, doc, True, {}, {}, False, 1, spilled)  # an insert has no query phase
    write, replace = overwrite(doc, engine)
    # Two upserts of a missing id can both find nothing and both insert: the loser meets a
    # duplicate key that says nothing about the content. MongoDB retries that by itself only
    # when the filter is equality on the unique index's fields alone, and ours has the digest
    # too; so on every engine the command is repeated once, when its query sees the winner.
    # Where a multi-statement write reports its counts (not FerretDB 1.x), the command also
    # probes for what the duplicate key should mean; a match settles it without the repeat.
    confirm = 2
    probes = engine.bulk_updates
    # Where results can have GridFS files, a write that replaces one must know which file it
    # replaced: the plain write passes over such a result and a swap takes it (see write_set).
    guard = {"gridfs": {"$exists": False}} if engine.max_document is not None else {}
    if behavior is SetBehavior.OVERWRITE:  # a duplicate is a lost race
        return SetPlan(rid, ns, behavior, doc, False, {"_id": rid, **guard}, write, replace, 3, spilled, bool(guard))
    if behavior is SetBehavior.SKIP_IF_EXISTS:
        skip = {"_id": rid, "digest": {"$ne": encoded.digest}, **guard}
        same = {"_id": rid, "digest": encoded.digest} if probes else None
        return SetPlan(rid, ns, behavior, doc, False, skip, write, replace, confirm, spilled, bool(guard), same)
    # RAISE_IF_DIFFERENT: matching {_id, digest} is "same content", a no-op; otherwise the
    # upsert's insert either creates the result or hits the _id index (different content).
    insert_only = {k: v for k, v in doc.items() if k not in ("_id", "digest")}
    filt = {"_id": rid, "digest": encoded.digest}
    other = {"_id": rid, "digest": {"$ne": encoded.digest}} if probes else None
    update = {"$setOnInsert": insert_only}
    return SetPlan(rid, ns, behavior, doc, False, filt, update, False, confirm, spilled, probe=other)


# -- Carrying out set plans: one atomic write each, GridFS files around it, and many at once in bulk.

_SWAPS = 5  # a swap whose result changed between its read and its write reads again, this many times


def write_set(prefix: str, plan: SetPlan, *, swap: bool = False) -> Operation[bool]:
    """One ``set``: its file first when it has one, then its write; files nothing names are removed.

    If the store fails in between, a file may be left that no result names; doctor --fix removes it.
    """
    spilled = plan.spilled
    if spilled is not None:
        yield put(prefix, plan.result_id, plan.namespace, plan.document["digest"], spilled)
    collection = prefix + plan.namespace
    try:
        if swap or (spilled is not None and plan.replaces):
            reply, replaced = yield from _swap(plan, collection)
        else:
            reply, replaced = yield from _send(plan, collection)
    except StoreUnavailableError:
        raise  # the store is out of reach: its file, if written, waits for doctor --fix
    except MongoResultsError:  # refused, or lost every race: nothing was stored
        if spilled is not None:
            yield from discard(prefix, spilled.file_id)
        raise
    stored = plan.stored(reply)
    if spilled is not None and not stored:
        yield from discard(prefix, spilled.file_id)
    if stored and replaced is not None:
        yield from discard(prefix, replaced)
    return plan.outcome(reply)


def _send(plan: SetPlan, collection: str) -> Operation[Any]:
    command = plan.write(collection)
    attempt = 1
    reply = yield from ask(command)
    while plan.again(reply, attempt):
        if plan.guarded and not isinstance(reply, Conflict):  # a lost race, the same content, or a file in the way
            return (yield from _swap(plan, collection))
        attempt += 1
        reply = yield from ask(command)
    return reply, None


def _swap(plan: SetPlan, collection: str) -> Operation[Any]:
    """Replace exactly the result read just before (knowing its file), or create it: (reply, replaced file)."""
    for _ in range(_SWAPS):
        current = yield from ask(FindOne(collection, {"_id": plan.result_id}, {"digest": 1, "gridfs": 1}))
        same = current is not None and plan.document["digest"] == current.get("digest")
        if same and plan.behavior is SetBehavior.SKIP_IF_EXISTS:
            return DuplicateKey(), None  # the same content is there: nothing to write
        reply = yield from ask(plan.swap(collection, current))
        if isinstance(reply, Written):
            return Written(current is None), file_of(current)
    raise MongoResultsError(f"set of {plan.result_id!r} kept losing races to other writers; nothing was decided")


def write_bulk(
    prefix: str,
    engine: EngineProfile,
    pending: dict[int, SetPlan],
    progress: SetManyProgress,
    prepare: Callable[[str], Operation[Any]],
    batch_size: int,
) -> Operation[Any]:
    """Unordered bulk writes per namespace and batch; per item, what ``set`` returns or raises.

    Plans a bulk cannot carry (a result with a file; an update where the engine
    cannot report bulk updates per item) are written one by one, each read as
    ``set`` reads it.
    """
    outcomes, sent = progress.outcomes, progress.sent
    alone = [i for i, plan in pending.items() if plan.spilled is not None or not (engine.bulk_updates or plan.insert)]
    yield from _one_by_one(prefix, [(i, pending.pop(i), False) for i in alone], progress, prepare)
    attempt = 1
    while pending:
        again: dict[int, SetPlan] = {}
        for ns in sorted({plan.namespace for plan in pending.values()}):
            yield from prepare(ns)
            group = [i for i, plan in pending.items() if plan.namespace == ns]
            size = min(batch_size, engine.max_write_batch)
            for start in range(0, len(group), size):
                batch = group[start : start + size]
                sent.update(batch)  # until decided: a lost race awaiting its confirmation stays here
                collection = prefix + ns
                replies = yield from ask(BulkWrite(collection, tuple(pending[i].write(collection) for i in batch)))
                blocked = yield from _held_in_files(collection, pending, batch, replies)
                yield from _one_by_one(prefix, [(i, pending[i], True) for i in blocked], progress, prepare)
                for i, reply in zip(batch, replies, strict=True):
                    plan = pending[i]
                    if i in blocked:
                        continue
                    if plan.again(reply, attempt):
                        again[i] = plan
                        continue
                    outcomes[i] = plan.decide(reply)
                    sent.discard(i)
        pending, attempt = again, attempt + 1


def _held_in_files(
    collection: str, pending: dict[int, SetPlan], batch: list[int], replies: list[Any]
) -> Operation[Any]:
    """The items a guarded write passed over because their stored result has a file: one query."""
    met = {
        pending[i].result_id: i
        for i, r in zip(batch, replies, strict=True)
        if pending[i].guarded and isinstance(r, DuplicateKey)
    }
    if not met:
        return set()
    held = yield from ask(Find(collection, {"_id": {"$in": sorted(met)}, "gridfs": {"$exists": True}}, {"_id": 1}))
    return {met[doc["_id"]] for doc in held}


def _one_by_one(
    prefix: str,
    items: list[tuple[int, SetPlan, bool]],
    progress: SetManyProgress,
    prepare: Callable[[str], Operation[Any]],
) -> Operation[Any]:
    outcomes, sent = progress.outcomes, progress.sent
    for i, plan, swap in items:
        yield from prepare(plan.namespace)
        sent.add(i)
        try:
            outcomes[i] = yield from write_set(prefix, plan, swap=swap)
        except StoreUnavailableError:
            raise  # the whole call stops; set_many reports what is known
        except (MongoResultsError, FileExistsError) as exc:
            outcomes[i] = exc
        sent.discard(i)


# -- How far a ``set_many`` got, for the error that reports an interruption.


@dataclass
class SetManyProgress:
    """Each item's outcome once decided (None until then), and the items sent but undecided."""

    outcomes: list[bool | BaseException | None]
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
