"""The model registry: which pydantic class a stored ``model_type`` names.

Same semantics as ``results_manager.model_registry``: models live in
namespaces, a non-default namespace wins when a model is in several, and
``strict=True`` refuses to guess between several non-default ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

from pydantic import BaseModel

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


def _register(model_class: M, namespace: str) -> M:
    if not (isinstance(model_class, type) and issubclass(model_class, BaseModel)):
        raise WrongTypeError("Registered model must be a subclass of pydantic.BaseModel")
    cls: type[BaseModel] = model_class
    name = cls.__name__
    models = _REGISTRY.setdefault(namespace, {})
    existing = models.get(name)
    if existing is not None and existing is not model_class:
        old, new = existing.model_fields, cls.model_fields
        if set(old) != set(new):
            raise ModelConflictError(
                f"Model '{name}' is already registered in namespace '{namespace}' with different "
                f"fields. Existing fields: {sorted(old)}, New fields: {sorted(new)}"
            )
        for field in old:
            if old[field].annotation != new[field].annotation:
                raise ModelConflictError(
                    f"Model '{name}' is already registered in namespace '{namespace}' with a "
                    f"different type for field '{field}': {old[field].annotation} vs {new[field].annotation}"
                )
        warnings.warn(
            f"Model '{name}' is already registered in namespace '{namespace}'. "
            "Replacing it with a new class of the same structure.",
            UserWarning,
            stacklevel=3,
        )
    models[name] = model_class
    return model_class


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
    and ``register_model(Model, namespace="ns")`` all work. Registering a class again is a
    no-op; a new class of the same name and structure replaces the old one with a warning.

    Args:
        model_class_or_namespace: The model class (registered directly), a namespace (the
            decorator form ``@register_model("ns")``), or None (``@register_model(...)``).
        namespace: The namespace to register into, when not given positionally.
        indexes: Fields of the model (dotted into nested ones; ``("field", -1)`` for
            descending) that get an index in the namespace's collection, for ``find``.

    Returns:
        The class itself when a class is given; otherwise a decorator that registers the
        class it decorates and returns it.

    Raises:
        WrongTypeError: The class is not a pydantic model (a ``TypeError``).
        ModelConflictError: Another class of the same name but other fields or field types is
            registered in the namespace (a ``ValueError``).
        InvalidArgumentError: An index is not a field name or a ``(field, 1 | -1)`` pair.
    """
    wanted = _index_spec(indexes)
    if isinstance(model_class_or_namespace, type):
        return _indexed(_register(model_class_or_namespace, namespace), namespace, wanted)
    ns = model_class_or_namespace if isinstance(model_class_or_namespace, str) else namespace

    def decorator(model_class: M) -> M:
        return _indexed(_register(model_class, ns), ns, wanted)

    return decorator


def _index_spec(indexes: Indexes) -> tuple[tuple[str, int], ...]:
    spec = []
    for item in indexes:
        field, direction = (item, 1) if isinstance(item, str) else item
        if not isinstance(field, str) or not field or direction not in (1, -1):
            raise InvalidArgumentError(f"an index is a field name or a (field, 1 | -1) pair, not {item!r}")
        spec.append((field, direction))
    return tuple(spec)


def _indexed(model_class: M, namespace: str, spec: tuple[tuple[str, int], ...]) -> M:
    if spec:
        _INDEXES[(namespace, model_class.__name__)] = spec
    return model_class


def get_indexes(namespace: str = DEFAULT_NAMESPACE) -> list[tuple[str, int]]:
    """List the result fields indexed in ``namespace``, from its registered models' ``indexes``.

    Args:
        namespace: The namespace.

    Returns:
        ``(field, 1 | -1)`` pairs, sorted.
    """
    found = {pair for (ns, _), spec in _INDEXES.items() if ns == namespace for pair in spec}
    return sorted(found)


def get_model_class(model_name: str, namespace: str = DEFAULT_NAMESPACE) -> type[BaseModel] | None:
    """Look up the class registered under ``model_name`` in ``namespace``.

    Args:
        model_name: The class's name, as stored in results' ``model_type``.
        namespace: The namespace to look in.

    Returns:
        The class, or None if none is registered under that name there.
    """
    return _REGISTRY.get(namespace, {}).get(model_name)


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
    found = [ns for ns, models in _REGISTRY.items() if models.get(name) is model_class]
    if not found:
        return None
    non_default = [ns for ns in found if ns != DEFAULT_NAMESPACE]
    if strict and len(non_default) > 1:
        raise ModelConflictError(
            f"Model '{name}' is registered in multiple non-default namespaces: "
            f"{', '.join(non_default)}. Specify a namespace explicitly."
        )
    return non_default[0] if non_default else DEFAULT_NAMESPACE


def find_model_in_all_namespaces(model_name: str) -> list[tuple[str, type[BaseModel]]]:
    """Find every class registered under ``model_name``, in any namespace.

    Args:
        model_name: The class's name.

    Returns:
        ``(namespace, class)`` pairs, in the order the namespaces were first registered into.
    """
    return [(ns, models[model_name]) for ns, models in _REGISTRY.items() if model_name in models]


def clear_registry(namespace: str | None = None) -> None:
    """Forget every registration (and declared index), or only those of one namespace.

    Args:
        namespace: The namespace to clear; None clears every namespace.
    """
    if namespace is None:
        _REGISTRY.clear()
        _INDEXES.clear()
    elif namespace in _REGISTRY:
        _REGISTRY[namespace].clear()
        for key in [k for k in _INDEXES if k[0] == namespace]:
            del _INDEXES[key]


def get_namespaces() -> list[str]:
    """List every namespace that has been registered into.

    Returns:
        The namespaces, in the order they were first registered into.
    """
    return list(_REGISTRY)


def get_models_in_namespace(namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """List the model names registered in ``namespace``.

    Args:
        namespace: The namespace.

    Returns:
        The class names, in registration order (empty for an unknown namespace).
    """
    return list(_REGISTRY.get(namespace, {}))


class _Registered:
    """The registry as the core's ``Models``: what the stores hand their operations."""

    def class_for(self, model_type: str, namespace: str) -> type[BaseModel] | None:
        return get_model_class(model_type, namespace)

    def everywhere(self, model_type: str) -> list[tuple[str, type[BaseModel]]]:
        return find_model_in_all_namespaces(model_type)

    def namespace_of(self, model_class: type[BaseModel], strict: bool) -> str | None:
        return find_model_namespace(model_class, strict=strict)

    def in_namespace(self, namespace: str) -> Mapping[str, type[BaseModel]]:
        return dict(_REGISTRY.get(namespace, {}))

    def indexes(self, namespace: str) -> list[tuple[str, int]]:
        return get_indexes(namespace)


MODELS = _Registered()  # not in __all__: ``from mongo_results.registry import *`` gives the functions only
