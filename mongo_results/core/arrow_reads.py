"""Arrow tables of results: reading them on any store.

On a server the store decodes pages with PyMongoArrow; the core then keeps only the rows it
can prove equal to what ``get`` would return, and reads every other row through the model,
as the file and embedded stores read them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from ..errors import InvalidArgumentError
from .arrow_columns import (
    JSON_TEXT,
    Column,
    Table,
    arrow_schema,
    check_id_column,
    columns_of,
    extra_columns,
    from_models,
    pyarrow,
    value_at,
)
from .commands import BY_ID, CountDocuments, Find, FindArrow, Operation, Undecodable, ask
from .encoding import EXACT_TIMES
from .filters import page_after, scoped, translate
from .ids import ResultId
from .operations import Operations
from .reads import check_batch_size, each_batch, load

__all__ = ["JSON_TEXT", "arrow_table", "check_batch_size", "columns_of", "from_models", "pyarrow"]

BY_IDS = 10_000  # ids per $in query for the rows a page could not prove
ARROW_PAGE = 20_000  # rows per PyMongoArrow page: the progress bar moves, memory holds pages of Arrow only


def stored_schema(table: Table) -> Any:
    """What the store decodes: the envelope's proof fields and ``data`` as the fast columns are stored."""
    pa = pyarrow("to_arrow")
    tree: dict[str, Any] = {}
    for c in table.columns:
        node = tree
        for attr in c.attrs[:-1]:
            node = node.setdefault(attr, {})
        node[c.attrs[-1]] = c.stored

    def struct(node: dict[str, Any]) -> Any:
        return pa.struct([(k, struct(v) if isinstance(v, dict) else v) for k, v in node.items()])

    return pa.schema(
        [
            ("_id", pa.string()),
            ("model_type", pa.string()),
            ("gridfs", pa.struct([("fields", pa.list_(pa.string()))])),
            ("data", struct(tree)),
        ]
    )


_CONVERTED = {"long", "double", "bool", "date"}  # PyMongoArrow converts any number, bool or date into these columns


def proof(table: Table) -> dict[str, Any]:
    """The filter for what PyMongoArrow cannot tell apart or would convert: each value of the BSON type written for it.

    PyMongoArrow reads a missing field as null, and converts a number or bool of another type
    (a double into an int64 column, a bool into an int); ``get`` would use a default, or
    validate (or refuse) the value. A list's items are proven one level deep. A datetime a
    date does not hold (its text in ``exact_times``) is read through the model.
    """
    out: dict[str, Any] = {}
    if any(c.check == "datetime" for c in table.columns):
        out[EXACT_TIMES] = {"$exists": False}
    for c in table.columns:
        # Text, and a missing value where the field cannot be null, PyMongoArrow refuses or
        # gives as null (the page checks those): only these need a condition, each one costs.
        if not ("null" in c.bson or _CONVERTED & {*c.bson, *c.items_bson}):
            continue
        condition: dict[str, Any] = {"$type": list(c.bson)}
        if c.items_bson:
            condition["$not"] = {"$elemMatch": {"$not": {"$type": list(c.items_bson)}}}
        out["data." + ".".join(c.attrs)] = condition
    return out


def _path(arrays: Any, attrs: Iterable[str]) -> Any:
    pc = pyarrow("to_arrow").compute
    out = arrays
    for attr in attrs:
        out = pc.struct_field(out, attr)
    return out


