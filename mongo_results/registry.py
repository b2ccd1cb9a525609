"""The model registry: which pydantic class a stored ``model_type`` names.

Same semantics as ``results_manager.model_registry``: models live in
namespaces, a non-default namespace wins when a model is in several, and
``strict=True`` refuses to guess between several non-default ones.

A registration is also written on the class itself, so that it travels with
the class: joblib's loky, Dask and Ray send what a script defines by value
(cloudpickle), and the process that receives such a class has never run its
``register_model``. Unpickling the record hands the class to that process's
registry, which takes it in at its next lookup.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any, TypeVar, cast, get_args, get_origin, overload

from pydantic import BaseModel

from .core.encoding import Encoders
from .core.names import DEFAULT_NAMESPACE
from .errors import InvalidArgumentError, ModelConflictError, WrongTypeError

__all__ = [
    "DEFAULT_NAMESPACE",
    "clear_registry",
    "find_model_in_all_namespaces",
    "find_model_namespace",
    "get_model_class",
    "get_indexes",
    "get_models_in_namespace",
    "get_namespaces",
    "register_model",
]

M = TypeVar("M", bound=type[BaseModel])

# {namespace: {model name: model class}}
_REGISTRY: dict[str, dict[str, type[BaseModel]]] = {}
# {(namespace, model name): ((field, direction), ...)}: indexes on result fields, for find()
_INDEXES: dict[tuple[str, str], tuple[tuple[str, int], ...]] = {}


# The attribute of a registered class that holds its registration.
_RECORD = "__mongo_results__"
# Classes unpickled by value since the last lookup, with the registration they carry.
_ARRIVED: list[type[BaseModel]] = []
_ARRIVED_LOCK = threading.Lock()  # unpickling may happen on any thread (Dask's event loop, for one)
# Every read and change of the registry: a thread that registers (or takes in a class that
# arrived) while another lists the namespaces must not change a dict under its iteration.
_LOCK = threading.RLock()
F = TypeVar("F", bound=Callable[..., Any])


def _locked(function: F) -> F:
    @functools.wraps(function)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return function(*args, **kwargs)

    return cast(F, locked)


class _Registration:
    """What ``register_model`` leaves on a class: where it is registered, with which indexes.

    ``namespaces`` is in the order of the registry of the process that registered it, so
    that a process receiving the class prefers the same namespace among several.
    """

    __slots__ = ("indexes", "model_class", "namespaces")

    def __init__(
        self,
        model_class: type[BaseModel],
        namespaces: tuple[str, ...],
        indexes: tuple[tuple[str, tuple[tuple[str, int], ...]], ...],
    ) -> None:
        self.model_class, self.namespaces, self.indexes = model_class, namespaces, indexes

    def __reduce__(self) -> tuple[Any, ...]:
        # By value, the class's state (this record among it) is unpickled before it is
        # set on the class: the registry can only take the class in later, at a lookup.
        return (_arrived, (self.model_class, self.namespaces, self.indexes))

    def __repr__(self) -> str:
        return f"<registered in {', '.join(self.namespaces) or 'no namespace'}>"


def _arrived(
    model_class: type[BaseModel],
    namespaces: tuple[str, ...],
    indexes: tuple[tuple[str, tuple[tuple[str, int], ...]], ...],
) -> _Registration:
    with _ARRIVED_LOCK:
        if not any(cls is model_class for cls in _ARRIVED):
            _ARRIVED.append(model_class)
    return _Registration(model_class, namespaces, indexes)


def _record_of(model_class: type[BaseModel]) -> _Registration | None:
    # The class's own record only: a subclass of a registered model inherits the attribute.
    record = model_class.__dict__.get(_RECORD)
    return record if isinstance(record, _Registration) and record.model_class is model_class else None


def _write_record(model_class: type[BaseModel]) -> None:
    """Record on the class where this process's registry holds it (nowhere: no record)."""
    name = model_class.__name__
    namespaces = tuple(ns for ns, models in _REGISTRY.items() if models.get(name) is model_class)
    if not namespaces:
        if _RECORD in model_class.__dict__:
            delattr(model_class, _RECORD)
        return
    indexes = tuple((ns, _INDEXES[(ns, name)]) for ns in namespaces if (ns, name) in _INDEXES)
    setattr(model_class, _RECORD, _Registration(model_class, namespaces, indexes))


