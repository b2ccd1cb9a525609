"""to_arrow, to_polars and to_dataframe: exact column types, the same table on every store, and the
rows PyMongoArrow cannot prove read through the model, equal to what ``get`` gives."""

from __future__ import annotations

import enum
import json
import math
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Annotated, Any, Optional, Union
from uuid import UUID

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    TypeAdapter,
    ValidationError,
    computed_field,
    create_model,
    model_validator,
)

from mongo_results import ResultsManager, clear_registry, register_model
from mongo_results.core.arrow_reads import Rows, arrow_table, columns_of, from_models
from mongo_results.errors import InvalidArgumentError, LossyValueError

from .models import Color, Level, Point
from .strategies import field_types, models


class Fast(BaseModel):
    i: int
    f: float
    s: str
    b: bool
    when: datetime
    day: date
    c: Color
    lv: Level
    opt: Optional[int] = None
    tags: list[int]
    pt: Point


def fast(n: int) -> Fast:
    when = datetime(2026, 1, 1, n % 24, tzinfo=timezone.utc)
    return Fast(
        i=n, f=n / 4, s=f"s{n}", b=n % 2 == 0, when=when, day=date(2026, 1, 1 + n % 28), c=Color.BLUE,
        lv=Level.HIGH, opt=None if n % 3 else n, tags=list(range(n % 3)), pt=Point(x=n, y=-n),
    )  # fmt: skip


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()  # type: ignore[no-any-return]


def expected(rm: ResultsManager, cls: type[BaseModel], ids: list[str]) -> list[dict[str, Any]]:
    """What get() gives for each id, as a row."""
    return rows(from_models(columns_of(cls), ids, [rm.get(i, cls) for i in ids]))


def test_types_come_from_the_model() -> None:
    schema = pa.schema([(c.name, c.arrow) for c in columns_of(Fast).columns])
    assert schema.types == [
        pa.int64(), pa.float64(), pa.string(), pa.bool_(), pa.timestamp("us", "UTC"), pa.date32(), pa.string(),
        pa.int64(), pa.int64(), pa.list_(pa.int64()), pa.float64(), pa.float64(),
    ]  # fmt: skip
    assert schema.names[-2:] == ["pt.x", "pt.y"]  # nested models' fields dotted, after the others
    assert columns_of(Fast).fast


def test_every_reader_on_every_store(rm: ResultsManager) -> None:
    register_model(Fast)
    rm.set_many([(f"a/{n:03d}", fast(n)) for n in range(30)])
    table = rm.to_arrow("a", Fast)
    ids = [f"a/{n:03d}" for n in range(30)]
    assert table.column_names[0] == "id" and table.column("id").to_pylist() == ids
    assert rows(table) == expected(rm, Fast, ids)
    assert table.schema.field("when").type == pa.timestamp("us", "UTC")
    assert rm.to_arrow("a", Fast, where={"i": {"$lt": 3}}).column("id").to_pylist() == ids[:3]
    assert rm.to_arrow("none", Fast).num_rows == 0 and rm.to_arrow("none", Fast).schema == table.schema
    assert rm.to_arrow("a").equals(table)  # one stored type: its class's columns
    frame = rm.to_polars("a", Fast)
    assert frame.columns == table.column_names and frame["i"].to_list() == list(range(30))
    df = rm.to_dataframe("a", Fast)
    assert list(df.index) == ids and df.loc["a/002", "pt.y"] == -2.0


class Old(BaseModel):
    i: int
    f: str
    s: str
    b: bool
    when: datetime
    day: date
    c: str
    lv: int
    tags: list[int]
    pt: Point


