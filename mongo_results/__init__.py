"""mongo_results: keep the pydantic results of parallel jobs in MongoDB.

The public API of ``results_manager`` (``ResultsManager``, ``SetBehavior``,
``register_model`` and namespaces) over MongoDB, the embedded mongomock store
or a directory of JSON files. Every error is in ``mongo_results.errors``; the
ones most code catches are here too.
"""

from __future__ import annotations

import warnings
from typing import Any

from . import errors, registry
from .backends import AsyncResultsBackend, ResultsBackend
from .core.behaviors import SetBehavior
from .core.ids import canonical_id
from .errors import ModelNotRegisteredError, MongoResultsError, ResultExistsError, ResultNotFoundError
from .manager import AsyncClaim, AsyncResultsManager, Claim, ResultsManager
from .registry import *  # noqa: F403 (the registry's functions: registry.__all__)
from .stores import AsyncFileBackend, AsyncMongoBackend, FileBackend, MongoBackend

__all__ = [
    "AsyncClaim",
    "AsyncFileBackend",
    "AsyncMongoBackend",
    "AsyncResultsBackend",
    "AsyncResultsManager",
    "Claim",
    "FileBackend",
    "ModelNotRegisteredError",
    "MongoBackend",
    "MongoResultsError",
    "ResultExistsError",
    "ResultNotFoundError",
    "ResultsBackend",
    "ResultsManager",
    "SetBehavior",
    "canonical_id",
    *registry.__all__,
]

__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    """The other errors, importable from here as in 0.1, with a ``DeprecationWarning``."""
    if name in errors.__all__:
        warnings.warn(
            f"import {name} from mongo_results.errors; mongo_results.{name} goes in 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
