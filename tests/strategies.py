"""Hypothesis strategies: random pydantic models over the README's type table."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from pathlib import PurePosixPath
from typing import Any, Literal, Optional, Union
from urllib.parse import quote
from uuid import UUID

from hypothesis import strategies as st
from pydantic import AnyUrl, BaseModel, create_model

from .models import Color, Level, Point

offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
# A day inside Python's range, so any offset keeps the UTC time in it (the library refuses the
# rest with LossyValueError: tests/test_encoding.py).
inside = st.datetimes(timezones=st.none() | offsets).filter(
    lambda d: datetime(1, 1, 2) <= d.replace(tzinfo=None) <= datetime(9999, 12, 30)
)
text = st.text(max_size=20)


def floats(finite: bool) -> st.SearchStrategy[float]:
    return st.floats(allow_nan=not finite, allow_infinity=not finite)


def field_types(finite: bool) -> dict[str, tuple[Any, st.SearchStrategy[Any]]]:
    """name -> (annotation, strategy of values)."""
    points = st.builds(Point, x=floats(True), y=floats(True))
    return {
        "s": (str, st.text()),
        "i": (int, st.integers() | st.integers(-(2**80), 2**80)),
        "f": (float, floats(finite)),
        "b": (bool, st.booleans()),
        "n": (Optional[int], st.none() | st.integers(-9, 9)),
        "dec": (Decimal, st.decimals(allow_nan=False, allow_infinity=False)),
        "dt": (datetime, inside),
        "d": (date, st.dates()),
        "t": (time, st.times()),
        "td": (timedelta, st.timedeltas()),
        "u": (UUID, st.uuids()),
        "by": (bytes, st.binary(max_size=64)),
        "e": (Color, st.sampled_from(Color)),
        "ie": (Level, st.sampled_from(Level)),
        "lit": (Literal["a", "b", 3], st.sampled_from(["a", "b", 3])),
        "tup": (tuple[int, str], st.tuples(st.integers(-(2**63), 2**63 - 1), text)),
        "lst": (list[float], st.lists(floats(finite), max_size=5)),
        "st": (set[str], st.sets(text, max_size=5)),
        "fs": (frozenset[int], st.frozensets(st.integers(-100, 100), max_size=5)),
        "dct": (
            dict[str, int],
            st.dictionaries(st.text(alphabet="ab.$%\x00é", max_size=6), st.integers(-5, 5), max_size=5),
        ),
        "ik": (dict[int, str], st.dictionaries(st.integers(-1000, 1000), text, max_size=4)),
        "pt": (Point, points),
        "pts": (list[Point], st.lists(points, max_size=3)),
        "op": (Optional[Point], st.none() | points),
        "un": (Union[int, str], st.integers(-(2**63), 2**63 - 1) | text),
        "p": (
            PurePosixPath,
            st.lists(st.text(alphabet="abc _-é", min_size=1, max_size=5), min_size=1, max_size=3).map(
                lambda p: PurePosixPath("/", *p)
            ),
        ),
        "ip4": (IPv4Address, st.ip_addresses(v=4)),
        "ip6": (IPv6Address, st.ip_addresses(v=6)),
        "url": (AnyUrl, text.map(lambda p: AnyUrl(f"https://example.org/{quote(p)}"))),
    }


@st.composite
def models(draw: st.DrawFn, finite: bool = False) -> BaseModel:
    """A model with a random subset of the field types, and a random instance of it."""
    types = field_types(finite)
    names = draw(st.lists(st.sampled_from(sorted(types)), min_size=1, max_size=8, unique=True))
    cls = create_model("Generated", **{n: (types[n][0], ...) for n in names})  # type: ignore[call-overload]
    values = {n: draw(types[n][1]) for n in names}
    return cls(**values)  # type: ignore[no-any-return]


def same(a: Any, b: Any) -> bool:
    """Deep equality where NaN equals NaN and types must match."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)
