"""``to_arrow``, ``to_polars`` and ``to_dataframe``: results as one table (pyarrow, polars and pandas are extras)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from ..errors import MissingExtraError
from .arrow import JSON_TEXT, arrow_table, columns_of
from .ids import ResultId
from .operations import Operation, Operations

__all__ = ["frame", "polars_frame", "table"]


def table(
    ops: Operations,
    prefix: ResultId | None,
    model_class: type[BaseModel] | None,
    namespace: str | None,
    where: Mapping[str, Any] | None,
    batch_size: int,
    progress: Callable[[int, int], None],
) -> Operation[Any]:
    """The results as a ``pyarrow.Table``: ``id``, then the model's fields (nested models' dotted)."""
    arrow, _ = yield from arrow_table(ops, prefix, model_class, namespace, where, batch_size, progress)
    return arrow


def polars_frame(
    ops: Operations,
    prefix: ResultId | None,
    model_class: type[BaseModel] | None,
    namespace: str | None,
    where: Mapping[str, Any] | None,
    batch_size: int,
    progress: Callable[[int, int], None],
) -> Operation[Any]:
    """The results as a polars DataFrame, from the Arrow table (no copy where polars can share it)."""
    try:
        import polars
    except ImportError as exc:
        raise MissingExtraError('to_polars needs polars: pip install "mongo-results[polars]"') from exc
    arrow, _ = yield from arrow_table(ops, prefix, model_class, namespace, where, batch_size, progress)
    return polars.from_arrow(arrow)


def frame(
    ops: Operations,
    prefix: ResultId | None,
    model_class: type[BaseModel] | None,
    namespace: str | None,
    where: Mapping[str, Any] | None,
    batch_size: int,
    progress: Callable[[int, int], None],
) -> Operation[Any]:
    """The results as a pandas DataFrame indexed by id, from the Arrow table.

    Columns held as text in Arrow for want of an exact type (``dict``, ``set``, ``timedelta``,
    ``UUID``...) come back as the Python values they stand for, and enums as their members,
    as ``model_dump`` gives them.
    """
    try:
        import pandas
    except ImportError as exc:
        raise MissingExtraError('to_dataframe needs pandas: pip install "mongo-results[dataframe]"') from exc
    arrow, classes = yield from arrow_table(ops, prefix, model_class, namespace, where, batch_size, progress)
    restore = _restorers(arrow, classes)
    out = arrow.drop_columns(["id"]).to_pandas()
    out.index = pandas.Index(arrow.column("id").to_pylist(), name="id", dtype=object)
    for name, back in restore.items():
        out[name] = pandas.Series([None if v is None else back(v) for v in out[name]], index=out.index, dtype=object)
    return out


def _restorers(arrow: Any, classes: list[type[BaseModel]]) -> dict[str, Callable[[Any], Any]]:
    """The stand-in columns of the table's model classes, and how to read each back."""
    out: dict[str, Callable[[Any], Any]] = {}
    for f in arrow.schema:
        if f.metadata == JSON_TEXT:
            out[f.name] = json.loads
    for cls in classes:
        for c in columns_of(cls).columns:
            if c.restore is not None and c.name in arrow.column_names:
                out.setdefault(c.name, c.restore)
    return out
