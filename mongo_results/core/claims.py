"""Sweeps that divide their work: which results are missing, and claims on the ones a worker computes.

A claim is one document in ``<prefix>_claims`` (a file in the file store), keyed by the result
id alone: a worker that names a namespace and one that does not claim the same cell. Taking one
is a single insert, so the unique ``_id`` decides between racing workers on every engine; a
claim whose lease ran out is deleted by the next taker, filtered on its expiry, and taken by
whoever then inserts first. Expiry is read on the store's clock (:meth:`Operations.server_now`),
so machines whose clocks disagree never both hold a live claim.

A claim is taken before the result is looked for: a worker that stores a result and then
lets its claim go is always seen by the next taker.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import InvalidArgumentError
from .commands import BY_ID, Batch, Delete, DuplicateKey, Find, Insert, NoMatch, Update
from .ids import ResultId, canonical_id, canonical_ids, canonical_prefix
from .names import CLAIMS, collection_name, optional_namespace
from .operations import BATCH, Operation, Operations

__all__ = ["MAX_LEASE", "ClaimState", "live_claims", "missing", "release", "renew", "take", "take_each"]

MAX_LEASE = timedelta(days=1)


@dataclass
class ClaimState:
    """What a worker holds: the right to compute ``result_id`` until ``expires_at`` (the store's clock)."""

    result_id: str
    namespace: str | None
    owner: str
    expires_at: datetime
    lease: timedelta

    @property
    def key(self) -> str:
        """The claim's ``_id``: the result id alone, whatever the namespace, so one cell has one claim."""
        return self.result_id


def check_lease(lease: object) -> timedelta:
    """A lease in seconds (a number) or a timedelta, over zero and at most a day."""
    if isinstance(lease, timedelta):
        seconds = lease.total_seconds()
    elif isinstance(lease, (int, float)) and not isinstance(lease, bool) and math.isfinite(lease):
        seconds = lease  # compared before a timedelta is made of it: 1e300 s is no timedelta
    else:
        raise InvalidArgumentError(f"a lease is a number of seconds or a timedelta, not {lease!r}")
    if not 0 < seconds <= MAX_LEASE.total_seconds():
        raise InvalidArgumentError(f"a lease is over 0 s and at most a day, not {seconds:g} s")
    return lease if isinstance(lease, timedelta) else timedelta(seconds=lease)


def _collection(ops: Operations) -> str:
    return ops.prefix + CLAIMS


def _namespace(ops: Operations, namespace: str | None) -> str | None:
    """The namespace argument, refused before any write when it cannot name one of this store's collections."""
    if namespace is not None:
        collection_name(ops.prefix, namespace)
    return optional_namespace(namespace)


def missing(ops: Operations, result_ids: Iterable[ResultId], namespace: str | None) -> Operation[list[str]]:
    """The canonical ids, in order and without repeats, with no stored result.

    Per namespace, the stored ids between the first and the last asked for, read from the
    index alone: a sweep's ids lie close together, so that range holds little else, and one
    range costs far less than ``$in`` queries of as many ids (a third on DocumentDB). Where the
    range holds more than twice the ids asked for, one ``$in`` query per 1,000 ids asks instead.
    """
    wanted = list(dict.fromkeys(canonical_ids(result_ids, "missing")))
    namespace = optional_namespace(namespace)
    ordered = sorted(wanted)
    found: set[str] = set()
    for collection in (yield from ops.collections(namespace)) if ordered else ():
        cap = 2 * len(ordered)
        span = {"_id": {"$gte": ordered[0], "$lte": ordered[-1]}}
        stored = yield Find(collection, span, {"_id": 1}, BY_ID, cap + 1)
        if len(stored) > cap:  # the range is crowded with other results: ask for the ids themselves
            stored = []
            for start in range(0, len(ordered), BATCH):
                stored += yield Find(collection, {"_id": {"$in": ordered[start : start + BATCH]}}, {"_id": 1})
        found.update(d["_id"] for d in stored)
    return [r for r in wanted if r not in found]


def take(ops: Operations, result_id: ResultId, lease: object, namespace: str | None, worker: str) -> Operation[Any]:
    """A claim on ``result_id`` for ``lease``, or None when the result is stored or a live claim holds it.

    The claim comes back as a :class:`ClaimState`; the managers hand it to the caller bound to
    themselves (typed ``Any`` here for that reason).
    """
    span = check_lease(lease)
    return (yield from _take(ops, canonical_id(result_id), _namespace(ops, namespace), span, worker))


def _take(
    ops: Operations, rid: str, namespace: str | None, span: timedelta, worker: str
) -> Operation[ClaimState | None]:
    now = yield from ops.server_now()
    state = ClaimState(rid, namespace, f"{worker}:{uuid.uuid4().hex[:8]}", now + span, span)
    document = {
        "_id": state.key,
        "result_id": rid,
        "namespace": namespace,
        "owner": state.owner,
        "claimed_at": now,
        "expires_at": state.expires_at,
    }
    collection = _collection(ops)
    # A claim's _id decides between racing workers only where the claims are sharded on it.
    yield from ops.check_shard_key(collection, (yield from ops.learn_engine()))
    if isinstance((yield Insert(collection, document)), DuplicateKey):
        # Held, or its lease ran out: only an expired claim is deleted, and then the first insert wins.
        if not (yield Delete(collection, {"_id": state.key, "expires_at": {"$lte": now}}, many=False)):
            return None
        if isinstance((yield Insert(collection, document)), DuplicateKey):
            return None
    if (yield from ops.exists(rid, namespace)):  # stored by a worker that has let its claim go
        yield from release(ops, state)
        return None
    return state


def take_each(
    ops: Operations, result_ids: Iterable[ResultId], lease: object, namespace: str | None, worker: str
) -> Operation[None]:
    """Stream a claim for each id, in order, that is not stored and not held.

    One at a time, taken when the caller asks for the next: its lease starts with the work.
    """
    span = check_lease(lease)
    namespace = _namespace(ops, namespace)
    wanted = list(dict.fromkeys(canonical_ids(result_ids, "claim_each")))
    for start in range(0, len(wanted), BATCH):
        for rid in (yield from missing(ops, wanted[start : start + BATCH], namespace)):
            state = yield from _take(ops, rid, namespace, span, worker)
            if state is not None:
                yield Batch([state])


def renew(ops: Operations, state: ClaimState, lease: object | None) -> Operation[bool]:
    """Extend a claim by ``lease`` (its own when None).

    False once it was lost (taken by another worker after it ran out) or the result is stored.
    """
    span = state.lease if lease is None else check_lease(lease)
    now = yield from ops.server_now()
    expires = now + span
    answer = yield Update(_collection(ops), {"_id": state.key, "owner": state.owner}, {"$set": {"expires_at": expires}})
    if isinstance(answer, NoMatch) or (yield from ops.exists(state.result_id, state.namespace)):
        return False
    state.expires_at, state.lease = expires, span
    return True


def release(ops: Operations, state: ClaimState) -> Operation[None]:
    """Let a claim go (a claim another worker took meanwhile is left alone)."""
    yield Delete(_collection(ops), {"_id": state.key, "owner": state.owner}, many=False)


def live_claims(ops: Operations, prefix: ResultId | None) -> Operation[list[dict[str, Any]]]:
    """The claims whose lease has not run out, under ``prefix``, by id; each with ``expires_in`` (seconds)."""
    now = yield from ops.server_now()
    p = canonical_prefix(prefix)
    found = yield Find(_collection(ops), {"expires_at": {"$gt": now}})
    claims = []
    for doc in found:
        rid = doc.get("result_id")
        if not isinstance(rid, str):  # an unreadable claim file: doctor names it
            continue
        if not p or rid == p or rid.startswith(p + "/"):
            dates = {k: _aware(doc[k]) for k in ("claimed_at", "expires_at") if isinstance(doc.get(k), datetime)}
            claims.append({**doc, **dates, "expires_in": (dates["expires_at"] - now).total_seconds()})
    return sorted(claims, key=lambda d: (d["result_id"], str(d.get("namespace"))))


def _aware(value: datetime) -> datetime:
    """A stored date as aware UTC (drivers hand back naive UTC unless asked otherwise)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def check_claims(ops: Operations, fix: bool) -> Operation[list[str]]:
    """Doctor's look at the claims: unreadable claim files (a problem) and expired claims left behind.

    Returns the report's lines; a line starting with ``problem:`` counts as a problem.
    """
    now = yield from ops.server_now()
    collection = _collection(ops)
    unreadable = yield Find(collection, {"unreadable": {"$exists": True}}, {"_id": 1, "unreadable": 1})
    expired = yield Find(collection, {"expires_at": {"$lte": now}, "unreadable": {"$exists": False}}, {"_id": 1})
    lines = []
    if unreadable:
        what = f"{len(unreadable)} unreadable claim file(s) (cut short by a crash)"
        if fix:
            yield Delete(collection, {"unreadable": {"$exists": True}}, many=True)
            lines.append(f"  fixed: removed {what}")
        else:
            names = ", ".join(str(d["unreadable"]) for d in unreadable[:5])
            lines.append(f"  problem: {what}, each holding its id for a day: {names}; run `mongo-results doctor --fix`")
    if expired:
        what = f"{len(expired)} expired claim(s) of workers that ended without letting go"
        if fix:
            yield Delete(collection, {"expires_at": {"$lte": now}, "unreadable": {"$exists": False}}, many=True)
            lines.append(f"  fixed: removed {what}")
        else:
            lines.append(f"  note: {what} (the next taker replaces each; --fix removes them)")
    if lines:
        lines.insert(0, f"{collection}: the claims of sweeps")
    return lines