def decode_page(table: Table, raw: Any) -> tuple[Any, list[str]]:
    """The rows of a decoded page that equal what ``get`` gives, and the ids of the others.

    A row is left to the model when its model type is another, its fields are in GridFS, a
    field that cannot be null is null (missing, so ``get`` would use a default or fail), an
    enum value is not a member, a list holds a null its items cannot be, or its text is
    not the ISO form of its date.
    """
    pa = pyarrow("to_arrow")
    pc = pa.compute
    raw = raw.combine_chunks()
    ids = raw.column("_id")
    n = raw.num_rows
    bad = pc.or_kleene(pc.invert(pc.fill_null(pc.equal(raw.column("model_type"), table.model.__name__), False)),
                       pc.is_valid(pc.struct_field(raw.column("gridfs"), "fields")))  # fmt: skip
    data = raw.column("data")
    values = []
    for c in table.columns:
        column = _path(data, c.attrs)
        if not c.nullable:
            bad = pc.or_(bad, pc.is_null(column))
        if c.check == "members":
            bad = pc.or_(bad, pc.invert(pc.fill_null(pc.is_in(column, pa.array(c.members, c.stored)), True)))
        elif c.check == "datetime":
            column = pc.cast(column, c.arrow)
        elif c.check == "date":
            column, failed = _parse(pa, column, c)
            bad = pc.or_(bad, failed)
        elif pa.types.is_list(c.arrow) and not c.items_nullable:
            bad = pc.or_(bad, pc.fill_null(pc.greater(pc.list_value_length(column), _count(pa, column)), False))
        values.append(column)
    keep = pc.invert(bad)
    out = pa.Table.from_arrays([ids, *values], schema=arrow_schema(table))
    left = pc.filter(ids, bad).to_pylist() if n and pc.any(bad).as_py() else []
    return (out.filter(keep) if left else out), left


def _count(pa: Any, lists: Any) -> Any:
    """Each list's count of non-null items."""
    pc = pa.compute
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists)
    counts = pa.table({"p": parents, "v": pc.is_valid(flat).cast(pa.int64())}).group_by("p").aggregate([("v", "sum")])
    out = [0] * len(lists)
    for p, v in zip(counts.column("p").to_pylist(), counts.column("v_sum").to_pylist(), strict=True):
        out[p] = v
    return pa.array(out, pa.int32())


# The form pydantic writes (and reads back); Arrow's parser accepts more.
_DAY = r"^\d{4}-\d{2}-\d{2}$"


