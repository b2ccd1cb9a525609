"""Storage backends: the file store and MongoDB."""

from .base import ResultsBackend
from .file import FileBackend
from .mongo import MongoBackend

__all__ = ["FileBackend", "MongoBackend", "ResultsBackend"]
