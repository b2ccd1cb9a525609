"""Arrow tables of results: the columns a model class gives, and reading them on any store.

The column types come from the model class alone (its pydantic core schema), so every store
builds the same table. On a server the store decodes pages with PyMongoArrow; the core then
keeps only the rows it can prove equal to what ``get`` would return, and reads every other
row through the model, as the file and embedded stores read them all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_json

from ..errors import InvalidArgumentError, LossyValueError, MissingExtraError
from .commands import BY_ID, CountDocuments, Find, FindArrow, Operation, Undecodable
from .encoding import _sort_key
from .ids import ResultId
from .operations import Operations
from .queries import page_after, scoped, translate
from .reads import each_batch, load

__all__ = ["JSON_TEXT", "Column", "arrow_table", "columns_of", "pyarrow"]

BY_IDS = 10_000  # ids per $in query for the rows a page could not prove
ARROW_PAGE = 20_000  # rows per PyMongoArrow page: the progress bar moves, memory holds pages of Arrow only
_INT64 = (-(2**63), 2**63 - 1)
# Keys of a core schema that change nothing about how a value of the declared type validates.
_PLAIN = {"type", "metadata", "ref", "strict", "microseconds_precision", "cls", "members", "sub_type", "expected"}
_NEUTRAL_CONFIG = {"title", "validate_by_alias", "validate_by_name", "loc_by_alias", "from_attributes"}
_BSON = {"int": "long", "float": "double", "bool": "bool", "str": "string"}


def pyarrow(what: str) -> Any:
    """The pyarrow module, or the error naming the extra that brings it."""
    try:
        import pyarrow
    except ImportError as exc:
        raise MissingExtraError(f'{what} needs pyarrow: pip install "mongo-results[arrow]"') from exc
    return pyarrow


@dataclass
class Column:
    """One column: where its value is in a model and in a stored document, and its Arrow type.

    ``fast``: PyMongoArrow may decode the stored value as ``stored`` and the core check it
    (``check``: "" nothing more, "datetime"/"date" parse ISO text, "members" an enum's values).
    ``restore`` turns a stand-in (text for a type Arrow has no exact form of) back into the
    Python value, for DataFrames.
    """

    name: str
    attrs: tuple[str, ...]
    arrow: Any
    nullable: bool
    convert: Callable[[Any], Any] | None = None
    restore: Callable[[Any], Any] | None = None
    fast: bool = False
    stored: Any = None
    bson: tuple[str, ...] = ()
    check: str = ""
    members: tuple[Any, ...] = ()
    items_nullable: bool = True
    standin: bool = False
    items_bson: tuple[str, ...] = ()
    form: str = "any"  # a datetime's text: "naive", "aware" or "any" (an offset or none)


@dataclass
class _Kind:
    """A value's Arrow form, before it is placed in a column."""

    arrow: Any
    nullable: bool = False
    fast: bool = False
    stored: Any = None
    bson: tuple[str, ...] = ()
    check: str = ""
    members: tuple[Any, ...] = ()
    convert: Callable[[Any], Any] | None = None
    items_nullable: bool = True
    items_bson: tuple[str, ...] = ()  # a fast list's items: their stored BSON types, proven by the filter
    standin: str = ""  # "text" or "json": restored through the field's type for DataFrames
    model: Any = None  # a nested model's (class, schema), flattened into dotted columns
    sets: bool = False
    form: str = "any"
    restore: Callable[[Any], Any] | None = None  # an enum's value back to its member, for DataFrames


@dataclass
class Table:
    """The columns of a model class, and whether a server's pages of it can be decoded as stored."""

    cls: type[BaseModel]
    columns: list[Column] = field(default_factory=list)
    fast: bool = True
    extras: bool = False  # extra="allow": the extra fields' columns come from the results themselves
    id: str = "id"  # the name of the id column
    # An Optional nested model: model_dump gives None for it, not its fields (a DataFrame's columns differ).
    optional_models: bool = False


def _column_name(name: str) -> str:
    return name.replace("%", "%25").replace(".", "%2E") if "." in name or "%" in name else name


def _plain(schema: Mapping[str, Any]) -> bool:
    return set(schema) <= _PLAIN


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)  # a naive value in an aware column is read as UTC
    return value


def _int64(value: Any) -> Any:
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        raise LossyValueError(f"the int {value} is beyond 64 bits: Arrow's int64 cannot hold it")
    return value


