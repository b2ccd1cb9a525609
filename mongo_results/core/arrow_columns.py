"""The columns a model class gives in Arrow: names, exact types, and how values become cells.

The column types come from the model class alone (its pydantic core schema), so every store
builds the same table.
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
from .encoding import _sort_key

__all__ = [
    "JSON_TEXT",
    "Column",
    "Table",
    "arrow_schema",
    "check_id_column",
    "columns_of",
    "extra_columns",
    "from_models",
    "json_text",
    "pyarrow",
    "value_at",
]

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
        raise MissingExtraError.needing(what, "pyarrow", "arrow") from exc
    return pyarrow


@dataclass
class Column:
    """One column: where its value is in a model and in a stored document, and its Arrow type.

    ``fast``: PyMongoArrow may decode the stored value as ``stored`` and the core check it
    (``check``: "" nothing more, "datetime" a BSON date cast to the column's unit, "date" parse
    ISO text, "members" an enum's values).
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
    restore: Callable[[Any], Any] | None = None  # an enum's value back to its member, for DataFrames


@dataclass
class Table:
    """The columns of a model class, and whether a server's pages of it can be decoded as stored."""

    model: type[BaseModel]
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
        # A BSON date to the millisecond; a value it does not hold has exact_times, which the proof refuses.
        return _Kind(arrow, fast=fast, stored=pa.timestamp("ms"), bson=("date",), check="datetime",
                     convert=None if naive else _utc)  # fmt: skip
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
            value = value_at(model, c.attrs)
            out[c.name] = value if c.convert is None or value is None else c.convert(value)
        return out

    return _Kind(pa.struct(fields), nullable=kind.nullable, convert=convert)


def value_at(model: Any, attrs: tuple[str, ...]) -> Any:
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
    wrapped = False
    while isinstance(fields.get("type"), str) and fields["type"].startswith("function-") and "schema" in fields:
        fields, wrapped = fields["schema"], True  # a "before" model validator: the fields are inside
    if (
        set(schema) - {"type", "cls", "config", "custom_init", "metadata", "ref", "root_model", "schema"}
        or schema.get("custom_init")
        or schema.get("root_model")
        or wrapped
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
            text = JsonText()
            if kind.sets:

                def convert(v: Any) -> Any:
                    return json.dumps(sorted((json.loads(text(x)) for x in adapter.dump_python(v)), key=_sort_key))
            else:

                def convert(v: Any) -> Any:
                    return text(adapter.dump_python(v))

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
    )


class JsonText:
    """JSON text that keeps what plain JSON cannot: NaN and ±inf as constants, any bytes as URL-safe base64.

    A value of a type ``to_json`` has no rule for (a ``PurePath``, say) is written as pydantic's
    JSON gives it, through a ``TypeAdapter`` of its type, made once per type for each converter
    (a column's, or a table's extra fields').
    """

    __slots__ = ("_adapters",)

    def __init__(self) -> None:
        self._adapters: dict[type, TypeAdapter[Any]] = {}

    def __call__(self, value: Any) -> str:
        return to_json(value, inf_nan_mode="constants", bytes_mode="base64", fallback=self._as_json).decode()

    def _as_json(self, value: Any) -> Any:
        kind = type(value)
        adapter = self._adapters.get(kind)
        if adapter is None:
            adapter = self._adapters[kind] = TypeAdapter(kind)
        return adapter.dump_python(value, mode="json")


def json_text(value: Any) -> str:
    """One value as ``JsonText`` writes it (a converter of many values keeps a ``JsonText`` of its own)."""
    return JsonText()(value)


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


# -- Tables from models (every store).


def from_models(table: Table, ids: Sequence[str], models: Sequence[BaseModel]) -> Any:
    """The Arrow table of loaded models, by the columns of ``table`` (and their extra fields)."""
    pa = pyarrow("to_arrow")
    arrays = [pa.array(ids, pa.string())]
    for c in table.columns:
        values = [value_at(m, c.attrs) for m in models]
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
            text = JsonText()
            array = pa.array([None if v is None else text(v) for v in values], pa.string())
            metadata = JSON_TEXT
        out.append((pa.field(_column_name(name), array.type, metadata=metadata), array))
    return out
