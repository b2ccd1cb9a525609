"""The public API's docstrings: each parameter, result and attribute documented, as the API reference shows them.

Read as the API reference reads them (griffe, Google style, with the extension that turns
AsyncResultsManager's derived methods into methods), so a method the reference would show
without its ``Args:`` fails here. ``mkdocs build --strict`` catches the reverse: a documented
parameter the signature does not have.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path

import griffe
import pytest

import mongo_results
from mongo_results import AsyncResultsManager, ResultsManager
from mongo_results.admin import Admin, AsyncAdmin

ROOT = Path(__file__).resolve().parent.parent
EXTENSION = f"{ROOT / 'scripts' / 'griffe_derived.py'}:DerivedAsyncMethods"  # as mkdocs.yml loads it


def _load() -> griffe.Module:
    extensions = griffe.load_extensions(EXTENSION)
    package = griffe.load("mongo_results", search_paths=[str(ROOT)], extensions=extensions)
    assert isinstance(package, griffe.Module)
    return package


PACKAGE = _load()


def _sections(obj: griffe.Object) -> dict[str, list[griffe.DocstringSection]]:
    assert obj.docstring is not None, f"{obj.path}: no docstring"
    found: dict[str, list[griffe.DocstringSection]] = {}
    for section in obj.docstring.parse("google", warnings=False):
        found.setdefault(section.kind.value, []).append(section)
    return found


def _documented(sections: dict[str, list[griffe.DocstringSection]], kind: str) -> set[str]:
    return {item.name.lstrip("*") for section in sections.get(kind, []) for item in section.value}


def _check_parameters(obj: griffe.Object, parameters: griffe.Parameters) -> None:
    sections = _sections(obj)
    wanted = {p.name for p in parameters if p.name not in ("self", "cls")}
    missing = wanted - _documented(sections, "parameters")
    assert not missing, f"{obj.path}: Args: lacks {sorted(missing)}"


def _check_function(function: griffe.Function) -> None:
    _check_parameters(function, function.parameters)
    sections = _sections(function)
    returns = str(function.returns) if function.returns is not None else "None"
    if returns == "None":
        return
    kind = "yields" if returns.split("[")[0] in ("Iterator", "AsyncIterator") else "returns"
    assert kind in sections, f"{function.path}: no {kind.capitalize()}: section (it returns {returns})"


def _public_api() -> Iterator[griffe.Object]:
    # What __all__ exports, every error, and manager.admin's classes
    names = [
        *mongo_results.__all__,
        *(f"errors.{n}" for n in mongo_results.errors.__all__),
        "admin.Admin",
        "admin.AsyncAdmin",
    ]
    for name in dict.fromkeys(names):
        obj = PACKAGE[name]
        yield obj.final_target if isinstance(obj, griffe.Alias) else obj


def _methods(cls: griffe.Class) -> Iterator[griffe.Function | griffe.Attribute]:
    for name, member in cls.all_members.items():
        target = member.final_target if isinstance(member, griffe.Alias) else member
        if name.startswith("_") or not target.path.startswith("mongo_results."):
            continue
        # methods and properties; plain instance attributes are internal state, not shown
        if isinstance(target, griffe.Function) or (
            isinstance(target, griffe.Attribute) and "property" in target.labels
        ):
            yield target


API = list(_public_api())
CLASSES = [obj for obj in API if isinstance(obj, griffe.Class)]
FUNCTIONS = [obj for obj in API if isinstance(obj, griffe.Function)]
METHODS = {m.path: m for cls in CLASSES for m in _methods(cls) if isinstance(m, griffe.Function)}


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_every_public_function_documents_its_parameters_and_result(function: griffe.Function) -> None:
    _check_function(function)


@pytest.mark.parametrize("method", list(METHODS.values()), ids=list(METHODS))
def test_every_public_method_documents_its_parameters_and_result(method: griffe.Function) -> None:
    _check_function(method)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_every_public_class_documents_its_constructor_and_members(cls: griffe.Class) -> None:
    """The constructor's parameters in the class's ``Args:``, as the reference merges ``__init__`` into it."""
    assert cls.docstring is not None, f"{cls.path}: no docstring"
    if "__init__" in cls.all_members and not cls.path.startswith("mongo_results.errors."):
        _check_parameters(cls, cls.parameters)
    for member in _methods(cls):
        assert member.docstring is not None, f"{member.path}: no docstring"


def test_the_public_api_is_all_covered() -> None:
    """Counts, so that a public name that escaped the checks above shows."""
    assert {f.name for f in FUNCTIONS} >= {
        n for n in mongo_results.__all__ if inspect.isfunction(getattr(mongo_results, n))
    }
    classes = (ResultsManager, AsyncResultsManager, mongo_results.Claim, Admin, AsyncAdmin)
    for cls in classes:
        public = {
            n
            for n, member in inspect.getmembers(cls, callable)
            if not n.startswith("_") and getattr(member, "__deprecated__", None) is None  # 0.1 spellings: not shown
        }
        assert {m.rsplit(".", 1)[1] for m in METHODS if m.rsplit(".", 2)[1] == cls.__name__} >= public, cls


def test_every_member_of_set_behavior_is_documented() -> None:
    enum = PACKAGE["SetBehavior"].final_target
    for name in ("RAISE_IF_EXISTS", "RAISE_IF_DIFFERENT", "OVERWRITE", "SKIP_IF_EXISTS", "KEEP_EXISTING"):
        assert enum.members[name].docstring is not None, name


@pytest.mark.parametrize("name", mongo_results.errors.__all__)
def test_every_error_says_when_it_is_raised_and_what_it_carries(name: str) -> None:
    error = getattr(mongo_results.errors, name)
    doc = inspect.getdoc(error) or ""
    assert "\n\n" in doc, f"{name}: only a summary line; say when it is raised"
    init = error.__dict__.get("__init__")
    if init is None:
        return
    tree = ast.parse(inspect.getsource(error))
    carried = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name)
        if node.value.id == "self"
    }
    documented = _documented(_sections(PACKAGE["errors"][name]), "attributes")
    assert carried <= documented, f"{name}: Attributes: lacks {sorted(carried - documented)}"


def test_the_async_methods_carry_the_sync_docstrings() -> None:
    """What an editor shows on hover: the derived methods' docstrings are the sync ones (update_wrapper)."""
    for name in ("get", *(n for n, m in vars(AsyncResultsManager).items() if hasattr(m, "__wrapped__"))):
        assert getattr(AsyncResultsManager, name).__doc__ == getattr(ResultsManager, name).__doc__, name