def _kind(pa: Any, schema: Mapping[str, Any], defs: Mapping[str, Any], seen: frozenset[str]) -> _Kind:
    t = schema.get("type")
    if t == "default":
        return _kind(pa, schema["schema"], defs, seen)
    if t == "nullable":
        inner = _kind(pa, schema["schema"], defs, seen)
        inner.nullable = True
        inner.bson = (*inner.bson, "null") if inner.bson else ()
        return inner
    if t == "definitions":
        return _kind(pa, schema["schema"], {**defs, **{d["ref"]: d for d in schema["definitions"]}}, seen)
    if t == "definition-ref":
        ref = schema["schema_ref"]
        if ref in seen or ref not in defs:
            return _Kind(pa.string(), standin="json")
        return _kind(pa, defs[ref], defs, seen | {ref})
    if t == "model":
        if schema.get("root_model"):  # its value is not fields but one value: JSON text
            return _Kind(pa.string(), standin="json")
        ref = schema.get("ref")
        return _Kind(None, fast=True, model=(schema["cls"], schema, defs, seen | ({ref} if ref else set())))
    if isinstance(t, str) and t.startswith("function-") and "schema" in schema:
        inner = _kind(pa, schema["schema"], defs, seen)
        inner.fast = False
        return inner
    plain = _plain(schema)
    if t in _BSON:
        arrow = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}[t]
        return _Kind(arrow, fast=plain, stored=arrow, bson=(_BSON[t],), convert=_int64 if t == "int" else None)
    if t == "datetime":
        tz = schema.get("tz_constraint")
        naive = tz == "naive"
        arrow = pa.timestamp("us") if naive else pa.timestamp("us", "UTC")
        fast = set(schema) <= _PLAIN | {"tz_constraint"} and tz in (None, "naive", "aware")
        return _Kind(arrow, fast=fast, stored=pa.string(), bson=("string",), check="datetime",
                     convert=None if naive else _utc, form=tz or "any")  # fmt: skip
    if t == "date":
        return _Kind(pa.date32(), fast=plain, stored=pa.string(), bson=("string",), check="date")
    if t == "decimal":
        digits, places = schema.get("max_digits"), schema.get("decimal_places")
        if digits is not None and places is not None and 0 < digits <= 38 and 0 <= places <= digits:
            return _Kind(pa.decimal128(digits, places))
        return _Kind(pa.string(), standin="text")
    if t == "bytes":
        return _Kind(pa.binary())
    if t in ("uuid", "time", "timedelta"):
        return _Kind(pa.string(), standin="text")
    if t in ("enum", "literal"):
        values = tuple(m.value for m in schema["members"]) if t == "enum" else tuple(schema["expected"])
        if values and all(type(v) is str for v in values):
            arrow, bson = pa.string(), ("string",)
        elif values and all(type(v) is int for v in values):
            arrow, bson = pa.int64(), ("long",)
        elif values and all(type(v) is bool for v in values):
            arrow, bson = pa.bool_(), ("bool",)
        else:
            return _Kind(pa.string(), standin="json")
        to_value: Callable[[Any], Any] | None = _enum_value if t == "enum" else None
        restore = schema["cls"] if t == "enum" else None
        return _Kind(arrow, fast=plain, stored=arrow, bson=bson, check="members", members=values, convert=to_value,
                     restore=restore)  # fmt: skip
    if t in ("list", "tuple") and set(schema) <= _PLAIN | {"items_schema", "variadic_item_index"}:
        items = schema["items_schema"]
        if t == "tuple":
            if schema.get("variadic_item_index") != 0 or len(items) != 1:
                return _Kind(pa.string(), standin="json")
            items = items[0]
        item = _kind(pa, items, defs, seen)
        if item.model is not None:
            item = _struct(pa, item)
        if item.standin:
            return _Kind(pa.string(), standin="json")
        # A list of lists is left to the model: the filter can prove its items' type one level deep only.
        fast = item.fast and not item.check and t == "list" and item.bson not in ((), ("array",), ("array", "null"))
        convert = _list_of(item.convert)
        restore = None if item.restore is None else _list_of(item.restore)
        return _Kind(pa.list_(item.arrow), fast=fast, stored=pa.list_(item.stored) if fast else None,
                     bson=("array",), convert=convert, items_nullable=item.nullable, restore=restore,
                     items_bson=item.bson if fast else ())  # fmt: skip
    if t in ("set", "frozenset"):
        return _Kind(pa.string(), standin="json", sets=True)
    return _Kind(pa.string(), standin="json")


