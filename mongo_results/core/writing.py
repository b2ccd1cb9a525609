"""Carrying out set plans: one atomic write each, GridFS files around it, and many at once in bulk."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from ..behaviors import SetBehavior
from ..errors import MongoResultsError, StoreUnavailableError
from .commands import BulkWrite, DuplicateKey, Find, FindOne, Written
from .engine import Engine
from .large import discard, file_of, put
from .plans import SetPlan
from .progress import Progress

__all__ = ["write_bulk", "write_set"]

Operation = Generator[Any, Any, Any]
Write = Generator[Any, Any, bool]
_SWAPS = 5  # a swap whose result changed between its read and its write reads again, this many times


def write_set(prefix: str, plan: SetPlan, *, swap: bool = False) -> Write:
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


def _send(plan: SetPlan, collection: str) -> Operation:
    command = plan.write(collection)
    attempt = 1
    reply = yield command
    while plan.again(reply, attempt):
        if plan.guarded:  # a lost race, the same content, or a result with a file in the way
            return (yield from _swap(plan, collection))
        attempt += 1
        reply = yield command
    return reply, None


def _swap(plan: SetPlan, collection: str) -> Operation:
    """Replace exactly the result read just before (knowing its file), or create it: (reply, replaced file)."""
    for _ in range(_SWAPS):
        current = yield FindOne(collection, {"_id": plan.result_id}, {"digest": 1, "gridfs": 1})
        same = current is not None and plan.document["digest"] == current.get("digest")
        if same and plan.behavior is SetBehavior.SKIP_IF_EXISTS:
            return DuplicateKey(), None  # the same content is there: nothing to write
        reply = yield plan.swap(collection, current)
        if isinstance(reply, Written):
            return Written(current is None), file_of(current)
    raise MongoResultsError(f"set of {plan.result_id!r} kept losing races to other writers; nothing was decided")


def write_bulk(
    prefix: str,
    engine: Engine,
    pending: dict[int, SetPlan],
    progress: Progress,
    prepare: Callable[[str], Operation],
    batch_size: int,
) -> Operation:
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
                replies = yield BulkWrite(collection, tuple(pending[i].write(collection) for i in batch))
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


def _held_in_files(collection: str, pending: dict[int, SetPlan], batch: list[int], replies: list[Any]) -> Operation:
    """The items a guarded write passed over because their stored result has a file: one query."""
    met = {
        pending[i].result_id: i
        for i, r in zip(batch, replies, strict=True)
        if pending[i].guarded and isinstance(r, DuplicateKey)
    }
    if not met:
        return set()
    held = yield Find(collection, {"_id": {"$in": sorted(met)}, "gridfs": {"$exists": True}}, {"_id": 1})
    return {met[doc["_id"]] for doc in held}


def _one_by_one(
    prefix: str, items: list[tuple[int, SetPlan, bool]], progress: Progress, prepare: Callable[[str], Operation]
) -> Operation:
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
