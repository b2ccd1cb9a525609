"""A Griffe extension for the API reference: AsyncResultsManager's derived methods as methods.

``AsyncResultsManager`` builds most of its methods from ``ResultsManager``'s at import time
(``set = awaitable(ResultsManager.set)``), so a static reading sees attributes without
docstrings. This extension turns each such attribute into a method with the sync method's
parameters and docstring (what ``functools.update_wrapper`` gives the derived method at run
time): ``awaitable`` makes it a coroutine method, ``streaming`` an async iterator.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import griffe

DERIVERS = {"awaitable": "Coroutine", "streaming": "AsyncIterator"}


class DerivedAsyncMethods(griffe.Extension):
    """Replace ``name = awaitable(Cls.name)`` / ``streaming(Cls.name)`` class attributes by methods."""

    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        for name, member in list(cls.members.items()):
            derived = _derived(member)
            if derived is None:
                continue
            deriver, source = derived
            sync = cls.parent.members.get(source) if cls.parent is not None else None
            method = sync.members.get(name) if isinstance(sync, griffe.Class) else None
            if not isinstance(method, griffe.Function):
                continue
            returns: Any = method.returns
            if deriver == "streaming" and isinstance(returns, griffe.ExprSubscript):
                # Iterator[X] -> AsyncIterator[X], resolved in the manager's module (which imports it)
                returns = dataclasses.replace(returns, left=griffe.ExprName("AsyncIterator", parent=cls.parent))
            function = griffe.Function(
                name,
                lineno=member.lineno,
                endlineno=member.endlineno,
                parameters=method.parameters,
                returns=returns,
                docstring=None,
            )
            if method.docstring is not None:
                function.docstring = griffe.Docstring(
                    method.docstring.value,
                    lineno=method.docstring.lineno,
                    endlineno=method.docstring.endlineno,
                    parent=function,
                    parser=method.docstring.parser,
                    parser_options=method.docstring.parser_options,
                )
            if deriver == "awaitable":
                function.labels.add("async")
            cls.set_member(name, function)


def _derived(member: Any) -> tuple[str, str] | None:
    """``(deriver, class name)`` of an attribute whose value is ``deriver(Class.method)``, else None."""
    if not isinstance(member, griffe.Attribute) or not isinstance(member.value, griffe.ExprCall):
        return None
    call = member.value
    if str(call.function) not in DERIVERS or len(call.arguments) != 1:
        return None
    target = call.arguments[0]
    if not isinstance(target, griffe.ExprAttribute) or len(target.values) != 2:
        return None
    owner, method = (str(v) for v in target.values)
    return (str(call.function), owner) if method == member.name else None