def test_rows_the_decoder_cannot_prove_go_through_the_model(rm: ResultsManager) -> None:
    register_model(Fast)
    rm.set_many([(f"m/{n:03d}", fast(n)) for n in range(10)])
    naive = fast(10).model_copy(update={"when": datetime(2026, 1, 1, 5)})  # read as UTC in an aware column
    rm.set("m/010", naive)
    # Another model type, whose data validates into Fast (a float stored as text).
    OldFast = create_model("OldFast", __base__=Old)
    old = {**fast(11).model_dump(), "f": "2.75", "c": "blue", "lv": 2}
    rm.set("m/011", OldFast(**old))
    # Stored by an older version of the class: without `opt` (a default) and `k`.
    kept = {n: (f.annotation, f) for n, f in Fast.model_fields.items() if n != "opt"}
    Changed = create_model("Fast", **kept)  # type: ignore[call-overload]
    rm.set("m/012", Changed(**fast(12).model_dump(exclude={"opt"})))
    Newer = create_model("Fast", __base__=Fast, k=(int, 7), opt=(Optional[int], 5))
    ids = [f"m/{n:03d}" for n in range(13)]
    for cls in (Fast, Newer):
        table = rm.to_arrow("m", cls)
        assert table.column("id").to_pylist() == ids
        assert rows(table) == expected(rm, cls, ids), cls
    assert rm.to_arrow("m", Newer).column("opt").to_pylist()[12] == 5  # the default, as get() gives
    assert rm.to_arrow("m", Fast).column("when").to_pylist()[10] == datetime(2026, 1, 1, 5, tzinfo=timezone.utc)
    if not isinstance(rm, ResultsManager):
        return  # the progress below is the core's, which both shells share
    seen: list[tuple[int, int]] = []  # progress reaches its total, rows the pages passed over included
    rm._run(arrow_table(rm._ops(), Rows("m", Fast, None, None, 500, lambda done, total: seen.append((done, total)))))
    assert seen[-1] == (13, 13)


def test_a_value_that_does_not_load_raises_as_get_does(rm: ResultsManager) -> None:
    Loose = create_model("Fast", __base__=Fast, c=(str, ...), i=(Optional[int], ...))
    rm.set("e/1", Loose(**{**fast(1).model_dump(), "c": "green"}))
    with pytest.raises(ValidationError):
        rm.to_arrow("e", Fast)  # not a member of Color
    rm.clear()
    rm.set("e/2", Loose(**{**fast(2).model_dump(), "i": None}))
    with pytest.raises(ValidationError):
        rm.to_arrow("e", Fast)  # null where the field cannot be
    rm.clear()
    rm.set("e/3", Fast(**{**fast(3).model_dump(), "i": 2**70}))
    with pytest.raises(LossyValueError, match="beyond 64 bits"):
        rm.to_arrow("e", Fast)


@pytest.mark.parametrize("kind", ["server", "async-server", "file"])
def test_fields_held_in_gridfs_are_read_through_the_model(rm: ResultsManager) -> None:
    big = fast(1).model_copy(update={"s": "x" * (17 * 1024 * 1024)})
    rm.set_many([("g/0", fast(0)), ("g/1", big), ("g/2", fast(2))])
    table = rm.to_arrow("g", Fast)
    assert table.column("s").to_pylist() == ["s0", big.s, "s2"]


def test_several_model_types_without_model_class(rm: ResultsManager) -> None:
    class Other(BaseModel):
        i: int
        note: str

    register_model(Fast)
    register_model(Other)
    rm.set_many([("t/1", fast(1)), ("t/2", Other(i=2, note="n"))])
    table = rm.to_arrow("t")
    assert table.column_names[:2] == ["id", "i"] and table.column_names[-1] == "note"
    assert table.column("i").to_pylist() == [1, 2] and table.column("note").to_pylist() == [None, "n"]

    class Clash(BaseModel):
        i: str

    register_model(Clash)
    rm.set("t/3", Clash(i="3"))
    with pytest.raises(ValueError, match="column 'i'"):
        rm.to_arrow("t")


class Scored(BaseModel, extra="allow"):
    value: float
    c: Color
    shades: list[Color] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def doubled(self) -> float:
        return self.value * 2


def test_computed_and_extra_fields_and_enum_members_as_model_dump_gives_them(rm: ResultsManager) -> None:
    """What to_dataframe gave before it was built on Arrow: no column lost, enums as members."""
    one = Scored(value=1.5, c=Color.RED, shades=[Color.BLUE], run="a", n=1)  # type: ignore[call-arg]
    two = Scored(value=2.0, c=Color.BLUE, n="two", extra_only={"k": [1]})  # type: ignore[call-arg]
    rm.set_many([("x/1", one), ("x/2", two)])
    table = rm.to_arrow("x", Scored)
    assert table.column_names == ["id", "value", "c", "shades", "doubled", "run", "n", "extra_only"]
    assert table.column("doubled").to_pylist() == [3.0, 4.0]
    assert table.column("c").to_pylist() == [Color.RED.value, Color.BLUE.value]
    assert table.column("run").to_pylist() == ["a", None]
    assert table.column("n").to_pylist() == ["1", '"two"']  # an int and a str: one column of JSON text
    frame = rm.to_dataframe("x", Scored)
    for rid, model in (("x/1", one), ("x/2", two)):
        row = {k: v for k, v in frame.loc[rid].to_dict().items() if not (v is None or v != v)}  # None, NaN: absent
        assert row == {k: v for k, v in model.model_dump().items() if v is not None}
    assert frame.loc["x/1", "c"] is Color.RED and frame.loc["x/1", "shades"] == [Color.BLUE]
    register_model(Scored)
    assert rm.to_arrow("x").column_names == table.column_names  # the same through the registry


