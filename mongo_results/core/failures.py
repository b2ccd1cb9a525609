"""Sweeps' failed cells: one document per cell in ``<prefix>_failures`` (a file in the file store).

A ``with claim:`` block that raises records the failure there, keyed by the result id, and
counts the attempts across every worker. ``claim`` and ``claim_each`` pass over a cell that
has failed ``max_attempts`` times, so a sweep's loop ends when every cell is stored or has
failed for good. A later attempt that succeeds removes the cell's record.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from ..errors import InvalidArgumentError
from .commands import Delete, DuplicateKey, Find, Upsert, ask
from .filters import prefix_filter
from .ids import ResultId
from .names import FAILURES
from .operations import Operation, Operations

__all__ = ["FIELDS", "attempts", "check_max_attempts", "failures", "forget", "record", "reset", "trace"]

FIELDS = ("result_id", "namespace", "error", "message", "traceback", "owner", "attempts", "failed_at")
_TRACE_LINES = 12  # the traceback's last lines kept: where it was raised, and what called it
_MESSAGE = 2000  # characters of the message kept


def collection(ops: Operations) -> str:
    return ops.prefix + FAILURES


def check_max_attempts(max_attempts: object) -> int | None:
    """``max_attempts``: an int of at least 1, or None for no bound."""
    if max_attempts is None:
        return None
    if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
        raise InvalidArgumentError(f"max_attempts is an int of at least 1 (or None), not {max_attempts!r}")
    return max_attempts


def trace(error: BaseException) -> str:
    """The last lines of an exception's traceback, as Python prints them."""
    lines = "".join(traceback.format_exception(error)).splitlines()
    return "\n".join(lines[-_TRACE_LINES:])


def attempts(ops: Operations, result_ids: list[str]) -> Operation[dict[str, int]]:
    """How many times each of these cells has failed (cells that never failed are left out)."""
    if not result_ids:
        return {}
    found = yield from ask(Find(collection(ops), {"_id": {"$in": result_ids}}, {"_id": 1, "attempts": 1}))
    return {d["_id"]: int(d.get("attempts") or 0) for d in found}


def record(
    ops: Operations, result_id: str, namespace: str | None, owner: str, error: BaseException, now: datetime
) -> Operation[None]:
    """Count one more failed attempt at a cell, with what was raised."""
    fields = {
        "result_id": result_id,
        "namespace": namespace,
        "error": f"{type(error).__module__}.{type(error).__qualname__}".removeprefix("builtins."),
        "message": str(error)[:_MESSAGE],
        "traceback": trace(error),
        "owner": owner,
        "failed_at": now,
    }
    update = {"$set": fields, "$inc": {"attempts": 1}}
    for _ in range(2):  # two workers recording the same cell's first failure at once: one inserts
        if not isinstance((yield from ask(Upsert(collection(ops), {"_id": result_id}, update))), DuplicateKey):
            return


def forget(ops: Operations, result_id: str) -> Operation[None]:
    """A cell computed after it failed: its record goes."""
    yield from ask(Delete(collection(ops), {"_id": result_id}, many=False))


def failures(ops: Operations, prefix: ResultId | None) -> Operation[list[dict[str, Any]]]:
    """The failed cells under ``prefix``, by id."""
    found = yield from ask(Find(collection(ops), prefix_filter(prefix)))
    out = []
    for doc in sorted(found, key=lambda d: str(d["_id"])):
        row = {k: doc.get(k) for k in FIELDS}
        row["result_id"] = doc["_id"]
        at = row["failed_at"]
        if isinstance(at, datetime):
            row["failed_at"] = at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at
        out.append(row)
    return out


def reset(ops: Operations, prefix: ResultId | None) -> Operation[int]:
    """Forget the failures under ``prefix``; how many were forgotten."""
    return int((yield from ask(Delete(collection(ops), prefix_filter(prefix), many=True))))


def exhausted(counts: dict[str, int], max_attempts: int | None) -> Iterable[str]:
    """The cells no worker may try again."""
    return () if max_attempts is None else (rid for rid, n in counts.items() if n >= max_attempts)
