"""Models shared by the tests."""

from __future__ import annotations

import enum
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Literal, Optional, Union
from uuid import UUID

from pydantic import AnyUrl, BaseModel, Field


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Point(BaseModel):
    x: float
    y: float


class Metrics(BaseModel):
    loss: float
    accuracy: float
    step: int = 0


class Other(BaseModel):
    name: str


class KitchenSink(BaseModel):
    """One field per type of the README's type table that every engine stores."""

    s: str = "héllo ✓"
    i: int = -(2**63)
    huge: int = 2**200
    f: float = 0.1
    b: bool = True
    none: Optional[int] = None
    dec: Decimal = Decimal("3.14159265358979323846264338327950288")
    dec_small: Decimal = Decimal("1.10")
    dt_naive: datetime = datetime(2026, 11, 28, 3, 56, 28, 123456)
    dt_aware: datetime = datetime.fromisoformat("2026-11-28T03:56:28.654321+05:30")
    d: date = date(1999, 12, 31)
    t: time = time(23, 59, 59, 999999)
    td: timedelta = timedelta(days=-3, seconds=5, microseconds=7)
    u: UUID = UUID("12345678-1234-5678-1234-567812345678")
    raw: bytes = bytes(range(256))
    color: Color = Color.BLUE
    level: Level = Level.HIGH
    lit: Literal["a", "b"] = "b"
    tup: tuple[int, str, float] = (1, "two", 3.0)
    lst: list[Point] = Field(default_factory=lambda: [Point(x=1, y=2)])
    st: set[str] = Field(default_factory=lambda: {"b", "a", "c"})
    fst: frozenset[int] = frozenset({3, 1, 2})
    dct: dict[str, int] = Field(default_factory=lambda: {"a.b": 1, "$where": 2, "50%": 3, "plain": 4})
    int_keys: dict[int, str] = Field(default_factory=lambda: {1: "one", -2: "minus two"})
    nested: Point = Field(default_factory=lambda: Point(x=-1.5, y=2.5))
    opt_nested: Optional[Point] = None
    union: Union[int, str] = "seven"
    path: Path = Path("/tmp/results/a b.txt")
    ip4: IPv4Address = IPv4Address("192.0.2.1")
    ip6: IPv6Address = IPv6Address("2001:db8::1")
    url: AnyUrl = AnyUrl("https://example.org/a?b=c#d")