def test_stand_ins_are_text_in_arrow_and_values_in_pandas() -> None:
    from datetime import timedelta
    from uuid import UUID

    class Odd(BaseModel):
        td: timedelta
        u: UUID
        st: set[int]
        d: dict[str, list[int]]

    rm = ResultsManager("mongomock://localhost/standins")
    odd = Odd(td=timedelta(hours=1), u=UUID(int=5), st={3, 1, 20}, d={"a.b": [1]})
    rm.set("o/1", odd)
    assert rows(rm.to_arrow("o", Odd))[0] == {
        "id": "o/1", "td": "PT1H", "u": str(UUID(int=5)), "st": "[1, 3, 20]", "d": '{"a.b":[1]}',
    }  # fmt: skip
    assert rm.to_dataframe("o", Odd).loc["o/1"].to_dict() == odd.model_dump()
    rm.clear()
    rm.close()


FAST_TYPES = ["s", "i", "f", "b", "n", "dt", "d", "e", "ie", "lst", "pt", "op"]


def same_rows(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    def norm(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return "NaN"
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v

    return bool(norm(a) == norm(b))


@st.composite
def generated(draw: st.DrawFn) -> tuple[type[BaseModel], list[BaseModel]]:
    if draw(st.booleans()):  # a class the server decodes with PyMongoArrow
        types = field_types(False)
        names = draw(st.lists(st.sampled_from(FAST_TYPES), min_size=1, max_size=6, unique=True))
        cls = create_model("Generated", **{n: (types[n][0], ...) for n in names})  # type: ignore[call-overload]
        instances = [cls(**{n: draw(types[n][1]) for n in names}) for _ in range(3)]
        return cls, instances
    first = draw(models())
    cls = type(first)
    types = field_types(False)
    return cls, [first, *(cls(**{n: draw(types[n][1]) for n in cls.model_fields}) for _ in range(2))]


def test_the_same_table_on_every_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from .conftest import make_manager

    managers = [make_manager(k, request, tmp_path_factory.mktemp(k)) for k in ("file", "mongomock", "server")]

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(generated())
    def check(case: tuple[type[BaseModel], list[BaseModel]]) -> None:
        cls, instances = case
        clear_registry()
        register_model(cls)
        tables: list[list[dict[str, Any]] | None] = []
        for rm in managers:
            rm.clear()
            rm.set_many([(f"h/{n}", m) for n, m in enumerate(instances)])
            try:
                tables.append(rows(rm.to_arrow("h", cls)))
            except LossyValueError:
                tables.append(None)
        first = tables[0]
        if first is None:
            assert tables == [None] * 3  # an int beyond 64 bits: refused on every store
        else:
            assert all(t is not None and same_rows(t, first) for t in tables)
            assert same_rows(first, expected(managers[0], cls, ["h/0", "h/1", "h/2"]))

    try:
        check()
    finally:
        for rm in managers:
            rm.clear()
            rm.close()


# -- The fast path keeps no row that is not what get() gives (servers; the other stores read every row
#    through the model, and must agree).

ALL = ["file", "mongomock", "server", "async-server", "motor-server"]
LOCAL_AND_SERVER = ["file", "mongomock", "server"]


class Opt(BaseModel):
    a: Optional[int] = None
    b: int


@pytest.mark.parametrize("kind", ALL)
def test_where_on_an_optional_field_is_applied(rm: ResultsManager) -> None:
    register_model(Opt)
    rm.set_many([("w/1", Opt(a=1, b=1)), ("w/2", Opt(a=2, b=2)), ("w/3", Opt(a=None, b=3)), ("w/4", Opt(b=4))])
    assert [rid for rid, _ in rm.find({"a": 1}, "w", Opt)] == ["w/1"]
    assert rm.to_arrow("w", Opt, where={"a": 1}).column("id").to_pylist() == ["w/1"]
    assert list(rm.to_dataframe("w", Opt, where={"a": {"$gte": 2}}).index) == ["w/2"]
    # The rows the proof leaves to the model are still the caller's rows only.
    assert rm.to_arrow("w", Opt, where={"b": {"$gte": 3}}).column("id").to_pylist() == ["w/3", "w/4"]


@pytest.mark.parametrize("kind", ALL)
def test_a_fractional_float_stored_for_an_int_field_is_not_truncated(rm: ResultsManager) -> None:
    Before = create_model("Metric", value=(float, ...))  # the class as it was when the result was written
    rm.set("m/1", Before(value=2.5))
    rm.set("m/2", Before(value=3.0))
    After = create_model("Metric", value=(int, ...))
    with pytest.raises(ValidationError):
        rm.get("m/1", After)
    with pytest.raises(ValidationError):
        rm.to_arrow("m", After)
    rm.delete("m/1")
    assert rm.to_arrow("m", After).column("value").to_pylist() == [rm.get("m/2", After).model_dump()["value"]] == [3]


@pytest.mark.parametrize("kind", ALL)
def test_fractional_floats_in_a_list_of_ints_are_not_truncated(rm: ResultsManager) -> None:
    Before = create_model("Series", xs=(list[float], ...))
    rm.set("m/1", Before(xs=[1.0, 2.5]))
    After = create_model("Series", xs=(list[int], ...))
    with pytest.raises(ValidationError):
        rm.get("m/1", After)
    with pytest.raises(ValidationError):
        rm.to_arrow("m", After)


@pytest.mark.parametrize("kind", ALL)
def test_a_bool_stored_for_a_strict_int_field_is_not_read_as_1(rm: ResultsManager) -> None:
    Before = create_model("Flag", x=(bool, ...))
    rm.set("s/1", Before(x=True))
    After = create_model("Flag", x=(Annotated[int, Field(strict=True)], ...))
    with pytest.raises(ValidationError):
        rm.get("s/1", After)
    with pytest.raises(ValidationError):
        rm.to_arrow("s", After)


@pytest.mark.parametrize("kind", ["server", "async-server"])
@pytest.mark.parametrize(
    ("before", "value", "after"),
    [(int, 5, str), (list[int], [1], list[str]), (float, 1.5, datetime), (int, 1, Color), (bool, True, str)],
)
def test_a_value_of_another_type_for_a_text_field_is_not_converted(
    rm: ResultsManager, before: Any, value: Any, after: Any
) -> None:
    rm.set("t/1", create_model("Labelled", v=(before, ...))(v=value))
    After = create_model("Labelled", v=(after, ...), other=(Optional[int], None))
    try:
        got = rm.get("t/1", After)
    except ValidationError:
        with pytest.raises(ValidationError):
            rm.to_arrow("t", After)
    else:  # a number is a datetime to pydantic (seconds since 1970)
        assert rows(rm.to_arrow("t", After)) == expected(rm, After, ["t/1"]) and got.model_dump()["v"].year == 1970


@pytest.mark.parametrize("kind", ALL)
def test_a_null_in_an_inner_list_is_not_taken_as_stored(rm: ResultsManager) -> None:
    Before = create_model("Grid", xs=(list[list[Optional[int]]], ...))
    rm.set("l/1", Before(xs=[[1, None]]))
    After = create_model("Grid", xs=(list[list[int]], ...))
    assert not columns_of(After).fast
    with pytest.raises(ValidationError):
        rm.get("l/1", After)
    with pytest.raises(ValidationError):
        rm.to_arrow("l", After)


@pytest.mark.parametrize("kind", ALL)
@pytest.mark.parametrize("text", ["2020-01-01 00:00:00+01", "2020-01-01T00Z"])
def test_datetime_text_pydantic_refuses_is_not_taken_by_the_fast_path(rm: ResultsManager, text: str) -> None:
    Before = create_model("Event", when=(str, ...))  # timestamps kept as text
    rm.set("d/1", Before(when=text))
    After = create_model("Event", when=(datetime, ...))
    with pytest.raises(ValidationError):
        rm.get("d/1", After)
    with pytest.raises(ValidationError):
        rm.to_arrow("d", After)


@pytest.mark.parametrize("kind", ["file", "server"])
def test_datetime_text_in_the_forms_pydantic_writes(rm: ResultsManager) -> None:
    Before = create_model("Event", when=(str, ...))
    texts = ["2020-01-01T00:00:00", "2020-01-01T00:00:00.5Z", "2020-01-01T00:00:00.123456+01:00"]
    rm.set_many([(f"d/{n}", Before(when=t)) for n, t in enumerate(texts)])
    After = create_model("Event", when=(datetime, ...))
    got = [_utc_of(rm.get(f"d/{n}", After).model_dump()["when"]) for n in range(3)]
    assert rm.to_arrow("d", After).column("when").to_pylist() == got


def _utc_of(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# -- Columns of to_arrow and to_polars.


class Row(BaseModel):
    id: int
    v: float


class LooseId(BaseModel, extra="allow"):
    v: int


@pytest.mark.parametrize("kind", LOCAL_AND_SERVER)
def test_a_field_named_id(rm: ResultsManager) -> None:
    rm.set("r/1", Row(id=7, v=1.0))
    with pytest.raises(InvalidArgumentError, match="'id'"):
        rm.to_arrow("r", Row)
    with pytest.raises(InvalidArgumentError, match="'id'"):
        rm.to_polars("r", Row)
    table = rm.to_arrow("r", Row, id_column="rid")
    assert table.column_names == ["rid", "id", "v"] and table.column("id").to_pylist() == [7]
    assert rm.to_polars("r", Row, id_column="rid").columns == ["rid", "id", "v"]
    frame = rm.to_dataframe("r", Row)  # the id is the index: a field id is a column, as before
    assert frame.index.name == "id" and frame.loc["r/1", "id"] == 7


@pytest.mark.parametrize("kind", ["file", "mongomock"])
def test_an_extra_field_named_id(rm: ResultsManager) -> None:
    rm.set("e/1", LooseId(v=1, id="x"))  # type: ignore[call-arg]
    with pytest.raises(InvalidArgumentError, match="'id'"):
        rm.to_arrow("e", LooseId)
    assert rm.to_arrow("e", LooseId, id_column="rid").column_names == ["rid", "v", "id"]
    assert rm.to_dataframe("e", LooseId).loc["e/1"].to_dict() == {"v": 1, "id": "x"}


class Checked(BaseModel):
    x: int

    @model_validator(mode="after")
    def check(self) -> Checked:
        return self


class Tags(RootModel[list[str]]):
    pass


class Tagged(BaseModel):
    tags: Tags


class AsValues(BaseModel):
    model_config = ConfigDict(use_enum_values=True)
    c: Color


class Before(BaseModel):
    x: int

    @model_validator(mode="before")
    @classmethod
    def check(cls, data: Any) -> Any:
        return data


@pytest.mark.parametrize("kind", LOCAL_AND_SERVER)
def test_a_model_validator_does_not_stop_the_readers(rm: ResultsManager) -> None:
    rm.set_many([("v/1", Checked(x=1)), ("w/1", Before(x=2))])
    for cls, prefix, x in ((Checked, "v", 1), (Before, "w", 2)):
        assert not columns_of(cls).fast
        assert rm.to_arrow(prefix, cls).column("x").to_pylist() == [x]
        assert rm.to_dataframe(prefix, cls).loc[f"{prefix}/1", "x"] == x


@pytest.mark.parametrize("kind", LOCAL_AND_SERVER)
def test_a_nested_root_model_is_json_text(rm: ResultsManager) -> None:
    rm.set("v/1", Tagged(tags=Tags(["a"])))
    assert rm.to_arrow("v", Tagged).column("tags").to_pylist() == ['["a"]']
    assert rm.to_dataframe("v", Tagged).loc["v/1", "tags"] == ["a"]


@pytest.mark.parametrize("kind", LOCAL_AND_SERVER)
def test_use_enum_values(rm: ResultsManager) -> None:
    rm.set("v/1", AsValues(c=Color.RED))
    assert rm.to_arrow("v", AsValues).column("c").to_pylist() == ["red"]
    assert rm.to_dataframe("v", AsValues).loc["v/1", "c"] == "red"


class Loose(BaseModel, extra="allow"):
    v: int


@pytest.mark.parametrize("kind", LOCAL_AND_SERVER)
def test_extra_fields_keep_their_values(rm: ResultsManager) -> None:
    rm.set_many([("x/1", Loose(v=1, e={"a": 1}, n=1, s="a")), ("x/2", Loose(v=2, e={"b": 2}, n=2.5))])  # type: ignore[call-arg]
    got = [rm.get(i, Loose).model_dump() for i in ("x/1", "x/2")]
    table = rm.to_arrow("x", Loose)
    assert table.schema.field("s").type == pa.string() and table.schema.field("n").type == pa.string()
    rows = table.to_pylist()
    for row, want in zip(rows, got, strict=True):
        assert {k: json.loads(row[k]) for k in ("e", "n") if row[k] is not None} == {k: want[k] for k in ("e", "n")}
    assert type(json.loads(rows[0]["n"])) is int  # an int beside a float is JSON text, not 1.0
    assert rm.to_dataframe("x", Loose).loc["x/2", "n"] == 2.5


class NonFinite(BaseModel):
    d: dict[str, float]
    tp: tuple[float, float]
    u: Union[int, float]


@pytest.mark.parametrize("kind", LOCAL_AND_SERVER)
def test_non_finite_floats_in_json_text_columns(rm: ResultsManager) -> None:
    model = NonFinite(d={"a": math.nan, "b": math.inf}, tp=(math.inf, -math.inf), u=math.inf)
    rm.set("n/1", model)
    row = rm.to_arrow("n", NonFinite).to_pylist()[0]
    assert row == {"id": "n/1", "d": '{"a":NaN,"b":Infinity}', "tp": "[Infinity,-Infinity]", "u": "Infinity"}
    back = {k: TypeAdapter(Any).validate_json(row[k]) for k in ("d", "tp", "u")}
    back["tp"] = TypeAdapter(tuple[float, float]).validate_json(row["tp"])
    assert math.isnan(back["d"]["a"]) and back["tp"] == (math.inf, -math.inf) and back["u"] == math.inf
    frame = rm.to_dataframe("n", NonFinite)
    assert frame.loc["n/1", "tp"] == (math.inf, -math.inf) and math.isnan(frame.loc["n/1", "d"]["a"])


class RawMap(BaseModel):
    d: dict[str, bytes]


class Either(BaseModel):
    u: Union[str, bytes]


@pytest.mark.parametrize("kind", LOCAL_AND_SERVER)
def test_bytes_in_json_text_are_base64(rm: ResultsManager) -> None:
    rm.set("b/1", RawMap(d={"a": b"\xff\x00"}))
    assert rm.to_arrow("b", RawMap).column("d").to_pylist() == ['{"a":"_wA="}']  # URL-safe base64
    assert rm.to_dataframe("b", RawMap).loc["b/1", "d"] == {"a": b"\xff\x00"}
    rm.set("b/2", Either(u=b"abc"))
    assert rm.get("b/2", Either).u == b"abc"
    assert rm.to_dataframe("b/2", Either).loc["b/2", "u"] == b"abc"


@pytest.mark.parametrize("kind", LOCAL_AND_SERVER)
@pytest.mark.parametrize("size", [0, -1])
def test_a_batch_size_below_1_is_refused(rm: ResultsManager, size: int) -> None:
    rm.set_many([(f"b/{i}", Opt(b=i)) for i in range(3)])
    for read in (rm.to_arrow, rm.to_polars, rm.to_dataframe):
        with pytest.raises(InvalidArgumentError, match="batch_size"):
            read("b", Opt, batch_size=size)
    with pytest.raises(InvalidArgumentError, match="batch_size"):  # at the call, as iter_results' pages
        list(rm.iter_results("b", Opt, batch_size=size))


# -- to_dataframe: the rows model_dump gives, as before it was built on Arrow.


class WithEnum(BaseModel):
    c: Color
    d: dict[str, int]


class WithText(BaseModel):
    c: str
    d: str


@pytest.mark.parametrize("kind", LOCAL_AND_SERVER)
def test_each_type_keeps_its_own_values(rm: ResultsManager) -> None:
    register_model(WithEnum)
    register_model(WithText)
    rm.set_many(
        [
            ("t/1", WithEnum(c=Color.RED, d={"k": 1})),
            ("t/2", WithText(c="red", d='{"k": 2}')),
            ("t/3", WithText(c="green", d="plain")),
        ]
    )
    frame = rm.to_dataframe("t")
    assert frame.loc["t/1", "c"] is Color.RED and frame.loc["t/1", "d"] == {"k": 1}
    assert type(frame.loc["t/2", "c"]) is str and frame.loc["t/2", "d"] == '{"k": 2}'
    assert frame.loc["t/3", "c"] == "green" and frame.loc["t/3", "d"] == "plain"


class Note(BaseModel, extra="allow"):
    a: int


class Holder(BaseModel):
    inner: Note


class Seq(BaseModel):
    xs: list[int]
    tp: tuple[int, ...]


class Inner(BaseModel):
    x: int


class Item(BaseModel):
    c: Color
    inner: Inner


class Items(BaseModel):
    items: list[Item]


class Big(BaseModel):
    n: int


class Hidden(BaseModel):
    a: int
    hidden: int = Field(default=0, exclude=True)


class Priced(BaseModel):
    p: Decimal = Field(max_digits=5, decimal_places=2)


@pytest.mark.parametrize("kind", LOCAL_AND_SERVER)
def test_to_dataframe_gives_what_model_dump_gives(rm: ResultsManager) -> None:
    rm.set("o/1", Holder(inner=Note(a=1, note="kept")))  # type: ignore[call-arg]
    assert rm.to_dataframe("o", Holder).loc["o/1"].to_dict() == {"inner.a": 1, "inner.note": "kept"}
    rm.set("l/1", Seq(xs=[1, 2], tp=(3,)))
    frame = rm.to_dataframe("l", Seq)
    assert frame.loc["l/1", "xs"] == [1, 2] and frame.loc["l/1", "tp"] == (3,)
    rm.set("n/1", Items(items=[Item(c=Color.RED, inner=Inner(x=1))]))
    assert rm.to_dataframe("n", Items).loc["n/1", "items"] == [{"c": Color.RED, "inner": {"x": 1}}]
    rm.set("h/1", Hidden(a=1))
    assert list(rm.to_dataframe("h", Hidden).columns) == ["a"]
    rm.set("p/1", Priced(p=Decimal("1.5")))
    assert str(rm.to_dataframe("p", Priced).loc["p/1", "p"]) == "1.5"


@pytest.mark.parametrize("kind", ["file", "mongomock"])
def test_to_dataframe_reads_an_int_beyond_64_bits(rm: ResultsManager) -> None:
    rm.set("b/1", Big(n=2**70))
    with pytest.raises(LossyValueError):
        rm.to_arrow("b", Big)
    assert rm.to_dataframe("b", Big).loc["b/1", "n"] == 2**70


class Graded(BaseModel):
    lv: Optional[Level] = None


class OptionalText(BaseModel):
    c: Optional[Color] = None
    d: Optional[dict[str, int]] = None
    u: Optional[UUID] = None


@pytest.mark.parametrize("kind", LOCAL_AND_SERVER)
def test_optional_restored_columns_with_a_null(rm: ResultsManager) -> None:
    import pandas

    rm.set_many([("g/1", Graded(lv=Level.LOW)), ("g/2", Graded())])
    frame = rm.to_dataframe("g", Graded)
    assert frame.loc["g/1", "lv"] is Level.LOW and frame.loc["g/2", "lv"] is None  # members, as model_dump gives
    pandas.testing.assert_frame_equal(frame, old_frame(rm, Graded, ["g/1", "g/2"]))
    rm.set_many([("o/1", OptionalText(c=Color.RED, d={"a": 1}, u=UUID(int=1))), ("o/2", OptionalText())])
    frame = rm.to_dataframe("o", OptionalText)
    assert frame.loc["o/1", "c"] is Color.RED and frame.loc["o/1", "d"] == {"a": 1}
    assert frame.loc["o/1", "u"] == UUID(int=1)


def old_frame(rm: ResultsManager, cls: type[BaseModel], ids: list[str]) -> Any:
    """to_dataframe as it was before it was built on Arrow: rows from model_dump()."""
    import pandas

    from mongo_results.core.tables import _row

    got = [rm.get(i, cls) for i in ids]
    rows = [_row(m, m.model_dump(mode="python"), "", {}) for m in got]
    out = pandas.DataFrame(rows, index=pandas.Index(ids, name="id", dtype=object))
    for name in {k for row in rows for k, v in row.items() if isinstance(v, enum.Enum)}:
        out[name] = pandas.Series([row[name] for row in rows], index=out.index, dtype=object)  # members, as dumped
    return out


FRAME_TYPES = [*FAST_TYPES, "oi", "ob", "os", "oe", "odt", "ld", "ls"]


@st.composite
def fast_classes(draw: st.DrawFn) -> tuple[type[BaseModel], list[BaseModel]]:
    types = {
        **field_types(False),
        "oi": (Optional[int], st.none() | st.integers(-(2**63), 2**63 - 1)),
        "ob": (Optional[bool], st.none() | st.booleans()),
        "os": (Optional[str], st.none() | st.text()),
        "oe": (Optional[Color], st.none() | st.sampled_from(Color)),
        "odt": (Optional[datetime], st.none() | st.datetimes(timezones=st.just(timezone.utc))),
        "ld": (list[date], st.lists(st.dates(), max_size=3)),
        "ls": (list[Optional[str]], st.lists(st.none() | st.text(), max_size=3)),
    }
    names = draw(st.lists(st.sampled_from(FRAME_TYPES), min_size=1, max_size=6, unique=True))
    cls = create_model("Framed", **{n: (types[n][0], ...) for n in names})  # type: ignore[call-overload]
    return cls, [cls(**{n: draw(types[n][1]) for n in names}) for _ in range(draw(st.integers(1, 3)))]


def test_to_dataframe_of_a_fast_class_is_the_former_one(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import pandas

    from .conftest import make_manager

    managers = [make_manager(k, request, tmp_path_factory.mktemp(k)) for k in ("file", "mongomock", "server")]

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(fast_classes())
    def check(case: tuple[type[BaseModel], list[BaseModel]]) -> None:
        cls, instances = case
        ids = [f"h/{n}" for n in range(len(instances))]
        for rm in managers:
            rm.clear()
            rm.set_many(list(zip(ids, instances, strict=True)))
            new, old = rm.to_dataframe("h", cls), old_frame(rm, cls, ids)
            for name in {"dt", "odt"} & set(old.columns):
                # The one difference: datetimes are the same instants, in UTC (naive ones read as UTC).
                new[name], old[name] = (pandas.to_datetime(f[name], utc=True) for f in (new, old))
            pandas.testing.assert_frame_equal(new, old)

    try:
        check()
    finally:
        for rm in managers:
            rm.clear()
            rm.close()


# -- Reading while writers change the rows.


class Flip(BaseModel):
    n: int
    x: float


def _flipper(uri: str, database: str, count: int, started: Any, stop: Any) -> int:
    """Another process: each result in turn between a provable form (x a double) and one that is not (an int)."""
    from mongo_results import MongoBackend, SetBehavior

    register_model(Flip)
    writes = 0
    with ResultsManager(backend=MongoBackend(uri, database=database)) as rm:
        while not stop.is_set():
            for i in range(0, count, 7):
                rid = f"flip/{i:05d}"
                if writes // (count // 7) % 2:
                    rm.set(rid, Flip(n=i, x=i + 0.5), SetBehavior.OVERWRITE)
                else:
                    rm.admin.store(rid, "Flip", {"n": i, "x": i}, SetBehavior.OVERWRITE)  # an int where a float goes
                writes += 1
                if writes == 1:
                    started.put(True)  # the reader starts once every writer writes
                if stop.is_set():
                    break
    return writes


@pytest.mark.real_server
def test_each_id_once_while_writers_change_rows_between_the_two_reads(server_db: tuple[str, str]) -> None:
    """Before: 40,000 results came back as 40,967 rows with 39,992 ids while writers overwrote them."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from mongo_results import MongoBackend

    uri, name = server_db
    count = 3_000
    register_model(Flip)
    with ResultsManager(backend=MongoBackend(uri, database=name)) as rm:
        rm.set_many({f"flip/{i:05d}": Flip(n=i, x=i + 0.5) for i in range(count)})
        context = multiprocessing.get_context("spawn")
        with context.Manager() as shared, ProcessPoolExecutor(2, mp_context=context) as pool:
            started, stop = shared.Queue(), shared.Event()
            writers = [pool.submit(_flipper, uri, name, count, started, stop) for _ in range(2)]
            try:
                for _ in writers:
                    started.get(timeout=120)
                for _ in range(4):
                    table = rm.to_arrow("flip", Flip)
                    ids = table.column("id").to_pylist()
                    assert len(ids) == len(set(ids)) == count  # each id once, none missing
                    for row in table.to_pylist():
                        assert row["x"] in (row["n"], row["n"] + 0.5)  # a value that was stored
                    frame = rm.to_dataframe("flip", Flip)
                    assert frame.index.is_unique and len(frame) == count
            finally:
                stop.set()
            assert all(w.result() > 0 for w in writers)