def _parse(pa: Any, text: Any, c: Column) -> tuple[Any, Any]:
    """ISO text as dates; a row whose text is not in the form the library writes is left to the model."""
    pc = pa.compute
    form = _DAY
    failed = pc.invert(pc.fill_null(pc.match_substring_regex(text, form), True))
    if pc.any(failed).as_py():
        text = pc.if_else(failed, pa.scalar(None, pa.string()), text)
    try:
        return pc.cast(text, c.arrow), failed
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    parsed, failed_one = [], []
    for value in text.to_pylist():
        try:
            parsed.append(None if value is None else pc.cast(pa.array([value]), c.arrow)[0].as_py())
            failed_one.append(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            parsed.append(None)
            failed_one.append(True)
    return pa.array(parsed, c.arrow), pc.or_(failed, pa.array(failed_one, pa.bool_()))


# -- The read.


@dataclass(frozen=True, slots=True)
class Rows:
    """Which results a table is read from, and how: every reader of tables takes one.

    The results under ``prefix`` (None: all) of ``model_class`` (None: every stored type),
    in ``namespace`` (None: every one), matching ``where``; ``batch_size`` a page, and
    ``progress(done, total)`` after each page.
    """

    prefix: ResultId | None
    model_class: type[BaseModel] | None
    namespace: str | None
    where: Mapping[str, Any] | None
    batch_size: int
    progress: Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class _Read:
    """A read under way: ``Rows`` with the filter translated for the engine, and ``advance(n)`` per page."""

    ops: Operations
    prefix: ResultId | None
    namespace: str | None
    where: dict[str, Any]
    batch_size: int
    advance: Callable[[int], None]

    def documents(self) -> Operation[None]:
        """The pages of stored documents read, streamed as ``Operations.iter_documents`` streams them."""
        return self.ops.iter_documents(self.prefix, self.namespace, self.batch_size, where=self.where)


def arrow_table(
    ops: Operations,
    rows: Rows,
    id_column: str = "id",
) -> Operation[tuple[Any, list[type[BaseModel]]]]:
    """The results as an Arrow table (``id_column``, then the model's columns), and the model classes it holds."""
    prefix, model_class, namespace, where = rows.prefix, rows.model_class, rows.namespace, rows.where
    batch_size, progress = rows.batch_size, rows.progress
    pa = pyarrow("to_arrow")
    check_batch_size(batch_size)
    table = None
    if model_class is not None:
        table = columns_of(model_class)
        table.id = id_column
        check_id_column(id_column, (c.name for c in table.columns), model_class.__name__)
    engine = yield from ops.learn_engine()
    translated = translate(where or {}, model_class, engine)
    collections = sorted((yield from ops.collections(namespace)))
    total = 0
    if getattr(progress, "active", True):
        for collection in collections:
            total += yield from ask(CountDocuments(collection, scoped(prefix, translated)))
    done = [0]

    def advance(n: int) -> None:
        done[0] += n
        progress(done[0], total)

    read = _Read(ops, prefix, namespace, translated, batch_size, advance)
    if model_class is None or table is None:
        return (yield from _all_types(read, id_column))
    # The proof of a list's items needs $not inside $elemMatch; without it such a table is read through the model.
    lists = any(c.items_bson for c in table.columns)
    if not table.fast or not engine.arrow_decoder or (lists and not engine.elem_match_not):
        return (yield from _through_models(read, table)), [model_class]
    parts = []
    for collection in collections:
        parts.append((yield from _decoded(read, table, collection)))
    if not parts:
        return arrow_schema(table).empty_table(), [model_class]
    out = pa.concat_tables(parts)
    if len(parts) > 1:
        out = out.take(pa.compute.sort_indices(out, [(id_column, "ascending")]))  # stable: namespaces in name order
    return out, [model_class]


def _through_models(read: _Read, table: Table) -> Operation[Any]:
    pa = pyarrow("to_arrow")
    parts = []
    # Extra fields' columns depend on every result, so such a table is built once, at the end.
    ids: list[str] = []
    models: list[BaseModel] = []

    def take(documents: list[dict[str, Any]]) -> Operation[list[Any]]:
        page = [load(d, table.model, read.namespace, None, read.ops.models) for d in documents]
        if table.extras:
            ids.extend(d["_id"] for d in documents)
            models.extend(page)  # type: ignore[arg-type]
        else:
            parts.append(from_models(table, [d["_id"] for d in documents], page))  # type: ignore[arg-type]
        read.advance(len(documents))
        return []
        yield  # sends nothing

    yield from each_batch(read.documents(), take)
    if table.extras:
        return from_models(table, ids, models)
    return pa.concat_tables(parts) if parts else arrow_schema(table).empty_table()


def _all_types(read: _Read, id_column: str) -> Operation[tuple[Any, list[type[BaseModel]]]]:
    """Every stored model type: their columns in order of first appearance, each absent one null."""
    pa = pyarrow("to_arrow")
    ids: list[str] = []
    models: list[BaseModel] = []

    def take(documents: list[dict[str, Any]]) -> Operation[list[Any]]:
        for doc in documents:
            model = load(doc, None, read.namespace, None, read.ops.models)
            assert model is not None  # no skipped list: a result that does not load raises
            ids.append(doc["_id"])
            models.append(model)
        read.advance(len(documents))
        return []
        yield  # sends nothing

    yield from each_batch(read.documents(), take)
    classes = list(dict.fromkeys(type(m) for m in models))
    tables = {cls: columns_of(cls) for cls in classes}
    for cls, t in tables.items():
        t.id = id_column
        check_id_column(id_column, (c.name for c in t.columns), cls.__name__)
    if len(classes) == 1:
        return from_models(tables[classes[0]], ids, models), classes
    merged: dict[str, Column] = {}
    for cls in classes:
        for c in tables[cls].columns:
            known = merged.get(c.name)
            if known is not None and known.arrow != c.arrow:
                raise InvalidArgumentError(
                    f"column {c.name!r} is {known.arrow} in one stored model type and {c.arrow} in another: "
                    "pass model_class to read one type"
                )
            merged.setdefault(c.name, c)
    columns = list(merged.values())
    schema = pa.schema(
        [pa.field(id_column, pa.string(), nullable=False)] + [pa.field(c.name, c.arrow) for c in columns]
    )
    arrays = [pa.array(ids, pa.string())]
    by_class = {cls: {c.name: c for c in tables[cls].columns} for cls in classes}
    for c in columns:
        values = []
        for m in models:
            own = by_class[type(m)].get(c.name)
            v = None if own is None else value_at(m, own.attrs)
            values.append(v if v is None or own is None or own.convert is None else own.convert(v))
        arrays.append(pa.array(values, c.arrow))
    for column, array in extra_columns(models, set(merged), id_column):
        schema = schema.append(column)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=schema), classes


