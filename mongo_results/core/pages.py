"""Keyset pages of one collection, for reads that merge namespaces in id order."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

from .commands import BY_ID, Batch, Find, PartialPage
from .filters import page_after

__all__ = ["Pages", "each_batch", "in_order"]


def in_order(document: Mapping[str, Any]) -> tuple[str, str]:
    """The order of documents: by id, then namespace."""
    return document["_id"], str(document.get("namespace"))


class Pages:
    """One collection's keyset pages for a merged, id-ordered read."""

    def __init__(self, collection: str, query: dict[str, Any], size: int, projection: dict[str, int] | None) -> None:
        self.collection, self.query, self.size, self.projection = collection, query, size, projection
        self.buffer: list[dict[str, Any]] = []
        self.done = False
        self._after: str | None = None

    def next_page(self) -> Find:
        page = self.query if self._after is None else page_after(self.query, self._after)
        return Find(self.collection, page, self.projection, BY_ID, self.size, page=True)

    def take(self, docs: list[dict[str, Any]]) -> None:
        self.buffer, self.done = list(docs), len(docs) < self.size and not isinstance(docs, PartialPage)
        if docs:
            self._after = docs[-1]["_id"]

    def release(self, frontier: str | None) -> list[dict[str, Any]]:
        """The buffered documents up to ``frontier`` (all of them when None)."""
        cut = len(self.buffer) if frontier is None else sum(1 for d in self.buffer if d["_id"] <= frontier)
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out


def each_batch(
    inner: Generator[Any, Any, Any], handle: Callable[[list[Any]], Generator[Any, Any, list[Any]]]
) -> Generator[Any, Any, None]:
    """Run ``inner``, passing its commands through and each batch it streams to ``handle``.

    ``handle`` is itself an operation (it may send commands); what it returns is streamed on.
    """
    reply: Any = None
    while True:
        try:
            step = inner.send(reply)
        except StopIteration:
            return
        if isinstance(step, Batch):
            reply = None
            out = yield from handle(step.items)
            if out:
                yield Batch(out)
        else:
            reply = yield step
