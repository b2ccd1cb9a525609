"""Upgrading stored results in place after a model changed: idempotent, safe to interrupt and run again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..encoding import decode_data, encode_model
from ..errors import WrongTypeError
from ..ids import ResultId
from .commands import NoMatch, Update
from .engine import check_engine
from .large import discard, file_of, file_state, put, spill
from .loading import UNREADABLE, load_model
from .operations import Operation, Operations
from .pages import each_batch

__all__ = ["Upgraded", "upgrade"]


@dataclass(frozen=True, slots=True)
class Upgraded:
    """What an upgrade did: results rewritten, results that already loaded, and results changed meanwhile."""

    upgraded: int
    current: int
    changed_meanwhile: int


def upgrade(
    ops: Operations,
    prefix: ResultId | None,
    model_class: type[BaseModel],
    convert: Callable[[dict[str, Any]], BaseModel],
    namespace: str | None,
    batch_size: int,
    *,
    secrets: bool,
) -> Operation[Upgraded]:
    """Rewrite each result under ``prefix`` that does not load into ``model_class`` as ``convert(old data)``.

    A result that loads is left alone, so a second run does nothing. Each rewrite is one
    update filtered on the digest the result had when read: a result written or deleted
    meanwhile is not touched (counted in ``changed_meanwhile``; run again to take it).
    """
    engine = yield from ops.learn_engine()
    counts = {"upgraded": 0, "current": 0, "changed": 0}

    def rewrite(documents: list[dict[str, Any]]) -> Operation[list[Any]]:
        for doc in documents:
            try:
                load_model(doc, doc["_id"], model_class, namespace)
                counts["current"] += 1
                continue
            except UNREADABLE:
                pass
            new = convert(decode_data(doc["data"]))
            if not isinstance(new, model_class):
                kind = type(new).__name__
                raise WrongTypeError(f"convert returned a {kind} for {doc['_id']!r}, not a {model_class.__name__}")
            encoded = encode_model(new, store_secrets=secrets, decimal128=engine.decimal128)
            check_engine(doc["_id"], encoded, engine)
            now = ops.clock()
            fresh = {k: v for k, v in doc.items() if k != "gridfs"}
            fresh.update(model_type=encoded.model_type, data=encoded.data, digest=encoded.digest, updated_at=now)
            spilled = spill(doc["_id"], fresh, encoded, engine.max_document)
            if spilled is not None:
                yield put(ops.prefix, doc["_id"], str(doc.get("namespace")), encoded.digest, spilled)
            collection = ops.prefix + str(doc.get("namespace"))
            # Filtered on what was read: a result rewritten meanwhile (its digest or its file) stays.
            read = {"_id": doc["_id"], "digest": doc["digest"], **file_state(doc)}
            if engine.faithful_set:
                body = {k: fresh[k] for k in ("model_type", "data", "digest", "updated_at", "gridfs") if k in fresh}
                unset = {"$unset": {"gridfs": ""}} if file_of(doc) is not None and spilled is None else {}
                answer = yield Update(collection, read, {"$set": body, **unset})
            else:
                answer = yield Update(collection, read, fresh, replace=True)
            if isinstance(answer, NoMatch):
                yield from discard(ops.prefix, spilled.file_id if spilled else None)
            else:
                yield from discard(ops.prefix, file_of(doc))
            counts["changed" if isinstance(answer, NoMatch) else "upgraded"] += 1
        return []

    yield from each_batch(ops.iter_documents(prefix, namespace, batch_size), rewrite)
    return Upgraded(counts["upgraded"], counts["current"], counts["changed"])