def _drop_from_record(model_class: type[BaseModel], namespace: str | None) -> None:
    """Take one namespace (None: all) out of a class's record, as the registry forgets it there."""
    record = _record_of(model_class)
    if record is None:
        return
    kept = () if namespace is None else tuple(ns for ns in record.namespaces if ns != namespace)
    if kept:
        indexes = tuple((ns, spec) for ns, spec in record.indexes if ns in kept)
        setattr(model_class, _RECORD, _Registration(model_class, kept, indexes))
    else:
        delattr(model_class, _RECORD)


# A script is ``__main__`` where it runs and ``__mp_main__`` where a spawned worker imports it again.
_MAIN = frozenset({"__main__", "__mp_main__"})


def _same_definition(one: type, other: type) -> bool:
    """Whether two classes come from the same place in the same source: one definition, two routes."""
    modules = {one.__module__, other.__module__}
    return one.__qualname__ == other.__qualname__ and (len(modules) == 1 or modules <= _MAIN)


def _same_type(one: Any, other: Any, seen: set[tuple[int, int]]) -> bool:
    """Whether two field types are one definition, maybe reached by two routes.

    A class a script defines (nested model, Enum) arrives by value in a worker as a new object,
    and a spawned worker imports the script again as ``__mp_main__``: identity cannot tell them
    apart, so such classes are compared by definition, their fields compared the same way.
    """
    if one is other or (not isinstance(one, type) and _equal(one, other)):
        return True
    if isinstance(one, type) and isinstance(other, type):
        if not _same_definition(one, other):
            return False
        if (id(one), id(other)) in seen:  # a recursive model: its fields are being compared
            return True
        seen.add((id(one), id(other)))
        if issubclass(one, BaseModel) and issubclass(other, BaseModel):
            mine, theirs = one.model_fields, other.model_fields
            return list(mine) == list(theirs) and all(
                _same_type(mine[f].annotation, theirs[f].annotation, seen) for f in mine
            )
        if issubclass(one, Enum) and issubclass(other, Enum):
            return [(m.name, m.value) for m in one] == [(m.name, m.value) for m in other]
        hints, others = getattr(one, "__annotations__", {}), getattr(other, "__annotations__", {})
        return list(hints) == list(others) and all(_same_type(hints[k], others[k], seen) for k in hints)
    origin = get_origin(one)
    if origin is None or not _same_type(origin, get_origin(other), seen):
        return False
    args, other_args = get_args(one), get_args(other)
    return len(args) == len(other_args) and all(_same_type(a, b, seen) for a, b in zip(args, other_args, strict=True))


def _equal(one: Any, other: Any) -> bool:
    try:
        return bool(one == other)
    except Exception:  # an annotation's metadata whose == refuses a stranger
        return False


def _place(cls: type[BaseModel], namespace: str, arrived: bool = False) -> None:
    """Put ``cls`` under its name in ``namespace``, by the re-registration rule.

    A class that ``arrived`` by value replaces its own definition without a warning: a
    Dask worker spawned from a script imports the script again (as ``__mp_main__``),
    registering the very class the tasks then bring by value.

    Raises:
        ModelConflictError: another class with other fields (or field types) has the name there.
    """
    name = cls.__name__
    models = _REGISTRY.setdefault(namespace, {})
    existing = models.get(name)
    if existing is not None and existing is not cls:
        old, new = existing.model_fields, cls.model_fields
        if set(old) != set(new):
            raise ModelConflictError(
                f"Model '{name}' is already registered in namespace '{namespace}' with different "
                f"fields. Existing fields: {sorted(old)}, New fields: {sorted(new)}"
            )
        for field in old:
            if not _same_type(old[field].annotation, new[field].annotation, set()):
                raise ModelConflictError(
                    f"Model '{name}' is already registered in namespace '{namespace}' with a "
                    f"different type for field '{field}': {old[field].annotation} vs {new[field].annotation}"
                )
        if not (arrived and _same_definition(cls, existing)):
            warnings.warn(
                f"Model '{name}' is already registered in namespace '{namespace}'. "
                "Replacing it with a new class of the same structure.",
                UserWarning,
                stacklevel=4,
            )
        _drop_from_record(existing, namespace)
    models[name] = cls


