"""to_arrow, to_polars and to_dataframe: exact column types, the same table on every store, and the
rows PyMongoArrow cannot prove read through the model, equal to what ``get`` gives."""

from __future__ import annotations

import math
from datetime import date, datetime, timezone
from typing import Any, Optional

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, computed_field, create_model

from mongo_results import LossyValueError, ResultsManager, clear_registry, register_model
from mongo_results.core.arrow import columns_of, from_models

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
