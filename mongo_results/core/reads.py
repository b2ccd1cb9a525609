"""Reading: stored documents back into models, keyset pages across namespaces, and BSON's order."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128
from pydantic import BaseModel, ValidationError

from ..errors import (
    AmbiguousResultError,
    CorruptResultError,
    InvalidArgumentError,
    ModelNotRegisteredError,
    ResultNotFoundError,
    SkippedResultsWarning,
)
from .commands import BY_ID, Batch, Find, Note, PartialPage
from .encoding import EXACT_TIMES, exact_times, validate_data
from .filters import page_after
from .names import DEFAULT_NAMESPACE, Models

__all__ = [
    "Pages",
    "UNREADABLE",
    "bson_order",
    "check_batch_size",
    "choose_document",
    "each_batch",
    "in_order",
    "load",
    "load_model",
    "loader",
    "not_found",
    "report_skipped",
    "skipping",
]


def not_found(missing: Sequence[str]) -> ResultNotFoundError:
    """The error for ids a bulk read did not find, naming the first."""
    return ResultNotFoundError(missing[0] if len(missing) == 1 else f"{missing[0]} and {len(missing) - 1} more")


def choose_document(
    result_id: str, found: Sequence[Mapping[str, Any]], model_class: type[BaseModel] | None
) -> Mapping[str, Any]:
    """Pick the one stored document a ``get`` means among those found in each namespace."""
    if not found:
        raise ResultNotFoundError(result_id)
    if len(found) == 1:
        return found[0]
    if model_class is not None:
        same_type = [doc for doc in found if doc.get("model_type") == model_class.__name__]
        if len(same_type) == 1:
            return same_type[0]
    raise AmbiguousResultError(result_id, sorted(str(doc.get("namespace")) for doc in found))


def load_model(
    document: Mapping[str, Any],
    result_id: str,
    model_class: type[BaseModel] | None,
    namespace: str | None,
    models: Models,
) -> BaseModel:
    """Validate a stored envelope into its model class (looked up in ``models`` if not given)."""
    model_type = document.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        if isinstance(document.get("error"), CorruptResultError):
            raise document["error"]  # the store's own account (the file store's: where the JSON breaks)
        where = f" ({document['source']})" if document.get("source") else ""
        raise CorruptResultError(f"Stored data missing model type information: {result_id!r}{where}")
    if model_class is None:
        lookup = namespace if namespace is not None else str(document.get("namespace") or DEFAULT_NAMESPACE)
        model_class = models.class_for(model_type, lookup)
        if model_class is None:
            matches = models.everywhere(model_type)
            if not matches:
                tried = [lookup] if lookup == DEFAULT_NAMESPACE else [lookup, DEFAULT_NAMESPACE]
                raise ModelNotRegisteredError(
                    f"Model type '{model_type}' is not registered in namespace '{lookup}' or any other "
                    f"namespace. Tried namespaces: {', '.join(tried)}"
                )
            model_class = matches[0][1]
    data = document.get("data")
    if not isinstance(data, Mapping) and isinstance(document.get("gridfs"), Mapping):
        fields = ", ".join(map(str, document["gridfs"].get("fields", [])))
        raise CorruptResultError(f"Stored result {result_id!r} lost the GridFS file that holds its fields {fields}")
    if not isinstance(data, Mapping):
        raise CorruptResultError(f"Stored result {result_id!r} has no data document")
    times = exact_times(document.get(EXACT_TIMES))
    return validate_data(model_class, data, result_id, times, encoders=models.encoders)


# What "no longer loads" means: the model changed, the type is not registered, the envelope is broken.
UNREADABLE = (ValidationError, ModelNotRegisteredError, CorruptResultError)


def load(
    document: Mapping[str, Any],
    model_class: type[BaseModel] | None,
    namespace: str | None,
    skipped: list[tuple[str, Exception]] | None,
    models: Models,
) -> BaseModel | None:
    """The model, or None after noting the failure in ``skipped`` (when given: else it raises)."""
    try:
        return load_model(document, document["_id"], model_class, namespace, models)
    except UNREADABLE as exc:
        if skipped is None:
            raise
        skipped.append((document["_id"], exc))
        return None


def skipping(on_error: str, skipped: list[tuple[str, Exception]] | None) -> list[tuple[str, Exception]] | None:
    """Where a read notes the results it leaves out: None to raise instead."""
    if on_error not in ("raise", "skip"):
        raise InvalidArgumentError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    if on_error == "raise":
        return None
    return skipped if skipped is not None else []


def report_skipped(skipped: list[tuple[str, Exception]] | None) -> Generator[Note, Any, None]:
    """One note for a read that left results out, handed to the caller (who warns)."""
    if skipped:
        # A warning rather than a log line: the caller asked to go on, and may want to stop it.
        yield Note(
            f"{len(skipped)} stored result(s) did not load and were skipped (first: {skipped[0][0]!r}: "
            f"{type(skipped[0][1]).__name__}); pass skipped=[] to get them all",
            SkippedResultsWarning,
        )


def loader(
    model_class: type[BaseModel] | None,
    namespace: str | None,
    skipped: list[tuple[str, Exception]] | None,
    models: Models,
) -> Callable[[list[dict[str, Any]]], Generator[Any, Any, list[tuple[str, BaseModel]]]]:
    """A batch handler (see ``each_batch``) that turns documents into ``(id, model)`` pairs."""

    def loaded(documents: list[dict[str, Any]]) -> Generator[Any, Any, list[tuple[str, BaseModel]]]:
        pairs = [(d["_id"], load(d, model_class, namespace, skipped, models)) for d in documents]
        return [(rid, model) for rid, model in pairs if model is not None]
        yield  # sends nothing

    return loaded


# -- Keyset pages of one collection, for reads that merge namespaces in id order.


def in_order(document: Mapping[str, Any]) -> tuple[str, str]:
    """The order of documents: by id, then namespace."""
    return document["_id"], str(document.get("namespace"))


class Pages:
    """One collection's keyset pages for a merged, id-ordered read."""

    def __init__(self, collection: str, query: dict[str, Any], size: int, projection: dict[str, int] | None) -> None:
        self.collection, self.query, self.size, self.projection = collection, query, size, projection
        self.buffer: list[dict[str, Any]] = []
        self.done = False
        self._after: str | None = None

    def next_page(self) -> Find:
        page = self.query if self._after is None else page_after(self.query, self._after)
        return Find(self.collection, page, self.projection, BY_ID, self.size, page=True)

    def take(self, docs: list[dict[str, Any]]) -> None:
        self.buffer, self.done = list(docs), len(docs) < self.size and not isinstance(docs, PartialPage)
        if docs:
            self._after = docs[-1]["_id"]

    def release(self, frontier: str | None) -> list[dict[str, Any]]:
        """The buffered documents up to ``frontier`` (all of them when None)."""
        cut = len(self.buffer) if frontier is None else sum(1 for d in self.buffer if d["_id"] <= frontier)
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out


