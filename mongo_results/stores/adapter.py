"""A backend written for ``results_manager`` under the managers: each operation becomes calls of its methods.

Such a backend has ``set``, ``get``, ``exists``, ``list_ids``, ``delete`` and ``clear``.

The operations yield :class:`CallBackend` commands instead of the core's, so the one
difference between a backend with plain methods and one with coroutines lives in the
two executors: :class:`AdaptedBackend` calls, :class:`AsyncAdaptedBackend` calls and awaits.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pydantic import BaseModel

from ..core.behaviors import SetBehavior
from ..core.commands import Batch, Command
from ..core.ids import ResultId, canonical_id, canonical_prefix
from ..core.names import optional_namespace
from ..core.operations import Operation, Operations
from ..core.reads import UNREADABLE, report_skipped
from ..errors import InvalidArgumentError, MongoResultsError, WrongTypeError
from ..registry import MODELS

__all__ = ["AsyncAdaptedBackend", "CallBackend", "Raised", "AdaptedBackend", "behavior_enum"]

_METHODS = ("set", "get", "exists", "list_ids", "delete", "clear")
# The seed's backends say "this result does not load" with ValueError (an unregistered type)
# or pydantic's ValidationError (a ValueError too); reads with on_error="skip" leave those out.
_UNREADABLE = (*UNREADABLE, ValueError)
_SEED_BEHAVIORS = ("RAISE_IF_EXISTS", "RAISE_IF_DIFFERENT", "OVERWRITE", "SKIP_IF_EXISTS")


@dataclass(frozen=True, slots=True)
class CallBackend:
    """Not one of the core's commands: call the backend's method ``name``; answered by its value or Raised."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Raised:
    """The reply when the backend's method raised: the operation decides (set_many collects, skips, re-raises)."""

    error: Exception


def behavior_enum(backend: Any) -> type[Enum]:
    """The enum the backend's ``set`` compares ``behavior`` with.

    Enum members of two classes never compare equal, even with the same values, so the
    backend must get members of its own class: the one its ``set`` defaults to or is
    annotated with, else a ``SetBehavior`` in the module of its class (or of a base
    class); this library's SetBehavior when it names none.
    """
    method = getattr(type(backend), "set", None) or backend.set
    parameter = _parameter(method, "behavior")
    if parameter is not None:
        if isinstance(parameter.default, Enum):
            return type(parameter.default)
        try:
            hint = typing.get_type_hints(method).get("behavior")
        except Exception:  # an annotation that does not resolve: the module's name is the next guess
            hint = None
        if isinstance(hint, type) and issubclass(hint, Enum):
            return hint
    for cls in type(backend).__mro__:
        found = getattr(inspect.getmodule(cls), "SetBehavior", None)
        if isinstance(found, type) and issubclass(found, Enum):
            return found
    return SetBehavior


def _parameter(method: Any, name: str) -> inspect.Parameter | None:
    try:
        return inspect.signature(method).parameters.get(name)
    except (TypeError, ValueError):  # a builtin or a callable without a signature
        return None


def _called(name: str, *args: Any, namespace: str | None = None, **kwargs: Any) -> Generator[Any, Any, Any]:
    """Call the backend's ``name`` through the executor; its value, or what it raised, raised here."""
    if namespace is not None:
        kwargs["namespace"] = namespace
    reply = yield CallBackend(name, args, kwargs)
    if not isinstance(reply, Raised):
        return reply
    error = reply.error
    if namespace is not None and isinstance(error, TypeError) and "namespace" in str(error):
        raise InvalidArgumentError(f"the backend's {name} takes no namespace") from error
    raise error


