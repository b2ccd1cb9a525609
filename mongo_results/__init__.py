"""mongo_results: keep the pydantic results of parallel jobs in MongoDB.

The public API of ``results_manager`` (``ResultsManager``, ``SetBehavior``,
``register_model`` and namespaces) over MongoDB, the embedded mongomock store
or a directory of JSON files.
"""

from .backends import (
    AsyncFileBackend,
    AsyncMongoBackend,
    AsyncResultsBackend,
    FileBackend,
    MongoBackend,
    ResultsBackend,
)
from .behaviors import SetBehavior
from .errors import (
    AmbiguousResultError,
    CorruptResultError,
    DocumentTooLargeError,
    InvalidIdError,
    InvalidNamespaceError,
    InvalidUriError,
    LossyValueError,
    ModelNotRegisteredError,
    MongoResultsError,
    OutcomeUnknownError,
    RejectedByServerError,
    ResultExistsError,
    ResultNotFoundError,
    SetManyInterruptedError,
    StoreNotFoundError,
    StoreUnavailableError,
    UnsupportedTypeError,
)
from .ids import canonical_id
from .manager import AsyncResultsManager, ResultsManager
from .registry import (
    DEFAULT_NAMESPACE,
    clear_registry,
    find_model_in_all_namespaces,
    find_model_namespace,
    get_model_class,
    get_models_in_namespace,
    get_namespaces,
    register_model,
)

__all__ = [
    "DEFAULT_NAMESPACE",
    "AmbiguousResultError",
    "AsyncFileBackend",
    "AsyncMongoBackend",
    "AsyncResultsBackend",
    "AsyncResultsManager",
    "CorruptResultError",
    "DocumentTooLargeError",
    "FileBackend",
    "InvalidIdError",
    "InvalidNamespaceError",
    "InvalidUriError",
    "LossyValueError",
    "ModelNotRegisteredError",
    "MongoBackend",
    "MongoResultsError",
    "OutcomeUnknownError",
    "RejectedByServerError",
    "ResultExistsError",
    "ResultNotFoundError",
    "ResultsBackend",
    "ResultsManager",
    "SetBehavior",
    "StoreNotFoundError",
    "SetManyInterruptedError",
    "StoreUnavailableError",
    "UnsupportedTypeError",
    "canonical_id",
    "clear_registry",
    "find_model_in_all_namespaces",
    "find_model_namespace",
    "get_model_class",
    "get_models_in_namespace",
    "get_namespaces",
    "register_model",
]

__version__ = "0.1.0"
