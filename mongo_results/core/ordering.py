"""MongoDB's order of BSON values, to merge what several namespaces answered in one order."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128

__all__ = ["bson_order"]


def bson_order(value: Any) -> tuple[int, Any]:
    """A sort key: MongoDB's type brackets (null, numbers, strings, objects, arrays, ...) then the value.

    An array sorts by its smallest element ascending, as the server does; descending
    sorts by its largest would need the direction, and ties there are settled by id.
    """
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (8, value)
    if isinstance(value, Decimal128):
        value = value.to_decimal()
    if isinstance(value, (int, float, Decimal)):
        return (1, value)  # NaN sorts as the server puts it: first among numbers
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, Mapping):
        return (3, repr(sorted(value.items())))
    if isinstance(value, list):
        return min((bson_order(v) for v in value), default=(4, 0))
    if isinstance(value, bytes):
        return (5, value)
    if isinstance(value, datetime):
        return (9, value)
    return (10, repr(value))