class _AdaptedOperations(Operations):
    """The core's operations, answered by the seed backend's own methods."""

    def __init__(self, backend: Any) -> None:
        super().__init__("", models=MODELS, where=repr(backend))
        self._behaviors = behavior_enum(backend)

    def _their(self, behavior: SetBehavior) -> Any:
        """``behavior`` as a member of the backend's own enum."""
        theirs = self._behaviors.__members__.get(behavior.name)
        if theirs is None:
            raise InvalidArgumentError(f"the backend's {self._behaviors.__qualname__} has no {behavior.name}")
        return theirs

    def _set(
        self, result_id: ResultId, data: BaseModel, behavior: Any, namespace: str | None, strict: bool
    ) -> Generator[Any, Any, bool]:
        # The library's own rules first: a backend written for results_manager may take
        # "a/../b" as a path, or fail on a value that is not a model with an AttributeError.
        result_id = canonical_id(result_id)
        optional_namespace(namespace)
        if not isinstance(data, BaseModel):
            raise WrongTypeError(f"set stores a pydantic model, not a {type(data).__name__} ({result_id!r})")
        try:
            ours = SetBehavior(getattr(behavior, "value", behavior))
        except ValueError:
            raise InvalidArgumentError(f"not a SetBehavior: {behavior!r}") from None
        if ours is not SetBehavior.KEEP_EXISTING:
            return bool((yield from _called("set", result_id, data, self._their(ours), namespace, strict)))
        # The seed's backends know only four behaviours (a ResultsBackend subclass too); RAISE_IF_EXISTS
        # is the one that writes only into an empty id, as atomically as the backend takes it.
        try:
            yield from _called("set", result_id, data, self._their(SetBehavior.RAISE_IF_EXISTS), namespace, strict)
        except FileExistsError:
            return False
        return True

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior,
        namespace: str | None,
        strict: bool,
        *,
        secrets: bool | None = None,
    ) -> Operation[bool]:
        return (yield from self._set(result_id, data, behavior, namespace, strict))

    def set_many(
        self,
        items: Mapping[str, BaseModel] | Iterable[tuple[ResultId, BaseModel]],
        behavior: SetBehavior,
        namespace: str | None,
        *,
        secrets: bool | None = None,
        raise_errors: bool = False,
    ) -> Operation[list[bool | BaseException]]:
        outcomes: list[bool | BaseException] = []
        for rid, model in items.items() if isinstance(items, Mapping) else items:
            try:
                outcomes.append((yield from self._set(rid, model, behavior, namespace, False)))
            except (MongoResultsError, ValueError, TypeError, FileExistsError) as exc:
                if raise_errors:
                    raise
                outcomes.append(exc)
        return outcomes

    def get(
        self, result_id: ResultId, model_class: type[BaseModel] | None, namespace: str | None
    ) -> Operation[BaseModel]:
        model: BaseModel = yield from self._get(result_id, model_class, namespace, None)
        return model

    def _get_many(
        self,
        result_ids: list[ResultId],
        model_class: type[BaseModel] | None,
        namespace: str | None,
        skipped: list[tuple[str, Exception]] | None,
    ) -> Operation[list[BaseModel]]:
        loaded = []
        for rid in result_ids:
            model = yield from self._get(rid, model_class, namespace, skipped)
            if model is not None:
                loaded.append(model)
        yield from report_skipped(skipped)
        return loaded

    def _iter_results(
        self,
        prefix: ResultId | None,
        model_class: type[BaseModel] | None,
        namespace: str | None,
        batch_size: int,
        skipped: list[tuple[str, Exception]] | None,
    ) -> Operation[None]:
        ids = yield from self.list_ids(prefix, namespace)
        for start in range(0, len(ids), batch_size):
            page = []
            for rid in ids[start : start + batch_size]:
                model = yield from self._get(rid, model_class, namespace, skipped)
                if model is not None:
                    page.append((rid, model))
            yield Batch(page)
        yield from report_skipped(skipped)

    def _get(
        self,
        result_id: ResultId,
        model_class: type[BaseModel] | None,
        namespace: str | None,
        skipped: list[tuple[str, Exception]] | None,
    ) -> Generator[Any, Any, Any]:
        # The seed's get takes the namespace as its third argument: always passed, by name.
        result_id = canonical_id(result_id)
        try:
            return (yield from _called("get", result_id, model_class=model_class, namespace=namespace))
        except _UNREADABLE as exc:
            if skipped is None:
                raise
            skipped.append((canonical_id(result_id), exc))
            return None

    def exists(self, result_id: ResultId, namespace: str | None) -> Operation[bool]:
        return bool((yield from _called("exists", canonical_id(result_id), namespace=namespace)))

    def list_ids(self, prefix: ResultId | None, namespace: str | None) -> Operation[list[str]]:
        # The library's promise, whatever the backend lists: canonical ids under the prefix by whole
        # segments, the prefix itself included (the seed's file backend lists only what is below it).
        p = canonical_prefix(prefix)
        ids = {canonical_id(rid) for rid in (yield from _called("list_ids", p or None, namespace=namespace))}
        if p and p not in ids and (yield from _called("exists", p, namespace=namespace)):
            ids.add(p)
        return sorted(rid for rid in ids if not p or rid == p or rid.startswith(p + "/"))

    def delete(self, result_id: ResultId, namespace: str | None) -> Operation[bool]:
        return bool((yield from _called("delete", canonical_id(result_id), namespace=namespace)))

    def clear(self) -> Operation[None]:
        yield from _called("clear")