@_locked
def _register(model_class: M, namespace: str, indexes: tuple[tuple[str, int], ...]) -> M:
    if not (isinstance(model_class, type) and issubclass(model_class, BaseModel)):
        raise WrongTypeError("Registered model must be a subclass of pydantic.BaseModel")
    cls: type[BaseModel] = model_class
    _settle(cls.__name__)
    _place(cls, namespace)
    if indexes:
        _INDEXES[(namespace, cls.__name__)] = indexes
    _write_record(cls)
    return model_class


def _adopt(cls: type[BaseModel]) -> None:
    """Take in a class that arrived by value, in the namespaces its record names.

    Raises:
        ModelConflictError: a different class is registered under its name with other fields.
    """
    record = _record_of(cls)
    if record is None:
        return
    specs = dict(record.indexes)
    for namespace in record.namespaces:
        if _REGISTRY.get(namespace, {}).get(cls.__name__) is not cls:
            _place(cls, namespace, arrived=True)
        if namespace in specs:
            _INDEXES[(namespace, cls.__name__)] = specs[namespace]


@_locked
def _settle(name: str | None = None) -> None:
    """Take in the classes that arrived by value: those named ``name``, or all that fit.

    Raises:
        ModelConflictError: a class named ``name`` arrived that clashes with the registered
            one. It stays waiting, so every lookup of that name says so; a lookup of every
            name (``name`` None) leaves it for those.
    """
    if not _ARRIVED:
        return
    with _ARRIVED_LOCK:
        waiting = [cls for cls in _ARRIVED if name is None or cls.__name__ == name]
    for cls in waiting:
        try:
            _adopt(cls)
        except ModelConflictError:
            if name is not None:
                raise
            continue
        with _ARRIVED_LOCK:
            _ARRIVED[:] = [c for c in _ARRIVED if c is not cls]


Indexes = Sequence[str | tuple[str, int]]


@overload
def register_model(model_class_or_namespace: M, *, namespace: str = ..., indexes: Indexes = ...) -> M: ...
@overload
def register_model(
    model_class_or_namespace: str | None = None, *, namespace: str = ..., indexes: Indexes = ...
) -> Callable[[M], M]: ...


def register_model(
    model_class_or_namespace: Any = None, *, namespace: str = DEFAULT_NAMESPACE, indexes: Indexes = ()
) -> Any:
    """Register a model class, as a decorator (with or without a namespace) or directly.

    ``@register_model``, ``@register_model(namespace="ns")``, ``@register_model("ns")``
    and ``register_model(Model, namespace="ns")`` all work. ``indexes`` names fields of the
    model (dotted into nested ones; ``("field", -1)`` for descending) that get an index in
    the namespace's collection, for ``find``.

    The registration is also recorded on the class, so a class sent by value to another
    process (joblib, Dask, Ray) stores and reads there in the same namespace.

    Args:
        model_class_or_namespace: the class to register, or the namespace (decorator form).
        namespace: the namespace, when not given positionally.
        indexes: fields to index in the namespace's collection.

    Returns:
        The class itself, or a decorator that registers and returns it.

    Raises:
        WrongTypeError: what is registered is not a pydantic model class.
        ModelConflictError: another class with other fields is registered under the name.
        InvalidArgumentError: an index is neither a field name nor a ``(field, 1 | -1)`` pair.
    """
    wanted = _index_spec(indexes)
    if isinstance(model_class_or_namespace, type):
        return _register(model_class_or_namespace, namespace, wanted)
    ns = model_class_or_namespace if isinstance(model_class_or_namespace, str) else namespace

    def decorator(model_class: M) -> M:
        return _register(model_class, ns, wanted)

    return decorator


def _index_spec(indexes: Indexes) -> tuple[tuple[str, int], ...]:
    spec = []
    for item in indexes:
        field, direction = (item, 1) if isinstance(item, str) else item
        if not isinstance(field, str) or not field or direction not in (1, -1):
            raise InvalidArgumentError(f"an index is a field name or a (field, 1 | -1) pair, not {item!r}")
        spec.append((field, direction))
    return tuple(spec)


@_locked
def get_indexes(namespace: str = DEFAULT_NAMESPACE) -> list[tuple[str, int]]:
    """List the result fields indexed in ``namespace``, from its registered models' ``indexes``.

    Args:
        namespace: The namespace.

    Returns:
        ``(field, 1 | -1)`` pairs, sorted.
    """
    _settle()
    found = {pair for (ns, _), spec in _INDEXES.items() if ns == namespace for pair in spec}
    return sorted(found)


