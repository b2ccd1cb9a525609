"""A backend written for ``results_manager`` (``set``, ``get``, ``exists``, ``list_ids``, ``delete``,
``clear``) under the managers: each operation becomes calls to its methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.commands import Batch, Command
from ..core.loading import UNREADABLE, report_skipped
from ..core.operations import Operation, Operations
from ..errors import InvalidArgumentError, MongoResultsError
from ..ids import ResultId, canonical_id

__all__ = ["SeedBackend"]


class _SeedOperations(Operations):
    """The core's operations, answered by the seed backend's own methods (no commands)."""

    def __init__(self, backend: Any) -> None:
        super().__init__("")
        self.backend = backend

    def _call(self, name: str, *args: Any, namespace: str | None = None, **kwargs: Any) -> Any:
        if namespace is not None:
            kwargs["namespace"] = namespace
        try:
            return getattr(self.backend, name)(*args, **kwargs)
        except TypeError as exc:
            if namespace is not None and "namespace" in str(exc):
                raise InvalidArgumentError(f"{type(self.backend).__name__}.{name} takes no namespace") from exc
            raise

    # Arguments arrive as the managers pass them to the core's operations; each becomes one
    # call (or a loop of calls) of the backend's own methods, and sends no command.
    def set(self, *args: Any, secrets: bool = False) -> Operation[bool]:
        return bool(self.backend.set(*args))
        yield

    def set_many(self, items: Any, *args: Any, secrets: bool = False, raise_errors: bool = False) -> Operation[Any]:
        outcomes: list[bool | BaseException] = []
        for rid, model in items.items() if isinstance(items, Mapping) else items:
            try:
                outcomes.append(bool(self.backend.set(rid, model, *args, False)))
            except (MongoResultsError, ValueError, TypeError, FileExistsError) as exc:
                if raise_errors:
                    raise
                outcomes.append(exc)
        return outcomes
        yield

    def get(self, *args: Any) -> Operation[Any]:
        return self.backend.get(*args)
        yield

    def get_many(self, result_ids: Sequence[ResultId], *args: Any, skipped: Any = None) -> Operation[list[Any]]:
        loaded = [self._get(rid, *args, skipped=skipped) for rid in result_ids]
        report_skipped(skipped)
        return [model for model in loaded if model is not None]
        yield

    def iter_results(
        self, prefix: Any, model_class: Any, namespace: Any, batch_size: int, skipped: Any = None
    ) -> Operation[None]:
        ids = self._call("list_ids", prefix, namespace=namespace)
        for start in range(0, len(ids), batch_size):
            page = [
                (rid, self._get(rid, model_class, namespace, skipped=skipped))
                for rid in ids[start : start + batch_size]
            ]
            yield Batch([(rid, model) for rid, model in page if model is not None])
        report_skipped(skipped)

    def _get(self, result_id: ResultId, *args: Any, skipped: list[tuple[str, Exception]] | None) -> Any:
        try:
            return self.backend.get(result_id, *args)
        except UNREADABLE as exc:
            if skipped is None:
                raise
            skipped.append((canonical_id(result_id), exc))
            return None

    def exists(self, result_id: ResultId, namespace: str | None) -> Operation[bool]:
        return bool(self._call("exists", canonical_id(result_id), namespace=namespace))
        yield

    def list_ids(self, prefix: Any, namespace: str | None) -> Operation[list[str]]:
        return sorted(self._call("list_ids", prefix, namespace=namespace))
        yield

    def delete(self, result_id: ResultId, namespace: str | None) -> Operation[bool]:
        return bool(self._call("delete", canonical_id(result_id), namespace=namespace))
        yield

    def clear(self) -> Operation[None]:
        self.backend.clear()
        return
        yield


class SeedBackend:
    """Adapts a ``results_manager``-style backend object to the managers."""

    def __init__(self, backend: Any) -> None:
        missing = [
            m
            for m in ("set", "get", "exists", "list_ids", "delete", "clear")
            if not callable(getattr(backend, m, None))
        ]
        if missing:
            raise InvalidArgumentError(
                f"backend= needs a store (FileBackend, MongoBackend, ...) or an object with the methods of "
                f"results_manager's backends; {type(backend).__name__} lacks {', '.join(missing)}"
            )
        self.backend = backend
        self._ops = _SeedOperations(backend)

    @property
    def store_secrets(self) -> bool:
        return bool(getattr(self.backend, "store_secrets", False))

    @store_secrets.setter
    def store_secrets(self, value: bool) -> None:
        self.backend.store_secrets = value

    def operations(self) -> Operations:
        return self._ops

    def execute(self, command: Command) -> Any:
        raise MongoResultsError(f"{type(self.backend).__name__} runs no commands: {command!r}")  # pragma: no cover

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"SeedBackend({self.backend!r})"
