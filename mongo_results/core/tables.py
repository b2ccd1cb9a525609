"""``to_arrow``, ``to_polars`` and ``to_dataframe``: results as one table (pyarrow, polars and pandas are extras)."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel

from ..errors import InvalidArgumentError, LossyValueError, MissingExtraError
from .arrow_reads import Rows, arrow_table, columns_of, pyarrow
from .commands import CountDocuments, ask
from .filters import scoped, translate
from .operations import Operation, Operations
from .reads import check_batch_size, each_batch, load

__all__ = ["IdFields", "Rows", "check_id_fields", "frame", "polars_frame", "table"]

IdFields = bool | Sequence[str]  # True: every key=value segment of the ids; or the keys to take
_INT = re.compile(r"[+-]?[0-9]+")
_INT64 = (-(2**63), 2**63 - 1)

_INDEX = "%id"  # the id column while a DataFrame is built: no field's column is named so (a % is escaped)


def table(ops: Operations, rows: Rows, id_column: str = "id", id_fields: IdFields = False) -> Operation[Any]:
    """The results as a ``pyarrow.Table``: ``id_column``, the id fields, then the fields (nested models' dotted)."""
    fields = check_id_fields(id_fields)
    arrow, _ = yield from arrow_table(ops, rows, id_column)
    return _with_id_fields(arrow, id_column, fields)


def polars_frame(ops: Operations, rows: Rows, id_column: str = "id", id_fields: IdFields = False) -> Operation[Any]:
    """The results as a polars DataFrame, from the Arrow table (no copy where polars can share it)."""
    try:
        import polars
    except ImportError as exc:
        raise MissingExtraError.needing("to_polars", "polars", "polars") from exc
    return polars.from_arrow((yield from table(ops, rows, id_column, id_fields)))


def frame(ops: Operations, rows: Rows, id_fields: IdFields = False) -> Operation[Any]:
    """The results as a pandas DataFrame indexed by id, each row as ``model_dump`` gives it.

    A class whose every field has an exact Arrow type (``columns_of(cls).fast``), and no
    Optional nested model, is read as an Arrow table and converted, its enums back to members
    and lists back to lists; any other, or every stored type, is read through the models.
    Which way depends on the class only, so every store gives the same DataFrame.
    """
    try:
        import pandas
    except ImportError as exc:
        raise MissingExtraError.needing("to_dataframe", "pandas", "dataframe") from exc
    check_batch_size(rows.batch_size)
    fields = check_id_fields(id_fields)
    out = yield from _frame(pandas, ops, rows)
    if fields:
        dtypes = {"int": "Int64", "float": "Float64", "bool": "boolean", "str": object}
        for at, (name, values, kind) in enumerate(_id_columns([str(i) for i in out.index], fields, set(out.columns))):
            out.insert(at, name, pandas.Series(values, index=out.index, dtype=dtypes[kind]))
    return out


def _frame(pandas: Any, ops: Operations, rows: Rows) -> Operation[Any]:
    columns, model_class = None, rows.model_class
    if model_class is not None:
        with contextlib.suppress(InvalidArgumentError):  # no fields to make columns of: model_dump still reads it
            columns = columns_of(model_class)
    if model_class is not None and columns is not None and columns.fast and not columns.optional_models:
        try:
            arrow, _ = yield from arrow_table(ops, rows, _INDEX)
        except LossyValueError:
            pass  # an int beyond 64 bits: Arrow cannot hold it, model_dump can
        else:
            return _from_arrow(pandas, model_class, arrow)
    return (yield from _dumped(pandas, ops, rows))


def check_id_fields(id_fields: object) -> tuple[str, ...] | bool:
    """``id_fields``: True, False, or the keys of ``key=value`` segments to take (a list of names)."""
    if isinstance(id_fields, bool):
        return id_fields
    if isinstance(id_fields, (list, tuple)) and all(
        isinstance(n, str) and n and "/" not in n and "=" not in n for n in id_fields
    ):
        if len(set(id_fields)) < len(id_fields):
            raise InvalidArgumentError(f"id_fields names a key twice: {list(id_fields)!r}")
        return tuple(id_fields)
    raise InvalidArgumentError(
        f"id_fields is True, False or a list of the keys of key=value id segments (such as ['lr', 'seed']), "
        f"not {id_fields!r}"
    )


def _id_columns(
    ids: Sequence[str], fields: tuple[str, ...] | bool, taken: set[str]
) -> list[tuple[str, list[Any], str]]:
    """The ``key=value`` segments of the ids as columns: (name, values, kind), typed by their values.

    A column is int64 when every value is an integer within 64 bits, float64 when every value
    is a number, bool when every value is ``true`` or ``false``, and text otherwise; an id
    without the key has null there.
    """
    parsed = [dict(seg.split("=", 1) for seg in rid.split("/") if "=" in seg) for rid in ids]
    names = list(fields) if not isinstance(fields, bool) else list(dict.fromkeys(k for p in parsed for k in p))
    out = []
    for name in names:
        if name in taken:
            raise InvalidArgumentError(
                f"the id field {name!r} is also a column of the results: name the others in id_fields=[...]"
            )
        texts = [p.get(name) for p in parsed]
        out.append((name, *_typed(texts)))
    return out


def _typed(texts: list[str | None]) -> tuple[list[Any], str]:
    present = [t for t in texts if t is not None]
    if present and all(_INT.fullmatch(t) and _INT64[0] <= int(t) <= _INT64[1] for t in present):
        return [None if t is None else int(t) for t in texts], "int"
    if present and all(_number(t) for t in present):
        return [None if t is None else float(t) for t in texts], "float"
    if present and all(t in ("true", "false") for t in present):
        return [None if t is None else t == "true" for t in texts], "bool"
    return texts, "str"


def _number(text: str) -> bool:
    try:
        return math.isfinite(float(text)) and text.strip() == text
    except ValueError:
        return False


def _with_id_fields(arrow: Any, id_column: str, fields: tuple[str, ...] | bool) -> Any:
    if not fields:
        return arrow
    pa = pyarrow("id_fields")
    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
    ids = arrow.column(id_column).to_pylist()
    for at, (name, values, kind) in enumerate(_id_columns(ids, fields, set(arrow.column_names)), start=1):
        arrow = arrow.add_column(at, pa.field(name, types[kind]), pa.array(values, types[kind]))
    return arrow


def _from_arrow(pandas: Any, cls: type[BaseModel], arrow: Any) -> Any:
    pa = pyarrow("to_dataframe")
    out = arrow.drop_columns([_INDEX]).to_pandas()
    out.index = pandas.Index(arrow.column(_INDEX).to_pylist(), name="id", dtype=object)
    for c in columns_of(cls).columns:
        column = arrow.column(c.name)
        if c.restore is None and not pa.types.is_list(c.arrow) and not column.null_count:
            continue
        # A null is None in the values, where to_pandas may give NaN; pandas then infers the
        # column's dtype from them as it did from model_dump's rows.
        values = column.to_pylist()
        if c.restore is not None:
            values = [None if v is None else c.restore(v) for v in values]
        # Members stay members: pandas would make str and int enums plain text and numbers.
        kind = object if any(isinstance(v, Enum) for v in values) else None
        out[c.name] = pandas.Series(values, index=out.index, dtype=kind)
    return out


def _dumped(pandas: Any, ops: Operations, read: Rows) -> Operation[Any]:
    """Rows from ``model_dump``: the reader for any class, and the model's own values."""
    prefix, model_class, namespace, where = read.prefix, read.model_class, read.namespace, read.where
    batch_size, progress = read.batch_size, read.progress
    engine = yield from ops.learn_engine()
    translated = translate(where or {}, model_class, engine)
    total = 0
    if getattr(progress, "active", True):
        for collection in (yield from ops.collections(namespace)):
            total += yield from ask(CountDocuments(collection, scoped(prefix, translated)))
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
    out = pandas.DataFrame(rows, index=pandas.Index(ids, name="id", dtype=object))
    members = {k for row in rows for k, v in row.items() if isinstance(v, Enum)}
    for name in sorted(members):  # kept members: pandas would make str and int enums plain values
        out[name] = pandas.Series([row.get(name) for row in rows], index=out.index, dtype=object)
    return out


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