def _enum_value(v: Any) -> Any:
    return v.value if isinstance(v, Enum) else v  # use_enum_values: the model holds the value already


def _list_of(convert: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    if convert is None:
        return lambda v: None if v is None else list(v)
    return lambda v: None if v is None else [None if x is None else convert(x) for x in v]


def _struct(pa: Any, kind: _Kind) -> _Kind:
    """A nested model inside a list: one struct, when each of its fields has an exact Arrow type."""
    table = _table(pa, *kind.model)
    if any(c.standin for c in table.columns):
        return _Kind(pa.string(), standin="json")
    fields = [(c.name, c.arrow) for c in table.columns]
    columns = table.columns

    def convert(model: Any) -> Any:
        out = {}
        for c in columns:
            value = _get(model, c.attrs)
            out[c.name] = value if c.convert is None or value is None else c.convert(value)
        return out

    return _Kind(pa.struct(fields), nullable=kind.nullable, convert=convert)


def _get(model: Any, attrs: tuple[str, ...]) -> Any:
    for attr in attrs:
        if model is None:
            return None
        model = getattr(model, attr)
    return model


def _table(
    pa: Any, cls: type[BaseModel], schema: Mapping[str, Any], defs: Mapping[str, Any], seen: frozenset[str]
) -> Table:
    table = Table(cls)
    fields = schema["schema"]
    config = schema.get("config") or {}
    if (
        set(schema) - {"type", "cls", "config", "custom_init", "metadata", "ref", "root_model", "schema"}
        or schema.get("custom_init")
        or schema.get("root_model")
        or fields.get("type") != "model-fields"
        or fields.get("computed_fields")
        or set(config) - _NEUTRAL_CONFIG - {"extra_fields_behavior"}
        or config.get("extra_fields_behavior", "ignore") != "ignore"
    ):
        table.fast = False
    if fields.get("type") != "model-fields":
        raise InvalidArgumentError(f"{cls.__name__} has no fields to make columns of")
    nested = []
    for name, spec in fields["fields"].items():
        kind = _kind(pa, spec["schema"], defs, seen)
        if set(spec) - {"type", "schema", "metadata", "frozen", "serialization_alias"} or name != _column_name(name):
            kind.fast = False
        if name.startswith("$") or "\x00" in name:
            kind.fast = False
        if kind.model is not None:
            nested.append((name, kind))
            continue
        table.columns.append(_leaf_column(name, (name,), kind, cls.model_fields[name].annotation))
        table.fast = table.fast and kind.fast
    # Computed fields are columns too, as model_dump gives them; their rows are never decoded
    # as stored (table.fast is off), since get() recomputes them.
    for spec in fields.get("computed_fields") or ():
        name = spec["property_name"]
        kind = _kind(pa, spec["return_schema"], defs, seen)
        if kind.model is not None:
            nested.append((name, kind))
        else:
            table.columns.append(_leaf_column(name, (name,), kind, cls.model_computed_fields[name].return_type))
    table.extras = config.get("extra_fields_behavior") == "allow"
    for name, kind in nested:
        inner = _table(pa, *kind.model)
        table.fast = table.fast and inner.fast and kind.fast
        table.optional_models = table.optional_models or inner.optional_models or kind.nullable
        for c in inner.columns:
            c.name = f"{_column_name(name)}.{c.name}"
            c.attrs = (name, *c.attrs)
            c.nullable = c.nullable or kind.nullable
            if kind.nullable and c.bson and "null" not in c.bson:
                c.bson = (*c.bson, "null")
            table.columns.append(c)
    return table


def _leaf_column(name: str, attrs: tuple[str, ...], kind: _Kind, annotation: Any) -> Column:
    convert, restore = kind.convert, kind.restore
    if kind.standin:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation or Any)
        if kind.standin == "json":
            if kind.sets:

                def convert(v: Any) -> Any:
                    return json.dumps(sorted((json.loads(json_text(x)) for x in adapter.dump_python(v)), key=_sort_key))
            else:

                def convert(v: Any) -> Any:
                    return json_text(adapter.dump_python(v))

            restore = adapter.validate_json
        else:

            def convert(v: Any) -> Any:
                return adapter.dump_python(v, mode="json")

            restore = adapter.validate_python
    return Column(
        _column_name(name),
        attrs,
        kind.arrow,
        kind.nullable,
        convert,
        restore,
        kind.fast,
        kind.stored,
        kind.bson,
        kind.check,
        kind.members,
        kind.items_nullable,
        bool(kind.standin),
        kind.items_bson,
        kind.form,
    )


