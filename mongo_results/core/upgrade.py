"""``upgrade``: results rewritten in place after their model changed, each rewrite atomic."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..errors import InvalidArgumentError, UpgradeFailedError, WrongTypeError
from .commands import (
    CountDocuments,
    NoMatch,
    Update,
    ask,
)
from .encoding import EXACT_TIMES, decode_data, encode_model, exact_times
from .filters import scoped
from .ids import ResultId
from .large import discard, file_of, file_state, put, spill
from .operations import Operation, Operations
from .profiles import check_engine
from .reads import UNREADABLE, each_batch, load_model

__all__ = ["Upgraded", "upgrade", "upgraded_types"]


@dataclass(frozen=True, slots=True)
class Upgraded:
    """What ``upgrade`` did: counts of results, by what happened to them.

    Attributes:
        upgraded: Results rewritten.
        current: Results of the model's own type that already loaded, left alone.
        changed_meanwhile: Results written or deleted by someone else between read and rewrite.
        other_types: Results under the prefix stored as other model types, left alone.
    """

    upgraded: int
    current: int
    changed_meanwhile: int
    other_types: int = 0


def upgraded_types(model_class: type[BaseModel], old_types: Iterable[str]) -> tuple[str, ...]:
    """The model types an upgrade may touch: the class's own name and the old names given."""
    if isinstance(old_types, str) or not all(isinstance(t, str) and t for t in old_types):
        raise InvalidArgumentError(f"old_types takes a list of model type names (e.g. ['RunV1']), not {old_types!r}")
    return tuple(sorted({model_class.__name__, *old_types}))


def upgrade(
    ops: Operations,
    prefix: ResultId | None,
    model_class: type[BaseModel],
    convert: Callable[[dict[str, Any]], BaseModel],
    namespace: str | None,
    batch_size: int,
    *,
    secrets: bool | None = None,
    old_types: Iterable[str] = (),
) -> Operation[Upgraded]:
    """Rewrite results that no longer load into ``model_class`` as ``convert(old data)``.

    Those under ``prefix`` stored as ``model_class`` that no longer load, and every result
    stored as one of ``old_types``.

    Results of other model types are left alone and counted. A result that loads is left
    alone, so a second run does nothing. Each rewrite is one update filtered on the digest
    the result had when read: a result written or deleted meanwhile is not touched (counted
    in ``changed_meanwhile``; run again to take it).
    """
    types = upgraded_types(model_class, old_types)
    old = set(types) - {model_class.__name__}
    engine = yield from ops.learn_engine()
    counts = {"upgraded": 0, "current": 0, "changed": 0, "other": 0}
    for collection in (yield from ops.collections(namespace)):
        counts["other"] += yield from ask(
            CountDocuments(collection, scoped(prefix, {"model_type": {"$nin": list(types)}}))
        )

    def rewrite(documents: list[dict[str, Any]]) -> Operation[list[Any]]:
        for doc in documents:
            if doc["model_type"] not in old:
                try:
                    load_model(doc, doc["_id"], model_class, namespace, ops.models)
                    counts["current"] += 1
                    continue
                except UNREADABLE:
                    pass
            new = _converted(convert, doc, model_class, counts)
            encoded = encode_model(
                new,
                store_secrets=ops.store_secrets if secrets is None else secrets,
                decimal128=engine.decimal128,
                encoders=ops.models.encoders,
            )
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
            # The whole document, as read and converted: a $set may keep a value equal to the old one.
            answer = yield from ask(Update(collection, read, fresh, replace=True))
            if isinstance(answer, NoMatch):
                yield from discard(ops.prefix, spilled.file_id if spilled else None)
            else:
                yield from discard(ops.prefix, file_of(doc))
            counts["changed" if isinstance(answer, NoMatch) else "upgraded"] += 1
        return []

    pages = ops.iter_documents(prefix, namespace, batch_size, where={"model_type": {"$in": list(types)}})
    yield from each_batch(pages, rewrite)
    return Upgraded(counts["upgraded"], counts["current"], counts["changed"], counts["other"])


def _converted(
    convert: Callable[[dict[str, Any]], BaseModel],
    doc: dict[str, Any],
    model_class: type[BaseModel],
    counts: dict[str, int],
) -> BaseModel:
    """``convert(old data)``, checked; a failure names the result and what was already rewritten."""
    rid = doc["_id"]
    try:
        new = convert(decode_data(doc["data"], exact_times(doc.get(EXACT_TIMES))))
    except Exception as exc:
        raise UpgradeFailedError(rid, counts["upgraded"], exc) from exc
    if not isinstance(new, model_class):
        kind = type(new).__name__
        raise WrongTypeError(
            f"convert returned a {kind} for {rid!r}, not a {model_class.__name__} "
            f"({counts['upgraded']} result(s) upgraded before it)"
        )
    return new
