"""Terminal output without dependencies: a progress bar and plain tables."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

__all__ = ["Progress", "ProgressBar", "table"]


class Progress:
    """Counts work done out of ``total`` and shows it on ``out`` (stderr by default)."""

    def __init__(self, total: int, label: str, out: TextIO | None = None, unit: str = "items") -> None:
        self.total, self.label, self.unit, self.done = total, label, unit, 0
        self.out = out if out is not None else sys.stderr
        self.tty, self.started = self.out.isatty(), time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.total or not (self.tty or self.done == self.total or self.done % max(1, -(-self.total // 10)) == 0):
            return
        filled = int(30 * self.done / self.total)
        rate = self.done / max(time.monotonic() - self.started, 1e-9)
        line = f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {rate:5.1f} {self.unit}/s"
        self.out.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and self.done == self.total:
            self.out.write("\n")
        self.out.flush()


class ProgressBar:
    """A ``progress(done, total)`` callback that draws a bar on a terminal once a read is large."""

    LARGE = 2000  # results: below this a read is quick enough to need no bar

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Progress | None = None

    @property
    def active(self) -> bool:
        """Whether a bar may be drawn: the read counts its results first only then."""
        return sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if total < self.LARGE or not sys.stderr.isatty():
                return
            self.bar = Progress(total, self.label, unit="results")
        self.bar.advance(done - self.bar.done)


def table(rows: Sequence[Sequence[str]], header: Sequence[str], *, numbers_right: bool = False) -> list[str]:
    """Rows under a header and a rule, columns padded; optionally all but the first right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str], right: bool) -> str:
        cells = [
            str(c).rjust(w) if right and i else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return [line(header, False), line(["-" * w for w in widths], False), *(line(r, numbers_right) for r in rows)]