def json_text(value: Any) -> str:
    """JSON text that keeps what plain JSON cannot: NaN and ±inf as constants, any bytes as URL-safe base64."""
    return to_json(value, inf_nan_mode="constants", bytes_mode="base64").decode()


def columns_of(cls: type[BaseModel]) -> Table:
    """The columns of a model class's results (nested models' fields dotted, after the others)."""
    pa = pyarrow("to_arrow")
    schema = cls.__pydantic_core_schema__
    defs: dict[str, Any] = {}
    if schema.get("type") == "definitions":
        defs = {d["ref"]: d for d in schema["definitions"]}
        schema = schema["schema"]
    if schema.get("type") == "definition-ref":
        schema = defs[schema["schema_ref"]]
    wrapped = False
    # A model validator wraps the model's schema: the fields are inside, but only the model
    # gives the value (it may change it), so no row is decoded as stored.
    while isinstance(schema.get("type"), str) and schema["type"].startswith("function-") and "schema" in schema:
        schema, wrapped = schema["schema"], True
        if schema.get("type") == "definition-ref":
            schema = defs[schema["schema_ref"]]
    if schema.get("type") != "model" or schema.get("root_model"):
        raise InvalidArgumentError(f"{cls.__name__} has no fields to make columns of")
    table = _table(pa, cls, schema, defs, frozenset({schema["ref"]} if schema.get("ref") else set()))
    table.fast = table.fast and not wrapped
    return table


def arrow_schema(table: Table) -> Any:
    pa = pyarrow("to_arrow")
    return pa.schema(
        [pa.field(table.id, pa.string(), nullable=False)] + [pa.field(c.name, c.arrow) for c in table.columns]
    )


def check_id_column(id_column: str, names: Iterable[str], cls: str) -> None:
    """Refuse a field whose column would be the id column's name."""
    if id_column in names:
        raise InvalidArgumentError(
            f"{cls} has a field {id_column!r}, the name of the id column: pass id_column to name it otherwise"
        )


# -- Building tables from models (every store), and from PyMongoArrow's pages (servers).


def from_models(table: Table, ids: Sequence[str], models: Sequence[BaseModel]) -> Any:
    """The Arrow table of loaded models, by the columns of ``table`` (and their extra fields)."""
    pa = pyarrow("to_arrow")
    arrays = [pa.array(ids, pa.string())]
    for c in table.columns:
        values = [_get(m, c.attrs) for m in models]
        if c.convert is not None:
            values = [None if v is None else c.convert(v) for v in values]
        arrays.append(pa.array(values, c.arrow))
    schema = arrow_schema(table)
    for column, array in extra_columns(models, {c.name for c in table.columns}, table.id):
        schema = schema.append(column)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=schema)


JSON_TEXT = {b"mongo_results": b"json"}  # an extra field's column held as JSON text: no one Arrow type fits it


_SCALARS = {str: "string", int: "int64", float: "float64", bool: "bool_"}


def extra_columns(models: Sequence[BaseModel], taken: set[str], id_column: str = "id") -> list[tuple[Any, Any]]:
    """The columns of ``extra="allow"`` fields, in order of first appearance.

    A column is typed when all its values are of one scalar type (str, int within 64 bits,
    float, bool); any other (a dict, an int beside a float) is JSON text, which Arrow's type
    inference cannot change.
    """
    pa = pyarrow("to_arrow")
    extras = [m.__pydantic_extra__ or {} for m in models]
    names = [n for n in dict.fromkeys(k for e in extras for k in e) if _column_name(n) not in taken]
    check_id_column(id_column, map(_column_name, names), "a result")
    out = []
    for name in names:
        values = [e.get(name) for e in extras]
        kinds = {type(v) for v in values if v is not None}
        scalar = _SCALARS.get(kinds.pop()) if len(kinds) == 1 else None
        if scalar == "int64" and not all(v is None or _INT64[0] <= v <= _INT64[1] for v in values):
            scalar = None
        if scalar is not None:
            array, metadata = pa.array(values, getattr(pa, scalar)()), None
        else:
            array = pa.array([None if v is None else json_text(v) for v in values], pa.string())
            metadata = JSON_TEXT
        out.append((pa.field(_column_name(name), array.type, metadata=metadata), array))
    return out


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


