"""``to_dataframe``: results as a pandas DataFrame, read page by page (pandas is an optional extra)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from ..errors import MissingExtraError
from .commands import CountDocuments
from .ids import ResultId
from .operations import Operation, Operations
from .queries import scoped, translate
from .reads import each_batch, load

__all__ = ["frame"]


def frame(
    ops: Operations,
    prefix: ResultId | None,
    model_class: type[BaseModel] | None,
    namespace: str | None,
    where: Mapping[str, Any] | None,
    batch_size: int,
    progress: Callable[[int, int], None],
) -> Operation[Any]:
    """The results as a DataFrame: the result id as index, the model's fields as columns (nested models' dotted).

    ``progress(done, total)`` is called after each page.
    """
    try:
        import pandas
    except ImportError as exc:
        raise MissingExtraError('to_dataframe needs pandas: pip install "mongo-results[dataframe]"') from exc
    engine = yield from ops.learn_engine()
    translated = translate(where or {}, model_class, engine)
    total = 0
    for collection in (yield from ops.collections(namespace)):
        total += yield CountDocuments(collection, scoped(prefix, translated))
    ids: list[str] = []
    rows: list[dict[str, Any]] = []

    def take(documents: list[dict[str, Any]]) -> Operation[list[Any]]:
        for doc in documents:
            model = load(doc, model_class, namespace, None, ops.models)
            assert model is not None  # no skipped list: a result that does not load raises
            ids.append(doc["_id"])
            rows.append(_row(model, model.model_dump(mode="python"), "", {}))
        progress(len(ids), total)
        return []
        yield  # sends nothing

    yield from each_batch(ops.iter_documents(prefix, namespace, batch_size, where=translated), take)
    # One construction for the whole read: the rows are plain dicts, flattened already.
    return pandas.DataFrame(rows, index=pandas.Index(ids, name="id", dtype=object))


def _row(model: BaseModel, dumped: dict[str, Any], prefix: str, row: dict[str, Any]) -> dict[str, Any]:
    """A model's dump as one row.

    Nested models' fields become dotted columns, anything else (a dict field included) one column.

    Flattening dicts too (as ``pandas.json_normalize`` does) would put the key ``"a.b"`` and
    the key ``"b"`` of ``"a"`` in one column, and one value would be lost. A name with a dot
    is %-escaped, so no two fields share a column either. Nested models come after the plain
    fields, in the order ``json_normalize`` gave.
    """
    nested = []
    values = model.__dict__
    for key, value in dumped.items():
        inner = values.get(key)
        if isinstance(inner, BaseModel) and isinstance(value, dict):
            nested.append((key, inner, value))
        else:
            row[prefix + _column(key)] = value
    for key, inner, value in nested:
        _row(inner, value, f"{prefix}{_column(key)}.", row)
    return row


def _column(name: str) -> str:
    return name.replace("%", "%25").replace(".", "%2E") if "." in name or "%" in name else name
