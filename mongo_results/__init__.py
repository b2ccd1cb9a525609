"""mongo_results: keep the pydantic results of parallel jobs in MongoDB.

The public API of ``results_manager`` (``ResultsManager``, ``SetBehavior``,
``register_model`` and namespaces) over MongoDB, the embedded mongomock store
or a directory of JSON files.
"""

from . import errors, registry
from .backends import AsyncResultsBackend, ResultsBackend
from .core.behaviors import SetBehavior
from .core.ids import canonical_id
from .errors import *  # noqa: F403 (every error is public: errors.__all__)
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
    "MongoBackend",
    "ResultsBackend",
    "ResultsManager",
    "SetBehavior",
    "canonical_id",
    *errors.__all__,
    *registry.__all__,
]

__version__ = "0.1.0"