def proof(table: Table) -> dict[str, Any]:
    """The filter for what PyMongoArrow cannot tell apart or would convert: each value of the BSON type written for it.

    PyMongoArrow reads a missing field as null, and converts a value of another type (a double
    into an int64 column, a bool into an int); ``get`` would use a default, or validate (or
    refuse) the value. A list's items are proven one level deep.
    """
    out: dict[str, Any] = {}
    for c in table.columns:
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
    not the ISO form of its datetime or date.
    """
    pa = pyarrow("to_arrow")
    pc = pa.compute
    raw = raw.combine_chunks()
    ids = raw.column("_id")
    n = raw.num_rows
    bad = pc.or_kleene(pc.invert(pc.fill_null(pc.equal(raw.column("model_type"), table.cls.__name__), False)),
                       pc.is_valid(pc.struct_field(raw.column("gridfs"), "fields")))  # fmt: skip
    data = raw.column("data")
    values = []
    for c in table.columns:
        column = _path(data, c.attrs)
        if not c.nullable:
            bad = pc.or_(bad, pc.is_null(column))
        if c.check == "members":
            bad = pc.or_(bad, pc.invert(pc.fill_null(pc.is_in(column, pa.array(c.members, c.stored)), True)))
        elif c.check in ("datetime", "date"):
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


_DAY = r"\d{4}-\d{2}-\d{2}"
_TIME = _DAY + r"T\d{2}:\d{2}:\d{2}(\.\d{1,6})?"
_OFFSET = r"(Z|[+-]\d{2}:\d{2})"
# The forms pydantic writes (and reads back); Arrow's parser accepts more ("+01", "T00Z", a space).
_FORMS = {"date": f"^{_DAY}$", "naive": f"^{_TIME}$", "aware": f"^{_TIME}{_OFFSET}$", "any": f"^{_TIME}{_OFFSET}?$"}


def _parse(pa: Any, text: Any, c: Column) -> tuple[Any, Any]:
    """ISO text as timestamps or dates; a row whose text is not in a form the library writes is left to the model.

    Arrow's parser refuses some of those forms too (a leap second): those rows are left to the model.
    """
    pc = pa.compute
    form = _FORMS["date" if c.check == "date" else c.form]
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


def arrow_table(
    ops: Operations,
    prefix: ResultId | None,
    model_class: type[BaseModel] | None,
    namespace: str | None,
    where: Mapping[str, Any] | None,
    batch_size: int,
    progress: Callable[[int, int], None],
    id_column: str = "id",
) -> Operation[tuple[Any, list[type[BaseModel]]]]:
    """The results as an Arrow table (``id_column``, then the model's columns), and the model classes it holds.

    ``progress(done, total)`` is called after each page.
    """
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
            total += yield CountDocuments(collection, scoped(prefix, translated))
    done = [0]

    def advance(n: int) -> None:
        done[0] += n
        progress(done[0], total)

    if model_class is None or table is None:
        return (yield from _all_types(ops, prefix, namespace, translated, batch_size, advance, id_column))
    # The proof of a list's items needs $not inside $elemMatch; without it such a table is read through the model.
    lists = any(c.items_bson for c in table.columns)
    if not table.fast or not engine.arrow_decoder or (lists and not engine.elem_match_not):
        return (yield from _through_models(ops, table, prefix, namespace, translated, batch_size, advance)), [
            model_class
        ]
    parts = []
    for collection in collections:
        parts.append((yield from _decoded(ops, table, collection, prefix, translated, batch_size, advance)))
    if not parts:
        return arrow_schema(table).empty_table(), [model_class]
    out = pa.concat_tables(parts)
    if len(parts) > 1:
        out = out.take(pa.compute.sort_indices(out, [(id_column, "ascending")]))  # stable: namespaces in name order
    return out, [model_class]


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive int, not {batch_size!r}")


def _through_models(
    ops: Operations,
    table: Table,
    prefix: ResultId | None,
    namespace: str | None,
    where: dict[str, Any],
    batch_size: int,
    advance: Callable[[int], None],
) -> Operation[Any]:
    pa = pyarrow("to_arrow")
    parts = []
    # Extra fields' columns depend on every result, so such a table is built once, at the end.
    ids: list[str] = []
    models: list[BaseModel] = []

    def take(documents: list[dict[str, Any]]) -> Operation[list[Any]]:
        page = [load(d, table.cls, namespace, None, ops.models) for d in documents]
        if table.extras:
            ids.extend(d["_id"] for d in documents)
            models.extend(page)  # type: ignore[arg-type]
        else:
            parts.append(from_models(table, [d["_id"] for d in documents], page))  # type: ignore[arg-type]
        advance(len(documents))
        return []
        yield  # sends nothing

    yield from each_batch(ops.iter_documents(prefix, namespace, batch_size, where=where), take)
    if table.extras:
        return from_models(table, ids, models)
    return pa.concat_tables(parts) if parts else arrow_schema(table).empty_table()


def _all_types(
    ops: Operations,
    prefix: ResultId | None,
    namespace: str | None,
    where: dict[str, Any],
    batch_size: int,
    advance: Callable[[int], None],
    id_column: str,
) -> Operation[tuple[Any, list[type[BaseModel]]]]:
    """Every stored model type: their columns in order of first appearance, each absent one null."""
    pa = pyarrow("to_arrow")
    ids: list[str] = []
    models: list[BaseModel] = []

    def take(documents: list[dict[str, Any]]) -> Operation[list[Any]]:
        for doc in documents:
            model = load(doc, None, namespace, None, ops.models)
            assert model is not None  # no skipped list: a result that does not load raises
            ids.append(doc["_id"])
            models.append(model)
        advance(len(documents))
        return []
        yield  # sends nothing

    yield from each_batch(ops.iter_documents(prefix, namespace, batch_size, where=where), take)
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
            v = None if own is None else _get(m, own.attrs)
            values.append(v if v is None or own is None or own.convert is None else own.convert(v))
        arrays.append(pa.array(values, c.arrow))
    for column, array in extra_columns(models, set(merged), id_column):
        schema = schema.append(column)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=schema), classes


def _decoded(
    ops: Operations,
    table: Table,
    collection: str,
    prefix: ResultId | None,
    where: dict[str, Any],
    batch_size: int,
    advance: Callable[[int], None],
) -> Operation[Any]:
    """One collection by PyMongoArrow pages, rows it cannot prove read through the model."""
    pa = pyarrow("to_arrow")
    namespace = collection[len(ops.prefix) :]
    shape = stored_schema(table)
    proven = proof(table)
    # $and, not a merged dict: the proof's condition on a field must not replace the caller's.
    query = scoped(prefix, {"$and": [where, proven]} if where and proven else (where or proven))
    size = max(batch_size, ARROW_PAGE)
    parts: list[Any] = []
    left: list[str] = []
    after: str | None = None
    while True:
        page = query if after is None else page_after(query, after)
        raw = yield FindArrow(collection, page, shape, size)
        if isinstance(raw, Undecodable):  # a value of another type: this page goes through the model
            docs = yield Find(collection, page, None, BY_ID, size)
            rows, count = None, len(docs)
            left.extend(d["_id"] for d in docs)
            last = docs[-1]["_id"] if docs else None
        else:
            count = raw.num_rows
            last = raw.column("_id")[count - 1].as_py() if count else None
            rows, bad = decode_page(table, raw)
            left.extend(bad)
        if rows is not None and rows.num_rows:
            parts.append(rows)
        advance(count)
        if count < size:
            break
        after = last
    others = []
    for start in range(0, len(left), BY_IDS):
        which = {"_id": {"$in": left[start : start + BY_IDS]}}
        others.append((yield from _loaded(ops, table, namespace, prefix, which, where, batch_size)))
    if proven:
        others.append((yield from _loaded(ops, table, namespace, prefix, {"$nor": [proven]}, where, batch_size)))
    others = [t for t in others if t.num_rows]
    out = pa.concat_tables(parts + others) if parts or others else arrow_schema(table).empty_table()
    if others:
        out = out.take(pa.compute.sort_indices(out, [(table.id, "ascending")]))
    return out


def _loaded(
    ops: Operations,
    table: Table,
    namespace: str,
    prefix: ResultId | None,
    which: dict[str, Any],
    where: dict[str, Any],
    batch_size: int,
) -> Operation[Any]:
    """The documents ``which`` picks, read through the model (GridFS fields filled)."""
    query = {"$and": [where, which]} if where else which
    return (yield from _through_models(ops, table, prefix, namespace, query, batch_size, lambda n: None))