def each_batch(
    inner: Generator[Any, Any, Any], handle: Callable[[list[Any]], Generator[Any, Any, list[Any]]]
) -> Generator[Any, Any, None]:
    """Run ``inner``, passing its commands through and each batch it streams to ``handle``.

    ``handle`` is itself an operation (it may send commands); what it returns is streamed on.
    """
    reply: Any = None
    while True:
        try:
            step = inner.send(reply)
        except StopIteration:
            return
        if isinstance(step, Batch):
            reply = None
            out = yield from handle(step.items)
            if out:
                yield Batch(out)
        else:
            reply = yield step


# -- MongoDB's order of BSON values, to merge what several namespaces answered in one order.


def bson_order(value: Any) -> tuple[int, Any]:
    """A sort key: MongoDB's type brackets (null, numbers, strings, objects, arrays, ...) then the value.

    An array sorts by its smallest element ascending, as the server does; descending
    sorts by its largest would need the direction, and ties there are settled by id.
    """
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (8, value)
    if isinstance(value, Decimal128):
        value = value.to_decimal()
    if isinstance(value, (int, float, Decimal)):
        return (1, value)  # NaN sorts as the server puts it: first among numbers
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, Mapping):
        return (3, repr(sorted(value.items())))
    if isinstance(value, list):
        return min((bson_order(v) for v in value), default=(4, 0))
    if isinstance(value, bytes):
        return (5, value)
    if isinstance(value, datetime):
        return (9, value)
    return (10, repr(value))


def check_batch_size(batch_size: int) -> None:
    """A page size must be a positive int: checked at the call, before any I/O, on every store."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive int, not {batch_size!r}")