def _decoded(read: _Read, table: Table, collection: str) -> Operation[Any]:
    """One collection by PyMongoArrow pages, rows it cannot prove read through the model.

    Each page holds the proven rows of an id range; the rest of that range (whatever the page
    did not hold, as it is when read) is read through the model at once. So every id comes once,
    from one read or the other, even while writers change rows between the two.
    """
    pa = pyarrow("to_arrow")
    where = read.where
    namespace = collection[len(read.ops.prefix) :]
    shape = stored_schema(table)
    proven = proof(table)
    # $and, not a merged dict: the proof's condition on a field must not replace the caller's.
    query = scoped(read.prefix, {"$and": [where, proven]} if where and proven else (where or proven))
    size = max(read.batch_size, ARROW_PAGE)
    parts: list[Any] = []
    others: list[Any] = []
    left: list[str] = []
    after: str | None = None
    while True:
        page = query if after is None else page_after(query, after)
        raw = yield from ask(FindArrow(collection, page, shape, size))
        if isinstance(raw, Undecodable):  # a value of another type: this page goes through the model
            docs = yield from ask(Find(collection, page, {"_id": 1}, BY_ID, size))
            held = [d["_id"] for d in docs]
            left.extend(held)
        else:
            held = raw.column("_id").to_pylist()
            rows, bad = decode_page(table, raw)
            left.extend(bad)
            if rows.num_rows:
                parts.append(rows)
        count = len(held)
        read.advance(count)
        if proven:  # the rest of this page's range, as it is now: the rows the proof passed over
            span: dict[str, Any] = {"$nin": held} if held else {}
            if after is not None:
                span["$gt"] = after
            if count == size:
                span["$lte"] = held[-1]
            rest = {"_id": span} if span else {}
            others.append((yield from _loaded(read, table, namespace, rest)))
            read.advance(others[-1].num_rows)  # rows of the page's range that it did not hold
        if count < size:
            break
        after = held[-1]
    for start in range(0, len(left), BY_IDS):
        which = {"_id": {"$in": left[start : start + BY_IDS]}}
        others.append((yield from _loaded(read, table, namespace, which)))
    others = [t for t in others if t.num_rows]
    out = pa.concat_tables(parts + others) if parts or others else arrow_schema(table).empty_table()
    if others:
        out = out.take(pa.compute.sort_indices(out, [(table.id, "ascending")]))
    return out


def _loaded(read: _Read, table: Table, namespace: str, which: dict[str, Any]) -> Operation[Any]:
    """The documents ``which`` picks in ``namespace``, read through the model (GridFS fields filled)."""
    where = read.where
    query = {"$and": [where, which]} if where and which else (where or which)
    return (yield from _through_models(replace(read, namespace=namespace, where=query, advance=_uncounted), table))


def _uncounted(n: int) -> None:
    """Progress is counted by ``_decoded``, which knows which rows its pages held already."""
