"""Sweeps that divide their work: which results are missing, and claims on the ones a worker computes.

A claim is one document in ``<prefix>_claims`` (a file in the file store), keyed by the result
id alone: a worker that names a namespace and one that does not claim the same cell. Taking one
is a single upsert filtered on an expired lease, so the unique ``_id`` decides between racing
workers on every engine: it replaces a claim whose lease ran out, inserts where there is none,
and meets a live claim's ``_id``. Expiry is read on the store's clock (:meth:`Operations.server_now`),
so machines whose clocks disagree never both hold a live claim.

A claim is taken before the result is looked for: a worker that stores a result and then
lets its claim go is always seen by the next taker.

A cell that failed ``max_attempts`` times (``failures.py``) is not offered again. ``claim_each``
ends only when every cell is stored, failed for good or claimed by this worker: while other
workers' live claims hold cells, it waits for the earliest to run out (looking again at least
every ``POLL`` seconds), so a dead worker's cell is taken soon after its lease.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import AccessDeniedError, InvalidArgumentError, StoreWriteError
from .commands import BY_ID, Batch, Delete, DuplicateKey, Find, FindOne, NoMatch, Update, Upsert, Wait, ask
from .failures import attempts, check_max_attempts, exhausted, forget, record
from .ids import ResultId, canonical_id, canonical_ids, canonical_prefix
from .names import CLAIMS, collection_name, optional_namespace
from .operations import BATCH, Operation, Operations

__all__ = [
    "MAX_LEASE",
    "POLL",
    "ClaimState",
    "finish",
    "live_claims",
    "missing",
    "release",
    "renew",
    "take",
    "take_each",
]

MAX_LEASE = timedelta(days=1)
POLL = 5.0  # the longest pause between looks while other workers' claims hold the cells left
FIRST_LOOK = 0.05  # the first pause: doubled after each look that takes nothing
CHUNK = 50  # ids looked at together for stored results and failures before they are claimed
FINISHED = "finished"  # set on a claim let go after its work: kept FINISHED_KEPT, then it expires
UNFINISHED = {FINISHED: {"$exists": False}}
# claim_each looks for stored results again once its look is LOOK_AGAIN old (seconds), so a mark
# kept far longer outlives every look made before it: the taker that meets it looks again.
LOOK_AGAIN = 1.0
FINISHED_KEPT = timedelta(minutes=1)


@dataclass
class ClaimState:
    """What a worker holds: the right to compute ``result_id`` until ``expires_at`` (the store's clock)."""

    result_id: str
    namespace: str | None
    owner: str
    expires_at: datetime
    lease: timedelta
    failed: int = 0  # the cell's failed attempts before this one

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
        stored = yield from ask(Find(collection, span, {"_id": 1}, BY_ID, cap + 1))
        if len(stored) > cap:  # the range is crowded with other results: ask for the ids themselves
            stored = []
            for start in range(0, len(ordered), BATCH):
                stored += yield from ask(Find(collection, {"_id": {"$in": ordered[start : start + BATCH]}}, {"_id": 1}))
        found.update(d["_id"] for d in stored)
    return [r for r in wanted if r not in found]


def take(
    ops: Operations, result_id: ResultId, lease: object, namespace: str | None, worker: str, max_attempts: object = 3
) -> Operation[Any]:
    """A claim on ``result_id`` for ``lease``, or None: stored, held, or failed ``max_attempts`` times.

    The claim comes back as a :class:`ClaimState`; the managers hand it to the caller bound to
    themselves (typed ``Any`` here for that reason).
    """
    span = check_lease(lease)
    bound = check_max_attempts(max_attempts)
    rid, namespace = canonical_id(result_id), _namespace(ops, namespace)
    counts = yield from attempts(ops, [rid])
    if rid in set(exhausted(counts, bound)) or (yield from ops.exists(rid, namespace)):
        return None
    state, _ = yield from _take(ops, rid, namespace, span, worker, counts.get(rid, 0), bound)
    return state


def _take(
    ops: Operations, rid: str, namespace: str | None, span: timedelta, worker: str, failed: int, bound: int | None
) -> Operation[tuple[ClaimState | None, bool]]:
    """The claim, or None and whether a live claim holds the cell (else its result is stored).

    One upsert takes a free cell or an expired claim: its filter matches only a claim whose
    lease ran out, and where there is none it inserts, which a live claim's ``_id`` refuses.
    A claim let go stays for a minute, marked finished: it refuses the insert too, and says
    so in the same command (the upsert's probe). So a caller whose look is a second old looks
    again, for the result and the failures, only at a cell another worker let go since.
    """
    now = yield from ops.server_now()
    state = ClaimState(rid, namespace, f"{worker}:{uuid.uuid4().hex[:8]}", now + span, span, failed)
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
    engine = yield from ops.learn_engine()
    yield from ops.check_shard_key(collection, engine)
    expired = {"_id": state.key, "expires_at": {"$lte": now}}
    finished = {"_id": state.key, FINISHED: True}
    probe = finished if engine.bulk_updates else None  # FerretDB 1.x takes no bulk of updates: asked apart
    for _ in range(3):
        answer = yield from ask(Upsert(collection, expired, document, replace=True, probe=probe))
        if not isinstance(answer, DuplicateKey):
            return state, False
        if probe is not None and not answer.probed:
            return None, True  # a live claim holds it
        mark = yield from ask(FindOne(collection, finished, {"owner": 1}))
        if mark is None:
            if probe is None:
                return None, True
            continue  # gone meanwhile: ask again
        if (yield from ops.exists(rid, namespace)):
            return None, False
        counts = yield from attempts(ops, [rid])
        if rid in set(exhausted(counts, bound)):
            return None, False
        state.failed = counts.get(rid, 0)
        # Let go unstored (failed, given up, or its result deleted since): this very mark says
        # nothing more. Another worker's mark, set since, stays and is met on the next ask.
        yield from ask(Delete(collection, {**finished, "owner": mark.get("owner")}, many=False))
    return None, True  # let go and taken again around this worker each time it asked: others are at it


def _served(ops: Operations) -> Operation[None]:
    """Delete the finished marks older than FINISHED_KEPT: no look made since they were set needs them."""
    served = {FINISHED: True, "expires_at": {"$lte": (yield from ops.server_now())}}
    yield from ask(Delete(_collection(ops), served, many=True))


def _earliest(ops: Operations, keys: list[str], now: datetime) -> Operation[datetime]:
    """When the first of the claims that hold ``keys`` runs out (now, if one is gone or finished meanwhile)."""
    found = yield from ask(Find(_collection(ops), {"_id": {"$in": keys}}, {"expires_at": 1, FINISHED: 1}))
    ends = [_aware(d["expires_at"]) for d in found if isinstance(d.get("expires_at"), datetime) and FINISHED not in d]
    return min(ends) if len(ends) == len(keys) else now


def take_each(
    ops: Operations,
    result_ids: Iterable[ResultId],
    lease: object,
    namespace: str | None,
    worker: str,
    max_attempts: object = 3,
    wait: bool = True,
) -> Operation[None]:
    """Stream a claim for each id, in order, that is not stored, not failed for good and not held.

    One at a time, taken when the caller asks for the next: its lease starts with the work.
    With ``wait``, cells other workers hold are looked at again when the earliest claim runs
    out, until none is left.
    """
    span = check_lease(lease)
    bound = check_max_attempts(max_attempts)
    namespace = _namespace(ops, namespace)
    pending = list(dict.fromkeys(canonical_ids(result_ids, "claim_each")))
    pause = FIRST_LOOK
    if pending:
        yield from _served(ops)  # once a call: the file store reads every claim file to find them
    while pending:
        held: list[str] = []
        for start in range(0, len(pending), CHUNK):
            # Looked at afresh for each chunk: workers that run through one list behind each other
            # pass over what the ones ahead stored with one query, not a claim given back per cell.
            # And again for the rest of the chunk once the look is LOOK_AGAIN old: a result stored
            # without a claim since is then passed over too (one finished under a claim always is).
            rest = pending[start : start + CHUNK]
            while rest:
                looked = ops.monotonic()
                todo = yield from missing(ops, rest, namespace)
                counts = yield from attempts(ops, todo)
                done, rest = set(exhausted(counts, bound)), []
                for at, rid in enumerate(todo):
                    if ops.monotonic() - looked > LOOK_AGAIN:
                        rest = todo[at:]
                        break
                    if rid in done:
                        continue
                    state, busy = yield from _take(ops, rid, namespace, span, worker, counts.get(rid, 0), bound)
                    if state is not None:
                        yield Batch([state])
                        pause = FIRST_LOOK
                    elif busy:
                        held.append(rid)
        if not wait or not held:
            return
        # Their holders may store them any moment, or die: look again soon, then less often,
        # and no later than the first of their claims runs out.
        now = yield from ops.server_now()
        earliest = yield from _earliest(ops, held[:BATCH], now)
        yield Wait(min(pause, max(0.0, (earliest - now).total_seconds()) + 0.01))
        pause = min(pause * 2, POLL)
        pending = held


def renew(ops: Operations, state: ClaimState, lease: object | None) -> Operation[bool]:
    """Extend a claim by ``lease`` (its own when None).

    False once it was lost (taken by another worker after it ran out) or the result is stored.
    """
    span = state.lease if lease is None else check_lease(lease)
    now = yield from ops.server_now()
    expires = now + span
    answer = yield from ask(
        Update(
            _collection(ops), {"_id": state.key, "owner": state.owner, **UNFINISHED}, {"$set": {"expires_at": expires}}
        )
    )
    if isinstance(answer, NoMatch) or (yield from ops.exists(state.result_id, state.namespace)):
        return False
    state.expires_at, state.lease = expires, span
    return True


def release(ops: Operations, state: ClaimState) -> Operation[None]:
    """Let a claim go (a claim another worker took meanwhile is left alone).

    It stays FINISHED_KEPT, marked finished: no reader counts it as held, and a taker's upsert
    learns of it in the same command and looks at the result and the failures before claiming.
    """
    mine = {"_id": state.key, "owner": state.owner}
    until = (yield from ops.server_now()) + FINISHED_KEPT
    yield from ask(Update(_collection(ops), mine, {"$set": {FINISHED: True, "expires_at": until}}))


def finish(ops: Operations, state: ClaimState, error: BaseException | None) -> Operation[None]:
    """The end of a ``with claim:`` block: a failure recorded (an ``Exception``, not an interrupt), the claim let go."""
    if isinstance(error, Exception):
        yield from record(ops, state.result_id, state.namespace, state.owner, error, (yield from ops.server_now()))
    elif error is None and state.failed:
        yield from forget(ops, state.result_id)
    yield from release(ops, state)


def live_claims(ops: Operations, prefix: ResultId | None) -> Operation[list[dict[str, Any]]]:
    """The claims whose lease has not run out, under ``prefix``, by id; each with ``expires_in`` (seconds)."""
    now = yield from ops.server_now()
    p = canonical_prefix(prefix)
    collection = _collection(ops)
    found = [d for d in (yield from ask(Find(collection, {}))) if FINISHED not in d]
    ended = {"expires_at": {"$lte": now}, "unreadable": {"$exists": False}}
    if any(isinstance(d.get("expires_at"), datetime) and _aware(d["expires_at"]) <= now for d in found):
        # Workers that ended without letting go: their claims go now (a reader without the
        # right to write leaves them to the next taker).
        with contextlib.suppress(AccessDeniedError, StoreWriteError):
            yield from ask(Delete(collection, ended, many=True))
    found = [d for d in found if isinstance(d.get("expires_at"), datetime) and _aware(d["expires_at"]) > now]
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
    unreadable = yield from ask(Find(collection, {"unreadable": {"$exists": True}}, {"_id": 1, "unreadable": 1}))
    ended = {"expires_at": {"$lte": now}, "unreadable": {"$exists": False}}
    expired = yield from ask(Find(collection, {**ended, **UNFINISHED}, {"_id": 1}))
    lines = []
    if unreadable:
        what = f"{len(unreadable)} unreadable claim file(s) (cut short by a crash)"
        if fix:
            yield from ask(Delete(collection, {"unreadable": {"$exists": True}}, many=True))
            lines.append(f"  fixed: removed {what}")
        else:
            names = ", ".join(str(d["unreadable"]) for d in unreadable[:5])
            lines.append(f"  problem: {what}, each holding its id for a day: {names}; run `mongo-results doctor --fix`")
    if expired:
        what = f"{len(expired)} expired claim(s) of workers that ended without letting go"
        if fix:
            yield from ask(Delete(collection, ended, many=True))  # finished marks that have served too
            lines.append(f"  fixed: removed {what}")
        else:
            lines.append(f"  note: {what} (the next taker replaces each; --fix removes them)")
    if lines:
        lines.insert(0, f"{collection}: the claims of sweeps")
    return lines