@_locked
def get_model_class(model_name: str, namespace: str = DEFAULT_NAMESPACE) -> type[BaseModel] | None:
    """Look up the class registered under ``model_name`` in ``namespace``.

    Args:
        model_name: The class's name, as stored in results' ``model_type``.
        namespace: The namespace to look in.

    Returns:
        The class, or None if none is registered under that name there.
    """
    _settle(model_name)
    return _REGISTRY.get(namespace, {}).get(model_name)


@_locked
def find_model_namespace(model_class: type[BaseModel], strict: bool = False) -> str | None:
    """Find the namespace a class is registered in, preferring a non-default one.

    Args:
        model_class: The registered class.
        strict: Raise instead of picking the first when the class is in several non-default
            namespaces.

    Returns:
        The namespace (the first non-default one, else the default one), or None if the class
        is not registered.

    Raises:
        ModelConflictError: ``strict`` and the class is in several non-default namespaces
            (a ``ValueError``).
    """
    name = model_class.__name__
    _settle(name)
    _adopt(model_class)
    record = _record_of(model_class)
    order = record.namespaces if record is not None else tuple(_REGISTRY)
    found = [ns for ns in order if _REGISTRY.get(ns, {}).get(name) is model_class]
    if not found:
        return None
    non_default = [ns for ns in found if ns != DEFAULT_NAMESPACE]
    if strict and len(non_default) > 1:
        raise ModelConflictError(
            f"Model '{name}' is registered in multiple non-default namespaces: "
            f"{', '.join(non_default)}. Specify a namespace explicitly."
        )
    return non_default[0] if non_default else DEFAULT_NAMESPACE


@_locked
def find_model_in_all_namespaces(model_name: str) -> list[tuple[str, type[BaseModel]]]:
    """Find every class registered under ``model_name``, in any namespace.

    Args:
        model_name: The class's name.

    Returns:
        ``(namespace, class)`` pairs, in the order the namespaces were first registered into.
    """
    _settle(model_name)
    return [(ns, models[model_name]) for ns, models in _REGISTRY.items() if model_name in models]


@_locked
def clear_registry(namespace: str | None = None) -> None:
    """Forget every registration (and declared index), or only those of one namespace.

    Args:
        namespace: The namespace to clear; None clears every namespace.
    """
    with _ARRIVED_LOCK:
        waiting = list(_ARRIVED)
        if namespace is None:
            _ARRIVED.clear()
    if namespace is None:
        for cls in {*waiting, *(cls for models in _REGISTRY.values() for cls in models.values())}:
            _drop_from_record(cls, None)
        _REGISTRY.clear()
        _INDEXES.clear()
        return
    for cls in {*waiting, *_REGISTRY.get(namespace, {}).values()}:
        _drop_from_record(cls, namespace)
    if namespace in _REGISTRY:
        _REGISTRY[namespace].clear()
        for key in [k for k in _INDEXES if k[0] == namespace]:
            del _INDEXES[key]


@_locked
def get_namespaces() -> list[str]:
    """List every namespace that has been registered into.

    Returns:
        The namespaces, in the order they were first registered into.
    """
    _settle()
    return list(_REGISTRY)


@_locked
def get_models_in_namespace(namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """List the model names registered in ``namespace``.

    Args:
        namespace: The namespace.

    Returns:
        The class names, in registration order (empty for an unknown namespace).
    """
    _settle()
    return list(_REGISTRY.get(namespace, {}))


class _Registered:
    """The registry as the core's ``Models``: what the stores hand their operations."""

    def __init__(self) -> None:
        self.encoders = Encoders()

    def class_for(self, model_type: str, namespace: str) -> type[BaseModel] | None:
        return get_model_class(model_type, namespace)

    def everywhere(self, model_type: str) -> list[tuple[str, type[BaseModel]]]:
        return find_model_in_all_namespaces(model_type)

    def namespace_of(self, model_class: type[BaseModel], strict: bool) -> str | None:
        return find_model_namespace(model_class, strict=strict)

    @_locked
    def in_namespace(self, namespace: str) -> Mapping[str, type[BaseModel]]:
        _settle()
        return dict(_REGISTRY.get(namespace, {}))

    def indexes(self, namespace: str) -> list[tuple[str, int]]:
        return get_indexes(namespace)


MODELS = _Registered()  # not in __all__: ``from mongo_results.registry import *`` gives the functions only
