"""The stores: each runs the core's commands on MongoDB (sync or async), the embedded store or files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError
from .adapter import AdaptedBackend, AsyncAdaptedBackend
from .files import AsyncFileBackend, FileBackend
from .mongo import AsyncMongoBackend, MongoBackend, check_uri, is_uri
from .protocol import AsyncExecutor, Executor

__all__ = [
    "AsyncExecutor",
    "AsyncFileBackend",
    "AsyncMongoBackend",
    "AsyncAdaptedBackend",
    "Executor",
    "FileBackend",
    "MongoBackend",
    "AdaptedBackend",
    "open_backend",
]


def open_backend(
    base_dir: str | Path | None, create_if_missing: bool = True, *, asynchronous: bool = False, **options: Any
) -> Any:
    """The store a ``base_dir`` names: a URI gives a MongoDB store, a path a file store."""
    if is_uri(base_dir):
        assert isinstance(base_dir, str)
        check_uri(base_dir)
        return (AsyncMongoBackend if asynchronous else MongoBackend)(base_dir, **options)
    if isinstance(base_dir, (str, os.PathLike)):
        return (AsyncFileBackend if asynchronous else FileBackend)(base_dir, create_if_missing, **options)
    raise InvalidArgumentError("Must provide either base_dir or backend")