class _Adapter:
    """What both flavours of the adapter share: the checks, the operations, the options."""

    def __init__(self, backend: Any) -> None:
        missing = [m for m in _METHODS if not callable(getattr(backend, m, None))]
        if missing:
            raise InvalidArgumentError(
                f"backend= needs a store (FileBackend, MongoBackend, ...) or an object with the methods of "
                f"results_manager's backends; {type(backend).__name__} lacks {', '.join(missing)}"
            )
        self.backend = backend
        self._ops = _AdaptedOperations(backend)

    @property
    def store_secrets(self) -> bool:
        return bool(getattr(self.backend, "store_secrets", False))

    @store_secrets.setter
    def store_secrets(self, value: bool) -> None:
        self.backend.store_secrets = value

    def _operations(self) -> Operations:
        return self._ops

    def _check(self, command: Command | CallBackend) -> CallBackend:
        if not isinstance(command, CallBackend):  # find, documents, upgrade...: the core's commands need a store
            raise WrongTypeError(
                f"{type(self.backend).__name__} has only results_manager's methods; this call needs a store "
                f"(FileBackend, MongoBackend...), not {type(command).__name__}"
            )
        return command

    def _call(self, command: CallBackend) -> Any:
        """The backend method's value (an awaitable for a coroutine method), or Raised."""
        try:
            return getattr(self.backend, command.name)(*command.args, **command.kwargs)
        except Exception as exc:  # the operation sees it: set_many collects it, reads may skip it
            return Raised(exc)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend!r})"


class AdaptedBackend(_Adapter):
    """Adapts a ``results_manager``-style backend with plain methods to :class:`ResultsManager`."""

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        coroutines = [m for m in _METHODS if inspect.iscoroutinefunction(getattr(backend, m))]
        if coroutines:
            raise WrongTypeError(
                f"{type(backend).__name__}'s {', '.join(coroutines)} are coroutines: use AsyncResultsManager"
            )

    def _execute(self, command: Command | CallBackend) -> Any:
        call = self._check(command)
        reply = self._call(call)
        if inspect.isawaitable(reply):
            if inspect.iscoroutine(reply):
                reply.close()  # never to be awaited: no "was never awaited" warning
            raise WrongTypeError(
                f"{type(self.backend).__name__}.{call.name} returned an awaitable: use AsyncResultsManager"
            )
        return reply

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()


class AsyncAdaptedBackend(_Adapter):
    """Adapts a ``results_manager``-style backend to :class:`AsyncResultsManager`: coroutine methods awaited."""

    async def _execute(self, command: Command | CallBackend) -> Any:
        reply = self._call(self._check(command))
        if not inspect.isawaitable(reply):
            return reply
        try:
            return await reply
        except Exception as exc:
            return Raised(exc)

    async def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result
