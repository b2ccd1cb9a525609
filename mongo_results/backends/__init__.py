"""Storage backends: the file store and MongoDB, each for sync and asyncio code."""

from .base import AsyncResultsBackend, ResultsBackend
from .file import FileBackend
from .file_async import AsyncFileBackend
from .mongo import MongoBackend
from .mongo_async import AsyncMongoBackend

__all__ = [
    "AsyncFileBackend",
    "AsyncMongoBackend",
    "AsyncResultsBackend",
    "FileBackend",
    "MongoBackend",
    "ResultsBackend",
]
