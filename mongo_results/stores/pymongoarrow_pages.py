"""The core's FindArrow on a server: pages decoded from raw BSON batches by PyMongoArrow."""

from __future__ import annotations

import warnings
from typing import Any

from bson.errors import InvalidBSON

from ..core.commands import FindArrow, Undecodable
from ..errors import MissingExtraError

__all__ = ["DECODE_ERRORS", "find_arrow", "find_arrow_async"]

# What PyMongoArrow raises for a value its column's type cannot hold (allow_invalid=False).
DECODE_ERRORS = (TypeError, ValueError, OverflowError, InvalidBSON)


def _context(schema: Any) -> Any:
    try:
        with warnings.catch_warnings():
            # Wheels built against another pyarrow patch release warn about struct sizes on import.
            warnings.simplefilter("ignore", RuntimeWarning)
            from pymongoarrow.context import PyMongoArrowContext
            from pymongoarrow.schema import Schema
    except ImportError as exc:
        raise MissingExtraError.needing("reading a MongoDB store into Arrow", "PyMongoArrow", "arrow") from exc
    return PyMongoArrowContext(Schema({f.name: f.type for f in schema}), allow_invalid=False)


def _cursor(collection: Any, command: FindArrow, context: Any) -> Any:
    projection = context.schema._get_projection()
    return collection.find_raw_batches(command.filter, projection, sort=[("_id", 1)], limit=command.limit)


def find_arrow(collection: Any, command: FindArrow) -> Any:
    """The page as a ``pyarrow.Table``, or Undecodable."""
    context = _context(command.schema)
    try:
        for batch in _cursor(collection, command, context):
            context.process_bson_stream(batch)
        return context.finish()
    except DECODE_ERRORS as exc:
        return Undecodable(str(exc))


async def find_arrow_async(collection: Any, command: FindArrow) -> Any:
    """``find_arrow`` with PyMongo's async client or Motor."""
    context = _context(command.schema)
    try:
        async for batch in _cursor(collection, command, context):
            context.process_bson_stream(batch)
        return context.finish()
    except DECODE_ERRORS as exc:
        return Undecodable(str(exc))
