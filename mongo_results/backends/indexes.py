"""The secondary indexes of every results collection, with readable names.

``_id`` is MongoDB's own unique index: it enforces one result per id and
namespace and serves ``get``, ``exists`` and ``list_ids``.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

__all__ = ["INDEXES"]

# Any-segment filters in Compass, such as {"path": "seed=3"}.
INDEXES = [IndexModel([("path", ASCENDING)], name="path_segments")]
