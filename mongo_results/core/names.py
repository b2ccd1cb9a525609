"""Namespaces and collection names: what is valid, where a ``set`` writes, and the models each namespace holds."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from ..errors import InvalidNamespaceError

if TYPE_CHECKING:
    from .encoding import Encoders

__all__ = [
    "CLAIMS",
    "FAILURES",
    "GRIDFS",
    "DEFAULT_COLLECTION_PREFIX",
    "DEFAULT_NAMESPACE",
    "Models",
    "namespaces_in",
    "optional_namespace",
    "resolve_namespace",
    "collection_name",
    "validate_collection_prefix",
    "validate_namespace",
]

DEFAULT_COLLECTION_PREFIX = "results."
DEFAULT_NAMESPACE = "default"
"""The namespace of models registered without one."""
GRIDFS = "_gridfs"  # the GridFS bucket of results over 16 MiB: <prefix>_gridfs.files and .chunks
CLAIMS = "_claims"  # the claims of sweeps' workers: <prefix>_claims
FAILURES = "_failures"  # the cells whose work raised: <prefix>_failures
RESERVED = {
    GRIDFS: "holds results over 16 MiB",
    CLAIMS: "holds the claims of sweeps",
    FAILURES: "holds the failures of sweeps' cells",
}
# A store's own collections are <prefix><tail>. Prefixes are free, so a results collection ending
# with a tail could be another store's own collection ("results._" + "claims" is "results." +
# "_claims"): no results collection of any store may end with one.
OWN_TAILS = (CLAIMS, FAILURES, GRIDFS + ".files", GRIDFS + ".chunks")
# No "." at the end either: "results.runs." is no collection name on MongoDB.
_NAMESPACE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,62}[A-Za-z0-9_\-])?")


def validate_namespace(namespace: object) -> str:
    """Check that a namespace can name a collection on every engine."""
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace) or ".." in namespace:
        raise InvalidNamespaceError(
            f"Invalid namespace {namespace!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter, digit or '_', not ending with '.', with no '..'"
        )
    if _reserved(namespace):
        head = namespace.split(".", 1)[0]
        raise InvalidNamespaceError(f"Invalid namespace {namespace!r}: {head!r} {RESERVED[head]}")
    return namespace


def collection_name(prefix: str, namespace: str) -> str:
    """The collection of ``namespace`` under ``prefix``, refused if another store could keep its own one there."""
    name = prefix + validate_namespace(namespace)
    for tail in OWN_TAILS:
        if name.endswith(tail):
            other = name[: -len(tail)]
            raise InvalidNamespaceError(
                f"Invalid namespace {namespace!r} with collection prefix {prefix!r}: {name!r} is where a store "
                f"with prefix {other!r} keeps {RESERVED[tail.split('.')[0]].removeprefix('holds ')}. "
                f"Collections ending in {', '.join(OWN_TAILS)} are never results collections"
            )
    return name


def optional_namespace(namespace: str | None) -> str | None:
    """A read's namespace argument: None (every namespace) or a valid namespace."""
    return None if namespace is None else validate_namespace(namespace)


def validate_collection_prefix(prefix: str) -> str:
    """Check a collection prefix such as ``results.``."""
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}", prefix):
        raise InvalidNamespaceError(f"Invalid collection prefix {prefix!r}")
    return prefix


class Models(Protocol):
    """The registered model classes as the core asks for them: the registry, handed in by each store."""

    encoders: Encoders  # each class's compiled encoder, kept by the registry for its process

    def class_for(self, model_type: str, namespace: str) -> type[BaseModel] | None:
        """The class registered as ``model_type`` in ``namespace``."""
        ...

    def everywhere(self, model_type: str) -> list[tuple[str, type[BaseModel]]]:
        """Every ``(namespace, class)`` registered as ``model_type``."""
        ...

    def namespace_of(self, model_class: type[BaseModel], strict: bool) -> str | None:
        """The namespace ``model_class`` is registered in (a ModelConflictError if ``strict`` finds several)."""
        ...

    def in_namespace(self, namespace: str) -> Mapping[str, type[BaseModel]]:
        """The classes registered in ``namespace``, by model type."""
        ...

    def indexes(self, namespace: str) -> list[tuple[str, int]]:
        """The result fields the namespace's models want indexed."""
        ...


def resolve_namespace(model: BaseModel, namespace: str | None, strict: bool, result_id: str, models: Models) -> str:
    """The namespace a ``set`` writes to: the argument, else the model's registration, else the default."""
    if namespace is not None:
        return validate_namespace(namespace)
    try:
        found = models.namespace_of(type(model), strict)
    except ValueError as exc:
        raise InvalidNamespaceError(
            f"Cannot automatically determine namespace for {type(model).__name__} when saving to '{result_id}': {exc}"
        ) from exc
    return validate_namespace(found if found is not None else DEFAULT_NAMESPACE)


def namespaces_in(collection_names: Iterable[str], prefix: str) -> list[str]:
    """The namespaces whose collections are among ``collection_names``."""
    return sorted(
        name[len(prefix) :]
        for name in collection_names
        if name.startswith(prefix)
        and len(name) > len(prefix)
        and not _reserved(name[len(prefix) :])
        and not name.endswith(OWN_TAILS)
    )


def _reserved(namespace: str) -> bool:
    """Whether a name is the GridFS bucket's (``_gridfs``, ``_gridfs.files``, ...) or the claims', never a namespace."""
    return namespace.split(".", 1)[0] in RESERVED
